//! asyncio tasks: who awaits whom, and which asyncio locks they hold.
//!
//! CPython 3.14 made the task graph readable from outside: every pending C
//! `_asyncio.Task` is linked into a list in the thread state of the thread
//! that created it (tasks of threads that exited move to the interpreter's
//! list), and the `_asyncio` module publishes the offsets of those lists and
//! of the task fields in its `.AsyncioDebug` section
//! ([`layout::asyncio_layout`]). lockdump reads:
//!
//! * per thread: the running loop and the task list;
//! * per task: its name, its coroutine stack (each coroutine suspended in
//!   `await` leads to the object it awaits, down to the innermost one), what
//!   the innermost coroutine waits on (another task, an `asyncio.Lock`,
//!   `Event`, `Queue`, a sleep, a future), and who awaits the task
//!   (`fut_awaited_by`, maintained by CPython for exactly this: `await task`,
//!   `gather`, `TaskGroup`, `shield`, `wait`);
//! * the asyncio locks each task holds: an `async with lock:` block keeps
//!   the lock's `__aexit__` on the coroutine frame's value stack while the
//!   body runs (as [`super::holds`] reads `with` blocks). asyncio.Lock records
//!   no owner, so such a holder is *inferred*.
//!
//! Before 3.14 there is no such table: a thread running an event loop is
//! reported with a note that its tasks were not examined.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::frames::{PyFrame, Walker};
use super::holds::{function_qualname, live_stack};
use super::layout::{self, AsyncioLayout, GenLayout};
use super::naming;
use crate::ids::{Addr, Tid};
use crate::runtimes::{Confidence, SymbolLookup};
use crate::stacks::Frame;

/// Upper bounds on what is walked: a corrupt list must not loop forever.
pub const MAX_TASKS: usize = 65_536;
/// Coroutines followed down one task's await chain.
pub const MAX_CHAIN: usize = 1024;
/// Awaiters read from one `fut_awaited_by` set.
pub const MAX_AWAITERS: usize = 4096;

/// The asyncio state of one process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AsyncioState {
    /// Threads that run an event loop or own pending tasks.
    pub threads: Vec<LoopThread>,
    /// Pending tasks whose creating thread has exited (the interpreter's list).
    pub orphan_tasks: Vec<Task>,
    /// Why the task graph is incomplete or missing, if it is.
    pub not_examined: Option<String>,
    /// Waits between tasks and threads (filled by the thread analysis): a
    /// task awaiting a pool thread's work, a thread waiting for a task's result.
    pub links: Vec<CrossWait>,
}

/// One end of a [`CrossWait`], within the process: a task or a thread.
/// The wait-for graph makes it a `graph::Node` (with the PID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum LinkEnd {
    /// A task, by address.
    Task(Addr),
    /// A thread, by host TID.
    Thread(Tid),
}

/// `from` waits for `to`, across the task and thread graphs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrossWait {
    pub from: LinkEnd,
    pub to: LinkEnd,
    pub confidence: Confidence,
    pub evidence: String,
}

impl AsyncioState {
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.threads.iter().flat_map(|t| &t.tasks).chain(&self.orphan_tasks)
    }
    pub fn task(&self, address: Addr) -> Option<&Task> {
        self.tasks().find(|t| t.address == address)
    }
    /// The thread whose list holds the task (its loop runs it), if any.
    pub fn thread_of(&self, address: Addr) -> Option<Tid> {
        self.threads
            .iter()
            .find(|t| t.tasks.iter().any(|k| k.address == address))
            .map(|t| t.tid)
    }
}

