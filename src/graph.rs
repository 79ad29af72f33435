//! The wait-for graph: which thread waits for which, every circular wait, and
//! the hangs that are not cycles.
//!
//! Nodes are threads, identified by (PID, TID) so that threads of several
//! processes (sharing a process-shared mutex) form one graph. An edge T → U
//! means "T waits on a resource whose owner is U"; it carries the resource,
//! how sure the owner is, and the evidence. Waits whose owner is unknown give
//! no edge: lockdump never invents one. Resources without owners by design
//! (condition variables, semaphores, ...) are listed, not graphed.
//!
//! Every elementary cycle is reported (Johnson's algorithm within each
//! strongly connected component), bounded by [`MAX_CYCLES`], in a
//! deterministic order: each cycle starts at its lowest (PID, TID) and
//! cycles are sorted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::{Confidence, Owner, Resource, ThreadFindings};

mod asleep;
pub mod awaits;
mod digraph;
mod node;
pub mod pools;
pub mod watched;
pub use asleep::{settle, MAX_PROCESS_CYCLES, TIMEOUT_BREAKS_CYCLE_MS};
pub use awaits::{await_cycles, AwaitCycle};
use digraph::Digraph;
pub use node::{Node, TaskId};
pub use pools::{starvations, PoolStarvation};

/// A thread: (PID, host TID), a struct so the two cannot be swapped.
pub use crate::ids::ThreadId;

/// Upper bound on the cycles reported; beyond it [`Verdict::cycles_truncated`] is set.
pub const MAX_CYCLES: usize = 1000;
/// Upper bound on the edges of all reported cycles together, so that a
/// pathological graph (thousands of threads each waiting on several) cannot
/// make the report explode; beyond it [`Verdict::cycles_truncated`] is set.
pub const MAX_CYCLE_EDGES: usize = 200_000;

/// "`from` waits on `resource`, which `to` holds."
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: ThreadId,
    pub to: ThreadId,
    pub resource: Resource,
    pub confidence: Confidence,
    pub evidence: String,
}

/// One circular wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadlock {
    /// The threads in cycle order, starting from the lowest (PID, TID).
    pub threads: Vec<ThreadId>,
    /// `resources[i]` is what `threads[i]` waits for (held by `threads[i+1]`).
    pub resources: Vec<Resource>,
    /// `edges[i]` goes from `threads[i]` to `threads[(i+1) % len]`.
    pub edges: Vec<Edge>,
    /// The weakest edge's confidence: a cycle closed by one inferred owner is an inferred deadlock.
    pub confidence: Confidence,
}

/// What a chain of waits ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "index")]
pub enum Leads {
    /// Index into [`Verdict::deadlocks`].
    Deadlock(usize),
    /// Index into [`Verdict::orphaned`].
    Orphaned(usize),
}

/// A thread outside every cycle whose chain of waits leads into one (or into
/// a lock whose owner exited): it will never run either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedBehind {
    pub thread: ThreadId,
    /// The edges from `thread` to the first thread of the cycle (or the orphaned waiter).
    pub chain: Vec<Edge>,
    pub leads_to: Leads,
}

/// A thread outside every cycle that waits for input or a child only
/// processes of a deadlock (or processes themselves behind one) could
/// provide, and is asleep for good: a parent in `waitpid` for a child whose
/// threads are deadlocked, a reader of a pipe only that child writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessBehind {
    pub thread: ThreadId,
    /// What it waits on: `child PID 4567`, `pipe:[123] (fd 3)`.
    pub waits_on: String,
    /// The processes that alone could end its wait.
    pub pids: Vec<Pid>,
    pub leads_to: Leads,
}

/// A thread not itself waiting for an owned lock (running, sleeping, in
/// I/O, or in a wait with no owner) while others wait, directly or through a
/// chain of owned locks, for locks it holds: the thread everyone waits
/// behind. Not a hang by itself (it may finish its read any moment), so not
/// a verdict: a fact the report puts at the top.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingBehind {
    pub thread: ThreadId,
    /// Every thread whose chain of waits ends at it, sorted.
    pub waiters: Vec<ThreadId>,
    /// The locks its direct waiters wait for, which it holds.
    pub holds: Vec<Resource>,
    /// What it is doing (filled by the pipeline, which can read /proc):
    /// `in read(fd 3) — fd 3: TCP 127.0.0.1:41234 -> 127.0.0.1:5000 ...`.
    pub doing: Option<String>,
}

