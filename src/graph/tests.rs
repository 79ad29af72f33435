//! Wait-for graph: cycle shapes, non-cycle hangs, determinism and bounds.

use super::*;
use crate::runtimes::{Deadline, Ends, Owner, ResourceKind, Sleep, Timeout, Wait};

const PID: i32 = 100;

fn res(kind: ResourceKind, addr: u64) -> Resource {
    Resource {
        kind,
        address: Addr(addr),
        pid: Pid(PID),
        name: Some(format!("lock_{addr:x}")),
        shared_key: None,
    }
}

/// A thread waiting on the mutex at `addr` owned by `owner` (same process).
fn waits_on(addr: u64, owner: i32) -> ThreadFindings {
    waits(ResourceKind::Mutex, addr, Some(owner), Confidence::Exact)
}

fn waits(kind: ResourceKind, addr: u64, owner: Option<i32>, confidence: Confidence) -> ThreadFindings {
    ThreadFindings {
        wait: Some(Wait {
            resource: res(kind, addr),
            owner: match owner {
                Some(tid) => Owner::held_by(Pid(PID), Tid(tid), confidence, format!("__owner = {owner:?}")),
                None => Owner::unknown(format!("__owner = {owner:?}")),
            },
            how: "pthread_mutex_lock (normal)".into(),
            site_frame: None,
            ends: crate::runtimes::Ends::WITH_CALL,
        }),
        holds: vec![],
        blocked_in: None,
        sleep: untimed(),
    }
}

fn untimed() -> Sleep {
    Sleep::Futex {
        timeout: Deadline::Never,
    }
}

fn running() -> ThreadFindings {
    ThreadFindings::default()
}

fn verdict(threads: &[(i32, ThreadFindings)]) -> Verdict {
    analyze(threads.iter().map(|(t, f)| (Pid(PID), Tid(*t), f)))
}

fn tids(d: &Deadlock) -> Vec<i32> {
    d.threads.iter().map(|t| t.tid.get()).collect()
}

#[test]
fn abba() {
    let v = verdict(&[(7, waits_on(0xb, 8)), (8, waits_on(0xa, 7)), (1, running())]);
    assert_eq!(v.deadlocks.len(), 1);
    let d = &v.deadlocks[0];
    assert_eq!(tids(d), vec![7, 8]);
    assert_eq!(
        d.resources.iter().map(|r| r.address.get()).collect::<Vec<_>>(),
        vec![0xb, 0xa]
    );
    assert_eq!(
        (d.edges[0].from, d.edges[0].to),
        (ThreadId::new(Pid(PID), Tid(7)), ThreadId::new(Pid(PID), Tid(8)))
    );
    assert_eq!(
        (d.edges[1].from, d.edges[1].to),
        (ThreadId::new(Pid(PID), Tid(8)), ThreadId::new(Pid(PID), Tid(7)))
    );
    assert_eq!(d.edges[0].evidence, "__owner = Some(8)");
    assert_eq!(d.confidence, Confidence::Exact);
    assert!(!v.all_blocked, "thread 1 runs");
    assert!(v.blocked_behind.is_empty() && v.orphaned.is_empty());
}

#[test]
fn three_ring_starts_at_lowest_tid() {
    // 30 → 10 → 20 → 30, given in scrambled order.
    let v = verdict(&[
        (20, waits_on(0x3, 30)),
        (30, waits_on(0x1, 10)),
        (10, waits_on(0x2, 20)),
    ]);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(tids(&v.deadlocks[0]), vec![10, 20, 30]);
    assert_eq!(
        v.deadlocks[0]
            .resources
            .iter()
            .map(|r| r.address.get())
            .collect::<Vec<_>>(),
        vec![0x2, 0x3, 0x1]
    );
    assert!(v.all_blocked);
}

#[test]
fn five_philosophers() {
    // Philosopher i holds fork i and waits for fork (i+1)%5, held by philosopher (i+1)%5.
    let threads: Vec<(i32, ThreadFindings)> = (0..5)
        .map(|i| {
            (
                100 + i,
                waits_on(0x1000 + ((i as u64 + 1) % 5) * 0x28, 100 + (i + 1) % 5),
            )
        })
        .collect();
    let v = verdict(&threads);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(tids(&v.deadlocks[0]), vec![100, 101, 102, 103, 104]);
    assert_eq!(v.deadlocks[0].edges.len(), 5);
}

