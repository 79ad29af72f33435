//! What each Python thread waits on and holds.
//!
//! Evidence, strongest first:
//! * **Waits** are identified by the futex the thread sleeps on. A
//!   `_thread.lock` / `_thread.RLock` of 3.11-3.13 waits on its own `sem_t`
//!   (`lock_lock`); 3.13+ parked waiters sleep on a semaphore in a
//!   `wait_entry` on their own stack whose `addr` field (just before it)
//!   names the `PyMutex` / `PyEvent` waited for. The lock object is found
//!   among the objects the innermost frames are working on (locals and
//!   value-stack slots, bound methods unwrapped) and only accepted when its
//!   semaphore or mutex matches that futex. GIL waiters sleep on the GIL's
//!   condvar. Library waits (Condition, Event, Semaphore, Barrier, Queue,
//!   Thread.join) are named by the Python functions on top of the stack.
//! * **Holds** ([`super::holds`]): open `with` blocks, proven by the frame's
//!   value stack and exception table. An RLock records its owner's thread
//!   ident. A plain `acquire()` leaves no trace in the lock; the bytecode the
//!   frames executed shows it ([`super::acquires`]), which makes an
//!   *inferred* hold when the lock is locked and exactly one thread's code
//!   took it without releasing it.

use std::collections::{HashMap, HashSet};

use super::acquires::explicit_locks;
use super::asyncio::{self, AsyncioState, CrossWait, LinkEnd};
use super::frames::{PyFrame, PyThreadState, Walker};
use super::gil::{self, GilFutex, GilInfo};
use super::holds::{as_lock, bound_self, with_holds, HeldLock, LockKind};
use super::layout::{LockLayout, RLockLayout, PYMUTEX_LOCKED};
use super::naming::{self, is_sync_library, ThreadObject};
use super::{stopcopy, CpythonError, GilState, PythonProcess, PythonThread};
use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::{Confidence, Hold, Owner, ProcessView, Resource, ResourceKind, ThreadFindings, Wait};
use crate::stacks::{Frame, FrameKind};

/// How many innermost frames are searched for the lock being acquired.
const CANDIDATE_FRAMES: usize = 2;

/// Library functions a blocked thread can sit in, and what they wait on.
/// Matched against `co_qualname` of frames in threading.py / queue.py.
const LIBRARY_WAITS: &[(&str, ResourceKind)] = &[
    ("Condition.wait", ResourceKind::PyCondition),
    ("Condition.wait_for", ResourceKind::PyCondition),
    ("Event.wait", ResourceKind::PyEvent),
    ("Semaphore.acquire", ResourceKind::PySemaphore),
    ("Barrier.wait", ResourceKind::Barrier),
    ("Queue.get", ResourceKind::PyQueue),
    ("Queue.put", ResourceKind::PyQueue),
    ("Queue.join", ResourceKind::PyQueue),
    ("Thread._wait_for_tstate_lock", ResourceKind::Thread),
    ("Thread.join", ResourceKind::Thread),
];

/// One Python thread during analysis.
struct Analyzed {
    state: PyThreadState,
    host_tid: Tid,
    futex: Option<u64>,
    /// The native stack (when the caller unwound one) is inside `take_gil`:
    /// a GIL waiter caught between two of its timed condvar waits.
    in_take_gil: bool,
}

