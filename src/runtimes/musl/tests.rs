//! musl waits from hand-built memory laid out as musl 1.2.3 lays it out.

use super::*;
use crate::ids::Tid;
use crate::memory::{BufferMemory, CopiedRegion};
use crate::runtimes::owners::testing::{futex, snapshot, thread, Symbols};
use crate::runtimes::owners::NoTasks;

const M: u64 = 0x40_e240; // a mutex
const N: u64 = 0x40_e280; // another

/// A musl mutex: `_m_type`@0, `_m_lock`@4, `_m_waiters`@8, `_m_prev`@24, `_m_next`@32.
fn mutex(type_: u32, lock: u32, waiters: u32, linked: bool) -> Vec<u8> {
    let mut b = vec![0u8; 40];
    b[0..4].copy_from_slice(&type_.to_le_bytes());
    b[4..8].copy_from_slice(&lock.to_le_bytes());
    b[8..12].copy_from_slice(&waiters.to_le_bytes());
    if linked {
        b[24..32].copy_from_slice(&0x7f00_0000_0010u64.to_le_bytes());
        b[32..40].copy_from_slice(&0x7f00_0000_0018u64.to_le_bytes());
    }
    b
}

fn analyze_of(snap: &crate::capture::Snapshot, mem: &BufferMemory, syms: &Symbols) -> Vec<ThreadFindings> {
    let view = ProcessView {
        snapshot: snap,
        stacks: &[],
        memory: mem,
        symbols: syms,
        calls: &crate::runtimes::syscalls::decode_all(snap, mem),
    };
    analyze_with(&view, &NoTasks)
}

/// The AB-BA of two ERRORCHECK mutexes, as /proc shows it: musl's value
/// argument is sign-extended (0xffffffff8000xxxx).
#[test]
fn errorcheck_cycle_owners_are_exact() {
    let mut bytes = mutex(2, 0x8000_0000 | 11, 1, true);
    bytes.extend(vec![0u8; 24]);
    bytes.extend(mutex(2, 0x8000_0000 | 12, 1, true));
    let mem = BufferMemory {
        regions: vec![CopiedRegion { start: M, bytes }],
    };
    let snap = snapshot(
        10,
        vec![
            thread(11, futex(M + 4, 128, 0xffff_ffff_8000_000b), 0),
            thread(12, futex(N + 4, 128, 0xffff_ffff_8000_000c), 0),
        ],
        vec![],
    );
    let syms = Symbols(vec![("lock_b".into(), M, 40), ("lock_a".into(), N, 40)]);
    let out = analyze_of(&snap, &mem, &syms);
    let w0 = out[0].wait.as_ref().expect("thread 11 waits");
    assert_eq!(
        (w0.resource.kind, w0.resource.address.get(), w0.resource.name.as_deref()),
        (ResourceKind::ErrorCheckMutex, M, Some("lock_b"))
    );
    assert_eq!(
        (w0.owner.tid().map(Tid::get), w0.owner.confidence()),
        (Some(11), Confidence::Exact)
    );
    assert_eq!(w0.owner.evidence(), "_m_lock = 0x8000000b: owner TID 11");
    let w1 = out[1].wait.as_ref().unwrap();
    assert_eq!((w1.resource.address.get(), w1.owner.tid().map(Tid::get)), (N, Some(12)));
    assert_eq!(w1.how, "pthread_mutex_lock (errorcheck)");
    assert_eq!(out[1].holds.len(), 1);
}

/// A NORMAL mutex stores EBUSY: no owner; with nobody pointing at it, unknown.
#[test]
fn normal_mutex_owner_is_not_made_up() {
    let mem = BufferMemory {
        regions: vec![CopiedRegion {
            start: M,
            bytes: mutex(0, 0x8000_0010, 1, false),
        }],
    };
    let snap = snapshot(
        10,
        vec![
            thread(11, futex(M + 4, 128, 0xffff_ffff_8000_0010), 0),
            thread(12, None, 0),
        ],
        vec![],
    );
    let syms = Symbols::default();
    let out = analyze_of(&snap, &mem, &syms);
    let w = out[0].wait.as_ref().unwrap();
    assert_eq!((w.resource.kind, w.resource.address.get()), (ResourceKind::Mutex, M));
    assert_eq!(w.owner.confidence(), Confidence::Unknown);
    assert!(
        w.owner.evidence().starts_with("musl's normal mutexes record no owner"),
        "{}",
        w.owner.evidence()
    );
    // A stale-looking word (not EBUSY) or a mutex the wrong futex flag names is not claimed.
    let snap2 = snapshot(10, vec![thread(11, futex(M + 4, 0, 0xffff_ffff_8000_0010), 0)], vec![]);
    assert!(analyze_of(&snap2, &mem, &syms)[0].wait.is_none());
}

/// pthread_join sleeps on the joined thread's detach_state (struct pthread + 0x38).
#[test]
fn join_names_the_joined_thread() {
    let pd = 0x7f00_0000_1000u64;
    let mut d = vec![0u8; 0x40];
    d[0..8].copy_from_slice(&pd.to_le_bytes());
    d[0x30..0x34].copy_from_slice(&12u32.to_le_bytes());
    d[0x38..0x3c].copy_from_slice(&2u32.to_le_bytes());
    let mem = BufferMemory {
        regions: vec![CopiedRegion { start: pd, bytes: d }],
    };
    let snap = snapshot(
        11,
        vec![thread(11, futex(pd + 0x38, 128, 2), 0x1000), thread(12, None, pd)],
        vec![],
    );
    let syms = Symbols::default();
    let out = analyze_of(&snap, &mem, &syms);
    let w = out[0].wait.as_ref().unwrap();
    assert_eq!(w.resource.kind, ResourceKind::Thread);
    assert_eq!(w.resource.name.as_deref(), Some("t12"));
    assert_eq!(
        (w.owner.tid().map(Tid::get), w.owner.confidence()),
        (Some(12), Confidence::Exact)
    );
    // The same word in a descriptor that is not the joined thread's fs_base: not claimed.
    let snap2 = snapshot(
        11,
        vec![thread(11, futex(pd + 0x38, 128, 2), 0x1000), thread(12, None, 0x9000)],
        vec![],
    );
    assert!(analyze_of(&snap2, &mem, &syms)[0].wait.is_none());
}

/// rwlock: write-locked (0x7fffffff) vs held by readers; no owner recorded.
#[test]
fn rwlock_waits() {
    let mut b = vec![0u8; 56];
    b[0..4].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    let mem = BufferMemory {
        regions: vec![CopiedRegion { start: M, bytes: b }],
    };
    let snap = snapshot(10, vec![thread(11, futex(M, 128, 0xffff_ffff_ffff_ffff), 0)], vec![]);
    let syms = Symbols::default();
    let out = analyze_of(&snap, &mem, &syms);
    let w = out[0].wait.as_ref().unwrap();
    assert_eq!((w.resource.kind, w.resource.address.get()), (ResourceKind::RwLock, M));
    assert!(w.how.contains("blocked by a writer"), "{}", w.how);
    assert_eq!(w.owner.confidence(), Confidence::Unknown);
}
