//! glibc analyzer over hand-built memory images.

use super::*;
use crate::capture::{Snapshot, SyscallState};
use crate::ids::{Pid, Tid};
use crate::memory::{BufferMemory, CopiedRegion};
use crate::runtimes::frames::testing::stack;
use crate::runtimes::owners::testing::{anon_map, futex, snapshot, thread, Symbols, Tasks};
use crate::runtimes::owners::NoTasks;

const BASE: u64 = 0x10000;
const PID: i32 = 10;

/// A zeroed memory image at [`BASE`] that tests poke objects into.
struct Image(Vec<u8>);

impl Image {
    fn new() -> Self {
        Image(vec![0; 0x10000])
    }
    fn put(&mut self, addr: u64, bytes: &[u8]) -> &mut Self {
        let off = (addr - BASE) as usize;
        self.0[off..off + bytes.len()].copy_from_slice(bytes);
        self
    }
    fn u32(&mut self, addr: u64, v: u32) -> &mut Self {
        self.put(addr, &v.to_le_bytes())
    }
    fn u64(&mut self, addr: u64, v: u64) -> &mut Self {
        self.put(addr, &v.to_le_bytes())
    }
    fn mutex(&mut self, addr: u64, lock: u32, owner: i32, kind: i32) -> &mut Self {
        self.u32(addr, lock)
            .u32(addr + 8, owner as u32)
            .u32(addr + 12, 1)
            .u32(addr + 16, kind as u32)
    }
    fn memory(&self) -> BufferMemory {
        BufferMemory {
            regions: vec![CopiedRegion {
                start: BASE,
                bytes: self.0.clone(),
            }],
        }
    }
}

fn run(snap: &Snapshot, img: &Image, syms: &Symbols, stacks: &[Stack], tasks: &dyn TaskTable) -> Vec<ThreadFindings> {
    let mem = img.memory();
    let view = ProcessView {
        snapshot: snap,
        stacks,
        memory: &mem,
        calls: &crate::runtimes::syscalls::decode_all(snap, &mem),
        symbols: syms,
    };
    analyze_with(&view, tasks)
}

fn wait(f: &ThreadFindings) -> &Wait {
    f.wait.as_ref().expect("a wait")
}

const LOCK_A: u64 = BASE + 0x100;
const LOCK_B: u64 = BASE + 0x140;

fn lock_symbols() -> Symbols {
    Symbols(vec![("lock_a".into(), LOCK_A, 40), ("lock_b".into(), LOCK_B, 40)])
}

#[test]
fn abba_normal_mutexes_have_exact_owners_and_holds() {
    let mut img = Image::new();
    img.mutex(LOCK_A, 2, 10, 0).mutex(LOCK_B, 2, 11, 0);
    let snap = snapshot(
        PID,
        vec![
            thread(10, futex(LOCK_B, 128, 2), 0),
            thread(11, futex(LOCK_A, 128, 2), 0),
        ],
        vec![],
    );
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    let w0 = wait(&out[0]);
    assert_eq!(w0.resource.kind, ResourceKind::Mutex);
    assert_eq!(w0.resource.address.get(), LOCK_B);
    assert_eq!(w0.resource.name.as_deref(), Some("lock_b"));
    assert_eq!(w0.resource.pid.get(), PID);
    assert_eq!(w0.resource.shared_key, None);
    assert_eq!(
        (
            w0.owner.tid().map(Tid::get),
            w0.owner.pid().map(Pid::get),
            w0.owner.confidence()
        ),
        (Some(11), Some(PID), Confidence::Exact)
    );
    assert_eq!(w0.owner.evidence(), "__owner = 11");
    assert_eq!(w0.how, "pthread_mutex_lock (normal)");
    let w1 = wait(&out[1]);
    assert_eq!(
        (w1.resource.address.get(), w1.owner.tid().map(Tid::get)),
        (LOCK_A, Some(10))
    );
    // Each thread holds the lock the other waits for.
    assert_eq!(out[0].holds.len(), 1);
    assert_eq!(out[0].holds[0].resource.address.get(), LOCK_A);
    assert_eq!(out[0].holds[0].confidence, Confidence::Exact);
    assert_eq!(out[1].holds[0].resource.name.as_deref(), Some("lock_b"));
}