/// Run the whole CPython analysis for one process.
pub fn analyze(view: &ProcessView, walker: &Walker, runtime: u64) -> Result<PythonProcess, CpythonError> {
    let layout = walker.layout;
    let mut threads: Vec<Analyzed> = Vec::new();
    let mut thread_objects: HashMap<u64, ThreadObject> = HashMap::new();
    let mut gils: Vec<(u64, GilInfo)> = Vec::new();
    for interp in walker.interpreters(runtime)? {
        // A thread state that cannot be read is left out; the others still count.
        for tstate in walker.thread_states(interp).unwrap_or_default() {
            let Ok(state) = walker.thread(interp, tstate) else {
                continue;
            };
            let Some(host_tid) = view.snapshot.host_tid(state.native_id) else {
                continue; // a thread state whose OS thread is gone (or not started)
            };
            let Some(index) = view.snapshot.threads.iter().position(|t| t.tid == host_tid) else {
                continue;
            };
            let in_take_gil = view.stacks.get(index).is_some_and(|s| taking_gil(&s.frames));
            threads.push(Analyzed {
                futex: futex_wait_address(view, index),
                state,
                host_tid,
                in_take_gil,
            });
        }
        // A thread between its start and threading._active is in _limbo.
        for (ident, t) in naming::threading_limbo(walker, interp) {
            thread_objects.entry(ident).or_insert(t);
        }
        thread_objects.extend(naming::threading_active(walker, interp));
        // (Only a live process can be read again: a core is one instant.)
        if let (true, Some(live)) = (naming::active_in_flux(walker, interp), view.snapshot.live()) {
            // Read again from the live process, where the change has
            // finished; only entries that are provably the same thread
            // (ident and TID) are taken.
            let live_mem = live.memory();
            let live_obj = super::objects::Objects::new(&live_mem, layout);
            let live = Walker::new(&live_obj);
            let registry = naming::threading_active(&live, interp);
            for t in &threads {
                if thread_objects.contains_key(&t.state.ident) {
                    continue;
                }
                if let Some(o) = naming::verified_thread(&registry, &live, t.state.ident, t.state.native_id) {
                    thread_objects.insert(t.state.ident, o);
                }
            }
        }
        if let Ok(Some(g)) = gil::read(walker, runtime, interp) {
            gils.push((interp, g));
        }
    }

    let mut asyncio = read_asyncio(view, walker, runtime, &threads);
    let ident_to_tid: HashMap<u64, Tid> = threads.iter().map(|t| (t.state.ident, t.host_tid)).collect();
    let tstate_to_tid: HashMap<u64, Tid> = threads.iter().map(|t| (t.state.addr, t.host_tid)).collect();

    // Holds first: owners of waits are looked up among them. A `with`
    // block only proves a hold if the lock agrees: a Lock that is not locked
    // is held by nobody, an RLock by its recorded owner only. (A thread woken
    // in Condition.wait that waits for the GIL still has its caller's `with
    // cond:` open, but wait() released the lock.)
    let mut held: Vec<Vec<HeldLock>> = threads
        .iter()
        .map(|t| {
            let mut h = with_holds(walker, &t.state);
            h.retain(|l| lock_agrees(walker, l, t.state.ident));
            h
        })
        .collect();
    let (contested, acquiring) = add_explicit_holds(walker, &threads, &mut held);

    // Waits.
    let mut findings: Vec<ThreadFindings> = vec![ThreadFindings::default(); threads.len()];
    let mut condition_waits: Vec<Option<u64>> = vec![None; threads.len()];
    for (i, t) in threads.iter().enumerate() {
        let ctx = WaitContext {
            walker,
            view,
            gils: &gils,
            tstate_to_tid: &tstate_to_tid,
            ident_to_tid: &ident_to_tid,
            thread_objects: &thread_objects,
            held: &held,
            contested: &contested,
            acquiring: &acquiring,
            threads: &threads,
        };
        let (wait, blocked_in, cond) = classify_wait(&ctx, t);
        findings[i].wait = wait;
        findings[i].blocked_in = blocked_in;
        condition_waits[i] = cond;
    }

    add_semlock_waits(walker, view, &threads, &ident_to_tid, &mut findings);

    // A thread waiting in Condition.wait has released the condition's lock,
    // even though its caller's `with cond:` block is still open.
    for (i, h) in held.iter_mut().enumerate() {
        if let Some(cond) = condition_waits[i] {
            h.retain(|l| l.via_condition != Some(cond));
        }
    }

    // RLock owners hold their RLock even without a visible `with` block.
    for f in &findings {
        let Some(w) = &f.wait else { continue };
        if w.resource.kind != ResourceKind::PyRLock {
            continue;
        }
        let Some(owner) = w.owner.exact_thread() else {
            continue;
        };
        let Some(j) = threads.iter().position(|t| t.host_tid == owner.tid) else {
            continue;
        };
        if !held[j].iter().any(|l| l.addr == w.resource.address.get()) {
            held[j].push(HeldLock {
                addr: w.resource.address.get(),
                kind: LockKind::RLock,
                frame: usize::MAX,
                evidence: w.owner.evidence().to_string(),
                via_condition: None,
                confidence: Confidence::Exact,
            });
        }
    }

    // Holds into findings, with names.
    let pid = view.snapshot.pid;
    for (i, t) in threads.iter().enumerate() {
        for l in &held[i] {
            let name = naming::name_object(walker, &t.state, l.addr);
            findings[i].holds.push(Hold {
                resource: Resource {
                    kind: l.kind.resource_kind(),
                    address: Addr(l.addr),
                    pid,
                    name,
                    shared_key: None,
                },
                confidence: l.confidence,
                evidence: l.evidence.clone(),
                site_frame: (l.frame != usize::MAX).then_some(l.frame),
            });
        }
    }

    // The GIL state is read from the running process, after the threads
    // were let go: by then it may have changed hands. Drop holders the
    // capture contradicts, before anything relies on them.
    distrust_stale_gil_holders(&threads, &mut findings, &mut gils);

    // The GIL (main interpreter's; subinterpreters with their own GIL are reported through waits only).
    let gil_state = gils.first().map(|(_, g)| GilState {
        holder_tid: g.locked.then(|| tstate_to_tid.get(&g.last_holder).copied()).flatten(),
        locked: g.locked,
        waiters: threads
            .iter()
            .filter(|t| t.in_take_gil || t.futex.and_then(|f| gil::classify(walker, g, f)) == Some(GilFutex::Take))
            .map(|t| t.host_tid)
            .collect(),
    });
    let gil_holders: HashSet<u64> = gils
        .iter()
        .filter(|(_, g)| g.locked)
        .map(|(_, g)| g.last_holder)
        .collect();
    for (i, t) in threads.iter().enumerate() {
        if gil_holders.contains(&t.state.addr) {
            let g = gils
                .iter()
                .find(|(_, g)| g.last_holder == t.state.addr)
                .map(|(_, g)| g.base);
            findings[i].holds.push(Hold {
                resource: gil_resource(pid, g.unwrap_or(0)),
                confidence: Confidence::Exact,
                evidence: "GIL locked with last_holder = this thread's PyThreadState".into(),
                site_frame: None,
            });
        }
    }

    // Thread pools, from the threads whose Python stacks are of the stop.
    let copy = &view.snapshot.runtime_copy;
    let of_the_stop: Vec<(Tid, &PyThreadState)> = threads
        .iter()
        .filter(|t| !copy.made || copy.complete_tids.contains(&t.host_tid))
        .map(|t| (t.host_tid, &t.state))
        .collect();
    let pools = super::pools::find(walker, pid, &of_the_stop);
    add_loop_future_waits(walker, pid, &of_the_stop, &mut findings, &threads, &mut asyncio);

    let out_threads = threads
        .into_iter()
        .zip(findings)
        .map(|(t, f)| {
            let name = thread_objects
                .get(&t.state.ident)
                .and_then(|o| o.name.clone())
                .or_else(|| naming::name_from_bootstrap(walker, &t.state));
            let holds_gil = gil_holders.contains(&t.state.addr);
            let copy = &view.snapshot.runtime_copy;
            let unread = copy.made && !copy.complete_tids.contains(&t.host_tid);
            let stack_note = unread.then(|| {
                stopcopy::not_reached(
                    copy.incomplete
                        .as_deref()
                        .unwrap_or("its thread state was not among those copied during the stop"),
                )
            });
            let name_note = name.is_none().then(|| {
                let q: Vec<&str> = t.state.frames.iter().map(|f| f.code.qualname.as_str()).collect();
                naming::unnamed_because(&q).to_string()
            });
            let mut pt = python_thread(t, name, f, holds_gil);
            if stack_note.is_some() {
                // Read after the threads ran on: not evidence of the stop.
                pt.frames.clear();
                pt.eval_call.clear();
                pt.findings = ThreadFindings::default();
                pt.name = None;
            }
            pt.stack_note = stack_note;
            pt.name_note = if pt.stack_note.is_some() { None } else { name_note };
            pt
        })
        .collect();

    Ok(PythonProcess {
        version: layout.version,
        free_threaded: layout.free_threaded,
        threads: out_threads,
        gil: gil_state,
        runtime_address: runtime,
        sigint_default: None,
        pools,
        asyncio,
    })
}

