//! The pipeline for one process: capture, then (with the target running
//! again) unwind, symbolize and analyze; and the verdict over all processes.
//! The CLI calls this; so do tests.

use std::time::{Duration, Instant};

use crate::capture::stop::{capture_hooked, CaptureOptions};
use crate::capture::{RegisterSource, Snapshot, ThreadSnapshot, Tracer, SYS_RESTART_SYSCALL};
use crate::error::InspectError;
use crate::graph::{self, Part, ProcessFacts, SignalWayOut, Unexamined, Verdict};
use crate::proc::SyscallLine;
use crate::runtimes::cpython::{self, PythonProcess};
use crate::runtimes::libc::{detect as detect_libc, LibcInfo};
use crate::runtimes::{native, Hold, Owner, ProcessView, ResourceKind, SymbolLookup, ThreadFindings};
use crate::stacks::{FrameKind, Stack};
use crate::symbols::{prefetch, ModuleCache, ProcessSymbols};
use crate::unwind::{Unwinder, Walk};

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
    // Absolute deadlines of timed waits are measured from here (the capture
    // has just ended).
    let clocks = crate::runtimes::futex::Clocks::now();
    let symbols = ProcessSymbols::load(&snapshot, cache);
    let memory = snapshot.memory();
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
    };
    let libc = detect_libc(&snapshot, &memory);
    let mut findings = native::analyze_for(&view, &libc);
    if lazy_dwarf {
        // Also named from DWARF: a Python thread whose report comes from the
        // native analysis (no Python-level wait, e.g. blocked in a C mutex
        // through ctypes; or native holds), which names functions from frames.
        let python_only = |i: usize, tid: i32| {
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
            };
            findings = native::analyze_for(&view, &libc);
        }
    }

    let mut stacks = native.clone();
    let mut python_names = vec![None; snapshot.threads.len()];
    let mut python_name_notes = vec![None; snapshot.threads.len()];
    let mut python_stack_notes: Vec<Option<String>> = vec![None; snapshot.threads.len()];
    let python_version = python.as_ref().map(describe_python);
    if let Some(py) = &python {
        apply_python(
            py,
            &snapshot,
            &native,
            opts.native,
            &mut stacks,
            &mut findings,
            &mut python_names,
        );
        for pt in &py.threads {
            if let Some(i) = snapshot.threads.iter().position(|t| t.tid == pt.tid) {
                python_name_notes[i] = pt.name_note.clone();
                python_stack_notes[i] = pt.stack_note.clone();
            }
        }
        // A thread inside the eval loop with no Python frames to show: its
        // Python state was not there to read (the copy during the stop was
        // not made, and the thread ran on), never an empty stack shown as
        // complete.
        for (i, t) in snapshot.threads.iter().enumerate() {
            let in_eval = native[i].frames.iter().any(|f| {
                f.function
                    .as_deref()
                    .is_some_and(|n| n.starts_with("_PyEval_EvalFrame"))
            });
            let shown = py.threads.iter().any(|pt| pt.tid == t.tid && !pt.frames.is_empty());
            if in_eval && !shown && python_stack_notes[i].is_none() {
                python_stack_notes[i] = Some(cpython::stopcopy::not_reached(if snapshot.core().is_some() {
                    "the thread was in the eval loop, but its thread state had no Python frame in the core"
                } else if snapshot.runtime_copy.made {
                    "the thread was in the eval loop, but its thread state had no Python frame when copied"
                } else {
                    "the thread ended its request before it was read (Python state is read after the stop \
                         when it could not be copied during it)"
                }));
            }
        }
    }
    // A thread that was executing when captured is not waiting for anything,
    // whatever its stack passes through (a Python thread running inside
    // take_gil, a loop polling a lock): its stack is a sample, and the report
    // says so instead of describing it as blocked.
    // One exception: a GIL waiter whose native stack is inside take_gil
    // keeps its GIL wait even when caught outside the condvar's futex (it
    // loops there until it gets the GIL). Without it the GIL deadlocks of
    // tests/python.rs (native_flag_merges_frames_at_eval_calls) went
    // unreported on 3.11-debian and 3.14. Its header still says running.
    for (f, t) in findings.iter_mut().zip(&snapshot.threads) {
        if t.running() {
            if f.wait.as_ref().is_some_and(|w| w.resource.kind != ResourceKind::Gil) {
                f.wait = None;
            }
            f.blocked_in = None;
        }
    }
    for (f, t) in findings.iter_mut().zip(&snapshot.threads) {
        f.sleep = crate::runtimes::syscalls::sleep(t, &memory, &clocks);
    }
    // A handler waiting on a glibc lock its own interrupted frames hold.
    for (i, t) in snapshot.threads.iter().enumerate() {
        crate::runtimes::reentry::infer_self_deadlock(snapshot.pid, t.tid, &native[i], &mut findings[i]);
    }
    let signals = match snapshot.live() {
        Some(live) => signal_way_out(live, python.as_ref()),
        // A core records no signal dispositions: assume a handler, so that
        // no thread is called asleep for good on that account (a cycle is
        // a deadlock all the same).
        None => SignalWayOut::Handler {
            signals: "signals (a core file does not record signal handlers)".into(),
        },
    };
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
        snapshot,
        stacks,
        findings,
        python_names,
        python_name_notes,
        python_stack_notes,
        python_version,
        unexamined,
        libc,
        signals,
    }
}

