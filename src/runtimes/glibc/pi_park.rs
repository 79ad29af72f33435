//! A thread that glibc parked for good after the kernel refused it a
//! priority-inheritance mutex.
//!
//! `FUTEX_LOCK_PI` walks the chain of PI owners before it sleeps; when the
//! chain leads back to the caller (or the caller already owns the lock) it
//! fails with `EDEADLK`, and with `ESRCH` when the owner is gone. glibc's
//! `pthread_mutex_lock` then "delays the thread indefinitely" with a
//! `FUTEX_WAIT` on a zero int in its own frame (glibc 2.36
//! nptl/pthread_mutex_lock.c, the PI case: `lll_timedwait (&(int){0}, ...)`).
//! The futex no longer names the mutex, so the wait alone says nothing about
//! what the thread waits for.
//!
//! The mutex can still be found: the lock function's frame keeps it, in a
//! callee-saved register (glibc 2.36 keeps `&mutex->__data.__kind` in r14)
//! or in the registers its prologue saved (the caller's copy of the
//! argument). Of the priority-inheritance mutexes those values point into,
//! the right one is the one that explains the kernel's refusal: its owner
//! waits in `FUTEX_LOCK_PI`, through a chain of such waits, for a lock this
//! thread owns (`EDEADLK` from a cycle); or its owner is gone (`ESRCH`); or
//! this thread owns it (`EDEADLK` on relocking). The mutex is deduced, not
//! recorded anywhere, so the owner is [`Confidence::Inferred`](crate::runtimes::Confidence),
//! even though the owner TID itself comes from the lock word.

use super::layout::MutexFields;
use super::{frames, hint_for, Ctx, Found, Hint, OwnerEvidence};
use crate::capture::RegisterSource;
use crate::runtimes::futex::{FutexCmd, FutexWait, FUTEX_TID_MASK};
use crate::runtimes::stackscan;
use crate::runtimes::ResourceKind;

/// Bytes of the waiter's stack searched at most (the lock function's frame is far smaller).
const SCAN_BYTES: u64 = 4096;
/// Offsets of `pthread_mutex_t` fields a compiler may keep a pointer to
/// (`__lock`, `__count`, `__owner`, `__nusers`, `__kind`, `__spins`, `__list`).
const FIELD_OFFSETS: [u64; 8] = [0, 4, 8, 12, 16, 20, 24, 32];
/// Longest chain of `FUTEX_LOCK_PI` waits followed.
const MAX_CHAIN: usize = 64;
/// At most this many candidate mutexes are named in an ambiguous result.
const MAX_NAMED: usize = 4;

/// Why a candidate mutex would have made the kernel refuse the lock, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    /// Its owner waits (through `hops` threads in FUTEX_LOCK_PI) for a lock this thread owns.
    ClosesCycle { hops: usize },
    /// Its owner TID names no thread of this process (ESRCH, or a process-shared owner).
    OwnerElsewhere,
    /// This thread owns it (EDEADLK on relocking).
    OwnedBySelf,
}

/// A priority-inheritance mutex the parked thread's frame points into.
#[derive(Debug, Clone)]
struct Candidate {
    base: u64,
    fields: MutexFields,
    reason: Reason,
    /// Where the pointer was found, in words.
    found_in: String,
}

