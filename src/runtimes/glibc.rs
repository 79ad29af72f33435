//! glibc (NPTL) waits: mutexes, rwlocks, joins, condition variables,
//! semaphores and barriers, and who holds what.
//!
//! Evidence order, strongest first:
//! 1. the futex syscall the thread sleeps in (address, operation, expected value);
//! 2. the object's memory around that address, which must be a self-consistent
//!    glibc object of the guessed type (see [`layout`]);
//! 3. function names on the stack (`pthread_rwlock_wrlock`, ...), used to pick
//!    the interpretation when memory allows several and to name the call.
//!
//! Owners come from fields glibc maintains for that purpose (`__owner`, the
//! TID in a robust or PI lock word, `__cur_writer`, the joined thread's
//! `tid`), so they are exact. Readers of an rwlock are not recorded anywhere:
//! a writer blocked by readers gets an unknown owner and says so.

pub mod layout;
mod pi_park;

use self::layout::{
    BarrierFields, CondFields, CondWaitCleanup, MutexFields, PthreadLayout, RwLockFields, SemFields, COND_G_SIGNALS,
    MUTEX_CEILING_MASK, OWNER_INCONSISTENT, OWNER_NOTRECOVERABLE, RWLOCK_FUTEX_USED, RWLOCK_RWAITING,
    RWLOCK_WRITERS_FUTEX, RWLOCK_WRLOCKED, RWLOCK_WRPHASE, RWLOCK_WRPHASE_FUTEX,
};
use super::futex::{FutexCmd, FutexWait, FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS};
use super::owners::{self, TaskTable};
use super::stackscan;
use super::{frames, syscalls, Confidence, Hold, Owner, ProcessView, ResourceKind, ThreadFindings, Wait};
use crate::capture::RegisterSource;
use crate::stacks::Stack;

/// Upper bound on robust-list entries followed per thread.
const ROBUST_LIST_LIMIT: usize = 1024;

/// What each thread of the process waits on (glibc objects only) and holds.
///
/// The result is parallel to `view.snapshot.threads`. A thread in a futex
/// wait this module does not recognize gets no `wait` but a `blocked_in`
/// naming the futex, so that another runtime (Rust std) can claim it; a thread
/// in another blocking syscall gets `blocked_in` only.
pub fn analyze(view: &ProcessView<'_>) -> Vec<ThreadFindings> {
    analyze_with(view, owners::task_table(view.snapshot))
}

/// [`analyze`] with an explicit table of tasks outside the snapshot (for owners
/// that are other processes or have exited).
pub fn analyze_with(view: &ProcessView<'_>, tasks: &dyn TaskTable) -> Vec<ThreadFindings> {
    let ctx = Ctx {
        view,
        tasks,
        layout: PthreadLayout::discover(view.symbols, view.memory),
    };
    let n = view.snapshot.threads.len();
    let found: Vec<Option<Found>> = (0..n).map(|i| ctx.classify_thread(i)).collect();
    let found = refine_rwlock_owners(found);
    let found = infer_rwlock_readers(view, found);
    let mut out: Vec<ThreadFindings> = (0..n)
        .map(|i| {
            let t = &view.snapshot.threads[i];
            match &found[i] {
                Some(f) => ThreadFindings {
                    sleep: Default::default(),
                    wait: Some(ctx.to_wait(i, f)),
                    holds: Vec::new(),
                    blocked_in: None,
                },
                None => ThreadFindings {
                    sleep: Default::default(),
                    wait: None,
                    holds: Vec::new(),
                    blocked_in: t.syscall.and_then(|s| syscalls::describe(&s, &view.calls[i])),
                },
            }
        })
        .collect();
    add_holds(&ctx, &mut out);
    out
}

/// What the stack's function names say the thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    Mutex,
    RwRead,
    RwWrite,
    Join,
    Cond,
    Sem,
    Barrier,
}

/// Where glibc 2.43 keeps a thread's join state (`struct pthread.joinstate`),
/// measured on Debian sid's libc6 2.43-7: the joined thread's `fs_base` +
/// 0x628 is the futex its joiner sleeps on (FUTEX_WAIT_BITSET, shared).
const JOINSTATE_OFFSETS: [u64; 1] = [0x628];
/// The join states are small (joinable, detached, exiting, exited).
const JOINSTATE_MAX: u32 = 3;
/// Bound on an offset into `struct pthread` (its `tid` is at 0x2d0 on
/// 2.36, its join state at 0x628 on 2.43; the descriptor is smaller than a
/// page).
const PTHREAD_DESCRIPTOR_MAX: u64 = 0x1000;

