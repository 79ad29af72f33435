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

use super::{Arc, Node, TaskId, ThreadId, Via};
use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::cpython::asyncio::{AsyncioState, Awaits, LinkEnd};
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

/// One process's asyncio state with its threads' names and timeouts.
pub struct ProcessAwaits<'a> {
    pub pid: Pid,
    pub state: &'a AsyncioState,
    pub thread_names: HashMap<Tid, String>,
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

/// The arcs of one process's awaits, for [`super::WaitGraph::add_awaits`]:
/// a task on each task that lists it in `awaited_by`, a task on the holder
/// of the `asyncio.Lock` it waits for, and the runtime's links between
/// tasks and threads (a pool work item, a task's result).
pub(super) fn arcs(p: &ProcessAwaits) -> Vec<Arc> {
    let state = p.state;
    let task = |address: Addr| Node::Task(TaskId { pid: p.pid, address });
    let end = |e: LinkEnd| match e {
        LinkEnd::Task(a) => task(a),
        LinkEnd::Thread(tid) => Node::Thread(ThreadId::new(p.pid, tid)),
    };
    let name_of = |a: Addr| {
        state
            .task(a)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| format!("{a:#x}"))
    };
    let mut out = Vec::new();
    let mut add = |from: Node, to: Node, edge: AwaitEdge| {
        if from != to {
            out.push(Arc {
                from,
                to,
                via: Via::Await(edge),
            });
        }
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
            add(task(w), task(t.address), edge);
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
            add(task(t.address), task(h.address), edge);
        }
    }
    for l in &state.links {
        let via = match (l.from, l.to) {
            (LinkEnd::Task(_), LinkEnd::Thread(_)) => AwaitVia::Executor,
            (LinkEnd::Thread(_), LinkEnd::Task(_)) => AwaitVia::TaskResult,
            _ => continue,
        };
        let edge = AwaitEdge {
            via,
            confidence: l.confidence,
            evidence: l.evidence.clone(),
        };
        add(end(l.from), end(l.to), edge);
    }
    out
}

/// Every elementary await cycle: a cycle of the graph's awaits and locks
/// with at least one task in it (cycles of threads alone are
/// [`super::WaitGraph::verdict`]'s).
pub fn await_cycles(graph: &super::WaitGraph, processes: &[ProcessAwaits]) -> Vec<AwaitCycle> {
    // Without an await there is no task to be in a cycle, and the cycles of
    // locks alone were found by the lock rule: not searched for again.
    if !graph.arcs.iter().any(|a| matches!(a.via, Via::Await(_))) {
        return Vec::new();
    }
    let g = graph.shape(
        std::iter::empty(),
        |a| matches!(a.via, Via::Await(_) | Via::Lock(_)),
        |_| 0,
    );
    let process = |pid: Pid| processes.iter().find(|p| p.pid == pid);
    let edge = |a: usize, b: usize| match &graph.arcs[g.arc(a, b)].via {
        Via::Await(e) => e.clone(),
        Via::Lock(e) => AwaitEdge {
            via: AwaitVia::Resource {
                resource_kind: e.resource.kind,
                address: e.resource.address,
                name: e.resource.name.clone(),
            },
            confidence: e.confidence,
            evidence: e.evidence.clone(),
        },
        _ => unreachable!("an await shape holds only await and lock arcs"),
    };
    let member = |i: usize| match g.node(i) {
        Node::Task(TaskId { pid, address }) => {
            let state = process(pid).map(|p| p.state);
            Member::Task {
                pid,
                tid: state.and_then(|s| s.thread_of(address)),
                address,
                name: state
                    .and_then(|s| s.task(address))
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| format!("{address:#x}")),
            }
        }
        Node::Thread(ThreadId { pid, tid }) => Member::Thread {
            pid,
            tid,
            name: process(pid)
                .and_then(|p| p.thread_names.get(&tid).cloned())
                .unwrap_or_else(|| tid.to_string()),
        },
        Node::Process(_) => unreachable!("an await shape has no process nodes"),
    };
    // Veto: a task whose step is executing at the capture is in flux.
    let running =
        |t: TaskId| process(t.pid).is_some_and(|p| p.state.threads.iter().any(|th| th.running_task == Some(t.address)));
    let rev = g.predecessors();
    let (cycles, _) = g.cycles(super::MAX_CYCLES, super::MAX_CYCLE_EDGES);
    let mut out = Vec::new();
    for cycle in cycles {
        let tasks: Vec<TaskId> = cycle.iter().filter_map(|&i| g.node(i).task()).collect();
        if tasks.is_empty() {
            continue; // the thread graph reports it
        }
        if tasks.iter().any(|&t| running(t)) {
            continue;
        }
        let edges: Vec<AwaitEdge> = (0..cycle.len())
            .map(|k| edge(cycle[k], cycle[(k + 1) % cycle.len()]))
            .collect();
        let confidence = edges
            .iter()
            .map(|e| e.confidence)
            .max_by_key(|&c| rank(c))
            .unwrap_or(Confidence::Exact);
        let breaks_by_timeout = cycle.iter().find_map(|&i| match g.node(i) {
            Node::Task(t) => process(t.pid)
                .and_then(|p| p.state.task(t.address))
                .and_then(|task| task.timeout.as_ref().map(|to| format!("task {:?}: {to}", task.name))),
            Node::Thread(t) => process(t.pid)
                .and_then(|p| p.thread_timeouts.get(&t.tid))
                .map(|to| format!("thread {}: {to}", t.tid)),
            Node::Process(_) => None,
        });
        out.push(AwaitCycle {
            members: cycle.iter().map(|&i| member(i)).collect(),
            edges,
            confidence,
            behind: g.behind(&rev, &cycle).into_iter().map(member).collect(),
            breaks_by_timeout,
        });
    }
    out
}
