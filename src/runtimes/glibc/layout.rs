//! glibc (NPTL) object layouts on x86_64 and readers that validate them.
//!
//! The public types' layouts are ABI and have not changed in years; they are
//! taken from glibc 2.36's installed headers (`bits/struct_mutex.h`,
//! `bits/struct_rwlock.h`, `bits/thread-shared-types.h`) and its internal
//! ones (`nptl/pthreadP.h`, `nptl/descr.h`, `nptl/semaphoreP.h`,
//! `internaltypes.h`), and checked against Debian 12's libc6-dbg with
//! `gdb -batch -ex 'ptype /o struct pthread'`.
//!
//! `struct pthread` is private; its field offsets are read from the
//! `_thread_db_*` descriptors libc exports for libthread_db when they exist.
//!
//! Each reader returns `None` when the bytes are not a self-consistent object
//! of that type, so the caller can try the next interpretation.

use crate::capture::Memory;
use crate::runtimes::SymbolLookup;

/// `PTHREAD_MUTEX_KIND_MASK_NP` and the flag bits of `__kind` (nptl/pthreadP.h).
pub const MUTEX_KIND_MASK: i32 = 3;
pub const MUTEX_ROBUST: i32 = 16;
pub const MUTEX_PRIO_INHERIT: i32 = 32;
pub const MUTEX_PRIO_PROTECT: i32 = 64;
pub const MUTEX_PSHARED: i32 = 128;
const MUTEX_ELISION_FLAGS: i32 = 256 | 512;
const MUTEX_KNOWN_BITS: i32 =
    MUTEX_KIND_MASK | MUTEX_ROBUST | MUTEX_PRIO_INHERIT | MUTEX_PRIO_PROTECT | MUTEX_PSHARED | MUTEX_ELISION_FLAGS;
/// `PTHREAD_MUTEX_INCONSISTENT` / `PTHREAD_MUTEX_NOTRECOVERABLE`: `__owner`
/// values of a robust mutex whose owner died (nptl/pthreadP.h).
pub const OWNER_INCONSISTENT: i32 = i32::MAX;
pub const OWNER_NOTRECOVERABLE: i32 = i32::MAX - 1;
/// Priority-ceiling bits of a PP mutex's lock word (`PTHREAD_MUTEX_PRIO_CEILING_MASK`).
pub const MUTEX_CEILING_MASK: u32 = 0xfff8_0000;

/// `pthread_mutex_t` (struct __pthread_mutex_s, 40 bytes on x86_64):
/// `__lock`@0, `__count`@4, `__owner`@8, `__nusers`@12, `__kind`@16,
/// `__spins`@20, `__elision`@22, `__list.__prev`@24, `__list.__next`@32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutexFields {
    pub lock: u32,
    pub count: u32,
    pub owner: i32,
    pub nusers: u32,
    pub kind: i32,
    pub spins: i16,
    pub list_prev: u64,
    pub list_next: u64,
}

pub const MUTEX_SIZE: usize = 40;
/// Offset of `__list.__next`, where robust-list links point (`QUEUE_PTR_ADJUST` in descr.h).
pub const MUTEX_LIST_NEXT: u64 = 32;

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

