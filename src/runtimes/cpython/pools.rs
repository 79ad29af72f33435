//! `concurrent.futures.ThreadPoolExecutor` as the verdict needs it: which
//! threads are a pool's workers, which futures sit in its work queue, and
//! which threads wait for the result of one of its tasks.
//!
//! Everything is read from the objects the frames work on, not guessed from
//! names alone:
//! * a **worker** is a thread with a `_worker` frame of
//!   `concurrent/futures/thread.py`; its `executor_reference` local is a
//!   weak reference to the executor, and its `work_queue` local must be that
//!   executor's `_work_queue`. A `_WorkItem.run` frame above it says which
//!   future the worker is running (`self.future`).
//! * the **queue** is a `_queue.SimpleQueue` of `_WorkItem`s; each item's
//!   `future` attribute is the future of a task not yet taken by a worker.
//! * a **waiter** is a thread whose innermost frame outside threading.py is
//!   `Future.result` or `Future.exception` of `concurrent/futures/_base.py`
//!   (they wait in `self._condition.wait()`); `self` is the future, its
//!   `_state` says whether it can still be run.
//!
//! The 3.14 worker loop takes a `ctx` argument and its work items keep a
//! `task` instead of `fn, args, kwargs`; the fields read here are the same.

use std::collections::BTreeMap;

use super::frames::{PyFrame, PyThreadState, Walker};
use super::layout::{pool_objects, PoolObjectsLayout, SimpleQueueLayout};
use super::naming;
use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::{TaskPlace, TaskPool, TaskWait};

/// Most items read from one work queue (a pool with more queued tasks is
/// still recognized; futures beyond the bound count as not queued).
const MAX_QUEUED: u64 = 4096;

fn in_module(frame: &PyFrame, module: &str) -> bool {
    frame.code.filename.ends_with(module)
}

const THREAD_PY: &str = "concurrent/futures/thread.py";
const BASE_PY: &str = "concurrent/futures/_base.py";

