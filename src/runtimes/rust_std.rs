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
//! Neither records an owner, so owners are inferred (never exact): from live
//! guards in the threads' DWARF locals, else from code each frame has run
//! (see [`infer_owner`]).

use super::codescan::{CodeHold, CodeScanner};
use super::futex::{FutexCmd, FutexWait, FUTEX_PRIVATE_FLAG};
use super::{frames, owners, Confidence, Hold, Owner, ProcessView, ResourceKind, ThreadFindings, Wait};
use crate::stacks::Stack;
use crate::symbols::guards::LiveGuard;

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
    let waits: Vec<Option<FutexWait>> = (0..view.snapshot.threads.len())
        .map(|i| view.futex(i).copied())
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
    let needs_owner = found.iter().flatten().any(|f| f.ownerless.is_none());
    let guards = if needs_owner {
        Guards::find(view)
    } else {
        Guards { live: Vec::new() }
    };
    for (i, f) in found.iter().enumerate() {
        let Some(f) = f else { continue };
        let owner = match f.ownerless {
            Some(why) => Owner::unknown(why),
            None => infer_owner(view, &code, &guards, i, f, &found),
        };
        let resource = owners::resource_at(view, f.kind, f.lock);
        holds.extend(owners::inferred_hold(view, i, &owner, &resource));
        out[i].wait = Some(Wait {
            resource,
            owner,
            how: f.how.clone(),
            site_frame: frames::site_frame(stack(i)),
            ends: crate::runtimes::Ends::WITH_CALL,
        });
    }
    for (j, h) in holds {
        if !out[j].holds.iter().any(|x| x.resource.address == h.resource.address) {
            out[j].holds.push(h);
        }
    }
    out
}

/// The guards DWARF shows live in each thread's frames, computed once per
/// process (only when some thread waits for a std lock).
struct Guards {
    /// Per thread: (physical frame index, guard).
    live: Vec<Vec<(usize, LiveGuard)>>,
}

impl Guards {
    fn find(view: &ProcessView<'_>) -> Guards {
        let live = (0..view.snapshot.threads.len())
            .map(|j| {
                let Some(stack) = view.stacks.get(j) else {
                    return Vec::new();
                };
                let mut out = Vec::new();
                for (k, f) in stack.frames.iter().enumerate().filter(|(_, f)| !f.inlined) {
                    let Some(ctx) = f.context.as_deref() else { continue };
                    if let Some(gs) = view.symbols.live_guards(ctx, view.memory) {
                        out.extend(gs.into_iter().map(|g| (k, g)));
                    }
                }
                out
            })
            .collect();
        Guards { live }
    }
}

/// `frame #3 (abba::t1)`: the physical frame's function (the one whose code
/// and locals are meant), for owner evidence (also parking_lot's).
pub(super) fn frame_name(view: &ProcessView<'_>, j: usize, k: usize) -> String {
    let name = view
        .stacks
        .get(j)
        .and_then(|s| s.frames.get(k))
        .and_then(|f| f.function.as_deref())
        .unwrap_or("??");
    format!("frame #{k} ({name})")
}

