//! `--watch DURATION`: hangs that only show over time.
//!
//! One snapshot cannot tell a livelock or a starving thread from a busy,
//! healthy program. After the first full snapshot and its analysis, the
//! watch looks at the process again every [`EVERY`] for DURATION without
//! stopping it ([`sample`]: /proc state, CPU time, context switches, system
//! call, the innermost Python frame, the words of the report's locks and of
//! the locks the running code names), then [`judge`] turns the samples into
//! facts (how long each wait was seen unchanged, which threads spun and
//! where) and two verdicts: *probable livelock* and *starvation*.
//!
//! The same samples also prove a deadlock stable (its threads never left
//! their waits): issue 16's `--confirm` is this mechanism, not a second one.

pub mod judge;
pub mod sample;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::graph::ThreadId;
use crate::inspect::Inspection;
use crate::runtimes::cpython::runtime::find_runtime_in;
use crate::runtimes::libc::Libc;
use crate::runtimes::{Confidence, Resource, SymbolLookup};
use crate::symbols::{ModuleCache, ProcessSymbols};
use judge::{CapturedWait, ProcessSamples};
use sample::{Sampler, WatchedLock};

/// Time between two samples. 25 ms gives 40 looks a second: enough to see
/// a GIL-sharing spinner run in most windows, while a sample of a handful
/// of threads costs well under a millisecond (bench/README.md).
pub const EVERY: Duration = Duration::from_millis(25);

/// What the watch found, for the verdict and the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Watched {
    /// The interval asked for (`--watch`), in milliseconds.
    pub asked_ms: u64,
    /// From the first to the last sample.
    pub span_ms: u64,
    pub samples: usize,
    /// Mean cost of one sample (all processes), in microseconds.
    pub sample_cost_us: u64,
    /// Every thread present at the first sample, sorted by `blocked_for_ms`
    /// (longest first), then by TID.
    pub threads: Vec<ThreadWatch>,
    pub livelocks: Vec<Livelock>,
    pub starvations: Vec<Starvation>,
    /// Each lock cycle of the verdict, looked at again over the watch
    /// (`--confirm`): parallel to the verdict's `deadlocks`. Filled by
    /// [`confirm_cycles`] once the verdict and the watch both exist.
    pub cycles: Vec<CycleSeen>,
}

/// A deadlock over the watch: did its threads stay in their waits?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CycleSeen {
    /// Index into the verdict's `deadlocks`.
    pub deadlock: usize,
    /// Every thread of the cycle was in its captured wait at every sample.
    pub stayed: bool,
    /// ... and none of them woke meanwhile (context switches unchanged).
    pub never_woke: bool,
    /// From the first to the last sample.
    pub watched_ms: u64,
    /// Threads of the cycle that were seen out of their wait, with when.
    pub left: Vec<LeftWait>,
    /// Threads of the cycle that stayed but woke (a signal, a spurious
    /// wake-up) and went back.
    pub woke: Vec<ThreadId>,
}

/// A thread seen out of the wait it was captured in, or gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftWait {
    pub thread: ThreadId,
    /// How long it was seen in the wait before that.
    pub after_ms: u64,
    /// It was in the wait at every sample, but the samples ended early:
    /// the thread or its process ended.
    pub ended: bool,
}

/// Look at each cycle of `deadlocks` through the watch: a deadlock whose
/// threads all stayed in their waits for the whole watch without waking is
/// proven stable rather than sampled once; one whose thread left did not
/// last (a timed wait ended, or the snapshot caught locks changing hands).
pub fn confirm_cycles(w: &mut Watched, deadlocks: &[crate::graph::Deadlock]) {
    w.cycles = deadlocks
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let seen: Vec<Option<&ThreadWatch>> = d
                .threads
                .iter()
                .map(|id| w.threads.iter().find(|t| t.thread == *id))
                .collect();
            // The last sample comes at or after the asked interval; one
            // that came two periods earlier means the samples stopped.
            let full = w.asked_ms.saturating_sub(2 * EVERY.as_millis() as u64);
            let left: Vec<LeftWait> = d
                .threads
                .iter()
                .zip(&seen)
                .filter_map(|(id, t)| {
                    let after_ms = t.and_then(|t| t.blocked_for_ms).unwrap_or(0);
                    let whole = t.is_some_and(|t| t.blocked_whole_watch);
                    (!whole || after_ms < full).then_some(LeftWait {
                        thread: *id,
                        after_ms,
                        ended: whole,
                    })
                })
                .collect();
            let woke: Vec<ThreadId> = d
                .threads
                .iter()
                .zip(&seen)
                .filter(|(_, t)| t.is_some_and(|t| t.blocked_whole_watch && !t.never_woke))
                .map(|(id, _)| *id)
                .collect();
            CycleSeen {
                deadlock: k,
                stayed: left.is_empty(),
                never_woke: left.is_empty() && woke.is_empty(),
                watched_ms: w.span_ms,
                left,
                woke,
            }
        })
        .collect();
}

