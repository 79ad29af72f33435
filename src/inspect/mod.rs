//! The pipeline for one process: capture, then (with the target running
//! again) unwind, symbolize and analyze; and the verdict over all processes.
//! The CLI calls this; so do tests.

use std::time::{Duration, Instant};

use crate::capture::stop::{capture_hooked, CaptureOptions};
use crate::capture::{RegisterSource, Snapshot, ThreadSnapshot, Tracer};
use crate::error::InspectError;
use crate::graph::{self, Part, ProcessFacts, SignalWayOut, Unexamined, Verdict};
use crate::ids::Tid;
use crate::runtimes::cpython;
use crate::runtimes::libc::{detect as detect_libc, LibcInfo};
use crate::runtimes::{native, ProcessView, SymbolLookup, ThreadFindings};
use crate::stacks::Stack;
use crate::symbols::{prefetch, ModuleCache, ProcessSymbols};
use crate::unwind::{Unwinder, Walk};

mod confirm;
mod facts;

pub use confirm::STUCK_CONFIRM;
use confirm::{confirm_starvations, confirm_stuck, confirmed_graph};
use facts::{add_cross_process_holds, describe_waited_behind, own_shared_mp_locks, peers_of, process_awaits};

/// Processes with at least this many threads get their DWARF prepared on a
/// background thread during capture. The thread competes with the stop
/// (on 2 CPUs it lengthened the pause of a 10-thread target from ~0.45 to
/// ~2 ms, of a 1000-thread one by ~7%), and it pays only for as long as
/// capture lasts (~35 µs per thread: the /proc reads and the stop), so a
/// small process is better off preparing its DWARF after capture.
pub const PREFETCH_MIN_THREADS: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub capture: CaptureOptions,
    pub max_frames: usize,
    /// Look for a Python interpreter and merge Python frames.
    pub python: bool,
    /// Show native frames of Python threads too.
    pub native: bool,
}

/// Everything known about one process after analysis.
pub struct Inspection {
    pub snapshot: Snapshot,
    /// What is shown per thread (parallel to `snapshot.threads`): the native
    /// stack, or for Python threads the Python stack (merged with the native
    /// one under `--native`).
    pub stacks: Vec<Stack>,
    /// Parallel to `snapshot.threads`; `site_frame` indexes `stacks`.
    pub findings: Vec<ThreadFindings>,
    /// Parallel to `snapshot.threads`: the call each thread is in, decoded
    /// once ([`crate::runtimes::syscalls::Call`]); the peers of a read, a
    /// write or a child wait are looked up from it.
    pub calls: Vec<crate::runtimes::syscalls::Call>,
    /// Python thread names by thread index, when the target is CPython.
    pub python_names: Vec<Option<String>>,
    /// Why a Python thread has no Python name, by thread index.
    pub python_name_notes: Vec<Option<String>>,
    /// By thread index: the thread's Python stack could not be read as of
    /// the stop ("Python stack not read: ..."); its stack then shows only
    /// native frames, which is not the whole story.
    pub python_stack_notes: Vec<Option<String>>,
    /// `CPython 3.13.5 (free-threaded)`, if the target runs CPython.
    pub python_version: Option<String>,
    /// Parts of the process no analysis covered (the rest of the report stands).
    pub unexamined: Vec<Unexamined>,
    /// The target's C library, as far as it could be identified, and why.
    pub libc: LibcInfo,
    /// What its signal handlers could do for its sleeping threads.
    pub signals: SignalWayOut,
    /// Its thread pools (CPython ThreadPoolExecutors with live workers).
    pub pools: Vec<crate::runtimes::TaskPool>,
    /// Its asyncio event loops and tasks (CPython 3.14+), if it runs any.
    pub asyncio: Option<crate::runtimes::cpython::asyncio::AsyncioState>,
    /// Wall time of analysis after capture.
    pub analysis_time: Duration,
    /// The first looks of a stuck verdict's confirmation, taken during the
    /// analysis (taken out by [`verdict`]).
    first_looks: Option<confirm::FirstLooks>,
}

pub fn inspect(pid: i32, opts: &Options, cache: &ModuleCache) -> Result<Inspection, InspectError> {
    let snapshot = capture_in(pid, opts, cache)?;
    Ok(analyze(snapshot, opts, cache))
}

/// The capture stage of [`inspect`]. With `--no-stop` and several
/// processes, the caller captures all of them before analyzing any, so that
/// every lock word is read after every thread was sampled (see [`verdict`]).
pub fn capture(pid: i32, opts: &Options) -> Result<Snapshot, InspectError> {
    capture_in(pid, opts, &ModuleCache::new())
}