fn hint_for(name: &str) -> Option<Hint> {
    let has = |s: &str| name.contains(s);
    Some(if name.starts_with("pthread_mutex_") && has("lock") && !has("unlock") {
        // pthread_mutex_lock, __pthread_mutex_lock_full, _timedlock, _clocklock, _cond_lock.
        Hint::Mutex
    } else if name.starts_with("lll_lock_wait") || name.starts_with("lll_clocklock") {
        Hint::Mutex
    } else if name.starts_with("pthread_rwlock_") && has("rdlock") {
        Hint::RwRead
    } else if name.starts_with("pthread_rwlock_") && has("wrlock") {
        Hint::RwWrite
    } else if [
        "pthread_join",
        "pthread_clockjoin",
        "pthread_timedjoin",
        "pthread_tryjoin",
        "thrd_join",
    ]
    .iter()
    .any(|p| name.starts_with(p))
    {
        Hint::Join
    } else if (name.starts_with("pthread_cond_") || name.starts_with("cnd_")) && has("wait") {
        Hint::Cond
    } else if has("sem_wait") || has("sem_timedwait") || has("sem_clockwait") {
        Hint::Sem
    } else if name.starts_with("pthread_barrier_wait") {
        Hint::Barrier
    } else {
        return None;
    })
}

/// The thread sleeps in Rust std's futex wrapper (`std::sys::pal::unix::futex::futex_wait`,
/// `std::sys::unix::futex::futex_wait` before Rust 1.77), under a std lock,
/// condvar, `park` or `Once`.
fn in_rust_std_futex_wait(stack: &Stack) -> bool {
    frames::find_frame(stack, |n| {
        let n = n.trim_start_matches('<');
        n.starts_with("std::sys::") && n.contains("futex")
    })
    .is_some()
}

fn glibc_hint(stack: &Stack) -> Option<(Hint, String)> {
    let (_, f) = frames::find_frame(stack, |n| hint_for(n).is_some())?;
    let name = frames::base_name(f.function.as_deref()?).to_string();
    Some((hint_for(&name)?, name))
}

/// Who blocks the waiter, before TIDs are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnerEvidence {
    /// A TID read from a field glibc maintains (target PID namespace).
    Tid {
        ns_tid: i32,
        shared: bool,
        evidence: String,
    },
    /// A TID read from a lock word of an object that was deduced rather than
    /// read from the wait (a PI mutex after glibc parked the waiter).
    InferredTid {
        ns_tid: i32,
        shared: bool,
        evidence: String,
    },
    /// A thread of the snapshot, identified directly (exact).
    Thread { index: usize, evidence: String },
    /// A thread of the snapshot, deduced from other threads' waits.
    Inferred { index: usize, evidence: String },
    /// No owner recorded (or none by design); the text says why.
    Unknown(String),
}

/// The role of a waiter on an rwlock, for the cross-thread refinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RwRole {
    /// Waits on `__writers_futex` for the primary writer.
    WriterBehindWriter,
    /// Waits on `__wrphase_futex` (value 3) for the write phase to end.
    ReaderBehindWriter,
    /// The primary writer, waiting on `__wrphase_futex` (value 2) for readers to leave.
    WriterBehindReaders,
    /// A reader waiting on `__readers` because a writer is queued (PREFER_WRITER_NONRECURSIVE).
    ReaderBehindQueuedWriter,
}

/// A recognized wait before owner resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    kind: ResourceKind,
    /// Address of the object (mutex, rwlock, condvar, ...) or of the join futex.
    object: u64,
    owner: OwnerEvidence,
    how: String,
    /// Set for a `Thread` wait: the joined thread's name, used as the resource name.
    name: Option<String>,
    rw_role: Option<RwRole>,
    /// For a writer blocked by readers: how many hold the rwlock.
    readers: Option<u32>,
}

impl Found {
    fn new(kind: ResourceKind, object: u64, owner: OwnerEvidence, how: impl Into<String>) -> Self {
        Found {
            kind,
            object,
            owner,
            how: how.into(),
            name: None,
            rw_role: None,
            readers: None,
        }
    }
}

struct Ctx<'v, 'a> {
    view: &'v ProcessView<'a>,
    tasks: &'v dyn TaskTable,
    layout: PthreadLayout,
}

fn mutex_kind(m: &MutexFields) -> ResourceKind {
    if m.pi() {
        ResourceKind::PiMutex
    } else if m.robust() {
        ResourceKind::RobustMutex
    } else {
        match m.kind & layout::MUTEX_KIND_MASK {
            0 => ResourceKind::Mutex,
            1 => ResourceKind::RecursiveMutex,
            2 => ResourceKind::ErrorCheckMutex,
            _ => ResourceKind::AdaptiveMutex,
        }
    }
}

impl<'v, 'a> Ctx<'v, 'a> {
    fn stack(&self, i: usize) -> &Stack {
        static EMPTY: Stack = Stack {
            frames: Vec::new(),
            error: None,
            truncated: false,
        };
        self.view.stacks.get(i).unwrap_or(&EMPTY)
    }