impl MutexFields {
    /// Read a mutex and check that `__kind` holds only known type bits.
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, MUTEX_SIZE).ok()?;
        let m = MutexFields {
            lock: u32_at(&b, 0),
            count: u32_at(&b, 4),
            owner: u32_at(&b, 8) as i32,
            nusers: u32_at(&b, 12),
            kind: u32_at(&b, 16) as i32,
            spins: u32_at(&b, 20) as u16 as i16,
            list_prev: u64_at(&b, 24),
            list_next: u64_at(&b, 32),
        };
        m.kind_is_sane().then_some(m)
    }

    fn kind_is_sane(&self) -> bool {
        let k = self.kind;
        k >= 0
            && k & !MUTEX_KNOWN_BITS == 0
            // PI and PP are mutually exclusive protocols.
            && !(k & MUTEX_PRIO_INHERIT != 0 && k & MUTEX_PRIO_PROTECT != 0)
    }

    pub fn robust(&self) -> bool {
        self.kind & MUTEX_ROBUST != 0
    }
    pub fn pi(&self) -> bool {
        self.kind & MUTEX_PRIO_INHERIT != 0
    }
    pub fn pp(&self) -> bool {
        self.kind & MUTEX_PRIO_PROTECT != 0
    }
    /// The PSHARED bit: set for process-shared mutexes, and for every robust one.
    pub fn pshared(&self) -> bool {
        self.kind & MUTEX_PSHARED != 0
    }
    /// A plain (non-robust, non-PI, non-PP) mutex whose lock word may be waited on with value 2.
    pub fn plain(&self) -> bool {
        !self.robust() && !self.pi() && !self.pp()
    }

    /// The fields a blocked waiter implies, for memory-only classification:
    /// non-robust mutexes keep `__list` zero; counts are small.
    pub fn looks_in_use(&self) -> bool {
        let list_ok = self.robust() || (self.list_prev == 0 && self.list_next == 0);
        list_ok && self.count < 1 << 24 && self.nusers < 1 << 24 && self.spins >= 0
    }

    /// `normal`, `recursive`, ... plus protocol and sharing, for messages.
    pub fn type_name(&self) -> String {
        let base = match self.kind & MUTEX_KIND_MASK {
            0 => "normal",
            1 => "recursive",
            2 => "errorcheck",
            _ => "adaptive",
        };
        let mut s = base.to_string();
        if self.robust() {
            s.push_str(", robust");
        }
        if self.pi() {
            s.push_str(", priority-inheritance");
        }
        if self.pp() {
            s.push_str(", priority-protect");
        }
        // pthread_mutex_init sets the PSHARED bit on every robust mutex (the
        // kernel wakes robust waiters with shared futex ops), so for robust
        // mutexes the bit says nothing.
        if self.pshared() && !self.robust() {
            s.push_str(", process-shared");
        }
        s
    }
}

/// `pthread_rwlock_t` on x86_64 (struct __pthread_rwlock_arch_t, 56 bytes):
/// `__readers`@0, `__writers`@4, `__wrphase_futex`@8, `__writers_futex`@12,
/// `__pad3`@16, `__pad4`@20, `__cur_writer`@24, `__shared`@28,
/// `__rwelision`@32, `__pad1`@33, `__pad2`@40, `__flags`@48.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RwLockFields {
    pub readers: u32,
    pub writers: u32,
    pub wrphase_futex: u32,
    pub writers_futex: u32,
    pub cur_writer: i32,
    pub shared: i32,
    pub flags: u32,
}

pub const RWLOCK_SIZE: usize = 56;
pub const RWLOCK_WRPHASE_FUTEX: u64 = 8;
pub const RWLOCK_WRITERS_FUTEX: u64 = 12;
/// Bits of `__readers` (nptl/pthreadP.h, "see pthread_rwlock_common.c").
pub const RWLOCK_WRPHASE: u32 = 1;
pub const RWLOCK_WRLOCKED: u32 = 2;
pub const RWLOCK_RWAITING: u32 = 4;
pub const RWLOCK_READER_SHIFT: u32 = 3;
/// `PTHREAD_RWLOCK_FUTEX_USED`: set in a futex word before sleeping on it.
pub const RWLOCK_FUTEX_USED: u32 = 2;

impl RwLockFields {
    /// Read an rwlock and check the fields glibc keeps constant or small.
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, RWLOCK_SIZE).ok()?;
        let rw = RwLockFields {
            readers: u32_at(&b, 0),
            writers: u32_at(&b, 4),
            wrphase_futex: u32_at(&b, 8),
            writers_futex: u32_at(&b, 12),
            cur_writer: u32_at(&b, 24) as i32,
            shared: u32_at(&b, 28) as i32,
            flags: u32_at(&b, 48),
        };
        let pads_zero = u32_at(&b, 16) == 0 && u32_at(&b, 20) == 0 && b[33..48].iter().all(|&x| x == 0);
        let sane = pads_zero
            && rw.flags <= 2
            && (rw.shared == 0 || rw.shared == 1)
            && rw.wrphase_futex <= 3
            && rw.writers_futex <= 3
            && rw.cur_writer >= 0;
        sane.then_some(rw)
    }
    pub fn reader_count(&self) -> u32 {
        self.readers >> RWLOCK_READER_SHIFT
    }
}