/// Signals glibc keeps for itself (SIGCANCEL, SIGSETXID) and fault signals
/// (SIGILL, SIGBUS, SIGFPE, SIGSEGV), whose handlers (Rust std's stack
/// overflow guard, crash reporters, CPython's faulthandler) run on faults,
/// not as a way to wake a thread.
const NOT_A_WAY_OUT: &[u32] = &[4, 7, 8, 11, 32, 33];

/// What the process's signal handlers (`SigCgt`) could do for its sleeping
/// threads. In a CPython process, a SIGINT handler proven to be CPython's
/// own `default_int_handler` (it only raises KeyboardInterrupt) is not a
/// way out; any other handler may be Python code that sets or releases
/// anything. Unreadable status: assume a handler (never a false "stuck").
fn signal_way_out(live: crate::capture::Live, python: Option<&PythonProcess>) -> SignalWayOut {
    let caught = match live.status() {
        Ok(s) => s.sig_cgt,
        Err(_) => {
            return SignalWayOut::Handler {
                signals: "signals (/proc/PID/status unreadable)".into(),
            }
        }
    };
    let mut names = Vec::new();
    for sig in 1..=64u32 {
        if caught & (1u64 << (sig - 1)) == 0 || NOT_A_WAY_OUT.contains(&sig) {
            continue;
        }
        if sig == libc::SIGINT as u32 && python.is_some_and(|p| p.sigint_default == Some(true)) {
            continue;
        }
        names.push(signal_name(sig));
    }
    if names.is_empty() {
        return SignalWayOut::None;
    }
    let signals = names.join(", ");
    if python.is_some() {
        SignalWayOut::Python { signals }
    } else {
        SignalWayOut::Handler { signals }
    }
}