#[test]
fn two_disjoint_cycles() {
    let v = verdict(&[
        (5, waits_on(0x6, 6)),
        (6, waits_on(0x5, 5)),
        (1, waits_on(0x2, 2)),
        (2, waits_on(0x1, 1)),
    ]);
    assert_eq!(
        v.deadlocks.iter().map(tids).collect::<Vec<_>>(),
        vec![vec![1, 2], vec![5, 6]]
    );
}

#[test]
fn figure_eight_reports_both_cycles() {
    // Node 2 waits for two owners (e.g. every reader of an rwlock): 1→2, 2→1, 2→3, 3→2.
    let mut g = WaitGraph::new();
    let e = |a: i32, b: i32, addr: u64| Edge {
        from: ThreadId::new(Pid(PID), Tid(a)),
        to: ThreadId::new(Pid(PID), Tid(b)),
        resource: res(ResourceKind::RwLock, addr),
        confidence: Confidence::Exact,
        evidence: String::new(),
    };
    for (a, b, r) in [(1, 2, 0x10), (2, 1, 0x20), (2, 3, 0x20), (3, 2, 0x10)] {
        g.add_edge(e(a, b, r));
    }
    let v = g.verdict();
    assert_eq!(
        v.deadlocks.iter().map(tids).collect::<Vec<_>>(),
        vec![vec![1, 2], vec![2, 3]]
    );
}

#[test]
fn all_elementary_cycles_of_a_complete_graph() {
    // K4 has 20 elementary cycles: 6 of length 2, 8 of length 3, 6 of length 4.
    let mut g = WaitGraph::new();
    for a in 1..=4 {
        for b in 1..=4 {
            if a != b {
                g.add_edge(Edge {
                    from: ThreadId::new(Pid(PID), Tid(a)),
                    to: ThreadId::new(Pid(PID), Tid(b)),
                    resource: res(ResourceKind::Mutex, (a * 10 + b) as u64),
                    confidence: Confidence::Exact,
                    evidence: String::new(),
                });
            }
        }
    }
    let v = g.verdict();
    assert_eq!(v.deadlocks.len(), 20);
    let mut by_len = [0; 5];
    for d in &v.deadlocks {
        by_len[d.threads.len()] += 1;
        assert_eq!(d.threads[0], *d.threads.iter().min().unwrap(), "starts at lowest");
    }
    assert_eq!(by_len, [0, 0, 6, 8, 6]);
    let unique: BTreeSet<Vec<ThreadId>> = v.deadlocks.iter().map(|d| d.threads.clone()).collect();
    assert_eq!(unique.len(), 20);
}

#[test]
fn self_deadlock_is_a_cycle_of_one() {
    let v = verdict(&[(9, waits_on(0xa, 9))]);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(tids(&v.deadlocks[0]), vec![9]);
    assert_eq!(v.deadlocks[0].edges[0].from, v.deadlocks[0].edges[0].to);
}

#[test]
fn recursive_reentry_is_not_a_self_deadlock() {
    let v = verdict(&[(9, waits(ResourceKind::RecursiveMutex, 0xa, Some(9), Confidence::Exact))]);
    assert!(v.deadlocks.is_empty());
    // A recursive mutex held by another thread is still an ordinary edge.
    let v = verdict(&[
        (9, waits(ResourceKind::RecursiveMutex, 0xa, Some(10), Confidence::Exact)),
        (10, waits_on(0xb, 9)),
    ]);
    assert_eq!(v.deadlocks.len(), 1);
}

#[test]
fn blocked_behind_chain() {
    // 1 ↔ 2 deadlock; 3 waits on 1; 4 waits on 3; 5 runs.
    let v = verdict(&[
        (1, waits_on(0x2, 2)),
        (2, waits_on(0x1, 1)),
        (3, waits_on(0x1, 1)),
        (4, waits_on(0x3, 3)),
        (5, running()),
    ]);
    assert_eq!(v.deadlocks.len(), 1);
    let bb: Vec<(i32, Vec<i32>, Leads)> = v
        .blocked_behind
        .iter()
        .map(|b| {
            (
                b.thread.tid.get(),
                b.chain.iter().map(|e| e.to.tid.get()).collect(),
                b.leads_to,
            )
        })
        .collect();
    assert_eq!(
        bb,
        vec![(3, vec![1], Leads::Deadlock(0)), (4, vec![3, 1], Leads::Deadlock(0))]
    );
}