/// `pthread_cond_t` (struct __pthread_cond_s, 48 bytes): `__wseq`@0,
/// `__g1_start`@8, `__g_refs[2]`@16, `__g_size[2]`@24, `__g1_orig_size`@32,
/// `__wrefs`@36, `__g_signals[2]`@40. Waiters sleep on `__g_signals[g]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CondFields {
    pub g_refs: [u32; 2],
    pub wrefs: u32,
}

pub const COND_G_SIGNALS: u64 = 40;
/// `__wrefs` flag bits (nptl/pthreadP.h) and the per-waiter increment (pthread_cond_wait.c).
pub const COND_SHARED_MASK: u32 = 1;
pub const COND_WREFS_WAITER: u32 = 8;

impl CondFields {
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, 48).ok()?;
        Some(CondFields {
            g_refs: [u32_at(&b, 16), u32_at(&b, 20)],
            wrefs: u32_at(&b, 36),
        })
    }
    pub fn waiters(&self) -> u32 {
        self.wrefs / COND_WREFS_WAITER
    }
    pub fn pshared(&self) -> bool {
        self.wrefs & COND_SHARED_MASK != 0
    }
}

/// `sem_t` as glibc's `struct new_sem` on 64-bit (nptl/semaphoreP.h,
/// internaltypes.h): `data`@0 (value in the low 32 bits, waiter count in the
/// high 32), `private`@8 (0 = private, 128 = shared: `FUTEX_PRIVATE`/`FUTEX_SHARED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemFields {
    pub value: u32,
    pub nwaiters: u32,
    pub private: i32,
}

impl SemFields {
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, 16).ok()?;
        let s = SemFields {
            value: u32_at(&b, 0),
            nwaiters: u32_at(&b, 4),
            private: u32_at(&b, 8) as i32,
        };
        (s.private == 0 || s.private == 128).then_some(s)
    }
}

/// `struct pthread_barrier` (nptl/pthreadP.h): `in`@0, `current_round`@4,
/// `count`@8, `shared`@12 (0 private / 128 shared), `out`@16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierFields {
    pub in_: u32,
    pub current_round: u32,
    pub count: u32,
    pub shared: i32,
}

impl BarrierFields {
    pub fn read(mem: &dyn Memory, addr: u64) -> Option<Self> {
        let b = mem.read_vec(addr, 20).ok()?;
        let f = BarrierFields {
            in_: u32_at(&b, 0),
            current_round: u32_at(&b, 4),
            count: u32_at(&b, 8),
            shared: u32_at(&b, 12) as i32,
        };
        (f.count > 0 && (f.shared == 0 || f.shared == 128)).then_some(f)
    }
}

/// Field offsets in `struct pthread` (the thread descriptor `fs_base` points to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PthreadLayout {
    /// `tid`: the thread's TID, cleared by the kernel when it exits; `pthread_join` sleeps on it.
    pub tid: u64,
    /// `robust_head` (struct robust_list_head {list, futex_offset, list_op_pending}).
    pub robust_head: u64,
    /// `cleanup`: the innermost `struct _pthread_cleanup_buffer` (pthread_cond_wait pushes one).
    pub cleanup: u64,
    /// Where `tid` came from, for evidence.
    pub source: LayoutSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutSource {
    /// `_thread_db_pthread_tid` in libc's `.dynsym`.
    ThreadDb,
    /// Built-in glibc 2.36 x86_64 offsets.
    Builtin,
}

impl PthreadLayout {
    /// glibc 2.36 x86_64, measured with libc6-dbg (`ptype /o struct pthread`):
    /// tid@0x2d0, robust_head@0x2e0, cleanup@0x2f8.
    pub const GLIBC_2_36: PthreadLayout = PthreadLayout {
        tid: 0x2d0,
        robust_head: 0x2e0,
        cleanup: 0x2f8,
        source: LayoutSource::Builtin,
    };

