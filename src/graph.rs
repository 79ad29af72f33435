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
pub mod pools;
pub mod watched;
pub use asleep::{settle, TIMEOUT_BREAKS_CYCLE_MS};
pub use awaits::{await_cycles, AwaitCycle};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// Any thread of them may write to the pipe (or close it: EOF).
    Writers,
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

/// The graph under construction.
#[derive(Debug, Default)]
pub struct WaitGraph {
    /// Every thread in the graph: `Some(blocked)` for an inspected thread,
    /// `None` for one only named as an owner (e.g. in a process not inspected).
    nodes: BTreeMap<ThreadId, Option<bool>>,
    edges: Vec<Edge>,
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
        self.nodes.insert(me, Some(blocked));
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

    /// Add an edge directly (a wait for several owners, e.g. all readers of a lock).
    /// Both ends become nodes; `from` counts as an inspected, blocked thread.
    pub fn add_edge(&mut self, edge: Edge) {
        let from = self.nodes.entry(edge.from).or_insert(Some(true));
        *from = Some(true);
        self.nodes.entry(edge.to).or_insert(None);
        self.edges.push(edge);
    }

    /// Find every cycle and classify the rest.
    pub fn verdict(&self) -> Verdict {
        let mut orphaned = self.orphaned.clone();
        orphaned.sort_by_key(|o| o.thread);
        let mut no_owner = self.no_owner.clone();
        no_owner.sort_by_key(|w| w.thread);
        let mut unknown_owner = self.unknown_owner.clone();
        unknown_owner.sort_by_key(|w| w.thread);
        let ids: Vec<ThreadId> = self.nodes.keys().copied().collect();
        let n = ids.len();
        let index = |id: &ThreadId| ids.binary_search(id).unwrap_or(0);

        // One edge per (from, to) pair: the strongest, then the first added.
        // `adj[a]` is sorted by target; `edge_of[a][i]` indexes `self.edges`.
        let mut pairs: Vec<(usize, usize, Confidence, usize)> = self
            .edges
            .iter()
            .enumerate()
            .map(|(k, e)| (index(&e.from), index(&e.to), e.confidence, k))
            .collect();
        pairs.sort_unstable();
        pairs.dedup_by_key(|p| (p.0, p.1));
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut edge_of: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b, _, k) in &pairs {
            adj[a].push(b);
            edge_of[a].push(k);
        }
        let edge = |a: usize, b: usize| -> &Edge {
            let i = adj[a].binary_search(&b).unwrap_or(0);
            &self.edges[edge_of[a][i]]
        };

