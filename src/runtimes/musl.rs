//! musl waits: mutexes, rwlocks, condition variables and joins, and who holds what.
//!
//! Applied only when [`super::libc::detect`] found musl: its objects reuse
//! the bytes glibc's use for other fields. Layouts and protocols are in
//! [`layout`], with their sources.
//!
//! musl's stacks are often opaque: Debian's `libc.a` carries no unwind
//! tables, so a thread of a static program stops unwinding in the syscall
//! wrapper, and a stripped one has no names at all. So every wait is
//! classified from the futex arguments and the memory around the word,
//! never from function names:
//! - a mutex waiter sleeps (`FUTEX_WAIT`, private unless the mutex is
//!   process-shared) on `_m_lock` with the value it saw there plus
//!   `0x80000000`, after counting itself in `_m_waiters`;
//! - an rwlock waiter does the same on `_rw_lock`;
//! - `pthread_join` sleeps on the joined thread's `detach_state`, inside the
//!   joined thread's `struct pthread`, which names the joined TID;
//! - a private condvar waiter sleeps on a `struct waiter` node on its own
//!   stack (value 2), a shared one on `_c_seq`.
//!
//! Owners: a non-NORMAL mutex keeps its owner's TID in `_m_lock`
//! (`& 0x3fffffff`): exact. A NORMAL mutex stores only `EBUSY`, and
//! rwlocks store no owner at all: the owner is inferred from pointers to the
//! lock on other threads' stacks ([`super::stackscan`]) when exactly one
//! thread has them, and is otherwise unknown (no edge).

pub mod layout;

use self::layout::{
    MutexFields, RwLockFields, ThreadDescriptor, WaiterNode, COND_HEAD, COND_SEQ, COND_SIZE, COND_TAIL, DT_EXITING,
    DT_JOINABLE, LOCK_OWNER_DIED, LOCK_TID_MASK, LOCK_WAITERS, MUTEX_LOCK, NORMAL_LOCKED, PTHREAD_DETACH_STATE,
    PTHREAD_TID, RW_WAITERS, WAITER_BARRIER, WAITER_SLEEPING, WAITER_WAITING,
};
use super::futex::{FutexCmd, FutexWait};
use super::owners::{self, TaskTable};
use super::stackscan::{self, Inference};
use super::{frames, syscalls, Confidence, Owner, ProcessView, ResourceKind, ThreadFindings, Wait};
use crate::capture::RegisterSource;

/// Longest chain of condvar waiter nodes followed to find the list's ends.
const MAX_WAITER_CHAIN: usize = 1024;

/// What each thread waits on (musl objects only) and holds, parallel to
/// `view.snapshot.threads`; like [`super::glibc::analyze`], an unrecognized
/// blocking call is left in `blocked_in`.
pub fn analyze(view: &ProcessView<'_>) -> Vec<ThreadFindings> {
    analyze_with(view, owners::task_table(view.snapshot))
}

/// [`analyze`] with an explicit table of tasks outside the snapshot.
pub fn analyze_with(view: &ProcessView<'_>, tasks: &dyn TaskTable) -> Vec<ThreadFindings> {
    let n = view.snapshot.threads.len();
    let found: Vec<Option<Found>> = (0..n).map(|i| classify_thread(view, i)).collect();
    let mut out: Vec<ThreadFindings> = (0..n)
        .map(|i| match &found[i] {
            Some(f) => ThreadFindings {
                sleep: Default::default(),
                wait: Some(to_wait(view, tasks, i, f, &found)),
                holds: Vec::new(),
                blocked_in: None,
            },
            None => ThreadFindings {
                sleep: Default::default(),
                wait: None,
                holds: Vec::new(),
                blocked_in: view.snapshot.threads[i]
                    .syscall
                    .and_then(|s| syscalls::describe(&s, &view.calls[i])),
            },
        })
        .collect();
    add_holds(view, &mut out);
    out
}

/// Who blocks the waiter, before TIDs are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnerEvidence {
    /// A TID from a field musl keeps (target PID namespace).
    Tid {
        ns_tid: i32,
        shared: bool,
        evidence: String,
    },
    /// The lock keeps no owner: look for one on other threads' stacks.
    Infer(String),
    /// None by design, or none readable.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    kind: ResourceKind,
    object: u64,
    owner: OwnerEvidence,
    how: String,
    name: Option<String>,
}

impl Found {
    fn new(kind: ResourceKind, object: u64, owner: OwnerEvidence, how: impl Into<String>) -> Self {
        Found {
            kind,
            object,
            owner,
            how: how.into(),
            name: None,
        }
    }
}