/// The holder of a std lock (which records none). Two kinds of evidence,
/// both only ever *inferred*, and neither of which can mean "about to lock":
///
/// 1. DWARF locals: a `MutexGuard`/`RwLock*Guard` in scope at a frame's pc
///    whose pointer is the lock ([`crate::symbols::guards`]).
/// 2. Code (for frames without DWARF locals, e.g. a stripped build): a
///    frame whose function executed a `lock cmpxchg` on the lock before the
///    point the frame resumes at, with no release since
///    ([`CodeScanner::holds_in`]).
///
/// The waiter itself is a candidate (a self-deadlock): a guard of the lock
/// in its frames, or a frame that took the lock twice without releasing it
/// (one is the attempt it waits in). Exactly one candidate thread is the owner; several
/// make it unknown.
fn infer_owner(
    view: &ProcessView<'_>,
    code: &CodeScanner<'_, '_>,
    guards: &Guards,
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
    // Other threads waiting on the same lock do not hold it.
    let others_waiting = |j: usize| j != i && all.get(j).and_then(|g| g.as_ref()).is_some_and(|g| g.lock == f.lock);
    let owner = |j: usize, evidence: String| {
        Owner::held_by(
            view.snapshot.pid,
            view.snapshot.threads[j].tid,
            Confidence::Inferred,
            evidence,
        )
    };
    let tids = |js: &[usize]| {
        js.iter()
            .map(|&j| view.snapshot.threads[j].tid.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };

    // 1. Live guards.
    let mut by_guard: Vec<(usize, usize, &LiveGuard)> = Vec::new();
    for (j, gs) in guards.live.iter().enumerate() {
        if others_waiting(j) {
            continue;
        }
        if let Some((k, g)) = gs.iter().find(|(_, g)| g.lock == f.lock) {
            by_guard.push((j, *k, g));
        }
    }
    match by_guard.as_slice() {
        [(j, k, g)] => {
            let tid = view.snapshot.threads[*j].tid;
            return owner(
                *j,
                format!(
                    "std locks record no owner; thread {tid} has a live {} `{}` pointing to it ({}) in {}, per its DWARF locals",
                    g.kind.type_name(),
                    g.variable,
                    g.place,
                    frame_name(view, *j, *k)
                ),
            );
        }
        [] => {}
        several => {
            let js: Vec<usize> = several.iter().map(|(j, _, _)| *j).collect();
            return Owner::unknown(format!(
                "std locks record no owner; several threads have a live guard of it: {}",
                tids(&js)
            ));
        }
    }

    // 2. Code already run by a frame that has not returned.
    let by_code = code_holders(view, code, i, f.lock, &others_waiting);
    match by_code.as_slice() {
        [(j, h)] => {
            let tid = view.snapshot.threads[*j].tid;
            owner(
                *j,
                format!(
                    "std locks record no owner; thread {tid} is in {}, whose code took the lock (lock cmpxchg at {:#x} on {}) before the point it resumes at, and has not released it since",
                    frame_name(view, *j, h.frame),
                    h.instruction,
                    h.operand.describe()
                ),
            )
        }
        [] => Owner::unknown(
            "std locks record no owner; no thread has a live guard of it (DWARF locals) or code that took it and has not returned",
        ),
        several => {
            let js: Vec<usize> = several.iter().map(|(j, _)| *j).collect();
            Owner::unknown(format!(
                "std locks record no owner; several threads run code that took it: {}",
                tids(&js)
            ))
        }
    }
}

/// Threads whose frames' code took `lock` before the point they resume at
/// and did not release it (see [`infer_owner`], evidence 2); the waiter `i`
/// counts only for a second acquisition. `others_waiting(j)`: thread `j`
/// waits for the same lock (and so does not hold it). Shared with
/// [`super::parking_lot`].
pub(super) fn code_holders(
    view: &ProcessView<'_>,
    code: &CodeScanner<'_, '_>,
    i: usize,
    lock: u64,
    others_waiting: &dyn Fn(usize) -> bool,
) -> Vec<(usize, CodeHold)> {
    let mut by_code: Vec<(usize, CodeHold)> = Vec::new();
    for j in 0..view.snapshot.threads.len() {
        if others_waiting(j) {
            continue;
        }
        let holds = code.holds_in(j, lock);
        let found = if j == i {
            // The waiter's own frames show the attempt it waits in: std's
            // slow path (which retries, in a loop, on the lock it keeps in a
            // callee-saved register) and the inlined fast path in the frame
            // that called `lock()`. Frames named as std's are skipped; in the
            // calling frame only a second acquisition is a hold, and in an
            // unnamed frame (a stripped build, where std's frames cannot be
            // told apart) only acquisitions of a static named in the code.
            let site = view.stacks.get(i).and_then(frames::site_frame).unwrap_or(0);
            let named = |k: usize| {
                view.stacks
                    .get(i)
                    .and_then(|s| s.frames.get(k))
                    .is_some_and(|f| f.function.is_some())
            };
            let mut attempt_seen = false;
            holds.into_iter().filter(|h| h.frame >= site).find(|h| {
                let n = if named(h.frame) { h.count } else { h.rip_relative };
                let held = if attempt_seen { n >= 1 } else { n >= 2 };
                attempt_seen = true;
                held
            })
        } else {
            holds.into_iter().next()
        };
        if let Some(h) = found {
            by_code.push((j, h));
        }
    }
    by_code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::ThreadSnapshot;
    use crate::ids::Tid;
    use crate::memory::{BufferMemory, CopiedRegion};
    use crate::runtimes::frames::testing::stack;
    use crate::runtimes::owners::testing::{futex, snapshot, thread, Symbols};

    const A: u64 = 0x5000;
    const B: u64 = 0x5008;

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
            calls: &crate::runtimes::syscalls::decode_all(&snap, mem),
            symbols: &syms,
        })
    }

    /// Code for the unit tests: functions at 0x1000.. with these instructions placed in `nop`s.
    fn code(placed: &[(u64, Vec<u8>)]) -> CopiedRegion {
        let mut text = vec![0x90u8; 0x3000];
        for (at, bytes) in placed {
            let o = (*at - 0x1000) as usize;
            text[o..o + bytes.len()].copy_from_slice(bytes);
        }
        CopiedRegion {
            start: 0x1000,
            bytes: text,
        }
    }

    /// `lock cmpxchg %ecx, disp8(%rbx)` and `xchg %eax, disp8(%rbx)`.
    fn cmpxchg_rbx(disp: i8) -> Vec<u8> {
        vec![0xF0, 0x0F, 0xB1, 0x4B, disp as u8]
    }

    /// A stack of one syscall frame and caller frames `(pc, function range, rbx)`.
    fn frames(callers: &[(u64, (u64, u64), Option<u64>)]) -> Stack {
        let mut names = vec![("syscall", "libc.so.6")];
        names.extend(callers.iter().map(|_| ("f", "/t")));
        let mut s = stack(&names);
        for (f, (pc, range, rbx)) in s.frames[1..].iter_mut().zip(callers) {
            f.pc = *pc;
            let mut regs = [None; 17];
            regs[3] = *rbx;
            f.context = Some(std::sync::Arc::new(crate::stacks::FrameContext {
                probe: pc - 1,
                regs: crate::stacks::FrameRegs::from(&regs),
                cfa: None,
                function: Some(*range),
            }));
        }
        s
    }

    fn mem_with(code_region: CopiedRegion, a: u32, b: u32) -> BufferMemory {
        let mut m = statics(a, b);
        m.regions.push(code_region);
        m
    }

    const F: (u64, u64) = (0x1000, 0x1100);
    const G: (u64, u64) = (0x2000, 0x2100);

    #[test]
    fn abba_owners_from_code_that_took_the_locks() {
        use crate::runtimes::codescan::testing::cmpxchg;
        // F takes A at 0x1010 and B at 0x1030; G takes B at 0x2010 and A at 0x2030.
        let mem = mem_with(
            code(&[
                (0x1010, cmpxchg(0x1010, A, None)),
                (0x1030, cmpxchg(0x1030, B, None)),
                (0x2010, cmpxchg(0x2010, B, None)),
                (0x2030, cmpxchg(0x2030, A, None)),
            ]),
            2,
            2,
        );
        let stacks = vec![
            frames(&[(0x1050, F, None)]),
            frames(&[(0x2050, G, None)]),
            frames(&[(0x1020, F, None)]), // between its two acquisitions, not waiting
        ];
        let t3 = thread(3, None, 0);
        let out = run(
            vec![thread(1, futex(B, 137, 2), 0), thread(2, futex(A, 137, 2), 0), t3],
            &mem,
            &stacks,
        );
        let w1 = out[0].wait.as_ref().unwrap();
        assert_eq!(
            (w1.resource.kind, w1.resource.address.get()),
            (ResourceKind::RustMutex, B)
        );
        assert_eq!(w1.resource.name.as_deref(), Some("abba::LOCK_B"));
        assert_eq!(
            (w1.owner.tid().map(Tid::get), w1.owner.confidence()),
            (Some(2), Confidence::Inferred)
        );
        assert!(
            w1.owner
                .evidence()
                .contains("thread 2 is in frame #1 (f), whose code took the lock (lock cmpxchg at 0x2010 on 0x5008)"),
            "{}",
            w1.owner.evidence()
        );
        // Thread 3 took A (0x1010 < 0x1020) too: A's owner is ambiguous.
        let w2 = out[1].wait.as_ref().unwrap();
        assert_eq!(w2.owner.confidence(), Confidence::Unknown);
        assert!(
            w2.owner
                .evidence()
                .contains("several threads run code that took it: 1, 3"),
            "{}",
            w2.owner.evidence()
        );
        assert_eq!(out[1].holds[0].resource.address.get(), B);
    }

    #[test]
    fn about_to_lock_or_released_is_not_holding() {
        use crate::runtimes::codescan::testing::cmpxchg;
        // F: take A at 0x1010, release it (xchg %eax, A(%rip)) at 0x1020, take A again at 0x1060.
        let xchg_at = 0x1020u64;
        let mut xchg = vec![0x87, 0x05];
        xchg.extend(((A as i64 - (xchg_at as i64 + 6)) as i32).to_le_bytes());
        let mem = mem_with(
            code(&[
                (0x1010, cmpxchg(0x1010, A, None)),
                (xchg_at, xchg),
                (0x1060, cmpxchg(0x1060, A, None)),
            ]),
            2,
            0,
        );
        let waiter = thread(1, futex(A, 137, 2), 0);
        for (pc, held) in [(0x1008, false), (0x1018, true), (0x1040, false), (0x1070, true)] {
            let stacks = vec![Stack::default(), frames(&[(pc, F, None)])];
            let out = run(vec![waiter.clone(), thread(2, None, 0)], &mem, &stacks);
            let o = &out[0].wait.as_ref().unwrap().owner;
            assert_eq!(o.tid().is_some(), held, "pc {pc:#x}: {}", o.evidence());
        }
        // A return address at a `jmp` back into the function resumes at its target:
        // the slow path's `call lock_contended; jmp back` placed after the release.
        let mut placed = vec![
            (0x1010, cmpxchg(0x1010, A, None)),
            (xchg_at, {
                let mut x = vec![0x87, 0x05];
                x.extend(((A as i64 - (xchg_at as i64 + 6)) as i32).to_le_bytes());
                x
            }),
        ];
        placed.push((0x1080, vec![0xEB, (0x1018i64 - 0x1082) as i8 as u8]));
        let mem = mem_with(code(&placed), 2, 0);
        let stacks = vec![Stack::default(), frames(&[(0x1080, F, None)])];
        let out = run(vec![waiter, thread(2, None, 0)], &mem, &stacks);
        assert_eq!(out[0].wait.as_ref().unwrap().owner.tid().map(Tid::get), Some(2));
    }

    #[test]
    fn heap_lock_through_a_callee_saved_register() {
        // `lock cmpxchg %ecx, 0x10(%rbx)` with rbx = the ArcInner: the lock is at rbx + 16.
        const HEAP: u64 = 0x9_0010;
        let mut bytes = vec![0u8; 16];
        bytes[0..4].copy_from_slice(&2u32.to_le_bytes());
        let mut mem = BufferMemory {
            regions: vec![
                CopiedRegion { start: HEAP, bytes },
                code(&[(0x1010, cmpxchg_rbx(0x10))]),
            ],
        };
        mem.regions.push(CopiedRegion {
            start: A,
            bytes: vec![0; 16],
        });
        let waiter = thread(1, futex(HEAP, 137, 2), 0);
        let run_with = |rbx: Option<u64>| {
            let stacks = vec![Stack::default(), frames(&[(0x1050, F, rbx)])];
            run(vec![waiter.clone(), thread(2, None, 0)], &mem, &stacks)
        };
        let o = run_with(Some(HEAP - 16))[0].wait.clone().unwrap().owner;
        assert_eq!(
            (o.tid().map(Tid::get), o.confidence()),
            (Some(2), Confidence::Inferred),
            "{}",
            o.evidence()
        );
        assert!(o.evidence().contains("on [rbx+0x10]"), "{}", o.evidence());
        // rbx now points elsewhere (another lock), or was not recovered: no evidence.
        assert_eq!(run_with(Some(0x7777_0000))[0].wait.as_ref().unwrap().owner.tid(), None);
        assert_eq!(run_with(None)[0].wait.as_ref().unwrap().owner.tid(), None);
    }

    #[test]
    fn a_second_acquisition_of_a_held_lock_is_a_self_deadlock() {
        use crate::runtimes::codescan::testing::cmpxchg;
        let once = mem_with(code(&[(0x1030, cmpxchg(0x1030, A, None))]), 2, 0);
        let twice = mem_with(
            code(&[(0x1010, cmpxchg(0x1010, A, None)), (0x1030, cmpxchg(0x1030, A, None))]),
            2,
            0,
        );
        let stacks = vec![frames(&[(0x1050, F, None), (0x2050, G, None)])];
        let out = run(vec![thread(1, futex(A, 137, 2), 0)], &once, &stacks);
        assert_eq!(
            out[0].wait.as_ref().unwrap().owner.tid(),
            None,
            "the attempt itself is not a hold"
        );
        let out = run(vec![thread(1, futex(A, 137, 2), 0)], &twice, &stacks);
        let o = &out[0].wait.as_ref().unwrap().owner;
        assert_eq!(
            (o.tid().map(Tid::get), o.confidence()),
            (Some(1), Confidence::Inferred),
            "{}",
            o.evidence()
        );
    }

    #[test]
    fn other_waiters_on_the_same_lock_are_not_owners() {
        use crate::runtimes::codescan::testing::cmpxchg;
        let mem = mem_with(code(&[(0x1010, cmpxchg(0x1010, A, None))]), 2, 0);
        let stacks = vec![
            frames(&[(0x1050, F, None)]),
            frames(&[(0x1050, F, None)]),
            frames(&[(0x1050, F, None)]),
        ];
        let out = run(
            vec![
                thread(1, futex(A, 137, 2), 0),
                thread(2, futex(A, 137, 2), 0),
                thread(3, None, 0),
            ],
            &mem,
            &stacks,
        );
        for f in &out[..2] {
            assert_eq!(f.wait.as_ref().unwrap().owner.tid().map(Tid::get), Some(3));
        }
    }

    #[test]
    fn rwlock_readers_and_writers() {
        use crate::runtimes::codescan::testing::cmpxchg;
        // A write-locked RwLock at A with readers and writers waiting; writer_notify at A+4.
        let state = RW_WRITE_LOCKED | RW_READERS_WAITING | RW_WRITERS_WAITING;
        let mut bytes = vec![0u8; 16];
        bytes[0..4].copy_from_slice(&state.to_le_bytes());
        bytes[4..8].copy_from_slice(&5u32.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![
                CopiedRegion { start: A, bytes },
                code(&[(0x1010, cmpxchg(0x1010, A, None))]),
            ],
        };
        let reader = thread(1, futex(A, 137, state as u64), 0);
        let writer = thread(2, futex(A + 4, 137, 5), 0);
        let holder = thread(3, None, 0);
        let stacks = vec![Stack::default(), Stack::default(), frames(&[(0x1050, F, None)])];
        let out = run(vec![reader, writer, holder], &mem, &stacks);
        let r = out[0].wait.as_ref().unwrap();
        assert_eq!(
            (r.resource.kind, r.resource.address.get(), r.how.as_str()),
            (ResourceKind::RustRwLock, A, "std::sync::RwLock::read")
        );
        assert_eq!(r.owner.tid().map(Tid::get), Some(3));
        let w = out[1].wait.as_ref().unwrap();
        assert_eq!(
            (w.resource.address.get(), w.how.as_str()),
            (A, "std::sync::RwLock::write")
        );
        assert_eq!(w.owner.tid().map(Tid::get), Some(3));
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
        assert_eq!(o.confidence(), Confidence::Unknown);
        assert!(o.evidence().contains("3 readers"), "{}", o.evidence());
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
