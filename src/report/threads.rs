//! The per-thread part of the text report: a header line per thread and its
//! stack, one frame a line, aligned, and the locks it holds. Threads with
//! identical stacks waiting for the same thing (pools of idle workers) are
//! folded into one entry (`40 threads "w*" (TIDs 101–140) ...`) unless
//! `--all-threads`.

use std::collections::HashMap;
use std::fmt::Write;

use super::style::{clean, escape_name, quoted, Style};
use crate::graph::Verdict;
use crate::inspect::Inspection;
use crate::runtimes::ResourceKind;
use crate::stacks::{Frame, FrameKind};
use crate::syscalls;

/// At least this many threads with the same stack and wait are folded.
const GROUP_MIN: usize = 3;

/// ` (ns TID 7)` for a thread whose TID in its own PID namespace (what a
/// shell, `ps` or a log inside its container shows) is not the host's.
pub fn ns_tid_note(tid: i32, ns_tid: i32) -> String {
    if ns_tid != tid && ns_tid > 0 {
        format!(" (ns TID {ns_tid})")
    } else {
        String::new()
    }
}

/// One-line description of a thread: TID, names, state and what it is blocked in.
pub fn header(ins: &Inspection, i: usize, style: &Style) -> String {
    let t = &ins.snapshot.threads[i];
    let mut s = format!(
        "Thread {}{} {}",
        style.bold(&t.tid.to_string()),
        ns_tid_note(t.tid, t.ns_tid),
        quoted(&t.name)
    );
    if let Some(py) = ins.python_names.get(i).and_then(|n| n.as_deref()) {
        let _ = write!(s, " (Python {})", quoted(py));
    }
    let _ = write!(s, " state {}", t.state);
    let tracer = ins.snapshot.tracer.as_ref().filter(|_| t.state == 't');
    if let (Some(sys), Some(tr)) = (&t.syscall, tracer) {
        // In a ptrace stop the kernel still shows the call the thread was
        // in (orig_rax and the argument registers): it was taken out of it
        // by the stop and re-enters it when resumed; it is not running it now.
        let _ = write!(
            s,
            ", stopped by its tracer (PID {} {}) in {}",
            tr.pid,
            clean(&tr.name),
            syscalls::describe(sys)
        );
    } else if let Some(sys) = &t.syscall {
        let _ = write!(s, ", in {}", syscalls::describe(sys));
    } else if t.running() {
        let _ = write!(s, ", {}", crate::capture::RUNNING_NOTE);
    }
    if !t.wchan.is_empty() {
        let _ = write!(s, " [{}]", clean(&t.wchan));
    }
    if let Some(l) = &t.left_running {
        let _ = write!(s, " ({})", l.reason());
    }
    if let Some(note) = ins.python_stack_notes.get(i).and_then(|n| n.as_deref()) {
        let _ = write!(s, " ({})", clean(note));
    } else if let Some(note) = ins.python_name_notes.get(i).and_then(|n| n.as_deref()) {
        let _ = write!(s, " (no Python name: {})", clean(note));
    }
    if let Some(sig) = t.pending_signal {
        let _ = write!(s, " (signal {sig} arrived during capture and was re-delivered)");
    }
    s
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

/// Whether thread `i` may be folded with others: it is in no deadlock,
/// holds nothing, waits for nothing with an owner, and has nothing of its
/// own to say (a note, a re-delivered signal, a call left running).
fn foldable(ins: &Inspection, i: usize, verdict: &Verdict) -> bool {
    let t = &ins.snapshot.threads[i];
    let f = &ins.findings[i];
    let id = (ins.snapshot.pid, t.tid);
    !ins.stacks[i].frames.is_empty()
        && !t.running()
        && f.holds.is_empty()
        && f.wait.as_ref().map_or(true, |w| w.owner.tid.is_none())
        && !verdict.deadlocks.iter().any(|d| d.threads.contains(&id))
        && t.left_running.is_none()
        && t.pending_signal.is_none()
        && ins.python_stack_notes.get(i).map_or(true, |n| n.is_none())
        && ins.python_name_notes.get(i).map_or(true, |n| n.is_none())
}

/// What folded threads share: the stack (PCs and functions), the state,
/// the call they are in, and what they wait for (kind and address).
type FoldKey<'a> = (
    Vec<(u64, Option<&'a str>)>,
    char,
    Option<i64>,
    Option<(ResourceKind, u64)>,
    Option<&'a str>,
);

fn fold_key<'a>(ins: &'a Inspection, i: usize) -> FoldKey<'a> {
    let t = &ins.snapshot.threads[i];
    let f = &ins.findings[i];
    (
        ins.stacks[i]
            .frames
            .iter()
            .map(|f| (f.pc, f.function.as_deref()))
            .collect(),
        t.state,
        t.syscall.as_ref().map(|s| s.nr),
        f.wait.as_ref().map(|w| (w.resource.kind, w.resource.address)),
        f.blocked_in.as_deref(),
    )
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
    let mut distinct: Vec<&str> = Vec::new();
    for n in names {
        if !distinct.contains(n) {
            distinct.push(n);
        }
    }
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

