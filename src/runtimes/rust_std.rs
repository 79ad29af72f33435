//! Rust standard library waits on Linux: `Mutex`, `RwLock`, `Condvar`,
//! `thread::park` and `Once`, all built directly on futexes.
//!
//! Layouts (library/std/src/sys/sync/{mutex,rwlock}/futex.rs, Rust 1.95):
//! - `Mutex`: one `AtomicU32` (0 unlocked, 1 locked, 2 contended); waiters call
//!   `futex(&state, FUTEX_WAIT_BITSET|FUTEX_PRIVATE_FLAG, 2)`. It sits at offset
//!   0 of `std::sync::Mutex<T>` (measured for several `T` with rustc 1.95).
//! - `RwLock`: `state: AtomicU32` (readers in bits 0..30, `0x3fff_ffff` =
//!   write-locked, bit 30 readers waiting, bit 31 writers waiting) and
//!   `writer_notify: AtomicU32` at +4. Readers sleep on `state` with the
//!   readers-waiting bit set in the expected value; writers on `writer_notify`.
//!
//! Neither records an owner, so owners are inferred from the other threads'
//! stacks ([`super::stackscan`]) and are never exact.

use super::codescan::CodeScanner;
use super::futex::{self, FutexCmd, FutexWait, FUTEX_PRIVATE_FLAG};
use super::stackscan::{self, Inference};
use super::{frames, owners, Confidence, Hold, Owner, ProcessView, ResourceKind, ThreadFindings, Wait};
use crate::stacks::Stack;

/// `FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG`: the only operation std's futex_wait uses on Linux.
const STD_WAIT_OP: u32 = 9 | FUTEX_PRIVATE_FLAG;
/// `Mutex` state "locked, with waiters".
const MUTEX_CONTENDED: u32 = 2;
const RW_MASK: u32 = (1 << 30) - 1;
const RW_WRITE_LOCKED: u32 = RW_MASK;
const RW_READERS_WAITING: u32 = 1 << 30;
const RW_WRITERS_WAITING: u32 = 1 << 31;
/// `Parker` state while parked (`PARKED = -1`).
const PARKED: u32 = u32::MAX;

/// What the stack's function names say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    Mutex,
    RwRead,
    RwWrite,
    Condvar,
    Park,
    Once,
}

fn hint_for(name: &str) -> Option<Hint> {
    let has = |s: &str| name.contains(s);
    if !(name.starts_with("std::") || name.starts_with("<std::")) {
        return None;
    }
    Some(if has("Mutex") && has("lock_contended") {
        Hint::Mutex
    } else if has("RwLock") && has("write_contended") {
        Hint::RwWrite
    } else if has("RwLock") && has("read_contended") {
        Hint::RwRead
    } else if has("Condvar") && has("wait") {
        Hint::Condvar
    } else if has("Parker") && has("park") || name.starts_with("std::thread::park") {
        Hint::Park
    } else if has("Once") && (has("wait") || has("call")) {
        Hint::Once
    } else {
        return None;
    })
}

fn rust_hint(stack: &Stack) -> Option<Hint> {
    frames::find_frame(stack, |n| hint_for(n).is_some())
        .and_then(|(_, f)| hint_for(frames::base_name(f.function.as_deref()?)))
}

/// A recognized wait before the owner is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    kind: ResourceKind,
    /// The lock: the `Mutex` futex, or the `RwLock`'s `state` word.
    lock: u64,
    how: String,
    /// Why there is no owner to look for, when there is none by design.
    ownerless: Option<&'static str>,
}