/// Threads in `sem_wait` on a multiprocessing lock's semaphore
/// ([`super::semlocks`]): the wait gets the lock's Python name and, when
/// the SemLock records one in this process, its owner (exact), who holds it.
fn add_semlock_waits(
    walker: &Walker,
    view: &ProcessView,
    threads: &[Analyzed],
    ident_to_tid: &HashMap<u64, Tid>,
    findings: &mut [ThreadFindings],
) {
    let pid = view.snapshot.pid;
    let waiting: Vec<(usize, u64)> = threads
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.futex.filter(|_| findings[i].wait.is_none()).map(|f| (i, f)))
        .collect();
    if waiting.is_empty() {
        return;
    }
    let all_frames = || threads.iter().flat_map(|t| &t.state.frames);
    let semlocks = super::semlocks::visible(walker, all_frames());
    let resource_of = |lock: &super::semlocks::SemLock, name: Option<String>| {
        let kind = if lock.is_lock() {
            ResourceKind::PyMpLock
        } else {
            ResourceKind::Semaphore
        };
        // The Python name first: the native one (a DWARF path, a symbol)
        // is looked up only without it.
        crate::runtimes::owners::resource_named(view, kind, lock.handle, name)
    };
    // Every lock held here, waited on here or not: a thread of another
    // process may wait for it (a lock shared with a child process), and
    // `inspect` matches the two through the shared mapping.
    let mut holders: HashMap<u64, (Tid, String)> = HashMap::new();
    let mut stale: HashMap<u64, Tid> = HashMap::new();
    for lock in semlocks.values() {
        let Some(ident) = lock.holder_ident() else { continue };
        let Some(&tid) = ident_to_tid.get(&ident) else { continue };
        let Some(j) = threads.iter().position(|o| o.host_tid == tid) else {
            continue;
        };
        // The SemLock is read after the threads were let go: a holder the
        // stop caught waiting for this very lock has taken it since (a
        // thread waiting for a Lock or RLock does not hold it). Not a hold.
        if threads[j].futex == Some(lock.handle) {
            stale.insert(lock.handle, tid);
            continue;
        }
        let evidence = format!(
            "{}'s SemLock: count = {}, last_tid = {ident:#x} (thread {tid})",
            lock.what(),
            lock.count
        );
        let name = naming::name_object(walker, &threads[j].state, lock.object)
            .or_else(|| naming::name_object_in(walker, all_frames(), lock.object));
        findings[j].holds.push(Hold {
            resource: resource_of(lock, name),
            confidence: Confidence::Exact,
            evidence: evidence.clone(),
            site_frame: None,
        });
        holders.insert(lock.handle, (tid, evidence));
    }
    for (i, sem) in waiting {
        let t = &threads[i];
        let Some(lock) = semlocks.get(&sem) else {
            continue;
        };
        // The waiter's own frames name the lock best.
        let name = naming::name_object(walker, &t.state, lock.object)
            .or_else(|| naming::name_object_in(walker, all_frames(), lock.object));
        let what = lock.what();
        let owner = match (lock.holder_ident(), holders.get(&sem)) {
            (_, Some((tid, evidence))) => Owner::held_by(pid, *tid, Confidence::Exact, evidence.clone()),
            (Some(_), None) if stale.contains_key(&sem) => Owner::unknown(format!(
                "{what}'s SemLock names thread {}, which the stop caught waiting for it: read after the stop, it \
                 changed since",
                stale[&sem]
            )),
            (Some(ident), None) => Owner::unknown(format!(
                "{what}'s SemLock: count = {}, last_tid = {ident:#x}, which is no thread of this process now",
                lock.count
            )),
            (None, _) if lock.count == 0 => Owner::unknown(format!(
                "{what}'s SemLock: count = 0 here: not held in this process (held by another process sharing it)"
            )),
            (None, _) => Owner::unknown(format!(
                "{what} with {} holders: a semaphore has no single owner",
                lock.count
            )),
        };
        // The program's frame: past multiprocessing's own (SemLock.__enter__).
        let site = t
            .state
            .frames
            .iter()
            .position(|f| !f.code.filename.contains("/multiprocessing/"));
        findings[i].wait = Some(Wait {
            resource: resource_of(lock, name),
            owner,
            how: format!("{what}.acquire"),
            site_frame: site,
            ends: crate::runtimes::Ends::WITH_CALL,
        });
    }
}

/// A thread in `concurrent.futures.Future.result()` on a pending future
/// that only an event loop will resolve ([`super::loopfutures`]) waits for
/// that loop's thread: its wait becomes an (inferred) edge to it.
fn add_loop_future_waits(
    walker: &Walker,
    pid: Pid,
    of_the_stop: &[(Tid, &PyThreadState)],
    findings: &mut [ThreadFindings],
    threads: &[Analyzed],
    asyncio: &mut Option<AsyncioState>,
) {
    link_tasks_to_pool_workers(walker, of_the_stop, asyncio);
    let loops = super::loopfutures::running_loops(walker, of_the_stop);
    if loops.is_empty() {
        return;
    }
    for &(tid, state) in of_the_stop {
        let Some((future, k)) = super::pools::awaited_future(walker, state) else {
            continue;
        };
        let o = walker.obj;
        let pending = o
            .attr(future, "_state")
            .and_then(|s| o.str(s).ok())
            .is_some_and(|s| s == "PENDING" || s == "RUNNING");
        if !pending {
            continue;
        }
        let Some(resolver) = super::loopfutures::resolved_by(walker, future, &loops) else {
            continue;
        };
        let (lp, evidence) = (resolver.run_by, resolver.evidence.clone());
        if let (Some(task), Some(a)) = (resolver.task, asyncio.as_mut()) {
            a.links.push(CrossWait {
                from: LinkEnd::Thread(tid),
                to: LinkEnd::Task(Addr(task)),
                confidence: Confidence::Inferred,
                evidence: format!("waits in Future.result() on {future:#x}: {evidence}"),
            });
        }
        if lp.tid == tid {
            continue;
        }
        let Some(i) = threads.iter().position(|t| t.host_tid == tid) else {
            continue;
        };
        let callers = PyThreadState {
            frames: state.frames[k + 1..].to_vec(),
            ..state.clone()
        };
        let site_frame = findings[i].wait.as_ref().and_then(|w| w.site_frame).or(Some(k + 1));
        findings[i].wait = Some(Wait {
            resource: Resource {
                kind: ResourceKind::PyFuture,
                address: Addr(future),
                pid,
                name: naming::name_object(walker, &callers, future).filter(|n| n != "self"),
                shared_key: None,
            },
            owner: Owner::held_by(pid, lp.tid, Confidence::Inferred, evidence),
            how: "concurrent.futures.Future.result (resolved by an event loop)".into(),
            site_frame,
            ends: crate::runtimes::Ends::WITH_CALL,
        });
    }
}

/// A task awaiting an asyncio future chained from a concurrent future that
/// a pool worker runs (`loop.run_in_executor`) waits for that worker.
fn link_tasks_to_pool_workers(
    walker: &Walker,
    of_the_stop: &[(Tid, &PyThreadState)],
    asyncio: &mut Option<AsyncioState>,
) {
    let Some(a) = asyncio.as_mut() else { return };
    let running = super::pools::running_futures(walker, of_the_stop);
    if running.is_empty() {
        return;
    }
    let mut links = Vec::new();
    for t in a.tasks() {
        let asyncio::Awaits::Future {
            future,
            chained_from: Some(cf),
            ..
        } = &t.awaits
        else {
            continue;
        };
        if let Some(&(tid, _)) = running.iter().find(|(_, f)| Addr(*f) == *cf) {
            links.push(CrossWait {
                from: LinkEnd::Task(t.address),
                to: LinkEnd::Thread(tid),
                confidence: Confidence::Exact,
                evidence: format!(
                    "awaits asyncio future {future:#x}, which copies the result of concurrent future {cf:#x} \
                     (a done-callback closes over it), the work item pool thread {tid} runs (its _WorkItem.run frame)"
                ),
            });
        }
    }
    a.links.extend(links);
}

