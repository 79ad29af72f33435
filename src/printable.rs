//! Strings that come from the target (thread names, paths, Python
//! identifiers), made safe to print on a terminal. Below every stage that
//! words such a string: /proc's fd descriptions as much as the report.

use std::fmt::Write;

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
