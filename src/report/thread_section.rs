//! The per-thread part of the text report: a header line per thread and its
//! stack, one frame a line, aligned, and the locks it holds. Threads with
//! identical stacks waiting for the same thing (pools of idle workers) are
//! folded into one entry (`40 threads "w*" (TIDs 101–140) ...`) unless
//! `--all-threads`. Read from the threads of the [`Report`] (what `--json`
//! writes as `threads[]`), not from the pipeline's types.

use std::collections::HashMap;
use std::fmt::Write;

use super::document::Report;
use super::json::{Thread, TracerJson};
use super::style::{clean, quoted, Style};
use super::threads::{name_pattern, ns_tid_note, stack, tid_ranges};
use crate::ids::Pid;
use crate::runtimes::ResourceKind;

/// At least this many threads with the same stack and wait are folded.
const GROUP_MIN: usize = 3;

/// One-line description of a thread: TID, names, state and what it is
/// blocked in. `tracer`: its process's debugger (`--no-stop`), if any.
pub fn header(t: &Thread, tracer: Option<&TracerJson>, style: &Style) -> String {
    let mut s = format!(
        "Thread {}{} {}",
        style.bold(&t.tid.to_string()),
        ns_tid_note(t.tid, t.ns_tid),
        quoted(t.name)
    );
    if let Some(py) = t.python_name {
        let _ = write!(s, " (Python {})", quoted(py));
    }
    let _ = write!(s, " state {}", t.state);
    let tracer = tracer.filter(|_| t.state == "t");
    if let (Some(sys), Some(tr)) = (&t.syscall, tracer) {
        // In a ptrace stop the kernel still shows the call the thread was
        // in (orig_rax and the argument registers): it was taken out of it
        // by the stop and re-enters it when resumed; it is not running it now.
        let _ = write!(
            s,
            ", stopped by its tracer (PID {} {}) in {}",
            tr.pid,
            clean(tr.name),
            sys.text
        );
    } else if let Some(sys) = &t.syscall {
        let _ = write!(s, ", in {}", sys.text);
    } else if let Some(note) = t.running_note {
        let _ = write!(s, ", {note}");
    }
    if !t.wchan.is_empty() {
        let _ = write!(s, " [{}]", clean(t.wchan));
    }
    if let Some(l) = &t.left_running {
        let _ = write!(s, " ({})", l.reason);
    }
    if let Some(note) = t.python_stack_note {
        let _ = write!(s, " ({})", clean(note));
    } else if let Some(note) = t.python_name_note {
        let _ = write!(s, " (no Python name: {})", clean(note));
    }
    if let Some(sig) = t.pending_signal {
        let _ = write!(s, " (signal {sig} arrived during capture and was re-delivered)");
    }
    s
}

/// Whether a thread may be folded with others: it is in no deadlock,
/// holds nothing, waits for nothing with an owner, and has nothing of its
/// own to say (a note, a re-delivered signal, a call left running).
fn foldable(t: &Thread, in_cycle: bool) -> bool {
    !t.frames.is_empty()
        && !t.running
        && t.holds.is_empty()
        && t.blocked_on.as_ref().map_or(true, |w| w.owner_tid.is_none())
        && !in_cycle
        && t.left_running.is_none()
        && t.pending_signal.is_none()
        && t.python_stack_note.is_none()
        && t.python_name_note.is_none()
}

/// What folded threads share: the stack (PCs and functions), the state,
/// the call they are in, and what they wait for (kind and address).
type FoldKey<'a> = (
    Vec<(u64, Option<&'a str>)>,
    &'a str,
    Option<i64>,
    Option<(ResourceKind, &'a str)>,
    Option<&'a str>,
);

fn fold_key<'a>(t: &'a Thread) -> FoldKey<'a> {
    (
        t.frames.iter().map(|f| (f.pc, f.function.as_deref())).collect(),
        &t.state,
        t.syscall.as_ref().map(|s| s.nr),
        t.blocked_on.as_ref().map(|w| (w.kind, w.address.as_str())),
        t.blocked_in,
    )
}

