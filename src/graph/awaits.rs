//! Await cycles: asyncio tasks that wait for each other, directly or
//! through threads.
//!
//! Rule: tasks (and threads) each waiting for the next one can none of them
//! finish; only cancelling a task from outside breaks the cycle. A task
//! waits for another when it awaits its completion (the other lists it in
//! `fut_awaited_by`, which CPython maintains for `await task`, `gather`,
//! `TaskGroup`, `shield` and `wait`) or an `asyncio.Lock` the other holds in
//! an open `async with` block; for a thread when it awaits a future of the
//! thread's pool work item (`run_in_executor`). A thread waits for a task
//! when it blocks on a concurrent future that copies the task's result
//! (`run_coroutine_threadsafe(...).result()`), and for another thread as the
//! thread graph says (lock owners). Cycles of threads alone are the thread
//! graph's ([`super::analyze`]); here every cycle has a task in it.
//! A cycle one of whose tasks is inside `wait_for` or `asyncio.timeout` is
//! still reported, with the timeout that will break it.
//!
//! Veto, an early `continue` in [`await_cycles`]: a task whose step is
//! executing at the capture (the loop's running task) is in flux, so no
//! cycle through it is claimed.

use std::collections::HashMap;

use serde::Serialize;

use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::cpython::asyncio::{AsyncioState, Awaits, Node};
use crate::runtimes::{Confidence, ResourceKind};

/// A member of an await cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Member {
    Task {
        pid: Pid,
        /// The thread whose loop runs it (its creating thread), if known.
        tid: Option<Tid>,
        address: Addr,
        /// `Task.get_name()`.
        name: String,
    },
    Thread {
        pid: Pid,
        tid: Tid,
        /// The Python thread name, else the kernel's.
        name: String,
    },
}

impl Member {
    pub fn name(&self) -> &str {
        match self {
            Member::Task { name, .. } | Member::Thread { name, .. } => name,
        }
    }
}

/// Why one member waits for the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AwaitVia {
    /// A task awaits the next task's completion (directly, or through gather / TaskGroup / wait).
    TaskDone,
    /// A task waits for an `asyncio.Lock` the next task holds.
    Lock { lock: Addr, name: Option<String> },
    /// A task awaits the result of a work item the next thread (a pool worker) runs.
    Executor,
    /// A thread waits for a concurrent future that copies the next task's result.
    TaskResult,
    /// A thread waits for a resource the next thread holds (the thread graph's edge).
    Resource {
        resource_kind: ResourceKind,
        address: Addr,
        name: Option<String>,
    },
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
    /// The members in cycle order, starting at the least (tasks first, by address).
    pub members: Vec<Member>,
    /// `edges[i]` goes from `members[i]` to `members[(i+1) % len]`.
    pub edges: Vec<AwaitEdge>,
    /// The weakest edge's confidence.
    pub confidence: Confidence,
    /// Tasks and threads outside the cycle that wait for one of its members,
    /// directly or through others: they will never finish either.
    pub behind: Vec<Member>,
    /// A timeout that will end one member's wait (`wait_for`, `asyncio.timeout`), in words.
    pub breaks_by_timeout: Option<String>,
}

/// A thread-graph edge of one process: (from TID, to TID, what, confidence, evidence).
pub type ThreadEdge = (Tid, Tid, AwaitVia, Confidence, String);

/// One process's asyncio state with its threads' names and wait edges.
pub struct ProcessAwaits<'a> {
    pub pid: Pid,
    pub state: &'a AsyncioState,
    pub thread_names: HashMap<Tid, String>,
    pub thread_edges: Vec<ThreadEdge>,
    /// Threads whose wait has a timeout, with it in words.
    pub thread_timeouts: HashMap<Tid, String>,
}

fn rank(c: Confidence) -> u8 {
    match c {
        Confidence::Exact => 0,
        Confidence::Inferred => 1,
        Confidence::Unknown => 2,
    }
}

