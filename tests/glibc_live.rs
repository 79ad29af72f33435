//! The glibc analyzer and the wait-for graph against real, blocked glibc
//! programs (tests/data/native/*.c). Each fixture prints the TIDs and object
//! addresses it created; the test asserts that lockdump finds exactly those,
//! from a snapshot with no unwound stacks (memory and futex arguments only).

mod common;

use common::build::native_c;
use common::inproc::{analyze, capture, index_of, KvFixture};
use common::wait::wait_in_syscall;
use common::SYS_FUTEX;
use lockdump::test_support::graph::{self, Leads};
use lockdump::test_support::ids::{Pid, Tid};
use lockdump::test_support::runtimes::glibc::layout::{LayoutSource, PthreadLayout};
use lockdump::test_support::runtimes::{Confidence, ResourceKind, ThreadFindings, Wait};
use lockdump::Snapshot;

fn wait_of<'a>(snap: &Snapshot, out: &'a [ThreadFindings], tid: i32) -> &'a Wait {
    out[index_of(snap, tid)]
        .wait
        .as_ref()
        .unwrap_or_else(|| panic!("thread {tid} has no wait: {:?}", out[index_of(snap, tid)]))
}

fn verdict(snap: &Snapshot, out: &[ThreadFindings]) -> graph::Verdict {
    graph::analyze(snap.threads.iter().zip(out).map(|(t, f)| (snap.pid, t.tid, f)))
}