#[test]
fn orphaned_lock_is_a_hang_without_cycle() {
    let mut dead = waits_on(0xa, 77);
    if let Some(w) = dead.wait.as_mut() {
        w.owner = Owner::exited(
            w.owner.tid(),
            w.owner.pid(),
            w.owner.confidence(),
            "__owner = 77; thread 77 has exited",
        );
    }
    let v = verdict(&[(1, dead), (2, waits_on(0xb, 1))]);
    assert!(v.deadlocks.is_empty());
    assert_eq!(v.orphaned.len(), 1);
    assert_eq!(
        (v.orphaned[0].thread, v.orphaned[0].owner_tid),
        (ThreadId::new(Pid(PID), Tid(1)), Some(Tid(77)))
    );
    assert_eq!(v.blocked_behind.len(), 1);
    assert_eq!(v.blocked_behind[0].thread, ThreadId::new(Pid(PID), Tid(2)));
    assert_eq!(v.blocked_behind[0].leads_to, Leads::Orphaned(0));
    assert!(v.all_blocked);
}

#[test]
fn unknown_owners_and_ownerless_objects_make_no_edges() {
    let v = verdict(&[
        (1, waits(ResourceKind::RwLock, 0x1, None, Confidence::Unknown)),
        // An owner TID with Unknown confidence is still not an edge.
        (2, waits(ResourceKind::Mutex, 0x2, Some(1), Confidence::Unknown)),
        (3, waits(ResourceKind::CondVar, 0x3, None, Confidence::Unknown)),
        (4, waits(ResourceKind::Semaphore, 0x4, None, Confidence::Unknown)),
    ]);
    assert!(v.deadlocks.is_empty() && v.blocked_behind.is_empty());
    assert_eq!(
        v.unknown_owner_waits
            .iter()
            .map(|w| w.thread.tid.get())
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        v.no_owner_waits.iter().map(|w| w.thread.tid.get()).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert!(v.all_blocked);
}

#[test]
fn inferred_edge_makes_an_inferred_deadlock() {
    let v = verdict(&[
        (1, waits(ResourceKind::RustMutex, 0x2, Some(2), Confidence::Inferred)),
        (2, waits_on(0x1, 1)),
    ]);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(v.deadlocks[0].confidence, Confidence::Inferred);
    assert_eq!(v.deadlocks[0].edges[0].confidence, Confidence::Inferred);
    assert_eq!(v.deadlocks[0].edges[1].confidence, Confidence::Exact);
}

#[test]
fn cross_process_cycle_through_shared_mutexes() {
    let shared = |addr: u64, pid: i32, off: u64, owner: (i32, i32)| ThreadFindings {
        wait: Some(Wait {
            resource: Resource {
                kind: ResourceKind::Mutex,
                address: Addr(addr),
                pid: Pid(pid),
                name: None,
                shared_key: Some((1, 99, off)),
            },
            owner: Owner::held_by(Pid(owner.0), Tid(owner.1), Confidence::Exact, String::new()),
            how: String::new(),
            site_frame: None,
            ends: crate::runtimes::Ends::WITH_CALL,
        }),
        holds: vec![],
        blocked_in: None,
        sleep: untimed(),
    };
    // Process 200 maps the file at 0x7000, process 300 at 0x9000; same offsets.
    let a = shared(0x7040, 200, 0x40, (300, 301));
    let b = shared(0x9000, 300, 0x0, (200, 201));
    let v = analyze([(Pid(200), Tid(201), &a), (Pid(300), Tid(301), &b)]);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(
        v.deadlocks[0].threads,
        vec![ThreadId::new(Pid(200), Tid(201)), ThreadId::new(Pid(300), Tid(301))]
    );
    assert_eq!(
        resource_key(&v.deadlocks[0].resources[0]),
        ResourceKey::Shared {
            dev: 1,
            inode: 99,
            offset: 0x40
        }
    );
}

#[test]
fn owners_outside_the_inspected_threads_do_not_count_as_running() {
    // Thread 1 waits on a lock held by a thread of process 999, which was not inspected.
    let mut f = waits_on(0xa, 5);
    if let Some(w) = f.wait.as_mut() {
        w.owner = Owner::held_by(
            Pid(999),
            w.owner.tid().unwrap(),
            w.owner.confidence(),
            w.owner.evidence(),
        );
    }
    let v = verdict(&[(1, f)]);
    assert!(v.all_blocked);
    assert!(v.deadlocks.is_empty());
    assert!(!verdict(&[]).all_blocked, "no threads: nothing to call blocked");
}

#[test]
fn deterministic_regardless_of_input_order() {
    let mut threads: Vec<(i32, ThreadFindings)> = vec![
        (4, waits_on(0x5, 5)),
        (5, waits_on(0x4, 4)),
        (1, waits_on(0x2, 2)),
        (2, waits_on(0x3, 3)),
        (3, waits_on(0x1, 1)),
        (6, waits_on(0x1, 1)),
        (7, waits(ResourceKind::CondVar, 0x9, None, Confidence::Unknown)),
        (8, waits(ResourceKind::Semaphore, 0x8, None, Confidence::Unknown)),
    ];
    let first = verdict(&threads);
    threads.reverse();
    assert_eq!(verdict(&threads), first);
    threads.swap(0, 3);
    assert_eq!(verdict(&threads), first);
}

#[test]
fn large_random_graph_is_bounded() {
    let mut x: u64 = 12345;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // 3000 threads, 3 outgoing edges each: one huge component with astronomically many cycles.
    let mut g = WaitGraph::new();
    let n = 3000u64;
    for a in 0..n {
        for _ in 0..3 {
            let b = next() % n;
            g.add_edge(Edge {
                from: ThreadId::new(Pid(PID), Tid(a as i32)),
                to: ThreadId::new(Pid(PID), Tid(b as i32)),
                resource: res(ResourceKind::Mutex, b),
                confidence: Confidence::Exact,
                evidence: String::new(),
            });
        }
    }
    let start = std::time::Instant::now();
    let v = g.verdict();
    assert!(v.cycles_truncated);
    let total: usize = v.deadlocks.iter().map(|d| d.edges.len()).sum();
    assert!(
        v.deadlocks.len() == MAX_CYCLES || total + 3000 > MAX_CYCLE_EDGES,
        "{} cycles, {total} edges",
        v.deadlocks.len()
    );
    assert!(v.deadlocks.len() <= MAX_CYCLES && total <= MAX_CYCLE_EDGES);
    for d in &v.deadlocks {
        // Every reported cycle is real: each edge exists and closes.
        assert_eq!(d.edges.len(), d.threads.len());
        for (i, e) in d.edges.iter().enumerate() {
            assert_eq!(e.from, d.threads[i]);
            assert_eq!(e.to, d.threads[(i + 1) % d.threads.len()]);
        }
    }
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());

    // A functional graph (one wait per thread) of 100k threads: deep chains, no recursion.
    let mut g = WaitGraph::new();
    for a in 0..100_000i32 {
        let b = if a == 0 { 99_999 } else { a - 1 };
        g.add_edge(Edge {
            from: ThreadId::new(Pid(PID), Tid(a)),
            to: ThreadId::new(Pid(PID), Tid(b)),
            resource: res(ResourceKind::Mutex, b as u64),
            confidence: Confidence::Exact,
            evidence: String::new(),
        });
    }
    let v = g.verdict();
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(v.deadlocks[0].threads.len(), 100_000);
    assert_eq!(v.deadlocks[0].threads[0], ThreadId::new(Pid(PID), Tid(0)));
}

