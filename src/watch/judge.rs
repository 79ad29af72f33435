//! The rules that turn a watch's samples into facts and verdicts. Pure
//! functions of the samples (no /proc, no memory), so each rule is tested on
//! made-up samples as well as on the fixtures.
//!
//! - **blocked for**: how long a thread was seen in the wait it was
//!   captured in (same system call, same futex), from the first sample on.
//! - **spinning**: the thread used at least [`SPIN_CPU_SHARE`] of a CPU
//!   over the watch, or was runnable at every sample (a `sched_yield` loop
//!   on a busy machine uses almost no CPU but never sleeps), and never went
//!   without CPU for longer than [`max_idle_ms`]: it ran the whole time.
//! - **probable livelock**: two or more spinning threads stayed in the same
//!   Python function (at least [`REGION_SHARE`] of their samples) whose code
//!   names a lock, and none of those locks changed state in any sample.
//!   A pool that makes progress leaves its loop for other calls, or touches
//!   its locks: it is not one.
//! - **starvation**: a thread stayed in its wait on a lock for the whole
//!   watch without waking once (nobody let it compete: a waiter woken at a
//!   release may have had the lock for a moment between samples), the lock
//!   was held at every sample, and others kept it: the owner
//!   field changed, the reader count varied above zero, other waiters came
//!   and went (all read from the lock: exact), or, for a Python Lock that
//!   records no owner, threads whose code uses the lock's name kept running
//!   (inferred).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::sample::{CodeRefs, Sample, WatchedLock};
use super::{Livelock, Place, Starvation, ThreadWatch};
use crate::capture::SYS_RESTART_SYSCALL;
use crate::graph::ThreadId;
use crate::ids::{Pid, Tid};
use crate::proc::SyscallLine;
use crate::runtimes::{Confidence, Resource, ResourceKind};

/// Share of one CPU a thread must use over the watch to count as spinning.
/// Low on purpose: on a loaded 2-CPU machine two GIL-sharing spinners were
/// measured at 8% each. What makes a spinner is that it got CPU in every
/// stretch ([`max_idle_ms`]) and was not asleep in a call that waits for
/// time or input at most samples (a poller sleeping 10 ms also gets a
/// little CPU in every stretch).
pub const SPIN_CPU_SHARE: f64 = 0.03;
/// Share of its Python samples a spinning thread must spend in one function
/// for a livelock ("stayed in the same region").
pub const REGION_SHARE: f64 = 0.9;

/// Longest stretch without CPU a spinning thread may have: a fifth of the
/// watch, at least 100 ms (a loaded machine can keep a runnable thread off
/// CPU for tens of milliseconds; a GIL waiter sleeps 5 ms at a time).
pub fn max_idle_ms(span_ms: f64) -> f64 {
    (span_ms / 5.0).max(100.0)
}

/// A wait from the first snapshot, as the watch checks it.
#[derive(Debug, Clone)]
pub struct CapturedWait {
    pub tid: Tid,
    pub resource: Resource,
    /// System call number and first argument (the futex) it was captured in.
    pub nr: i64,
    pub futex: u64,
    /// Index of the resource in the sampler's locks.
    pub lock: Option<usize>,
}

/// Everything the judges look at for one process.
pub struct ProcessSamples<'a> {
    pub pid: Pid,
    pub samples: &'a [Sample],
    pub locks: &'a [WatchedLock],
    pub code_refs: &'a HashMap<u64, CodeRefs>,
    pub waits: &'a [CapturedWait],
}

const SYS_SCHED_YIELD: i64 = 24;
const SYS_FUTEX: i64 = 202;
const SYS_NANOSLEEP: i64 = 35;
const SYS_CLOCK_NANOSLEEP: i64 = 230;

/// In the captured wait: the same call (or its restart) on the same futex.
pub(crate) fn in_wait(line: &Option<SyscallLine>, w: &CapturedWait) -> bool {
    matches!(line, Some(SyscallLine::InSyscall { nr, args, .. })
        if (*nr == w.nr || *nr == SYS_RESTART_SYSCALL) && args[0] == w.futex)
}