    /// The thread's `struct pthread` address, when registers were read with ptrace.
    fn fs_base(&self, i: usize) -> Option<u64> {
        let t = self.view.snapshot.threads.get(i)?;
        (t.register_source == RegisterSource::Ptrace && t.regs.fs_base != 0).then_some(t.regs.fs_base)
    }

    fn thread_index_by_ns_tid(&self, ns_tid: i32) -> Option<usize> {
        self.view.snapshot.threads.iter().position(|t| t.ns_tid == ns_tid)
    }

    fn classify_thread(&self, i: usize) -> Option<Found> {
        let w = *self.view.futex(i)?;
        let hint = glibc_hint(self.stack(i));
        if hint.is_none() && in_rust_std_futex_wait(self.stack(i)) {
            // The stack names the wait: Rust std's own futex wait, which no
            // glibc object uses. Guessing a glibc object from the memory
            // around the word (a "condvar" over unrelated statics) would only
            // mislabel it; rust_std claims it.
            return None;
        }
        self.classify(i, &w, hint.as_ref().map(|(h, n)| (*h, n.as_str())))
    }

    fn classify(&self, i: usize, w: &FutexWait, hint: Option<(Hint, &str)>) -> Option<Found> {
        if w.cmd.is_pi_lock() {
            return Some(self.pi_lock(w, hint.map(|h| h.1)));
        }
        if w.cmd == FutexCmd::WaitRequeuePi {
            return Some(Found::new(
                ResourceKind::CondVar,
                w.addr,
                OwnerEvidence::Unknown("condition variables have no owner".into()),
                format!(
                    "condition wait requeued to the PI mutex at {:#x}",
                    w.uaddr2.unwrap_or(0)
                ),
            ));
        }
        match hint {
            Some((Hint::Mutex, name)) => Some(
                self.pi_parked(i, w, name)
                    .or_else(|| self.io_lock(w))
                    .or_else(|| self.mutex(w, false, Some(name)))
                    .unwrap_or_else(|| {
                        Found::new(
                            ResourceKind::Mutex,
                            w.addr,
                            OwnerEvidence::Unknown(format!(
                                "the memory at the futex does not match pthread_mutex_t ({})",
                                w.describe()
                            )),
                            name.to_string(),
                        )
                    }),
            ),
            Some((h @ (Hint::RwRead | Hint::RwWrite), name)) => {
                Some(self.rwlock(w, Some(h == Hint::RwWrite), Some(name)).unwrap_or_else(|| {
                    Found::new(
                        ResourceKind::RwLock,
                        w.addr,
                        OwnerEvidence::Unknown(format!(
                            "the memory near the futex does not match pthread_rwlock_t ({})",
                            w.describe()
                        )),
                        name.to_string(),
                    )
                }))
            }
            Some((Hint::Join, name)) => Some(self.join(i, w, false, name).unwrap_or_else(|| {
                Found::new(
                    ResourceKind::Thread,
                    w.addr,
                    OwnerEvidence::Unknown(format!("the futex word does not hold a thread ID ({})", w.describe())),
                    name.to_string(),
                )
            })),
            Some((Hint::Cond, name)) => Some(
                self.cond_from_cleanup(i, w)
                    .or_else(|| self.cond_layout(w, false))
                    .unwrap_or_else(|| {
                        Found::new(
                            ResourceKind::CondVar,
                            w.addr,
                            OwnerEvidence::Unknown("condition variables have no owner".into()),
                            name.to_string(),
                        )
                    }),
            ),
            Some((Hint::Sem, name)) => Some(self.sem(w, false).unwrap_or_else(|| {
                Found::new(
                    ResourceKind::Semaphore,
                    w.addr,
                    OwnerEvidence::Unknown("semaphores have no owner".into()),
                    name.to_string(),
                )
            })),
            Some((Hint::Barrier, name)) => Some(self.barrier(w, false).unwrap_or_else(|| {
                Found::new(
                    ResourceKind::Barrier,
                    w.addr,
                    OwnerEvidence::Unknown("barriers have no owner".into()),
                    name.to_string(),
                )
            })),
            None => self
                .join(i, w, true, "pthread_join")
                .or_else(|| self.cond_from_cleanup(i, w))
                .or_else(|| self.io_lock(w))
                .or_else(|| self.mutex(w, true, None))
                .or_else(|| self.rwlock(w, None, None))
                .or_else(|| self.cond_layout(w, true))
                .or_else(|| self.sem(w, true))
                .or_else(|| self.barrier(w, true)),
        }
    }