// ---- asleep for good ---------------------------------------------------------

fn settled(threads: &[(i32, ThreadFindings)], signals: SignalWayOut) -> Verdict {
    let facts = [ProcessFacts {
        peers: Default::default(),
        pid: Pid(PID),
        signals,
        unexamined: None,
        pools: Vec::new(),
    }];
    let mut g = WaitGraph::new();
    for (t, f) in threads {
        g.add_thread(Pid(PID), Tid(*t), f);
    }
    let mut v = g.verdict();
    g.add_peers(&facts);
    settle(&mut v, &g, threads.iter().map(|(t, f)| (Pid(PID), Tid(*t), f)), &facts);
    v
}

/// Several processes, each with its threads and the peers of their reads
/// and child waits, settled as the pipeline does.
fn settled_tree(processes: &[(i32, Vec<(i32, ThreadFindings)>, Vec<(i32, Peers)>)]) -> Verdict {
    let facts: Vec<ProcessFacts> = processes
        .iter()
        .map(|(pid, _, peers)| ProcessFacts {
            pid: Pid(*pid),
            peers: peers.iter().map(|(t, p)| (Tid(*t), p.clone())).collect(),
            ..Default::default()
        })
        .collect();
    let threads = || {
        processes
            .iter()
            .flat_map(|(pid, ts, _)| ts.iter().map(move |(t, f)| (Pid(*pid), Tid(*t), f)))
    };
    let mut g = WaitGraph::new();
    for (pid, tid, f) in threads() {
        g.add_thread(pid, tid, f);
    }
    let mut v = g.verdict();
    g.add_peers(&facts);
    settle(&mut v, &g, threads(), &facts);
    v
}