/// One thread with an event loop or tasks.
#[derive(Debug, Clone, Serialize)]
pub struct LoopThread {
    /// Host TID.
    pub tid: Tid,
    /// The running event loop (`asyncio_running_loop`), if any.
    pub loop_address: Option<Addr>,
    pub loop_type: Option<String>,
    /// The task whose step is executing right now (NULL while the loop waits for events).
    pub running_task: Option<Addr>,
    /// The coroutine the loop is stepping right now, from the thread's
    /// Python frames (the frame `Handle._run` called): `main (app.py:35)`.
    /// Read on every version, so before 3.14 too, where tasks are not.
    pub running_coroutine: Option<String>,
    /// Pending tasks created on this thread, in creation order.
    pub tasks: Vec<Task>,
    /// The list ended early (corrupt link, or more than [`MAX_TASKS`]).
    pub list_note: Option<String>,
}

/// One asyncio task.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub address: Addr,
    /// `Task.get_name()`: the given name, or `Task-N`.
    pub name: String,
    /// Coroutine frames, innermost first (kind Python).
    pub frames: Vec<Frame>,
    /// What the innermost coroutine is suspended on.
    pub awaits: Awaits,
    /// The tasks and futures awaiting this task (`fut_awaited_by`), sorted.
    pub awaited_by: Vec<Addr>,
    /// asyncio locks this task holds in an open `async with` block.
    pub holds: Vec<AsyncHold>,
    /// A timeout that ends this task's wait (`asyncio.wait_for` with a
    /// timeout, an `async with asyncio.timeout(...)` with a deadline), in words.
    pub timeout: Option<String>,
    /// Why the coroutine chain was cut short, if it was.
    pub chain_note: Option<String>,
}

/// What a task's innermost coroutine awaits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Awaits {
    /// Another task's completion (`await task`).
    Task { task: Addr },
    /// Futures built over tasks: `gather`, `TaskGroup`, `wait`; the awaited
    /// tasks name this task in their `awaited_by`. `chained_from`: the
    /// `concurrent.futures.Future` whose result it copies
    /// (`run_in_executor`, `wrap_future`).
    Future {
        future: Addr,
        type_name: String,
        chained_from: Option<Addr>,
    },
    /// An asyncio synchronization primitive's `acquire`/`wait`/`get`/`put`.
    Primitive {
        primitive: Primitive,
        address: Addr,
        name: Option<String>,
        /// `Lock.acquire`, `Queue.get`, ...
        how: String,
    },
    /// `asyncio.sleep(seconds)`: a timer ends it.
    Sleep { seconds: Option<f64> },
    /// Running (the loop is executing its step) or about to start.
    NotSuspended { why: String },
    /// Something else (a pure-Python awaitable, an I/O future).
    Other { what: String },
}

/// The asyncio primitives lockdump tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Primitive {
    Lock,
    Event,
    Condition,
    Semaphore,
    Queue,
}

impl Primitive {
    /// Only a lock is held by one task; the others have no owner by design.
    pub fn has_owner(self) -> bool {
        self == Primitive::Lock
    }
    pub fn type_name(self) -> &'static str {
        match self {
            Primitive::Lock => "asyncio.Lock",
            Primitive::Event => "asyncio.Event",
            Primitive::Condition => "asyncio.Condition",
            Primitive::Semaphore => "asyncio.Semaphore",
            Primitive::Queue => "asyncio.Queue",
        }
    }
}

/// An asyncio lock a task holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsyncHold {
    pub lock: Addr,
    pub name: Option<String>,
    pub confidence: Confidence,
    pub evidence: String,
}

/// Where the `.AsyncioDebug` table is, if the process has one.
pub fn find_layout(symbols: &dyn SymbolLookup, walker: &Walker) -> Result<Option<AsyncioLayout>, String> {
    let Some((addr, size)) = symbols.section(layout::ASYNCIO_DEBUG_SECTION) else {
        return Ok(None);
    };
    let n = layout::ASYNCIO_DEBUG_FIELDS.len();
    if (size as usize) < n * 8 {
        return Err(format!(
            "{} is {size} bytes, expected {}",
            layout::ASYNCIO_DEBUG_SECTION,
            n * 8
        ));
    }
    let raw = walker
        .obj
        .mem
        .read_vec(addr, n * 8)
        .map_err(|e| format!("{}: {e}", layout::ASYNCIO_DEBUG_SECTION))?;
    let words: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    layout::asyncio_layout(&words, walker.layout).map(Some)
}