/// The asyncio tasks of the main interpreter ([`super::asyncio`]); `None`
/// when no thread runs an event loop and no task is pending. Without the
/// `.AsyncioDebug` table (before 3.14, or a build without `_asyncio`) a
/// thread running a loop gives a state that says its tasks were not examined.
fn read_asyncio(view: &ProcessView, walker: &Walker, runtime: u64, threads: &[Analyzed]) -> Option<AsyncioState> {
    let interp = walker.interpreters(runtime).ok()?.first().copied()?;
    let loop_tids: Vec<Tid> = threads
        .iter()
        .filter(|t| asyncio::runs_event_loop(&t.state.frames))
        .map(|t| t.host_tid)
        .collect();
    // Each loop thread's loop and running coroutine, from its frames (every version).
    let of_threads: Vec<(Tid, &PyThreadState)> = threads.iter().map(|t| (t.host_tid, &t.state)).collect();
    let loops = super::loopfutures::running_loops(walker, &of_threads);
    let loop_threads = || -> Vec<asyncio::LoopThread> {
        threads
            .iter()
            .filter(|t| loop_tids.contains(&t.host_tid))
            .map(|t| {
                let address = loops.iter().find(|l| l.tid == t.host_tid).map(|l| l.address);
                asyncio::LoopThread {
                    tid: t.host_tid,
                    loop_address: address.map(Addr),
                    loop_type: address.and_then(|a| walker.obj.type_name(a)),
                    running_task: None,
                    running_coroutine: asyncio::running_coroutine(&t.state.frames),
                    tasks: Vec::new(),
                    list_note: None,
                }
            })
            .collect()
    };
    let unexamined = |why: String| {
        (!loop_tids.is_empty()).then(|| AsyncioState {
            threads: loop_threads(),
            orphan_tasks: Vec::new(),
            not_examined: Some(why),
            links: Vec::new(),
        })
    };
    let v = walker.layout.version;
    if v.1 < 14 {
        return unexamined(format!(
            "the asyncio tasks of the event loop in thread {} were not examined: CPython {}.{} keeps no task \
             graph readable from outside (3.14 and later do)",
            loop_tids.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "),
            v.0,
            v.1
        ));
    }
    let al = match asyncio::find_layout(view.symbols, walker) {
        Ok(Some(al)) => al,
        Ok(None) => {
            return unexamined(format!(
                "the asyncio tasks were not examined: no {} section was found in the modules mapped (the `_asyncio` \
                 C module is not loaded; pure-Python tasks are not readable)",
                super::layout::ASYNCIO_DEBUG_SECTION
            ))
        }
        Err(e) => return unexamined(format!("the asyncio tasks were not examined: {e}")),
    };
    let pairs: Vec<(u64, Tid)> = threads.iter().map(|t| (t.state.addr, t.host_tid)).collect();
    let mut state = asyncio::read(walker, &al, interp, &pairs);
    for lt in &mut state.threads {
        if let Some(t) = threads.iter().find(|t| t.host_tid == lt.tid) {
            lt.running_coroutine = asyncio::running_coroutine(&t.state.frames);
        }
    }
    (!state.threads.is_empty() || !state.orphan_tasks.is_empty() || state.not_examined.is_some()).then_some(state)
}

/// Add the inferred holds of explicit `acquire()` calls
/// ([`super::acquires`]) to `held`: for plain locks that are locked, that no
/// `with` block already explains, and that exactly one thread's code took.
/// Returns the locks several threads' code claims, with those threads (their
/// owner stays unknown), and per thread the lock its innermost frame is
/// calling `acquire()` on.
fn add_explicit_holds(
    walker: &Walker,
    threads: &[Analyzed],
    held: &mut [Vec<HeldLock>],
) -> (HashMap<u64, Vec<Tid>>, Vec<Option<u64>>) {
    let (claims, acquiring): (Vec<Vec<HeldLock>>, Vec<Option<u64>>) = threads
        .iter()
        .map(|t| {
            let e = explicit_locks(walker, &t.state);
            (e.holds, e.acquiring)
        })
        .unzip();
    let mut claimants: HashMap<u64, Vec<Tid>> = HashMap::new();
    for (i, c) in claims.iter().enumerate() {
        for l in c {
            claimants.entry(l.addr).or_default().push(threads[i].host_tid);
        }
    }
    let explained: HashSet<u64> = held.iter().flatten().map(|l| l.addr).collect();
    let mut contested = HashMap::new();
    for (i, c) in claims.into_iter().enumerate() {
        for l in c {
            if explained.contains(&l.addr) || lock_is_locked(walker, l.addr) != Some(true) {
                continue;
            }
            match claimants[&l.addr].as_slice() {
                [_] => held[i].push(l),
                several => {
                    contested.insert(l.addr, several.to_vec());
                }
            }
        }
    }
    (contested, acquiring)
}

/// Whether a `_thread.lock` is locked now (`None`: unreadable). Public for
/// `--watch`, which reads it at every sample.
pub fn lock_is_locked(walker: &Walker, addr: u64) -> Option<bool> {
    let mem = walker.obj.mem;
    match walker.layout.lock {
        LockLayout::Mutex { mutex } => mem
            .read_u8(addr.checked_add(mutex)?)
            .ok()
            .map(|b| b & PYMUTEX_LOCKED != 0),
        LockLayout::Semaphore { locked, .. } => mem.read_u8(addr.checked_add(locked)?).ok().map(|b| b != 0),
    }
}

/// A `_thread.RLock`'s state now: (held, owner's `threading.get_ident()`).
/// `None`: unreadable.
pub fn rlock_state(walker: &Walker, addr: u64) -> Option<(bool, u64)> {
    let mem = walker.obj.mem;
    let (owner, count) = match walker.layout.rlock {
        RLockLayout::Semaphore { owner, count, .. } | RLockLayout::Recursive { owner, count, .. } => (owner, count),
    };
    let owner = mem.read_u64(addr.checked_add(owner)?).ok()?;
    let count = mem.read_u64(addr.checked_add(count)?).ok()?;
    Some((count > 0, owner))
}

/// Whether the lock's own state allows that the thread with `ident` holds
/// it (unreadable state: assume it does).
fn lock_agrees(walker: &Walker, l: &HeldLock, ident: u64) -> bool {
    match l.kind {
        LockKind::Lock => lock_is_locked(walker, l.addr) != Some(false),
        LockKind::RLock => {
            let off = match walker.layout.rlock {
                RLockLayout::Semaphore { owner, .. } | RLockLayout::Recursive { owner, .. } => owner,
            };
            match l.addr.checked_add(off).map(|a| walker.obj.u64(a)) {
                Some(Ok(owner)) => owner == ident,
                _ => true,
            }
        }
    }
}

