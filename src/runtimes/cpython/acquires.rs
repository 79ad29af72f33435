//! Locks a thread took with an explicit `acquire()` and has not released,
//! inferred from the bytecode its frames have executed.
//!
//! A `_thread.lock` records no owner, and `lock.acquire()` (unlike `with
//! lock:`) leaves nothing on the frame. What remains is the code: each
//! frame's instruction index says how far the function got, and the
//! instructions before it show `X.acquire()` and `X.release()` calls on named
//! objects (`lock_a`, `self._lock`, a closure variable). Replaying them in
//! order, outermost frame first, leaves the locks whose last call was an
//! `acquire()`. The expression is evaluated against the frame as it is now to
//! find the object.
//!
//! This is evidence, not proof: the replay is linear (a skipped branch or an
//! `acquire(blocking=False)` that failed looks like a taken lock), a lock
//! released by a function that has returned is not seen, and a variable may
//! have been rebound since. So these holds are only ever *inferred*, are
//! only accepted for a lock that is locked, and only when a single thread
//! claims it ([`super::locks`]).
//!
//! Frames of threading.py / queue.py are not replayed: their internal locks
//! (a Condition's waiter lock, acquired by the waiter and released by the
//! notifier) are hand-offs, not holds.

use super::frames::{line_for, PyFrame, PyThreadState, Walker};
use super::holds::{as_lock, HeldLock, LockKind};
use super::layout::{opcode_table, OpcodeTable, Role};
use super::naming::{is_sync_library, local_value};
use crate::runtimes::Confidence;

/// Frames whose instruction index is beyond this many code units are not
/// replayed (no real function is that long; corrupt memory might claim so).
const MAX_CODE_UNITS: u64 = 1 << 16;

/// A lock method call found in the bytecode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Acquire,
    Release,
}

/// The object a call was made on, as the code names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// A module global (`LOAD_GLOBAL`, or `LOAD_NAME` in module code).
    Global(String),
    /// A fast local, cell or free variable: index into `localsplus`.
    Local(u32),
    /// An attribute of another expression (`self._lock`).
    Attr(Box<Expr>, String),
}

/// `expr.acquire()` or `expr.release()`, completed at code unit `at` (its `CALL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockCall {
    pub kind: CallKind,
    pub expr: Expr,
    pub at: u64,
}

/// What the bytecode before an instruction shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replay {
    /// Completed calls, in order.
    pub calls: Vec<LockCall>,
    /// A method call set up but not completed: when the instruction at the
    /// end is its `CALL`, the one in progress (a blocked `lock.acquire()`).
    pub pending: Option<(CallKind, Expr)>,
}

/// The `acquire()` / `release()` calls completed before code unit `upto`
/// in `code` (raw code units, little-endian `opcode, oparg` pairs), in
/// order. The call at `upto` itself is in progress (a thread blocked in
/// `lock.acquire()` sits there) and does not count. `None` when the bytes do
/// not decode as this version's bytecode or hide instructions
/// (`INSTRUMENTED_LINE`).
pub fn lock_calls(table: &OpcodeTable, code: &[u8], names: &[String], upto: u64) -> Option<Replay> {
    let mut calls = Vec::new();
    // The object the instructions so far have loaded, and a method call on
    // it that waits for its CALL.
    let mut expr: Option<Expr> = None;
    let mut pending: Option<(CallKind, Expr)> = None;
    let mut ext: u32 = 0;
    let mut i: u64 = 0;
    let name = |n: u32| names.get(n as usize).cloned();
    while i < upto {
        let at = i as usize * 2;
        let (&opcode, &oparg) = (code.get(at)?, code.get(at + 1)?);
        let op = table.ops[opcode as usize];
        let arg = ext | oparg as u32;
        ext = 0;
        i += 1 + op.caches as u64;
        match op.role {
            Role::ExtendedArg => {
                ext = arg << 8;
                continue;
            }
            Role::Opaque | Role::Invalid => return None,
            Role::Global => expr = name(arg >> 1).map(Expr::Global),
            Role::Name => expr = name(arg).map(Expr::Global),
            Role::Fast | Role::Deref => expr = Some(Expr::Local(arg)),
            Role::FastPair => expr = Some(Expr::Local(arg & 15)),
            Role::Attr | Role::Method => {
                let shift = if op.role == Role::Attr { table.attr_shift } else { 0 };
                let (Some(base), Some(attr)) = (expr.take(), name(arg >> shift)) else {
                    continue;
                };
                match attr.as_str() {
                    "acquire" => pending = Some((CallKind::Acquire, base)),
                    "release" => pending = Some((CallKind::Release, base)),
                    _ => expr = Some(Expr::Attr(Box::new(base), attr)),
                }
            }
            Role::Call => {
                expr = None;
                if let Some((kind, expr)) = pending.take() {
                    calls.push(LockCall {
                        kind,
                        expr,
                        at: i - 1 - op.caches as u64,
                    });
                }
            }
            Role::Other => expr = None,
        }
    }
    Some(Replay { calls, pending })
}

