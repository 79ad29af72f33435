//! What a Python thread holds, from its frames.
//!
//! A `with lock:` block keeps the lock's `__exit__` on the frame's value
//! stack while the block runs (3.11-3.13: the bound builtin method; 3.14:
//! the unbound descriptor with the lock above it). Only slots below the
//! depth the exception table's handler keeps at the current instruction
//! count: they belong to enclosing blocks, while slots above are the
//! instruction's temporaries (a `with` whose `__enter__` is still blocked).
//! `with cond:` over a `threading.Condition` holds the condition's `_lock`.

use super::frames::{with_statement_line, PyFrame, PyThreadState, Walker};
use crate::runtimes::{Confidence, ResourceKind};

/// The kind of a lock object, by type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockKind {
    Lock,
    RLock,
}

impl LockKind {
    pub(super) fn of(type_name: &str) -> Option<Self> {
        match type_name {
            "_thread.lock" => Some(LockKind::Lock),
            "_thread.RLock" => Some(LockKind::RLock),
            _ => None,
        }
    }
    pub(super) fn resource_kind(self) -> ResourceKind {
        match self {
            LockKind::Lock => ResourceKind::PyLock,
            LockKind::RLock => ResourceKind::PyRLock,
        }
    }
    pub(super) fn acquire(self) -> &'static str {
        match self {
            LockKind::Lock => "threading.Lock.acquire",
            LockKind::RLock => "threading.RLock.acquire",
        }
    }
}

/// A lock held in a `with` block (or, for RLocks, by its owner field).
#[derive(Debug, Clone)]
pub(super) struct HeldLock {
    pub(super) addr: u64,
    pub(super) kind: LockKind,
    /// Index into the thread's Python frames.
    pub(super) frame: usize,
    pub(super) evidence: String,
    /// Held through a `with cond:` block of this Condition.
    pub(super) via_condition: Option<u64>,
    /// Exact for `with` blocks and RLock owner fields; inferred for an
    /// explicit `acquire()` seen in the bytecode ([`super::acquires`]).
    pub(super) confidence: Confidence,
}

/// The live value-stack slots of a frame, in stack order (tag bits removed).
pub(super) fn live_stack(walker: &Walker, frame: &PyFrame) -> Vec<u64> {
    let depth = frame.live_depth() as usize;
    if depth == 0 {
        return Vec::new();
    }
    let mask = !walker.layout.frame.stackref_tag_mask;
    let base = frame.slot_addr(frame.code.nlocalsplus);
    match walker.obj.mem.read_vec(base, depth * 8) {
        Ok(raw) => raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) & mask)
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub(super) fn as_lock(walker: &Walker, obj: u64) -> Option<(u64, LockKind)> {
    if obj == 0 {
        return None;
    }
    LockKind::of(&walker.obj.type_name(obj)?).map(|k| (obj, k))
}

/// `m_self` of a builtin bound method, `im_self` of a bound Python method.
pub(super) fn bound_self(walker: &Walker, obj: u64) -> Option<u64> {
    let o = walker.obj;
    let m = &walker.layout.misc;
    match o.type_name(obj)?.as_str() {
        "builtin_function_or_method" => o.u64(obj + m.cfunc_self).ok(),
        "method" => o.u64(obj + m.method_self).ok(),
        _ => None,
    }
}

/// `ml_name` of a `PyMethodDef*`.
fn method_def_name(walker: &Walker, def: u64) -> Option<String> {
    let name = walker.obj.u64(def).ok()?;
    walker.obj.mem.read_cstring(name, 64).ok()
}

/// Name of the C method a builtin bound method / method descriptor wraps.
fn c_method_name(walker: &Walker, obj: u64) -> Option<String> {
    let o = walker.obj;
    let m = &walker.layout.misc;
    let def = match o.type_name(obj)?.as_str() {
        "builtin_function_or_method" => o.u64(obj + m.cfunc_ml).ok()?,
        "method_descriptor" => o.u64(obj + m.descr_method).ok()?,
        _ => return None,
    };
    method_def_name(walker, def)
}

/// `__qualname__` of a Python function, or of a bound method's function.
pub(super) fn function_qualname(walker: &Walker, obj: u64) -> Option<String> {
    let o = walker.obj;
    let m = &walker.layout.misc;
    let func = match o.type_name(obj)?.as_str() {
        "method" => o.u64(obj + m.method_func).ok()?,
        "function" => obj,
        _ => return None,
    };
    if !o.is_type(func, "function") {
        return None;
    }
    o.str(o.u64(func + m.function_qualname).ok()?).ok()
}

/// Locks held by open `with` blocks in the thread's frames.
pub(super) fn with_holds(walker: &Walker, state: &PyThreadState) -> Vec<HeldLock> {
    let mut out: Vec<HeldLock> = Vec::new();
    for (fi, frame) in state.frames.iter().enumerate() {
        let stack = live_stack(walker, frame);
        for (j, &v) in stack.iter().enumerate() {
            let Some(held) = with_exit_target(walker, &stack, j, v) else {
                continue;
            };
            if out.iter().any(|h| h.addr == held.0) {
                continue;
            }
            let (addr, kind, via_condition, kept) = held;
            let line = frame.line.map(|l| format!(":{l}")).unwrap_or_default();
            let entered = u32::try_from(j + kept)
                .ok()
                .and_then(|depth| with_statement_line(frame, depth))
                .map(|l| format!(" from line {l}"))
                .unwrap_or_default();
            let evidence = format!(
                "`with` block{entered} open in {} ({}{line}): the lock's __exit__ is live on the frame's \
                 value stack (slot {j})",
                frame.code.qualname, frame.code.filename
            );
            out.push(HeldLock {
                addr,
                kind,
                frame: fi,
                evidence,
                via_condition,
                confidence: Confidence::Exact,
            });
        }
    }
    out
}

/// If value-stack slot `j` (value `v`) is the saved `__exit__` of a `with`
/// block over a lock (or over a Condition, meaning its `_lock`), that lock,
/// and how many slots from `j` on the block keeps (its handler keeps `j +
/// that`): 1 for a bound `__exit__`, 2 for 3.14's `__exit__` + object.
fn with_exit_target(walker: &Walker, stack: &[u64], j: usize, v: u64) -> Option<(u64, LockKind, Option<u64>, usize)> {
    let o = walker.obj;
    let ty = o.type_name(v)?;
    match ty.as_str() {
        // 3.11-3.13: the bound `lock.__exit__`.
        "builtin_function_or_method" => {
            if c_method_name(walker, v)? != "__exit__" {
                return None;
            }
            let (l, k) = as_lock(walker, bound_self(walker, v)?)?;
            Some((l, k, None, 1))
        }
        // 3.14: `__exit__` (unbound) followed by the lock itself.
        "method_descriptor" => {
            if c_method_name(walker, v)? != "__exit__" {
                return None;
            }
            let (l, k) = as_lock(walker, *stack.get(j + 1)?)?;
            Some((l, k, None, 2))
        }
        // `with cond:` over a threading.Condition holds `cond._lock`.
        "method" | "function" => {
            if function_qualname(walker, v)? != "Condition.__exit__" {
                return None;
            }
            let (cond, kept) = if ty == "method" {
                (bound_self(walker, v)?, 1)
            } else {
                (*stack.get(j + 1)?, 2)
            };
            let (l, k) = as_lock(walker, o.attr(cond, "_lock")?)?;
            Some((l, k, Some(cond), kept))
        }
        _ => None,
    }
}
