//! Pool starvation: a circular wait through a thread pool.
//!
//! A task queued in a pool can only be run by one of that pool's workers.
//! So a worker waiting for such a task waits for *all* of the pool's
//! workers at once (an AND-OR wait, not an edge to one owner), and when every
//! worker waits so, none will ever take a task again: a deadlock with the
//! pool in the cycle. The rule is [`starved`]; each reason a pool is not
//! starved is an early return saying so.
//!
//! What it does not count as a way out: another thread cancelling a queued
//! future (`Future.cancel`, `shutdown(cancel_futures=True)`) or setting its
//! result by hand. Both are possible in principle, as killing a thread is
//! for a lock cycle; a program that relies on them is not a pool user's
//! program. (docs/limits.md says so.)

use super::{ProcessFacts, ThreadId};
use crate::ids::{Pid, Tid};
use crate::runtimes::{ResourceKind, Sleep, TaskPlace, TaskPool, TaskWait, ThreadFindings};

/// A pool whose every worker waits for a task only its workers could run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolStarvation {
    pub pool: TaskPool,
    /// The pool's workers, sorted.
    pub workers: Vec<ThreadId>,
    /// What each worker waits for, parallel to `workers`.
    pub waits: Vec<TaskWait>,
    /// Threads outside the pool waiting for one of its tasks: blocked behind it.
    pub behind: Vec<TaskWait>,
}

impl PoolStarvation {
    /// "both workers", "all 3 workers", "the only worker".
    pub fn workers_phrase(&self) -> String {
        match self.workers.len() {
            1 => "the only worker".into(),
            2 => "both workers".into(),
            n => format!("all {n} workers"),
        }
    }
}

/// A pool is starved when every one of its workers waits, with no timeout,
/// for the result of one of the pool's own tasks that is still queued or run
/// by another of its workers, and the pool cannot start another worker.
pub fn starved<'a>(
    pool: &TaskPool,
    findings: &dyn Fn(Tid) -> Option<&'a ThreadFindings>,
) -> Result<PoolStarvation, String> {
    if pool.workers.is_empty() {
        return Err("no live worker".into());
    }
    let n = pool.workers.len() as u64;
    match pool.started_threads {
        Some(s) if s == n => {}
        Some(s) => {
            return Err(format!(
                "the pool started {s} worker threads but {n} were seen in the worker loop"
            ))
        }
        None => return Err("the pool's _threads could not be read".into()),
    }
    match pool.max_workers {
        Some(m) if n >= m => {}
        Some(m) => return Err(format!("the pool may still start a worker ({n} of max_workers {m})")),
        None => return Err("the pool's _max_workers could not be read".into()),
    }
    let mut waits = Vec::with_capacity(pool.workers.len());
    for &tid in &pool.workers {
        let Some(w) = pool.waits.iter().find(|w| w.tid == tid) else {
            return Err(format!("worker {tid} does not wait for a task of the pool"));
        };
        if let TaskPlace::RunBy { tid: runner } = w.place {
            if !pool.workers.contains(&runner) {
                return Err(format!("worker {tid} waits for a task run by {runner}, not a worker"));
            }
        }
        let Some(f) = findings(tid) else {
            return Err(format!("worker {tid} was not inspected"));
        };
        if !matches!(f.sleep, Sleep::Futex { .. }) || f.wait.as_ref().is_some_and(|w| !w.ends.untimed()) {
            return Err(format!("worker {tid} is not in an untimed futex wait"));
        }
        if f.wait.as_ref().map(|w| w.resource.kind) != Some(ResourceKind::PyCondition) {
            return Err(format!("worker {tid} is not waiting in Condition.wait"));
        }
        waits.push(w.clone());
    }
    Ok(PoolStarvation {
        workers: pool.workers.iter().map(|&t| ThreadId::new(pool.pid, t)).collect(),
        behind: pool
            .waits
            .iter()
            .filter(|w| !pool.workers.contains(&w.tid))
            .cloned()
            .collect(),
        waits,
        pool: pool.clone(),
    })
}

/// Every starved pool of the inspected processes.
pub fn starvations<'a>(
    facts: &[ProcessFacts],
    threads: impl IntoIterator<Item = (Pid, Tid, &'a ThreadFindings)>,
) -> Vec<PoolStarvation> {
    let threads: Vec<(Pid, Tid, &ThreadFindings)> = threads.into_iter().collect();
    let mut out = Vec::new();
    for p in facts {
        let findings = |tid: Tid| {
            threads
                .iter()
                .find(|(pid, t, _)| *pid == p.pid && *t == tid)
                .map(|(_, _, f)| *f)
        };
        for pool in &p.pools {
            if let Ok(s) = starved(pool, &findings) {
                out.push(s);
            }
        }
    }
    out
}
