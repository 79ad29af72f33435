//! Runtimes whose waits lockdump does not understand, detected so that a
//! verdict never says "no deadlock" about what it could not see.
//!
//! Detection reads what the process maps, never guesses:
//! - Go: the `.go.buildinfo` section every Go executable carries, or the
//!   runtime's own symbols (`runtime.main`, `runtime.gopark`). Goroutines are
//!   scheduled on a few OS threads; a goroutine blocked in `sync.Mutex.Lock`
//!   parks in Go's scheduler (`runtime.gopark`) and no OS thread waits for
//!   it, so lockdump's view of the threads says nothing about it.
//! - parking_lot (Rust): symbols of `parking_lot_core`. Its locks park
//!   waiters through a global hash table keyed by the lock's address, each on
//!   a futex word of its own thread; [`super::parking_lot`] reads the table.
//!   Threads asleep on a futex that nothing attributed (the table's symbol
//!   is missing, or a thread is not found parked in it) are not examined.
//!
//! Each becomes an [`Unexamined`] part, with what to do instead.

use super::{native, parking_lot, ProcessView, ResourceKind, ThreadFindings};
use super::{Part, Unexamined};

/// What this process runs that lockdump cannot examine.
pub fn detect(view: &ProcessView<'_>, findings: &[ThreadFindings]) -> Vec<Unexamined> {
    let pid = view.snapshot.pid;
    let mut out = Vec::new();
    let go = view
        .symbols
        .section(".go.buildinfo")
        .map(|_| "its .go.buildinfo section".to_string())
        .or_else(|| {
            ["runtime.main", "runtime.gopark"]
                .iter()
                .find(|s| view.symbols.symbol_address(s).is_some())
                .map(|s| format!("the symbol {s}"))
        });
    if let Some(evidence) = go {
        out.push(Unexamined {
            pid,
            part: Part::Go,
            why: format!(
                "this is a Go program ({evidence}); goroutines blocked on sync.Mutex or channels wait in Go's scheduler, \
                 not in OS threads, and lockdump does not read it: send the process SIGQUIT (Go prints every goroutine's \
                 stack) or use `dlv attach {pid}` (goroutines)"
            ),
        });
    }
    let parking_lot_module = view
        .symbols
        .has_symbol_containing("parking_lot_core")
        .map(|m| (m, false))
        .or_else(|| stripped_parking_lot(view, findings).map(|m| (m, true)));
    if let Some((module, stripped)) = parking_lot_module {
        // Threads asleep on a futex no analyzer attributed (std's park, a
        // glibc lock, parking_lot's own bucket locks and the threads found
        // parked in its hash table are attributed): what is left is unexplained.
        let waiters: Vec<String> = view
            .snapshot
            .threads
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                findings.get(*i).and_then(|f| f.wait.as_ref()).is_some_and(|w| {
                    w.resource.kind == ResourceKind::Futex && w.owner.evidence() == native::UNRECOGNIZED
                })
            })
            .map(|(_, t)| t.tid.to_string())
            .collect();
        if !waiters.is_empty() {
            let short = crate::runtimes::owners::module_file_name(&module).to_string();
            let table = if stripped {
                "its symbols are stripped (parking_lot_core's source paths in its .rodata name the crate): lockdump \
                 finds parking_lot_core's hash table (parking_lot_core::parking_lot::HASHTABLE), where parked threads \
                 record the lock they wait for, only through its symbol"
            } else if view.symbols.symbol_with_prefix(parking_lot::HASHTABLE_SYMBOL).is_some() {
                "lockdump read parking_lot_core's hash table but found no parked lock for them"
            } else {
                "lockdump found no symbol for parking_lot_core's hash table (parking_lot_core::parking_lot::HASHTABLE), where parked threads record the lock they wait for"
            };
            out.push(Unexamined {
                pid,
                part: Part::ParkingLot,
                why: format!(
                    "{short} uses the parking_lot crate, and threads sleep on futexes lockdump cannot attribute: {} \
                     ({table}; parking_lot's `deadlock_detection` feature finds its cycles from inside the program)",
                    waiters.join(", ")
                ),
            });
        }
    }
    out
}

/// A stripped executable (no symbol names parking_lot_core) in which a
/// thread sleeps the way parking_lot parks (`FUTEX_WAIT_PRIVATE` with 1) on
/// a futex nothing attributed, and whose `.rodata` holds parking_lot_core's
/// source paths (panic locations survive `strip`): the module's path.
fn stripped_parking_lot(view: &ProcessView<'_>, findings: &[ThreadFindings]) -> Option<String> {
    let parked_like = findings.iter().filter_map(|f| f.wait.as_ref()).any(|w| {
        w.resource.kind == ResourceKind::Futex
            && w.owner.evidence() == native::UNRECOGNIZED
            && w.how.ends_with(", FUTEX_WAIT_PRIVATE, 1)")
    });
    if !parked_like {
        return None;
    }
    let (addr, size) = view.symbols.section(".rodata")?;
    // Bounded: a large program's .rodata is read once, only in this case.
    let bytes = view.memory.read_vec(addr, size.min(64 << 20) as usize).ok()?;
    let needle = b"parking_lot_core";
    bytes
        .windows(needle.len())
        .any(|w| w == needle)
        .then(|| view.symbols.module_at(addr))
        .flatten()
}
