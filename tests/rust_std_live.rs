//! Rust std lock waits against a real Rust program (tests/data/native/rust_locks.rs,
//! built with `rustc -O`): the lock addresses come from futex arguments, the
//! owners are inferred from the other threads' frames (the code each frame
//! has run: no DWARF locals here), and the resulting deadlock is reported
//! with Inferred confidence, never Exact.

mod common;

use common::build::native_rust;
use common::inproc::{analyze_with_stacks, capture, index_of, KvFixture};
use common::wait::{wait_for_thread_count, wait_in_syscall};
use common::SYS_FUTEX;
use lockdump::test_support::graph;
use lockdump::test_support::ids::{Pid, Tid};
use lockdump::test_support::runtimes::{Confidence, ResourceKind};

fn run(
    mode: &str,
) -> (
    KvFixture,
    lockdump::Snapshot,
    Vec<lockdump::test_support::runtimes::ThreadFindings>,
) {
    let exe = native_rust("rust_locks");
    let fx = KvFixture::start(&exe, &[mode]);
    let tids = [fx.tid("main"), fx.tid("t1"), fx.tid("t2")];
    // The reporter thread exits after READY; until then main may be joining it rather than t1.
    wait_for_thread_count(fx.pid, 3);
    wait_in_syscall(fx.pid, &tids, SYS_FUTEX);
    let snap = capture(fx.pid);
    let out = analyze_with_stacks(&snap, true);
    (fx, snap, out)
}

fn check_abba(mode: &str, named: bool) {
    let (fx, snap, out) = run(mode);
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let (a, b) = (fx.addr("a"), fx.addr("b"));
    let w1 = out[index_of(&snap, t1)].wait.as_ref().expect("t1 waits");
    let w2 = out[index_of(&snap, t2)].wait.as_ref().expect("t2 waits");
    assert_eq!(
        (w1.resource.kind, w1.resource.address.get()),
        (ResourceKind::RustMutex, b)
    );
    assert_eq!(
        (w2.resource.kind, w2.resource.address.get()),
        (ResourceKind::RustMutex, a)
    );
    if named {
        assert_eq!(w1.resource.name.as_deref(), Some("rust_locks::LOCK_B"));
    }
    assert_eq!(
        (w1.owner.tid().map(Tid::get), w1.owner.confidence()),
        (Some(t2), Confidence::Inferred),
        "{:?}",
        w1.owner
    );
    assert_eq!(
        (w2.owner.tid().map(Tid::get), w2.owner.confidence()),
        (Some(t1), Confidence::Inferred),
        "{:?}",
        w2.owner
    );
    assert!(
        w1.owner.evidence().contains(&format!("thread {t2} is in frame #")),
        "{}",
        w1.owner.evidence()
    );

    let v = graph::analyze(snap.threads.iter().zip(&out).map(|(t, f)| (snap.pid, t.tid, f)));
    assert_eq!(v.deadlocks.len(), 1, "{v:#?}");
    let d = &v.deadlocks[0];
    assert_eq!(
        d.threads,
        vec![
            graph::ThreadId::new(Pid(fx.pid), Tid(t1.min(t2))),
            graph::ThreadId::new(Pid(fx.pid), Tid(t1.max(t2)))
        ]
    );
    assert_eq!(d.confidence, Confidence::Inferred);
    // main joins t1 (an exact edge) and is blocked behind the cycle.
    assert_eq!(v.blocked_behind.len(), 1);
    assert_eq!(
        v.blocked_behind[0].thread,
        graph::ThreadId::new(Pid(fx.pid), Tid(fx.tid("main")))
    );
    assert_eq!(v.blocked_behind[0].chain[0].confidence, Confidence::Exact);
    assert_eq!(v.blocked_behind[0].chain[0].resource.name.as_deref(), Some("rust-1"));
}

#[test]
fn static_mutex_abba_is_an_inferred_deadlock() {
    check_abba("static", true);
}

#[test]
fn arc_mutex_abba_is_an_inferred_deadlock() {
    check_abba("arc", false);
}

/// With the whole `lockdump::test_support::inspect` pipeline, the owner is the frame whose
/// code took the lock and has not returned: `lock_then`, which holds the
/// guard (its `lock cmpxchg` on the lock, through a callee-saved register).
#[test]
fn arc_mutex_pointer_is_found_in_the_frame_holding_the_guard() {
    let exe = native_rust("rust_locks");
    let fx = KvFixture::start(&exe, &["arc"]);
    let tids = [fx.tid("main"), fx.tid("t1"), fx.tid("t2")];
    wait_for_thread_count(fx.pid, 3);
    wait_in_syscall(fx.pid, &tids, SYS_FUTEX);
    let opts = lockdump::Options {
        max_frames: 64,
        ..Default::default()
    };
    let i =
        lockdump::test_support::inspect::inspect(fx.pid, &opts, &lockdump::test_support::symbols::ModuleCache::new())
            .unwrap_or_else(|e| panic!("inspecting {}: {e}", fx.pid));
    for (waiter, holder) in [("t1", "t2"), ("t2", "t1")] {
        let k = index_of(&i.snapshot, fx.tid(waiter));
        let w = i.findings[k].wait.as_ref().expect("waits");
        let ev = &w.owner.evidence();
        assert_eq!(w.owner.tid().map(Tid::get), Some(fx.tid(holder)), "{ev}");
        let want = format!("thread {} is in frame #", fx.tid(holder));
        assert!(ev.contains(&want), "{waiter}: {ev}");
        let frame = ev
            .split(" is in frame #")
            .nth(1)
            .unwrap_or_else(|| panic!("no frame: {ev}"));
        assert!(
            frame.contains(" (rust_locks::lock_then), whose code took the lock"),
            "{waiter}: {ev}"
        );
    }
}

#[test]
fn rwlock_writer_and_mutex_cycle() {
    let (fx, snap, out) = run("rwlock");
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let (rw, m) = (fx.addr("a"), fx.addr("b"));
    let w1 = out[index_of(&snap, t1)].wait.as_ref().unwrap();
    assert_eq!(
        (w1.resource.kind, w1.resource.address.get()),
        (ResourceKind::RustMutex, m)
    );
    assert_eq!(w1.owner.tid().map(Tid::get), Some(t2));
    let w2 = out[index_of(&snap, t2)].wait.as_ref().unwrap();
    assert_eq!(
        (w2.resource.kind, w2.resource.address.get()),
        (ResourceKind::RustRwLock, rw)
    );
    assert_eq!(w2.how, "std::sync::RwLock::write");
    assert_eq!(w2.resource.name.as_deref(), Some("rust_locks::RW"));
    assert_eq!(
        (w2.owner.tid().map(Tid::get), w2.owner.confidence()),
        (Some(t1), Confidence::Inferred),
        "{:?}",
        w2.owner
    );
    let v = graph::analyze(snap.threads.iter().zip(&out).map(|(t, f)| (snap.pid, t.tid, f)));
    assert_eq!(v.deadlocks.len(), 1);
    assert_eq!(v.deadlocks[0].confidence, Confidence::Inferred);
}