/// Whether a native stack is inside `take_gil`. By name when the
/// interpreter has symbols; stripped builds (Debian's python3.11) only export
/// the public API, so there: when the innermost named frame outside the C
/// library is `PyEval_RestoreThread` / `PyEval_AcquireThread`, whose only
/// wait is `take_gil` (the unnamed frames inside it are take_gil's). This
/// catches a GIL waiter between two of its timed condvar waits, which no
/// futex argument shows.
fn taking_gil(frames: &[Frame]) -> bool {
    if frames.iter().any(|f| f.function_is("take_gil")) {
        return true;
    }
    let is_libc = |f: &Frame| {
        let module = f.module.as_deref().unwrap_or("");
        let base = module.rsplit('/').next().unwrap_or(module);
        ["libc.so", "libpthread.so", "ld-linux"]
            .iter()
            .any(|p| base.starts_with(p))
    };
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Native)
        .find(|f| f.function.is_some() && !is_libc(f))
        .is_some_and(|f| f.function_is("PyEval_RestoreThread") || f.function_is("PyEval_AcquireThread"))
}

/// Forget a GIL holder the capture contradicts. The registers and syscalls
/// of the threads are from the moment they were stopped; the GIL's `locked`
/// and `last_holder` are read afterwards, from the running process. A thread
/// that was then waiting for the GIL, or sleeping in a Python-level wait
/// (every blocking Lock / RLock / Condition / Event / Queue / join releases
/// the GIL first), did not hold it at that moment: the GIL has changed hands
/// since. Its waiters get an unknown owner (no edge: in a real GIL deadlock
/// the holder is stuck and cannot be such a thread), and it gets no GIL hold:
/// the GIL stays `locked`, with `last_holder` cleared.
fn distrust_stale_gil_holders(threads: &[Analyzed], findings: &mut [ThreadFindings], gils: &mut [(u64, GilInfo)]) {
    for (_, g) in gils.iter_mut() {
        if !g.locked {
            continue;
        }
        let Some(h) = threads.iter().position(|t| t.state.addr == g.last_holder) else {
            continue;
        };
        let Some(w) = findings[h].wait.as_ref() else { continue };
        let released_gil = matches!(
            w.resource.kind,
            ResourceKind::Gil
                | ResourceKind::PyLock
                | ResourceKind::PyRLock
                | ResourceKind::PyCondition
                | ResourceKind::PySemaphore
                | ResourceKind::PyMpLock
                | ResourceKind::PyEvent
                | ResourceKind::PyQueue
                | ResourceKind::Barrier
                | ResourceKind::Thread
        );
        if !released_gil {
            continue; // e.g. a native mutex taken with the GIL held: a real holder
        }
        let why = format!(
            "the GIL's last_holder is thread {}, which was itself waiting ({}) when the threads were \
             stopped: the GIL changed hands after the capture",
            threads[h].host_tid, w.how
        );
        for f in findings.iter_mut() {
            if let Some(w) = f.wait.as_mut() {
                if w.resource.kind == ResourceKind::Gil && w.resource.address == Addr(g.base) {
                    w.owner = Owner::unknown(why.clone());
                }
            }
        }
        g.last_holder = 0; // locked, by nobody known
    }
}

fn gil_resource(pid: Pid, addr: u64) -> Resource {
    Resource {
        kind: ResourceKind::Gil,
        address: Addr(addr),
        pid,
        name: Some("GIL".into()),
        shared_key: None,
    }
}

fn python_thread(t: Analyzed, name: Option<String>, findings: ThreadFindings, holds_gil: bool) -> PythonThread {
    let mut frames = Vec::with_capacity(t.state.frames.len());
    let mut eval_call = Vec::with_capacity(t.state.frames.len());
    let mut call = 0usize;
    for f in &t.state.frames {
        frames.push(f.to_frame());
        eval_call.push(call);
        if f.entry {
            call += 1;
        }
    }
    PythonThread {
        tid: t.host_tid,
        name,
        frames,
        eval_call,
        findings,
        holds_gil,
        ident: t.state.ident,
        frame_error: t.state.frame_error,
        name_note: None,
        stack_note: None,
    }
}

/// The futex thread `i` sleeps on (FUTEX_WAIT or FUTEX_WAIT_BITSET), if any.
fn futex_wait_address(view: &ProcessView, i: usize) -> Option<u64> {
    use crate::runtimes::futex::FutexCmd;
    let w = view.futex(i)?;
    matches!(w.cmd, FutexCmd::Wait | FutexCmd::WaitBitset).then_some(w.addr)
}

struct WaitContext<'a> {
    walker: &'a Walker<'a>,
    view: &'a ProcessView<'a>,
    gils: &'a [(u64, GilInfo)],
    tstate_to_tid: &'a HashMap<u64, Tid>,
    ident_to_tid: &'a HashMap<u64, Tid>,
    thread_objects: &'a HashMap<u64, ThreadObject>,
    held: &'a [Vec<HeldLock>],
    /// Plain locks several threads' code took with `acquire()`: lock -> TIDs.
    contested: &'a HashMap<u64, Vec<Tid>>,
    /// Per thread: the lock its innermost frame is calling `acquire()` on.
    acquiring: &'a [Option<u64>],
    threads: &'a [Analyzed],
}

/// (wait, blocked_in, condition released by a Condition.wait in progress)
fn classify_wait(ctx: &WaitContext, t: &Analyzed) -> (Option<Wait>, Option<String>, Option<u64>) {
    // 1. The GIL: the futex lies in its condvar or mutex, or the native stack is in take_gil.
    for (_, g) in ctx.gils {
        let Some(futex) = t.futex else { break };
        match gil::classify(ctx.walker, g, futex) {
            Some(GilFutex::Take) => {
                let how = format!("sleeps on the GIL's condvar/mutex, futex {futex:#x}");
                return (Some(gil_wait(ctx, t, g, how)), None, None);
            }
            Some(GilFutex::Handoff) => {
                return (
                    None,
                    Some("drop_gil: waiting for another thread to take the GIL".into()),
                    None,
                );
            }
            None => {}
        }
    }
    if t.in_take_gil {
        if let Some((_, g)) = ctx.gils.first() {
            let wait = gil_wait(ctx, t, g, "native stack is in take_gil".into());
            return (Some(wait), None, None);
        }
    }
    let Some(futex) = t.futex else {
        return (None, None, None);
    };
    // 2. Library waits (Condition, Event, Queue, ...), by function.
    if let Some(wait) = shutdown_wait(ctx, t, futex) {
        return (Some(wait), None, None);
    }
    if let Some((wait, cond)) = library_wait(ctx, t, futex) {
        return (Some(wait), None, cond);
    }
    // 3. A lock object whose semaphore / mutex is the futex.
    if let Some(wait) = lock_wait(ctx, t, futex) {
        return (Some(wait), None, None);
    }
    (None, None, None)
}