/// Read every thread's tasks. `threads`: (thread state address, host TID).
pub fn read(walker: &Walker, al: &AsyncioLayout, interp: u64, threads: &[(u64, Tid)]) -> AsyncioState {
    let Some(gen) = walker.layout.generator else {
        return AsyncioState {
            not_examined: Some("this CPython's coroutine layout is not known".into()),
            ..Default::default()
        };
    };
    let reader = TaskReader { walker, al, gen };
    let mut state = AsyncioState::default();
    let mut budget = MAX_TASKS;
    for &(tstate, tid) in threads {
        let o = walker.obj;
        let loop_address = o
            .u64(tstate + al.tstate_running_loop)
            .ok()
            .map(|p| p & !3)
            .filter(|&p| p != 0);
        let running_task = loop_address
            .and_then(|_| o.u64(tstate + al.tstate_running_task).ok())
            .map(|p| p & !3)
            .filter(|&p| p != 0);
        let (tasks, list_note) = reader.list(tstate + al.tstate_tasks_head, &mut budget);
        if loop_address.is_none() && tasks.is_empty() {
            continue;
        }
        state.threads.push(LoopThread {
            tid,
            loop_address: loop_address.map(Addr),
            loop_type: loop_address.and_then(|l| o.type_name(l)),
            running_task: running_task.map(Addr),
            running_coroutine: None,
            tasks,
            list_note,
        });
    }
    let (orphans, note) = reader.list(interp + al.interp_tasks_head, &mut budget);
    state.orphan_tasks = orphans;
    if let Some(n) = note {
        state.not_examined = Some(format!("the interpreter's task list: {n}"));
    }
    drop_impossible_holds(&mut state);
    state
}

struct TaskReader<'a> {
    walker: &'a Walker<'a>,
    al: &'a AsyncioLayout,
    gen: GenLayout,
}