/// Per-thread facts: CPU used, spinning, where it stayed, blocked for.
pub fn threads(p: &ProcessSamples) -> Vec<ThreadWatch> {
    let Some(first) = p.samples.first() else {
        return Vec::new();
    };
    let last = p.samples.last().unwrap_or(first);
    let span_ms = (last.at_ms - first.at_ms).max(0.0);
    let mut out = Vec::new();
    for t0 in &first.threads {
        let tid = t0.tid;
        let seen: Vec<(f64, &super::sample::ThreadSample)> = p
            .samples
            .iter()
            .filter_map(|s| s.threads.iter().find(|t| t.tid == tid).map(|t| (s.at_ms, t)))
            .collect();
        let (cpu_first, cpu_last) = (
            seen.first().and_then(|s| s.1.cpu_ns),
            seen.last().and_then(|s| s.1.cpu_ns),
        );
        let cpu_ms = match (cpu_first, cpu_last) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e6,
            _ => 0.0,
        };
        // Longest stretch between two samples in which it got no CPU.
        let mut idle_ms: f64 = 0.0;
        let mut idle_since: Option<f64> = None;
        for w in seen.windows(2) {
            let ran = match (w[0].1.cpu_ns, w[1].1.cpu_ns) {
                (Some(a), Some(b)) => b > a,
                _ => false,
            };
            if ran {
                idle_since = None;
            } else {
                let since = *idle_since.get_or_insert(w[0].0);
                idle_ms = idle_ms.max(w[1].0 - since);
            }
        }
        let share = if span_ms > 0.0 { cpu_ms / span_ms } else { 0.0 };
        // In a system call other than sched_yield: sleeping, polling,
        // reading, waiting for a lock. A Python thread's futex samples do
        // not count: two threads that spin in Python share the GIL and each
        // waits for it about half the time (a thread never seen in Python
        // code that sleeps on a futex at most samples is just waiting).
        let python = seen.iter().any(|(_, s)| s.py.is_some());
        let asleep = seen
            .iter()
            .filter(|(_, s)| {
                matches!(s.syscall, Some(SyscallLine::InSyscall { nr, .. })
                    if nr != SYS_SCHED_YIELD && !(python && nr == SYS_FUTEX))
            })
            .count();
        // Runnable (`R`) at every sample: it never slept. A loop around
        // sched_yield on a loaded machine gets the CPU in every stretch but
        // gives it back at once (measured: 1 ms of CPU in 1.5 s beside two
        // compilers), so its share says nothing; that it never slept does.
        let runnable = seen.iter().all(|(_, s)| s.state == 'R');
        let spinning = seen.len() == p.samples.len()
            && p.samples.len() >= 3
            && (share >= SPIN_CPU_SHARE || runnable)
            && idle_ms <= max_idle_ms(span_ms)
            && asleep * 2 < seen.len();
        // Where it was: Python places, else the system call it was in.
        let mut hist: BTreeMap<String, usize> = BTreeMap::new();
        let mut backoff: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (_, s) in &seen {
            let at = match (&s.py, &s.syscall) {
                (Some(py), _) => format!(
                    "{} ({}:{})",
                    py.function,
                    short_file(&py.file),
                    py.line.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
                ),
                (None, Some(SyscallLine::InSyscall { nr, .. })) => {
                    format!("in {}", crate::syscalls::name(*nr).unwrap_or("a system call"))
                }
                (None, _) => "running (native code: not located without a stop)".into(),
            };
            *hist.entry(at).or_default() += 1;
            if let Some(SyscallLine::InSyscall { nr, .. }) = s.syscall {
                let kind = match nr {
                    SYS_SCHED_YIELD => Some("sched_yield"),
                    SYS_NANOSLEEP | SYS_CLOCK_NANOSLEEP => Some("sleep"),
                    _ => None,
                };
                if let Some(k) = kind {
                    *backoff.entry(k).or_default() += 1;
                }
            }
        }
        let mut places: Vec<Place> = hist.into_iter().map(|(at, samples)| Place { at, samples }).collect();
        places.sort_by(|a, b| b.samples.cmp(&a.samples).then(a.at.cmp(&b.at)));
        places.truncate(5);
        // Blocked for: the captured wait, seen unchanged from the first sample on.
        let wait = p.waits.iter().find(|w| w.tid == tid);
        let (blocked_for_ms, never_woke, whole_watch) = match wait {
            None => (None, false, false),
            Some(w) => {
                let still = seen.iter().take_while(|(_, s)| in_wait(&s.syscall, w)).count();
                let whole = still == p.samples.len() && still > 0;
                let until = if still == 0 { 0.0 } else { seen[still - 1].0 };
                let switches: BTreeSet<Option<u64>> = seen[..still].iter().map(|(_, s)| s.switches).collect();
                (
                    Some(until.round() as u64),
                    still > 0 && switches.len() == 1 && !switches.contains(&None),
                    whole,
                )
            }
        };
        out.push(ThreadWatch {
            thread: ThreadId::new(p.pid, tid),
            cpu_ms: cpu_ms.round() as u64,
            cpu_share_pct: (share * 100.0).round() as u32,
            longest_without_cpu_ms: idle_ms.round() as u64,
            spinning,
            places,
            backoff: backoff.into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
            waits_for: wait.map(|w| w.resource.clone()),
            blocked_for_ms,
            blocked_whole_watch: whole_watch,
            never_woke,
        });
    }
    out
}

