//! The per-thread part of the text report: a header line per thread and its
//! stack, one frame a line, aligned. Threads with identical stacks (pools of
//! idle workers) share one printed stack after a list of their headers.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::style::{clean, Style};
use crate::inspect::Inspection;
use crate::stacks::{Frame, FrameKind};
use crate::syscalls;

/// At least this many threads with the same stack are printed as a group.
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
        "Thread {}{} \"{}\"",
        style.bold(&t.tid.to_string()),
        ns_tid_note(t.tid, t.ns_tid),
        clean(&t.name)
    );
    if let Some(py) = ins.python_names.get(i).and_then(|n| n.as_deref()) {
        let _ = write!(s, " (Python \"{}\")", clean(py));
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
        let _ = write!(s, ", {}", crate::target::RUNNING_NOTE);
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

/// All threads of a process, grouped by identical stacks.
pub fn all_threads(ins: &Inspection, style: &Style) -> String {
    let mut groups: BTreeMap<Vec<(u64, Option<&str>)>, Vec<usize>> = BTreeMap::new();
    let mut order: Vec<Vec<(u64, Option<&str>)>> = Vec::new();
    for (i, s) in ins.stacks.iter().enumerate() {
        let key: Vec<(u64, Option<&str>)> = s.frames.iter().map(|f| (f.pc, f.function.as_deref())).collect();
        let entry = groups.entry(key.clone()).or_default();
        if entry.is_empty() {
            order.push(key);
        }
        entry.push(i);
    }
    let mut out = String::new();
    for key in order {
        let members = &groups[&key];
        let first = members[0];
        let s = &ins.stacks[first];
        if members.len() >= GROUP_MIN && !s.frames.is_empty() {
            let _ = writeln!(out, "{} threads with the same stack:", members.len());
            for &i in members {
                let _ = writeln!(out, "  {}", header(ins, i, style));
            }
        } else {
            for &i in members {
                let s = &ins.stacks[i];
                let _ = writeln!(out, "{}", header(ins, i, style));
                out.push_str(&stack(&s.frames, s.error.as_deref(), s.truncated, style));
                out.push('\n');
            }
            continue;
        }
        out.push_str(&stack(&s.frames, s.error.as_deref(), s.truncated, style));
        out.push('\n');
    }
    out
}