/// A wait on a lock whose owner has exited: a hang without a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphaned {
    pub thread: ThreadId,
    pub resource: Resource,
    /// The TID the lock still names.
    pub owner_tid: Option<Tid>,
    pub evidence: String,
}

/// A wait that is not an edge: no owner by design, or an owner nobody recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerlessWait {
    pub thread: ThreadId,
    pub resource: Resource,
    pub how: String,
    pub evidence: String,
}

/// Everything the graph says about the inspected threads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub deadlocks: Vec<Deadlock>,
    pub blocked_behind: Vec<BlockedBehind>,
    /// Threads behind a deadlock through other processes ([`ProcessBehind`]).
    /// Filled by [`settle`].
    pub blocked_behind_processes: Vec<ProcessBehind>,
    pub orphaned: Vec<Orphaned>,
    /// Waits on objects that have no owner (condvar, semaphore, barrier, event, queue).
    pub no_owner_waits: Vec<OwnerlessWait>,
    /// Waits on lockable objects whose owner is not known (rwlock readers, Rust locks without evidence).
    pub unknown_owner_waits: Vec<OwnerlessWait>,
    /// Every thread is blocked: nothing can make progress unless something external happens.
    pub all_blocked: bool,
    /// More than [`MAX_CYCLES`] cycles exist; the list is cut.
    pub cycles_truncated: bool,
    /// Parts of the inspected processes no analysis covered (filled by the
    /// pipeline, not by the graph): a verdict without a deadlock is then not
    /// a clean one.
    pub unexamined: Vec<Unexamined>,
    /// For every inspected thread, sorted: is it asleep for good, and why
    /// (or why not). Filled by [`settle`]; empty when it was not run.
    pub asleep: Vec<Asleep>,
    /// Threads that can never run again: every process all of whose threads
    /// are asleep for good, and threads asleep for good behind a lock whose
    /// owner is gone. Filled by [`settle`].
    pub stuck: Vec<Stuck>,
    /// Circular waits through processes among threads asleep for good
    /// ([`ProcessCycle`]): why the processes on them are stuck. Filled by
    /// [`settle`].
    pub process_cycles: Vec<ProcessCycle>,
    /// Cycles that a timed wait of one of their threads will break, parallel
    /// to `deadlocks`: the earliest timeout in milliseconds, or `None`.
    pub breaks_by_timeout_ms: Vec<Option<i64>>,
    /// What `--watch` saw over its interval (filled by the pipeline after
    /// the graph): blocked-for times, spinning threads, probable livelocks
    /// and starvations. `None` without `--watch`.
    pub watch: Option<watched::Watched>,
    /// Threads others wait behind that are not in a cycle ([`WaitingBehind`]),
    /// most waiters first.
    pub waiting_behind: Vec<WaitingBehind>,
    /// Thread pools whose every worker waits for a task only its workers
    /// could run ([`pools`]): deadlocks through a pool. Filled by the
    /// pipeline ([`starvations`], then confirmed) before [`settle`].
    pub pool_starvations: Vec<PoolStarvation>,
    /// asyncio tasks that await each other in a cycle ([`awaits`]): deadlocks
    /// among tasks. Filled by the pipeline.
    pub await_cycles: Vec<AwaitCycle>,
}

/// One thread under the "asleep for good" rule ([`asleep_for_good`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Asleep {
    pub thread: ThreadId,
    pub asleep_for_good: bool,
    /// Why nothing can end its wait, or what can.
    pub why: String,
    /// The outside world (an fd, a signal, a child process, a timer) or the
    /// kernel can end its wait: "waiting for input", never stuck.
    pub woken_from_outside: bool,
}

/// Threads that can never run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    pub pid: Pid,
    /// Every thread of the process is asleep for good (else: only `threads`,
    /// which wait behind a lock whose owner is gone).
    pub whole_process: bool,
    /// The threads asleep for good, sorted.
    pub threads: Vec<ThreadId>,
}

/// A circular wait that passes through processes: a thread reads a pipe
/// (or a socket) only another process could write to, or waits for a child
/// to exit, and a thread of that process waits, directly or through locks,
/// for the first thread's process in turn.
///
/// Only found among threads asleep for good ([`settle`]): a process is
/// waited for as a whole, and any of its threads could end the wait, so a
/// cycle through it is a hang only when every thread of it is asleep for
/// good, which is the stuck rule. So it is not a verdict of its own: it
/// explains the [`Stuck`] processes it passes through, and a cycle made of
/// one thread and its own process (a thread reading a pipe only its own
/// process holds) says nothing the stuck verdict does not, so it is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessCycle {
    /// The threads in cycle order, starting from the lowest (PID, TID).
    pub threads: Vec<ThreadId>,
    /// `waits[i]`: what `threads[i]` waits for, which only
    /// `threads[(i+1) % len]` (or its process) could provide.
    pub waits: Vec<CycleWait>,
}

