//! The pipeline for one process: capture, then (with the target running
//! again) unwind, symbolize and analyze; and the verdict over all processes.
//! The CLI calls this; so do tests.

use std::time::{Duration, Instant};

use crate::error::InspectError;
use crate::graph::{self, Part, Unexamined, Verdict};
use crate::proc::{self, SyscallLine};
use crate::runtimes::cpython::{self, PythonProcess};
use crate::runtimes::libc::{detect as detect_libc, LibcInfo};
use crate::runtimes::{native, Hold, Owner, ProcessView, ResourceKind, SymbolLookup, ThreadFindings};
use crate::stacks::{FrameKind, Stack};
use crate::symbols::{prefetch, ModuleCache, ProcessSymbols};
use crate::target::capture::{capture_with, CaptureOptions};
use crate::target::{RegisterSource, Snapshot, ThreadSnapshot, Tracer, SYS_RESTART_SYSCALL};
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
    /// `CPython 3.13.5 (free-threaded)`, if the target runs CPython.
    pub python_version: Option<String>,
    /// Parts of the process no analysis covered (the rest of the report stands).
    pub unexamined: Vec<Unexamined>,
    /// The target's C library, as far as it could be identified, and why.
    pub libc: LibcInfo,
    /// Wall time of analysis after capture.
    pub analysis_time: Duration,
}

pub fn inspect(pid: i32, opts: &Options, cache: &ModuleCache) -> Result<Inspection, InspectError> {
    let snapshot = capture(pid, opts)?;
    Ok(analyze(snapshot, opts, cache))
}

/// The capture stage of [`inspect`]. With `--no-stop` and several
/// processes, the caller captures all of them before analyzing any, so that
/// every lock word is read after every thread was sampled (see [`verdict`]).
pub fn capture(pid: i32, opts: &Options) -> Result<Snapshot, InspectError> {
    // Symbolization needs the DWARF of the mapped files right after capture:
    // prepare it meanwhile, when capture takes long enough for that to pay
    // (see PREFETCH_MIN_THREADS). For a CPython target most of it is not
    // needed (see `lazy_dwarf` below), so none is prepared ahead.
    capture_with(pid, &opts.capture, |maps, threads| {
        if threads >= PREFETCH_MIN_THREADS {
            prefetch::start(pid, maps, opts.python && !opts.native)
        }
    })
}

/// The stages of [`inspect`] after capture: unwinding, symbols, runtimes.
pub fn analyze(snapshot: Snapshot, opts: &Options, cache: &ModuleCache) -> Inspection {
    let started = Instant::now();
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
    }
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
    Inspection {
        analysis_time: started.elapsed(),
        snapshot,
        stacks,
        findings,
        python_names,
        python_version,
        unexamined,
        libc,
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
            (None, Some(w)) => Some(crate::runtimes::Wait {
                site_frame: native_site(w.site_frame),
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
/// checked against [`wait_still_holds`]; the owner of one that moved is not
/// trusted (it becomes unknown, with that reason) and the graph is built
/// again.
pub fn verdict(inspections: &mut [Inspection]) -> Verdict {
    let mut v = confirmed_graph(inspections);
    v.unexamined = inspections.iter().flat_map(|i| i.unexamined.iter().cloned()).collect();
    v
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
            let Some(w) = ins.findings[i].wait.as_mut() else {
                continue;
            };
            let read_after_capture = no_stop || matches!(w.resource.kind, ResourceKind::PyLock | ResourceKind::PyRLock);
            if !read_after_capture {
                continue;
            }
            let Err(why) = wait_still_holds(pid, &ins.snapshot.threads[i], no_stop) else {
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

/// Whether a cycle member's captured wait still holds now, and so held
/// through everything read since its capture; `Err` says why not.
///
/// Sampled without a stop (`no_stop`): the thread must be in the
/// same system call with the same arguments, stack and instruction pointers
/// (a valid /proc/TID/syscall line means the kernel saw it off CPU), and
/// have the same count of context switches as when sampled. Off CPU at both
/// looks with no switch between, it did not run in between: it neither left
/// its wait nor took or released anything, so every owner read meanwhile
/// agrees with its wait. (A thread that took the lock and came back to wait
/// on it at the same place shows the same syscall line, but not the same
/// count.) A thread stopped by its debugger (state t) passes: it cannot run
/// either. One look; a thread that ran is not stuck.
///
/// After a stop (the stop itself switches contexts, so no count helps):
/// the thread must still be blocked in the system call (same number, same
/// first argument: the futex) it was captured in. A timed wait interrupted
/// by the stop continues as `restart_syscall` with its arguments still in
/// the registers. A thread seen between two waits (a signal handled, a
/// timed wait renewed) gets a few more looks.
fn wait_still_holds(pid: i32, t: &ThreadSnapshot, no_stop: bool) -> Result<(), &'static str> {
    const LEFT: &str = "the thread left this wait after the capture, so it was not stuck: the owner found afterwards \
                        is not trusted";
    const RAN: &str = "the thread ran after --no-stop sampled its wait (its wait and the lock's owner were not read \
                       at one instant), so it was not stuck: the owner is not trusted";
    let Some(captured) = t.syscall else {
        return Err(LEFT);
    };
    if no_stop {
        let Some(switches) = t.switches else {
            return Err(RAN);
        };
        let same_line = matches!(
            proc::syscall(pid, t.tid),
            Ok(SyscallLine::InSyscall { nr, args, sp, pc })
                if nr == captured.nr && args == captured.args && sp == t.regs.rsp && pc == t.regs.rip
        );
        // The count after the syscall line: see above.
        let same_count = proc::task_status(pid, t.tid).is_ok_and(|s| s.ctxt_switches == Some(switches));
        return if same_line && same_count { Ok(()) } else { Err(RAN) };
    }
    if still_in_captured_syscall(pid, t, captured) {
        Ok(())
    } else {
        Err(LEFT)
    }
}

fn still_in_captured_syscall(pid: i32, t: &ThreadSnapshot, captured: crate::target::SyscallState) -> bool {
    for look in 0..5 {
        if look > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        match proc::syscall(pid, t.tid) {
            Ok(SyscallLine::InSyscall { nr, args, .. }) => {
                let same_call = nr == captured.nr || nr == SYS_RESTART_SYSCALL || captured.restarted;
                if same_call && args[0] == captured.args[0] {
                    return true;
                }
            }
            Ok(_) => {}
            Err(_) => return false, // gone
        }
    }
    false
}