/// `others_waited`: futex words other threads sleep on with std's operation;
/// a write-locked `RwLock` with readers and writers waiting has state
/// `0xffff_ffff`, the same value a parked thread waits with, and only a writer
/// sleeping on the word after it (`writer_notify`) tells them apart.
fn classify(view: &ProcessView<'_>, w: &FutexWait, hint: Option<Hint>, others_waited: &[u64]) -> Option<Found> {
    if w.cmd != FutexCmd::WaitBitset || !w.private {
        return None;
    }
    let mem = view.memory;
    let found = |kind, lock, how: &str, ownerless| {
        Some(Found {
            kind,
            lock,
            how: how.to_string(),
            ownerless,
        })
    };
    match hint {
        Some(Hint::Mutex) => found(ResourceKind::RustMutex, w.addr, "std::sync::Mutex::lock", None),
        Some(Hint::RwWrite) => found(
            ResourceKind::RustRwLock,
            w.addr.checked_sub(4)?,
            "std::sync::RwLock::write",
            None,
        ),
        Some(Hint::RwRead) => found(ResourceKind::RustRwLock, w.addr, "std::sync::RwLock::read", None),
        Some(Hint::Condvar) => found(
            ResourceKind::CondVar,
            w.addr,
            "std::sync::Condvar::wait",
            Some("condition variables have no owner"),
        ),
        Some(Hint::Park) => found(
            ResourceKind::Futex,
            w.addr,
            "std::thread::park",
            Some("a parked thread waits for unpark(); nobody owns that"),
        ),
        Some(Hint::Once) => found(
            ResourceKind::Futex,
            w.addr,
            "std::sync::Once (waiting for another thread's initializer)",
            Some("Once does not record which thread runs the initializer"),
        ),
        None => {
            // Memory only: demand std's exact operation and a state that matches.
            if w.raw_op != STD_WAIT_OP {
                return None;
            }
            if w.expected == MUTEX_CONTENDED && w.current == MUTEX_CONTENDED {
                // The poison flag (a bool) follows the state word.
                let poison = mem.read_u8(w.addr.checked_add(4)?).ok()?;
                return (poison <= 1).then(|| Found {
                    kind: ResourceKind::RustMutex,
                    lock: w.addr,
                    how: "std::sync::Mutex::lock".into(),
                    ownerless: None,
                });
            }
            let writer_behind = w.addr.checked_add(4).is_some_and(|a| others_waited.contains(&a));
            if w.expected == PARKED && w.current == PARKED && !writer_behind {
                return found(
                    ResourceKind::Futex,
                    w.addr,
                    "std::thread::park",
                    Some("a parked thread waits for unpark(); nobody owns that"),
                );
            }
            if w.expected & RW_READERS_WAITING != 0 && w.expected & RW_MASK != 0 && w.current == w.expected {
                return found(ResourceKind::RustRwLock, w.addr, "std::sync::RwLock::read", None);
            }
            let state_addr = w.addr.checked_sub(4)?;
            let state = mem.read_u32(state_addr).ok()?;
            if state & RW_WRITERS_WAITING != 0 && state & RW_MASK != 0 {
                return found(ResourceKind::RustRwLock, state_addr, "std::sync::RwLock::write", None);
            }
            None
        }
    }
}