/// The header of a folded entry:
/// `40 threads "w*" (TIDs 101–140) state S, in futex(...) [futex_wait_queue]`.
fn folded_header(members: &[&Thread], style: &Style) -> String {
    let t0 = members[0];
    let names: Vec<&str> = members.iter().map(|t| t.name).collect();
    let tids: Vec<i32> = members.iter().map(|t| t.tid.get()).collect();
    let mut s = format!(
        "{} threads {} (TIDs {})",
        style.bold(&members.len().to_string()),
        name_pattern(&names),
        tid_ranges(&tids)
    );
    if members.iter().any(|t| t.ns_tid != t.tid.get() && t.ns_tid > 0) {
        let ns: Vec<i32> = members.iter().map(|t| t.ns_tid).collect();
        let _ = write!(s, " (ns TIDs {})", tid_ranges(&ns));
    }
    let py: Vec<&str> = members.iter().filter_map(|t| t.python_name).collect();
    if !py.is_empty() {
        let _ = write!(s, " (Python {})", name_pattern(&py));
    }
    let _ = write!(s, " state {}", t0.state);
    if let Some(sys) = &t0.syscall {
        // The call is the same for all; its arguments (a futex's expected
        // value, a timeout) may differ: then only its name is shown.
        let same = members
            .iter()
            .all(|t| t.syscall.as_ref().map(|x| x.text.as_str()) == Some(sys.text.as_str()));
        if same {
            let _ = write!(s, ", in {}", sys.text);
        } else {
            let name = sys
                .name
                .map(str::to_string)
                .unwrap_or_else(|| format!("syscall {}", sys.nr));
            let _ = write!(s, ", in {name}(…)");
        }
    }
    if !t0.wchan.is_empty() && members.iter().all(|t| t.wchan == t0.wchan) {
        let _ = write!(s, " [{}]", clean(t0.wchan));
    }
    s
}

/// `  holds: mutex lock_a (0x…) — exact`, one line per lock the thread holds.
pub fn holds_lines(t: &Thread) -> String {
    let mut out = String::new();
    for h in &t.holds {
        let _ = writeln!(
            out,
            "  holds: {} — {}",
            super::labels::resource_label(&h.resource),
            super::labels::confidence_label(h.confidence)
        );
    }
    out
}

fn one_thread(out: &mut String, t: &Thread, tracer: Option<&TracerJson>, style: &Style) {
    let _ = writeln!(out, "{}", header(t, tracer, style));
    out.push_str(&holds_lines(t));
    out.push_str(&stack(t.frames, t.unwind_error, t.truncated, style));
    out.push('\n');
}

/// All threads of process `pid` in the report, in order; unless
/// `style.all_threads`, at least [`GROUP_MIN`] foldable threads with the
/// same stack and the same kind of wait are one entry with one stack, at
/// the place of the first.
pub fn all_threads(report: &Report, pid: Pid, style: &Style) -> String {
    let mut out = String::new();
    let threads: Vec<&Thread> = report.threads_of(pid).collect();
    let tracer = report.process(pid).and_then(|p| p.tracer.as_ref());
    if style.all_threads {
        for t in &threads {
            one_thread(&mut out, t, tracer, style);
        }
        return out;
    }
    let in_cycle = |t: &Thread| {
        report
            .deadlocks
            .iter()
            .any(|d| d.pids.iter().zip(&d.threads).any(|(&p, &k)| (p, k) == (t.pid, t.tid)))
    };
    let mut groups: HashMap<FoldKey, Vec<usize>> = HashMap::new();
    for (i, t) in threads.iter().enumerate().filter(|(_, t)| foldable(t, in_cycle(t))) {
        groups.entry(fold_key(t)).or_default().push(i);
    }
    let mut folded_at: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut folded = vec![false; threads.len()];
    for members in groups.into_values().filter(|m| m.len() >= GROUP_MIN) {
        for &i in &members {
            folded[i] = true;
        }
        folded_at.insert(members[0], members);
    }
    for (i, &in_group) in folded.iter().enumerate() {
        if let Some(members) = folded_at.get(&i) {
            let t = threads[i];
            let members: Vec<&Thread> = members.iter().map(|&k| threads[k]).collect();
            let _ = writeln!(out, "{}", folded_header(&members, style));
            out.push_str(&stack(t.frames, t.unwind_error, t.truncated, style));
            out.push('\n');
        } else if !in_group {
            one_thread(&mut out, threads[i], tracer, style);
        }
    }
    out
}