/// The outermost recognized library function in the innermost run of
/// threading.py / queue.py frames.
fn library_wait(ctx: &WaitContext, t: &Analyzed, futex: u64) -> Option<(Wait, Option<u64>)> {
    let frames = &t.state.frames;
    let run = frames.iter().take_while(|f| is_sync_library(&f.code.filename)).count();
    let (idx, kind) = (0..run).rev().find_map(|i| {
        let q = frames[i].code.qualname.as_str();
        LIBRARY_WAITS.iter().find(|(n, _)| *n == q).map(|(_, k)| (i, *k))
    })?;
    let frame = &frames[idx];
    let me = naming::frame_locals(ctx.walker, frame)
        .into_iter()
        .find(|(n, _)| n == "self")
        .map(|(_, v)| v)?;
    let pid = ctx.view.snapshot.pid;
    let thread_name = || {
        let t = ctx.thread_objects.values().find(|t| t.object == me)?;
        t.name.clone()
    };
    let name = if kind == ResourceKind::Thread {
        thread_name().or_else(|| naming::name_object(ctx.walker, &t.state, me))
    } else {
        naming::name_object(ctx.walker, &t.state, me)
    };
    let how = format!("threading.{}", frame.code.qualname).replace("threading.Queue.", "queue.Queue.");
    let owner = if kind == ResourceKind::Thread {
        join_owner(ctx, me)
    } else {
        Owner::unknown(format!(
            "{} has no owner: any thread may release it (sleeping on futex {futex:#x})",
            frame.code.qualname
        ))
    };
    // Innermost Condition.wait in the run: its condition's lock is released.
    let released = frames[..run]
        .iter()
        .find(|f| f.code.qualname == "Condition.wait")
        .and_then(|f| {
            naming::frame_locals(ctx.walker, f)
                .into_iter()
                .find(|(n, _)| n == "self")
        })
        .map(|(_, v)| v);
    let wait = Wait {
        resource: Resource {
            kind,
            address: Addr(me),
            pid,
            name,
            shared_key: None,
        },
        owner,
        how,
        site_frame: frames.get(run).map(|_| run + future_wait_depth(&frames[run..])),
        ends: crate::runtimes::Ends::WITH_CALL,
    };
    Some((wait, released))
}

/// How many frames above the caller of a library wait belong to the wait
/// itself: 1 for `Future.result` / `Future.exception` of concurrent.futures
/// (the caller of those is where the program waits), else 0.
fn future_wait_depth(frames: &[PyFrame]) -> usize {
    match frames {
        [f, _, ..]
            if f.code.filename.ends_with("concurrent/futures/_base.py")
                && matches!(f.code.qualname.as_str(), "Future.result" | "Future.exception") =>
        {
            1
        }
        _ => 0,
    }
}

/// A wait for the GIL, owned by its holder while it is locked.
fn gil_wait(ctx: &WaitContext, t: &Analyzed, g: &GilInfo, evidence: String) -> Wait {
    let pid = ctx.view.snapshot.pid;
    let holder = g
        .locked
        .then(|| ctx.tstate_to_tid.get(&g.last_holder).copied())
        .flatten();
    let owner = match holder {
        Some(tid) => Owner::held_by(
            pid,
            tid,
            Confidence::Exact,
            format!("GIL locked, last_holder = PyThreadState {:#x}", g.last_holder),
        ),
        None if g.locked => Owner::unknown(format!(
            "GIL locked by PyThreadState {:#x}, which matches no thread",
            g.last_holder
        )),
        None => Owner::unknown("GIL not locked at capture time (hand-off in progress)"),
    };
    Wait {
        resource: gil_resource(pid, g.base),
        owner,
        how: format!("take_gil: waiting for the GIL ({evidence})"),
        site_frame: (!t.state.frames.is_empty()).then_some(0),
        ends: crate::runtimes::Ends::NotByItself { why: GIL_SLICES },
    }
}

/// Why a GIL wait never ends by itself, though its call has a timeout.
const GIL_SLICES: &str = "take_gil waits for the GIL in 5 ms slices (to ask the holder to drop it) and loops \
                              until it has it";

/// Interpreter exit (`threading._shutdown`) waiting for a non-daemon thread.
/// 3.11/3.12 acquire each thread's `_tstate_lock` (local `lock`); 3.13+
/// park on the `thread_is_exiting` event inside each thread's handle.
fn shutdown_wait(ctx: &WaitContext, t: &Analyzed, futex: u64) -> Option<Wait> {
    let frame = t.state.frames.first()?;
    if frame.code.qualname != "_shutdown" || !is_sync_library(&frame.code.filename) {
        return None;
    }
    let walker = ctx.walker;
    let o = walker.obj;
    let lock = naming::frame_locals(walker, frame)
        .into_iter()
        .find(|(n, _)| n == "lock")
        .map(|(_, v)| v)
        .filter(|&v| as_lock(walker, v).is_some());
    let parked = walker
        .layout
        .parking
        .and_then(|p| futex.checked_sub(p.sema_to_addr))
        .and_then(|a| o.u64(a).ok());
    let (address, found) = if let Some(lock) = lock {
        let found = ctx
            .thread_objects
            .iter()
            .find(|(_, th)| o.attr(th.object, "_tstate_lock") == Some(lock))
            .map(|(id, th)| {
                (
                    *id,
                    th,
                    format!("_shutdown acquires that thread's _tstate_lock {lock:#x}"),
                )
            });
        (lock, found)
    } else {
        let (p, h) = (parked?, walker.layout.thread_handle?);
        let found = ctx.thread_objects.iter().find_map(|(id, th)| {
            let handle_obj = o.attr(th.object, h.thread_attr)?;
            let handle = o.u64(handle_obj + h.handle).ok()?;
            (handle + h.exiting_event == p).then(|| {
                (
                    *id,
                    th,
                    format!("_shutdown parked on that thread's handle event {p:#x}"),
                )
            })
        });
        (p, found)
    };
    let pid = ctx.view.snapshot.pid;
    let (owner, name) = match found {
        Some((ident, th, evidence)) => match ctx.ident_to_tid.get(&ident) {
            Some(&tid) => (Owner::held_by(pid, tid, Confidence::Exact, evidence), th.name.clone()),
            None => (Owner::unknown(evidence), th.name.clone()),
        },
        None => (Owner::unknown("non-daemon thread not identified"), None),
    };
    Some(Wait {
        resource: Resource {
            kind: ResourceKind::Thread,
            address: Addr(address),
            pid,
            name,
            shared_key: None,
        },
        owner,
        how: "threading._shutdown (interpreter exit waits for non-daemon threads)".into(),
        site_frame: Some(0),
        ends: crate::runtimes::Ends::WITH_CALL,
    })
}