fn signal_name(sig: u32) -> String {
    let known = [
        (1, "SIGHUP"),
        (2, "SIGINT"),
        (3, "SIGQUIT"),
        (5, "SIGTRAP"),
        (6, "SIGABRT"),
        (10, "SIGUSR1"),
        (12, "SIGUSR2"),
        (13, "SIGPIPE"),
        (14, "SIGALRM"),
        (15, "SIGTERM"),
        (17, "SIGCHLD"),
        (18, "SIGCONT"),
        (20, "SIGTSTP"),
        (21, "SIGTTIN"),
        (22, "SIGTTOU"),
        (23, "SIGURG"),
        (24, "SIGXCPU"),
        (25, "SIGXFSZ"),
        (26, "SIGVTALRM"),
        (27, "SIGPROF"),
        (28, "SIGWINCH"),
        (29, "SIGIO"),
        (30, "SIGPWR"),
        (31, "SIGSYS"),
    ];
    match known.iter().find(|(n, _)| *n == sig) {
        Some((_, name)) => (*name).to_string(),
        None if sig >= 34 => format!("SIGRTMIN+{}", sig - 34),
        None => format!("signal {sig}"),
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

fn union(mut a: Vec<Hold>, b: Vec<Hold>) -> Vec<Hold> {
    for h in b {
        if !a
            .iter()
            .any(|x| x.resource.address == h.resource.address && x.resource.kind == h.resource.kind)
        {
            a.push(h);
        }
    }
    a
}

fn describe_python(py: &PythonProcess) -> String {
    let (a, b, c) = py.version;
    let ft = if py.free_threaded { " (free-threaded)" } else { "" };
    format!("CPython {a}.{b}.{c}{ft}")
}

/// Put Python stacks, names and findings in place. CPython's findings win over
/// the native ones: the native analysis only sees the futex under a Python
/// lock (a semaphore or a parked thread), CPython sees the lock.
fn apply_python(
    py: &PythonProcess,
    snapshot: &Snapshot,
    native: &[Stack],
    show_native: bool,
    stacks: &mut [Stack],
    findings: &mut [ThreadFindings],
    names: &mut [Option<String>],
) {
    for pt in &py.threads {
        let Some(i) = snapshot.threads.iter().position(|t| t.tid == pt.tid) else {
            continue;
        };
        names[i] = pt.name.clone();
        let merged = cpython::merge_stacks(&native[i], pt);
        // Map native frame indices into the merged stack.
        let native_in_merged: Vec<usize> = merged
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == FrameKind::Native)
            .map(|(k, _)| k)
            .collect();
        let f = &mut findings[i];
        let py_f = &pt.findings;
        let native_site = |s: Option<usize>| s.and_then(|k| native_in_merged.get(k).copied());
        let py_site = |s: Option<usize>| s.and_then(|k| cpython::merged_index(&merged, k));
        let mut wait = match (&py_f.wait, f.wait.take()) {
            (Some(w), _) => Some(crate::runtimes::Wait {
                site_frame: py_site(w.site_frame),
                ..w.clone()
            }),
            // A native wait (a semaphore, a C extension's lock): its site
            // is the program's frame, not the interpreter's or the
            // standard library's code between them.
            (None, Some(w)) => Some(crate::runtimes::Wait {
                site_frame: native_site(w.site_frame).map(|k| cpython::program_site(&merged, k, &snapshot.exe)),
                ..w
            }),
            (None, None) => None,
        };
        let mut holds: Vec<Hold> = f
            .holds
            .drain(..)
            .map(|h| Hold {
                site_frame: native_site(h.site_frame),
                ..h
            })
            .collect();
        holds = union(
            py_f.holds
                .iter()
                .map(|h| Hold {
                    site_frame: py_site(h.site_frame),
                    ..h.clone()
                })
                .collect(),
            holds,
        );
        if py_f.blocked_in.is_some() {
            f.blocked_in = py_f.blocked_in.clone();
        }
        if show_native || pt.frames.is_empty() {
            stacks[i] = merged;
        } else {
            // Python frames only (as py-spy shows them); sites move to the
            // index of the same frame in the Python-only stack, or to the
            // innermost Python frame for a native site.
            let python_only: Vec<usize> = merged
                .frames
                .iter()
                .enumerate()
                .filter(|(_, f)| f.kind == FrameKind::Python)
                .map(|(k, _)| k)
                .collect();
            let remap = |s: Option<usize>| s.map(|k| python_only.iter().position(|&p| p >= k).unwrap_or(0));
            if let Some(w) = wait.as_mut() {
                w.site_frame = remap(w.site_frame);
            }
            for h in &mut holds {
                h.site_frame = remap(h.site_frame);
            }
            let mut frames: Vec<_> = python_only.iter().map(|&k| merged.frames[k].clone()).collect();
            frames.shrink_to_fit();
            stacks[i] = Stack {
                frames,
                error: pt.frame_error.clone().or(merged.error),
                truncated: merged.truncated,
            };
        }
        f.wait = wait;
        f.holds = holds;
    }
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
    let mut v = confirmed_graph(inspections);
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
    v.await_cycles = graph::await_cycles(inspections.iter().filter_map(process_awaits));
    // A thread in an await cycle waits for a task of it, not for the loop's
    // thread it was drawn to in the thread graph: it waits behind nobody.
    let in_cycles: Vec<graph::ThreadId> = v
        .await_cycles
        .iter()
        .flat_map(|c| &c.members)
        .filter_map(|m| match m {
            graph::awaits::Member::Thread { pid, tid, .. } => Some((*pid, *tid)),
            graph::awaits::Member::Task { .. } => None,
        })
        .collect();
    for w in &mut v.waiting_behind {
        w.waiters.retain(|t| !in_cycles.contains(t));
    }
    v.waiting_behind.retain(|w| !w.waiters.is_empty());
    v.pool_starvations = graph::starvations(&facts, threads());
    confirm_starvations(inspections, &mut v);
    graph::settle(&mut v, threads(), &facts);
    confirm_stuck(inspections, &mut v);
    describe_waited_behind(inspections, &mut v);
    add_cross_process_holds(inspections);
    v
}

/// For each thread waiting for input that only known processes can give —
/// reading a pipe, or waiting for a child — those processes (read from
/// /proc now, after the capture). The asleep-for-good rule then asks
/// whether any of them can still act.
fn peers_of(ins: &Inspection) -> std::collections::BTreeMap<i32, graph::Peers> {
    use crate::syscalls::nr;
    let pid = ins.snapshot.pid;
    let mut out = std::collections::BTreeMap::new();
    // A core's PID is no process to look at.
    let Some(live) = ins.snapshot.live() else {
        return out;
    };
    // Every fd a thread reads, looked up in one pass over the fd tables.
    let read_fds: Vec<i32> = ins
        .snapshot
        .threads
        .iter()
        .zip(&ins.findings)
        .filter(|(_, f)| matches!(f.sleep, crate::runtimes::Sleep::Input { .. }))
        .filter_map(|(t, _)| t.syscall.filter(|s| !s.restarted && reads_fd(s.nr)))
        .map(|s| s.args[0] as i64 as i32)
        .collect();
    let ends = if read_fds.is_empty() {
        Default::default()
    } else {
        crate::live::fds::other_ends(live, &read_fds)
    };
    let mut children: Option<Vec<i32>> = None;
    // The target sees its own PID namespace: a PID argument is comparable
    // with host PIDs only when it runs in ours.
    let same_ns = ins.snapshot.ns_pid == pid;
    for (t, f) in ins.snapshot.threads.iter().zip(&ins.findings) {
        let (crate::runtimes::Sleep::Input { .. }, Some(sys)) = (&f.sleep, &t.syscall) else {
            continue;
        };
        if sys.restarted {
            continue;
        }
        let peers = match sys.nr {
            n if reads_fd(n) => {
                let fd = sys.args[0] as i64 as i32;
                let Some((end, pids)) = ends.get(&fd).cloned() else {
                    continue;
                };
                graph::Peers {
                    what: format!("{} (fd {fd})", end.describe()),
                    pids,
                    kind: match end {
                        crate::live::fds::OtherEnd::PipeWriters(_) => graph::PeerKind::Writers,
                        crate::live::fds::OtherEnd::UnixPeer(..) => graph::PeerKind::SocketPeers,
                    },
                }
            }
            nr::WAIT4 | nr::WAITID => {
                let all = children.get_or_insert_with(|| crate::live::fds::children(live)).clone();
                // wait4(pid > 0) / waitid(P_PID, id): that child; else any
                // (a process group counts as all children: more to wait for).
                let one = match sys.nr {
                    nr::WAIT4 => Some(sys.args[0] as i64 as i32).filter(|&p| p > 0),
                    _ => (sys.args[0] == 1).then_some(sys.args[1] as i64 as i32),
                };
                let pids = match one {
                    Some(c) if same_ns && all.contains(&c) => vec![c],
                    Some(_) if !same_ns => continue,
                    Some(_) => continue, // not its child: the call fails at once
                    None => all,
                };
                if pids.is_empty() {
                    continue;
                }
                graph::Peers {
                    what: match one {
                        Some(c) => format!("child PID {c}"),
                        None => format!("its children (PIDs {})", join_pids(&pids)),
                    },
                    pids,
                    kind: graph::PeerKind::Children,
                }
            }
            _ => continue,
        };
        out.insert(t.tid, peers);
    }
    out
}

/// Calls that wait for data on their first argument, an fd: on a pipe or
/// a connected Unix socket, only the holders of the other end can send it.
fn reads_fd(n: i64) -> bool {
    use crate::syscalls::nr;
    matches!(n, nr::READ | nr::READV | nr::RECVFROM | nr::RECVMSG)
}

fn join_pids(pids: &[i32]) -> String {
    pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}

/// A process's tasks with its threads' names and wait edges, for the
/// cycles through tasks and threads ([`graph::awaits`]).
fn process_awaits(ins: &Inspection) -> Option<graph::awaits::ProcessAwaits<'_>> {
    use graph::awaits::AwaitVia;
    let state = ins.asyncio.as_ref()?;
    let pid = ins.snapshot.pid;
    let mut thread_names = std::collections::HashMap::new();
    let mut thread_edges = Vec::new();
    let mut thread_timeouts = std::collections::HashMap::new();
    for (i, t) in ins.snapshot.threads.iter().enumerate() {
        let name = ins
            .python_names
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or_else(|| t.name.clone());
        thread_names.insert(t.tid, name);
        let f = &ins.findings[i];
        if let crate::runtimes::Sleep::Futex { timed: true, .. } = f.sleep {
            thread_timeouts.insert(t.tid, "its wait has a timeout".to_string());
        }
        let Some(w) = &f.wait else { continue };
        let (Some(owner), false) = (w.owner.tid, w.owner.confidence == crate::runtimes::Confidence::Unknown) else {
            continue;
        };
        if w.owner.pid.is_some_and(|p| p != pid) {
            continue;
        }
        thread_edges.push((
            t.tid,
            owner,
            AwaitVia::Resource {
                resource_kind: w.resource.kind,
                address: w.resource.address,
                name: w.resource.name.clone(),
            },
            w.owner.confidence,
            w.owner.evidence.clone(),
        ));
    }
    Some(graph::awaits::ProcessAwaits {
        pid,
        state,
        thread_names,
        thread_edges,
        thread_timeouts,
    })
}