impl<'v, 'a> Ctx<'v, 'a> {
    /// Recognize the park and recover the mutex; `None` if this is not it.
    pub(super) fn pi_parked(&self, i: usize, w: &FutexWait, call: &str) -> Option<Found> {
        if !matches!(w.cmd, FutexCmd::Wait | FutexCmd::WaitBitset) || w.expected != 0 || w.current != 0 {
            return None;
        }
        let t = self.view.snapshot.threads.get(i)?;
        let sp = t.regs.rsp;
        let stack = self.stack(i);
        // The lock function's frame: from SP up to where its caller's frame
        // starts (a frame's `cfa` field is the SP it runs with; inlined frames
        // share their physical frame's).
        let (k, f) = frames::find_frame(stack, |n| hint_for(n) == Some(Hint::Mutex))?;
        let limit = sp.checked_add(SCAN_BYTES)?;
        let end = stack.frames[k + 1..]
            .iter()
            .map(|c| c.cfa)
            .find(|&c| c > f.cfa && c > sp)
            .map_or(limit, |c| c.min(limit));
        if sp == 0 || w.addr < sp || w.addr >= end {
            // Not a word in the lock function's own frame: some other wait.
            return None;
        }
        let mut found: Vec<Candidate> = Vec::new();
        for (value, where_) in self.frame_values(i, sp, end, k) {
            for off in FIELD_OFFSETS {
                let Some(base) = value.checked_sub(off) else { continue };
                if base % 8 != 0 || found.iter().any(|c| c.base == base) {
                    continue;
                }
                let Some(m) = MutexFields::read(self.view.memory, base).filter(|m| m.pi()) else {
                    continue;
                };
                let Some(reason) = self.refusal_reason(i, m.lock) else {
                    continue;
                };
                let found_in = if off == 0 {
                    where_.clone()
                } else {
                    format!("{where_} (a pointer to the field at +{off:#x})")
                };
                found.push(Candidate {
                    base,
                    fields: m,
                    reason,
                    found_in,
                });
            }
        }
        let how = format!("{call} (priority-inheritance): parked for good after FUTEX_LOCK_PI failed");
        let best = found.iter().map(|c| c.reason).min();
        let chosen: Vec<&Candidate> = found.iter().filter(|c| Some(c.reason) == best).collect();
        let parked = format!(
            "the kernel refused FUTEX_LOCK_PI and glibc parked the thread on a zero word in its own frame ({:#x})",
            w.addr
        );
        match chosen.as_slice() {
            [c] => {
                let tid = (c.fields.lock & FUTEX_TID_MASK) as i32;
                let why = match c.reason {
                    Reason::ClosesCycle { hops } => format!(
                        "its owner waits in FUTEX_LOCK_PI, through {hops} thread(s), for a lock this thread owns: the cycle the kernel refused (EDEADLK)"
                    ),
                    Reason::OwnerElsewhere => "its owner is not a thread of this process (ESRCH: the owner is gone)".into(),
                    Reason::OwnedBySelf => "this thread owns it: relocking it is what the kernel refused (EDEADLK)".into(),
                };
                let evidence = format!(
                    "{parked}; the mutex, found in {}, is the priority-inheritance mutex there that explains the refusal: {why}; lock word {:#x}: owner TID {tid}",
                    c.found_in, c.fields.lock
                );
                Some(Found::new(
                    ResourceKind::PiMutex,
                    c.base,
                    OwnerEvidence::InferredTid {
                        ns_tid: tid,
                        shared: c.fields.pshared(),
                        evidence,
                    },
                    format!("{call} ({}): parked for good after FUTEX_LOCK_PI failed", c.fields.type_name()),
                ))
            }
            [] => Some(Found::new(
                ResourceKind::PiMutex,
                w.addr,
                OwnerEvidence::Unknown(format!(
                    "{parked}; no priority-inheritance mutex in the lock function's registers or frame explains the refusal"
                )),
                how,
            )),
            several => {
                let named: Vec<String> = several.iter().take(MAX_NAMED).map(|c| format!("{:#x}", c.base)).collect();
                Some(Found::new(
                    ResourceKind::PiMutex,
                    w.addr,
                    OwnerEvidence::Unknown(format!(
                        "{parked}; several priority-inheritance mutexes could be the one: {}",
                        named.join(", ")
                    )),
                    how,
                ))
            }
        }
    }

    /// Callee-saved registers (when read with ptrace) and every stack word
    /// from SP to `end`, each with where it was found.
    fn frame_values(&self, i: usize, sp: u64, end: u64, lock_frame: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let Some(t) = self.view.snapshot.threads.get(i) else {
            return out;
        };
        if t.register_source == RegisterSource::Ptrace {
            for (name, v) in stackscan::callee_saved(&t.regs) {
                out.push((v, format!("callee-saved register {name}")));
            }
        }
        let Some(start) = stackscan::align_word(sp) else {
            return out;
        };
        let len = end.saturating_sub(start).min(SCAN_BYTES) as usize & !7;
        if let Ok(bytes) = self.view.memory.read_vec(start, len) {
            let fname = self
                .stack(i)
                .frames
                .get(lock_frame)
                .and_then(|f| f.function.as_deref())
                .unwrap_or("the lock function");
            for (at, v) in stackscan::words(start, &bytes) {
                out.push((v, format!("stack slot {at:#x} (in or below the frame of {fname})")));
            }
        }
        out
    }

    /// Why the kernel would refuse thread `i` a PI lock whose word is `word`;
    /// `None` when it would not (the owner runs or waits for something else).
    fn refusal_reason(&self, i: usize, word: u32) -> Option<Reason> {
        let me = self.view.snapshot.threads.get(i)?.ns_tid;
        let mut owner = (word & FUTEX_TID_MASK) as i32;
        if owner == 0 {
            return None;
        }
        if owner == me {
            return Some(Reason::OwnedBySelf);
        }
        let Some(mut j) = self.thread_index_by_ns_tid(owner) else {
            return Some(Reason::OwnerElsewhere);
        };
        for hops in 1..=MAX_CHAIN {
            // The owner must itself be blocked in FUTEX_LOCK_PI, on a lock whose owner is next.
            let next = self.view.futex(j).filter(|w| w.cmd.is_pi_lock())?;
            owner = (next.current & FUTEX_TID_MASK) as i32;
            if owner == me {
                return Some(Reason::ClosesCycle { hops });
            }
            j = self.thread_index_by_ns_tid(owner)?;
        }
        None
    }
}