fn classify_thread(view: &ProcessView<'_>, i: usize) -> Option<Found> {
    let w = *view.futex(i)?;
    if w.cmd.is_pi_lock() {
        return pi_mutex(view, &w);
    }
    if w.cmd != FutexCmd::Wait {
        return None;
    }
    join(view, i, &w)
        .or_else(|| mutex(view, &w))
        .or_else(|| rwlock(&w, view))
        .or_else(|| cond_private(view, i, &w))
        .or_else(|| cond_shared(view, &w))
}

/// The kind of a musl mutex, in lockdump's terms.
fn mutex_kind(m: &MutexFields) -> ResourceKind {
    if m.pi() {
        ResourceKind::PiMutex
    } else if m.robust() {
        ResourceKind::RobustMutex
    } else {
        match m.type_ & layout::MUTEX_KIND_MASK {
            0 => ResourceKind::Mutex,
            1 => ResourceKind::RecursiveMutex,
            _ => ResourceKind::ErrorCheckMutex,
        }
    }
}

/// pthread_mutex_timedlock.c: `a_inc(&m->_m_waiters); t = r | 0x80000000;
/// a_cas(&m->_m_lock, r, t); __timedwait(&m->_m_lock, t, ..., priv)` with
/// `priv = (type & 128) ^ 128`. So the word is `_m_lock` (mutex + 4), the
/// value has bit 31 set, and for a NORMAL mutex its low bits are EBUSY; for
/// the other types, the owner's TID.
fn mutex(view: &ProcessView<'_>, w: &FutexWait) -> Option<Found> {
    let base = w.addr.checked_sub(MUTEX_LOCK)?;
    let m = MutexFields::read(view.memory, base)?;
    if m.pi() || w.private == m.pshared() || w.expected & LOCK_WAITERS == 0 || m.waiters == 0 || m.waiters > 1 << 20 {
        return None;
    }
    let how = format!("pthread_mutex_lock ({})", m.type_name());
    let seen = w.expected & !LOCK_WAITERS;
    if m.normal() {
        if seen != NORMAL_LOCKED {
            return None;
        }
        return Some(Found::new(
            ResourceKind::Mutex,
            base,
            OwnerEvidence::Infer(format!(
                "musl's normal mutexes record no owner (_m_lock = {:#x}: EBUSY, waiters)",
                w.current
            )),
            how,
        ));
    }
    // A locked non-NORMAL mutex is linked into its owner's list (trylock.c).
    if seen & LOCK_TID_MASK == 0 || m.prev == 0 || m.next == 0 {
        return None;
    }
    let tid = (w.current & LOCK_TID_MASK) as i32;
    let owner = if tid == 0 {
        OwnerEvidence::Unknown(format!("_m_lock {:#x} names no owner (being released)", w.current))
    } else {
        let mut evidence = format!("_m_lock = {:#x}: owner TID {tid}", w.current);
        if w.current & LOCK_OWNER_DIED != 0 {
            evidence.push_str(", owner-died bit set");
        }
        OwnerEvidence::Tid {
            ns_tid: tid,
            shared: m.pshared(),
            evidence,
        }
    };
    Some(Found::new(mutex_kind(&m), base, owner, how))
}

/// A priority-inheritance mutex: `FUTEX_LOCK_PI` on `_m_lock`, whose TID bits
/// the kernel keeps as the owner's.
fn pi_mutex(view: &ProcessView<'_>, w: &FutexWait) -> Option<Found> {
    let base = w.addr.checked_sub(MUTEX_LOCK)?;
    let m = MutexFields::read(view.memory, base).filter(|m| m.pi())?;
    let tid = (w.current & LOCK_TID_MASK) as i32;
    let owner = if tid == 0 {
        OwnerEvidence::Unknown(format!("_m_lock {:#x} names no owner (being released)", w.current))
    } else {
        OwnerEvidence::Tid {
            ns_tid: tid,
            shared: m.pshared(),
            evidence: format!("_m_lock = {:#x}: owner TID {tid} (FUTEX_LOCK_PI protocol)", w.current),
        }
    };
    Some(Found::new(
        ResourceKind::PiMutex,
        base,
        owner,
        format!("pthread_mutex_lock ({})", m.type_name()),
    ))
}