/// The thread a `Thread.join` waits for: `self` is the Thread object.
fn join_owner(ctx: &WaitContext, thread_obj: u64) -> Owner {
    let Some((ident, t)) = ctx.thread_objects.iter().find(|(_, t)| t.object == thread_obj) else {
        return Owner::unknown("joined Thread is not in threading._active (not started, or finishing)");
    };
    match ctx.ident_to_tid.get(ident) {
        Some(&tid) => Owner::held_by(
            ctx.view.snapshot.pid,
            tid,
            Confidence::Exact,
            format!(
                "joins Thread {:?} (ident {ident:#x}): waits for that thread to exit",
                t.name.as_deref().unwrap_or("?")
            ),
        ),
        None => Owner::unknown(format!("joined thread (ident {ident:#x}) has no thread state")),
    }
}

/// Lock objects the innermost frames are working on: locals and every value
/// stack slot (stale ones too: a match must still agree with the futex),
/// with bound methods unwrapped to their `self`.
fn candidate_locks(walker: &Walker, state: &PyThreadState) -> Vec<(u64, LockKind)> {
    let mut out: Vec<(u64, LockKind)> = Vec::new();
    for frame in state.frames.iter().take(CANDIDATE_FRAMES) {
        for v in frame_slots(walker, frame, frame.code.stacksize) {
            if let Some(l) = as_lock(walker, v).or_else(|| as_lock(walker, bound_self(walker, v)?)) {
                if !out.contains(&l) {
                    out.push(l);
                }
            }
        }
    }
    out
}

/// `localsplus[0 .. nlocalsplus + depth]` of a frame (tag bits removed, NULLs skipped).
fn frame_slots(walker: &Walker, frame: &PyFrame, depth: u32) -> Vec<u64> {
    let n = frame.code.nlocalsplus as usize + depth as usize;
    let mask = !walker.layout.frame.stackref_tag_mask;
    match walker.obj.mem.read_vec(frame.localsplus, n * 8) {
        Ok(raw) => raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) & mask)
            .filter(|&v| v != 0)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Find the lock object a thread is blocked acquiring.
fn lock_wait(ctx: &WaitContext, t: &Analyzed, futex: u64) -> Option<Wait> {
    let walker = ctx.walker;
    let layout = walker.layout;
    let o = walker.obj;
    // 3.13+: a parked waiter's wait_entry says what it waits for.
    let parked = layout
        .parking
        .and_then(|p| futex.checked_sub(p.sema_to_addr))
        .and_then(|a| o.u64(a).ok());
    let mut found: Option<(u64, LockKind, String)> = None;
    for (obj, kind) in candidate_locks(walker, &t.state) {
        if let Some(ev) = lock_matches(walker, obj, kind, futex, parked) {
            found = Some((obj, kind, ev));
            break;
        }
    }
    if found.is_none() {
        // A parked PyMutex names the lock even if no frame shows it.
        if let Some(p) = parked {
            for kind in [LockKind::Lock, LockKind::RLock] {
                let off = match (kind, layout.lock, layout.rlock) {
                    (LockKind::Lock, LockLayout::Mutex { mutex }, _) => mutex,
                    (LockKind::RLock, _, RLockLayout::Recursive { mutex, .. }) => mutex,
                    _ => continue,
                };
                let obj = p.wrapping_sub(off);
                if as_lock(walker, obj).map(|(_, k)| k) == Some(kind) {
                    found = Some((obj, kind, format!("parked on PyMutex {p:#x} (futex {futex:#x})")));
                    break;
                }
            }
        }
    }
    let (addr, kind, evidence) = found?;
    let pid = ctx.view.snapshot.pid;
    let owner = lock_owner(ctx, t, addr, kind);
    Some(Wait {
        resource: Resource {
            kind: kind.resource_kind(),
            address: Addr(addr),
            pid,
            name: naming::name_object(walker, &t.state, addr).or_else(|| owner_side_name(ctx, &owner, addr)),
            shared_key: None,
        },
        owner,
        how: format!("{} ({evidence})", kind.acquire()),
        site_frame: (!t.state.frames.is_empty()).then_some(0),
        ends: crate::runtimes::Ends::WITH_CALL,
    })
}

/// Name a lock from its holder's frames when the waiter's frames do not.
fn owner_side_name(ctx: &WaitContext, owner: &Owner, addr: u64) -> Option<String> {
    let tid = owner.tid()?;
    let t = ctx.threads.iter().find(|t| t.host_tid == tid)?;
    naming::name_object(ctx.walker, &t.state, addr)
}

/// Does lock object `obj` correspond to the futex the thread sleeps on?
/// Returns the evidence in words.
fn lock_matches(walker: &Walker, obj: u64, kind: LockKind, futex: u64, parked: Option<u64>) -> Option<String> {
    let o = walker.obj;
    let layout = walker.layout;
    enum Via {
        Sem(u64),
        Mutex(u64),
    }
    let via = match (kind, layout.lock, layout.rlock) {
        (LockKind::Lock, LockLayout::Semaphore { lock_lock, .. }, _) => Via::Sem(lock_lock),
        (LockKind::Lock, LockLayout::Mutex { mutex }, _) => Via::Mutex(mutex),
        (LockKind::RLock, _, RLockLayout::Semaphore { lock_lock, .. }) => Via::Sem(lock_lock),
        (LockKind::RLock, _, RLockLayout::Recursive { mutex, .. }) => Via::Mutex(mutex),
    };
    match via {
        Via::Sem(off) => {
            let sem = o.u64(obj + off).ok()?;
            (sem == futex).then(|| format!("sleeps on its semaphore {sem:#x}"))
        }
        Via::Mutex(off) => {
            let m = obj + off;
            (parked == Some(m)).then(|| format!("parked on its PyMutex {m:#x} (futex {futex:#x})"))
        }
    }
}

