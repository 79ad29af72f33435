//! Hangs that are not cycles: which threads are *asleep for good*, and
//! which processes are stuck (Go's "all goroutines are asleep", extended to
//! threads whose wakers are all asleep too).
//!
//! The rule is one function, [`asleep_for_good`]; each way a wait can still
//! end is an explicit early return saying so. [`settle`] applies it until
//! nothing changes (a greatest fixed point: threads waiting on each other in
//! a cycle stay asleep), then names the stuck processes.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Asleep, CycleWait, Leads, Node, PeerKind, Peers, ProcessBehind, ProcessCycle, ProcessFacts, SignalWayOut, Stuck,
    ThreadId, Verdict, Via, WaitGraph,
};
use crate::ids::{Pid, Tid};
use crate::runtimes::{Confidence, Deadline, ResourceKind, Sleep, TaskPlace, ThreadFindings};

/// Timed waits that end within this long break a cycle "by timeout"; a
/// longer timeout leaves it a plain deadlock (nobody waits an hour for a
/// lock on purpose).
pub const TIMEOUT_BREAKS_CYCLE_MS: i64 = 3_600_000;

/// One inspected thread, as the rule sees it.
struct Sleeper<'a> {
    id: ThreadId,
    findings: &'a ThreadFindings,
}

/// The state the rule is evaluated against: who is still considered asleep.
struct World<'a> {
    threads: BTreeMap<ThreadId, Sleeper<'a>>,
    processes: BTreeMap<Pid, &'a ProcessFacts>,
    /// Per process: its threads, sorted.
    members: BTreeMap<Pid, Vec<ThreadId>>,
    asleep: BTreeSet<ThreadId>,
    /// Per process: its threads no longer asleep for good. Kept beside
    /// `asleep` so that finding an awake thread costs O(1) rather than a scan
    /// of the whole process per thread (1000 idle threads made that scan
    /// most of the analysis time).
    awake: BTreeMap<Pid, BTreeSet<ThreadId>>,
    /// Workers of a starved pool ([`super::pools`]), with why.
    starved: BTreeMap<ThreadId, String>,
}

impl World<'_> {
    /// The first thread of `pid` other than `me` not (any longer) asleep for good.
    fn awake_other(&self, pid: Pid, me: ThreadId) -> Option<ThreadId> {
        self.awake.get(&pid)?.iter().copied().find(|t| *t != me)
    }

    /// `id` is no longer asleep for good.
    fn wake(&mut self, id: ThreadId) {
        self.asleep.remove(&id);
        self.awake.entry(id.pid).or_default().insert(id);
    }
}

/// Why a wait is not for good (`Err`), or why it is (`Ok`).
type Judgement = Result<String, (String, bool)>;

fn outside(why: impl Into<String>) -> Judgement {
    Err((why.into(), true))
}

fn not_yet(why: impl Into<String>) -> Judgement {
    Err((why.into(), false))
}