    /// FUTEX_LOCK_PI / LOCK_PI2: the kernel's PI protocol keeps the owner TID
    /// in the lock word (`FUTEX_TID_MASK`), whatever object the word is in.
    fn pi_lock(&self, w: &FutexWait, hint: Option<&str>) -> Found {
        let tid = (w.current & FUTEX_TID_MASK) as i32;
        let m = MutexFields::read(self.view.memory, w.addr).filter(|m| m.pi());
        let how = match (&m, hint) {
            (Some(m), Some(name)) => format!("{name} ({})", m.type_name()),
            (Some(m), None) => format!("pthread_mutex_lock ({})", m.type_name()),
            (None, _) => format!("{} (priority-inheritance futex)", w.cmd.name()),
        };
        let mut evidence = format!("lock word {:#x}: owner TID {tid} (FUTEX_LOCK_PI protocol)", w.current);
        if w.current & FUTEX_OWNER_DIED != 0 {
            evidence.push_str(", FUTEX_OWNER_DIED set");
        }
        let owner = if tid == 0 {
            OwnerEvidence::Unknown(format!("lock word {:#x} names no owner (being released)", w.current))
        } else {
            OwnerEvidence::Tid {
                ns_tid: tid,
                shared: !w.private,
                evidence,
            }
        };
        Found::new(ResourceKind::PiMutex, w.addr, owner, how)
    }

    /// A libc-internal recursive lock (`_IO_lock_t {int lock; int cnt; void *owner}`,
    /// sysdeps/nptl/stdio-lock.h), e.g. a `FILE`'s lock: the owner field is the
    /// holder's `struct pthread *`, which is some thread's `fs_base`.
    fn io_lock(&self, w: &FutexWait) -> Option<Found> {
        if !(w.cmd == FutexCmd::Wait && w.private && w.expected == 2) {
            return None;
        }
        let owner_pd = self.view.memory.read_u64(w.addr.checked_add(8)?).ok()?;
        let index = (0..self.view.snapshot.threads.len()).find(|&j| self.fs_base(j) == Some(owner_pd))?;
        Some(Found::new(
            ResourceKind::RecursiveMutex,
            w.addr,
            OwnerEvidence::Thread {
                index,
                evidence: format!("owner field (+8) = {owner_pd:#x}, the struct pthread of the holder"),
            },
            "libc internal lock (_IO_lock_t, e.g. a FILE's lock)",
        ))
    }

    /// pthread_mutex_t waits: plain types sleep on `__lock` with value 2 and
    /// record the owner in `__owner`; robust ones sleep (shared) on a lock word
    /// holding `FUTEX_WAITERS | owner TID`; PP ones on `ceiling | 2`.
    /// `strict`: no function names confirm this is a mutex, so demand more.
    fn mutex(&self, w: &FutexWait, strict: bool, hint: Option<&str>) -> Option<Found> {
        if !matches!(w.cmd, FutexCmd::Wait | FutexCmd::WaitBitset) {
            return None;
        }
        let m = MutexFields::read(self.view.memory, w.addr)?;
        if strict && !m.looks_in_use() {
            return None;
        }
        let call = hint.map(str::to_string).unwrap_or_else(|| {
            if w.cmd == FutexCmd::Wait {
                "pthread_mutex_lock".to_string()
            } else {
                "pthread_mutex_timedlock".to_string()
            }
        });
        let how = format!("{call} ({})", m.type_name());
        let kind = mutex_kind(&m);
        if m.robust() {
            // Robust waits always use a shared futex (PTHREAD_ROBUST_MUTEX_PSHARED).
            if w.private || (strict && w.expected & FUTEX_WAITERS == 0) {
                return None;
            }
            let tid = (w.current & FUTEX_TID_MASK) as i32;
            let owner = if tid == 0 {
                OwnerEvidence::Unknown(format!("lock word {:#x} names no owner (being released)", w.current))
            } else {
                let mut evidence = format!("lock word {:#x}: owner TID {tid}", w.current);
                if w.current & FUTEX_OWNER_DIED != 0 {
                    evidence.push_str(", FUTEX_OWNER_DIED set");
                }
                OwnerEvidence::Tid {
                    ns_tid: tid,
                    shared: m.pshared(),
                    evidence,
                }
            };
            return Some(Found::new(kind, w.addr, owner, how));
        }
        if w.private == m.pshared() {
            // A private mutex waits with FUTEX_PRIVATE_FLAG, a process-shared one without.
            return None;
        }
        let value_ok = if m.pp() {
            w.expected & !MUTEX_CEILING_MASK == 2
        } else {
            w.expected == 2
        };
        if !value_ok {
            return None;
        }
        if strict {
            // Claim an unnamed wait only with an owner recorded. A monotonic
            // WAIT_BITSET with value 2 is also Rust's Mutex: there, demand an
            // owner that is a thread of this process.
            if m.owner <= 0 {
                return None;
            }
            if w.cmd == FutexCmd::WaitBitset && !w.clock_realtime && self.thread_index_by_ns_tid(m.owner).is_none() {
                return None;
            }
        }
        let owner = match m.owner {
            0 => OwnerEvidence::Unknown("__owner is 0 (the lock is being handed over)".into()),
            OWNER_INCONSISTENT | OWNER_NOTRECOVERABLE => {
                OwnerEvidence::Unknown("__owner marks a robust mutex whose owner died".into())
            }
            tid => OwnerEvidence::Tid {
                ns_tid: tid,
                shared: m.pshared(),
                evidence: format!("__owner = {tid}"),
            },
        };
        Some(Found::new(kind, w.addr, owner, how))
    }