#[test]
fn mutex_types_map_to_kinds() {
    let cases = [
        (1, ResourceKind::RecursiveMutex, "recursive"),
        (2, ResourceKind::ErrorCheckMutex, "errorcheck"),
        (3, ResourceKind::AdaptiveMutex, "adaptive"),
    ];
    for (kind, expect, name) in cases {
        let mut img = Image::new();
        img.mutex(LOCK_A, 2, 11, kind);
        let snap = snapshot(
            PID,
            vec![thread(10, futex(LOCK_A, 128, 2), 0), thread(11, None, 0)],
            vec![],
        );
        let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
        let w = wait(&out[0]);
        assert_eq!(w.resource.kind, expect);
        assert_eq!(w.how, format!("pthread_mutex_lock ({name})"));
        assert_eq!(w.owner.tid().map(Tid::get), Some(11));
    }
}

#[test]
fn timedlock_and_restarted_wait() {
    let mut img = Image::new();
    img.mutex(LOCK_A, 2, 11, 0);
    let restarted = Some(SyscallState {
        nr: 219,
        args: [LOCK_A, 393, 2, 0x7ffd_0000, 0, u32::MAX as u64],
        restarted: true,
        entering: false,
    });
    let snap = snapshot(
        PID,
        vec![
            thread(10, futex(LOCK_A, 393, 2), 0),
            thread(11, None, 0),
            thread(12, restarted, 0),
        ],
        vec![],
    );
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    assert_eq!(wait(&out[0]).how, "pthread_mutex_timedlock (normal)");
    assert_eq!(wait(&out[2]).owner.tid().map(Tid::get), Some(11));
}

#[test]
fn exited_owner_is_dead_and_shared_owner_is_another_process() {
    let mut img = Image::new();
    img.mutex(LOCK_A, 2, 999, 0);
    // A process-shared mutex in a MAP_SHARED mapping, owned by a thread of PID 500.
    img.mutex(LOCK_B, 2, 501, 128);
    let snap = snapshot(
        PID,
        vec![thread(10, futex(LOCK_A, 128, 2), 0), thread(11, futex(LOCK_B, 0, 2), 0)],
        vec![
            anon_map(BASE, BASE + 0x140, false, 0),
            anon_map(BASE + 0x140, BASE + 0x1000, true, 77),
        ],
    );
    let mut tasks = Tasks::default();
    tasks.0.insert(501, 500);
    let out = run(&snap, &img, &lock_symbols(), &[], &tasks);
    let dead = &wait(&out[0]).owner;
    assert!(dead.is_exited(), "{dead:?}");
    assert_eq!(dead.tid().map(Tid::get), Some(999));
    let shared = wait(&out[1]);
    assert_eq!(shared.how, "pthread_mutex_lock (normal, process-shared)");
    assert_eq!(
        (
            shared.owner.tid().map(Tid::get),
            shared.owner.pid().map(Pid::get),
            shared.owner.is_exited()
        ),
        (Some(501), Some(500), false)
    );
    assert_eq!(shared.resource.shared_key, Some((1, 77, 0)));
    // Neither owner is a thread here: no holds.
    assert!(out.iter().all(|f| f.holds.is_empty()));
}