/// What each thread others wait behind is doing, with the fd it waits on
/// described (a socket by its addresses and the process at the other end).
fn describe_waited_behind(inspections: &[Inspection], v: &mut Verdict) {
    for w in &mut v.waiting_behind {
        let (pid, tid) = w.thread;
        let Some(ins) = inspections.iter().find(|i| i.snapshot.pid == pid) else {
            continue;
        };
        let Some(i) = ins.snapshot.threads.iter().position(|t| t.tid == tid) else {
            continue;
        };
        let t = &ins.snapshot.threads[i];
        let live = ins.snapshot.live();
        w.doing = Some(match (&t.syscall, t.running()) {
            (_, true) => "is running (on a CPU, or runnable)".to_string(),
            (Some(sys), _) => {
                let mut s = format!("is in {}", crate::syscalls::describe(sys));
                // What the fd is can only be asked of a live process.
                let fd =
                    live.and_then(|l| crate::syscalls::waited_fd(sys).and_then(|fd| l.fd_description(fd)));
                if let Some(fd) = fd {
                    s.push_str(&format!(" — {fd}"));
                }
                s
            }
            (None, _) => format!("is in state {}", t.state),
        });
    }
}

/// A starved pool rests on one instant too, and its futures and queue are
/// read after the threads were let go: its workers must stay still (as for
/// [`confirm_stuck`]) or the starvation is dropped.
fn confirm_starvations(inspections: &[Inspection], v: &mut Verdict) {
    v.pool_starvations.retain(|s| {
        if !is_live(inspections, s.pool.pid) {
            return true; // a core is one instant: nothing moves
        }
        let workers = graph::Stuck {
            pid: s.pool.pid,
            whole_process: false,
            threads: s.workers.clone(),
        };
        (0..STUCK_CONFIRM_WINDOWS).any(|_| moved_in_window(inspections, &[&workers])[0].is_empty())
    });
}