/// A read of `what` that only the processes `pids` can end.
fn reads(what: &str, pids: &[i32]) -> Peers {
    Peers {
        what: what.into(),
        pids: pids.iter().map(|&p| Pid(p)).collect(),
        kind: PeerKind::Writers,
    }
}

fn t(pid: i32, tid: i32) -> ThreadId {
    ThreadId::new(Pid(pid), Tid(tid))
}

fn through(what: &str, pid: i32) -> CycleWait {
    CycleWait::Process {
        waits_on: what.into(),
        pid: Pid(pid),
        ended_by: PeerKind::Writers,
    }
}

/// Parent and child each read a pipe only the other writes: the graph
/// finds the cycle through both processes, and it explains their stuck
/// verdict (the kind stays stuck: a process is waited for as a whole).
#[test]
fn a_cycle_through_two_processes_explains_their_stuck_verdict() {
    let v = settled_tree(&[
        (
            100,
            vec![(100, input("read"))],
            vec![(100, reads("pipe:[1] (fd 3)", &[200]))],
        ),
        (
            200,
            vec![(200, input("read"))],
            vec![(200, reads("pipe:[2] (fd 4)", &[100]))],
        ),
    ]);
    assert_eq!(v.kind(), VerdictKind::Stuck);
    assert!(v.deadlocks.is_empty());
    assert_eq!(
        v.process_cycles,
        vec![ProcessCycle {
            threads: vec![t(100, 100), t(200, 200)],
            waits: vec![through("pipe:[1] (fd 3)", 200), through("pipe:[2] (fd 4)", 100)],
        }]
    );
}

/// A lock inside one of the processes is a step of the cycle like any
/// other: every elementary cycle through the processes is listed.
#[test]
fn a_cycle_through_processes_follows_locks_inside_them() {
    let mut behind_lock = waits_on(0x10, 202);
    if let Some(w) = behind_lock.wait.as_mut() {
        w.resource.pid = Pid(200);
        w.owner = Owner::held_by(Pid(200), Tid(202), Confidence::Exact, "__owner = 202");
    }
    let v = settled_tree(&[
        (
            100,
            vec![(101, input("read"))],
            vec![(101, reads("pipe:[1] (fd 3)", &[200]))],
        ),
        (
            200,
            vec![(201, behind_lock), (202, input("read"))],
            vec![(202, reads("pipe:[2] (fd 4)", &[100]))],
        ),
    ]);
    assert_eq!(v.kind(), VerdictKind::Stuck);
    let shapes: Vec<Vec<ThreadId>> = v.process_cycles.iter().map(|c| c.threads.clone()).collect();
    assert_eq!(
        shapes,
        vec![
            vec![t(100, 101), t(200, 201), t(200, 202)],
            vec![t(100, 101), t(200, 202)]
        ]
    );
    let lock_step = &v.process_cycles[0].waits[1];
    assert!(
        matches!(lock_step, CycleWait::Lock { resource, confidence: Confidence::Exact } if resource.address == Addr(0x10)),
        "{lock_step:?}"
    );
}

