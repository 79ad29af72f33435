//! Terminal styling and sanitizing of strings that come from the target.

use std::fmt::Write;

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
    pub fn detect(choice: crate::cli::ColorChoice) -> Style {
        use std::io::IsTerminal;
        let color = match choice {
            crate::cli::ColorChoice::Always => true,
            crate::cli::ColorChoice::Never => false,
            crate::cli::ColorChoice::Auto => {
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

/// Make a target-supplied string (thread name, path, Python identifier) safe
/// to print on a terminal: control characters become `\xNN` escapes, so a
/// hostile target cannot move the cursor or change colors.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A target-supplied name (thread name, Python thread name) as the text
/// report shows it between double quotes: control characters as `\xNN`
/// (as [`clean`]), and `"` and `\` escaped with a backslash, so a name
/// cannot end its quotes early or pass for an escape.
pub fn escape_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `"name"`, escaped by [`escape_name`].
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", escape_name(s))
}

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
