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
//!   a futex word of its own thread, and record no owner.
//!
//! Each becomes an [`Unexamined`] part, with what to do instead.

use super::{ProcessView, ResourceKind, ThreadFindings};
use crate::graph::{Part, Unexamined};

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
    if let Some(module) = view.symbols.has_symbol_containing("parking_lot_core") {
        // Threads in a wait lockdump did not attribute (a bare futex), or whose frames name parking_lot.
        let waiters: Vec<String> = view
            .snapshot
            .threads
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let in_parking_lot = view.stacks.get(*i).is_some_and(|s| {
                    s.frames
                        .iter()
                        .any(|f| f.function.as_deref().is_some_and(|n| n.contains("parking_lot")))
                });
                let bare_futex = findings
                    .get(*i)
                    .and_then(|f| f.wait.as_ref())
                    .is_some_and(|w| w.resource.kind == ResourceKind::Futex);
                in_parking_lot || bare_futex
            })
            .map(|(_, t)| t.tid.to_string())
            .collect();
        if !waiters.is_empty() {
            let short = crate::runtimes::owners::module_file_name(&module).to_string();
            out.push(Unexamined {
                pid,
                part: Part::ParkingLot,
                why: format!(
                    "{short} uses the parking_lot crate, whose locks record no owner and queue waiters in its own hash \
                     table, which lockdump does not read; threads waiting where lockdump cannot tell on what: {} \
                     (parking_lot's `deadlock_detection` feature finds its cycles from inside the program)",
                    waiters.join(", ")
                ),
            });
        }
    }
    out
}