    /// Read the `tid` offset from libc's `_thread_db_pthread_tid` descriptor
    /// (nptl_db/db_info.c: `{size in bits, element count, offset}`); fall
    /// back to the 2.36 numbers. `robust_head` and `cleanup` have no
    /// descriptor; descr.h places them right after `tid` on x86_64
    /// (`pid_t tid; pid_t pid_ununsed; void *robust_prev; struct
    /// robust_list_head robust_head; ... *cleanup;`), so they are derived
    /// from `tid` at +0x10 and +0x28.
    pub fn discover(symbols: &dyn SymbolLookup, mem: &dyn Memory) -> Self {
        let from_db = symbols.symbol_address("_thread_db_pthread_tid").and_then(|addr| {
            let b = mem.read_vec(addr, 12).ok()?;
            let (bits, count, offset) = (u32_at(&b, 0), u32_at(&b, 4), u32_at(&b, 8));
            let size = symbols
                .symbol_address("_thread_db_sizeof_pthread")
                .and_then(|a| mem.read_u32(a).ok())
                .unwrap_or(0x1000);
            (bits == 32 && count == 1 && offset % 4 == 0 && offset + 0x30 <= size).then_some(u64::from(offset))
        });
        match from_db {
            Some(tid) => PthreadLayout {
                tid,
                robust_head: tid + 0x10,
                cleanup: tid + 0x28,
                source: LayoutSource::ThreadDb,
            },
            None => Self::GLIBC_2_36,
        }
    }
}

/// `struct _pthread_cleanup_buffer` {__routine@0, __arg@8, __canceltype@16, __prev@24}
/// and the `struct _condvar_cleanup_buffer` {wseq@0, cond@8, mutex@16, private@24}
/// that pthread_cond_wait passes as `__arg` (nptl/pthread_cond_wait.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CondWaitCleanup {
    pub routine: u64,
    pub cond: u64,
    pub mutex: u64,
}

impl CondWaitCleanup {
    /// Follow `struct pthread.cleanup` of a thread whose descriptor is at `fs_base`.
    pub fn read(mem: &dyn Memory, layout: &PthreadLayout, fs_base: u64) -> Option<Self> {
        let buf = mem.read_u64(fs_base.checked_add(layout.cleanup)?).ok()?;
        if buf == 0 {
            return None;
        }
        let routine = mem.read_u64(buf).ok()?;
        let arg = mem.read_u64(buf.checked_add(8)?).ok()?;
        let cb = mem.read_vec(arg, 24).ok()?;
        Some(CondWaitCleanup {
            routine,
            cond: u64_at(&cb, 8),
            mutex: u64_at(&cb, 16),
        })
    }
}