/// A thread is asleep for good when it waits, with no timeout, for something
/// only threads of the inspected processes could provide, and every thread
/// that could provide it is itself asleep for good or gone.
fn asleep_for_good(t: &Sleeper, w: &World) -> Judgement {
    let f = t.findings;
    let facts = w.processes.get(&t.id.pid);
    // Waits the kernel or the outside world ends.
    match &f.sleep {
        Sleep::Running => return not_yet("running (not asleep in a system call)"),
        Sleep::Uninterruptible => {
            return outside("in uninterruptible sleep (state D): the kernel ends it (I/O, a page fault)")
        }
        Sleep::Input { call } => {
            return match facts.and_then(|p| p.peers.get(&t.id.tid)) {
                Some(peers) => input_from_peers(t, w, call, peers),
                None => outside(format!(
                    "waiting for input in {call}: an fd, a signal or a child process can end it"
                )),
            }
        }
        Sleep::Timer { call } => return outside(format!("sleeping for a set time ({call}): a timer ends it")),
        Sleep::Unknown { call } => {
            return outside(format!(
                "in {call}, a system call lockdump does not classify: it may end by itself"
            ))
        }
        Sleep::Futex { .. } => {}
    }
    let Some(wait) = &f.wait else {
        return not_yet(match &f.blocked_in {
            Some(b) => format!("in {b}, which is not a wait on a lock or object lockdump recognized"),
            None => "in a futex wait lockdump could not attribute".into(),
        });
    };
    let kind = wait.resource.kind;
    // A wait that ends by itself ends (its runtime says which do: a GIL
    // wait's 5 ms slices do not).
    match wait.ends.by_itself() {
        Some(Deadline::In(to)) => return outside(format!("a timed wait: {}", to.describe())),
        Some(_) => return outside("a timed wait (its timeout could not be read)"),
        None => {}
    }
    // A worker of a starved pool waits for a task only the pool's workers
    // could run, and they all wait likewise.
    if let Some(why) = w.starved.get(&t.id) {
        return Ok(why.clone());
    }
    if let Some(why) = facts.and_then(|p| p.unexamined.as_ref()) {
        return not_yet(format!("part of the process was not examined ({why})"));
    }
    if let Some(SignalWayOut::Python { signals }) = facts.map(|p| &p.signals) {
        return outside(format!(
            "a Python signal handler ({signals}) may end it: Python handlers run as bytecode in the main thread and \
             may release or set anything"
        ));
    }
    // An owned lock or a join: only its owner can end the wait.
    let exact_owner = kind.has_owner() && wait.owner.confidence() == Confidence::Exact;
    if exact_owner && wait.owner.is_exited() {
        if kind == ResourceKind::RobustMutex {
            return not_yet(
                "a robust mutex whose owner died: the kernel hands it over and the lock returns EOWNERDEAD, so it \
                 is not stuck",
            );
        }
        if kind == ResourceKind::Thread {
            return not_yet("the joined thread has exited: the join returns");
        }
        return Ok(format!("its owner is gone: {}", wait.owner.evidence()));
    }
    if let (true, Some(owner)) = (exact_owner, wait.owner.thread()) {
        if !w.threads.contains_key(&owner) {
            return not_yet(format!(
                "its owner, thread {} of PID {}, was not inspected",
                owner.tid, owner.pid
            ));
        }
        if owner == t.id {
            return Ok("it holds what it waits for itself".into());
        }
        if !w.asleep.contains(&owner) {
            return not_yet(format!("its owner, thread {}, can still run", owner.tid));
        }
        return Ok(format!("its owner, thread {}, is itself asleep for good", owner.tid));
    }
    // No owner by design (condvar, semaphore, barrier, event, queue), none
    // recorded, or only an inferred one: any thread of the process may end it.
    if wait.resource.shared_key.is_some() {
        return outside("process-shared: a process outside the inspected set may wake it");
    }
    if let Some(SignalWayOut::Handler { signals }) = facts.map(|p| &p.signals) {
        return outside(format!(
            "a signal handler may wake it: the process catches {signals} (SigCgt in /proc/PID/status)"
        ));
    }
    if let Some(other) = w.awake_other(t.id.pid, t.id) {
        return not_yet(format!("thread {} can still run and may wake it", other.tid));
    }
    let others = w.members.get(&t.id.pid).map_or(0, |m| m.len().saturating_sub(1));
    Ok(if others == 0 {
        "it is the process's only thread: nothing can wake it".into()
    } else {
        format!(
            "nothing can wake it: every other thread of the process ({others}) is asleep for good, and no signal \
             handler can"
        )
    })
}

/// Threads asleep for good on input only processes of a deadlock can give,
/// directly or through other such threads: each deadlock's processes start
/// its set, and a process one of whose threads is found behind it joins it.
fn behind_processes(v: &Verdict, w: &World) -> Vec<ProcessBehind> {
    let in_cycle: BTreeSet<ThreadId> = v.deadlocks.iter().flat_map(|d| d.threads.iter().copied()).collect();
    let mut out: Vec<ProcessBehind> = Vec::new();
    for (k, d) in v.deadlocks.iter().enumerate() {
        let mut pids: BTreeSet<Pid> = d.threads.iter().map(|t| t.pid).collect();
        loop {
            let found: Vec<ProcessBehind> = w
                .asleep
                .iter()
                .filter(|t| !in_cycle.contains(t) && !out.iter().any(|b| b.thread == **t))
                .filter_map(|t| {
                    let peers = w.processes.get(&t.pid)?.peers.get(&t.tid)?;
                    (!peers.pids.is_empty() && peers.pids.iter().all(|p| pids.contains(p) && *p != t.pid)).then(|| {
                        ProcessBehind {
                            thread: *t,
                            waits_on: peers.what.clone(),
                            pids: peers.pids.clone(),
                            leads_to: Leads::Deadlock(k),
                        }
                    })
                })
                .collect();
            if found.is_empty() {
                break;
            }
            pids.extend(found.iter().map(|b| b.thread.pid));
            out.extend(found);
        }
    }
    out.sort_by_key(|b| b.thread);
    out
}

