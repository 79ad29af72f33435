//! The `lockdump` command: wires the pipeline stages together and maps the
//! outcome to the documented exit codes. No analysis logic lives here.

use std::io::Write;
use std::panic::AssertUnwindSafe;

use lockdump::cli::{Cli, Command};
use lockdump::error::{exit, InspectError};
use lockdump::inspect::{self, Options};
use lockdump::report::{self, style::Style};
use lockdump::symbols::ModuleCache;
use lockdump::target::capture::CaptureOptions;

fn main() {
    tune_malloc();
    // A bug must not end in a backtrace or a half-written report: print one
    // line and exit 2. The capture guard has detached the target by the time
    // the unwinding reaches main (and the kernel detaches on exit regardless).
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("lockdump: internal error: {msg}{at}; the target was detached; please report this bug");
    }));
    // Ahead of normal threads from the start (lockdump::target::priority):
    // on a CPU-bound target every preemption before the capture costs a
    // round of all the target's runnable threads. Lowered again after the
    // capture unless the target is CPU-bound (see `diagnose`).
    let raised = lockdump::target::priority::raise();
    let cli = Cli::parse_args();
    let code = match std::panic::catch_unwind(AssertUnwindSafe(|| run(cli, raised))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("lockdump: {e}");
            exit::CANNOT_INSPECT
        }
        Err(_) => exit::CANNOT_INSPECT,
    };
    lockdump::symbols::prefetch::hurry();
    std::process::exit(code);
}

/// glibc's allocator, tuned for a short-lived process: grow the heap 16 MiB
/// at a time instead of by what each allocation needs (86 `brk` calls per
/// run on the 1000-thread benchmark, 3 with this). Untouched reserve costs
/// no memory.
///
/// Not `M_ARENA_MAX=1`, although it would spare the DWARF prefetch thread's
/// own arena its page-by-page growth (~3500 `mprotect` calls per run): that
/// thread runs under `SCHED_IDLE`, and sharing the arena lock with it lets
/// the capturing thread wait, mid-stop, on a lock held by a thread that
/// gets no CPU on a loaded machine.
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

fn run(cli: Cli, raised: lockdump::target::priority::Raised) -> Result<i32, InspectError> {
    let style = Style::detect(cli.color);
    if cli.no_cache {
        lockdump::symbols::diskcache::configure(None);
    }
    let opts = Options {
        capture: CaptureOptions {
            stack_bytes: cli.stack_bytes,
            stop_timeout: std::time::Duration::from_secs(cli.stop_timeout.max(1)),
            no_stop: cli.no_stop,
        },
        max_frames: cli.max_frames,
        python: !cli.no_python,
        native: cli.native,
    };
    match cli.command {
        Some(Command::DemoChild) => lockdump::demo::child(),
        Some(Command::Demo) => {
            let (_child, pid) = lockdump::demo::start_child().map_err(InspectError::Usage)?;
            let out = diagnose(&[pid], &opts, cli.json, &style, raised)?;
            emit(&out.0);
            Ok(out.1)
        }
        None => {
            let (text, code) = diagnose(&cli.pids, &opts, cli.json, &style, raised)?;
            emit(&text);
            Ok(code)
        }
    }
}

/// Inspect every PID, analyze them as one graph, render. Returns the output
/// and the exit code; nothing is printed until everything succeeded.
fn diagnose(
    pids: &[i32],
    opts: &Options,
    json: bool,
    style: &Style,
    raised: lockdump::target::priority::Raised,
) -> Result<(String, i32), InspectError> {
    let cache = ModuleCache::new();
    let mut inspections = Vec::with_capacity(pids.len());
    // Still raised (SCHED_FIFO, if permitted) for the analysis and the
    // rendering only if a target turned out to be CPU-bound: it takes every
    // CPU again as soon as it is resumed, and at normal priority the answer
    // would come seconds later (lockdump::target::priority). Otherwise
    // normal priority costs nothing, and is lowered to before the analysis.
    let mut raised = Some(raised);
    let mut busy = false;
    let mut lower_unless_busy = |s: &lockdump::target::Snapshot, last: bool| {
        busy |= s.cpu_bound();
        if last && !busy {
            raised = None;
        }
    };
    if opts.capture.no_stop {
        // Every process sampled before any is analyzed: a cycle's lock words
        // must be read after all its threads were sampled (inspect::verdict).
        let mut snapshots: Vec<lockdump::target::Snapshot> = Vec::with_capacity(pids.len());
        for &pid in pids {
            if !snapshots.iter().any(|s| s.pid == pid) {
                snapshots.push(inspect::capture(pid, opts)?);
            }
        }
        for (i, s) in snapshots.iter().enumerate() {
            lower_unless_busy(s, i + 1 == snapshots.len());
        }
        inspections.extend(snapshots.into_iter().map(|s| inspect::analyze(s, opts, &cache)));
    }
    for &pid in pids {
        if opts.capture.no_stop || inspections.iter().any(|i: &inspect::Inspection| i.snapshot.pid == pid) {
            continue;
        }
        let snapshot = inspect::capture(pid, opts)?;
        lower_unless_busy(&snapshot, true);
        inspections.push(inspect::analyze(snapshot, opts, &cache));
    }
    let verdict = inspect::verdict(&mut inspections);
    let code = exit::of(verdict.kind());
    let out = if json {
        report::render_json(&inspections, &verdict)
    } else {
        report::render_text(&inspections, &verdict, style)
    };
    // The process exits right after printing: freeing every frame of every
    // thread and the parsed DWARF first (tens of thousands of allocations
    // for a 1000-thread pool) would only delay the exit.
    // The raised priority, if any, is kept until the process exits: writing
    // the report and exiting are what whoever waits for lockdump waits for.
    std::mem::forget((inspections, verdict, cache, raised));
    Ok((out, code))
}

fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`lockdump -p 1 | head`) is not an error worth a panic.
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}
