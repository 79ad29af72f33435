//! Await cycles: asyncio tasks that wait for each other.
//!
//! Rule: tasks each waiting for the next one — for it to finish (the next
//! task lists the waiter in `fut_awaited_by`, which CPython maintains for
//! `await task`, `gather`, `TaskGroup`, `shield` and `wait`), or for an
//! `asyncio.Lock` the next one holds in an open `async with` block — can
//! none of them finish: only cancelling one from outside breaks the cycle.
//! A cycle one of whose tasks is inside `wait_for` or `asyncio.timeout` is
//! still reported, with the timeout that will break it.
//!
//! Vetoes, each an early `continue` in [`await_cycles`]: a task whose step is
//! executing at the capture (the loop's running task) is in flux, so no
//! cycle through it is claimed.

use serde::Serialize;

use crate::runtimes::cpython::asyncio::{AsyncioState, Awaits};
use crate::runtimes::Confidence;

/// A task as the verdict names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRef {
    pub pid: i32,
    /// The thread whose loop runs it (its creating thread), if known.
    pub tid: Option<i32>,
    pub address: u64,
    pub name: String,
}

/// Why one task waits for the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AwaitVia {
    /// It awaits the next task's completion (directly, or through gather / TaskGroup / wait).
    TaskDone,
    /// It waits for an `asyncio.Lock` the next task holds.
    Lock { lock: u64, name: Option<String> },
}

/// `from` waits for `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwaitEdge {
    pub via: AwaitVia,
    pub confidence: Confidence,
    pub evidence: String,
}

/// One circular await.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwaitCycle {
    /// The tasks in cycle order, starting at the lowest address.
    pub tasks: Vec<TaskRef>,
    /// `edges[i]` goes from `tasks[i]` to `tasks[(i+1) % len]`.
    pub edges: Vec<AwaitEdge>,
    /// The weakest edge's confidence.
    pub confidence: Confidence,
    /// Tasks outside the cycle that wait for one of its tasks, directly or
    /// through others: they will never finish either.
    pub behind: Vec<TaskRef>,
    /// A timeout that will end one member's wait (`wait_for`, `asyncio.timeout`), in words.
    pub breaks_by_timeout: Option<String>,
}

/// Every elementary await cycle among the tasks of each process.
pub fn await_cycles<'a>(processes: impl IntoIterator<Item = (i32, &'a AsyncioState)>) -> Vec<AwaitCycle> {
    let mut out = Vec::new();
    for (pid, state) in processes {
        let tasks: Vec<_> = {
            let mut t: Vec<_> = state.tasks().collect();
            t.sort_by_key(|t| t.address);
            t
        };
        let index = |addr: u64| tasks.binary_search_by_key(&addr, |t| t.address).ok();
        let running: Vec<u64> = state.threads.iter().filter_map(|t| t.running_task).collect();
        // Edges: awaiter -> awaited (from the awaited task's awaited_by), and
        // lock waiter -> holder.
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
        let mut edge_of = std::collections::HashMap::new();
        for (j, t) in tasks.iter().enumerate() {
            for &w in &t.awaited_by {
                let Some(i) = index(w) else { continue };
                if i == j {
                    continue;
                }
                adj[i].push(j);
                edge_of.entry((i, j)).or_insert_with(|| AwaitEdge {
                    via: AwaitVia::TaskDone,
                    confidence: Confidence::Exact,
                    evidence: format!(
                        "task {:?} is in the awaited_by of task {:?} (CPython's record of who awaits it)",
                        tasks[i].name, t.name
                    ),
                });
            }
        }
        for (i, t) in tasks.iter().enumerate() {
            let Awaits::Primitive {
                primitive,
                address,
                name,
                ..
            } = &t.awaits
            else {
                continue;
            };
            if !primitive.has_owner() {
                continue;
            }
            for (j, h) in tasks.iter().enumerate() {
                let Some(hold) = h.holds.iter().find(|x| x.lock == *address) else {
                    continue;
                };
                if i == j {
                    continue;
                }
                adj[i].push(j);
                edge_of.entry((i, j)).or_insert_with(|| AwaitEdge {
                    via: AwaitVia::Lock {
                        lock: *address,
                        name: name.clone(),
                    },
                    confidence: hold.confidence,
                    evidence: hold.evidence.clone(),
                });
            }
        }
        for a in &mut adj {
            a.sort_unstable();
            a.dedup();
        }
        let (cycles, _) = super::elementary_cycles(&adj, super::MAX_CYCLES, super::MAX_CYCLE_EDGES);
        let task_ref = |i: usize| TaskRef {
            pid,
            tid: state.thread_of(tasks[i].address),
            address: tasks[i].address,
            name: tasks[i].name.clone(),
        };
        for cycle in cycles {
            if cycle.iter().any(|&i| running.contains(&tasks[i].address)) {
                continue;
            }
            let edges: Vec<AwaitEdge> = (0..cycle.len())
                .map(|k| edge_of[&(cycle[k], cycle[(k + 1) % cycle.len()])].clone())
                .collect();
            let confidence = edges
                .iter()
                .map(|e| e.confidence)
                .max_by_key(|c| match c {
                    Confidence::Exact => 0,
                    Confidence::Inferred => 1,
                    Confidence::Unknown => 2,
                })
                .unwrap_or(Confidence::Exact);
            // Behind: every task with a path into the cycle (reverse reachability).
            let mut seen = vec![false; tasks.len()];
            let mut todo: Vec<usize> = cycle.clone();
            for &c in &cycle {
                seen[c] = true;
            }
            let mut behind = Vec::new();
            while let Some(v) = todo.pop() {
                for (u, outs) in adj.iter().enumerate() {
                    if !seen[u] && outs.contains(&v) {
                        seen[u] = true;
                        behind.push(u);
                        todo.push(u);
                    }
                }
            }
            behind.sort_unstable();
            let breaks_by_timeout = cycle.iter().find_map(|&i| {
                tasks[i]
                    .timeout
                    .as_ref()
                    .map(|t| format!("task {:?}: {t}", tasks[i].name))
            });
            out.push(AwaitCycle {
                tasks: cycle.iter().map(|&i| task_ref(i)).collect(),
                edges,
                confidence,
                behind: behind.into_iter().map(task_ref).collect(),
                breaks_by_timeout,
            });
        }
    }
    out
}