    /// pthread_rwlock_t waits (nptl/pthread_rwlock_common.c, 2.36):
    /// - `__writers_futex` (+12), value 3: a writer waits for the primary writer;
    /// - `__wrphase_futex` (+8), value 3: a reader waits for a write phase to end;
    /// - `__wrphase_futex` (+8), value 2: the primary writer waits for readers;
    /// - `__readers` (+0) with RWAITING: a reader waits for a queued writer.
    ///
    /// `writer`: what the function names say the caller is, if anything.
    fn rwlock(&self, w: &FutexWait, writer: Option<bool>, hint: Option<&str>) -> Option<Found> {
        if w.cmd != FutexCmd::WaitBitset {
            return None;
        }
        let mem = self.view.memory;
        let used = RWLOCK_FUTEX_USED;
        let mut candidates = Vec::new();
        if writer != Some(false) && w.expected == 1 | used {
            candidates.push((w.addr.checked_sub(RWLOCK_WRITERS_FUTEX), RwRole::WriterBehindWriter));
        }
        if writer != Some(true) && w.expected == 1 | used {
            candidates.push((w.addr.checked_sub(RWLOCK_WRPHASE_FUTEX), RwRole::ReaderBehindWriter));
        }
        if writer != Some(false) && w.expected == used {
            candidates.push((w.addr.checked_sub(RWLOCK_WRPHASE_FUTEX), RwRole::WriterBehindReaders));
        }
        if writer != Some(true) && w.expected & RWLOCK_RWAITING != 0 {
            candidates.push((Some(w.addr), RwRole::ReaderBehindQueuedWriter));
        }
        for (base, role) in candidates {
            let Some(base) = base else { continue };
            let Some(rw) = RwLockFields::read(mem, base) else {
                continue;
            };
            // The futex flag follows `__shared` (__pthread_rwlock_get_private).
            if w.private != (rw.shared == 0) {
                continue;
            }
            // Without names, also demand the lock state that makes this wait possible.
            let state_ok = match role {
                RwRole::WriterBehindWriter => rw.readers & RWLOCK_WRLOCKED != 0,
                RwRole::ReaderBehindWriter => rw.readers & RWLOCK_WRPHASE != 0,
                RwRole::WriterBehindReaders => {
                    rw.readers & RWLOCK_WRPHASE == 0 && rw.readers & RWLOCK_WRLOCKED != 0 && rw.reader_count() > 0
                }
                RwRole::ReaderBehindQueuedWriter => rw.flags == 2 && rw.readers == w.expected,
            };
            if writer.is_none() && !state_ok {
                continue;
            }
            let call = hint.unwrap_or(match role {
                RwRole::WriterBehindWriter | RwRole::WriterBehindReaders => "pthread_rwlock_wrlock",
                _ => "pthread_rwlock_rdlock",
            });
            let shared = rw.shared != 0;
            let (how, owner) = match role {
                RwRole::WriterBehindWriter | RwRole::ReaderBehindWriter => {
                    let how = format!("{call} (blocked by a writer)");
                    let owner = if rw.cur_writer > 0 {
                        OwnerEvidence::Tid {
                            ns_tid: rw.cur_writer,
                            shared,
                            evidence: format!("__cur_writer = {}", rw.cur_writer),
                        }
                    } else {
                        OwnerEvidence::Unknown(
                            "__cur_writer is 0: the primary writer has not finished acquiring the lock".into(),
                        )
                    };
                    (how, owner)
                }
                RwRole::WriterBehindReaders => (
                    format!("{call} (blocked by {} reader(s))", rw.reader_count()),
                    OwnerEvidence::Unknown(format!(
                        "held by {} reader(s); glibc does not record which threads hold read locks",
                        rw.reader_count()
                    )),
                ),
                RwRole::ReaderBehindQueuedWriter => (
                    format!("{call} (blocked by a queued writer)"),
                    OwnerEvidence::Unknown("a writer is queued behind the current readers".into()),
                ),
            };
            let mut f = Found::new(ResourceKind::RwLock, base, owner, how);
            f.rw_role = Some(role);
            if role == RwRole::WriterBehindReaders {
                f.readers = Some(rw.reader_count());
            }
            return Some(f);
        }
        None
    }