/// pthread_rwlock_timed{rd,wr}lock.c: the waiter counts itself in
/// `_rw_waiters`, sets bit 31 of `_rw_lock` and sleeps on it with that value
/// (private unless `_rw_shared`). The lock word tells who blocks: a writer
/// (0x7fffffff) or that many readers. musl records neither.
fn rwlock(w: &FutexWait, view: &ProcessView<'_>) -> Option<Found> {
    let rw = RwLockFields::read(view.memory, w.addr)?;
    if w.private != (rw.shared == 0) || w.expected & RW_WAITERS == 0 || rw.waiters == 0 || rw.waiters > 1 << 20 {
        return None;
    }
    let seen = RwLockFields { lock: w.expected, ..rw };
    if seen.write_locked() {
        Some(Found::new(
            ResourceKind::RwLock,
            w.addr,
            OwnerEvidence::Infer("musl's rwlocks record no writer".into()),
            "pthread_rwlock_rdlock or _wrlock (blocked by a writer)",
        ))
    } else if seen.readers() > 0 {
        Some(Found::new(
            ResourceKind::RwLock,
            w.addr,
            OwnerEvidence::Unknown(format!(
                "held by {} reader(s); musl does not record which threads hold read locks",
                seen.readers()
            )),
            format!("pthread_rwlock_wrlock (blocked by {} reader(s))", seen.readers()),
        ))
    } else {
        None
    }
}

/// The thread's `struct pthread`, when registers were read with ptrace.
fn fs_base(view: &ProcessView<'_>, i: usize) -> Option<u64> {
    let t = view.snapshot.threads.get(i)?;
    (t.register_source == RegisterSource::Ptrace && t.regs.fs_base != 0).then_some(t.regs.fs_base)
}

/// pthread_join.c: `__timedwait_cp(&t->detach_state, state, ..., 1)` while
/// `state` is DT_JOINABLE or DT_EXITING. The word lies in the joined
/// thread's descriptor, whose `tid` field names it (exact), and which points
/// to itself.
fn join(view: &ProcessView<'_>, i: usize, w: &FutexWait) -> Option<Found> {
    if !w.private || !(w.expected == DT_JOINABLE || w.expected == DT_EXITING) {
        return None;
    }
    let pd = w.addr.checked_sub(PTHREAD_DETACH_STATE)?;
    let d = ThreadDescriptor::read(view.memory, pd)?;
    let tid = d.tid as i32;
    if d.self_ != pd || tid <= 0 || d.detach_state != w.current {
        return None;
    }
    let target = view.snapshot.threads.iter().position(|t| t.ns_tid == tid);
    // When the joined thread is in the snapshot, its fs_base must be this descriptor.
    if let Some(j) = target {
        if j == i || fs_base(view, j).is_some_and(|fs| fs != pd) {
            return None;
        }
    }
    let mut f = Found::new(
        ResourceKind::Thread,
        w.addr,
        OwnerEvidence::Tid {
            ns_tid: tid,
            shared: false,
            evidence: format!(
                "the futex is detach_state (struct pthread + {PTHREAD_DETACH_STATE:#x}) of the descriptor at {pd:#x}, whose tid (+{PTHREAD_TID:#x}) = {tid}"
            ),
        },
        "pthread_join",
    );
    f.name = Some(match target {
        Some(j) => view.snapshot.threads[j].name.clone(),
        None => format!("thread {tid}"),
    });
    Some(f)
}

/// A private condvar wait (pthread_cond_timedwait.c): the waiter sleeps on
/// `node.barrier` (value 2) of a `struct waiter` on its own stack, state
/// WAITING. The node is linked into the condvar's list (`_c_head` newest,
/// `_c_tail` oldest); the condvar is found as the object whose `_c_head`
/// and `_c_tail` are that list's ends, among the pointers in the waiter's
/// live stack and callee-saved registers (it needs `c` after waking).
fn cond_private(view: &ProcessView<'_>, i: usize, w: &FutexWait) -> Option<Found> {
    if !w.private || w.expected != WAITER_SLEEPING {
        return None;
    }
    let t = view.snapshot.threads.get(i)?;
    let node = w.addr.checked_sub(WAITER_BARRIER)?;
    let stack = view.snapshot.mapping(t.regs.rsp)?;
    if !(t.regs.rsp <= node && w.addr < stack.end) {
        return None;
    }
    let n = WaiterNode::read(view.memory, node)?;
    if n.state != WAITER_WAITING {
        return None;
    }
    let end = |mut at: u64, next: fn(&WaiterNode) -> u64| -> Option<u64> {
        for _ in 0..MAX_WAITER_CHAIN {
            let nd = WaiterNode::read(view.memory, at)?;
            match next(&nd) {
                0 => return Some(at),
                p => at = p,
            }
        }
        None
    };
    let cond = match (end(node, |n| n.prev), end(node, |n| n.next)) {
        (Some(head), Some(tail)) => find_condvar(view, i, head, tail),
        _ => None,
    };
    Some(match cond {
        Some(c) => Found::new(
            ResourceKind::CondVar,
            c,
            OwnerEvidence::Unknown("condition variables have no owner".into()),
            format!("pthread_cond_wait (sleeping on its waiter node at {node:#x})"),
        ),
        None => Found::new(
            ResourceKind::CondVar,
            w.addr,
            OwnerEvidence::Unknown("condition variables have no owner".into()),
            format!(
                "pthread_cond_wait (sleeping on its waiter node at {node:#x}; the condition variable itself was not found)"
            ),
        ),
    })
}