/// How code with these `localsplus` names spells an expression (`self._lock`).
pub fn render(expr: &Expr, localsplusnames: &[String]) -> String {
    match expr {
        Expr::Global(n) => n.clone(),
        Expr::Local(i) => localsplusnames
            .get(*i as usize)
            .cloned()
            .unwrap_or_else(|| format!("<local {i}>")),
        Expr::Attr(base, attr) => format!("{}.{attr}", render(base, localsplusnames)),
    }
}

/// The object an expression refers to in `frame` now.
fn resolve(walker: &Walker, frame: &PyFrame, expr: &Expr, depth: u32) -> Option<u64> {
    match expr {
        Expr::Global(n) => walker.obj.dict_get_str(frame.globals, n).ok()?,
        Expr::Local(i) => local_value(walker, frame, *i),
        Expr::Attr(base, attr) if depth < 8 => walker.obj.attr(resolve(walker, frame, base, depth + 1)?, attr),
        Expr::Attr(..) => None,
    }
}

/// What a thread's bytecode says about plain locks.
#[derive(Debug, Default)]
pub(super) struct ExplicitLocks {
    /// Locks its frames took with `acquire()` and have not released, each
    /// as an *inferred* hold.
    pub(super) holds: Vec<HeldLock>,
    /// The lock its innermost frame is calling `acquire()` on right now.
    pub(super) acquiring: Option<u64>,
}