    /// pthread_join sleeps on the joined thread's `struct pthread.tid` with the
    /// TID as expected value, as a shared WAIT_BITSET (nptl/pthread_join_common.c).
    /// `strict`: no names; demand that the value is a TID of this process and,
    /// when that thread's `fs_base` is known, that the address is its `tid` field.
    fn join(&self, i: usize, w: &FutexWait, strict: bool, call: &str) -> Option<Found> {
        if !matches!(w.cmd, FutexCmd::WaitBitset | FutexCmd::Wait) || w.private {
            return None;
        }
        if let Some(f) = self.join_state(i, w, strict, call) {
            return Some(f);
        }
        let tid = w.expected as i32;
        if tid <= 0 {
            return None;
        }
        let target = self.thread_index_by_ns_tid(tid);
        if strict {
            let j = target?;
            if j == i || w.current != w.expected {
                return None;
            }
            if let Some(fs) = self.fs_base(j) {
                if Some(w.addr) != fs.checked_add(self.layout.tid) {
                    return None;
                }
            }
        }
        let at_tid_field = target
            .and_then(|j| self.fs_base(j))
            .is_some_and(|fs| Some(w.addr) == fs.checked_add(self.layout.tid));
        let evidence = if at_tid_field {
            format!(
                "the futex is the tid field (struct pthread + {:#x}) of thread {tid}, and holds {tid}",
                self.layout.tid
            )
        } else {
            format!("the futex word holds TID {tid}")
        };
        let mut f = Found::new(
            ResourceKind::Thread,
            w.addr,
            OwnerEvidence::Tid {
                ns_tid: tid,
                shared: false,
                evidence,
            },
            call,
        );
        f.name = Some(match target {
            Some(j) => self.view.snapshot.threads[j].name.clone(),
            None => format!("thread {tid}"),
        });
        Some(f)
    }

    /// Newer glibc (2.43, Debian sid) no longer sleeps in pthread_join on the
    /// joined thread's `tid` but on its `struct pthread.joinstate`, with the
    /// state as the expected value (2 while the thread runs, joinable). The
    /// futex is then inside the joined thread's descriptor, which names it.
    /// `strict` (no glibc names on the stack): only at the offset measured
    /// on 2.43 ([`JOINSTATE_OFFSETS`]); with pthread_join on the stack, at
    /// any offset past `tid` within the descriptor.
    fn join_state(&self, i: usize, w: &FutexWait, strict: bool, call: &str) -> Option<Found> {
        if w.expected > JOINSTATE_MAX || w.current != w.expected {
            return None;
        }
        let (j, off) = (0..self.view.snapshot.threads.len()).find_map(|j| {
            let off = w.addr.checked_sub(self.fs_base(j)?)?;
            let fits = if strict {
                JOINSTATE_OFFSETS.contains(&off)
            } else {
                off > self.layout.tid && off < PTHREAD_DESCRIPTOR_MAX
            };
            (j != i && fits).then_some((j, off))
        })?;
        let t = &self.view.snapshot.threads[j];
        Some(Found::new(
            ResourceKind::Thread,
            w.addr,
            OwnerEvidence::Tid {
                ns_tid: t.ns_tid,
                shared: false,
                evidence: format!(
                    "the futex is in thread {}'s descriptor (struct pthread + {off:#x}, its join state) and holds \
                     {}: it has not exited",
                    t.ns_tid, w.expected
                ),
            },
            call,
        ))
        .map(|mut f| {
            f.name = Some(t.name.clone());
            f
        })
    }

    /// pthread_cond_wait pushes a cleanup buffer naming the condvar and the
    /// mutex; with the waiter's `fs_base` this identifies both exactly.
    fn cond_from_cleanup(&self, i: usize, w: &FutexWait) -> Option<Found> {
        if w.cmd != FutexCmd::WaitBitset {
            return None;
        }
        let fs = self.fs_base(i)?;
        let c = CondWaitCleanup::read(self.view.memory, &self.layout, fs)?;
        let g = w.addr.checked_sub(c.cond)?;
        if g != COND_G_SIGNALS && g != COND_G_SIGNALS + 4 {
            return None;
        }
        let mutex = match owners::object_name(self.view, c.mutex) {
            Some(name) => format!("{name} at {:#x}", c.mutex),
            None => format!("{:#x}", c.mutex),
        };
        Some(Found::new(
            ResourceKind::CondVar,
            c.cond,
            OwnerEvidence::Unknown("condition variables have no owner".into()),
            format!("pthread_cond_wait (with mutex {mutex})"),
        ))
    }