/// One place a thread was seen at, and in how many samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub at: String,
    pub samples: usize,
}

/// One thread over the watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadWatch {
    pub thread: ThreadId,
    /// CPU time it used during the watch.
    pub cpu_ms: u64,
    pub cpu_share_pct: u32,
    /// Longest stretch between samples in which it got no CPU.
    pub longest_without_cpu_ms: u64,
    /// It ran the whole watch (see [`judge`]).
    pub spinning: bool,
    /// Where it was seen most (at most 5 places, most samples first).
    pub places: Vec<Place>,
    /// Samples in `sched_yield` or a sleep: a loop that backs off.
    pub backoff: Vec<(String, usize)>,
    /// The wait it was captured in, if any.
    pub waits_for: Option<Resource>,
    /// How long that wait was seen unchanged (same call, same futex) from
    /// the start of the watch.
    pub blocked_for_ms: Option<u64>,
    /// It was in that wait at every sample.
    pub blocked_whole_watch: bool,
    /// Its context-switch count did not move meanwhile: it never woke.
    pub never_woke: bool,
}

/// Two or more threads that spun in the same loop while the locks it names
/// never changed hands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Livelock {
    pub threads: Vec<ThreadId>,
    /// The Python function (`co_qualname`) and file they stayed in.
    pub function: String,
    pub file: String,
    /// The lines seen there.
    pub lines: Vec<u32>,
    /// `course_livelock.py lines 27–30`.
    pub region: String,
    pub locks: Vec<Resource>,
    /// Always inferred: "probable".
    pub confidence: Confidence,
    pub evidence: String,
}

/// Threads that waited for a lock the whole watch while others kept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Starvation {
    pub resource: Resource,
    pub waiters: Vec<ThreadId>,
    /// The threads that kept it, as far as known (see `confidence`).
    pub kept_by: Vec<ThreadId>,
    /// The shortest of the waiters' waits seen.
    pub waited_ms: u64,
    pub samples: usize,
    /// Exact when read from the lock (owner changed, reader count varied,
    /// waiters came and went), inferred for a Python Lock (no owner recorded).
    pub confidence: Confidence,
    pub evidence: String,
}

/// Watch every inspected process for `duration`. The target is never
/// stopped; a process that exits ends its part of the watch.
pub fn watch(inspections: &[Inspection], cache: &ModuleCache, duration: Duration) -> Watched {
    let mut samplers: Vec<(Sampler, Vec<CapturedWait>)> = inspections.iter().map(|ins| setup(ins, cache)).collect();
    settle(&samplers);
    let t0 = Instant::now();
    let mut samples: Vec<Vec<sample::Sample>> = vec![Vec::new(); samplers.len()];
    let mut cost_us: u64 = 0;
    let mut looks: u64 = 0;
    loop {
        let look = Instant::now();
        for (k, (s, _)) in samplers.iter_mut().enumerate() {
            if crate::proc::stat(s.pid).is_ok_and(|st| st.state != 'Z') {
                let sample = s.take(t0);
                cost_us += sample.cost_us;
                samples[k].push(sample);
            }
        }
        looks += 1;
        if look.duration_since(t0) >= duration {
            break;
        }
        let next = t0 + EVERY * looks as u32;
        let now = Instant::now();
        std::thread::sleep(if next > now {
            next - now
        } else {
            Duration::from_millis(1)
        });
    }
    let mut w = Watched {
        asked_ms: duration.as_millis() as u64,
        samples: samples.iter().map(|s| s.len()).max().unwrap_or(0),
        sample_cost_us: cost_us / looks.max(1),
        ..Default::default()
    };
    for ((s, waits), samples) in samplers.iter().zip(&samples) {
        if let (Some(a), Some(b)) = (samples.first(), samples.last()) {
            w.span_ms = w.span_ms.max((b.at_ms - a.at_ms).round() as u64);
        }
        let p = ProcessSamples {
            pid: s.pid,
            samples,
            locks: &s.locks,
            code_refs: &s.code_refs,
            waits,
        };
        let threads = judge::threads(&p);
        w.livelocks.extend(judge::livelocks(&p, &threads));
        w.starvations.extend(judge::starvations(&p, &threads));
        w.threads.extend(threads);
    }
    w.threads.sort_by(|a, b| {
        b.blocked_for_ms
            .unwrap_or(0)
            .cmp(&a.blocked_for_ms.unwrap_or(0))
            .then(a.thread.cmp(&b.thread))
    });
    w
}

/// The longest [`settle`] waits for the threads to go back into their waits.
const SETTLE: Duration = Duration::from_millis(200);