/// A lock in shared memory waited for by a thread of one inspected process
/// and owned by a thread of another: the owner's findings only saw its own
/// process's waits, so it did not list the lock among what it holds. Added
/// after the verdict (which does not use holds across processes), for the
/// reports' per-thread `holds`.
/// A `multiprocessing` lock shared by several inspected processes has one
/// semaphore in one shared mapping, and a SemLock object in each process:
/// the holder's process records the holder (`cpython::semlocks`), the
/// waiter's sees count 0. The waiter's wait gets the holder that another
/// process's hold on the same mapping names.
fn own_shared_mp_locks(inspections: &mut [Inspection]) {
    let mut owners: Vec<(usize, usize, crate::runtimes::Owner)> = Vec::new();
    for (a, ins) in inspections.iter().enumerate() {
        for (i, f) in ins.findings.iter().enumerate() {
            let Some(w) = &f.wait else { continue };
            let Some(key) = w.resource.shared_key else { continue };
            if w.resource.kind != ResourceKind::PyMpLock || w.owner.tid.is_some() {
                continue;
            }
            let held = inspections
                .iter()
                .filter(|b| b.snapshot.pid != ins.snapshot.pid)
                .find_map(|b| {
                    b.findings.iter().zip(&b.snapshot.threads).find_map(|(g, t)| {
                        g.holds
                            .iter()
                            .find(|h| h.resource.kind == ResourceKind::PyMpLock && h.resource.shared_key == Some(key))
                            .map(|h| crate::runtimes::Owner {
                                tid: Some(t.tid),
                                pid: Some(b.snapshot.pid),
                                confidence: h.confidence,
                                evidence: format!("{} in PID {}", h.evidence, b.snapshot.pid),
                                dead: false,
                            })
                    })
                });
            if let Some(o) = held {
                owners.push((a, i, o));
            }
        }
    }
    for (a, i, o) in owners {
        if let Some(w) = inspections[a].findings[i].wait.as_mut() {
            w.owner = o;
        }
    }
}