    /// Condvar waiters sleep on `__g_signals[g]` (+40 or +44) expecting 0, and
    /// count themselves in `__wrefs` (8 per waiter) and `__g_refs[g]`.
    fn cond_layout(&self, w: &FutexWait, strict: bool) -> Option<Found> {
        if w.cmd != FutexCmd::WaitBitset || w.expected != 0 {
            return None;
        }
        for g in 0..2u64 {
            let Some(cond) = w.addr.checked_sub(COND_G_SIGNALS + 4 * g) else {
                continue;
            };
            let Some(c) = CondFields::read(self.view.memory, cond) else {
                continue;
            };
            if c.waiters() == 0 || c.pshared() == w.private {
                continue;
            }
            if strict && c.g_refs[g as usize] < 2 {
                continue;
            }
            return Some(Found::new(
                ResourceKind::CondVar,
                cond,
                OwnerEvidence::Unknown("condition variables have no owner".into()),
                "pthread_cond_wait",
            ));
        }
        None
    }

    /// sem_wait sleeps on the semaphore's value word expecting 0; the high half
    /// counts waiters and `private` mirrors the futex flag (nptl/sem_waitcommon.c).
    fn sem(&self, w: &FutexWait, strict: bool) -> Option<Found> {
        if w.cmd != FutexCmd::WaitBitset || w.expected != 0 {
            return None;
        }
        let s = SemFields::read(self.view.memory, w.addr)?;
        if (s.private == 0) != w.private || (strict && s.nwaiters == 0) {
            return None;
        }
        Some(Found::new(
            ResourceKind::Semaphore,
            w.addr,
            OwnerEvidence::Unknown("semaphores have no owner".into()),
            format!("sem_wait (value {}, {} waiter(s))", s.value, s.nwaiters),
        ))
    }

    /// pthread_barrier_wait sleeps on `current_round` (+4) expecting the current
    /// round, a multiple of `count` (nptl/pthread_barrier_wait.c); during a
    /// reset it sleeps on `in` (+0).
    fn barrier(&self, w: &FutexWait, strict: bool) -> Option<Found> {
        if w.cmd != FutexCmd::Wait {
            return None;
        }
        let mem = self.view.memory;
        let on_round = w
            .addr
            .checked_sub(4)
            .and_then(|b| Some((b, BarrierFields::read(mem, b)?)));
        let (base, b) = match on_round {
            Some((base, b)) if b.current_round == w.expected && w.expected % b.count == 0 => (base, b),
            _ if !strict => (w.addr, BarrierFields::read(mem, w.addr)?),
            _ => return None,
        };
        if (b.shared == 0) != w.private || (strict && b.in_ <= w.expected) {
            return None;
        }
        Some(Found::new(
            ResourceKind::Barrier,
            base,
            OwnerEvidence::Unknown("barriers have no owner".into()),
            format!(
                "pthread_barrier_wait ({} of {} arrived)",
                b.in_.saturating_sub(b.current_round),
                b.count
            ),
        ))
    }

    fn to_wait(&self, i: usize, f: &Found) -> Wait {
        let snap = self.view.snapshot;
        let resource = owners::resource_named(self.view, f.kind, f.object, f.name.clone());
        let owner = match &f.owner {
            OwnerEvidence::Tid {
                ns_tid,
                shared,
                evidence,
            } => owners::owner_from_tid(snap, self.tasks, *ns_tid, *shared, Confidence::Exact, evidence.clone()),
            OwnerEvidence::InferredTid {
                ns_tid,
                shared,
                evidence,
            } => owners::owner_from_tid(
                snap,
                self.tasks,
                *ns_tid,
                *shared,
                Confidence::Inferred,
                evidence.clone(),
            ),
            OwnerEvidence::Thread { index, evidence } | OwnerEvidence::Inferred { index, evidence } => Owner::held_by(
                snap.pid,
                snap.threads[*index].tid,
                if matches!(f.owner, OwnerEvidence::Thread { .. }) {
                    Confidence::Exact
                } else {
                    Confidence::Inferred
                },
                evidence.clone(),
            ),
            OwnerEvidence::Unknown(why) => Owner::unknown(why.clone()),
        };
        Wait {
            resource,
            owner,
            how: f.how.clone(),
            site_frame: frames::site_frame(self.stack(i)),
            ends: crate::runtimes::Ends::WITH_CALL,
        }
    }
}

/// A writer queued on `__writers_futex` while the primary writer is still
/// waiting for readers sees `__cur_writer == 0`. The primary writer is the
/// only thread that sleeps on `__wrphase_futex` with value 2, so when exactly
/// one such thread waits on the same rwlock, it is the one blocking the others.
fn refine_rwlock_owners(mut found: Vec<Option<Found>>) -> Vec<Option<Found>> {
    let primaries: Vec<(u64, usize)> = found
        .iter()
        .enumerate()
        .filter_map(|(j, f)| {
            let f = f.as_ref()?;
            (f.rw_role == Some(RwRole::WriterBehindReaders)).then_some((f.object, j))
        })
        .collect();
    for f in found.iter_mut().flatten() {
        let blocked_by_writer = matches!(
            f.rw_role,
            Some(RwRole::WriterBehindWriter | RwRole::ReaderBehindWriter | RwRole::ReaderBehindQueuedWriter)
        );
        if !blocked_by_writer || !matches!(f.owner, OwnerEvidence::Unknown(_)) {
            continue;
        }
        let mut same = primaries.iter().filter(|(obj, _)| *obj == f.object);
        if let (Some(&(_, j)), None) = (same.next(), same.next()) {
            f.owner = OwnerEvidence::Inferred {
                index: j,
                evidence: "the primary writer: the only thread waiting on __wrphase_futex for readers to leave".into(),
            };
        }
    }
    found
}

