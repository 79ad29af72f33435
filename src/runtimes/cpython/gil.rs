//! The GIL: who holds it and who waits for it.
//!
//! `struct _gil_runtime_state` records `locked` and `last_holder` (a
//! `PyThreadState*`); while `locked` is set, `last_holder` *is* the holder.
//! Threads that want the GIL sleep on its condvar `cond` (or briefly on its
//! `mutex`) inside `take_gil`, so a futex address inside either identifies a
//! GIL waiter without any symbol.

use super::frames::Walker;
use super::layout::{GilPlace, PTHREAD_COND_SIZE, PTHREAD_MUTEX_SIZE};
use super::CpythonError;

/// The state of one interpreter's GIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GilInfo {
    /// Address of the `_gil_runtime_state`.
    pub base: u64,
    pub locked: bool,
    /// `last_holder`: the `PyThreadState*` holding the GIL while `locked`.
    pub last_holder: u64,
}

/// What a futex address inside the GIL state means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilFutex {
    /// Waiting in `take_gil` (on `cond` or `mutex`).
    Take,
    /// The dropping thread waits on `switch_cond` for a taker (FORCE_SWITCHING).
    Handoff,
}

/// Read the GIL of `interp`. `Ok(None)` when there is no GIL to speak of (a
/// free-threaded build running with the GIL disabled, or not initialized).
pub fn read(walker: &Walker, runtime: u64, interp: u64) -> Result<Option<GilInfo>, CpythonError> {
    let g = &walker.layout.gil;
    let o = walker.obj;
    let base = match g.place {
        GilPlace::Runtime(off) => runtime + off,
        GilPlace::InterpPointer(off) => o.u64(interp + off)?,
    };
    if base == 0 {
        return Ok(None);
    }
    if let Some(enabled) = g.enabled {
        if o.mem.read_i32(base + enabled)? == 0 {
            return Ok(None);
        }
    }
    let locked = o.mem.read_i32(base + g.locked)?;
    if locked < 0 {
        return Ok(None); // -1: not created yet
    }
    Ok(Some(GilInfo {
        base,
        locked: locked > 0,
        last_holder: o.u64(base + g.last_holder)?,
    }))
}

/// Classify a futex address against the GIL's condvars and mutex.
pub fn classify(walker: &Walker, gil: &GilInfo, futex: u64) -> Option<GilFutex> {
    let g = &walker.layout.gil;
    let within = |off: u64, size: u64| (gil.base + off..gil.base + off + size).contains(&futex);
    if within(g.cond, PTHREAD_COND_SIZE) || within(g.mutex, PTHREAD_MUTEX_SIZE) {
        Some(GilFutex::Take)
    } else if within(g.switch_cond, PTHREAD_COND_SIZE) {
        Some(GilFutex::Handoff)
    } else {
        None
    }
}
