//! Re-confirmation with the live target: a verdict that rests on waits
//! having lasted (a cycle whose evidence was not read at one instant, a
//! stuck process, a starved pool) is checked against the live process
//! before it is reported, through `Live` and `capture::recheck`. A core
//! file is one instant: its threads are never looked at again.

use std::time::Duration;

use super::Inspection;
use crate::capture::SYS_RESTART_SYSCALL;
use crate::graph::{self, Verdict};
use crate::proc::SyscallLine;
use crate::runtimes::{Owner, ResourceKind};

/// A starved pool rests on one instant too, and its futures and queue are
/// read after the threads were let go: its workers must stay still (as for
/// [`confirm_stuck`]) or the starvation is dropped.
pub(super) fn confirm_starvations(inspections: &[Inspection], v: &mut Verdict) {
    v.pool_starvations.retain(|s| {
        if !is_live(inspections, s.pool.pid) {
            return true; // a core is one instant: nothing moves
        }
        let workers = graph::Stuck {
            pid: s.pool.pid,
            whole_process: false,
            threads: s.workers.clone(),
        };
        (0..STUCK_CONFIRM_WINDOWS).any(|_| moved_in_window(inspections, &[&workers])[0].is_empty())
    });
}

/// How long a stuck process must stay perfectly still before it is reported.
pub const STUCK_CONFIRM: Duration = Duration::from_millis(50);

/// A stuck verdict rests on one instant: a busy process whose threads
/// contend for locks can be caught with every thread in a futex wait, and
/// its Python evidence is read after the threads were let go. So every
/// thread of a stuck process (or every listed thread, for threads behind an
/// orphaned lock) must, over [`STUCK_CONFIRM`], not run at all (same
/// context-switch count) and stay in the system call it was captured in
/// (same number and first argument; a capture interrupted timed call may
/// show as restart_syscall). GIL waiters are exempt from the count: they
/// wake every 5 ms by design. A thread that moved clears the verdict for its
/// process: it is reported as not asleep for good, with that reason.
pub(super) fn confirm_stuck(inspections: &[Inspection], v: &mut Verdict) {
    if v.stuck.is_empty() {
        return;
    }
    // A core is one instant: there is nothing to watch (and its PID may
    // now be an unrelated live process).
    let mut pending: Vec<&graph::Stuck> = v.stuck.iter().filter(|s| is_live(inspections, s.pid)).collect();
    // A thread just let go by the capture may still be on its way back into
    // its wait (runnable on a loaded machine): a few windows, and one in
    // which nothing of a process moved is enough for it. All processes of a
    // tree share each window, so ten stuck processes cost one window, not ten.
    let mut last: Vec<Vec<graph::ThreadId>> = Vec::new();
    for _ in 0..STUCK_CONFIRM_WINDOWS {
        if pending.is_empty() {
            break;
        }
        last = moved_in_window(inspections, &pending);
        let still: Vec<usize> = (0..pending.len()).filter(|&k| !last[k].is_empty()).collect();
        pending = still.iter().map(|&k| pending[k]).collect();
        last = still.into_iter().map(|k| std::mem::take(&mut last[k])).collect();
    }
    let moved: Vec<graph::ThreadId> = last.into_iter().flatten().collect();
    if moved.is_empty() {
        return;
    }
    let pids: std::collections::BTreeSet<i32> = moved.iter().map(|m| m.pid).collect();
    v.stuck.retain(|s| !pids.contains(&s.pid));
    for a in v.asleep.iter_mut().filter(|a| pids.contains(&a.thread.pid)) {
        if a.asleep_for_good {
            a.asleep_for_good = false;
            a.why = if moved.contains(&a.thread) {
                "it ran (or left its wait) while lockdump confirmed the process was stuck: it is not".into()
            } else {
                "another thread of the process ran while lockdump confirmed it was stuck: it is not".into()
            };
        }
    }
}

/// Whether `pid` is an inspected live process (not a core file's).
pub(super) fn is_live(inspections: &[Inspection], pid: i32) -> bool {
    inspections
        .iter()
        .any(|i| i.snapshot.pid == pid && i.snapshot.live().is_some())
}

/// Windows of [`STUCK_CONFIRM`] tried before a stuck verdict is dropped.
pub(super) const STUCK_CONFIRM_WINDOWS: usize = 5;

