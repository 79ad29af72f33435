//! The words and stacks of the per-thread text: a stack, one frame a
//! line, aligned; TIDs folded into ranges and names into a pattern (used by
//! the thread sections in `thread_section.rs`, the verdict and the watch).

use std::fmt::Write;

use super::style::{clean, escape_name, Style};
use crate::ids::Tid;
use crate::stacks::{Frame, FrameKind};

/// ` (ns TID 7)` for a thread whose TID in its own PID namespace (what a
/// shell, `ps` or a log inside its container shows) is not the host's.
pub fn ns_tid_note(tid: Tid, ns_tid: i32) -> String {
    if ns_tid != tid.get() && ns_tid > 0 {
        format!(" (ns TID {ns_tid})")
    } else {
        String::new()
    }
}

/// A frame's location: `file:line`, with the directory kept (it disambiguates).
fn location(f: &Frame) -> String {
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{}:{line}", clean(file)),
        (Some(file), None) => clean(file),
        _ => String::new(),
    }
}

fn function(f: &Frame) -> String {
    let name = f.function.as_deref().map(clean).unwrap_or_else(|| "??".into());
    match f.offset {
        Some(off) if off != 0 && f.kind == FrameKind::Native => format!("{name}+{off:#x}"),
        _ => name,
    }
}

/// Render a stack, aligned: `#n  pc  function  at file:line  (module)`.
pub fn stack(frames: &[Frame], error: Option<&str>, truncated: bool, style: &Style) -> String {
    let mut out = String::new();
    let width = frames
        .iter()
        .map(|f| function(f).chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    for (n, f) in frames.iter().enumerate() {
        let pc = match f.kind {
            FrameKind::Native if f.inlined => format!("{:>18}", "(inlined)"),
            // No frame of its own on the stack: put back from DWARF call sites.
            FrameKind::Native if f.how == Some("tailcall") => format!("{:>18}", "(tail call)"),
            FrameKind::Native => format!("{:#018x}", f.pc),
            FrameKind::Python => format!("{:>18}", "(Python)"),
        };
        let func = function(f);
        let func = if f.kind == FrameKind::Python {
            style.cyan(&format!("{func:<width$}"))
        } else {
            format!("{func:<width$}")
        };
        let loc = location(f);
        let module = f
            .module
            .as_deref()
            .filter(|_| f.kind == FrameKind::Native)
            .map(clean)
            .unwrap_or_default();
        let mut line = format!("    #{n:<3} {} {func}", style.dim(&pc));
        if !loc.is_empty() {
            let _ = write!(line, "  at {loc}");
        }
        if !module.is_empty() {
            let _ = write!(line, "  {}", style.dim(&format!("({module})")));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if frames.is_empty() {
        out.push_str("    (no frames)\n");
    }
    if truncated {
        out.push_str("    ... (more frames not shown: --max-frames)\n");
    }
    if let Some(e) = error {
        let _ = writeln!(
            out,
            "    {}",
            style.yellow(&format!("(unwinding stopped: {})", clean(e)))
        );
    }
    out
}

/// `101–148, 150, 152–160`: sorted TIDs, runs of three or more as ranges.
pub fn tid_ranges(tids: &[i32]) -> String {
    let mut sorted = tids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut k = 0;
    while k < sorted.len() {
        let mut end = k;
        while end + 1 < sorted.len() && sorted[end + 1] == sorted[end] + 1 {
            end += 1;
        }
        if end >= k + 2 {
            parts.push(format!("{}–{}", sorted[k], sorted[end]));
        } else {
            parts.extend(sorted[k..=end].iter().map(|t| t.to_string()));
        }
        k = end + 1;
    }
    parts.join(", ")
}

/// At most this many distinct names are listed for a folded entry whose
/// names share no prefix.
const NAMES_SHOWN: usize = 4;

/// The names of folded threads, quoted: `"w"` when all are `w`, `"worker-*"`
/// when they share the prefix `worker-`, else the first few distinct names
/// and `…`.
pub fn name_pattern(names: &[&str]) -> String {
    name_pattern_with(names, true)
}

/// [`name_pattern`], quoted or not (the summary table's name column).
pub fn name_pattern_with(names: &[&str], quote: bool) -> String {
    let q = |s: String| if quote { format!("\"{s}\"") } else { s };
    // In first-seen order; the set keeps this linear (10,000 distinct
    // worker names made a `Vec::contains` scan most of the report's time).
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let distinct: Vec<&str> = names.iter().copied().filter(|n| seen.insert(n)).collect();
    if distinct.len() <= 1 {
        return q(escape_name(distinct.first().copied().unwrap_or("")));
    }
    let first: Vec<char> = distinct[0].chars().collect();
    let common = distinct[1..].iter().fold(first.len(), |len, n| {
        n.chars().zip(&first[..len]).take_while(|(a, b)| a == *b).count()
    });
    if common > 0 {
        let prefix: String = first[..common].iter().collect();
        return q(format!("{}*", escape_name(&prefix)));
    }
    let mut shown: Vec<String> = distinct.iter().take(NAMES_SHOWN).map(|n| q(escape_name(n))).collect();
    if distinct.len() > NAMES_SHOWN {
        shown.push("…".into());
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_fold_into_ranges() {
        assert_eq!(
            tid_ranges(&[103, 101, 102, 105, 107, 108, 109, 110]),
            "101–103, 105, 107–110"
        );
        assert_eq!(tid_ranges(&[5, 6]), "5, 6");
        assert_eq!(tid_ranges(&[9]), "9");
    }

    #[test]
    fn names_fold_into_a_pattern() {
        assert_eq!(name_pattern(&["w", "w", "w"]), "\"w\"");
        assert_eq!(name_pattern(&["worker-1", "worker-2", "worker-10"]), "\"worker-*\"");
        assert_eq!(name_pattern(&["a", "b", "c"]), "\"a\", \"b\", \"c\"");
        assert_eq!(
            name_pattern(&["a", "b", "c", "d", "e", "a"]),
            "\"a\", \"b\", \"c\", \"d\", …"
        );
        assert_eq!(name_pattern(&["q\"1", "q\"2", "q\"3"]), r#""q\"*""#);
    }
}