/// The header of a folded entry:
/// `40 threads "w*" (TIDs 101–140) state S, in futex(...) [futex_wait_queue]`.
fn folded_header(ins: &Inspection, members: &[usize], style: &Style) -> String {
    let threads = &ins.snapshot.threads;
    let t0 = &threads[members[0]];
    let names: Vec<&str> = members.iter().map(|&i| threads[i].name.as_str()).collect();
    let tids: Vec<i32> = members.iter().map(|&i| threads[i].tid).collect();
    let mut s = format!(
        "{} threads {} (TIDs {})",
        style.bold(&members.len().to_string()),
        name_pattern(&names),
        tid_ranges(&tids)
    );
    if members
        .iter()
        .any(|&i| threads[i].ns_tid != threads[i].tid && threads[i].ns_tid > 0)
    {
        let ns: Vec<i32> = members.iter().map(|&i| threads[i].ns_tid).collect();
        let _ = write!(s, " (ns TIDs {})", tid_ranges(&ns));
    }
    let py: Vec<&str> = members
        .iter()
        .filter_map(|&i| ins.python_names.get(i).and_then(|n| n.as_deref()))
        .collect();
    if !py.is_empty() {
        let _ = write!(s, " (Python {})", name_pattern(&py));
    }
    let _ = write!(s, " state {}", t0.state);
    if let Some(sys) = &t0.syscall {
        // The call is the same for all; its arguments (a futex's expected
        // value, a timeout) may differ: then only its name is shown.
        let text = syscalls::describe(sys);
        let same = members
            .iter()
            .all(|&i| threads[i].syscall.as_ref().map(syscalls::describe).as_deref() == Some(text.as_str()));
        if same {
            let _ = write!(s, ", in {text}");
        } else {
            let name = syscalls::name(sys.nr)
                .map(str::to_string)
                .unwrap_or_else(|| format!("syscall {}", sys.nr));
            let _ = write!(s, ", in {name}(…)");
        }
    }
    if !t0.wchan.is_empty() && members.iter().all(|&i| threads[i].wchan == t0.wchan) {
        let _ = write!(s, " [{}]", clean(&t0.wchan));
    }
    s
}

/// `  holds: mutex lock_a (0x…) — exact`, one line per lock thread `i` holds.
pub fn holds_lines(ins: &Inspection, i: usize) -> String {
    let mut out = String::new();
    for h in &ins.findings[i].holds {
        let _ = writeln!(
            out,
            "  holds: {} — {}",
            super::labels::resource_label(&h.resource),
            super::labels::confidence_label(h.confidence)
        );
    }
    out
}

fn one_thread(out: &mut String, ins: &Inspection, i: usize, style: &Style) {
    let s = &ins.stacks[i];
    let _ = writeln!(out, "{}", header(ins, i, style));
    out.push_str(&holds_lines(ins, i));
    out.push_str(&stack(&s.frames, s.error.as_deref(), s.truncated, style));
    out.push('\n');
}

/// All threads of a process, in order; unless `style.all_threads`, at
/// least [`GROUP_MIN`] foldable threads with the same stack and the same
/// kind of wait are one entry with one stack, at the place of the first.
pub fn all_threads(ins: &Inspection, verdict: &Verdict, style: &Style) -> String {
    let mut out = String::new();
    let n = ins.snapshot.threads.len().min(ins.stacks.len());
    if style.all_threads {
        for i in 0..n {
            one_thread(&mut out, ins, i, style);
        }
        return out;
    }
    let mut groups: HashMap<FoldKey, Vec<usize>> = HashMap::new();
    for i in (0..n).filter(|&i| foldable(ins, i, verdict)) {
        groups.entry(fold_key(ins, i)).or_default().push(i);
    }
    let mut folded_at: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut folded = vec![false; n];
    for members in groups.into_values().filter(|m| m.len() >= GROUP_MIN) {
        for &i in &members {
            folded[i] = true;
        }
        folded_at.insert(members[0], members);
    }
    for (i, &in_group) in folded.iter().enumerate() {
        if let Some(members) = folded_at.get(&i) {
            let s = &ins.stacks[i];
            let _ = writeln!(out, "{}", folded_header(ins, members, style));
            out.push_str(&stack(&s.frames, s.error.as_deref(), s.truncated, style));
            out.push('\n');
        } else if !in_group {
            one_thread(&mut out, ins, i, style);
        }
    }
    out
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