/// Controls: a process with a thread that can still run is no part of a
/// cycle (its reader is not asleep for good), and a thread reading a pipe
/// only its own process holds is stuck without a cycle through processes.
#[test]
fn no_process_cycle_while_a_thread_can_act_or_within_one_process() {
    let v = settled_tree(&[
        (
            100,
            vec![(100, input("read"))],
            vec![(100, reads("pipe:[1] (fd 3)", &[200]))],
        ),
        (
            200,
            vec![(200, input("read")), (201, running())],
            vec![(200, reads("pipe:[2] (fd 4)", &[100]))],
        ),
    ]);
    assert_eq!(v.kind(), VerdictKind::NoHangFound);
    assert!(v.process_cycles.is_empty());

    let v = settled_tree(&[(
        100,
        vec![(101, input("read")), (102, input("read"))],
        vec![
            (101, reads("pipe:[1] (fd 3)", &[100])),
            (102, reads("pipe:[2] (fd 4)", &[100])),
        ],
    )]);
    assert_eq!(v.kind(), VerdictKind::Stuck);
    assert!(v.process_cycles.is_empty(), "{:?}", v.process_cycles);
}

fn asleep(v: &Verdict, tid: i32) -> &Asleep {
    v.asleep
        .iter()
        .find(|a| a.thread == ThreadId::new(Pid(PID), Tid(tid)))
        .expect("judged")
}

fn ownerless(kind: ResourceKind, addr: u64) -> ThreadFindings {
    waits(kind, addr, None, Confidence::Unknown)
}

fn input(call: &str) -> ThreadFindings {
    ThreadFindings {
        blocked_in: Some(call.into()),
        sleep: Sleep::Input { call: call.into() },
        ..Default::default()
    }
}

#[test]
fn idle_pool_beside_sigwait_is_not_stuck() {
    let v = settled(
        &[
            (1, input("rt_sigtimedwait")),
            (2, ownerless(ResourceKind::CondVar, 0xc)),
            (3, ownerless(ResourceKind::CondVar, 0xc)),
        ],
        SignalWayOut::None,
    );
    assert!(v.stuck.is_empty(), "{:?}", v.stuck);
    assert_eq!(v.kind(), VerdictKind::NoHangFound);
    assert!(asleep(&v, 1).woken_from_outside);
    assert!(!asleep(&v, 2).asleep_for_good);
    assert_eq!(asleep(&v, 2).why, "thread 1 can still run and may wake it");
}

#[test]
fn pool_whose_every_thread_waits_is_stuck() {
    // main joins 2; 2 and 3 wait on a condvar nobody can signal.
    let v = settled(
        &[
            (1, waits(ResourceKind::Thread, 0xf, Some(2), Confidence::Exact)),
            (2, ownerless(ResourceKind::CondVar, 0xc)),
            (3, ownerless(ResourceKind::CondVar, 0xc)),
        ],
        SignalWayOut::None,
    );
    assert_eq!(v.kind(), VerdictKind::Stuck);
    assert_eq!(
        v.stuck,
        vec![Stuck {
            pid: Pid(PID),
            whole_process: true,
            threads: vec![
                ThreadId::new(Pid(PID), Tid(1)),
                ThreadId::new(Pid(PID), Tid(2)),
                ThreadId::new(Pid(PID), Tid(3))
            ]
        }]
    );
    assert_eq!(asleep(&v, 1).why, "its owner, thread 2, is itself asleep for good");
    // A C handler may post the condvar's waiters' wake-up: not stuck then.
    let v = settled(
        &[
            (1, waits(ResourceKind::Thread, 0xf, Some(2), Confidence::Exact)),
            (2, ownerless(ResourceKind::CondVar, 0xc)),
        ],
        SignalWayOut::Handler {
            signals: "SIGUSR1".into(),
        },
    );
    assert!(v.stuck.is_empty());
    assert!(asleep(&v, 2).why.contains("SIGUSR1"), "{}", asleep(&v, 2).why);
}

