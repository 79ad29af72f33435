//! multiprocessing's locks: `multiprocessing.Lock`, `RLock` and
//! `Semaphore` wrap a `_multiprocessing.SemLock`, a POSIX semaphore taken in
//! C. The native analysis sees a `sem_wait` with no owner (a semaphore has
//! none). The SemLock object records one: the thread that acquired it last
//! in this process and how many times it holds it.
//!
//! Layout (`SemLockObject`, Modules/_multiprocessing/semaphore.c, the same
//! in 3.8–3.15): `PyObject_HEAD; SEM_HANDLE handle; unsigned long last_tid;
//! int count; int maxvalue; int kind; char *name;`. On Linux `SEM_HANDLE` is
//! `sem_t *`, the address `sem_wait` sleeps on; `last_tid` is
//! `PyThread_get_thread_ident()` (the `pthread_t`, a thread state's
//! `thread_id`); `kind` is 0 for RECURSIVE_MUTEX (RLock), 1 for SEMAPHORE
//! (Lock is a SEMAPHORE with maxvalue 1). `acquire` increments `count` and
//! sets `last_tid`; `release` decrements `count`.
//!
//! So in this process, a Lock (maxvalue 1) or RLock with `count > 0` is held
//! by the thread `last_tid`: exact. A lock shared with another process and
//! held there has `count` 0 here: its owner stays unknown.

use std::collections::{HashMap, HashSet};

use super::frames::{PyFrame, Walker};
use super::naming;

/// `kind` of an RLock's SemLock.
const RECURSIVE_MUTEX: i32 = 0;

/// Most globals of a module searched for a SemLock.
const MAX_GLOBALS: usize = 4096;

/// One `_multiprocessing.SemLock`, and the Python object that wraps it (the
/// `multiprocessing.synchronize.Lock`, or the SemLock itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemLock {
    pub object: u64,
    pub handle: u64,
    pub last_tid: u64,
    pub count: i32,
    pub maxvalue: i32,
    pub kind: i32,
}

impl SemLock {
    /// The ident of the thread that holds it in this process, when one
    /// thread can (a Lock or an RLock) and one does.
    pub fn holder_ident(&self) -> Option<u64> {
        (self.count > 0 && self.is_lock()).then_some(self.last_tid)
    }

    /// A Lock or an RLock: one holder at a time (a Semaphore may have many).
    pub fn is_lock(&self) -> bool {
        self.kind == RECURSIVE_MUTEX || self.maxvalue == 1
    }

    /// What the report calls it: `multiprocessing.Lock`, `.RLock`, `.Semaphore`.
    pub fn what(&self) -> &'static str {
        match (self.kind, self.maxvalue) {
            (RECURSIVE_MUTEX, _) => "multiprocessing.RLock",
            (_, 1) => "multiprocessing.Lock",
            _ => "multiprocessing.Semaphore",
        }
    }
}

/// The C type's `tp_name` (exactly: a Python class that merely ends in
/// "SemLock" has no such fields).
fn is_semlock_type(name: &str) -> bool {
    name == "_multiprocessing.SemLock"
}

/// The SemLock `obj` is, or wraps (`obj._semlock`).
fn semlock_of(walker: &Walker, obj: u64) -> Option<SemLock> {
    let o = walker.obj;
    let (object, sem) = if o.type_name(obj).is_some_and(|n| is_semlock_type(&n)) {
        (obj, obj)
    } else {
        let sem = o.attr(obj, "_semlock")?;
        (obj, sem)
    };
    if !o.type_name(sem).is_some_and(|n| is_semlock_type(&n)) {
        return None;
    }
    // The fields follow the object header, which ends after ob_type.
    let base = sem + walker.layout.object.ob_type + 8;
    let mut b = [0u8; 28];
    o.mem.read_exact(base, &mut b).ok()?;
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    let int = |i: usize| i32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
    Some(SemLock {
        object,
        handle: word(0),
        last_tid: word(8),
        count: int(16),
        maxvalue: int(20),
        kind: int(24),
    })
}

/// Every SemLock the frames can see (their locals, their modules' globals,
/// and such objects' `_semlock`), by the address of its semaphore. One pass
/// over all the frames, however many threads wait.
pub fn visible<'f>(walker: &Walker, frames: impl Iterator<Item = &'f PyFrame>) -> HashMap<u64, SemLock> {
    let mut out = HashMap::new();
    let mut searched_globals = HashSet::new();
    for f in frames {
        let mut values: Vec<u64> = naming::frame_locals(walker, f).into_iter().map(|(_, v)| v).collect();
        if searched_globals.insert(f.globals) {
            if let Ok(items) = walker.obj.dict_items(f.globals) {
                values.extend(items.iter().take(MAX_GLOBALS).map(|&(_, v)| v));
            }
        }
        for v in values {
            if let Some(s) = semlock_of(walker, v) {
                out.entry(s.handle).or_insert(s);
            }
        }
    }
    out
}