impl TaskReader<'_> {
    /// The tasks of one `llist` (its head is a sentinel node).
    fn list(&self, head: u64, budget: &mut usize) -> (Vec<Task>, Option<String>) {
        let o = self.walker.obj;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut node = match o.u64(head) {
            Ok(n) => n,
            Err(e) => return (out, Some(format!("list head at {head:#x}: {e}"))),
        };
        while node != head {
            if node == 0 || !seen.insert(node) {
                return (out, Some(format!("task list broken at {node:#x}")));
            }
            if *budget == 0 {
                return (
                    out,
                    Some(format!("more than {MAX_TASKS} tasks; the rest were not read")),
                );
            }
            *budget -= 1;
            let Some(task_addr) = node.checked_sub(self.al.task_node) else {
                return (out, Some(format!("task node {node:#x} is implausible")));
            };
            match self.task(task_addr) {
                Some(t) => out.push(t),
                None => return (out, Some(format!("task at {task_addr:#x} could not be read"))),
            }
            node = match o.u64(node) {
                Ok(n) => n,
                Err(e) => return (out, Some(format!("task node {node:#x}: {e}"))),
            };
        }
        (out, None)
    }

    fn task(&self, addr: u64) -> Option<Task> {
        let o = self.walker.obj;
        let al = self.al;
        let name = self.name(o.u64(addr + al.task_name).ok()?)?;
        let awaited_by = self.awaited_by(addr);
        let coro = o.u64(addr + al.task_coro).ok()? & !3;
        let (chain, last, chain_note) = self.chain(coro);
        let awaits = self.classify(&chain, last, addr);
        Some(Task {
            address: Addr(addr),
            name,
            frames: chain.iter().rev().map(PyFrame::to_frame).collect(),
            awaits,
            awaited_by,
            holds: async_holds(self.walker, &chain),
            timeout: timeout_in(self.walker, &chain),
            chain_note,
        })
    }

    /// `Task.get_name()`: a `str`, or the counter `N` of `Task-N` (an `int`).
    fn name(&self, obj: u64) -> Option<String> {
        let o = self.walker.obj;
        let obj = obj & !3;
        match o.type_name(obj)?.as_str() {
            "str" => o.str(obj).ok(),
            "int" => o.int(obj).ok().map(|n| format!("Task-{n}")),
            other => Some(format!("<{other} name>")),
        }
    }

    /// `fut_awaited_by`: one awaiter, or a set of them.
    fn awaited_by(&self, fut: u64) -> Vec<Addr> {
        let o = self.walker.obj;
        let al = self.al;
        let Ok(p) = o.u64(fut + al.awaited_by) else {
            return Vec::new();
        };
        let p = p & !3;
        if p == 0 {
            return Vec::new();
        }
        let is_set = o.mem.read_u8(fut + al.awaited_by_is_set).unwrap_or(0) != 0;
        let mut out = if is_set { self.set_members(p) } else { vec![p] };
        out.sort_unstable();
        out.dedup();
        out.into_iter().map(Addr).collect()
    }

    fn set_members(&self, set: u64) -> Vec<u64> {
        let o = self.walker.obj;
        let Some(sl) = self.walker.layout.set else {
            return Vec::new();
        };
        let (Ok(table), Ok(mask)) = (o.u64(set + sl.table), o.u64(set + sl.mask)) else {
            return Vec::new();
        };
        let slots = (mask as usize + 1).min(MAX_AWAITERS * 4);
        let Ok(raw) = o.mem.read_vec(table, slots * 16) else {
            return Vec::new();
        };
        raw.chunks_exact(16)
            .map(|e| u64::from_le_bytes(e[..8].try_into().unwrap_or([0; 8])))
            .filter(|&k| k != 0 && o.type_name(k).is_some_and(|t| t != "str"))
            .take(MAX_AWAITERS)
            .collect()
    }

    /// Follow the coroutines from `coro` down through each `await`: the
    /// frames (outermost first, as followed), the innermost awaited object
    /// that is not itself a coroutine (0 if none), and why the walk stopped
    /// early, if it did.
    fn chain(&self, coro: u64) -> (Vec<PyFrame>, u64, Option<String>) {
        let o = self.walker.obj;
        let g = &self.gen;
        let mut frames = Vec::new();
        let mut obj = coro;
        for _ in 0..MAX_CHAIN {
            if obj == 0 {
                return (frames, 0, None);
            }
            let Some(ty) = o.type_name(obj) else {
                return (
                    frames,
                    0,
                    Some(format!("object {obj:#x} in the await chain is unreadable")),
                );
            };
            // `async_generator_asend` / `_athrow` wrap the generator right after the header.
            let coro_obj = match ty.as_str() {
                "coroutine" | "generator" | "async_generator" => obj,
                "async_generator_asend" | "async_generator_athrow" => {
                    match o.u64(obj + self.walker.layout.object.header) {
                        Ok(g) => g & !3,
                        Err(_) => return (frames, obj, None),
                    }
                }
                _ => return (frames, obj, None),
            };
            let Ok(state) = o.mem.read_u8(coro_obj + g.frame_state).map(|b| b as i8) else {
                return (frames, 0, Some(format!("coroutine {coro_obj:#x} is unreadable")));
            };
            if state == g.cleared {
                return (frames, 0, None);
            }
            let iframe = coro_obj + g.iframe;
            match self.walker.frame(iframe) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return (frames, 0, None),
                Err(e) => return (frames, 0, Some(format!("coroutine frame {iframe:#x}: {e}"))),
            }
            let awaiting = state == g.suspended_yield_from || Some(state) == g.suspended_yield_from_locked;
            if !awaiting {
                return (frames, 0, None);
            }
            let Some(spoff) = self.walker.layout.frame.stackpointer else {
                return (frames, 0, None);
            };
            let sp = match o.u64(iframe + spoff) {
                Ok(sp) => sp & !3,
                Err(e) => return (frames, 0, Some(format!("coroutine frame {iframe:#x}: {e}"))),
            };
            let Some(slot) = sp.checked_sub(8 * g.awaited_slot).filter(|_| sp != 0) else {
                return (frames, 0, None);
            };
            obj = match o.u64(slot) {
                Ok(v) => v & !3,
                Err(e) => return (frames, 0, Some(format!("awaited object of {iframe:#x}: {e}"))),
            };
        }
        (
            frames,
            0,
            Some(format!("more than {MAX_CHAIN} coroutines in one await chain")),
        )
    }

    /// What the innermost coroutine waits on.
    fn classify(&self, chain: &[PyFrame], last: u64, task: u64) -> Awaits {
        let o = self.walker.obj;
        let Some(inner) = chain.last() else {
            return Awaits::NotSuspended {
                why: "its coroutine has not started or has finished".into(),
            };
        };
        // The primitive's method on top of the chain: `self` is the primitive.
        if let Some((primitive, how)) = primitive_method(&inner.code.qualname, &inner.code.filename) {
            if let Some(me) = naming::local_value(self.walker, inner, 0) {
                let name = naming::name_object_in(self.walker, chain.iter().rev(), me);
                return Awaits::Primitive {
                    primitive,
                    address: Addr(me),
                    name,
                    how: how.into(),
                };
            }
        }
        if inner.code.qualname == "sleep" && inner.code.filename.ends_with("asyncio/tasks.py") {
            let seconds = naming::frame_locals(self.walker, inner)
                .into_iter()
                .find(|(n, _)| n == "delay")
                .and_then(|(_, v)| o.number(v))
                .filter(|s| s.is_finite());
            return Awaits::Sleep { seconds };
        }
        if last == 0 {
            return Awaits::NotSuspended {
                why: format!("{} is not suspended in an await", inner.code.qualname),
            };
        }
        // `await fut` suspends on the future's iterator; a task is a future.
        let fut = match o.type_name(last).as_deref() {
            Some("_asyncio.FutureIter") => o.u64(last + self.al.future_iter_future).map(|f| f & !3).unwrap_or(0),
            _ => last,
        };
        let waiter = o.u64(task + self.al.task_fut_waiter).map(|f| f & !3).unwrap_or(0);
        let fut = if fut == 0 { waiter } else { fut };
        if fut == 0 {
            return Awaits::Other {
                what: o.type_name(last).unwrap_or_else(|| format!("{last:#x}")),
            };
        }
        let is_task = o.mem.read_u8(fut + self.al.is_task).unwrap_or(0) != 0
            && o.type_name(fut).is_some_and(|t| t.ends_with("Task"));
        if is_task {
            return Awaits::Task { task: Addr(fut) };
        }
        match o.type_name(fut) {
            Some(t) if t.ends_with("Future") => Awaits::Future {
                future: Addr(fut),
                type_name: t,
                chained_from: self.chained_from(fut).map(Addr),
            },
            Some(t) => Awaits::Other { what: t },
            None => Awaits::Other {
                what: format!("{fut:#x}"),
            },
        }
    }
}