/// A thread the analysis stopped inside a blocking call goes back into it
/// after the detach (the kernel restarts the call), but on a loaded machine
/// it may first wait for a CPU: a sample taken then sees it `running` and
/// would end its "blocked for" at 0 ms (seen: the starved writer of
/// fixtures/c/rwlock_readers.c, beside two spinning fixtures). Wait until
/// every captured wait is back in its call, for at most [`SETTLE`]; a thread
/// that really left its wait only costs that delay.
fn settle(samplers: &[(Sampler, Vec<CapturedWait>)]) {
    let until = Instant::now() + SETTLE;
    for (s, waits) in samplers {
        for w in waits {
            while Instant::now() < until
                && crate::proc::task_stat(s.pid, w.tid).is_ok_and(|st| st.state != 'Z')
                && !judge::in_wait(&crate::proc::syscall(s.pid, w.tid).ok(), w)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The sampler for one process and the waits of its first snapshot.
fn setup(ins: &Inspection, cache: &ModuleCache) -> (Sampler, Vec<CapturedWait>) {
    let snap = &ins.snapshot;
    let mut locks: Vec<WatchedLock> = Vec::new();
    let mut add = |r: &Resource| -> usize {
        match locks
            .iter()
            .position(|l| l.resource.address == r.address && l.resource.pid == r.pid)
        {
            Some(k) => k,
            None => {
                locks.push(WatchedLock {
                    resource: r.clone(),
                    named_by_code: false,
                });
                locks.len() - 1
            }
        }
    };
    let mut waits = Vec::new();
    for (t, f) in snap.threads.iter().zip(&ins.findings) {
        for h in &f.holds {
            if h.resource.pid == snap.pid && h.resource.kind.has_owner() {
                add(&h.resource);
            }
        }
        let (Some(w), Some(sys)) = (&f.wait, t.syscall) else {
            continue;
        };
        let lock = (w.resource.pid == snap.pid && w.resource.kind.has_owner()).then(|| add(&w.resource));
        waits.push(CapturedWait {
            tid: t.tid,
            resource: w.resource.clone(),
            nr: sys.nr,
            futex: sys.args[0],
            lock,
        });
    }
    let python = if ins.python_version.is_some() {
        let symbols = ProcessSymbols::load(snap, cache);
        let memory = snap.memory();
        let sym: &dyn SymbolLookup = &symbols;
        find_runtime_in(sym, &crate::capture::ProcessMemory::new(snap.pid))
            .or_else(|_| find_runtime_in(sym, &memory))
            .ok()
            .flatten()
            .map(|f| (f.address, f.layout))
    } else {
        None
    };
    let ns_to_host: HashMap<i32, i32> = snap.threads.iter().map(|t| (t.ns_tid, t.tid)).collect();
    let glibc = ins.libc.name != Some(Libc::Musl);
    (Sampler::new(snap.pid, ns_to_host, python, locks, glibc), waits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Deadlock;

    fn thread(tid: i32, blocked_for_ms: u64, whole: bool, never_woke: bool) -> ThreadWatch {
        ThreadWatch {
            thread: (7, tid),
            cpu_ms: 0,
            cpu_share_pct: 0,
            longest_without_cpu_ms: 0,
            spinning: false,
            places: Vec::new(),
            backoff: Vec::new(),
            waits_for: None,
            blocked_for_ms: Some(blocked_for_ms),
            blocked_whole_watch: whole,
            never_woke,
        }
    }

    fn cycle_of(threads: Vec<ThreadWatch>) -> CycleSeen {
        let mut w = Watched {
            asked_ms: 2000,
            span_ms: 2010,
            threads,
            ..Default::default()
        };
        let d = Deadlock {
            threads: vec![(7, 1), (7, 2)],
            resources: Vec::new(),
            edges: Vec::new(),
            confidence: Confidence::Exact,
        };
        confirm_cycles(&mut w, &[d]);
        w.cycles.remove(0)
    }

    #[test]
    fn a_cycle_whose_threads_never_moved_is_confirmed() {
        let c = cycle_of(vec![thread(1, 2010, true, true), thread(2, 2010, true, true)]);
        assert!(
            c.stayed && c.never_woke && c.left.is_empty() && c.woke.is_empty(),
            "{c:?}"
        );
    }

    #[test]
    fn a_thread_that_woke_and_went_back_is_named() {
        let c = cycle_of(vec![thread(1, 2010, true, false), thread(2, 2010, true, true)]);
        assert!(c.stayed && !c.never_woke, "{c:?}");
        assert_eq!(c.woke, vec![(7, 1)]);
    }

    #[test]
    fn a_thread_that_left_or_ended_is_not_confirmed() {
        let c = cycle_of(vec![thread(1, 400, false, false), thread(2, 900, true, true)]);
        assert!(!c.stayed && !c.never_woke, "{c:?}");
        assert_eq!(
            c.left,
            vec![
                LeftWait {
                    thread: (7, 1),
                    after_ms: 400,
                    ended: false
                },
                LeftWait {
                    thread: (7, 2),
                    after_ms: 900,
                    ended: true
                }
            ]
        );
    }
}