/// What each thread waits on among Rust std's locks, with inferred owners.
/// Parallel to `view.snapshot.threads`; other threads get the default.
pub fn analyze(view: &ProcessView<'_>) -> Vec<ThreadFindings> {
    let empty = Stack::default();
    let stack = |i: usize| view.stacks.get(i).unwrap_or(&empty);
    let waits: Vec<Option<FutexWait>> = view
        .snapshot
        .threads
        .iter()
        .map(|t| futex::decode(&t.syscall?, view.memory))
        .collect();
    let std_words: Vec<u64> = waits
        .iter()
        .flatten()
        .filter(|w| w.raw_op == STD_WAIT_OP)
        .map(|w| w.addr)
        .collect();
    let found: Vec<Option<Found>> = waits
        .iter()
        .enumerate()
        .map(|(i, w)| classify(view, w.as_ref()?, rust_hint(stack(i)), &std_words))
        .collect();

    let mut out: Vec<ThreadFindings> = vec![ThreadFindings::default(); found.len()];
    let mut holds: Vec<(usize, Hold)> = Vec::new();
    let code = CodeScanner::new(view);
    for (i, f) in found.iter().enumerate() {
        let Some(f) = f else { continue };
        let owner = match f.ownerless {
            Some(why) => Owner::unknown(why),
            None => infer_owner(view, &code, i, f, &found),
        };
        let resource = owners::resource_at(view, f.kind, f.lock);
        if owner.confidence == Confidence::Inferred {
            if let Some(j) = owner
                .tid
                .and_then(|tid| view.snapshot.threads.iter().position(|t| t.tid == tid))
            {
                holds.push((
                    j,
                    Hold {
                        resource: resource.clone(),
                        confidence: Confidence::Inferred,
                        evidence: format!(
                            "{} (thread {} waits for it)",
                            owner.evidence, view.snapshot.threads[i].tid
                        ),
                        site_frame: None,
                    },
                ));
            }
        }
        out[i].wait = Some(Wait {
            resource,
            owner,
            how: f.how.clone(),
            site_frame: frames::site_frame(stack(i)),
        });
    }
    for (j, h) in holds {
        if !out[j].holds.iter().any(|x| x.resource.address == h.resource.address) {
            out[j].holds.push(h);
        }
    }
    out
}