/// For each of `stucks`, the threads that ran or left their captured call
/// during one shared window of [`STUCK_CONFIRM`] (and any thread that appeared).
pub(super) fn moved_in_window(inspections: &[Inspection], stucks: &[&graph::Stuck]) -> Vec<Vec<graph::ThreadId>> {
    // A thread that was woken but has not run yet still shows its wait and
    // its old switch count: only a sleeping one (state S) is still.
    let look = |pid: i32, tid: i32| -> Option<(Option<SyscallLine>, Option<u64>, bool)> {
        let live = crate::live::Live::process(pid);
        let line = live.thread_syscall(tid).ok();
        let status = live.thread_status(tid).ok()?;
        Some((line, status.ctxt_switches, status.state == 'S'))
    };
    // Only threads of live processes can be looked at again.
    let threads_of = |s: &graph::Stuck| -> Vec<graph::ThreadId> {
        s.threads
            .iter()
            .copied()
            .filter(|t| is_live(inspections, t.pid))
            .collect()
    };
    let before: Vec<Vec<_>> = stucks
        .iter()
        .map(|s| threads_of(s).iter().map(|t| look(t.pid, t.tid)).collect())
        .collect();
    std::thread::sleep(STUCK_CONFIRM);
    stucks
        .iter()
        .zip(&before)
        .map(|(s, before)| moved_after(inspections, s, &threads_of(s), before, &look))
        .collect()
}

/// Per thread's look: its syscall line, context switches, and whether it sleeps.
pub(super) type Look = Option<(Option<SyscallLine>, Option<u64>, bool)>;

/// The threads of `s` whose look now differs from `before` (or that appeared).
pub(super) fn moved_after(
    inspections: &[Inspection],
    s: &graph::Stuck,
    threads: &[graph::ThreadId],
    before: &[Look],
    look: &dyn Fn(i32, i32) -> Look,
) -> Vec<graph::ThreadId> {
    let mut moved = Vec::new();
    if s.whole_process {
        let now = crate::live::Live::process(s.pid).threads().unwrap_or_default();
        if let Some(&t) = now
            .iter()
            .find(|t| !s.threads.contains(&graph::ThreadId::new(s.pid, **t)))
        {
            moved.push(graph::ThreadId::new(s.pid, t));
        }
    }
    for (&graph::ThreadId { pid, tid }, b) in threads.iter().zip(before) {
        let Some(ins) = inspections.iter().find(|i| i.snapshot.pid == pid) else {
            continue;
        };
        let Some(i) = ins.snapshot.threads.iter().position(|t| t.tid == tid) else {
            continue;
        };
        let gil = ins.findings[i]
            .wait
            .as_ref()
            .is_some_and(|w| w.resource.kind == ResourceKind::Gil);
        let captured = ins.snapshot.threads[i].syscall;
        let still = |line: &Option<SyscallLine>| match (line, captured) {
            (Some(SyscallLine::InSyscall { nr, args, .. }), Some(c)) => {
                (*nr == c.nr || *nr == SYS_RESTART_SYSCALL || c.restarted) && args[0] == c.args[0]
            }
            _ => false,
        };
        let ok = match (b, look(pid, tid)) {
            (Some((l1, s1, asleep1)), Some((l2, s2, asleep2))) => {
                still(l1) && still(&l2) && (gil || (s1.is_some() && *s1 == s2 && *asleep1 && asleep2))
            }
            _ => false,
        };
        if !ok {
            moved.push(graph::ThreadId::new(pid, tid));
        }
    }
    moved
}

pub(super) fn confirmed_graph(inspections: &mut [Inspection]) -> Verdict {
    for _ in 0..4 {
        let v = graph_of(inspections);
        let mut moved = false;
        for &graph::ThreadId { pid, tid } in v.deadlocks.iter().flat_map(|d| &d.threads) {
            let Some(ins) = inspections.iter_mut().find(|i| i.snapshot.pid == pid) else {
                continue;
            };
            let Some(i) = ins.snapshot.threads.iter().position(|t| t.tid == tid) else {
                continue;
            };
            let no_stop = ins.snapshot.no_stop;
            // Evidence from a core is all of one instant: nothing to confirm.
            let Some(live) = ins.snapshot.live() else {
                continue;
            };
            let Some(w) = ins.findings[i].wait.as_mut() else {
                continue;
            };
            // Python lock state (and a multiprocessing lock's SemLock) is
            // read after the threads were let go.
            let read_after_capture = no_stop
                || matches!(
                    w.resource.kind,
                    ResourceKind::PyLock | ResourceKind::PyRLock | ResourceKind::PyMpLock
                );
            if !read_after_capture {
                continue;
            }
            let Err(why) = crate::capture::recheck::wait_still_holds(live, &ins.snapshot.threads[i], no_stop) else {
                continue;
            };
            w.owner = Owner::unknown(why);
            moved = true;
        }
        if !moved {
            return v;
        }
    }
    graph_of(inspections)
}

pub(super) fn graph_of(inspections: &[Inspection]) -> Verdict {
    graph::analyze(inspections.iter().flat_map(|ins| {
        ins.snapshot
            .threads
            .iter()
            .zip(&ins.findings)
            .map(move |(t, f)| (ins.snapshot.pid, t.tid, f))
    }))
}