impl TaskReader<'_> {
    /// The `concurrent.futures.Future` an asyncio future copies its result
    /// from: `_chain_future` gives the asyncio future a done-callback whose
    /// closure holds the concurrent one (`source`).
    fn chained_from(&self, fut: u64) -> Option<u64> {
        let o = self.walker.obj;
        let mut callbacks = Vec::new();
        if let Ok(cb) = o.u64(fut + self.al.fut_callback0) {
            callbacks.push(cb & !3);
        }
        if let Ok(list) = o.u64(fut + self.al.fut_callbacks) {
            for item in super::loopfutures::list_items(self.walker, list & !3) {
                match o.tuple(item) {
                    Ok(pair) => callbacks.extend(pair.first().copied()),
                    Err(_) => callbacks.push(item),
                }
            }
        }
        callbacks
            .into_iter()
            .filter(|&cb| cb != 0)
            .flat_map(|cb| super::loopfutures::closure_values(self.walker, cb))
            .find(|&v| o.type_name(v).as_deref() == Some("Future") && o.attr(v, "_condition").is_some())
    }
}

/// asyncio's own waiting methods (asyncio/locks.py, asyncio/queues.py).
fn primitive_method(qualname: &str, file: &str) -> Option<(Primitive, &'static str)> {
    let base = file.rsplit('/').take(2).collect::<Vec<_>>();
    let in_asyncio = base.get(1) == Some(&"asyncio");
    if !in_asyncio {
        return None;
    }
    Some(match (base[0], qualname) {
        ("locks.py", "Lock.acquire") => (Primitive::Lock, "asyncio.Lock.acquire"),
        ("locks.py", "Event.wait") => (Primitive::Event, "asyncio.Event.wait"),
        ("locks.py", "Condition.wait") => (Primitive::Condition, "asyncio.Condition.wait"),
        ("locks.py", "Condition.wait_for") => (Primitive::Condition, "asyncio.Condition.wait_for"),
        ("locks.py", "Semaphore.acquire") => (Primitive::Semaphore, "asyncio.Semaphore.acquire"),
        ("queues.py", "Queue.get") => (Primitive::Queue, "asyncio.Queue.get"),
        ("queues.py", "Queue.put") => (Primitive::Queue, "asyncio.Queue.put"),
        ("queues.py", "Queue.join") => (Primitive::Queue, "asyncio.Queue.join"),
        _ => return None,
    })
}