/// [`capture`], parsing the mapped files through `cache` (which analysis
/// then reuses).
pub fn capture_in(pid: i32, opts: &Options, cache: &ModuleCache) -> Result<Snapshot, InspectError> {
    // Symbolization needs the DWARF of the mapped files right after capture:
    // prepare it meanwhile, when capture takes long enough for that to pay
    // (see PREFETCH_MIN_THREADS). For a CPython target most of it is not
    // needed (see `lazy_dwarf` below), so none is prepared ahead.
    //
    // A CPython's runtime is found before the stop, so that its thread
    // states, frames and thread names are copied during it (issue 22:
    // cpython::stopcopy) and describe the same instant as the stacks.
    // (Found through `pid`'s files: when the main thread has exited they
    // are gone, and Python is then read after the stop as before.)
    let want_python = opts.python && !opts.capture.no_stop;
    let prepared: std::cell::RefCell<Option<cpython::stopcopy::Prepared>> = std::cell::RefCell::new(None);
    // parking_lot's hash table is copied during the stop too (see
    // runtimes::parking_lot::stopcopy), for a process that is not Python.
    let parking: std::cell::RefCell<Option<crate::runtimes::parking_lot::stopcopy::Prepared>> =
        std::cell::RefCell::new(None);
    capture_hooked(
        pid,
        &opts.capture,
        |maps, threads| {
            if threads >= PREFETCH_MIN_THREADS {
                prefetch::start(crate::live::Live::process(pid), maps, opts.python && !opts.native)
            }
            if want_python {
                *prepared.borrow_mut() = cpython::stopcopy::prepare(crate::live::Live::process(pid), maps, cache);
            }
            if !opts.capture.no_stop && prepared.borrow().is_none() {
                *parking.borrow_mut() =
                    crate::runtimes::parking_lot::stopcopy::prepare(crate::live::Live::process(pid), maps, cache);
            }
        },
        &mut |mm_tid, threads| match (prepared.borrow().as_ref(), parking.borrow().as_ref()) {
            (Some(p), _) => cpython::stopcopy::copy(p, crate::live::Live { pid, mm_tid }, threads),
            (None, Some(p)) => crate::runtimes::parking_lot::stopcopy::copy(p, crate::live::Live { pid, mm_tid }),
            (None, None) => Default::default(),
        },
    )
}

/// The pipeline for a core file: its snapshot, then [`analyze`] as for a
/// live process. The core is one instant, so nothing needs confirming
/// against a live process afterwards ([`verdict`] skips it).
pub fn inspect_core(
    core: std::sync::Arc<crate::capture::corefile::CoreFile>,
    opts: &Options,
    cache: &ModuleCache,
) -> Inspection {
    let snapshot = crate::capture::corefile::snapshot::snapshot(core.clone(), opts.capture.stack_bytes);
    let mut ins = analyze(snapshot, opts, cache);
    // Memory a verdict may have needed and the core does not hold: the
    // analysis saw read errors there; say so (the verdict becomes
    // incomplete unless a deadlock was found regardless).
    let missing = core.missing();
    if missing.count > 0 {
        let examples: Vec<String> = missing
            .examples
            .iter()
            .map(|(addr, len, what)| format!("{len} bytes at {addr:#x} ({what})"))
            .collect();
        ins.unexamined.push(Unexamined {
            pid: ins.snapshot.pid,
            part: Part::CoreMemory,
            why: format!(
                "{} read{} of memory the core does not hold and no mapped file supplied, e.g. {}",
                missing.count,
                if missing.count == 1 { "" } else { "s" },
                examples.join(", ")
            ),
        });
    }
    ins
}

