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

use crate::graph::ThreadId;
use crate::ids::Tid;
use crate::inspect::Inspection;
use crate::runtimes::cpython::runtime::find_runtime_in;
use crate::runtimes::libc::Libc;
use crate::runtimes::{Resource, SymbolLookup};
use crate::symbols::{ModuleCache, ProcessSymbols};
use judge::{CapturedWait, ProcessSamples};
use sample::{Sampler, WatchedLock};

/// Time between two samples. 25 ms gives 40 looks a second: enough to see
/// a GIL-sharing spinner run in most windows, while a sample of a handful
/// of threads costs well under a millisecond (bench/README.md).
pub const EVERY: Duration = Duration::from_millis(25);

pub use crate::graph::watched::{CycleSeen, LeftWait, Livelock, Place, Starvation, ThreadWatch, Watched};

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

/// Watch every inspected process for `duration`. The target is never
/// stopped; a process that exits ends its part of the watch.
pub fn watch(inspections: &[Inspection], cache: &ModuleCache, duration: Duration) -> Watched {
    let mut samplers: Vec<(Sampler, Vec<CapturedWait>)> =
        inspections.iter().filter_map(|ins| setup(ins, cache)).collect();
    settle(&samplers);
    let t0 = Instant::now();
    let mut samples: Vec<Vec<sample::Sample>> = vec![Vec::new(); samplers.len()];
    let mut cost_us: u64 = 0;
    let mut looks: u64 = 0;
    loop {
        let look = Instant::now();
        for (k, (s, _)) in samplers.iter_mut().enumerate() {
            if s.live().is_alive() {
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
                && s.live().thread_stat(w.tid.get()).is_ok_and(|st| st.state != 'Z')
                && !judge::in_wait(&s.live().thread_syscall(w.tid.get()).ok(), w)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The sampler for one process and the waits of its first snapshot;
/// `None` for a core file (one instant: nothing to watch).
fn setup(ins: &Inspection, cache: &ModuleCache) -> Option<(Sampler, Vec<CapturedWait>)> {
    let snap = &ins.snapshot;
    let live = snap.live()?;
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
        find_runtime_in(sym, &live.memory())
            .or_else(|_| find_runtime_in(sym, &memory))
            .ok()
            .flatten()
            .map(|f| (f.address, f.layout))
    } else {
        None
    };
    let ns_to_host: HashMap<i32, Tid> = snap.threads.iter().map(|t| (t.ns_tid, t.tid)).collect();
    let glibc = ins.libc.name != Some(Libc::Musl);
    Some((Sampler::new(live, ns_to_host, python, locks, glibc), waits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Deadlock;
    use crate::ids::{Pid, Tid};
    use crate::runtimes::Confidence;

    fn thread(tid: i32, blocked_for_ms: u64, whole: bool, never_woke: bool) -> ThreadWatch {
        ThreadWatch {
            thread: ThreadId::new(Pid(7), Tid(tid)),
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
            threads: vec![ThreadId::new(Pid(7), Tid(1)), ThreadId::new(Pid(7), Tid(2))],
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
        assert_eq!(c.woke, vec![ThreadId::new(Pid(7), Tid(1))]);
    }

    #[test]
    fn a_thread_that_left_or_ended_is_not_confirmed() {
        let c = cycle_of(vec![thread(1, 400, false, false), thread(2, 900, true, true)]);
        assert!(!c.stayed && !c.never_woke, "{c:?}");
        assert_eq!(
            c.left,
            vec![
                LeftWait {
                    thread: ThreadId::new(Pid(7), Tid(1)),
                    after_ms: 400,
                    ended: false
                },
                LeftWait {
                    thread: ThreadId::new(Pid(7), Tid(2)),
                    after_ms: 900,
                    ended: true
                }
            ]
        );
    }
}