#[test]
fn every_lock_kind_with_exact_owner() {
    let exe = native_c("kinds");
    let fx = KvFixture::start(&exe, &[]);
    let waiters: Vec<i32> = (1..=14).map(|k| fx.tid(&format!("w{k}"))).collect();
    let (main, holder) = (fx.tid("main"), fx.tid("holder"));
    wait_in_syscall(fx.pid, &waiters, SYS_FUTEX);
    wait_in_syscall(fx.pid, &[main], SYS_FUTEX);
    wait_in_syscall(fx.pid, &[holder], 0); // read(pipe)
    let snap = capture(fx.pid);
    let out = analyze(&snap);

    // struct pthread's tid offset comes from libc's own _thread_db descriptor.
    let syms = common::inproc::symbols(&snap);
    let layout = PthreadLayout::discover(&syms, &snap.memory());
    assert_eq!(layout.source, LayoutSource::ThreadDb);
    assert_eq!((layout.tid, layout.robust_head, layout.cleanup), (0x2d0, 0x2e0, 0x2f8));

    let exact_holder = |w: &Wait| {
        assert_eq!(w.owner.tid().map(Tid::get), Some(holder), "{w:?}");
        assert_eq!(w.owner.pid().map(Pid::get), Some(fx.pid), "{w:?}");
        assert_eq!(w.owner.confidence(), Confidence::Exact, "{w:?}");
        assert!(!w.owner.is_exited());
    };
    let cases = [
        (
            1,
            "m_rec",
            ResourceKind::RecursiveMutex,
            "pthread_mutex_lock (recursive)",
        ),
        (
            2,
            "m_err",
            ResourceKind::ErrorCheckMutex,
            "pthread_mutex_lock (errorcheck)",
        ),
        (
            3,
            "m_adapt",
            ResourceKind::AdaptiveMutex,
            "pthread_mutex_lock (adaptive)",
        ),
        (
            4,
            "m_robust",
            ResourceKind::RobustMutex,
            "pthread_mutex_lock (normal, robust)",
        ),
        (
            5,
            "m_pi",
            ResourceKind::PiMutex,
            "pthread_mutex_lock (normal, priority-inheritance)",
        ),
        (
            6,
            "m_pshared",
            ResourceKind::Mutex,
            "pthread_mutex_lock (normal, process-shared)",
        ),
        (
            7,
            "rw_w",
            ResourceKind::RwLock,
            "pthread_rwlock_wrlock (blocked by a writer)",
        ),
        (
            8,
            "rw_w",
            ResourceKind::RwLock,
            "pthread_rwlock_rdlock (blocked by a writer)",
        ),
        (13, "m_normal", ResourceKind::Mutex, "pthread_mutex_timedlock (normal)"),
        (14, "m_normal", ResourceKind::Mutex, "pthread_mutex_lock (normal)"),
    ];
    for (k, obj, kind, how) in cases {
        let w = wait_of(&snap, &out, fx.tid(&format!("w{k}")));
        assert_eq!(w.resource.address.get(), fx.addr(obj), "w{k}: {w:?}");
        assert_eq!(w.resource.kind, kind, "w{k}");
        assert_eq!(w.how, how, "w{k}");
        assert_eq!(w.resource.pid.get(), fx.pid);
        exact_holder(w);
        if obj != "m_pshared" {
            // Data symbols of the executable name the objects.
            assert_eq!(w.resource.name.as_deref(), Some(obj), "w{k}");
            assert_eq!(w.resource.shared_key, None);
        }
    }
    // The robust owner comes from the lock word, the others from __owner / __cur_writer.
    let robust = wait_of(&snap, &out, fx.tid("w4"));
    assert!(
        robust
            .owner
            .evidence()
            .contains(&format!("{:#x}", 0x8000_0000u32 | holder as u32)),
        "{}",
        robust.owner.evidence()
    );
    assert_eq!(
        wait_of(&snap, &out, fx.tid("w7")).owner.evidence(),
        format!("__cur_writer = {holder}")
    );
    assert_eq!(
        wait_of(&snap, &out, fx.tid("w14")).owner.evidence(),
        format!("__owner = {holder}")
    );
    // The process-shared mutex lives in a MAP_SHARED mapping: it has a cross-process identity.
    let ps = wait_of(&snap, &out, fx.tid("w6"));
    let m = snap.mapping(ps.resource.address.get()).expect("mapping");
    assert!(m.shared);
    assert_eq!(
        ps.resource.shared_key,
        Some(((u64::from(m.dev_major) << 32) | u64::from(m.dev_minor), m.inode, 0))
    );

    // A writer blocked by readers: no owner, and it says why.
    let rr = wait_of(&snap, &out, fx.tid("w9"));
    assert_eq!(
        (rr.resource.kind, rr.resource.address.get()),
        (ResourceKind::RwLock, fx.addr("rw_r"))
    );
    assert_eq!(rr.how, "pthread_rwlock_wrlock (blocked by 1 reader(s))");
    assert_eq!(rr.owner.confidence(), Confidence::Unknown);
    assert!(rr
        .owner
        .evidence()
        .contains("glibc does not record which threads hold read locks"));

    // Objects without owners.
    let c = wait_of(&snap, &out, fx.tid("w10"));
    assert_eq!(
        (c.resource.kind, c.resource.address.get()),
        (ResourceKind::CondVar, fx.addr("cond"))
    );
    assert_eq!(
        c.how,
        format!("pthread_cond_wait (with mutex m_cond at {})", fx.get("m_cond"))
    );
    let s = wait_of(&snap, &out, fx.tid("w11"));
    assert_eq!(
        (s.resource.kind, s.resource.address.get()),
        (ResourceKind::Semaphore, fx.addr("sem"))
    );
    let b = wait_of(&snap, &out, fx.tid("w12"));
    assert_eq!(
        (b.resource.kind, b.resource.address.get()),
        (ResourceKind::Barrier, fx.addr("barrier"))
    );
    assert_eq!(b.how, "pthread_barrier_wait (1 of 2 arrived)");
    for w in [c, s, b] {
        assert_eq!(w.owner.confidence(), Confidence::Unknown);
    }

    // main joins the holder: the futex is the holder's struct pthread tid field.
    let j = wait_of(&snap, &out, main);
    assert_eq!(j.resource.kind, ResourceKind::Thread);
    assert_eq!(j.resource.address.get(), fx.addr("holder_pd") + 0x2d0);
    assert_eq!(j.resource.name.as_deref(), Some("holder"));
    exact_holder(j);

    // The holder is blocked in read() and holds everything it locked.
    let h = &out[index_of(&snap, holder)];
    assert!(h.wait.is_none());
    assert_eq!(
        h.blocked_in.as_deref(),
        Some(format!("read(fd {})", fx.get("pipe")).as_str())
    );
    let mut held: Vec<u64> = h.holds.iter().map(|x| x.resource.address.get()).collect();
    held.sort_unstable();
    let mut expect: Vec<u64> = [
        "m_rec",
        "m_err",
        "m_adapt",
        "m_robust",
        "m_pi",
        "m_pshared",
        "m_normal",
        "rw_w",
    ]
    .iter()
    .map(|k| fx.addr(k))
    .collect();
    expect.sort_unstable();
    assert_eq!(held, expect);
    assert!(h.holds.iter().all(|x| x.confidence == Confidence::Exact));
    let robust_hold = h
        .holds
        .iter()
        .find(|x| x.resource.address.get() == fx.addr("m_robust"))
        .unwrap();
    assert_eq!(robust_hold.resource.kind, ResourceKind::RobustMutex);

    // No cycle, but nothing runs.
    let v = verdict(&snap, &out);
    assert!(v.deadlocks.is_empty(), "{:?}", v.deadlocks);
    assert!(v.all_blocked);
    assert_eq!(v.no_owner_waits.len(), 3);
    assert_eq!(v.unknown_owner_waits.len(), 1);
    assert_eq!(
        v.unknown_owner_waits[0].thread,
        graph::ThreadId::new(Pid(fx.pid), Tid(fx.tid("w9")))
    );

    // The ptrace stop interrupted the timed wait: the kernel resumes it through
    // restart_syscall (219), whose argument registers still hold the futex call.
    let timed = fx.tid("w13");
    wait_in_syscall(fx.pid, &[timed], lockdump::test_support::capture::SYS_RESTART_SYSCALL);
    let again = capture(fx.pid);
    let sys = again.thread(Tid(timed)).and_then(|t| t.syscall).expect("syscall");
    assert!(sys.restarted);
    let out2 = analyze(&again);
    let w = wait_of(&again, &out2, timed);
    assert_eq!(
        (w.resource.address.get(), w.how.as_str()),
        (fx.addr("m_normal"), "pthread_mutex_timedlock (normal)")
    );
    exact_holder(w);
}