/// A local of a frame, by name.
fn local(walker: &Walker, frame: &PyFrame, name: &str) -> Option<u64> {
    naming::frame_locals(walker, frame)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// One worker thread as found in its frames.
struct Worker {
    tid: Tid,
    executor: u64,
    work_queue: u64,
    /// The future of the work item it runs, if it runs one.
    running: Option<u64>,
}

fn worker_of(walker: &Walker, l: &PoolObjectsLayout, tid: Tid, t: &PyThreadState) -> Option<Worker> {
    let o = walker.obj;
    let k = t
        .frames
        .iter()
        .position(|f| f.code.qualname == "_worker" && in_module(f, THREAD_PY))?;
    let frame = &t.frames[k];
    let weak = local(walker, frame, "executor_reference")?;
    let ty = o.type_name(weak)?;
    if !(ty == "weakref" || ty.ends_with("ReferenceType")) {
        return None;
    }
    let executor = o.u64(weak + l.weakref_object).ok()?;
    if !super::objects::Objects::plausible(executor) || o.is_type(executor, "NoneType") {
        return None; // the executor was collected: the worker is on its way out
    }
    let work_queue = local(walker, frame, "work_queue")?;
    if o.attr(executor, "_work_queue") != Some(work_queue) {
        return None;
    }
    let running = t.frames[..k]
        .iter()
        .find(|f| f.code.qualname == "_WorkItem.run" && in_module(f, THREAD_PY))
        .and_then(|f| local(walker, f, "self"))
        .and_then(|item| o.attr(item, "future"));
    Some(Worker {
        tid,
        executor,
        work_queue,
        running,
    })
}

/// The future each pool worker is running (its `_WorkItem.run` frame's
/// `self.future`), by host TID: whoever awaits that future waits for it.
pub fn running_futures(walker: &Walker, threads: &[(Tid, &PyThreadState)]) -> Vec<(Tid, u64)> {
    let l = pool_objects(walker.layout.version, walker.layout.object.header);
    threads
        .iter()
        .filter_map(|&(tid, t)| worker_of(walker, &l, tid, t))
        .filter_map(|w| w.running.map(|f| (w.tid, f)))
        .collect()
}

/// The items of a `_queue.SimpleQueue`, oldest first (at most [`MAX_QUEUED`]).
fn queue_items(walker: &Walker, l: &PoolObjectsLayout, q: u64) -> Option<Vec<u64>> {
    let o = walker.obj;
    if !o.is_type(q, "_queue.SimpleQueue") {
        return None;
    }
    let read_i64 = |a: u64| o.mem.read_i64(a).ok();
    match l.simple_queue {
        SimpleQueueLayout::List { lst, lst_pos } => {
            let list = o.u64(q + lst).ok()?;
            if !o.is_type(list, "list") {
                return None;
            }
            let n = read_i64(list + l.list_size)?;
            let pos = read_i64(q + lst_pos)?;
            if n < 0 || pos < 0 || pos > n {
                return None;
            }
            let count = ((n - pos) as u64).min(MAX_QUEUED);
            let items = o.u64(list + l.list_items).ok()?;
            let raw = o.mem.read_vec(items + 8 * pos as u64, (count * 8) as usize).ok()?;
            Some(words(&raw))
        }
        SimpleQueueLayout::Ring {
            get_idx,
            items,
            items_cap,
            num_items,
        } => {
            let get = read_i64(q + get_idx)?;
            let cap = read_i64(q + items_cap)?;
            let n = read_i64(q + num_items)?;
            if cap < 0 || n < 0 || n > cap || get < 0 || (cap > 0 && get >= cap) {
                return None;
            }
            if n == 0 {
                return Some(Vec::new());
            }
            let base = o.u64(q + items).ok()?;
            let raw = o
                .mem
                .read_vec(base, (cap as u64 * 8).min(MAX_QUEUED * 8) as usize)
                .ok()?;
            let all = words(&raw);
            let count = (n as u64).min(MAX_QUEUED) as usize;
            (0..count)
                .map(|i| all.get((get as usize + i) % cap as usize).copied())
                .collect()
        }
    }
}

fn words(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

/// The future a thread waits for in `Future.result` / `Future.exception`
/// (innermost frame outside threading.py), with that frame.
pub fn awaited_future(walker: &Walker, t: &PyThreadState) -> Option<(u64, usize)> {
    let k = t
        .frames
        .iter()
        .position(|f| !naming::is_sync_library(&f.code.filename))?;
    let frame = &t.frames[k];
    if !(in_module(frame, BASE_PY) && matches!(frame.code.qualname.as_str(), "Future.result" | "Future.exception")) {
        return None;
    }
    // It must be waiting, not returning: Condition.wait runs above it.
    let run = t
        .frames
        .iter()
        .take_while(|f| naming::is_sync_library(&f.code.filename))
        .count();
    if !t.frames[..run].iter().any(|f| f.code.qualname == "Condition.wait") {
        return None;
    }
    Some((local(walker, frame, "self")?, k))
}

/// Every ThreadPoolExecutor with at least one live worker, its queue and the
/// threads waiting for its tasks. `threads` pairs host TIDs with thread states.
pub fn find(walker: &Walker, pid: Pid, threads: &[(Tid, &PyThreadState)]) -> Vec<TaskPool> {
    let o = walker.obj;
    let l = pool_objects(walker.layout.version, walker.layout.object.header);
    let workers: Vec<Worker> = threads
        .iter()
        .filter_map(|&(tid, t)| worker_of(walker, &l, tid, t))
        .collect();
    let mut by_executor: BTreeMap<u64, Vec<&Worker>> = BTreeMap::new();
    for w in &workers {
        by_executor.entry(w.executor).or_default().push(w);
    }
    // With the callers' frames only: inside Future.result the future is just `self`.
    let waiting: Vec<(Tid, PyThreadState, u64)> = threads
        .iter()
        .filter_map(|&(tid, t)| {
            let (f, k) = awaited_future(walker, t)?;
            let callers = PyThreadState {
                frames: t.frames[k + 1..].to_vec(),
                ..t.clone()
            };
            Some((tid, callers, f))
        })
        .collect();
    let mut pools = Vec::new();
    for (executor, ws) in by_executor {
        let queued = queue_items(walker, &l, ws[0].work_queue)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| o.attr(item, "future"))
            .collect::<Vec<u64>>();
        let mut waits = Vec::new();
        for (tid, t, future) in &waiting {
            let (tid, future) = (*tid, *future);
            let place = if let Some(position) = queued.iter().position(|&f| f == future) {
                TaskPlace::Queued { position }
            } else if let Some(w) = ws.iter().find(|w| w.running == Some(future)) {
                TaskPlace::RunBy { tid: w.tid }
            } else {
                continue;
            };
            let state = o
                .attr(future, "_state")
                .and_then(|s| o.str(s).ok())
                .unwrap_or_else(|| "?".into());
            waits.push(TaskWait {
                tid,
                future: Addr(future),
                future_name: naming::name_object(walker, t, future).filter(|n| n != "self"),
                state,
                place,
            });
        }
        let int = |name: &str| o.attr(executor, name).and_then(|v| o.int(v).ok());
        let started = o
            .attr(executor, "_threads")
            .filter(|&s| o.is_type(s, "set"))
            .and_then(|s| o.mem.read_i64(s + l.set_used).ok())
            .and_then(|n| u64::try_from(n).ok());
        let name = threads.iter().find_map(|(_, t)| {
            naming::name_object(walker, t, executor).filter(|n| n != "self" && n != "executor_reference")
        });
        let mut tids: Vec<Tid> = ws.iter().map(|w| w.tid).collect();
        tids.sort_unstable();
        pools.push(TaskPool {
            pid,
            address: Addr(executor),
            kind: o.type_name(executor).unwrap_or_else(|| "executor".into()),
            name,
            thread_name_prefix: o.attr(executor, "_thread_name_prefix").and_then(|s| o.str(s).ok()),
            workers: tids,
            max_workers: int("_max_workers").and_then(|v| u64::try_from(v).ok()),
            started_threads: started,
            queued: queued.into_iter().map(Addr).collect(),
            waits,
        });
    }
    pools
}