/// Replay the thread's frames ([`ExplicitLocks`]). Empty when this CPython
/// version has no opcode table.
pub(super) fn explicit_locks(walker: &Walker, state: &PyThreadState) -> ExplicitLocks {
    let mut out = ExplicitLocks::default();
    let Some(table) = opcode_table(walker.layout.version) else {
        return out;
    };
    // Replay outermost frame first: a caller's calls happened before its callee's.
    let mut last: Vec<(u64, CallKind, usize, LockCall)> = Vec::new();
    for (fi, frame) in state.frames.iter().enumerate().rev() {
        if is_sync_library(&frame.code.filename) {
            continue;
        }
        let Some(lasti) = frame.lasti.filter(|&l| l > 0 && l <= MAX_CODE_UNITS) else {
            continue;
        };
        let Ok(code) = walker.obj.mem.read_vec(frame.bytecode, lasti as usize * 2) else {
            continue;
        };
        let Some(replay) = lock_calls(table, &code, &frame.code.names, lasti) else {
            continue;
        };
        if fi == 0 {
            if let Some((CallKind::Acquire, expr)) = &replay.pending {
                out.acquiring = resolve(walker, frame, expr, 0)
                    .and_then(|o| as_lock(walker, o))
                    .map(|(a, _)| a);
            }
        }
        for call in replay.calls {
            let Some(obj) = resolve(walker, frame, &call.expr, 0) else {
                continue;
            };
            let Some((addr, LockKind::Lock)) = as_lock(walker, obj) else {
                continue;
            };
            last.retain(|(a, ..)| *a != addr);
            last.push((addr, call.kind, fi, call));
        }
    }
    out.holds = last
        .into_iter()
        .filter(|(_, kind, ..)| *kind == CallKind::Acquire)
        .map(|(addr, _, fi, call)| {
            let frame = &state.frames[fi];
            let text = render(&call.expr, &frame.code.localsplusnames);
            let at = line_for(&frame.code.linetable, frame.code.firstlineno, call.at)
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            let now = frame.line.map(|l| format!(":{l}")).unwrap_or_default();
            HeldLock {
                addr,
                kind: LockKind::Lock,
                frame: fi,
                evidence: format!(
                    "{} ({}{now}) ran {text}.acquire(){at} and no release() of it since (replayed from the \
                     frame's bytecode)",
                    frame.code.qualname, frame.code.filename
                ),
                via_condition: None,
                confidence: Confidence::Inferred,
            }
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtimes::cpython::layout::opcode_table;

    /// Assemble `(opcode name, oparg)` pairs for a version, with zeroed
    /// inline caches after each instruction.
    fn assemble(table: &OpcodeTable, prog: &[(Role, u32)]) -> (Vec<u8>, Vec<u64>) {
        let mut code = Vec::new();
        let mut starts = Vec::new();
        for &(role, arg) in prog {
            let opcode = table
                .ops
                .iter()
                .position(|o| o.role == role)
                .unwrap_or_else(|| panic!("{role:?}"));
            if arg > 0xff {
                let ext = table.ops.iter().position(|o| o.role == Role::ExtendedArg).unwrap();
                code.extend([ext as u8, (arg >> 8) as u8]);
            }
            starts.push(code.len() as u64 / 2);
            code.extend([opcode as u8, arg as u8]);
            code.extend(std::iter::repeat_n(0u8, 2 * table.ops[opcode].caches as usize));
        }
        (code, starts)
    }

    fn names() -> Vec<String> {
        ["lock_a", "lock_b", "acquire", "release", "_lock", "print"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn acquire_then_blocked_acquire_on_every_version() {
        for minor in [11, 12, 13] {
            let t = opcode_table((3, minor, 0)).unwrap();
            let method = |n: u32| {
                if minor == 11 {
                    (Role::Method, n)
                } else {
                    (Role::Attr, n << 1 | 1)
                }
            };
            // lock_a.acquire(); print(); lock_b.acquire()  <- blocked here
            let prog = [
                (Role::Global, 0 << 1),
                method(2),
                (Role::Call, 0),
                (Role::Other, 0),
                (Role::Global, 5 << 1 | 1),
                (Role::Call, 0),
                (Role::Global, 1 << 1),
                method(2),
                (Role::Call, 0),
            ];
            let (code, starts) = assemble(t, &prog);
            let blocked_at = *starts.last().unwrap();
            let replay = lock_calls(t, &code, &names(), blocked_at).unwrap();
            assert_eq!(
                replay.pending,
                Some((CallKind::Acquire, Expr::Global("lock_b".into()))),
                "3.{minor}"
            );
            assert_eq!(
                replay.calls,
                vec![LockCall {
                    kind: CallKind::Acquire,
                    expr: Expr::Global("lock_a".into()),
                    at: starts[2],
                }],
                "3.{minor}"
            );
            // Once the second call completed, both count.
            let all = lock_calls(t, &code, &names(), code.len() as u64 / 2).unwrap().calls;
            assert_eq!(all.len(), 2, "3.{minor}");
            assert_eq!(all[1].expr, Expr::Global("lock_b".into()));
        }
    }

    #[test]
    fn attribute_chains_locals_and_release() {
        let t = opcode_table((3, 12, 0)).unwrap();
        // self._lock.acquire(); self._lock.release()
        let prog = [
            (Role::Fast, 0),
            (Role::Attr, 4 << 1),
            (Role::Attr, 2 << 1 | 1),
            (Role::Call, 0),
            (Role::Fast, 0),
            (Role::Attr, 4 << 1),
            (Role::Attr, 3 << 1 | 1),
            (Role::Call, 0),
        ];
        let (code, _) = assemble(t, &prog);
        let calls = lock_calls(t, &code, &names(), code.len() as u64 / 2).unwrap().calls;
        let lock = Expr::Attr(Box::new(Expr::Local(0)), "_lock".into());
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].kind, &calls[0].expr), (CallKind::Acquire, &lock));
        assert_eq!((calls[1].kind, &calls[1].expr), (CallKind::Release, &lock));
    }

    #[test]
    fn extended_args_and_arguments_between_load_and_call() {
        let t = opcode_table((3, 13, 0)).unwrap();
        let mut many = names();
        many.resize(300, String::new());
        many[299] = "far_lock".into();
        // far_lock.acquire(some_local): the argument load must not lose the call.
        let prog = [
            (Role::Global, 299 << 1),
            (Role::Attr, 2 << 1 | 1),
            (Role::Fast, 3),
            (Role::Call, 1),
        ];
        let (code, _) = assemble(t, &prog);
        let calls = lock_calls(t, &code, &many, code.len() as u64 / 2).unwrap().calls;
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].expr, Expr::Global("far_lock".into()));
    }

    #[test]
    fn hidden_or_foreign_bytes_give_up() {
        let t = opcode_table((3, 12, 0)).unwrap();
        for role in [Role::Opaque, Role::Invalid] {
            let Some(opcode) = t.ops.iter().position(|o| o.role == role) else {
                continue;
            };
            let code = [opcode as u8, 0, 0, 0];
            assert_eq!(lock_calls(t, &code, &names(), 2), None, "{role:?}");
        }
        // Truncated bytecode.
        assert_eq!(lock_calls(t, &[], &names(), 4), None);
        // Garbage never panics.
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let code: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = lock_calls(t, &code, &names(), 32);
            let _ = lock_calls(t, &code, &[], 40);
        }
    }
}