/// Start a fixture, wait until `tids` sleep in futex waits, capture and analyze.
fn run_blocked(name: &str, keys: &[&str]) -> (KvFixture, Snapshot, Vec<ThreadFindings>) {
    let exe = native_c(name);
    let fx = KvFixture::start(&exe, &[]);
    let tids: Vec<i32> = keys.iter().map(|k| fx.tid(k)).collect();
    wait_in_syscall(fx.pid, &tids, SYS_FUTEX);
    let snap = capture(fx.pid);
    let out = analyze(&snap);
    (fx, snap, out)
}

#[test]
fn abba_deadlock_with_main_blocked_behind() {
    let (fx, snap, out) = run_blocked("abba", &["main", "t1", "t2"]);
    let (main, t1, t2) = (fx.tid("main"), fx.tid("t1"), fx.tid("t2"));
    let w1 = wait_of(&snap, &out, t1);
    assert_eq!(
        (w1.resource.address.get(), w1.resource.name.as_deref()),
        (fx.addr("lock_b"), Some("lock_b"))
    );
    assert_eq!(
        (w1.owner.tid().map(Tid::get), w1.owner.confidence()),
        (Some(t2), Confidence::Exact)
    );
    let w2 = wait_of(&snap, &out, t2);
    assert_eq!(
        (w2.resource.address.get(), w2.owner.tid().map(Tid::get)),
        (fx.addr("lock_a"), Some(t1))
    );

    let v = verdict(&snap, &out);
    assert_eq!(v.deadlocks.len(), 1, "{v:#?}");
    let d = &v.deadlocks[0];
    let pid = fx.pid;
    assert_eq!(
        d.threads,
        vec![
            graph::ThreadId::new(Pid(pid), Tid(t1.min(t2))),
            graph::ThreadId::new(Pid(pid), Tid(t1.max(t2)))
        ]
    );
    assert_eq!(d.confidence, Confidence::Exact);
    let mut names: Vec<&str> = d.resources.iter().filter_map(|r| r.name.as_deref()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["lock_a", "lock_b"]);
    // main joins t1 ("worker-1"), which is in the cycle.
    assert_eq!(v.blocked_behind.len(), 1);
    let bb = &v.blocked_behind[0];
    assert_eq!(bb.thread, graph::ThreadId::new(Pid(pid), Tid(main)));
    assert_eq!(bb.leads_to, Leads::Deadlock(0));
    assert_eq!(bb.chain.len(), 1);
    assert_eq!(bb.chain[0].to, graph::ThreadId::new(Pid(pid), Tid(t1)));
    assert_eq!(bb.chain[0].resource.kind, ResourceKind::Thread);
    assert_eq!(bb.chain[0].resource.name.as_deref(), Some("worker-1"));
    assert!(v.all_blocked);
    // Holds: each worker holds the lock the other waits for.
    let holds = |tid: i32| -> Vec<u64> {
        out[index_of(&snap, tid)]
            .holds
            .iter()
            .map(|h| h.resource.address.get())
            .collect()
    };
    assert_eq!(holds(t1), vec![fx.addr("lock_a")]);
    assert_eq!(holds(t2), vec![fx.addr("lock_b")]);
}

