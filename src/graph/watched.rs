//! What `--watch` saw, as the verdict holds it: the facts per thread, the
//! livelocks and starvations, and how each deadlock fared over the watch.
//! Plain data, filled by `crate::watch` (which samples the target and
//! judges the samples) and read by the verdict and the report; here, below
//! both, so that the verdict can hold it without the graph depending on
//! the sampler.

use serde::Serialize;

use super::ThreadId;
use crate::runtimes::{Confidence, Resource};

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
    /// `crate::watch::confirm_cycles` once the verdict and the watch both exist.
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
    /// It ran the whole watch (see `crate::watch::judge`).
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