fn add_cross_process_holds(inspections: &mut [Inspection]) {
    let mut found: Vec<(usize, usize, crate::runtimes::Hold)> = Vec::new();
    for ins in inspections.iter() {
        for (i, f) in ins.findings.iter().enumerate() {
            let Some(w) = &f.wait else { continue };
            let (Some(opid), Some(otid)) = (w.owner.pid, w.owner.tid) else {
                continue;
            };
            if w.owner.dead || opid == ins.snapshot.pid {
                continue;
            }
            let Some(k) = inspections.iter().position(|x| x.snapshot.pid == opid) else {
                continue;
            };
            let Some(j) = inspections[k].snapshot.threads.iter().position(|t| t.tid == otid) else {
                continue;
            };
            found.push((
                k,
                j,
                crate::runtimes::Hold {
                    resource: w.resource.clone(),
                    confidence: w.owner.confidence,
                    evidence: format!(
                        "{} (thread {} of PID {} waits for it)",
                        w.owner.evidence, ins.snapshot.threads[i].tid, ins.snapshot.pid
                    ),
                    site_frame: None,
                },
            ));
        }
    }
    for (k, j, h) in found {
        crate::runtimes::owners::merge_holds(&mut inspections[k].findings, vec![(j, h)]);
    }
}

/// How long a stuck process must stay perfectly still before it is reported.
pub const STUCK_CONFIRM: Duration = Duration::from_millis(50);