#[test]
fn robust_mutex_owner_from_lock_word_and_robust_list() {
    // Thread 11's struct pthread at BASE+0x4000; its robust list holds LOCK_A.
    let fs11 = BASE + 0x4000;
    let word = FUTEX_WAITERS | 11;
    let mut img = Image::new();
    img.mutex(LOCK_A, word, 11, layout::MUTEX_ROBUST);
    img.u64(fs11 + 0x2e0, LOCK_A + 32) // robust_head.list → &LOCK_A.__list.__next
        .u64(fs11 + 0x2e8, (-32i64) as u64) // futex_offset
        .u64(LOCK_A + 32, fs11 + 0x2e0); // back to the head
    let snap = snapshot(
        PID,
        vec![thread(10, futex(LOCK_A, 0, word as u64), 0), thread(11, None, fs11)],
        vec![],
    );
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.resource.kind, ResourceKind::RobustMutex);
    assert_eq!(w.owner.tid().map(Tid::get), Some(11));
    assert_eq!(w.owner.confidence(), Confidence::Exact);
    assert!(w.owner.evidence().contains("0x8000000b"), "{}", w.owner.evidence());
    assert_eq!(out[1].holds.len(), 1, "one hold, deduplicated: {:?}", out[1].holds);
    assert_eq!(out[1].holds[0].resource.address.get(), LOCK_A);
}

#[test]
fn robust_list_alone_lists_holds() {
    let fs11 = BASE + 0x4000;
    let mut img = Image::new();
    img.mutex(LOCK_A, 11, 11, layout::MUTEX_ROBUST | 1);
    img.mutex(LOCK_B, 11, 11, layout::MUTEX_ROBUST | layout::MUTEX_PRIO_INHERIT);
    img.u64(fs11 + 0x2e0, LOCK_A + 32)
        .u64(fs11 + 0x2e8, (-32i64) as u64)
        .u64(LOCK_A + 32, (LOCK_B + 32) | 1)
        .u64(LOCK_B + 32, fs11 + 0x2e0);
    let snap = snapshot(PID, vec![thread(11, None, fs11)], vec![]);
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    let kinds: Vec<_> = out[0]
        .holds
        .iter()
        .map(|h| (h.resource.address.get(), h.resource.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![(LOCK_A, ResourceKind::RobustMutex), (LOCK_B, ResourceKind::PiMutex)]
    );
    assert!(out[0].holds.iter().all(|h| h.confidence == Confidence::Exact));
}

#[test]
fn pi_mutex_owner_from_lock_word() {
    let mut img = Image::new();
    img.mutex(LOCK_A, FUTEX_WAITERS | 11, 11, layout::MUTEX_PRIO_INHERIT);
    let snap = snapshot(
        PID,
        vec![thread(10, futex(LOCK_A, 134, 0), 0), thread(11, None, 0)],
        vec![],
    );
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.resource.kind, ResourceKind::PiMutex);
    assert_eq!(w.how, "pthread_mutex_lock (normal, priority-inheritance)");
    assert_eq!(
        (w.owner.tid().map(Tid::get), w.owner.confidence()),
        (Some(11), Confidence::Exact)
    );
    // LOCK_PI on a word that is not a pthread mutex still has a kernel-maintained owner.
    let mut img2 = Image::new();
    img2.u32(LOCK_A, 11);
    let out2 = run(&snap, &img2, &lock_symbols(), &[], &NoTasks);
    assert_eq!(wait(&out2[0]).owner.tid().map(Tid::get), Some(11));
    assert_eq!(wait(&out2[0]).how, "FUTEX_LOCK_PI (priority-inheritance futex)");
}

const RW: u64 = BASE + 0x200;

fn rwlock(img: &mut Image, readers: u32, wrphase: u32, writers_futex: u32, cur_writer: i32) {
    img.u32(RW, readers)
        .u32(RW + 8, wrphase)
        .u32(RW + 12, writers_futex)
        .u32(RW + 24, cur_writer as u32);
}