/// The stages of [`inspect`] after capture: unwinding, symbols, runtimes.
pub fn analyze(snapshot: Snapshot, opts: &Options, cache: &ModuleCache) -> Inspection {
    let started = Instant::now();
    // Taken on another thread meanwhile (see confirm::FirstLooks).
    let first_looks = confirm::FirstLooks::start(&snapshot);
    // Absolute deadlines of timed waits are measured from here (the capture
    // has just ended).
    let clocks = crate::runtimes::futex::Clocks::now();
    let symbols = ProcessSymbols::load(&snapshot, cache);
    let memory = snapshot.memory();
    // Each thread's call, decoded once for every runtime and rule after.
    let calls = crate::runtimes::syscalls::decode_all(&snapshot, &memory);
    let mut unwinder = Unwinder::default();
    unwinder.max_frames = opts.max_frames.max(1);
    // Python threads print only their Python frames (unless --native), and
    // naming native frames from DWARF is most of a run's cost (libc6-dbg's
    // compressed sections, libpython's .debug_info). So in a process that
    // may run CPython, unwind with ELF symbols first, and name from DWARF
    // only the stacks whose native frames are printed or described: threads
    // that turn out not to be Python threads, and Python threads the native
    // analysis reports on. (CPython is found the way cpython::runtime does.)
    let lazy_dwarf = opts.python
        && !opts.native
        && (symbols.symbol_address("_PyRuntime").is_some() || symbols.section(".PyRuntime").is_some());
    // Walking stacks needs no DWARF (CFI comes from .eh_frame): walk every
    // thread first, so that the DWARF units covering all their frames are
    // parsed together (see symbols::units), then name the frames.
    let walks: Vec<Walk> = snapshot
        .threads
        .iter()
        .map(|t| unwinder.walk(t, &symbols, &memory))
        .collect();
    unwinder.set_dwarf(!lazy_dwarf);
    // Lock names from DWARF too wait for the stacks that are printed.
    symbols.set_dwarf_names(!lazy_dwarf);
    if !lazy_dwarf {
        symbols.prepare_dwarf(&frame_addresses(walks.iter()));
    }
    let mut native: Vec<Stack> = walks.iter().map(|w| unwinder.name(w, &symbols)).collect();
    for (stack, t) in native.iter_mut().zip(&snapshot.threads) {
        explain_short_stack(stack, t, snapshot.tracer.as_ref());
    }

    let (python, python_error) = if opts.python {
        let view = ProcessView {
            snapshot: &snapshot,
            stacks: &native,
            memory: &memory,
            symbols: &symbols,
            calls: &calls,
        };
        match cpython::inspect(&view) {
            Ok(p) => (p, None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let view = ProcessView {
        snapshot: &snapshot,
        stacks: &native,
        memory: &memory,
        symbols: &symbols,
        calls: &calls,
    };
    let libc = detect_libc(&snapshot, &memory);
    let mut findings = native::analyze_for(&view, &libc);
    if lazy_dwarf {
        // Also named from DWARF: a Python thread whose report comes from the
        // native analysis (no Python-level wait, e.g. blocked in a C mutex
        // through ctypes; or native holds), which names functions from frames.
        let python_only = |i: usize, tid: Tid| {
            findings[i].holds.is_empty()
                && python.as_ref().is_some_and(|py| {
                    py.threads
                        .iter()
                        .any(|pt| pt.tid == tid && !pt.frames.is_empty() && pt.findings.wait.is_some())
                })
        };
        let redo: Vec<usize> = (0..native.len())
            .filter(|&i| !python_only(i, snapshot.threads[i].tid))
            .collect();
        if !redo.is_empty() {
            symbols.prepare_dwarf(&frame_addresses(redo.iter().map(|&i| &walks[i])));
            unwinder.set_dwarf(true);
            symbols.set_dwarf_names(true);
            for &i in &redo {
                native[i] = unwinder.name(&walks[i], &symbols);
                explain_short_stack(&mut native[i], &snapshot.threads[i], snapshot.tracer.as_ref());
            }
            let view = ProcessView {
                snapshot: &snapshot,
                stacks: &native,
                memory: &memory,
                symbols: &symbols,
                calls: &calls,
            };
            findings = native::analyze_for(&view, &libc);
        }
    }

    let python_version = python.as_ref().map(cpython::precedence::describe);
    let shown = cpython::precedence::show(python.as_ref(), &snapshot, &native, opts.native, &mut findings);
    crate::runtimes::finish(&snapshot, &native, &calls, &clocks, &mut findings);
    let signals = crate::runtimes::signals::of(&snapshot, python.as_ref());
    let mut unexamined: Vec<Unexamined> = python_error
        .map(|why| Unexamined {
            pid: snapshot.pid,
            part: Part::Python,
            why,
        })
        .into_iter()
        .collect();
    unexamined.extend(crate::runtimes::unsupported::detect(
        &ProcessView {
            snapshot: &snapshot,
            stacks: &native,
            memory: &memory,
            symbols: &symbols,
            calls: &calls,
        },
        &findings,
    ));
    let pools = python.as_ref().map(|p| p.pools.clone()).unwrap_or_default();
    let asyncio = python.as_ref().and_then(|p| p.asyncio.clone());
    if let Some(why) = asyncio.as_ref().and_then(|a| a.not_examined.clone()) {
        unexamined.push(Unexamined {
            pid: snapshot.pid,
            part: Part::Asyncio,
            why,
        });
    }
    Inspection {
        pools,
        asyncio,
        analysis_time: started.elapsed(),
        first_looks: first_looks.and_then(|h| h.join().ok()),
        snapshot,
        stacks: shown.stacks.unwrap_or(native),
        findings,
        calls,
        python_names: shown.names,
        python_name_notes: shown.name_notes,
        python_stack_notes: shown.stack_notes,
        python_version,
        unexamined,
        libc,
        signals,
    }
}

/// `--no-stop` knows only SP and PC of a blocked thread (and nothing of a
/// running one): where the unwinder needed another register (a frame whose
/// CFA is rbp-based, a frame-pointer walk), the stack ends early although
/// nothing is wrong with it. Say so, and what gives the whole stack: the
/// stopping mode, unless a debugger holds the process (then it refuses).
fn explain_short_stack(stack: &mut Stack, t: &ThreadSnapshot, tracer: Option<&Tracer>) {
    let Some(error) = &stack.error else { return };
    let for_want_of_registers = match t.register_source {
        RegisterSource::Ptrace => false,
        RegisterSource::None => true,
        RegisterSource::ProcSyscall => error.contains("unknown register") || error.contains("no frame pointer"),
    };
    if !for_want_of_registers {
        return;
    }
    let remedy = match tracer {
        None => "lockdump without --no-stop reads every register and gives the whole stack".to_string(),
        Some(tr) => format!(
            "the stopping mode would read every register, but PID {} ({}) traces this process and holds it: \
             detach that debugger first",
            tr.pid, tr.name
        ),
    };
    stack.error = Some(format!(
        "{error} (--no-stop knows only the stack and instruction pointers of a blocked thread; {remedy})"
    ));
}

/// The addresses the frames of `walks` are looked up at.
fn frame_addresses<'a>(walks: impl Iterator<Item = &'a Walk>) -> Vec<u64> {
    let mut out: Vec<u64> = walks.flat_map(|w| w.frames.iter().map(|f| f.probe)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The wait-for graph over every inspected process, with every cycle
/// confirmed against the live process where its evidence was not all read
/// at one instant.
///
/// After a stop, stacks, registers and native lock words are from the stop,
/// but the CPython evidence (frames, hence who holds a Python lock) is read
/// after the threads were let go. In `--no-stop` mode nothing is from one
/// instant: each thread's wait is sampled from /proc, and every lock word
/// and owner field is read later, while the threads run (under contention a
/// thread sampled waiting for a lock owns it a moment later: a "self-
/// deadlock"). A thread caught in a cycle cannot move, so each member is
/// checked against [`crate::capture::recheck::wait_still_holds`]; the owner of one that moved is not
/// trusted (it becomes unknown, with that reason) and the graph is built
/// again.
pub fn verdict(inspections: &mut [Inspection]) -> Verdict {
    own_shared_mp_locks(inspections);
    let (mut graph, mut v) = confirmed_graph(inspections);
    v.unexamined = inspections.iter().flat_map(|i| i.unexamined.iter().cloned()).collect();
    let facts: Vec<ProcessFacts> = inspections
        .iter()
        .map(|ins| ProcessFacts {
            pid: ins.snapshot.pid,
            signals: ins.signals.clone(),
            unexamined: (!ins.unexamined.is_empty()).then(|| {
                ins.unexamined
                    .iter()
                    .map(|u| format!("{}: {}", u.part.describe(), u.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            pools: ins.pools.clone(),
            peers: peers_of(ins),
        })
        .collect();
    let threads = || {
        inspections.iter().flat_map(|ins| {
            ins.snapshot
                .threads
                .iter()
                .zip(&ins.findings)
                .map(move |(t, f)| (ins.snapshot.pid, t.tid, f))
        })
    };
    let awaits: Vec<graph::awaits::ProcessAwaits> = inspections.iter().filter_map(process_awaits).collect();
    for p in &awaits {
        graph.add_awaits(p);
    }
    v.await_cycles = graph::await_cycles(&graph, &awaits);
    // A thread in an await cycle waits for a task of it, not for the loop's
    // thread it was drawn to in the thread graph: it waits behind nobody.
    let in_cycles: Vec<graph::ThreadId> = v
        .await_cycles
        .iter()
        .flat_map(|c| &c.members)
        .filter_map(|m| match m {
            graph::awaits::Member::Thread { pid, tid, .. } => Some(graph::ThreadId::new(*pid, *tid)),
            graph::awaits::Member::Task { .. } => None,
        })
        .collect();
    for w in &mut v.waiting_behind {
        w.waiters.retain(|t| !in_cycles.contains(t));
    }
    v.waiting_behind.retain(|w| !w.waiters.is_empty());
    v.pool_starvations = graph::starvations(&facts, threads());
    confirm_starvations(inspections, &mut v);
    graph.add_peers(&facts);
    graph::settle(&mut v, &graph, threads(), &facts);
    let first_looks = inspections.iter_mut().filter_map(|i| i.first_looks.take()).collect();
    confirm_stuck(inspections, &mut v, first_looks);
    describe_waited_behind(inspections, &mut v);
    add_cross_process_holds(inspections);
    v
}