/// A stuck verdict rests on one instant: a busy process whose threads
/// contend for locks can be caught with every thread in a futex wait, and
/// its Python evidence is read after the threads were let go. So every
/// thread of a stuck process (or every listed thread, for threads behind an
/// orphaned lock) must, over [`STUCK_CONFIRM`], not run at all (same
/// context-switch count) and stay in the system call it was captured in
/// (same number and first argument; a capture interrupted timed call may
/// show as restart_syscall). GIL waiters are exempt from the count: they
/// wake every 5 ms by design. A thread that moved clears the verdict for its
/// process: it is reported as not asleep for good, with that reason.
fn confirm_stuck(inspections: &[Inspection], v: &mut Verdict) {
    if v.stuck.is_empty() {
        return;
    }
    // A core is one instant: there is nothing to watch (and its PID may
    // now be an unrelated live process).
    let mut pending: Vec<&graph::Stuck> = v.stuck.iter().filter(|s| is_live(inspections, s.pid)).collect();
    // A thread just let go by the capture may still be on its way back into
    // its wait (runnable on a loaded machine): a few windows, and one in
    // which nothing of a process moved is enough for it. All processes of a
    // tree share each window, so ten stuck processes cost one window, not ten.
    let mut last: Vec<Vec<(i32, i32)>> = Vec::new();
    for _ in 0..STUCK_CONFIRM_WINDOWS {
        if pending.is_empty() {
            break;
        }
        last = moved_in_window(inspections, &pending);
        let still: Vec<usize> = (0..pending.len()).filter(|&k| !last[k].is_empty()).collect();
        pending = still.iter().map(|&k| pending[k]).collect();
        last = still.into_iter().map(|k| std::mem::take(&mut last[k])).collect();
    }
    let moved: Vec<(i32, i32)> = last.into_iter().flatten().collect();
    if moved.is_empty() {
        return;
    }
    let pids: std::collections::BTreeSet<i32> = moved.iter().map(|m| m.0).collect();
    v.stuck.retain(|s| !pids.contains(&s.pid));
    for a in v.asleep.iter_mut().filter(|a| pids.contains(&a.thread.0)) {
        if a.asleep_for_good {
            a.asleep_for_good = false;
            a.why = if moved.contains(&a.thread) {
                "it ran (or left its wait) while lockdump confirmed the process was stuck: it is not".into()
            } else {
                "another thread of the process ran while lockdump confirmed it was stuck: it is not".into()
            };
        }
    }
}

/// Whether `pid` is an inspected live process (not a core file's).
fn is_live(inspections: &[Inspection], pid: i32) -> bool {
    inspections
        .iter()
        .any(|i| i.snapshot.pid == pid && i.snapshot.live().is_some())
}

/// Windows of [`STUCK_CONFIRM`] tried before a stuck verdict is dropped.
const STUCK_CONFIRM_WINDOWS: usize = 5;

/// For each of `stucks`, the threads that ran or left their captured call
/// during one shared window of [`STUCK_CONFIRM`] (and any thread that appeared).
fn moved_in_window(inspections: &[Inspection], stucks: &[&graph::Stuck]) -> Vec<Vec<(i32, i32)>> {
    // A thread that was woken but has not run yet still shows its wait and
    // its old switch count: only a sleeping one (state S) is still.
    let look = |pid: i32, tid: i32| -> Option<(Option<SyscallLine>, Option<u64>, bool)> {
        let live = crate::live::Live::process(pid);
        let line = live.thread_syscall(tid).ok();
        let status = live.thread_status(tid).ok()?;
        Some((line, status.ctxt_switches, status.state == 'S'))
    };
    // Only threads of live processes can be looked at again.
    let threads_of = |s: &graph::Stuck| -> Vec<(i32, i32)> {
        s.threads
            .iter()
            .copied()
            .filter(|&(p, _)| is_live(inspections, p))
            .collect()
    };
    let before: Vec<Vec<_>> = stucks
        .iter()
        .map(|s| threads_of(s).iter().map(|&(p, t)| look(p, t)).collect())
        .collect();
    std::thread::sleep(STUCK_CONFIRM);
    stucks
        .iter()
        .zip(&before)
        .map(|(s, before)| moved_after(inspections, s, &threads_of(s), before, &look))
        .collect()
}