/// Who holds lock `addr` that thread `t` waits for.
fn lock_owner(ctx: &WaitContext, t: &Analyzed, addr: u64, kind: LockKind) -> Owner {
    let walker = ctx.walker;
    let o = walker.obj;
    let pid = ctx.view.snapshot.pid;
    if kind == LockKind::RLock {
        let off = match walker.layout.rlock {
            RLockLayout::Semaphore { owner, .. } | RLockLayout::Recursive { owner, .. } => owner,
        };
        return match o.u64(addr + off) {
            Ok(0) => Owner::unknown("RLock owner field is 0 (released at capture time)"),
            Ok(ident) => match ctx.ident_to_tid.get(&ident) {
                Some(&tid) => Owner::held_by(
                    pid,
                    tid,
                    Confidence::Exact,
                    format!("RLock owner = thread ident {ident:#x}"),
                ),
                None => Owner::exited(
                    None,
                    Some(pid),
                    Confidence::Exact,
                    format!("RLock owner = thread ident {ident:#x}, which matches no live Python thread"),
                ),
            },
            Err(e) => Owner::unknown(format!("RLock owner unreadable: {e}")),
        };
    }
    for (i, h) in ctx.held.iter().enumerate() {
        if let Some(l) = h.iter().find(|l| l.addr == addr) {
            let holder = &ctx.threads[i];
            let same = holder.host_tid == t.host_tid;
            // The frames are read after the threads were let go. A thread
            // that waited for this lock at the stop may have got it since,
            // and its code then shows the acquire() as done: that is not a
            // self-deadlock unless the frame is still in a second acquire()
            // of the same lock.
            if same && l.confidence == Confidence::Inferred && ctx.acquiring[i] != Some(addr) {
                return Owner::unknown(
                    "this thread's code shows the acquire() done: it got the lock after the capture, so the \
                     owner at the capture is not known",
                );
            }
            return Owner::held_by(
                pid,
                holder.host_tid,
                l.confidence,
                if same {
                    format!("this thread already holds it: {}", l.evidence)
                } else {
                    l.evidence.clone()
                },
            );
        }
    }
    if let Some(tids) = ctx.contested.get(&addr) {
        let tids: Vec<String> = tids.iter().map(|t| t.to_string()).collect();
        return Owner::unknown(format!(
            "held through an explicit acquire(): the code of threads {} each took it without releasing it, \
             so the owner cannot be told",
            tids.join(", ")
        ));
    }
    Owner::unknown(match lock_is_locked(walker, addr) {
        Some(false) => "lock is free at capture time (being handed over)".to_string(),
        _ => "held through an explicit acquire(): _thread.lock records no owner and no thread's code shows the \
              acquire()"
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtimes::cpython::frames::PyThreadState;

    fn native(function: Option<&str>, module: &str) -> Frame {
        Frame {
            function: function.map(Into::into),
            module: Some(module.into()),
            ..Frame::native(0x1000, 0x2000)
        }
    }

    #[test]
    fn take_gil_by_name_or_by_its_public_caller() {
        let libc = |f| native(Some(f), "/usr/lib/x86_64-linux-gnu/libc.so.6");
        let py = |f| native(f, "/usr/bin/python3.11");
        // Symbols: take_gil itself.
        assert!(taking_gil(&[
            libc("__futex_abstimed_wait_common"),
            py(Some("take_gil"))
        ]));
        // Stripped (Debian): unnamed take_gil inside PyEval_RestoreThread,
        // asleep in the condvar or running between two timed waits.
        let asleep = [
            libc("__futex_abstimed_wait_common64"),
            libc("___pthread_cond_timedwait64"),
            py(None),
            py(Some("PyEval_RestoreThread")),
            py(Some("PyObject_Vectorcall")),
        ];
        assert!(taking_gil(&asleep));
        assert!(taking_gil(&asleep[2..]));
        assert!(taking_gil(&[py(None), py(Some("PyEval_AcquireThread"))]));
        // A named interpreter function inside it: past take_gil.
        assert!(!taking_gil(&[
            py(Some("_PyThreadState_Swap")),
            py(Some("PyEval_RestoreThread"))
        ]));
        // Elsewhere entirely.
        assert!(!taking_gil(&[
            libc("__futex_abstimed_wait_common64"),
            py(Some("PyThread_acquire_lock_timed"))
        ]));
        assert!(!taking_gil(&[]));
    }

    fn analyzed(tid: i32, tstate: u64) -> Analyzed {
        Analyzed {
            state: PyThreadState {
                addr: tstate,
                interp: 0x100,
                ident: tid as u64,
                native_id: tid,
                frames: Vec::new(),
                frame_error: None,
            },
            host_tid: Tid(tid),
            futex: Some(0x5000),
            in_take_gil: false,
        }
    }

    fn wait(kind: ResourceKind, address: u64, owner: Option<i32>, how: &str) -> Option<Wait> {
        Some(Wait {
            resource: Resource {
                kind,
                address: Addr(address),
                pid: Pid(1),
                name: None,
                shared_key: None,
            },
            owner: match owner {
                Some(tid) => Owner::held_by(Pid(1), Tid(tid), Confidence::Exact, "GIL locked"),
                None => Owner::unknown("none"),
            },
            how: how.into(),
            site_frame: None,
            ends: crate::runtimes::Ends::WITH_CALL,
        })
    }

    const GIL: u64 = 0x9000;

    fn gil(holder: u64) -> Vec<(u64, GilInfo)> {
        vec![(
            0x100,
            GilInfo {
                base: GIL,
                locked: true,
                last_holder: holder,
            },
        )]
    }

    fn findings(waits: Vec<Option<Wait>>) -> Vec<ThreadFindings> {
        waits
            .into_iter()
            .map(|wait| ThreadFindings {
                wait,
                ..Default::default()
            })
            .collect()
    }

    /// A busy process: at the stop, thread 11 was waiting for the GIL; by the
    /// time the GIL is read, 11 has it. Without care that is 11 waiting for
    /// itself: a self-deadlock in a healthy process.
    #[test]
    fn gil_holder_that_was_waiting_at_the_stop_is_not_trusted() {
        let threads = [analyzed(10, 0xa0), analyzed(11, 0xb0)];
        for stale in [
            wait(ResourceKind::Gil, GIL, Some(11), "take_gil"),
            wait(ResourceKind::PyLock, 0x7000, None, "threading.Lock.acquire"),
            wait(ResourceKind::Thread, 0x7100, Some(10), "threading.Thread.join"),
        ] {
            let mut f = findings(vec![wait(ResourceKind::Gil, GIL, Some(11), "take_gil"), stale]);
            let mut g = gil(0xb0);
            distrust_stale_gil_holders(&threads, &mut f, &mut g);
            assert_eq!(g[0].1.last_holder, 0, "no holder");
            assert!(g[0].1.locked);
            let w = f[0].wait.as_ref().unwrap();
            assert_eq!((w.owner.tid(), w.owner.confidence()), (None, Confidence::Unknown));
            assert!(w.owner.evidence().contains("changed hands"), "{}", w.owner.evidence());
            if f[1].wait.as_ref().unwrap().resource.kind == ResourceKind::Gil {
                assert_eq!(f[1].wait.as_ref().unwrap().owner.tid(), None, "nor its own wait");
            }
        }
    }

    /// The GIL + native deadlock: the holder sleeps on a C mutex while
    /// holding the GIL. That holder is consistent with the capture.
    #[test]
    fn gil_holder_blocked_in_native_code_is_kept() {
        let threads = [analyzed(10, 0xa0), analyzed(11, 0xb0)];
        for holder_wait in [
            wait(ResourceKind::Mutex, 0x6000, Some(10), "pthread_mutex_lock (normal)"),
            None,
        ] {
            let mut f = findings(vec![wait(ResourceKind::Gil, GIL, Some(11), "take_gil"), holder_wait]);
            let mut g = gil(0xb0);
            distrust_stale_gil_holders(&threads, &mut f, &mut g);
            assert_eq!(g[0].1.last_holder, 0xb0);
            let w = f[0].wait.as_ref().unwrap();
            assert_eq!(
                (w.owner.tid().map(Tid::get), w.owner.confidence()),
                (Some(11), Confidence::Exact)
            );
        }
    }
}
