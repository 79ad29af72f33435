//! Source lines by marker: fixtures tag the lines tests check with a comment
//! `@line:KEY`, so a test never hard-codes a line number that an edit to the
//! fixture would silently invalidate.

use std::path::Path;

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// The 1-based line of `path` carrying the marker `@line:KEY`. Panics unless
/// exactly one line does.
pub fn marked_line(path: &Path, key: &str) -> u32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let marker = format!("@line:{key}");
    let hits: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            line.match_indices(&marker)
                .any(|(at, m)| !line[at + m.len()..].starts_with(is_key_char))
        })
        .map(|(i, _)| i as u32 + 1)
        .collect();
    match hits.as_slice() {
        [one] => *one,
        [] => panic!("no {marker} in {}", path.display()),
        many => panic!("{marker} appears on lines {many:?} of {}", path.display()),
    }
}

/// The 1-based line of `path` that ends with the comment `# MARK:NAME` (the
/// marker of tests/cpython.rs's Python fixtures). Panics when none does.
pub fn mark_comment_line(path: &Path, name: &str) -> u32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let needle = format!("# MARK:{name}");
    let found = text.lines().position(|l| l.trim_end().ends_with(&needle));
    found.unwrap_or_else(|| panic!("no marker {needle} in {}", path.display())) as u32 + 1
}