#[test]
fn timed_waits_are_never_asleep_for_good_and_mark_cycles() {
    let mut a = waits_on(0xb, 8);
    a.set_sleep(Sleep::Futex {
        timeout: Deadline::In(Timeout {
            in_ms: 2400,
            relative: false,
            clock: None,
        }),
    });
    let v = settled(&[(7, a.clone()), (8, waits_on(0xa, 7))], SignalWayOut::None);
    assert_eq!(v.kind(), VerdictKind::Deadlock, "still a deadlock");
    assert_eq!(v.breaks_by_timeout_ms, vec![Some(2400)]);
    assert_eq!(asleep(&v, 7).why, "a timed wait: times out in 2.4 s");
    assert!(v.stuck.is_empty(), "a timed wait in the process: {:?}", v.stuck);
    // A timeout longer than an hour leaves a plain deadlock.
    let mut later = a.sleep.clone();
    if let Sleep::Futex {
        timeout: Deadline::In(to),
    } = &mut later
    {
        to.in_ms = TIMEOUT_BREAKS_CYCLE_MS + 1;
    }
    a.set_sleep(later);
    let v = settled(&[(7, a), (8, waits_on(0xa, 7))], SignalWayOut::None);
    assert_eq!(v.breaks_by_timeout_ms, vec![None]);
}

/// A wait whose runtime says it does not end by itself (CPython's GIL
/// waits time out every 5 ms and wait again) is no way out, though its call
/// has a timeout: the graph takes the runtime's word, with no kind of its own.
#[test]
fn a_timed_call_whose_wait_does_not_end_is_no_way_out() {
    let mut a = waits_on(0xb, 8);
    a.wait.as_mut().unwrap().ends = Ends::NotByItself { why: "it loops" };
    a.set_sleep(Sleep::Futex {
        timeout: Deadline::In(Timeout {
            in_ms: 5,
            relative: false,
            clock: None,
        }),
    });
    let v = settled(&[(7, a), (8, waits_on(0xa, 7))], SignalWayOut::None);
    assert_eq!(v.kind(), VerdictKind::Deadlock);
    assert_eq!(v.breaks_by_timeout_ms, vec![None]);
    assert!(asleep(&v, 7).asleep_for_good, "{}", asleep(&v, 7).why);
}

#[test]
fn orphaned_waiter_is_stuck_even_beside_a_live_thread() {
    let mut w = waits_on(0xa, 9);
    if let Some(wait) = w.wait.as_mut() {
        wait.owner = Owner::exited(
            wait.owner.tid(),
            wait.owner.pid(),
            wait.owner.confidence(),
            "__owner = 9; thread 9 has exited",
        );
    }
    let v = settled(&[(1, input("read(fd 0)")), (2, w.clone())], SignalWayOut::None);
    assert_eq!(v.kind(), VerdictKind::Stuck);
    assert_eq!(
        v.stuck,
        vec![Stuck {
            pid: Pid(PID),
            whole_process: false,
            threads: vec![ThreadId::new(Pid(PID), Tid(2))]
        }]
    );
    assert_eq!(asleep(&v, 2).why, "its owner is gone: __owner = 9; thread 9 has exited");
    // A robust mutex whose owner died is handed over with EOWNERDEAD.
    if let Some(wait) = w.wait.as_mut() {
        wait.resource.kind = ResourceKind::RobustMutex;
    }
    let v = settled(&[(2, w)], SignalWayOut::None);
    assert!(v.stuck.is_empty());
    assert!(asleep(&v, 2).why.contains("EOWNERDEAD"));
}

#[test]
fn python_handler_running_and_uninterruptible_threads_veto() {
    let v = settled(
        &[(1, ownerless(ResourceKind::PyEvent, 0xe))],
        SignalWayOut::Python {
            signals: "SIGTERM".into(),
        },
    );
    assert!(v.stuck.is_empty());
    let d = ThreadFindings {
        sleep: Sleep::Uninterruptible,
        ..Default::default()
    };
    let v = settled(
        &[(1, ownerless(ResourceKind::Semaphore, 0xe)), (2, d)],
        SignalWayOut::None,
    );
    assert!(v.stuck.is_empty());
    assert!(asleep(&v, 2).woken_from_outside);
    let v = settled(
        &[(1, ownerless(ResourceKind::Semaphore, 0xe)), (2, running())],
        SignalWayOut::None,
    );
    assert!(v.stuck.is_empty());
    // Alone, nothing can post it.
    let v = settled(&[(1, ownerless(ResourceKind::Semaphore, 0xe))], SignalWayOut::None);
    assert_eq!(v.kind(), VerdictKind::Stuck);
}