#[test]
fn rwlock_writer_blocked_by_writer_and_reader_blocked_by_writer() {
    let mut img = Image::new();
    // Write phase, write-locked by 11, one reader registered and waiting.
    rwlock(&mut img, RWLOCK_WRPHASE | RWLOCK_WRLOCKED | (1 << 3), 3, 3, 11);
    let snap = snapshot(
        PID,
        vec![
            thread(10, futex(RW + 12, 393, 3), 0),
            thread(11, None, 0),
            thread(12, futex(RW + 8, 393, 3), 0),
        ],
        vec![],
    );
    let syms = Symbols(vec![("rw".into(), RW, 56)]);
    let out = run(&snap, &img, &syms, &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!((w.resource.kind, w.resource.address.get()), (ResourceKind::RwLock, RW));
    assert_eq!(w.resource.name.as_deref(), Some("rw"));
    assert_eq!(w.how, "pthread_rwlock_wrlock (blocked by a writer)");
    assert_eq!(
        (w.owner.tid().map(Tid::get), w.owner.confidence()),
        (Some(11), Confidence::Exact)
    );
    assert_eq!(w.owner.evidence(), "__cur_writer = 11");
    let r = wait(&out[2]);
    assert_eq!(r.how, "pthread_rwlock_rdlock (blocked by a writer)");
    assert_eq!(r.owner.tid().map(Tid::get), Some(11));
    assert_eq!(out[1].holds.len(), 1);
}

#[test]
fn rwlock_writer_blocked_by_readers_has_no_owner() {
    let mut img = Image::new();
    // Read phase with two readers; a primary writer (10) waits for them, a second writer (12) queues.
    rwlock(&mut img, RWLOCK_WRLOCKED | (2 << 3), 2, 3, 0);
    let snap = snapshot(
        PID,
        vec![
            thread(10, futex(RW + 8, 393, 2), 0),
            thread(11, None, 0),
            thread(12, futex(RW + 12, 393, 3), 0),
        ],
        vec![],
    );
    let out = run(&snap, &img, &Symbols::default(), &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.how, "pthread_rwlock_wrlock (blocked by 2 reader(s))");
    assert_eq!(w.owner.confidence(), Confidence::Unknown);
    assert!(w.owner.evidence().contains("does not record"), "{}", w.owner.evidence());
    // The queued writer is blocked by the primary writer, deduced from thread 10's wait.
    let q = wait(&out[2]);
    assert_eq!(
        (q.owner.tid().map(Tid::get), q.owner.confidence()),
        (Some(10), Confidence::Inferred)
    );
    assert_eq!(out[0].holds.len(), 1);
    assert_eq!(out[0].holds[0].confidence, Confidence::Inferred);
}

#[test]
fn rwlock_role_from_function_names() {
    let mut img = Image::new();
    // Value 3 on +8 could be a reader behind a writer; names say wrlock, so the
    // interpretation "+12 of a lock at RW-4" must be tried and rejected, and no reader role used.
    rwlock(&mut img, RWLOCK_WRPHASE | RWLOCK_WRLOCKED, 3, 3, 11);
    let snap = snapshot(
        PID,
        vec![thread(10, futex(RW + 12, 393, 3), 0), thread(11, None, 0)],
        vec![],
    );
    let stacks = vec![
        stack(&[
            ("__futex_abstimed_wait_common64", "libc.so.6"),
            ("__pthread_rwlock_wrlock_full64", "libc.so.6"),
            ("___pthread_rwlock_wrlock", "libc.so.6"),
            ("writer", "/tmp/rw"),
        ]),
        Stack::default(),
    ];
    let out = run(&snap, &img, &Symbols::default(), &stacks, &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.how, "pthread_rwlock_wrlock_full64 (blocked by a writer)");
    assert_eq!(w.site_frame, Some(3));
    assert_eq!(w.owner.tid().map(Tid::get), Some(11));
}

#[test]
fn join_waits_on_the_joined_threads_tid() {
    let fs11 = BASE + 0x4000;
    let mut img = Image::new();
    img.u32(fs11 + 0x2d0, 11);
    let snap = snapshot(
        PID,
        vec![
            thread(10, futex(fs11 + 0x2d0, 265, 11), BASE + 0x8000),
            thread(11, None, fs11),
        ],
        vec![],
    );
    let out = run(&snap, &img, &Symbols::default(), &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.resource.kind, ResourceKind::Thread);
    assert_eq!(w.resource.name.as_deref(), Some("t11"));
    assert_eq!(
        (w.owner.tid().map(Tid::get), w.owner.confidence()),
        (Some(11), Confidence::Exact)
    );
    assert!(w.owner.evidence().contains("tid field"), "{}", w.owner.evidence());
    assert!(out[1].holds.is_empty(), "a joined thread holds nothing");

    // The same value at an address that is not the thread's tid field is not a join.
    let mut img2 = Image::new();
    img2.u32(BASE + 0x300, 11);
    let snap2 = snapshot(
        PID,
        vec![thread(10, futex(BASE + 0x300, 265, 11), 0), thread(11, None, fs11)],
        vec![],
    );
    let out2 = run(&snap2, &img2, &Symbols::default(), &[], &NoTasks);
    assert!(out2[0].wait.is_none());
    assert!(out2[0]
        .blocked_in
        .as_deref()
        .unwrap()
        .starts_with("futex_wait futex(0x10300"));
}

#[test]
fn cond_wait_names_its_mutex_through_the_cleanup_buffer() {
    let fs10 = BASE + 0x4000;
    let cond = BASE + 0x400;
    let (buf, cbuf) = (BASE + 0x600, BASE + 0x640);
    let mut img = Image::new();
    img.u64(fs10 + 0x2f8, buf)
        .u64(buf, 0xdead_0000)
        .u64(buf + 8, cbuf)
        .u64(cbuf + 8, cond)
        .u64(cbuf + 16, LOCK_A)
        .u32(cond + 36, 8);
    let snap = snapshot(PID, vec![thread(10, futex(cond + 40, 393, 0), fs10)], vec![]);
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(
        (w.resource.kind, w.resource.address.get()),
        (ResourceKind::CondVar, cond)
    );
    assert_eq!(w.how, format!("pthread_cond_wait (with mutex lock_a at {LOCK_A:#x})"));
    assert_eq!(w.owner.confidence(), Confidence::Unknown);
}

#[test]
fn cond_sem_and_barrier_from_memory_alone() {
    let cond = BASE + 0x400;
    let sem = BASE + 0x500;
    let bar = BASE + 0x600;
    let mut img = Image::new();
    img.u32(cond + 36, 8).u32(cond + 16, 2); // one waiter in group 0
    img.u32(sem, 0).u32(sem + 4, 1).u32(sem + 8, 0);
    img.u32(bar, 1).u32(bar + 4, 0).u32(bar + 8, 2).u32(bar + 12, 0);
    let snap = snapshot(
        PID,
        vec![
            thread(10, futex(cond + 40, 393, 0), 0),
            thread(11, futex(sem, 393, 0), 0),
            thread(12, futex(bar + 4, 128, 0), 0),
        ],
        vec![],
    );
    let out = run(&snap, &img, &Symbols::default(), &[], &NoTasks);
    assert_eq!(
        (wait(&out[0]).resource.kind, wait(&out[0]).resource.address.get()),
        (ResourceKind::CondVar, cond)
    );
    assert_eq!(
        (wait(&out[1]).resource.kind, wait(&out[1]).how.as_str()),
        (ResourceKind::Semaphore, "sem_wait (value 0, 1 waiter(s))")
    );
    assert_eq!(
        (wait(&out[2]).resource.kind, wait(&out[2]).resource.address.get()),
        (ResourceKind::Barrier, bar)
    );
    assert_eq!(wait(&out[2]).how, "pthread_barrier_wait (1 of 2 arrived)");
    assert!(out
        .iter()
        .all(|f| f.wait.as_ref().unwrap().owner.confidence() == Confidence::Unknown));
}

/// rust_idle: two threads in `Condvar::wait` on a static whose neighbours
/// happen to look like a glibc condvar with waiters. The stack names Rust
/// std's futex wait, so glibc does not claim the wait (it used to report a
/// "pthread_cond_wait" on an unrelated static).
#[test]
fn rust_std_futex_wait_is_not_guessed_as_a_glibc_object() {
    let cond = BASE + 0x400;
    let mut img = Image::new();
    img.u32(cond + 36, 8).u32(cond + 16, 2); // glibc-condvar-like bytes around the word
    let snap = snapshot(PID, vec![thread(10, futex(cond + 40, 137, 0), 0)], vec![]);
    let rust = stack(&[
        ("syscall", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ("std::sys::pal::unix::futex::futex_wait", "/tmp/rust_idle"),
        (
            "std::sys::sync::condvar::futex::Condvar::wait_optional_timeout",
            "/tmp/rust_idle",
        ),
        ("rust_idle::waiter", "/tmp/rust_idle"),
    ]);
    let out = run(&snap, &img, &Symbols::default(), &[rust], &NoTasks);
    assert!(out[0].wait.is_none(), "{:?}", out[0].wait);
    assert!(out[0].blocked_in.is_some());
    // Without names, memory alone still recognizes the glibc condvar.
    let out = run(&snap, &img, &Symbols::default(), &[], &NoTasks);
    assert_eq!(
        (wait(&out[0]).resource.kind, wait(&out[0]).resource.address.get()),
        (ResourceKind::CondVar, cond)
    );
}

#[test]
fn rust_style_futex_is_left_alone() {
    // A Rust std Mutex: u32 state 2 followed by a poison byte and zeros;
    // op WAIT_BITSET|PRIVATE (137) value 2.
    let mut img = Image::new();
    img.u32(LOCK_A, 2);
    let snap = snapshot(
        PID,
        vec![thread(10, futex(LOCK_A, 137, 2), 0), thread(11, None, 0)],
        vec![],
    );
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    assert!(out[0].wait.is_none());
    assert_eq!(
        out[0].blocked_in.as_deref(),
        Some("futex_wait futex(0x10100, FUTEX_WAIT_BITSET_PRIVATE, 2)")
    );
    // Even with a mutex-like layout, an owner that is not a thread of the process is not enough.
    img.mutex(LOCK_A, 2, 4242, 0);
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    assert!(out[0].wait.is_none());
}

#[test]
fn mutex_named_on_stack_but_layout_garbage_has_unknown_owner() {
    let mut img = Image::new();
    img.u32(LOCK_A, 2).u32(LOCK_A + 16, 0x7777);
    let snap = snapshot(PID, vec![thread(10, futex(LOCK_A, 128, 2), 0)], vec![]);
    let stacks = vec![stack(&[("__lll_lock_wait", "libc.so.6"), ("main", "/tmp/x")])];
    let out = run(&snap, &img, &lock_symbols(), &stacks, &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.resource.kind, ResourceKind::Mutex);
    assert_eq!(w.owner.confidence(), Confidence::Unknown);
    assert_eq!(w.site_frame, Some(1));
}

#[test]
fn stdio_lock_owner_is_a_struct_pthread() {
    let fs11 = BASE + 0x4000;
    let lock = BASE + 0x700;
    let mut img = Image::new();
    img.u32(lock, 2).u32(lock + 4, 1).u64(lock + 8, fs11);
    let snap = snapshot(
        PID,
        vec![thread(10, futex(lock, 128, 2), BASE + 0x8000), thread(11, None, fs11)],
        vec![],
    );
    let out = run(&snap, &img, &Symbols::default(), &[], &NoTasks);
    let w = wait(&out[0]);
    assert_eq!(w.resource.kind, ResourceKind::RecursiveMutex);
    assert_eq!(
        (w.owner.tid().map(Tid::get), w.owner.confidence()),
        (Some(11), Confidence::Exact)
    );
}

#[test]
fn self_owned_normal_mutex_is_reported_as_such() {
    let mut img = Image::new();
    img.mutex(LOCK_A, 2, 10, 0);
    let snap = snapshot(PID, vec![thread(10, futex(LOCK_A, 128, 2), 0)], vec![]);
    let out = run(&snap, &img, &lock_symbols(), &[], &NoTasks);
    assert_eq!(wait(&out[0]).owner.tid().map(Tid::get), Some(10));
    assert_eq!(out[0].holds.len(), 1);
}

#[test]
fn other_syscalls_are_described() {
    let img = Image::new();
    let read = Some(SyscallState {
        nr: 0,
        args: [0; 6],
        restarted: false,
        entering: false,
    });
    let snap = snapshot(PID, vec![thread(10, read, 0), thread(11, None, 0)], vec![]);
    let out = run(&snap, &img, &Symbols::default(), &[], &NoTasks);
    assert_eq!(out[0].blocked_in.as_deref(), Some("read(fd 0)"));
    assert!(out[0].wait.is_none());
    assert!(out[1].wait.is_none() && out[1].blocked_in.is_none());
}

/// pi_cycle: t1 (10) sleeps in FUTEX_LOCK_PI on lock_b, owned by t2 (11);
/// t2 asked for lock_a (owned by t1), got EDEADLK, and glibc parked it in a
/// FUTEX_WAIT on a zero word in its own frame. The mutex is recovered from
/// the lock function's registers and frame, and only the candidate whose
/// owner chain leads back to t2 is taken.
mod pi_park {
    use super::*;

    const SP: u64 = 0x7000_0000;
    /// The parked word, in __pthread_mutex_lock_full's frame (frame 1; its
    /// caller's frame starts at SP + 0x300).
    const PARKED: u64 = SP + 0x24;

    fn parked_stack() -> Stack {
        stack(&[
            ("__futex_abstimed_wait_common", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("__pthread_mutex_lock_full", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("cycle2_side_main", "/tmp/pi_cycle"),
        ])
    }

    /// t2 parked with `words` on its stack from SP and `r14` live; t1 in
    /// LOCK_PI on `t1_waits_on` (if any).
    fn scene(img: &Image, words: &[u64], r14: u64, t1_waits_on: Option<u64>) -> (Snapshot, BufferMemory, Vec<Stack>) {
        let mut t2 = thread(11, futex(PARKED, 393, 0), BASE + 0x8000);
        t2.regs.rsp = SP;
        t2.regs.r14 = r14;
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.resize(0x400, 0);
        t2.stack = CopiedRegion { start: SP, bytes };
        let t1 = thread(10, t1_waits_on.and_then(|a| futex(a, 134, 0)), BASE + 0x9000);
        let snap = snapshot(PID, vec![thread(9, None, 0), t1, t2], vec![]);
        let mem = BufferMemory {
            regions: vec![
                CopiedRegion {
                    start: BASE,
                    bytes: img.0.clone(),
                },
                snap.threads[2].stack.clone(),
            ],
        };
        (snap, mem, vec![Stack::default(), Stack::default(), parked_stack()])
    }

    fn analyze_scene(snap: &Snapshot, mem: &BufferMemory, stacks: &[Stack]) -> Vec<ThreadFindings> {
        let syms = lock_symbols();
        let view = ProcessView {
            snapshot: snap,
            stacks,
            memory: mem,
            calls: &crate::runtimes::syscalls::decode_all(snap, mem),
            symbols: &syms,
        };
        analyze_with(&view, &NoTasks)
    }

    fn pi_locks() -> Image {
        let mut img = Image::new();
        // lock_a owned by t1; lock_b owned by t2 with t1 queued on it.
        img.mutex(LOCK_A, 10, 0, layout::MUTEX_PRIO_INHERIT).mutex(
            LOCK_B,
            FUTEX_WAITERS | 11,
            0,
            layout::MUTEX_PRIO_INHERIT,
        );
        img
    }

    #[test]
    fn the_cycle_the_kernel_refused_is_reported() {
        let img = pi_locks();
        // The frame holds both mutexes (saved caller registers), r14 = &lock_a->__kind.
        let mut words = vec![0u64; 16];
        words[7] = LOCK_B;
        words[8] = LOCK_A;
        let (snap, mem, stacks) = scene(&img, &words, LOCK_A + 16, Some(LOCK_B));
        let out = analyze_scene(&snap, &mem, &stacks);

        let w1 = wait(&out[1]);
        assert_eq!(
            (w1.resource.kind, w1.resource.address.get()),
            (ResourceKind::PiMutex, LOCK_B)
        );
        assert_eq!(
            (w1.owner.tid().map(Tid::get), w1.owner.confidence()),
            (Some(11), Confidence::Exact)
        );

        let w2 = wait(&out[2]);
        assert_eq!(
            (w2.resource.kind, w2.resource.address.get()),
            (ResourceKind::PiMutex, LOCK_A)
        );
        assert_eq!(w2.resource.name.as_deref(), Some("lock_a"));
        assert_eq!(
            (w2.owner.tid().map(Tid::get), w2.owner.pid().map(Pid::get)),
            (Some(10), Some(PID))
        );
        assert_eq!(
            w2.owner.confidence(),
            Confidence::Inferred,
            "the mutex is deduced, not read"
        );
        assert!(w2.owner.evidence().contains("EDEADLK"), "{}", w2.owner.evidence());
        assert!(
            w2.owner.evidence().contains("callee-saved register r14"),
            "{}",
            w2.owner.evidence()
        );
        assert!(w2.how.contains("parked"), "{}", w2.how);
        assert_eq!(w2.site_frame, Some(2));
        // t1 holds lock_a as far as lockdump can tell (inferred through t2's wait).
        assert!(out[1]
            .holds
            .iter()
            .any(|h| h.resource.address.get() == LOCK_A && h.confidence == Confidence::Inferred));

        // The two waits close the cycle t1 -> t2 -> t1, inferred (its weakest
        // edge); the graph's part, turning these findings into that cycle, is
        // asserted end to end on the real fixture (tests/deadlocks.rs `pi_cycle`).
        assert_eq!((snap.threads[1].tid.get(), snap.threads[2].tid.get()), (10, 11));
        assert_eq!(
            (w1.owner.tid().map(Tid::get), w2.owner.tid().map(Tid::get)),
            (Some(11), Some(10))
        );
    }

    #[test]
    fn no_edge_when_nothing_explains_the_refusal() {
        let img = pi_locks();
        let mut words = vec![0u64; 16];
        words[8] = LOCK_A;
        // t1 runs (no LOCK_PI wait): lock_a's owner does not lead back to t2,
        // and t2 owns no referenced mutex. Nothing is invented.
        let (snap, mem, stacks) = scene(&img, &words, 0, None);
        let out = analyze_scene(&snap, &mem, &stacks);
        let w2 = wait(&out[2]);
        assert_eq!(w2.resource.kind, ResourceKind::PiMutex);
        assert_eq!(w2.owner.tid(), None);
        assert_eq!(w2.owner.confidence(), Confidence::Unknown);
        assert!(
            w2.owner.evidence().contains("no priority-inheritance mutex"),
            "{}",
            w2.owner.evidence()
        );
    }

    #[test]
    fn relocking_an_owned_pi_mutex_is_a_self_deadlock() {
        let img = pi_locks();
        let mut words = vec![0u64; 16];
        words[3] = LOCK_B;
        let (snap, mem, stacks) = scene(&img, &words, 0, None);
        let out = analyze_scene(&snap, &mem, &stacks);
        let w2 = wait(&out[2]);
        assert_eq!(
            (w2.resource.address.get(), w2.owner.tid().map(Tid::get)),
            (LOCK_B, Some(11))
        );
        assert!(w2.owner.evidence().contains("relocking"), "{}", w2.owner.evidence());
    }

    #[test]
    fn a_zero_word_outside_the_lock_frame_is_not_a_park() {
        let img = pi_locks();
        let words = vec![LOCK_A; 16];
        let (mut snap, mem, stacks) = scene(&img, &words, 0, Some(LOCK_B));
        // The same wait on a word in the caller's frame (from SP + 0x300).
        snap.threads[2].syscall = futex(SP + 0x380, 393, 0);
        let out = analyze_scene(&snap, &mem, &stacks);
        let w2 = wait(&out[2]);
        assert_ne!(w2.resource.address.get(), LOCK_A);
        assert_eq!(w2.owner.tid(), None);
    }
}