fn short_file(f: &str) -> &str {
    f.rsplit('/').next().unwrap_or(f)
}

/// The function a thread stayed in (at least [`REGION_SHARE`] of its
/// samples with a Python place), and the lines seen there.
fn region(p: &ProcessSamples, tid: Tid) -> Option<(u64, String, String, BTreeSet<u32>)> {
    let places: Vec<_> = p
        .samples
        .iter()
        .filter_map(|s| s.threads.iter().find(|t| t.tid == tid)?.py.as_ref())
        .collect();
    if places.len() * 2 < p.samples.len() {
        return None; // its Python stack was not read often enough to say
    }
    let mut by_code: HashMap<u64, usize> = HashMap::new();
    for pl in &places {
        *by_code.entry(pl.code).or_default() += 1;
    }
    let (&code, &n) = by_code.iter().max_by_key(|(_, n)| **n)?;
    if (n as f64) < REGION_SHARE * places.len() as f64 {
        return None;
    }
    let some = places.iter().find(|pl| pl.code == code)?;
    let lines = places
        .iter()
        .filter(|pl| pl.code == code)
        .filter_map(|pl| pl.line)
        .collect();
    Some((code, some.function.to_string(), some.file.to_string(), lines))
}

/// Probable livelocks: see the module documentation.
pub fn livelocks(p: &ProcessSamples, threads: &[ThreadWatch]) -> Vec<Livelock> {
    let mut groups: BTreeMap<u64, (String, String, Vec<Tid>, BTreeSet<u32>)> = BTreeMap::new();
    for t in threads.iter().filter(|t| t.spinning) {
        if let Some((code, function, file, lines)) = region(p, t.thread.tid) {
            let g = groups
                .entry(code)
                .or_insert_with(|| (function, file, Vec::new(), BTreeSet::new()));
            g.2.push(t.thread.tid);
            g.3.extend(lines);
        }
    }
    let mut out = Vec::new();
    for (code, (function, file, tids, lines)) in groups {
        if tids.len() < 2 {
            continue;
        }
        let Some(refs) = p.code_refs.get(&code) else { continue };
        if refs.locks.is_empty() {
            continue; // no lock to be polite about: a busy loop, not a livelock it can name
        }
        // Every lock the loop names must have stayed as it was.
        let mut unchanged = Vec::new();
        let mut all_still = true;
        for &k in &refs.locks {
            let states: BTreeSet<(Option<u64>, Option<bool>)> = p
                .samples
                .iter()
                .filter_map(|s| s.locks.get(k))
                .map(|l| (l.word, l.held))
                .collect();
            let read = p
                .samples
                .iter()
                .filter(|s| s.locks.get(k).is_some_and(|l| l.word.is_some()))
                .count();
            if states.len() != 1 || read * 2 < p.samples.len() {
                all_still = false;
                break;
            }
            let held = states.iter().next().and_then(|s| s.1);
            unchanged.push((p.locks[k].resource.clone(), held, read));
        }
        if !all_still {
            continue;
        }
        let (lo, hi) = (lines.first().copied(), lines.last().copied());
        let span = match (lo, hi) {
            (Some(a), Some(b)) if a == b => format!("line {a}"),
            (Some(a), Some(b)) => format!("lines {a}–{b}"),
            _ => "unknown lines".into(),
        };
        let lock_words: Vec<String> = unchanged
            .iter()
            .map(|(r, held, n)| {
                format!(
                    "`{}` stayed {} in all {n} samples",
                    r.name.as_deref().unwrap_or("?"),
                    match held {
                        Some(true) => "locked",
                        Some(false) => "unlocked",
                        None => "unchanged",
                    }
                )
            })
            .collect();
        out.push(Livelock {
            threads: tids.iter().map(|&t| ThreadId::new(p.pid, t)).collect(),
            function,
            file: file.clone(),
            lines: lines.into_iter().collect(),
            region: format!("{} {span}", short_file(&file)),
            locks: unchanged.into_iter().map(|(r, ..)| r).collect(),
            confidence: Confidence::Inferred,
            evidence: format!(
                "each ran the whole watch in this loop, which names the lock(s); none of them changed hands: {}",
                lock_words.join(", ")
            ),
        });
    }
    out
}