// ---- pool starvation ------------------------------------------------------------

mod pools {
    use super::*;
    use crate::graph::pools::starved;
    use crate::runtimes::{Sleep, TaskPlace, TaskPool, TaskWait};

    fn cond_wait(timed: bool) -> ThreadFindings {
        let mut f = ownerless(ResourceKind::PyCondition, 0x500);
        f.set_sleep(Sleep::Futex {
            timeout: if timed { Deadline::Unread } else { Deadline::Never },
        });
        f
    }

    fn pool(places: &[(i32, TaskPlace)]) -> TaskPool {
        TaskPool {
            pid: Pid(PID),
            address: Addr(0x9000),
            kind: "ThreadPoolExecutor".into(),
            name: Some("ex".into()),
            thread_name_prefix: None,
            workers: vec![Tid(1), Tid(2)],
            max_workers: Some(2),
            started_threads: Some(2),
            queued: vec![Addr(0xa0), Addr(0xa1)],
            waits: places
                .iter()
                .map(|&(tid, place)| TaskWait {
                    tid: Tid(tid),
                    future: Addr(0xa0 + tid as u64),
                    future_name: None,
                    state: "PENDING".into(),
                    place,
                })
                .collect(),
        }
    }

    const Q0: TaskPlace = TaskPlace::Queued { position: 0 };
    const Q1: TaskPlace = TaskPlace::Queued { position: 1 };

    #[test]
    fn every_worker_waiting_on_a_queued_task_is_starvation() {
        let f = cond_wait(false);
        let p = pool(&[(1, Q0), (2, Q1), (3, TaskPlace::RunBy { tid: Tid(1) })]);
        let s = starved(&p, &|_| Some(&f)).expect("starved");
        assert_eq!(
            s.workers,
            vec![ThreadId::new(Pid(PID), Tid(1)), ThreadId::new(Pid(PID), Tid(2))]
        );
        assert_eq!(s.behind.len(), 1, "thread 3 waits behind the pool");
        // A worker waiting on a task another worker runs closes the cycle too.
        let p = pool(&[(1, Q0), (2, TaskPlace::RunBy { tid: Tid(1) })]);
        assert!(starved(&p, &|_| Some(&f)).is_ok());
    }

    #[test]
    fn a_way_out_means_no_starvation() {
        let untimed = cond_wait(false);
        let timed = cond_wait(true);
        // One worker free (not waiting on the pool).
        assert!(starved(&pool(&[(1, Q0)]), &|_| Some(&untimed)).is_err());
        // A timed result(timeout=...).
        assert!(starved(&pool(&[(1, Q0), (2, Q1)]), &|t| Some(if t == Tid(2) {
            &timed
        } else {
            &untimed
        }))
        .is_err());
        // The pool may start another worker.
        let mut p = pool(&[(1, Q0), (2, Q1)]);
        p.max_workers = Some(3);
        assert!(starved(&p, &|_| Some(&untimed)).is_err());
        // A started worker thread was not seen in the worker loop.
        let mut p = pool(&[(1, Q0), (2, Q1)]);
        p.started_threads = Some(3);
        assert!(starved(&p, &|_| Some(&untimed)).is_err());
        // The waiter sleeps on something else than the future's condition.
        let lock = ThreadFindings {
            sleep: Sleep::Futex {
                timeout: Deadline::Never,
            },
            ..waits(ResourceKind::PyLock, 0x600, None, Confidence::Unknown)
        };
        assert!(starved(&pool(&[(1, Q0), (2, Q1)]), &|t| Some(if t == Tid(2) {
            &lock
        } else {
            &untimed
        }))
        .is_err());
    }
}