#[test]
fn threads_joining_each_other_deadlock() {
    let (fx, snap, out) = run_blocked("joincycle", &["main", "t1", "t2"]);
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let w1 = wait_of(&snap, &out, t1);
    assert_eq!(w1.resource.kind, ResourceKind::Thread);
    assert_eq!(w1.resource.address.get(), fx.addr("pd2") + 0x2d0);
    assert_eq!(
        (w1.owner.tid().map(Tid::get), w1.owner.confidence()),
        (Some(t2), Confidence::Exact)
    );
    let w2 = wait_of(&snap, &out, t2);
    assert_eq!(w2.resource.address.get(), fx.addr("pd1") + 0x2d0);
    assert_eq!(w2.owner.tid().map(Tid::get), Some(t1));
    let v = verdict(&snap, &out);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(
        v.deadlocks[0].threads,
        vec![
            graph::ThreadId::new(Pid(fx.pid), Tid(t1.min(t2))),
            graph::ThreadId::new(Pid(fx.pid), Tid(t1.max(t2)))
        ]
    );
    assert!(v.deadlocks[0].resources.iter().all(|r| r.kind == ResourceKind::Thread));
    assert_eq!(v.blocked_behind.len(), 1);
    assert_eq!(
        v.blocked_behind[0].thread,
        graph::ThreadId::new(Pid(fx.pid), Tid(fx.tid("main")))
    );
}

#[test]
fn lock_held_by_exited_thread_is_orphaned() {
    let (fx, snap, out) = run_blocked("orphan", &["main", "waiter"]);
    let (dead, waiter) = (fx.tid("dead"), fx.tid("waiter"));
    assert!(snap.thread(Tid(dead)).is_none());
    let w = wait_of(&snap, &out, waiter);
    assert_eq!(
        (w.resource.address.get(), w.resource.name.as_deref()),
        (fx.addr("orphan_lock"), Some("orphan_lock"))
    );
    assert_eq!(w.owner.tid().map(Tid::get), Some(dead));
    assert!(w.owner.is_exited(), "{:?}", w.owner);
    assert!(
        w.owner.evidence().contains(&format!("thread {dead} has exited")),
        "{}",
        w.owner.evidence()
    );
    let v = verdict(&snap, &out);
    assert!(v.deadlocks.is_empty());
    assert_eq!(v.orphaned.len(), 1);
    assert_eq!(
        (v.orphaned[0].thread, v.orphaned[0].owner_tid),
        (graph::ThreadId::new(Pid(fx.pid), Tid(waiter)), Some(Tid(dead)))
    );
    assert_eq!(v.blocked_behind.len(), 1);
    assert_eq!(
        v.blocked_behind[0].thread,
        graph::ThreadId::new(Pid(fx.pid), Tid(fx.tid("main")))
    );
    assert_eq!(v.blocked_behind[0].leads_to, Leads::Orphaned(0));
}

#[test]
fn relocking_a_normal_mutex_is_a_self_deadlock() {
    let (fx, snap, out) = run_blocked("selfdead", &["main", "t"]);
    let t = fx.tid("t");
    let w = wait_of(&snap, &out, t);
    assert_eq!(
        (w.resource.address.get(), w.owner.tid().map(Tid::get)),
        (fx.addr("self_lock"), Some(t))
    );
    let held: Vec<u64> = out[index_of(&snap, t)]
        .holds
        .iter()
        .map(|h| h.resource.address.get())
        .collect();
    assert_eq!(held, vec![fx.addr("self_lock")]);
    let v = verdict(&snap, &out);
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(v.deadlocks[0].threads, vec![graph::ThreadId::new(Pid(fx.pid), Tid(t))]);
    assert_eq!(v.deadlocks[0].resources[0].name.as_deref(), Some("self_lock"));
}

