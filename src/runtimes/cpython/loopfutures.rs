//! A thread waiting for a `concurrent.futures.Future` that only an asyncio
//! event loop will resolve: the edge that closes a cycle across a thread and
//! a loop.
//!
//! `asyncio.run_coroutine_threadsafe(coro, loop)` returns a concurrent
//! future F and queues, with `loop.call_soon_threadsafe`, a callback that
//! starts the coroutine as a task on the loop and chains the task's result
//! into F. So a thread in `F.result()` waits for the loop's thread: until
//! the loop runs the callback, F sits in the closure of a handle in the
//! loop's `_ready` deque; after it, F's `_done_callbacks` hold a closure over
//! the task (`_chain_future`), whose `_loop` is the loop. If the loop's thread
//! itself waits for a lock that thread holds, neither moves again.
//!
//! The owner is *inferred*: another thread could in principle set F's result
//! by hand (the same way out docs/limits.md names for pool starvation).
//!
//! The loops are found from the threads running them (the `self` of a
//! `BaseEventLoop.run_forever` frame), so this needs no task graph and works
//! on every CPython lockdump reads (3.11+).

use super::frames::{PyFrame, PyThreadState, Walker};
use super::layout::deque_layout;
use super::naming;
use crate::ids::Tid;

/// Handles read from one loop's `_ready` deque.
const MAX_READY: usize = 4096;
/// Words of a handle searched for its callback (`asyncio.Handle` has 8 slots).
const HANDLE_WORDS: u64 = 10;

/// An event loop and the thread running it.
#[derive(Debug, Clone, Copy)]
pub struct RunningLoop {
    pub address: u64,
    pub tid: Tid,
}

/// Every loop some thread is running, from its `run_forever` frame.
pub fn running_loops(walker: &Walker, threads: &[(Tid, &PyThreadState)]) -> Vec<RunningLoop> {
    threads
        .iter()
        .filter_map(|&(tid, t)| {
            let f = t.frames.iter().find(|f| is_run_forever(f))?;
            let me = naming::local_value(walker, f, 0)?;
            Some(RunningLoop { address: me, tid })
        })
        .collect()
}

fn is_run_forever(f: &PyFrame) -> bool {
    f.code.qualname == "BaseEventLoop.run_forever" && f.code.filename.ends_with("asyncio/base_events.py")
}

/// Who will resolve a concurrent future: the loop (and its thread), and,
/// once the loop started the coroutine, the asyncio task whose result the
/// future will copy.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub run_by: RunningLoop,
    pub task: Option<u64>,
    pub evidence: String,
}

/// The loop that will resolve the concurrent future `future`, if one will,
/// and how that was seen.
pub fn resolved_by(walker: &Walker, future: u64, loops: &[RunningLoop]) -> Option<Resolver> {
    for l in loops {
        if queued_on(walker, l.address, future) {
            return Some(Resolver {
                run_by: *l,
                task: None,
                evidence: format!(
                    "a callback over this future is queued on the event loop {:#x} (its _ready deque), which thread \
                     {} runs: run_coroutine_threadsafe hands the coroutine to that loop",
                    l.address, l.tid
                ),
            });
        }
    }
    let o = walker.obj;
    let callbacks = o.attr(future, "_done_callbacks")?;
    for cb in list_items(walker, callbacks) {
        for source in closure_values(walker, cb) {
            // An asyncio future or task: its loop is the C `fut_loop`, the first field.
            let Some(ty) = o.type_name(source) else { continue };
            if !(ty.ends_with("Task") || ty.ends_with("Future")) {
                continue;
            }
            let Ok(lp) = o.u64(source + walker.layout.object.header) else {
                continue;
            };
            if let Some(l) = loops.iter().find(|l| l.address == lp) {
                return Some(Resolver {
                    run_by: *l,
                    task: ty.ends_with("Task").then_some(source),
                    evidence: format!(
                        "the future is chained to {ty} {source:#x} of the event loop {:#x} (a done-callback closes over \
                         it), which thread {} runs",
                        l.address, l.tid
                    ),
                });
            }
        }
    }
    None
}

/// A handle in the loop's `_ready` deque has a callback whose closure (or
/// bound `self`) is `future`.
fn queued_on(walker: &Walker, lp: u64, future: u64) -> bool {
    let o = walker.obj;
    let Some(ready) = o.attr(lp, "_ready") else {
        return false;
    };
    deque_items(walker, ready).into_iter().any(|handle| {
        let h = walker.layout.object.header;
        let Ok(raw) = o.mem.read_vec(handle + h, (HANDLE_WORDS * 8) as usize) else {
            return false;
        };
        raw.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .filter(|&w| w != 0 && w % 8 == 0)
            .any(|cb| {
                closure_values(walker, cb).contains(&future)
                    || (o.is_type(cb, "method") && super::holds::bound_self(walker, cb) == Some(future))
            })
    })
}

/// The values of a Python function's closure cells.
pub(super) fn closure_values(walker: &Walker, func: u64) -> Vec<u64> {
    let o = walker.obj;
    if !o.is_type(func, "function") {
        return Vec::new();
    }
    let Ok(closure) = o.u64(func + walker.layout.misc.function_closure) else {
        return Vec::new();
    };
    if closure == 0 || !o.is_type(closure, "tuple") {
        return Vec::new();
    }
    o.tuple(closure)
        .unwrap_or_default()
        .into_iter()
        .filter(|&c| o.is_type(c, "cell"))
        .filter_map(|c| o.u64(c + walker.layout.misc.cell_ref).ok())
        .filter(|&v| v != 0)
        .collect()
}

/// The items of a `list` (at most [`MAX_READY`]).
pub(super) fn list_items(walker: &Walker, list: u64) -> Vec<u64> {
    let o = walker.obj;
    if !o.is_type(list, "list") {
        return Vec::new();
    }
    let h = walker.layout.object.header;
    let (Ok(n), Ok(items)) = (o.mem.read_i64(list + h), o.u64(list + h + 8)) else {
        return Vec::new();
    };
    let n = (n.max(0) as usize).min(MAX_READY);
    o.mem
        .read_vec(items, n * 8)
        .map(|raw| {
            raw.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()
        })
        .unwrap_or_default()
}

/// The items of a `collections.deque`, left to right (at most [`MAX_READY`]).
fn deque_items(walker: &Walker, deque: u64) -> Vec<u64> {
    let o = walker.obj;
    if !o.is_type(deque, "collections.deque") {
        return Vec::new();
    }
    let d = deque_layout(walker.layout.object.header);
    let (Ok(n), Ok(mut block), Ok(mut index)) = (
        o.mem.read_i64(deque + d.size),
        o.u64(deque + d.leftblock),
        o.mem.read_i64(deque + d.leftindex),
    ) else {
        return Vec::new();
    };
    let n = (n.max(0) as usize).min(MAX_READY);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        if !(0..d.block_len as i64).contains(&index) || block == 0 {
            break;
        }
        match o.u64(block + d.block_data + 8 * index as u64) {
            Ok(v) => out.push(v),
            Err(_) => break,
        }
        index += 1;
        if index == d.block_len as i64 {
            index = 0;
            block = match o.u64(block + d.block_right) {
                Ok(b) => b,
                Err(_) => break,
            };
        }
    }
    out
}