/// One step of a [`ProcessCycle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CycleWait {
    /// A lock (or a join) the next thread holds.
    Lock { resource: Resource, confidence: Confidence },
    /// Input (or an exit) only the next thread's process could provide:
    /// `pipe:[123] (fd 3)`, `child PID 4567`.
    Process {
        waits_on: String,
        pid: Pid,
        ended_by: PeerKind,
    },
}

pub use crate::runtimes::signals::SignalWayOut;

/// What the verdict needs to know about one inspected process besides its threads' findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    pub pid: Pid,
    pub signals: SignalWayOut,
    /// Set when part of the process was not examined (its waits are then not all known).
    pub unexamined: Option<String>,
    /// Its thread pools (CPython's ThreadPoolExecutor), for [`pools`].
    pub pools: Vec<crate::runtimes::TaskPool>,
    /// By TID: the processes that alone can end a thread's wait for input
    /// (the writers of the pipe it reads, the children it waits for), read
    /// from /proc after the capture.
    pub peers: BTreeMap<Tid, Peers>,
}

/// The processes that can end a thread's wait on a pipe, a Unix socket or a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// What the thread waits on: `pipe:[123456] (fd 3)`, `child PID 4567`.
    pub what: String,
    /// Host PIDs, sorted.
    pub pids: Vec<Pid>,
    pub kind: PeerKind,
}

/// How the peers end the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// Any thread of them may write to the pipe (or close it: EOF).
    Writers,
    /// Any thread of them may read from the full pipe a thread writes to
    /// (or close it: EPIPE).
    Readers,
    /// Any thread of them may send on the peer of a connected Unix socket
    /// (or close it).
    SocketPeers,
    /// One of them must exit (or stop: `WUNTRACED`, not assumed).
    Children,
}

pub use crate::runtimes::{Part, Unexamined};

/// The kinds of verdict, most severe first; the exit code follows from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// At least one circular wait (a cycle of owned locks, or a starved pool).
    Deadlock,
    /// No cycle, but threads that can never run again: a process whose
    /// every thread is asleep for good, or waits behind a lock whose owner
    /// is gone (see [`Verdict::stuck`]).
    Stuck,
    /// No deadlock, nothing stuck, but over `--watch` two or more threads
    /// spun in the same loop while the lock it names never changed hands
    /// (see `crate::watch::judge`).
    Livelock,
    /// No deadlock, nothing stuck, no livelock, but over `--watch` a thread
    /// waited the whole interval for a lock others kept taking.
    Starvation,
    /// No deadlock among what was examined, but part of the target was not
    /// examined (see [`Verdict::unexamined`]).
    Incomplete,
    /// Everything was examined and no hang was found.
    NoHangFound,
}

impl VerdictKind {
    /// The exit code of a verdict ([`crate::error::exit`]).
    pub fn exit_code(self) -> i32 {
        use crate::error::exit;
        match self {
            VerdictKind::Deadlock | VerdictKind::Stuck => exit::DEADLOCK,
            VerdictKind::Livelock | VerdictKind::Starvation => exit::NO_PROGRESS,
            VerdictKind::Incomplete => exit::INCOMPLETE,
            VerdictKind::NoHangFound => exit::OK,
        }
    }
}

impl Verdict {
    pub fn kind(&self) -> VerdictKind {
        if !self.deadlocks.is_empty() || !self.pool_starvations.is_empty() || !self.await_cycles.is_empty() {
            VerdictKind::Deadlock
        } else if !self.stuck.is_empty() {
            VerdictKind::Stuck
        } else if self.watch.as_ref().is_some_and(|w| !w.livelocks.is_empty()) {
            VerdictKind::Livelock
        } else if self.watch.as_ref().is_some_and(|w| !w.starvations.is_empty()) {
            VerdictKind::Starvation
        } else if !self.unexamined.is_empty() {
            VerdictKind::Incomplete
        } else {
            VerdictKind::NoHangFound
        }
    }
}

/// Identity of a resource across processes: a process-shared object is the
/// same resource in every process that maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKey {
    Shared { dev: u64, inode: u64, offset: u64 },
    Local { pid: Pid, address: Addr },
}

