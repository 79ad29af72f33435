//! musl object layouts on x86_64 and readers that validate them.
//!
//! Source: musl 1.2.3 (what Debian 12's musl-dev ships), read in the
//! bminor/musl mirror at tag v1.2.3:
//! - `include/alltypes.h.in`: `pthread_mutex_t`, `pthread_rwlock_t` and
//!   `pthread_cond_t` are unions of `int __i[]` / `volatile int __vi[]` /
//!   `void *__p[]` (40, 56 and 48 bytes on x86_64);
//! - `src/internal/pthread_impl.h`: which array element each field is
//!   (`_m_type __u.__i[0]`, `_m_lock __u.__vi[1]`, `_m_waiters __u.__vi[2]`,
//!   `_m_prev __u.__p[3]`, `_m_next __u.__p[4]`, `_m_count __u.__i[5]`;
//!   `_rw_lock __u.__vi[0]`, `_rw_waiters __u.__vi[1]`, `_rw_shared __u.__i[2]`;
//!   `_c_shared __u.__p[0]`, `_c_head __u.__p[1]`, `_c_seq __u.__vi[2]`,
//!   `_c_waiters __u.__vi[3]`, `_c_tail __u.__p[5]`), and `struct pthread`
//!   (`self, dtv, prev, next, sysinfo, canary` then `int tid; int errno_val;
//!   volatile int detach_state;` on x86_64, where `TLS_ABOVE_TP` and
//!   `CANARY_PAD` are not defined);
//! - the lock protocols: `src/thread/pthread_mutex_timedlock.c`,
//!   `pthread_mutex_trylock.c`, `pthread_mutex_unlock.c`,
//!   `pthread_rwlock_timedrdlock.c` / `timedwrlock.c` / `unlock.c`,
//!   `pthread_cond_timedwait.c` (`struct waiter`), `pthread_join.c`,
//!   `pthread_mutexattr_set*.c` (the `_m_type` bits).
//!
//! Each reader returns `None` when the bytes are not a self-consistent
//! object of that type, so the caller can try the next interpretation.

use crate::capture::Memory;

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// `_m_type` bits (pthread_mutexattr_settype/setrobust/setprotocol/setpshared.c):
/// `type & 3` is NORMAL 0 / RECURSIVE 1 / ERRORCHECK 2; 4 robust; 8 priority
/// inheritance; 128 process-shared.
pub const MUTEX_KIND_MASK: u32 = 3;
pub const MUTEX_ROBUST: u32 = 4;
pub const MUTEX_PI: u32 = 8;
pub const MUTEX_PSHARED: u32 = 128;
const MUTEX_KNOWN_BITS: u32 = MUTEX_KIND_MASK | MUTEX_ROBUST | MUTEX_PI | MUTEX_PSHARED;
/// `_m_lock` bits: the owner TID of a non-NORMAL mutex (`& 0x3fffffff`),
/// owner died (0x40000000), waiters (0x80000000, set by a waiter before it sleeps).
pub const LOCK_TID_MASK: u32 = 0x3fff_ffff;
pub const LOCK_OWNER_DIED: u32 = 0x4000_0000;
pub const LOCK_WAITERS: u32 = 0x8000_0000;
/// A NORMAL mutex records no owner: the fast path is `a_cas(&m->_m_lock, 0, EBUSY)`.
pub const NORMAL_LOCKED: u32 = 16; // EBUSY
/// Offset of `_m_lock` in the mutex: the word waiters sleep on.
pub const MUTEX_LOCK: u64 = 4;
pub const MUTEX_SIZE: usize = 40;

/// `pthread_mutex_t` as musl uses it: `_m_type`@0, `_m_lock`@4,
/// `_m_waiters`@8, `_m_count`@20, `_m_prev`@24, `_m_next`@32
/// (`__i[3]`, `__i[4]` unused, always 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexFields {
    pub type_: u32,
    pub lock: u32,
    pub waiters: u32,
    pub count: u32,
    pub prev: u64,
    pub next: u64,
}

impl MutexFields {
    /// Read a mutex at `addr` and check the fields musl keeps constant.
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, MUTEX_SIZE).ok()?;
        let m = MutexFields {
            type_: u32_at(&b, 0),
            lock: u32_at(&b, 4),
            waiters: u32_at(&b, 8),
            count: u32_at(&b, 20),
            prev: u64_at(&b, 24),
            next: u64_at(&b, 32),
        };
        let sane = m.type_ & !MUTEX_KNOWN_BITS == 0
            && m.type_ & MUTEX_KIND_MASK != 3
            && u32_at(&b, 12) == 0
            && u32_at(&b, 16) == 0
            // Only non-NORMAL mutexes are linked into the owner's list.
            && (!m.normal() || (m.prev == 0 && m.next == 0 && m.count == 0));
        sane.then_some(m)
    }
    /// `(_m_type & 15) == PTHREAD_MUTEX_NORMAL`: no owner is recorded.
    pub fn normal(&self) -> bool {
        self.type_ & 15 == 0
    }
    pub fn pi(&self) -> bool {
        self.type_ & MUTEX_PI != 0
    }
    pub fn robust(&self) -> bool {
        self.type_ & MUTEX_ROBUST != 0
    }
    pub fn pshared(&self) -> bool {
        self.type_ & MUTEX_PSHARED != 0
    }
    /// `normal`, `recursive`, `errorcheck` plus robustness, protocol, sharing.
    pub fn type_name(&self) -> String {
        let mut s = match self.type_ & MUTEX_KIND_MASK {
            0 => "normal",
            1 => "recursive",
            _ => "errorcheck",
        }
        .to_string();
        if self.robust() {
            s.push_str(", robust");
        }
        if self.pi() {
            s.push_str(", priority-inheritance");
        }
        if self.pshared() {
            s.push_str(", process-shared");
        }
        s
    }
}