/// The holder of a std lock, from two kinds of evidence: pointers to the lock
/// in other threads' stacks and registers (a guard of a lock reached through
/// a reference), and, for a lock in a `static`, the code on other threads'
/// stacks that takes it (a guard of a static keeps no pointer in optimized
/// code, while a stale copy of its address may linger anywhere). For a static,
/// the code decides: one thread whose functions take the lock is the owner;
/// several are narrowed by the stack references; none leaves the stack
/// references alone.
fn infer_owner(
    view: &ProcessView<'_>,
    code: &CodeScanner<'_, '_>,
    i: usize,
    f: &Found,
    all: &[Option<Found>],
) -> Owner {
    if f.kind == ResourceKind::RustRwLock {
        let state = view.memory.read_u32(f.lock).unwrap_or(0);
        let held = state & RW_MASK;
        if held == 0 {
            return Owner::unknown(format!("RwLock state {state:#x}: not held (a wake-up is in progress)"));
        }
        if held != RW_WRITE_LOCKED && held > 1 {
            return Owner::unknown(format!(
                "RwLock read-locked by {held} readers; std does not record which threads they are"
            ));
        }
    }
    // The waiter and every thread waiting on the same lock hold pointers to it for their own wait.
    let exclude: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(j, g)| *j == i || g.as_ref().is_some_and(|g| g.lock == f.lock))
        .map(|(j, _)| j)
        .collect();
    let stack = stackscan::infer_holder(view, f.lock, &exclude);
    let acquirers = code.acquirers(f.lock, &exclude);
    let owner = |j: usize, evidence: String| Owner {
        tid: Some(view.snapshot.threads[j].tid),
        pid: Some(view.snapshot.pid),
        confidence: Confidence::Inferred,
        evidence,
        dead: false,
    };
    let several = |list: &[crate::runtimes::codescan::Acquirer]| {
        let tids: Vec<String> = list
            .iter()
            .map(|a| view.snapshot.threads[a.thread].tid.to_string())
            .collect();
        Owner::unknown(format!(
            "std locks record no owner; several threads run code that takes this static lock: {}",
            tids.join(", ")
        ))
    };
    match (acquirers.as_slice(), &stack) {
        ([], _) => {}
        ([a], _) => {
            return owner(
                a.thread,
                format!(
                    "std locks record no owner; the only other thread running code that takes this static lock: {}",
                    a.describe(view)
                ),
            )
        }
        (list, Inference::One(j, refs)) => {
            return match list.iter().find(|a| a.thread == *j) {
                Some(a) => owner(
                    *j,
                    format!(
                        "std locks record no owner; of the threads running code that takes this static lock, the only one referencing it: {}; {}",
                        a.describe(view),
                        refs.first().map(|r| r.describe(view)).unwrap_or_default()
                    ),
                ),
                None => several(list),
            }
        }
        (list, _) => return several(list),
    }
    match stack {
        Inference::One(j, refs) => {
            let t = &view.snapshot.threads[j];
            let shown: Vec<String> = refs.iter().take(3).map(|r| r.describe(view)).collect();
            Owner {
                tid: Some(t.tid),
                pid: Some(view.snapshot.pid),
                confidence: Confidence::Inferred,
                evidence: format!(
                    "std locks record no owner; the only other thread referencing the lock: {}",
                    shown.join("; ")
                ),
                dead: false,
            }
        }
        Inference::Several(js) => {
            let tids: Vec<String> = js.iter().map(|&j| view.snapshot.threads[j].tid.to_string()).collect();
            Owner::unknown(format!(
                "std locks record no owner; several threads reference the lock: {}",
                tids.join(", ")
            ))
        }
        Inference::None => Owner::unknown("std locks record no owner, and no other thread's stack references the lock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtimes::frames::testing::stack;
    use crate::runtimes::owners::testing::{futex, snapshot, thread, Symbols};
    use crate::target::memory::{BufferMemory, CopiedRegion};
    use crate::target::ThreadSnapshot;

    const A: u64 = 0x5000;
    const B: u64 = 0x5008;

    fn with_stack(mut t: ThreadSnapshot, start: u64, words: &[u64]) -> ThreadSnapshot {
        t.stack = CopiedRegion {
            start,
            bytes: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        };
        t.regs.rsp = start;
        t
    }

    fn statics(a: u32, b: u32) -> BufferMemory {
        let mut bytes = vec![0u8; 16];
        bytes[0..4].copy_from_slice(&a.to_le_bytes());
        bytes[8..12].copy_from_slice(&b.to_le_bytes());
        BufferMemory {
            regions: vec![CopiedRegion { start: A, bytes }],
        }
    }

    fn run(threads: Vec<ThreadSnapshot>, mem: &BufferMemory, stacks: &[Stack]) -> Vec<ThreadFindings> {
        let snap = snapshot(7, threads, vec![]);
        let syms = Symbols(vec![("abba::LOCK_A".into(), A, 8), ("abba::LOCK_B".into(), B, 8)]);
        analyze(&ProcessView {
            snapshot: &snap,
            stacks,
            memory: mem,
            symbols: &syms,
        })
    }

    #[test]
    fn abba_owners_are_inferred_from_stacks() {
        // Thread 1 holds A (guard on its stack) and waits for B; thread 2 the reverse.
        let t1 = with_stack(thread(1, futex(B, 137, 2), 0), 0x7000_0000, &[B, 0, A]);
        let t2 = with_stack(thread(2, futex(A, 137, 2), 0), 0x7100_0000, &[A, 0, B]);
        let t3 = with_stack(thread(3, None, 0), 0x7200_0000, &[0, 1, 2]);
        let out = run(vec![t1, t2, t3], &statics(2, 2), &[]);
        let w1 = out[0].wait.as_ref().unwrap();
        assert_eq!((w1.resource.kind, w1.resource.address), (ResourceKind::RustMutex, B));
        assert_eq!(w1.resource.name.as_deref(), Some("abba::LOCK_B"));
        assert_eq!((w1.owner.tid, w1.owner.confidence), (Some(2), Confidence::Inferred));
        assert!(
            w1.owner
                .evidence
                .contains("thread 2 has a pointer to the lock in its stack slot 0x71000010"),
            "{}",
            w1.owner.evidence
        );
        let w2 = out[1].wait.as_ref().unwrap();
        assert_eq!((w2.owner.tid, w2.owner.confidence), (Some(1), Confidence::Inferred));
        assert_eq!(out[0].holds[0].resource.address, A);
        assert_eq!(out[0].holds[0].confidence, Confidence::Inferred);
        assert!(out[2].wait.is_none() && out[2].holds.is_empty());
    }

    /// A static lock in optimized code: the holder keeps no pointer to it
    /// (the guard's address is a constant), while main has a stale copy of
    /// its address on its stack. The code on the holder's stack decides.
    #[test]
    fn static_lock_owner_from_the_code_that_takes_it() {
        use crate::runtimes::codescan::testing::{cmpxchg, InModule};
        // `worker` (0x1000) takes B with a RIP-relative lock cmpxchg; `main` (0x2000) does not.
        let mut text = vec![0x90u8; 0x2000];
        let insn = cmpxchg(0x1010, B, None);
        text[0x10..0x10 + insn.len()].copy_from_slice(&insn);
        let mut statics_bytes = vec![0u8; 16];
        statics_bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![
                CopiedRegion {
                    start: 0x1000,
                    bytes: text,
                },
                CopiedRegion {
                    start: A,
                    bytes: statics_bytes,
                },
            ],
        };
        let frames = |name: &str, pc: u64, start: u64| {
            let mut s = stack(&[(name, "/t")]);
            s.frames[0].pc = pc;
            s.frames[0].offset = Some(pc - start);
            s
        };
        let waiter = with_stack(thread(1, futex(B, 137, 2), 0), 0x7000_0000, &[B]);
        let holder = with_stack(thread(2, None, 0), 0x7100_0000, &[0, 0]);
        let main = with_stack(thread(3, None, 0), 0x7200_0000, &[0, B]);
        let snap = snapshot(7, vec![waiter, holder, main], vec![]);
        let stacks = vec![
            Stack::default(),
            frames("worker", 0x1080, 0x1000),
            frames("main", 0x2040, 0x2000),
        ];
        let syms = InModule(
            Symbols(vec![
                ("worker".into(), 0x1000, 0x100),
                ("main".into(), 0x2000, 0x100),
                ("abba::LOCK_B".into(), B, 8),
            ]),
            (0x1000, 0x6000),
        );
        let out = analyze(&ProcessView {
            snapshot: &snap,
            stacks: &stacks,
            memory: &mem,
            symbols: &syms,
        });
        let o = &out[0].wait.as_ref().unwrap().owner;
        assert_eq!((o.tid, o.confidence), (Some(2), Confidence::Inferred), "{}", o.evidence);
        assert!(
            o.evidence
                .contains("thread 2 is inside frame #0 (worker), whose code takes the lock"),
            "{}",
            o.evidence
        );
        assert_eq!(out[1].holds[0].resource.address, B);
        assert!(out[2].holds.is_empty(), "main's stale pointer makes it no holder");
    }

    #[test]
    fn ambiguous_or_missing_references_give_unknown_owner() {
        let t1 = with_stack(thread(1, futex(A, 137, 2), 0), 0x7000_0000, &[A]);
        let t2 = with_stack(thread(2, None, 0), 0x7100_0000, &[A]);
        let t3 = with_stack(thread(3, None, 0), 0x7200_0000, &[A]);
        let out = run(vec![t1.clone(), t2, t3], &statics(2, 0), &[]);
        let o = &out[0].wait.as_ref().unwrap().owner;
        assert_eq!(o.confidence, Confidence::Unknown);
        assert!(
            o.evidence.contains("several threads reference the lock: 2, 3"),
            "{}",
            o.evidence
        );
        let out = run(vec![t1], &statics(2, 0), &[]);
        assert_eq!(out[0].wait.as_ref().unwrap().owner.confidence, Confidence::Unknown);
    }

    #[test]
    fn other_waiters_on_the_same_lock_are_not_owners() {
        let t1 = with_stack(thread(1, futex(A, 137, 2), 0), 0x7000_0000, &[A]);
        let t2 = with_stack(thread(2, futex(A, 137, 2), 0), 0x7100_0000, &[A]);
        let t3 = with_stack(thread(3, None, 0), 0x7200_0000, &[0, A]);
        let out = run(vec![t1, t2, t3], &statics(2, 0), &[]);
        for f in &out[..2] {
            assert_eq!(f.wait.as_ref().unwrap().owner.tid, Some(3));
        }
    }

    #[test]
    fn rwlock_readers_and_writers() {
        // A write-locked RwLock at A with readers and writers waiting; writer_notify at A+4.
        let state = RW_WRITE_LOCKED | RW_READERS_WAITING | RW_WRITERS_WAITING;
        let mut bytes = vec![0u8; 16];
        bytes[0..4].copy_from_slice(&state.to_le_bytes());
        bytes[4..8].copy_from_slice(&5u32.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![CopiedRegion { start: A, bytes }],
        };
        let reader = with_stack(thread(1, futex(A, 137, state as u64), 0), 0x7000_0000, &[A]);
        let writer = with_stack(thread(2, futex(A + 4, 137, 5), 0), 0x7100_0000, &[A]);
        let holder = with_stack(thread(3, None, 0), 0x7200_0000, &[A]);
        let out = run(vec![reader, writer, holder], &mem, &[]);
        let r = out[0].wait.as_ref().unwrap();
        assert_eq!(
            (r.resource.kind, r.resource.address, r.how.as_str()),
            (ResourceKind::RustRwLock, A, "std::sync::RwLock::read")
        );
        assert_eq!(r.owner.tid, Some(3));
        let w = out[1].wait.as_ref().unwrap();
        assert_eq!((w.resource.address, w.how.as_str()), (A, "std::sync::RwLock::write"));
        assert_eq!(w.owner.tid, Some(3));
        assert_eq!(out[2].holds.len(), 1);
    }

    #[test]
    fn read_locked_by_many_is_unknown() {
        let state = 3 | RW_WRITERS_WAITING;
        let mut bytes = vec![0u8; 16];
        bytes[0..4].copy_from_slice(&state.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![CopiedRegion { start: A, bytes }],
        };
        let writer = thread(2, futex(A + 4, 137, 0), 0);
        let out = run(vec![writer], &mem, &[]);
        let o = &out[0].wait.as_ref().unwrap().owner;
        assert_eq!(o.confidence, Confidence::Unknown);
        assert!(o.evidence.contains("3 readers"), "{}", o.evidence);
    }

    #[test]
    fn names_classify_condvar_and_park() {
        let mem = statics(7, u32::MAX);
        let stacks = vec![
            stack(&[
                ("syscall", "libc.so.6"),
                ("std::sys::sync::condvar::futex::Condvar::wait_optional_timeout", "/t"),
                ("main", "/t"),
            ]),
            Stack::default(),
        ];
        let out = run(
            vec![
                thread(1, futex(A, 137, 7), 0),
                thread(2, futex(B, 137, u32::MAX as u64), 0),
            ],
            &mem,
            &stacks,
        );
        let c = out[0].wait.as_ref().unwrap();
        assert_eq!(
            (c.resource.kind, c.how.as_str()),
            (ResourceKind::CondVar, "std::sync::Condvar::wait")
        );
        assert_eq!(c.site_frame, Some(2));
        let p = out[1].wait.as_ref().unwrap();
        assert_eq!(
            (p.resource.kind, p.how.as_str()),
            (ResourceKind::Futex, "std::thread::park")
        );
    }

    #[test]
    fn glibc_ops_are_not_rust() {
        // A glibc mutex wait (plain WAIT) and a realtime bitset wait are not std's.
        let out = run(
            vec![thread(1, futex(A, 128, 2), 0), thread(2, futex(A, 393, 2), 0)],
            &statics(2, 0),
            &[],
        );
        assert!(out.iter().all(|f| f.wait.is_none()));
    }
}
