//! Is the SIGINT handler CPython's own?
//!
//! CPython installs a C handler for SIGINT at startup; the Python-level
//! handler it runs is `signal.default_int_handler`, which only raises
//! KeyboardInterrupt (the process ends). A program that calls
//! `signal.signal(SIGINT, f)` replaces it with Python code that may set an
//! Event or release a lock: a way out of any wait. The kernel's `SigCgt`
//! cannot tell the two apart; the interpreter's handler table can.
//!
//! The table is `Handlers[Py_NSIG]` (3.11: a static in signalmodule.c;
//! 3.12+: `_PyRuntime.signals.handlers`), 16-byte entries `{int tripped;
//! PyObject *func}`, in the writable data of the module that holds
//! `_PyRuntime`. No version table gives its offset, so it is found by its
//! shape: a word equal to `default_int_handler` (read from the `_signal`
//! module's dict) at `func` of entry 2 (SIGINT), with every entry 1..64
//! holding an object (CPython sets each to SIG_DFL's, SIG_IGN's object,
//! `None` or a handler) and small `tripped` flags. Anything else, and
//! lockdump does not claim the handler is the default one.

use super::frames::Walker;
use super::naming;
use crate::runtimes::ProcessView;

/// Linux's `Py_NSIG` is 65: entries 0..64.
const ENTRIES: u64 = 65;
const ENTRY: u64 = 16;
const SIGINT: u64 = 2;
/// Upper bound on the bytes of writable data searched.
const MAX_SCAN: u64 = 64 << 20;

/// True when the SIGINT entry of CPython's handler table is proven to hold
/// `signal.default_int_handler`.
pub fn sigint_is_default(view: &ProcessView, walker: &Walker, runtime: u64) -> bool {
    let Some(handler) = default_int_handler(walker, runtime) else {
        return false;
    };
    let mem = view.memory;
    let Some(home) = view.snapshot.mapping(runtime) else {
        return false;
    };
    // The writable mappings of that file, and the anonymous one after its
    // last (.bss beyond the file).
    let maps = &view.snapshot.maps;
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for (k, m) in maps.iter().enumerate() {
        if m.path == home.path && m.writable {
            regions.push((m.start, m.end));
            if let Some(next) = maps.get(k + 1) {
                if next.path.is_empty() && next.writable && next.start == m.end {
                    regions.push((next.start, next.end));
                }
            }
        }
    }
    let mut budget = MAX_SCAN;
    for (start, end) in regions {
        let len = (end - start).min(budget);
        budget -= len;
        let Ok(bytes) = mem.read_vec(start, len as usize) else {
            continue;
        };
        let word = |off: u64| -> Option<u64> {
            let o = usize::try_from(off).ok()?;
            Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?))
        };
        for off in (0..len.saturating_sub(8)).step_by(8) {
            if word(off) != Some(handler) {
                continue;
            }
            // `off` is entry 2's func: the table starts 2 entries + 8 bytes earlier.
            let Some(table) = off.checked_sub(SIGINT * ENTRY + 8) else {
                continue;
            };
            let shaped = (1..ENTRIES).all(|i| {
                let func = word(table + i * ENTRY + 8).unwrap_or(0);
                let tripped = word(table + i * ENTRY).unwrap_or(u64::MAX) & 0xffff_ffff;
                func != 0 && func % 8 == 0 && tripped <= 1
            });
            if shaped {
                return true;
            }
        }
        if budget == 0 {
            break;
        }
    }
    false
}

/// `_signal.default_int_handler` (the `signal` module re-exports it).
fn default_int_handler(walker: &Walker, runtime: u64) -> Option<u64> {
    let interp = *walker.interpreters(runtime).ok()?.last()?;
    ["_signal", "signal"].iter().find_map(|m| {
        let md = naming::module_dict(walker, interp, m)?;
        walker.obj.dict_get_str(md, "default_int_handler").ok()?
    })
}