/// Per thread's look: its syscall line, context switches, and whether it sleeps.
type Look = Option<(Option<SyscallLine>, Option<u64>, bool)>;

/// The threads of `s` whose look now differs from `before` (or that appeared).
fn moved_after(
    inspections: &[Inspection],
    s: &graph::Stuck,
    threads: &[(i32, i32)],
    before: &[Look],
    look: &dyn Fn(i32, i32) -> Look,
) -> Vec<(i32, i32)> {
    let mut moved = Vec::new();
    if s.whole_process {
        let now = crate::live::Live::process(s.pid).threads().unwrap_or_default();
        if let Some(&t) = now.iter().find(|t| !s.threads.contains(&(s.pid, **t))) {
            moved.push((s.pid, t));
        }
    }
    for (&(pid, tid), b) in threads.iter().zip(before) {
        let Some(ins) = inspections.iter().find(|i| i.snapshot.pid == pid) else {
            continue;
        };
        let Some(i) = ins.snapshot.threads.iter().position(|t| t.tid == tid) else {
            continue;
        };
        let gil = ins.findings[i]
            .wait
            .as_ref()
            .is_some_and(|w| w.resource.kind == ResourceKind::Gil);
        let captured = ins.snapshot.threads[i].syscall;
        let still = |line: &Option<SyscallLine>| match (line, captured) {
            (Some(SyscallLine::InSyscall { nr, args, .. }), Some(c)) => {
                (*nr == c.nr || *nr == SYS_RESTART_SYSCALL || c.restarted) && args[0] == c.args[0]
            }
            _ => false,
        };
        let ok = match (b, look(pid, tid)) {
            (Some((l1, s1, asleep1)), Some((l2, s2, asleep2))) => {
                still(l1) && still(&l2) && (gil || (s1.is_some() && *s1 == s2 && *asleep1 && asleep2))
            }
            _ => false,
        };
        if !ok {
            moved.push((pid, tid));
        }
    }
    moved
}

fn confirmed_graph(inspections: &mut [Inspection]) -> Verdict {
    for _ in 0..4 {
        let v = graph_of(inspections);
        let mut moved = false;
        for &(pid, tid) in v.deadlocks.iter().flat_map(|d| &d.threads) {
            let Some(ins) = inspections.iter_mut().find(|i| i.snapshot.pid == pid) else {
                continue;
            };
            let Some(i) = ins.snapshot.threads.iter().position(|t| t.tid == tid) else {
                continue;
            };
            let no_stop = ins.snapshot.no_stop;
            // Evidence from a core is all of one instant: nothing to confirm.
            let Some(live) = ins.snapshot.live() else {
                continue;
            };
            let Some(w) = ins.findings[i].wait.as_mut() else {
                continue;
            };
            // Python lock state (and a multiprocessing lock's SemLock) is
            // read after the threads were let go.
            let read_after_capture = no_stop
                || matches!(
                    w.resource.kind,
                    ResourceKind::PyLock | ResourceKind::PyRLock | ResourceKind::PyMpLock
                );
            if !read_after_capture {
                continue;
            }
            let Err(why) = crate::capture::recheck::wait_still_holds(live, &ins.snapshot.threads[i], no_stop) else {
                continue;
            };
            w.owner = Owner::unknown(why);
            moved = true;
        }
        if !moved {
            return v;
        }
    }
    graph_of(inspections)
}

fn graph_of(inspections: &[Inspection]) -> Verdict {
    graph::analyze(inspections.iter().flat_map(|ins| {
        ins.snapshot
            .threads
            .iter()
            .zip(&ins.findings)
            .map(move |(t, f)| (ins.snapshot.pid, t.tid, f))
    }))
}