/// `_rw_lock` values: 0x7fffffff write-locked, else the reader count; bit 31
/// set by a waiter before it sleeps (pthread_rwlock_timed*lock.c).
pub const RW_WRITE_LOCKED: u32 = 0x7fff_ffff;
pub const RW_WAITERS: u32 = 0x8000_0000;
pub const RWLOCK_SIZE: usize = 56;

/// `pthread_rwlock_t`: `_rw_lock`@0 (the futex), `_rw_waiters`@4,
/// `_rw_shared`@8 (0 or 128, pthread_rwlock_init.c); the rest is unused (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RwLockFields {
    pub lock: u32,
    pub waiters: u32,
    pub shared: u32,
}

impl RwLockFields {
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, RWLOCK_SIZE).ok()?;
        let rw = RwLockFields {
            lock: u32_at(&b, 0),
            waiters: u32_at(&b, 4),
            shared: u32_at(&b, 8),
        };
        let sane = (rw.shared == 0 || rw.shared == 128) && b[12..].iter().all(|&x| x == 0);
        sane.then_some(rw)
    }
    pub fn write_locked(&self) -> bool {
        self.lock & !RW_WAITERS == RW_WRITE_LOCKED
    }
    pub fn readers(&self) -> u32 {
        if self.write_locked() {
            0
        } else {
            self.lock & !RW_WAITERS
        }
    }
}

/// `pthread_cond_t`: `_c_shared`@0 (`(void *)-1` when process-shared),
/// `_c_head`@8, `_c_seq`@8 (as `__vi[2]`, shared only), `_c_waiters`@12,
/// `_c_tail`@40.
pub const COND_HEAD: u64 = 8;
pub const COND_TAIL: u64 = 40;
pub const COND_SEQ: u64 = 8;
pub const COND_SIZE: usize = 48;

/// `struct waiter` of pthread_cond_timedwait.c, on the waiting thread's stack:
/// `prev`@0, `next`@8, `state`@16 (0 WAITING), `barrier`@20 (the futex, 2
/// while waiting), `notify`@24. A private condvar's waiter sleeps on its own
/// node's `barrier`, not on the condvar.
pub const WAITER_BARRIER: u64 = 20;
pub const WAITER_SIZE: usize = 32;
pub const WAITER_WAITING: u32 = 0;
/// The value a waiter sleeps with (`seq = node.barrier = 2`).
pub const WAITER_SLEEPING: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaiterNode {
    pub prev: u64,
    pub next: u64,
    pub state: u32,
    pub barrier: u32,
}

impl WaiterNode {
    pub fn read(mem: &dyn Memory, node: u64) -> Option<Self> {
        let b = mem.read_vec(node, WAITER_SIZE).ok()?;
        Some(WaiterNode {
            prev: u64_at(&b, 0),
            next: u64_at(&b, 8),
            state: u32_at(&b, 16),
            barrier: u32_at(&b, 20),
        })
    }
}

/// `struct pthread` offsets on x86_64 (the descriptor `fs_base` points to):
/// `self`@0, `dtv`@8, `prev`@0x10, `next`@0x18, `sysinfo`@0x20,
/// `canary`@0x28, `tid`@0x30, `errno_val`@0x34, `detach_state`@0x38.
pub const PTHREAD_SELF: u64 = 0;
pub const PTHREAD_PREV: u64 = 0x10;
pub const PTHREAD_NEXT: u64 = 0x18;
pub const PTHREAD_TID: u64 = 0x30;
pub const PTHREAD_DETACH_STATE: u64 = 0x38;
/// `detach_state` values (pthread_impl.h): DT_EXITED 0, DT_EXITING 1,
/// DT_JOINABLE 2, DT_DETACHED 3. pthread_join sleeps while it is non-zero.
pub const DT_EXITING: u32 = 1;
pub const DT_JOINABLE: u32 = 2;

/// The first fields of musl's `struct pthread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadDescriptor {
    pub self_: u64,
    pub prev: u64,
    pub next: u64,
    pub tid: u32,
    pub detach_state: u32,
}

impl ThreadDescriptor {
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, 0x40).ok()?;
        Some(ThreadDescriptor {
            self_: u64_at(&b, PTHREAD_SELF as usize),
            prev: u64_at(&b, PTHREAD_PREV as usize),
            next: u64_at(&b, PTHREAD_NEXT as usize),
            tid: u32_at(&b, PTHREAD_TID as usize),
            detach_state: u32_at(&b, PTHREAD_DETACH_STATE as usize),
        })
    }
    /// The descriptor at `addr` is a live musl thread's: it points to itself,
    /// holds `tid`, and its thread-list links lead to descriptors in `all`
    /// (one thread: to itself, as `__init_tp` sets them).
    pub fn matches(&self, addr: u64, tid: i32, all: &[u64]) -> bool {
        self.self_ == addr && tid > 0 && self.tid == tid as u32 && all.contains(&self.prev) && all.contains(&self.next)
    }
}
