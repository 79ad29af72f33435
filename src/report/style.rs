//! Terminal styling and sanitizing of strings that come from the target.

/// `--color`: when the text report uses ANSI colors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Color when stdout is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

/// How to render the text report: ANSI colors, and whether threads with
/// identical stacks and waits are folded into one entry (the default) or
/// listed one by one (`--all-threads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub all_threads: bool,
}

impl Style {
    /// Color only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    pub fn detect(choice: ColorChoice) -> Style {
        use std::io::IsTerminal;
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty()) && std::io::stdout().is_terminal()
            }
        };
        Style {
            color,
            all_threads: false,
        }
    }
    pub fn plain() -> Style {
        Style {
            color: false,
            all_threads: false,
        }
    }
    /// The same style, listing every thread on its own (`--all-threads`).
    pub fn with_all_threads(self, all_threads: bool) -> Style {
        Style { all_threads, ..self }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
}

pub use crate::printable::{clean, escape_name, quoted};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("a\x1b[31mb\n"), "a\\x1b[31mb\\x0a");
        assert_eq!(clean("wörker-1"), "wörker-1");
    }

    #[test]
    fn names_escape_quotes_and_backslashes() {
        assert_eq!(quoted("say \"hi\""), r#""say \"hi\"""#);
        assert_eq!(quoted("a\\x1b\x1b"), r#""a\\x1b\x1b""#);
        assert_eq!(escape_name("w\t1"), r"w\x091");
    }
}