/// Robust mutexes a thread holds: walk its robust list (`struct pthread.robust_head`).
///
/// The list links point at each mutex's `__list.__next`; `futex_offset` (set
/// by glibc at thread start to `offsetof(__lock) - offsetof(__list.__next)`,
/// i.e. -32) leads from a link to the lock word. Bit 0 of a link marks a PI
/// mutex. Returns mutex addresses; stops at `limit` entries or any unreadable link.
pub fn robust_list(mem: &dyn Memory, layout: &PthreadLayout, fs_base: u64, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let Some(head) = fs_base.checked_add(layout.robust_head) else {
        return out;
    };
    let Some(Ok(futex_offset)) = head.checked_add(8).map(|a| mem.read_i64(a)) else {
        return out;
    };
    if futex_offset != -(MUTEX_LIST_NEXT as i64) {
        return out;
    }
    let Ok(mut link) = mem.read_u64(head) else {
        return out;
    };
    for _ in 0..limit {
        link &= !1;
        if link == head || link == 0 {
            break;
        }
        let Some(mutex) = link.checked_sub(MUTEX_LIST_NEXT) else {
            break;
        };
        out.push(mutex);
        match mem.read_u64(link) {
            Ok(next) => link = next,
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};

    pub fn mutex_bytes(lock: u32, owner: i32, kind: i32) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        b[0..4].copy_from_slice(&lock.to_le_bytes());
        b[8..12].copy_from_slice(&owner.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[16..20].copy_from_slice(&kind.to_le_bytes());
        b
    }

    #[test]
    fn mutex_kind_checks() {
        let mem = BufferMemory {
            regions: vec![CopiedRegion {
                start: 0x1000,
                bytes: [
                    mutex_bytes(2, 77, 1),
                    mutex_bytes(2, 77, 0x4000),
                    mutex_bytes(0, 0, 32 | 64),
                ]
                .concat(),
            }],
        };
        let m = MutexFields::read(&mem, 0x1000).unwrap();
        assert_eq!((m.owner, m.kind & MUTEX_KIND_MASK), (77, 1));
        assert_eq!(m.type_name(), "recursive");
        assert!(m.plain() && m.looks_in_use());
        assert!(MutexFields::read(&mem, 0x1028).is_none(), "unknown kind bit");
        assert!(MutexFields::read(&mem, 0x1050).is_none(), "PI and PP together");
        assert!(MutexFields::read(&mem, 0x1060).is_none(), "runs off the end");
    }

    #[test]
    fn thread_db_descriptor_or_fallback() {
        use crate::runtimes::owners::testing::Symbols;
        let mut b = Vec::new();
        for v in [32u32, 1, 0x2d0, 2368] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mem = BufferMemory {
            regions: vec![CopiedRegion {
                start: 0x5000,
                bytes: b,
            }],
        };
        let syms = Symbols(vec![
            ("_thread_db_pthread_tid".into(), 0x5000, 12),
            ("_thread_db_sizeof_pthread".into(), 0x500c, 4),
        ]);
        let l = PthreadLayout::discover(&syms, &mem);
        assert_eq!(
            (l.tid, l.robust_head, l.cleanup, l.source),
            (0x2d0, 0x2e0, 0x2f8, LayoutSource::ThreadDb)
        );
        let none = PthreadLayout::discover(&Symbols::default(), &mem);
        assert_eq!(none, PthreadLayout::GLIBC_2_36);
        // A descriptor that does not describe a 32-bit scalar is ignored.
        let bad = Symbols(vec![("_thread_db_pthread_tid".into(), 0x5004, 12)]);
        assert_eq!(PthreadLayout::discover(&bad, &mem).source, LayoutSource::Builtin);
    }

    #[test]
    fn robust_list_walk_is_bounded() {
        // struct pthread at 0x10000: robust_head at +0x2e0.
        let fs = 0x10000u64;
        let head = fs + 0x2e0;
        let (m1, m2) = (0x20000u64, 0x20100u64);
        let mut t = vec![0u8; 0x300];
        t[0x2e0..0x2e8].copy_from_slice(&(m1 + 32).to_le_bytes());
        t[0x2e8..0x2f0].copy_from_slice(&(-32i64).to_le_bytes());
        let mut mm = vec![0u8; 0x200];
        mm[32..40].copy_from_slice(&((m2 + 32) | 1).to_le_bytes());
        mm[0x120..0x128].copy_from_slice(&head.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![
                CopiedRegion {
                    start: fs,
                    bytes: t.clone(),
                },
                CopiedRegion {
                    start: m1,
                    bytes: mm.clone(),
                },
            ],
        };
        let l = PthreadLayout::GLIBC_2_36;
        assert_eq!(robust_list(&mem, &l, fs, 100), vec![m1, m2]);
        // A cycle that never returns to the head stops at the limit.
        let mut loopy = mm;
        loopy[0x120..0x128].copy_from_slice(&(m1 + 32).to_le_bytes());
        let mem2 = BufferMemory {
            regions: vec![
                CopiedRegion { start: fs, bytes: t },
                CopiedRegion {
                    start: m1,
                    bytes: loopy,
                },
            ],
        };
        assert_eq!(robust_list(&mem2, &l, fs, 10).len(), 10);
    }
}