pub fn resource_key(r: &Resource) -> ResourceKey {
    match r.shared_key {
        Some((dev, inode, offset)) => ResourceKey::Shared { dev, inode, offset },
        None => ResourceKey::Local {
            pid: r.pid,
            address: r.address,
        },
    }
}

/// One "waits for" of the graph: `from` cannot go on until `to` acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arc {
    pub from: Node,
    pub to: Node,
    pub via: Via,
}

/// What an arc stands for. Each verdict follows the kinds its rule is about:
/// lock cycles the locks, await cycles the awaits and locks, cycles through
/// processes the locks, inputs and members (see [`WaitGraph`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Thread → thread: a lock (or a join) the other thread holds.
    Lock(Edge),
    /// Task → task, task → thread, thread → task: an await, an
    /// `asyncio.Lock` held in an open `async with`, a pool work item, a
    /// task's result ([`awaits`]).
    Await(awaits::AwaitEdge),
    /// Thread → process: input only that process can give (a pipe's writers,
    /// a connected socket's peer), or its exit (a child in `waitpid`).
    Input { waits_on: String, kind: PeerKind },
    /// Process → thread: a process acts only through its threads; any of
    /// them could write to the pipe or make the child exit.
    Member,
}

/// The wait-for graph: threads, asyncio tasks and processes as nodes
/// ([`Node`]), every kind of "waits for" as an arc ([`Via`]).
///
/// Built in the order the pipeline learns things: the threads' lock waits
/// ([`WaitGraph::add_thread`]), then asyncio's awaits
/// ([`WaitGraph::add_awaits`]), then the processes that alone can end a
/// read or a child wait ([`WaitGraph::add_peers`]). Each verdict is a rule
/// over the same graph that follows only the arcs it is about:
/// [`WaitGraph::verdict`] (cycles of locks, and who waits behind them),
/// [`await_cycles`] (cycles with a task in them) and [`settle`] (cycles
/// through processes, among threads asleep for good).
#[derive(Debug, Default)]
pub struct WaitGraph {
    /// Every thread in the graph: `Some(blocked)` for an inspected thread,
    /// `None` for one only named as an owner (e.g. in a process not inspected).
    threads: BTreeMap<ThreadId, Option<bool>>,
    /// Every arc, in the order added.
    arcs: Vec<Arc>,
    orphaned: Vec<Orphaned>,
    no_owner: Vec<OwnerlessWait>,
    unknown_owner: Vec<OwnerlessWait>,
}