/// Every elementary await cycle (with at least one task) of each process.
pub fn await_cycles<'a>(processes: impl IntoIterator<Item = ProcessAwaits<'a>>) -> Vec<AwaitCycle> {
    let mut out = Vec::new();
    for p in processes {
        let state = p.state;
        // Nodes: every task, then every thread some edge names; sorted so a
        // cycle starts at its least node.
        let mut nodes: Vec<Node> = state.tasks().map(|t| Node::Task(t.address)).collect();
        for (a, b, ..) in &p.thread_edges {
            nodes.push(Node::Thread(*a));
            nodes.push(Node::Thread(*b));
        }
        for l in &state.links {
            nodes.push(l.from);
            nodes.push(l.to);
        }
        nodes.sort();
        nodes.dedup();
        let index = |n: Node| nodes.binary_search(&n).ok();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut edge_of: HashMap<(usize, usize), AwaitEdge> = HashMap::new();
        let mut add = |from: Node, to: Node, edge: AwaitEdge, adj: &mut Vec<Vec<usize>>| {
            let (Some(i), Some(j)) = (index(from), index(to)) else {
                return;
            };
            if i == j {
                return;
            }
            adj[i].push(j);
            edge_of.entry((i, j)).or_insert(edge);
        };
        let name_of = |a: Addr| {
            state
                .task(a)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| format!("{a:#x}"))
        };
        for t in state.tasks() {
            for &w in &t.awaited_by {
                let edge = AwaitEdge {
                    via: AwaitVia::TaskDone,
                    confidence: Confidence::Exact,
                    evidence: format!(
                        "task {:?} is in the awaited_by of task {:?} (CPython's record of who awaits it)",
                        name_of(w),
                        t.name
                    ),
                };
                add(Node::Task(w), Node::Task(t.address), edge, &mut adj);
            }
        }
        for t in state.tasks() {
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
            for h in state.tasks() {
                let Some(hold) = h.holds.iter().find(|x| x.lock == *address) else {
                    continue;
                };
                let edge = AwaitEdge {
                    via: AwaitVia::Lock {
                        lock: *address,
                        name: name.clone(),
                    },
                    confidence: hold.confidence,
                    evidence: hold.evidence.clone(),
                };
                add(Node::Task(t.address), Node::Task(h.address), edge, &mut adj);
            }
        }
        for l in &state.links {
            let via = match (l.from, l.to) {
                (Node::Task(_), Node::Thread(_)) => AwaitVia::Executor,
                (Node::Thread(_), Node::Task(_)) => AwaitVia::TaskResult,
                _ => continue,
            };
            let edge = AwaitEdge {
                via,
                confidence: l.confidence,
                evidence: l.evidence.clone(),
            };
            add(l.from, l.to, edge, &mut adj);
        }
        for (a, b, via, confidence, evidence) in &p.thread_edges {
            let edge = AwaitEdge {
                via: via.clone(),
                confidence: *confidence,
                evidence: evidence.clone(),
            };
            add(Node::Thread(*a), Node::Thread(*b), edge, &mut adj);
        }
        for a in &mut adj {
            a.sort_unstable();
            a.dedup();
        }
        let member = |i: usize| match nodes[i] {
            Node::Task(a) => Member::Task {
                pid: p.pid,
                tid: state.thread_of(a),
                address: a,
                name: name_of(a),
            },
            Node::Thread(tid) => Member::Thread {
                pid: p.pid,
                tid,
                name: p.thread_names.get(&tid).cloned().unwrap_or_else(|| tid.to_string()),
            },
        };
        let running: Vec<Addr> = state.threads.iter().filter_map(|t| t.running_task).collect();
        let (cycles, _) = super::elementary_cycles(&adj, super::MAX_CYCLES, super::MAX_CYCLE_EDGES);
        for cycle in cycles {
            let has_task = cycle.iter().any(|&i| matches!(nodes[i], Node::Task(_)));
            if !has_task {
                continue; // the thread graph reports it
            }
            if cycle
                .iter()
                .any(|&i| matches!(nodes[i], Node::Task(a) if running.contains(&a)))
            {
                continue;
            }
            let edges: Vec<AwaitEdge> = (0..cycle.len())
                .map(|k| edge_of[&(cycle[k], cycle[(k + 1) % cycle.len()])].clone())
                .collect();
            let confidence = edges
                .iter()
                .map(|e| e.confidence)
                .max_by_key(|&c| rank(c))
                .unwrap_or(Confidence::Exact);
            // Behind: every node with a path into the cycle (reverse reachability).
            let mut seen = vec![false; nodes.len()];
            for &c in &cycle {
                seen[c] = true;
            }
            let mut todo: Vec<usize> = cycle.clone();
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
            let breaks_by_timeout = cycle.iter().find_map(|&i| match nodes[i] {
                Node::Task(a) => state
                    .task(a)
                    .and_then(|t| t.timeout.as_ref().map(|to| format!("task {:?}: {to}", t.name))),
                Node::Thread(tid) => p.thread_timeouts.get(&tid).map(|to| format!("thread {tid}: {to}")),
            });
            out.push(AwaitCycle {
                members: cycle.iter().map(|&i| member(i)).collect(),
                edges,
                confidence,
                behind: behind.into_iter().map(member).collect(),
                breaks_by_timeout,
            });
        }
    }
    out
}