        let (cycles, truncated) = elementary_cycles(&adj, MAX_CYCLES, MAX_CYCLE_EDGES);
        let mut deadlocks: Vec<Deadlock> = cycles
            .iter()
            .map(|c| {
                let edges: Vec<Edge> = (0..c.len()).map(|i| edge(c[i], c[(i + 1) % c.len()]).clone()).collect();
                Deadlock {
                    threads: c.iter().map(|&v| ids[v]).collect(),
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
        let mut rev: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b, _, _) in &pairs {
            rev[b].push(a);
        }
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
                    thread: ids[u],
                    chain,
                    leads_to,
                });
            }
        }
        blocked_behind.sort_by_key(|b| b.thread);

        // Threads everyone waits behind: inspected, no outgoing edge, not in a
        // cycle, and reached over reversed edges by at least one waiter.
        let mut waiting_behind = Vec::new();
        for (v, id) in ids.iter().enumerate() {
            if !adj[v].is_empty() || self.nodes.get(id).copied().flatten().is_none() || first_deadlock.contains_key(id)
            {
                continue;
            }
            let mut seen = vec![false; n];
            seen[v] = true;
            let mut stack = vec![v];
            let mut waiters = Vec::new();
            while let Some(x) = stack.pop() {
                for &u in &rev[x] {
                    if !seen[u] {
                        seen[u] = true;
                        waiters.push(ids[u]);
                        stack.push(u);
                    }
                }
            }
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
                thread: *id,
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
                let mut inspected = self.nodes.values().flatten().peekable();
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

/// Strongly connected components (Tarjan, iterative so deep chains cannot
/// overflow the stack). Returns a component id per vertex.
fn scc(adj: &[Vec<usize>], allowed: &dyn Fn(usize) -> bool) -> Vec<Option<usize>> {
    let n = adj.len();
    let mut idx: Vec<Option<usize>> = vec![None; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp: Vec<Option<usize>> = vec![None; n];
    let mut next_index = 0;
    let mut next_comp = 0;
    for root in 0..n {
        if !allowed(root) || idx[root].is_some() {
            continue;
        }
        // (vertex, position in its adjacency list)
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        idx[root] = Some(next_index);
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if let Some(&w) = adj[v].get(*pos) {
                *pos += 1;
                if !allowed(w) {
                    continue;
                }
                match idx[w] {
                    None => {
                        idx[w] = Some(next_index);
                        low[w] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        call.push((w, 0));
                    }
                    Some(iw) if on_stack[w] => low[v] = low[v].min(iw),
                    Some(_) => {}
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if Some(low[v]) == idx[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = Some(next_comp);
                    if w == v {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

/// Every elementary cycle (Johnson 1975), at most `cap` of them with at most
/// `cap_edges` edges in total. Vertices are
/// numbered in sorted thread order, so each cycle starts at its least vertex.
/// Returns the cycles and whether the cap cut the enumeration short.
pub(crate) fn elementary_cycles(adj: &[Vec<usize>], cap: usize, cap_edges: usize) -> (Vec<Vec<usize>>, bool) {
    let n = adj.len();
    let mut out = Vec::new();
    let mut total_edges = 0usize;
    // Only vertices on some cycle matter: those in a non-trivial SCC or with a self-loop.
    let whole = scc(adj, &|_| true);
    let comp_size = component_sizes(&whole);
    let cyclic = |v: usize| whole[v].is_some_and(|c| comp_size[c] > 1) || adj[v].contains(&v);
    let mut blocked = vec![false; n];
    let mut b_sets: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut s = 0;
    while s < n {
        // The least vertex >= s on a cycle of the subgraph induced by vertices >= s,
        // and its component there (Johnson's outer loop; vertices < s are done).
        let from = s;
        let sub = scc(adj, &|v| v >= from && cyclic(v));
        let size = component_sizes(&sub);
        let Some(start) = (from..n).find(|&v| sub[v].is_some_and(|c| size[c] > 1 || adj[v].contains(&v))) else {
            break;
        };
        s = start;
        let cs = sub[s];
        let in_comp = |v: usize| v >= start && sub[v] == cs;
        for v in 0..n {
            if in_comp(v) {
                blocked[v] = false;
                b_sets[v].clear();
            }
        }
        // Iterative CIRCUIT(s): frames of (vertex, next edge, found a cycle below).
        let mut path = vec![s];
        let mut frames: Vec<(usize, usize, bool)> = vec![(s, 0, false)];
        blocked[s] = true;
        while let Some(top) = frames.last_mut() {
            let v = top.0;
            if let Some(&w) = adj[v].get(top.1) {
                top.1 += 1;
                if !in_comp(w) {
                    continue;
                }
                if w == s {
                    total_edges += path.len();
                    if out.len() >= cap || total_edges > cap_edges {
                        return (out, true);
                    }
                    out.push(path.clone());
                    top.2 = true;
                } else if !blocked[w] {
                    blocked[w] = true;
                    path.push(w);
                    frames.push((w, 0, false));
                }
                continue;
            }
            let (_, _, found) = frames.pop().unwrap_or((v, 0, false));
            if found {
                unblock(v, &mut blocked, &mut b_sets);
            } else {
                for &w in &adj[v] {
                    if in_comp(w) {
                        b_sets[w].insert(v);
                    }
                }
            }
            path.pop();
            if let Some(parent) = frames.last_mut() {
                parent.2 |= found;
            }
        }
        s += 1;
    }
    (out, false)
}

/// How many vertices each component id of [`scc`] has.
fn component_sizes(comp: &[Option<usize>]) -> Vec<usize> {
    let mut size = vec![0usize; comp.len()];
    for &c in comp.iter().flatten() {
        size[c] += 1;
    }
    size
}

fn unblock(u: usize, blocked: &mut [bool], b_sets: &mut [BTreeSet<usize>]) {
    let mut work = vec![u];
    while let Some(x) = work.pop() {
        if !blocked[x] {
            continue;
        }
        blocked[x] = false;
        work.extend(std::mem::take(&mut b_sets[x]));
    }
}

#[cfg(test)]
mod tests;