/// asyncio locks held by open `async with` blocks in a task's coroutine
/// frames: the block keeps `_ContextManagerMixin.__aexit__` (3.14: the
/// function, with the lock in the next slot; a bound method before) on the
/// frame's value stack below the handler depth while its body runs.
fn async_holds(walker: &Walker, chain: &[PyFrame]) -> Vec<AsyncHold> {
    let mut out: Vec<AsyncHold> = Vec::new();
    for frame in chain {
        let stack = live_stack(walker, frame);
        for (j, &v) in stack.iter().enumerate() {
            let Some(target) = aexit_target(walker, &stack, j, v) else {
                continue;
            };
            // `async with cond:` over an asyncio.Condition holds `cond._lock`.
            let lock = match walker.obj.type_name(target).as_deref() {
                Some("Condition") => match walker.obj.attr(target, "_lock") {
                    Some(l) => l,
                    None => continue,
                },
                Some("Lock") => target,
                _ => continue,
            };
            if out.iter().any(|h| h.lock == Addr(lock)) {
                continue;
            }
            let line = frame.line.map(|l| format!(":{l}")).unwrap_or_default();
            out.push(AsyncHold {
                lock: Addr(lock),
                name: naming::name_object_in(walker, chain.iter().rev(), lock),
                confidence: Confidence::Inferred,
                evidence: format!(
                    "`async with` block open in {} ({}{line}): the lock's __aexit__ is live on the coroutine \
                     frame's value stack (slot {j}); asyncio.Lock records no owner",
                    frame.code.qualname, frame.code.filename
                ),
            });
        }
    }
    out
}