impl WaitGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a thread and its wait.
    pub fn add_thread(&mut self, pid: Pid, tid: Tid, findings: &ThreadFindings) {
        let me = ThreadId::new(pid, tid);
        let blocked = findings.wait.is_some() || findings.blocked_in.is_some();
        self.threads.insert(me, Some(blocked));
        let Some(w) = &findings.wait else { return };
        let ownerless = |evidence: &str| OwnerlessWait {
            thread: me,
            resource: w.resource.clone(),
            how: w.how.clone(),
            evidence: evidence.to_string(),
        };
        if !w.resource.kind.has_owner() {
            self.no_owner.push(ownerless(w.owner.evidence()));
            return;
        }
        let (owner, confidence, evidence) = match &w.owner {
            Owner::Thread {
                thread,
                confidence,
                evidence,
            } => (*thread, *confidence, evidence),
            Owner::Exited { tid, evidence, .. } => {
                self.orphaned.push(Orphaned {
                    thread: me,
                    resource: w.resource.clone(),
                    owner_tid: *tid,
                    evidence: evidence.clone(),
                });
                return;
            }
            Owner::Unknown { why } => {
                self.unknown_owner.push(ownerless(why));
                return;
            }
        };
        if owner == me && w.resource.kind.is_reentrant() {
            // Re-acquiring a recursive lock never blocks: not a self-deadlock.
            return;
        }
        self.add_edge(Edge {
            from: me,
            to: owner,
            resource: w.resource.clone(),
            confidence: confidence.into(),
            evidence: evidence.clone(),
        });
    }

    /// Add a lock edge directly (a wait for several owners, e.g. all readers
    /// of a lock). Both ends become nodes; `from` counts as an inspected,
    /// blocked thread.
    pub fn add_edge(&mut self, edge: Edge) {
        let from = self.threads.entry(edge.from).or_insert(Some(true));
        *from = Some(true);
        self.threads.entry(edge.to).or_insert(None);
        self.arcs.push(Arc {
            from: Node::Thread(edge.from),
            to: Node::Thread(edge.to),
            via: Via::Lock(edge),
        });
    }

    /// Add one process's asyncio awaits: task on task, task on a lock
    /// another task holds, task on a pool worker's item, thread on a task's
    /// result ([`awaits`]).
    pub fn add_awaits(&mut self, p: &awaits::ProcessAwaits) {
        self.arcs.extend(awaits::arcs(p));
    }

    /// Add the processes that alone can end a thread's read or child wait
    /// (`ProcessFacts::peers`), and, for each such process that was
    /// inspected, the threads it acts through.
    pub fn add_peers(&mut self, facts: &[ProcessFacts]) {
        let mut waited: BTreeSet<Pid> = BTreeSet::new();
        for p in facts {
            for (&tid, peers) in &p.peers {
                for &to in &peers.pids {
                    waited.insert(to);
                    self.arcs.push(Arc {
                        from: Node::Thread(ThreadId::new(p.pid, tid)),
                        to: Node::Process(to),
                        via: Via::Input {
                            waits_on: peers.what.clone(),
                            kind: peers.kind,
                        },
                    });
                }
            }
        }
        let members: Vec<ThreadId> = self
            .threads
            .iter()
            .filter(|(t, inspected)| inspected.is_some() && waited.contains(&t.pid))
            .map(|(t, _)| *t)
            .collect();
        for t in members {
            self.arcs.push(Arc {
                from: Node::Process(t.pid),
                to: Node::Thread(t),
                via: Via::Member,
            });
        }
    }

    /// The arcs of the kinds `keep` accepts, as the shape the algorithms
    /// work on (with `nodes` besides the arcs' ends); among arcs between
    /// the same two nodes, the first by `rank` (then the first added).
    fn shape<K: Ord>(
        &self,
        nodes: impl IntoIterator<Item = Node>,
        keep: impl Fn(&Arc) -> bool,
        rank: impl Fn(&Arc) -> K,
    ) -> Digraph {
        let mut chosen: Vec<usize> = (0..self.arcs.len()).filter(|&k| keep(&self.arcs[k])).collect();
        chosen.sort_by_key(|&k| rank(&self.arcs[k]));
        let arcs: Vec<(Node, Node, usize)> = chosen
            .into_iter()
            .map(|k| (self.arcs[k].from, self.arcs[k].to, k))
            .collect();
        Digraph::new(nodes, &arcs)
    }

    /// The lock edge behind arc `k`.
    fn lock(&self, k: usize) -> &Edge {
        match &self.arcs[k].via {
            Via::Lock(e) => e,
            _ => unreachable!("a lock shape holds only lock arcs"),
        }
    }

    /// Find every cycle of locks and classify the rest.
    ///
    /// Rule: threads each waiting for a lock (or join) the next one holds
    /// can none of them go on. Only lock arcs count here: a cycle with a
    /// task in it is [`await_cycles`]'s, one through a process [`settle`]'s.
    pub fn verdict(&self) -> Verdict {
        let mut orphaned = self.orphaned.clone();
        orphaned.sort_by_key(|o| o.thread);
        let mut no_owner = self.no_owner.clone();
        no_owner.sort_by_key(|w| w.thread);
        let mut unknown_owner = self.unknown_owner.clone();
        unknown_owner.sort_by_key(|w| w.thread);
        // One edge per (from, to) pair: the strongest, then the first added.
        let g = self.shape(
            self.threads.keys().map(|t| Node::Thread(*t)),
            |a| matches!(a.via, Via::Lock(_)),
            |a| match &a.via {
                Via::Lock(e) => e.confidence,
                _ => Confidence::Unknown,
            },
        );
        let n = g.len();
        let thread = |v: usize| g.node(v).thread().unwrap_or_default();
        let index = |id: &ThreadId| g.index(&Node::Thread(*id)).unwrap_or(0);
        let edge = |a: usize, b: usize| -> &Edge { self.lock(g.arc(a, b)) };

        let (cycles, truncated) = g.cycles(MAX_CYCLES, MAX_CYCLE_EDGES);
        let mut deadlocks: Vec<Deadlock> = cycles
            .iter()
            .map(|c| {
                let edges: Vec<Edge> = (0..c.len()).map(|i| edge(c[i], c[(i + 1) % c.len()]).clone()).collect();
                Deadlock {
                    threads: c.iter().map(|&v| thread(v)).collect(),
                    resources: edges.iter().map(|e| e.resource.clone()).collect(),
                    confidence: edges.iter().map(|e| e.confidence).max().unwrap_or(Confidence::Exact),
                    edges,
                }
            })
            .collect();
        deadlocks.sort_by(|a, b| a.threads.cmp(&b.threads));

        // Threads that lead into a cycle, then into an orphaned lock (shortest chains first).
        let mut first_deadlock: BTreeMap<ThreadId, usize> = BTreeMap::new();
        for (d, dl) in deadlocks.iter().enumerate() {
            for t in &dl.threads {
                first_deadlock.entry(*t).or_insert(d);
            }
        }
        let rev = g.predecessors();
        let mut assigned: Vec<bool> = vec![false; n];
        let mut blocked_behind = Vec::new();
        let sources: Vec<(usize, Leads)> = first_deadlock
            .iter()
            .map(|(t, &d)| (index(t), Leads::Deadlock(d)))
            .chain(
                orphaned
                    .iter()
                    .enumerate()
                    .map(|(o, orph)| (index(&orph.thread), Leads::Orphaned(o))),
            )
            .collect();
        for &(s, _) in &sources {
            assigned[s] = true;
        }
        // Multi-source BFS over reversed edges; each thread records the hop it was reached through.
        let mut next_hop: Vec<Option<(usize, Leads)>> = vec![None; n];
        let mut queue: VecDeque<(usize, Leads)> = sources.into_iter().collect();
        let mut order = Vec::new();
        while let Some((v, leads)) = queue.pop_front() {
            for &u in &rev[v] {
                if !assigned[u] {
                    assigned[u] = true;
                    next_hop[u] = Some((v, leads));
                    order.push(u);
                    queue.push_back((u, leads));
                }
            }
        }
        for u in order {
            let mut chain = Vec::new();
            let mut cur = u;
            let mut leads = None;
            while let Some((next, l)) = next_hop[cur] {
                chain.push(edge(cur, next).clone());
                leads = Some(l);
                cur = next;
            }
            if let Some(leads_to) = leads {
                blocked_behind.push(BlockedBehind {
                    thread: thread(u),
                    chain,
                    leads_to,
                });
            }
        }
        blocked_behind.sort_by_key(|b| b.thread);

        // Threads everyone waits behind: inspected, no outgoing edge, not in a
        // cycle, and reached over reversed edges by at least one waiter.
        let mut waiting_behind = Vec::new();
        for v in 0..n {
            let id = thread(v);
            if !g.successors(v).is_empty()
                || self.threads.get(&id).copied().flatten().is_none()
                || first_deadlock.contains_key(&id)
            {
                continue;
            }
            let mut waiters: Vec<ThreadId> = g.behind(&rev, &[v]).into_iter().map(thread).collect();
            if waiters.is_empty() {
                continue;
            }
            waiters.sort();
            let mut holds: Vec<Resource> = Vec::new();
            for &u in &rev[v] {
                let r = &edge(u, v).resource;
                if !holds.iter().any(|h| h.pid == r.pid && h.address == r.address) {
                    holds.push(r.clone());
                }
            }
            waiting_behind.push(WaitingBehind {
                thread: id,
                waiters,
                holds,
                doing: None,
            });
        }
        waiting_behind.sort_by(|a, b| b.waiters.len().cmp(&a.waiters.len()).then(a.thread.cmp(&b.thread)));

        Verdict {
            waiting_behind,
            unexamined: Vec::new(),
            asleep: Vec::new(),
            stuck: Vec::new(),
            process_cycles: Vec::new(),
            breaks_by_timeout_ms: Vec::new(),
            watch: None,
            pool_starvations: Vec::new(),
            await_cycles: Vec::new(),
            deadlocks,
            blocked_behind,
            blocked_behind_processes: Vec::new(),
            orphaned,
            no_owner_waits: no_owner,
            unknown_owner_waits: unknown_owner,
            all_blocked: {
                let mut inspected = self.threads.values().flatten().peekable();
                inspected.peek().is_some() && inspected.all(|&b| b)
            },
            cycles_truncated: truncated,
        }
    }
}

/// Build the graph from (PID, TID, findings) triples and compute the verdict.
pub fn analyze<'a>(threads: impl IntoIterator<Item = (Pid, Tid, &'a ThreadFindings)>) -> Verdict {
    let mut g = WaitGraph::new();
    for (pid, tid, f) in threads {
        g.add_thread(pid, tid, f);
    }
    g.verdict()
}

#[cfg(test)]
mod tests;
