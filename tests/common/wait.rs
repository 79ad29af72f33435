//! Waiting for a condition, never sleeping and hoping: every wait polls
//! every [`POLL`] and fails after [`TIMEOUT`] saying what it waited for and
//! what it saw last.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use super::procfs::{sample_thread, tids, ThreadSample};
use super::{POLL, TIMEOUT};

/// How long every awaited thread must look exactly the same (same syscall
/// and arguments, no context switch) before it counts as blocked for good.
/// A thread that only passes through a sleep (a GIL hand-off, a retry loop)
/// changes within this time.
pub const STABLE_FOR: Duration = Duration::from_millis(200);

/// Poll `probe` every [`POLL`] until `cond` holds for what it returned;
/// return that. Panics after [`TIMEOUT`] with `what` and the last value.
pub fn wait_until<T: Debug>(what: &str, mut probe: impl FnMut() -> T, cond: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = probe();
        if cond(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {TIMEOUT:?} waiting for {what}; last seen: {v:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for a condition that is just true or false.
pub fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    wait_until(what, cond, |&ok| ok);
}

/// Wait until every thread `threads` lists (as `(pid, tid)`; it is asked
/// again at every poll, and an empty list never settles) gives a `key`, and
/// each thread's key has stayed the same for `stable_for`. `Err` after
/// [`TIMEOUT`], with what each thread looked like last.
///
/// The one loop behind every "the fixture's threads are where they should
/// be" wait: the key says what "settled" means for that fixture.
pub fn wait_threads<K: PartialEq + Debug>(
    threads: impl Fn() -> Vec<(i32, i32)>,
    key: impl Fn(&ThreadSample) -> Option<K>,
    stable_for: Duration,
) -> Result<(), String> {
    // Per thread: the key its current unchanged streak started with.
    let mut streak: HashMap<(i32, i32), (K, Instant)> = HashMap::new();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = Instant::now();
        let list = threads();
        let mut all_stable = !list.is_empty();
        let mut last = Vec::new();
        for &(pid, tid) in &list {
            let sample = sample_thread(pid, tid);
            let k = sample.as_ref().ok().and_then(&key);
            let keep = matches!((&k, streak.get(&(pid, tid))), (Some(k), Some((first, _))) if k == first);
            if !keep {
                match k {
                    Some(k) => streak.insert((pid, tid), (k, now)),
                    None => streak.remove(&(pid, tid)),
                };
            }
            all_stable &=
                matches!(streak.get(&(pid, tid)), Some((_, since)) if now.duration_since(*since) >= stable_for);
            last.push(format!("  {pid}/{tid}: {sample:?}"));
        }
        if all_stable {
            return Ok(());
        }
        if now > deadline {
            return Err(format!(
                "threads not all settled (each for {stable_for:?}) after {TIMEOUT:?}; last seen:\n{}",
                if last.is_empty() {
                    "  (no threads listed)".to_string()
                } else {
                    last.join("\n")
                }
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// `(pid, tid)` of every thread of `pid` (none when it is gone).
pub fn threads_of(pid: i32) -> Vec<(i32, i32)> {
    tids(pid).into_iter().map(|t| (pid, t)).collect()
}

/// Wait until every thread of `pid` that `pick` selects sleeps in a futex
/// wait on the same futex (address, operation, value) for [`STABLE_FOR`]:
/// the process is frozen. A timed wait that wakes and waits again on the
/// same futex (a GIL hand-off) still counts as settled.
pub fn wait_futex_waits(pid: i32, pick: impl Fn(i32) -> bool) {
    let threads = || threads_of(pid).into_iter().filter(|&(_, t)| pick(t)).collect();
    wait_threads(threads, |s| s.futex(), STABLE_FOR)
        .unwrap_or_else(|e| panic!("threads of {pid} did not all settle in futex waits: {e}"));
}

/// Wait until `pid` has exactly `n` threads, each sleeping (state S) in a
/// system call: a fixture that blocks all its threads reached its steady
/// state.
pub fn wait_n_threads_sleeping(pid: i32, n: usize) {
    let threads = || Some(threads_of(pid)).filter(|t| t.len() == n).unwrap_or_default();
    let sleeping = |s: &ThreadSample| (s.state == 'S' && s.syscall_nr().is_some()).then_some(());
    wait_threads(threads, sleeping, Duration::ZERO)
        .unwrap_or_else(|e| panic!("all {n} threads of {pid} did not block: {e}"));
}

/// Wait until every thread in `tids` of `pid` is in system call `nr`.
pub fn wait_in_syscall(pid: i32, tids: &[i32], nr: i64) {
    let threads = || tids.iter().map(|&t| (pid, t)).collect();
    wait_threads(threads, |s| (s.syscall_nr() == Some(nr)).then_some(()), Duration::ZERO)
        .unwrap_or_else(|e| panic!("threads {tids:?} of {pid} not in syscall {nr}: {e}"));
}

/// Wait until `pid` has exactly `n` threads.
pub fn wait_for_thread_count(pid: i32, n: usize) {
    wait_until(
        &format!("process {pid} to have {n} threads"),
        || tids(pid).len(),
        |&have| have == n,
    );
}