fn find_condvar(view: &ProcessView<'_>, i: usize, head: u64, tail: u64) -> Option<u64> {
    let t = view.snapshot.threads.get(i)?;
    let is_cond = |c: u64| -> bool {
        c % 8 == 0
            && view.memory.read_vec(c, COND_SIZE).is_ok_and(|b| {
                let at = |o: u64| u64::from_le_bytes(b[o as usize..o as usize + 8].try_into().unwrap_or_default());
                at(0) == 0 && at(COND_HEAD) == head && at(COND_TAIL) == tail
            })
    };
    let mut candidates: Vec<u64> = stackscan::callee_saved(&t.regs).iter().map(|&(_, v)| v).collect();
    let region = &t.stack;
    if let Some(start) = stackscan::align_word(t.regs.rsp.max(region.start)) {
        let off = start.saturating_sub(region.start) as usize;
        let bytes = region.bytes.get(off..).unwrap_or(&[]);
        let bytes = &bytes[..bytes.len().min(stackscan::MAX_SCAN_BYTES)];
        candidates.extend(stackscan::words(start, bytes).map(|(_, v)| v));
    }
    candidates.into_iter().filter(|&c| c > 0x1000).find(|&c| is_cond(c))
}

/// A process-shared condvar (`_c_shared` = -1): waiters sleep, shared, on
/// `_c_seq` with the sequence they saw, counted in `_c_waiters`.
fn cond_shared(view: &ProcessView<'_>, w: &FutexWait) -> Option<Found> {
    if w.private {
        return None;
    }
    let c = w.addr.checked_sub(COND_SEQ)?;
    let shared = view.memory.read_u64(c).ok()?;
    let waiters = view.memory.read_u32(w.addr.checked_add(4)?).ok()?;
    if shared != u64::MAX || waiters == 0 || w.current != w.expected {
        return None;
    }
    Some(Found::new(
        ResourceKind::CondVar,
        c,
        OwnerEvidence::Unknown("condition variables have no owner".into()),
        "pthread_cond_wait (process-shared)",
    ))
}

fn to_wait(view: &ProcessView<'_>, tasks: &dyn TaskTable, i: usize, f: &Found, all: &[Option<Found>]) -> Wait {
    let snap = view.snapshot;
    let resource = owners::resource_named(view, f.kind, f.object, f.name.clone());
    let owner = match &f.owner {
        OwnerEvidence::Tid {
            ns_tid,
            shared,
            evidence,
        } => owners::owner_from_tid(snap, tasks, *ns_tid, *shared, Confidence::Exact, evidence.clone()),
        OwnerEvidence::Unknown(why) => Owner::unknown(why.clone()),
        OwnerEvidence::Infer(why) => infer_owner(view, i, f, all, why),
    };
    let empty = crate::stacks::Stack::default();
    Wait {
        resource,
        owner,
        how: f.how.clone(),
        site_frame: frames::site_frame(view.stacks.get(i).unwrap_or(&empty)),
        ends: crate::runtimes::Ends::WITH_CALL,
    }
}

/// The holder of a lock that records none: the one thread, other than those
/// waiting on it, whose live stack or callee-saved registers point to it.
fn infer_owner(view: &ProcessView<'_>, i: usize, f: &Found, all: &[Option<Found>], why: &str) -> Owner {
    let exclude: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(j, g)| *j == i || g.as_ref().is_some_and(|g| g.object == f.object))
        .map(|(j, _)| j)
        .collect();
    match stackscan::infer_holder(view, f.object, &exclude) {
        Inference::One(j, refs) => {
            let shown: Vec<String> = refs.iter().take(3).map(|r| r.describe(view)).collect();
            Owner::held_by(
                view.snapshot.pid,
                view.snapshot.threads[j].tid,
                Confidence::Inferred,
                format!("{why}; the only other thread referencing it: {}", shown.join("; ")),
            )
        }
        Inference::Several(js) => {
            let tids: Vec<String> = js.iter().map(|&j| view.snapshot.threads[j].tid.to_string()).collect();
            Owner::unknown(format!("{why}; several threads reference it: {}", tids.join(", ")))
        }
        Inference::None => Owner::unknown(format!("{why}; no other thread's stack or registers point to it")),
    }
}

/// A thread holds what other threads' exact or inferred owners say it holds.
fn add_holds(view: &ProcessView<'_>, out: &mut [ThreadFindings]) {
    let holds = owners::holds_from_waits(view.snapshot, out);
    owners::merge_holds(out, holds);
}

#[cfg(test)]
mod tests;