/// Starvations: see the module documentation. One entry per lock, with all
/// its starved waiters.
pub fn starvations(p: &ProcessSamples, threads: &[ThreadWatch]) -> Vec<Starvation> {
    let n = p.samples.len();
    if n < 3 {
        return Vec::new();
    }
    let mut out: Vec<Starvation> = Vec::new();
    for w in p.waits {
        if !w.resource.kind.has_owner() || matches!(w.resource.kind, ResourceKind::Gil | ResourceKind::Thread) {
            continue;
        }
        let Some(tw) = threads.iter().find(|t| t.thread.tid == w.tid) else {
            continue;
        };
        let Some(k) = w.lock else { continue };
        let states: Vec<_> = p.samples.iter().filter_map(|s| s.locks.get(k)).collect();
        if states.len() < n || !states.iter().all(|s| s.held == Some(true)) {
            continue; // free at some sample (or unreadable): not kept from it
        }
        if !(tw.blocked_whole_watch && tw.never_woke) {
            // A waiter that woke may have had the lock for a moment between
            // two samples: an unfair lock (glibc's default mutex) wakes one
            // at each release, and one that got in for microseconds looks
            // the same from outside as one beaten to it (docs/limits.md).
            continue;
        }
        let waiters: BTreeSet<Tid> = p.waits.iter().filter(|x| x.lock == Some(k)).map(|x| x.tid).collect();
        // Others' turns, read from the lock.
        let owners: BTreeSet<u64> = states.iter().filter_map(|s| s.owner).collect();
        let readers: BTreeSet<u32> = states.iter().filter_map(|s| s.readers).collect();
        let came_and_went: BTreeSet<Tid> = p
            .samples
            .iter()
            .flat_map(|s| s.threads.iter())
            .filter(|t| !waiters.contains(&t.tid) && in_wait(&t.syscall, w))
            .map(|t| t.tid)
            .collect();
        let others_ran: Vec<Tid> = threads
            .iter()
            .filter(|t| !waiters.contains(&t.thread.tid) && t.cpu_ms > 0)
            .map(|t| t.thread.tid)
            .collect();
        let name = w
            .resource
            .name
            .as_deref()
            .map(|n| n.rsplit('.').next().unwrap_or(n).to_string());
        let users: Vec<Tid> = match &name {
            Some(name) => others_ran
                .iter()
                .copied()
                .filter(|&tid| uses_name(p, tid, name))
                .collect(),
            None => Vec::new(),
        };
        let (confidence, evidence, kept_by) = if owners.len() >= 2 {
            // An RLock records its owner's thread ident (an address); the
            // others record a TID.
            let rlock = w.resource.kind == ResourceKind::PyRLock;
            let list: Vec<String> = owners
                .iter()
                .map(|o| if rlock { format!("{o:#x}") } else { o.to_string() })
                .collect();
            let tids: Vec<Tid> = owners.iter().filter_map(|&o| i32::try_from(o).ok().map(Tid)).collect();
            let changes = states.windows(2).filter(|s| s[0].owner != s[1].owner).count();
            (
                Confidence::Exact,
                format!(
                    "held at all {n} samples; its owner field changed at least {changes} times, between {} owners ({})",
                    owners.len(),
                    list.join(", ")
                ),
                if w.resource.kind == ResourceKind::PyRLock {
                    users.clone()
                } else {
                    tids
                },
            )
        } else if readers.iter().all(|&r| r > 0) && readers.len() >= 2 {
            let (lo, hi) = (
                readers.first().copied().unwrap_or(0),
                readers.last().copied().unwrap_or(0),
            );
            (
                Confidence::Exact,
                format!(
                    "read-locked at all {n} samples by {lo} to {hi} readers at a time (the reader count changed: \
                     readers came and went; glibc records no reader's identity: \
                     the threads named are those that ran meanwhile)"
                ),
                others_ran.clone(),
            )
        } else if !came_and_went.is_empty() {
            (
                Confidence::Exact,
                format!(
                    "held at all {n} samples while other waiters came and went (threads {})",
                    came_and_went
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                came_and_went.iter().copied().collect(),
            )
        } else if w.resource.kind == ResourceKind::PyLock && !users.is_empty() {
            (
                Confidence::Inferred,
                format!(
                    "locked at all {n} samples while the threads whose code uses `{}` kept running (a Lock records \
                     no owner: who held it at each sample is not known)",
                    name.as_deref().unwrap_or("?")
                ),
                users.clone(),
            )
        } else {
            continue; // held throughout, but nothing shows that it changed hands
        };
        let waited_ms = tw.blocked_for_ms.unwrap_or(0);
        let evidence = format!(
            "{evidence}; thread {} never woke meanwhile (its context switch count did not move): it was never let \
             compete for it",
            w.tid
        );
        match out
            .iter_mut()
            .find(|s| s.resource.address == w.resource.address && s.resource.pid == w.resource.pid)
        {
            Some(s) => {
                s.waiters.push(ThreadId::new(p.pid, w.tid));
                s.waited_ms = s.waited_ms.min(waited_ms);
            }
            None => out.push(Starvation {
                resource: w.resource.clone(),
                waiters: vec![ThreadId::new(p.pid, w.tid)],
                kept_by: kept_by
                    .into_iter()
                    .map(|t| ThreadId::new(p.pid, t))
                    .collect::<Vec<ThreadId>>(),
                waited_ms,
                samples: n,
                confidence,
                evidence,
            }),
        }
    }
    out
}

/// Whether any Python code `tid` was seen running names `name`.
fn uses_name(p: &ProcessSamples, tid: Tid, name: &str) -> bool {
    p.samples
        .iter()
        .filter_map(|s| s.threads.iter().find(|t| t.tid == tid)?.py.as_ref())
        .flat_map(|pl| pl.stack_codes.iter())
        .any(|c| p.code_refs.get(c).is_some_and(|r| r.names.iter().any(|n| n == name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Addr, Pid, Tid};
    use crate::watch::sample::{LockSample, ThreadSample};

    /// One thread over `n` samples 25 ms apart: `cpu_ns(k)`, `state(k)`.
    fn samples(n: usize, cpu_ns: impl Fn(usize) -> u64, state: impl Fn(usize) -> char) -> Vec<Sample> {
        (0..n)
            .map(|k| Sample {
                at_ms: k as f64 * 25.0,
                threads: vec![ThreadSample {
                    tid: Tid(7),
                    state: state(k),
                    cpu_ns: Some(cpu_ns(k)),
                    switches: Some(k as u64),
                    syscall: Some(SyscallLine::Running),
                    py: None,
                }],
                locks: Vec::new(),
                cost_us: 0,
            })
            .collect()
    }

    fn spinning(s: &[Sample]) -> bool {
        let refs = HashMap::new();
        let p = ProcessSamples {
            pid: Pid(7),
            samples: s,
            locks: &[],
            code_refs: &refs,
            waits: &[],
        };
        threads(&p)[0].spinning
    }

    /// A native thread that sleeps in futex waits (a semaphore, its turn)
    /// and nanosleep, waking every 10 ms: CPU in every stretch, but asleep
    /// at most samples. (A Python thread's futex samples are the GIL.)
    #[test]
    fn a_native_thread_asleep_on_futexes_is_not_spinning() {
        let mut s = samples(60, |k| k as u64 * 2_500_000, |k| if k % 6 == 0 { 'R' } else { 'S' });
        for (k, x) in s.iter_mut().enumerate() {
            let nr = if k % 2 == 0 { SYS_FUTEX } else { SYS_CLOCK_NANOSLEEP };
            if k % 6 != 0 {
                x.threads[0].syscall = Some(SyscallLine::InSyscall {
                    nr,
                    args: [0x1000, 0, 0, 0, 0, 0],
                    sp: 0,
                    pc: 0,
                });
            }
        }
        assert!(!spinning(&s));
    }

    /// Thread 8 waits on a mutex at 0x5000 that thread 9 and 10 take in
    /// turn, held at every sample; `switches(k)`: its context switches.
    fn starved(switches: impl Fn(usize) -> u64) -> Vec<Starvation> {
        let futex = 0x5000;
        let s: Vec<Sample> = (0..60)
            .map(|k| Sample {
                at_ms: k as f64 * 25.0,
                threads: vec![
                    ThreadSample {
                        tid: Tid(8),
                        state: 'S',
                        cpu_ns: Some(1000),
                        switches: Some(switches(k)),
                        syscall: Some(SyscallLine::InSyscall {
                            nr: SYS_FUTEX,
                            args: [futex, 0, 2, 0, 0, 0],
                            sp: 0,
                            pc: 0,
                        }),
                        py: None,
                    },
                    ThreadSample {
                        tid: Tid(9 + (k as i32 % 2)),
                        state: 'S',
                        cpu_ns: Some(k as u64 * 1000),
                        switches: Some(k as u64),
                        syscall: None,
                        py: None,
                    },
                ],
                locks: vec![LockSample {
                    held: Some(true),
                    owner: Some(9 + (k as u64 / 4) % 2),
                    readers: None,
                    word: Some(2),
                }],
                cost_us: 0,
            })
            .collect();
        let resource = Resource {
            kind: ResourceKind::Mutex,
            address: Addr(futex),
            pid: Pid(7),
            name: Some("table".into()),
            shared_key: None,
        };
        let waits = [CapturedWait {
            tid: Tid(8),
            resource: resource.clone(),
            nr: SYS_FUTEX,
            futex,
            lock: Some(0),
        }];
        let locks = [WatchedLock {
            resource,
            named_by_code: false,
        }];
        let refs = HashMap::new();
        let p = ProcessSamples {
            pid: Pid(7),
            samples: &s,
            locks: &locks,
            code_refs: &refs,
            waits: &waits,
        };
        starvations(&p, &threads(&p))
    }

    #[test]
    fn a_waiter_never_woken_while_others_take_the_lock_is_starved() {
        let found = starved(|_| 40);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].waiters, vec![ThreadId::new(Pid(7), Tid(8))]);
        assert_eq!(
            found[0].kept_by,
            vec![ThreadId::new(Pid(7), Tid(9)), ThreadId::new(Pid(7), Tid(10))]
        );
        assert_eq!(found[0].confidence, Confidence::Exact);
        assert!(
            found[0]
                .evidence
                .contains("changed at least 14 times, between 2 owners (9, 10)"),
            "{}",
            found[0].evidence
        );
    }

    /// Woken (its switch count moved) but seen in the wait at every sample:
    /// it may have had the lock between two samples. Not called starved.
    #[test]
    fn a_waiter_that_woke_is_not_called_starved() {
        assert!(starved(|k| 40 + k as u64 / 10).is_empty());
    }

    #[test]
    fn a_yield_loop_on_a_busy_machine_is_spinning() {
        // 20 µs of CPU per 25 ms (0.08%), runnable at every sample.
        assert!(spinning(&samples(60, |k| k as u64 * 20_000, |_| 'R')));
    }

    #[test]
    fn a_thread_with_little_cpu_that_sleeps_is_not_spinning() {
        // Same CPU, but asleep at most samples (a poller between its looks).
        assert!(!spinning(&samples(
            60,
            |k| k as u64 * 20_000,
            |k| if k % 4 == 0 { 'R' } else { 'S' }
        )));
    }

    #[test]
    fn a_runnable_thread_that_got_no_cpu_is_not_spinning() {
        // Runnable but off CPU for the whole watch: it did not run.
        assert!(!spinning(&samples(60, |_| 5_000_000, |_| 'R')));
    }
}