/// A timeout that will end the wait of a task with these coroutine frames:
/// `asyncio.wait_for` called with a timeout, or an open `async with
/// asyncio.timeout(...)` block that has a deadline.
fn timeout_in(walker: &Walker, chain: &[PyFrame]) -> Option<String> {
    let o = walker.obj;
    for frame in chain {
        if frame.code.qualname == "wait_for" && frame.code.filename.ends_with("asyncio/tasks.py") {
            let timeout = naming::frame_locals(walker, frame)
                .into_iter()
                .find(|(n, _)| n == "timeout")
                .map(|(_, v)| v);
            if let Some(v) = timeout.filter(|&v| o.type_name(v).is_some_and(|t| t != "NoneType")) {
                return Some(match o.number(v) {
                    Some(s) => format!("inside asyncio.wait_for(..., timeout={s})"),
                    None => "inside asyncio.wait_for with a timeout".into(),
                });
            }
        }
        let stack = live_stack(walker, frame);
        for (j, &v) in stack.iter().enumerate() {
            let Some(t) = aexit_target_of(walker, &stack, j, v, "Timeout.__aexit__") else {
                continue;
            };
            let when = o.attr(t, "_when");
            if when.is_some_and(|w| o.type_name(w).is_some_and(|ty| ty != "NoneType")) {
                return Some(format!(
                    "inside `async with asyncio.timeout(...)` in {} (line {})",
                    frame.code.qualname,
                    frame.line.unwrap_or(0)
                ));
            }
        }
    }
    None
}

/// If value-stack slot `j` is the saved `__aexit__` of an `async with`
/// block over an asyncio lock, the object the block is over.
fn aexit_target(walker: &Walker, stack: &[u64], j: usize, v: u64) -> Option<u64> {
    aexit_target_of(walker, stack, j, v, "_ContextManagerMixin.__aexit__")
}

/// If value-stack slot `j` is a saved `__aexit__` with this qualname (3.14+:
/// the function, with the object in the next slot; a bound method before),
/// the object the `async with` block is over.
fn aexit_target_of(walker: &Walker, stack: &[u64], j: usize, v: u64, qualname: &str) -> Option<u64> {
    let ty = walker.obj.type_name(v)?;
    if !matches!(ty.as_str(), "function" | "method") {
        return None;
    }
    if function_qualname(walker, v)? != qualname {
        return None;
    }
    if ty == "method" {
        super::holds::bound_self(walker, v)
    } else {
        stack.get(j + 1).copied()
    }
}

/// An asyncio.Lock is held by one task at a time: a lock that several
/// tasks' frames seem to hold (a stale slot, a lock object reused) has no
/// reliable holder, so none of them is kept.
fn drop_impossible_holds(state: &mut AsyncioState) {
    let mut holders: HashMap<Addr, usize> = HashMap::new();
    for t in state.tasks() {
        for h in &t.holds {
            *holders.entry(h.lock).or_default() += 1;
        }
    }
    let shared: HashSet<Addr> = holders.into_iter().filter(|&(_, n)| n > 1).map(|(l, _)| l).collect();
    if shared.is_empty() {
        return;
    }
    for t in state
        .threads
        .iter_mut()
        .flat_map(|t| t.tasks.iter_mut())
        .chain(state.orphan_tasks.iter_mut())
    {
        t.holds.retain(|h| !shared.contains(&h.lock));
    }
}

/// The coroutine an event loop's thread is stepping: the Python frame that
/// `Handle._run` (asyncio/events.py) called, directly or through the C task
/// step (frames are innermost first). `None` while the loop waits for events.
pub fn running_coroutine(frames: &[PyFrame]) -> Option<String> {
    let k = frames
        .iter()
        .position(|f| f.code.qualname == "Handle._run" && f.code.filename.ends_with("asyncio/events.py"))?;
    let f = frames.get(k.checked_sub(1)?)?;
    let file = f.code.filename.rsplit('/').next().unwrap_or(&f.code.filename);
    Some(match f.line {
        Some(l) => format!("{} ({file}:{l})", f.code.qualname),
        None => format!("{} ({file})", f.code.qualname),
    })
}

/// The frames of a thread run an event loop (`BaseEventLoop.run_forever`).
pub fn runs_event_loop(frames: &[PyFrame]) -> bool {
    frames
        .iter()
        .any(|f| f.code.qualname == "BaseEventLoop.run_forever" && f.code.filename.ends_with("asyncio/base_events.py"))
}