#[test]
fn five_philosophers_cycle_over_a_fork_array() {
    let keys = ["p0", "p1", "p2", "p3", "p4"];
    let (fx, snap, out) = run_blocked("philosophers", &keys);
    let p: Vec<i32> = keys.iter().map(|k| fx.tid(k)).collect();
    let forks = fx.addr("forks");
    for i in 0..5 {
        let w = wait_of(&snap, &out, p[i]);
        let next = (i + 1) % 5;
        assert_eq!(w.resource.address.get(), forks + 40 * next as u64);
        let name = if next == 0 {
            "forks".to_string()
        } else {
            format!("forks+{:#x}", 40 * next)
        };
        assert_eq!(w.resource.name.as_deref(), Some(name.as_str()));
        assert_eq!(w.owner.tid().map(Tid::get), Some(p[next]));
    }
    let v = verdict(&snap, &out);
    assert_eq!(v.deadlocks.len(), 1);
    let d = &v.deadlocks[0];
    assert_eq!(d.threads.len(), 5);
    // Cycle order from the lowest TID, following the waits.
    let lowest = *p.iter().min().unwrap();
    assert_eq!(d.threads[0], graph::ThreadId::new(Pid(fx.pid), Tid(lowest)));
    for (k, e) in d.edges.iter().enumerate() {
        let i = p
            .iter()
            .position(|&t| graph::ThreadId::new(Pid(fx.pid), Tid(t)) == e.from)
            .unwrap();
        assert_eq!(e.to, graph::ThreadId::new(Pid(fx.pid), Tid(p[(i + 1) % 5])));
        assert_eq!(d.threads[(k + 1) % 5], e.to);
    }
}

#[test]
fn two_processes_deadlock_on_process_shared_mutexes() {
    let exe = native_c("pshared_pair");
    let fx = KvFixture::start(&exe, &[]);
    let (parent, child) = (fx.tid("parent"), fx.tid("child"));
    wait_in_syscall(parent, &[parent], SYS_FUTEX);
    wait_in_syscall(child, &[child], SYS_FUTEX);
    let (sp, sc) = (capture(parent), capture(child));
    let (op, oc) = (analyze(&sp), analyze(&sc));
    let wp = wait_of(&sp, &op, parent);
    let wc = wait_of(&sc, &oc, child);
    assert_eq!(wp.resource.address.get(), fx.addr("b"));
    assert_eq!(
        (wp.owner.tid().map(Tid::get), wp.owner.pid().map(Pid::get)),
        (Some(child), Some(child))
    );
    assert_eq!(
        (wc.owner.tid().map(Tid::get), wc.owner.pid().map(Pid::get)),
        (Some(parent), Some(parent))
    );
    assert_eq!(wp.how, "pthread_mutex_lock (normal, process-shared)");
    // The same mutex (b) seen from both processes has one identity.
    let key_b = wp.resource.shared_key.expect("shared key");
    assert_eq!(key_b.2, 40, "b is the second 40-byte mutex of the shared page");
    let v = graph::analyze(
        sp.threads
            .iter()
            .zip(&op)
            .map(|(t, f)| (sp.pid, t.tid, f))
            .chain(sc.threads.iter().zip(&oc).map(|(t, f)| (sc.pid, t.tid, f))),
    );
    assert_eq!(v.deadlocks.len(), 1, "{v:#?}");
    assert_eq!(
        v.deadlocks[0].threads,
        vec![
            graph::ThreadId::new(Pid(parent), Tid(parent)),
            graph::ThreadId::new(Pid(child), Tid(child))
        ]
    );
    let keys: Vec<_> = v.deadlocks[0]
        .resources
        .iter()
        .map(|r| r.shared_key.map(|k| k.2))
        .collect();
    assert_eq!(keys, vec![Some(40), Some(0)]);
}