/// glibc records how many threads hold an rwlock for reading, not which.
/// For a writer waiting for readers, the candidates are the threads, other
/// than those waiting on the same rwlock, whose stack or registers point to
/// it or whose code on the stack loaded its address before the point it
/// resumes at. One reader and exactly one candidate: that thread, inferred.
/// Otherwise the candidates are named in the evidence and the owner stays
/// unknown (no edge).
fn infer_rwlock_readers(view: &ProcessView<'_>, mut found: Vec<Option<Found>>) -> Vec<Option<Found>> {
    let waiting: Vec<(u64, usize)> = found
        .iter()
        .enumerate()
        .filter_map(|(j, f)| {
            f.as_ref()
                .filter(|f| f.kind == ResourceKind::RwLock)
                .map(|f| (f.object, j))
        })
        .collect();
    let scanner = super::codescan::CodeScanner::new(view);
    for f in found.iter_mut().flatten() {
        let (Some(RwRole::WriterBehindReaders), Some(readers)) = (f.rw_role, f.readers) else {
            continue;
        };
        let exclude: Vec<usize> = waiting
            .iter()
            .filter(|(o, _)| *o == f.object)
            .map(|&(_, j)| j)
            .collect();
        let mut candidates: Vec<(usize, String)> = Vec::new();
        match stackscan::infer_holder(view, f.object, &exclude) {
            stackscan::Inference::One(j, refs) => {
                candidates.push((j, refs.first().map(|r| r.describe(view)).unwrap_or_default()))
            }
            stackscan::Inference::Several(js) => candidates.extend(js.into_iter().map(|j| {
                let tid = view.snapshot.threads[j].tid;
                (
                    j,
                    format!("thread {tid} has a pointer to it on its stack or in a register"),
                )
            })),
            stackscan::Inference::None => {}
        }
        let rdlock = |name: &str| {
            let n = name.trim_start_matches('_');
            n.starts_with("pthread_rwlock_") && n.contains("rdlock")
        };
        for a in scanner.callers_with(f.object, &exclude, &rdlock) {
            if !candidates.iter().any(|(j, _)| *j == a.thread) {
                let why = a.describe_doing(view, "read-locked it (pthread_rwlock_*rdlock on its address");
                candidates.push((a.thread, why));
            }
        }
        candidates.sort_by_key(|(j, _)| *j);
        let held = format!("held by {readers} reader(s); glibc does not record which threads hold read locks");
        f.owner = match (readers, candidates.as_slice()) {
            (1, [(j, why)]) => OwnerEvidence::Inferred {
                index: *j,
                evidence: format!("{held}; the only candidate: {why}"),
            },
            (_, []) => OwnerEvidence::Unknown(format!(
                "{held}; no other thread's stack, registers or code on its stack refers to it"
            )),
            (_, cs) => OwnerEvidence::Unknown(format!(
                "{held}; candidates: {}",
                cs.iter().map(|(_, why)| why.as_str()).collect::<Vec<_>>().join("; ")
            )),
        };
    }
    found
}

/// Holds: a thread holds what other threads' exact or inferred owners say it
/// holds, plus every robust mutex on its robust list.
fn add_holds(ctx: &Ctx<'_, '_>, out: &mut [ThreadFindings]) {
    let snap = ctx.view.snapshot;
    let mut holds = owners::holds_from_waits(snap, out);
    for (j, t) in snap.threads.iter().enumerate() {
        let Some(fs) = ctx.fs_base(j) else { continue };
        for addr in layout::robust_list(ctx.view.memory, &ctx.layout, fs, ROBUST_LIST_LIMIT) {
            let Some(m) = MutexFields::read(ctx.view.memory, addr) else {
                continue;
            };
            let lock = ctx.view.memory.read_u32(addr).unwrap_or(0);
            if !m.robust() || (lock & FUTEX_TID_MASK) as i32 != t.ns_tid {
                continue;
            }
            holds.push((
                j,
                Hold {
                    resource: owners::resource_at(ctx.view, mutex_kind(&m), addr),
                    confidence: Confidence::Exact,
                    evidence: format!(
                        "on the thread's robust list (struct pthread + {:#x}); lock word {lock:#x}",
                        ctx.layout.robust_head
                    ),
                    site_frame: None,
                },
            ));
        }
    }
    owners::merge_holds(out, holds);
}

#[cfg(test)]
mod tests;