/// A read of a pipe, or a wait for children: only the processes in `peers`
/// can end it (a writer writes or closes; a child exits), so it is for good
/// when every one of them was inspected and none has a thread that can still
/// run. A signal handler could end it too (EINTR), as for any wait.
fn input_from_peers(t: &Sleeper, w: &World, call: &str, peers: &Peers) -> Judgement {
    let facts = w.processes.get(&t.id.pid);
    if let Some(out) = peers.pids.iter().find(|p| !w.processes.contains_key(p)) {
        return outside(format!(
            "waiting in {call} on {}: PID {out}, which was not inspected, can end it (lockdump -p PID --tree \
             inspects a process with its children)",
            peers.what
        ));
    }
    match facts.map(|p| &p.signals) {
        Some(SignalWayOut::Handler { signals }) | Some(SignalWayOut::Python { signals }) => {
            return outside(format!(
                "waiting in {call} on {}: a signal handler ({signals}) may interrupt it",
                peers.what
            ))
        }
        _ => {}
    }
    for &p in &peers.pids {
        if let Some(other) = w.awake_other(p, t.id) {
            let role = match peers.kind {
                PeerKind::Writers => "can still write to it",
                PeerKind::Readers => "can still read from it",
                PeerKind::SocketPeers => "can still send on the other end",
                PeerKind::Children => "can still run, so the child may exit",
            };
            return not_yet(format!(
                "waiting in {call} on {}: thread {} of PID {p} {role}",
                peers.what, other.tid
            ));
        }
    }
    let role = match peers.kind {
        PeerKind::Writers => "every process holding its write end",
        PeerKind::Readers => "every process holding its read end",
        PeerKind::SocketPeers => "every process holding the other end",
        PeerKind::Children => "every child it waits for",
    };
    Ok(format!(
        "waiting in {call} on {}: {role} (PID {}) is asleep for good",
        peers.what,
        peers.pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// At most this many [`ProcessCycle`]s are reported: they explain a stuck
/// verdict, and processes with many threads each waiting on the other have
/// as many cycles as pairs of threads.
pub const MAX_PROCESS_CYCLES: usize = 100;

/// Circular waits through processes among the threads asleep for good
/// ([`ProcessCycle`]): the graph's locks, inputs and members, between
/// threads asleep for good and the processes they wait for. A process's
/// threads are all asleep for good when one of them waits for it (else
/// [`input_from_peers`] would have found one that can still act), so every
/// cycle found is a hang; one with a single thread (its own process) is
/// left out.
fn process_cycles(graph: &WaitGraph, asleep: &BTreeSet<ThreadId>) -> Vec<ProcessCycle> {
    let counts = |n: &Node| match n {
        Node::Thread(t) => asleep.contains(t),
        Node::Process(_) => true,
        Node::Task(_) => false,
    };
    // No wait on a process (the common case): no cycle can pass through one.
    if !graph.arcs.iter().any(|a| matches!(a.via, Via::Input { .. })) {
        return Vec::new();
    }
    let g = graph.shape(
        std::iter::empty(),
        |a| matches!(a.via, Via::Lock(_) | Via::Input { .. } | Via::Member) && counts(&a.from) && counts(&a.to),
        |a| match &a.via {
            Via::Lock(e) => e.confidence,
            _ => Confidence::Exact,
        },
    );
    if !(0..g.len()).any(|i| g.node(i).is_process()) {
        return Vec::new();
    }
    let (cycles, _) = g.cycles(MAX_PROCESS_CYCLES, super::MAX_CYCLE_EDGES);
    let mut out = Vec::new();
    for c in cycles {
        let threads: Vec<(usize, ThreadId)> = c
            .iter()
            .enumerate()
            .filter_map(|(k, &i)| g.node(i).thread().map(|t| (k, t)))
            .collect();
        if threads.len() < 2 || !c.iter().any(|&i| g.node(i).is_process()) {
            continue;
        }
        // Each thread's step: the arc to the next node, a lock's holder or a
        // process (whose member arc leads on to the next thread).
        let waits = threads
            .iter()
            .map(|&(k, _)| {
                let (from, to) = (c[k], c[(k + 1) % c.len()]);
                match (&graph.arcs[g.arc(from, to)].via, g.node(to)) {
                    (Via::Lock(e), _) => CycleWait::Lock {
                        resource: e.resource.clone(),
                        confidence: e.confidence,
                    },
                    (Via::Input { waits_on, kind }, Node::Process(pid)) => CycleWait::Process {
                        waits_on: waits_on.clone(),
                        pid,
                        ended_by: *kind,
                    },
                    _ => unreachable!("a thread's arcs here are locks and inputs"),
                }
            })
            .collect();
        out.push(ProcessCycle {
            threads: threads.into_iter().map(|(_, t)| t).collect(),
            waits,
        });
    }
    out.sort_by(|a, b| a.threads.cmp(&b.threads));
    out
}

/// Apply [`asleep_for_good`] to every inspected thread until nothing changes,
/// then fill `v.asleep`, `v.stuck`, `v.process_cycles` (from `graph`) and
/// `v.breaks_by_timeout_ms`.
pub fn settle<'a>(
    v: &mut Verdict,
    graph: &WaitGraph,
    threads: impl IntoIterator<Item = (Pid, Tid, &'a ThreadFindings)>,
    processes: &'a [ProcessFacts],
) {
    let mut w = World {
        threads: BTreeMap::new(),
        processes: processes.iter().map(|p| (p.pid, p)).collect(),
        members: BTreeMap::new(),
        asleep: BTreeSet::new(),
        awake: BTreeMap::new(),
        starved: v
            .pool_starvations
            .iter()
            .flat_map(|s| {
                let pool = format!(
                    "{} ({:#x})",
                    s.pool.name.as_deref().unwrap_or(&s.pool.kind),
                    s.pool.address
                );
                let all = s.workers_phrase();
                s.workers.iter().zip(&s.waits).map(move |(&t, w)| {
                    let task = match w.place {
                        TaskPlace::Queued { .. } => format!("a task still queued in {pool}"),
                        TaskPlace::RunBy { tid } => format!("a task of {pool} run by its worker {tid}"),
                    };
                    let why = format!(
                        "pool starvation: it waits for {task}, and {all} of the pool wait for tasks only its \
                         workers can run"
                    );
                    (t, why)
                })
            })
            .collect(),
    };
    for (pid, tid, findings) in threads {
        let id = ThreadId::new(pid, tid);
        w.threads.insert(id, Sleeper { id, findings });
        w.members.entry(pid).or_default().push(id);
        w.asleep.insert(id);
    }
    for m in w.members.values_mut() {
        m.sort_unstable();
    }
    // Greatest fixed point: drop every thread the rule rejects until none is.
    loop {
        let rejected: Vec<ThreadId> = w
            .asleep
            .iter()
            .filter(|id| asleep_for_good(&w.threads[id], &w).is_err())
            .copied()
            .collect();
        if rejected.is_empty() {
            break;
        }
        for id in rejected {
            w.wake(id);
        }
    }
    v.asleep = w
        .threads
        .values()
        .map(|t| match asleep_for_good(t, &w) {
            Ok(why) => Asleep {
                thread: t.id,
                asleep_for_good: true,
                why,
                woken_from_outside: false,
            },
            Err((why, outside)) => Asleep {
                thread: t.id,
                asleep_for_good: false,
                why,
                woken_from_outside: outside,
            },
        })
        .collect();
    let mut stuck = Vec::new();
    for (pid, members) in &w.members {
        if members.iter().all(|t| w.asleep.contains(t)) {
            stuck.push(Stuck {
                pid: *pid,
                whole_process: true,
                threads: members.clone(),
            });
            continue;
        }
        // Not the whole process: the threads behind a lock whose owner is gone.
        let orphan_waiters: BTreeSet<ThreadId> = v
            .orphaned
            .iter()
            .map(|o| o.thread)
            .chain(
                v.blocked_behind
                    .iter()
                    .filter(|b| matches!(b.leads_to, Leads::Orphaned(_)))
                    .map(|b| b.thread),
            )
            .filter(|t| t.pid == *pid && w.asleep.contains(t))
            .collect();
        if !orphan_waiters.is_empty() {
            stuck.push(Stuck {
                pid: *pid,
                whole_process: false,
                threads: orphan_waiters.into_iter().collect(),
            });
        }
    }
    v.stuck = stuck;
    v.process_cycles = process_cycles(graph, &w.asleep);
    v.blocked_behind_processes = behind_processes(v, &w);
    v.breaks_by_timeout_ms = v
        .deadlocks
        .iter()
        .map(|d| {
            d.threads
                .iter()
                .filter_map(|t| w.threads.get(t))
                .filter_map(|t| t.findings.wait.as_ref()?.ends.timeout())
                .map(|to| to.in_ms.max(0))
                .filter(|&ms| ms <= TIMEOUT_BREAKS_CYCLE_MS)
                .min()
        })
        .collect();
}
