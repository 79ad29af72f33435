//! The `lockdump` command: wires the pipeline stages together and maps the
//! outcome to the documented exit codes. No analysis logic lives here.

use std::io::Write;
use std::panic::AssertUnwindSafe;

use lockdump::cli::{Cli, Command, RunArgs};
use lockdump::report::{self, style::Style};
use lockdump::{exit, CaptureOptions, InspectError, Inspection, ModuleCache, Options};

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
    let cli = Cli::parse_args();
    let code = match std::panic::catch_unwind(AssertUnwindSafe(|| run(cli))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("lockdump: {e}");
            exit::CANNOT_INSPECT
        }
        Err(_) => exit::CANNOT_INSPECT,
    };
    lockdump::hurry_prefetch();
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
///
/// glibc only: musl's allocator has no such knob (`mallopt` is a no-op
/// there and the libc crate does not declare it for musl).
#[cfg(target_env = "gnu")]
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

#[cfg(not(target_env = "gnu"))]
fn tune_malloc() {}

fn run(cli: Cli) -> Result<i32, InspectError> {
    let style = Style::detect(cli.color).with_all_threads(cli.all_threads);
    if cli.no_cache {
        lockdump::configure_disk_cache(None);
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
    let watch = cli.watch;
    let output = Output {
        json: cli.json,
        dot: cli.dot,
        html: cli.html.clone(),
        watch,
        all_threads: cli.all_threads,
    };
    match cli.command {
        Some(Command::DemoChild) => lockdump::demo::child(),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lockdump", &mut out);
            emit(&String::from_utf8_lossy(&out));
            Ok(exit::OK)
        }
        Some(Command::Demo) => {
            let (_child, pid) = lockdump::demo::start_child().map_err(InspectError::Usage)?;
            let out = diagnose(&[pid], &opts, &output, &style)?;
            emit(&out.0);
            Ok(out.1)
        }
        Some(Command::Run(args)) => run_watchdog(&args, &opts, &output),
        None if !cli.core.is_empty() => {
            let sysroot = cli.sysroot.as_deref().unwrap_or(std::path::Path::new("/"));
            let (text, code) = diagnose_core(&cli.core, sysroot, cli.exe.as_deref(), &opts, &output, &style)?;
            emit(&text);
            Ok(code)
        }
        None if cli.tree => {
            let mut pids: Vec<i32> = Vec::new();
            for &root in &cli.pids {
                lockdump::Live::process(root)
                    .status()
                    .map_err(|_| InspectError::NoSuchProcess(root))?;
                for p in lockdump::tree::members(root) {
                    if !pids.contains(&p) {
                        pids.push(p);
                    }
                }
            }
            let (text, code) = diagnose_members(&pids, &opts, &output, &style)?;
            emit(&text);
            Ok(code)
        }
        None => {
            let (text, code) = diagnose(&cli.pids, &opts, &output, &style)?;
            emit(&text);
            Ok(code)
        }
    }
}

/// `lockdump run`: the watchdog calls back with the tree's PIDs when a dump
/// is due; the report goes to stderr or `--report FILE`.
fn run_watchdog(args: &RunArgs, opts: &Options, output: &Output) -> Result<i32, InspectError> {
    use lockdump::watchdog::{self, RunOptions};
    let run = RunOptions {
        command: args.command.clone(),
        timeout: args.timeout,
        kill_after: args.kill_after,
        keep: args.keep,
        on_signals: args.on_signal.clone(),
    };
    let shown = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    watchdog::run(&run, |pids, reason| {
        let style = Style::plain().with_all_threads(output.all_threads);
        let mut out = if output.json {
            String::new()
        } else {
            format!(
                "lockdump run: `{shown}` {reason}; its process tree: {} (PIDs {})\n\n",
                if pids.len() == 1 {
                    "1 process".to_string()
                } else {
                    format!("{} processes", pids.len())
                },
                pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            )
        };
        // The report only: a picture of a timed-out job is --html's job.
        let report = Output {
            json: output.json,
            dot: false,
            html: output.html.clone(),
            watch: confirm_for(&reason, output.watch),
            all_threads: output.all_threads,
        };
        match diagnose_members(pids, opts, &report, &style) {
            Ok((text, _)) => out.push_str(&text),
            Err(e) => out.push_str(&format!("lockdump: {e}\n")),
        }
        let written = match &args.report {
            Some(path) => std::fs::write(path, &out).map_err(|e| (path.display().to_string(), e)),
            None => std::io::stderr()
                .write_all(out.as_bytes())
                .map_err(|e| ("stderr".into(), e)),
        };
        if let Err((to, e)) = written {
            eprintln!("lockdump: cannot write the report to {to}: {e}");
        }
    })
}

/// How long `lockdump run` confirms a hang before it reports it: what the
/// user gave (`--confirm 0` turns it off), else [`RUN_CONFIRM`], except for
/// a dump on a termination signal: the job is being killed, and a report
/// now beats a confirmed one too late.
fn confirm_for(
    reason: &lockdump::watchdog::DumpReason,
    asked: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    use lockdump::watchdog::DumpReason;
    match (asked, reason) {
        (Some(d), _) => Some(d),
        (None, DumpReason::Signal(s)) if *s != libc::SIGUSR1 && *s != libc::SIGUSR2 => None,
        (None, _) => Some(RUN_CONFIRM),
    }
}

/// `lockdump run`'s default `--confirm`: long enough to see a deadlock's
/// threads never wake, short beside a CI job's timeout.
const RUN_CONFIRM: std::time::Duration = std::time::Duration::from_secs(2);

/// A tree's members: like [`diagnose`], but a member that exits before or
/// while it is inspected is left out (it is not part of the hang); an error
/// only if no member could be inspected.
fn diagnose_members(
    pids: &[i32],
    opts: &Options,
    output: &Output,
    style: &Style,
) -> Result<(String, i32), InspectError> {
    let gone = |e: &InspectError| {
        matches!(
            e,
            InspectError::NoSuchProcess(_) | InspectError::ExitedDuringDump(_) | InspectError::Zombie(_)
        )
    };
    let mut live: Vec<i32> = Vec::with_capacity(pids.len());
    let mut last = None;
    for &pid in pids {
        match lockdump::Live::process(pid).status() {
            Ok(st) if st.state != 'Z' => live.push(pid),
            Ok(_) => last = Some(InspectError::Zombie(pid)),
            Err(_) => last = Some(InspectError::NoSuchProcess(pid)),
        }
    }
    loop {
        if live.is_empty() {
            return Err(last.unwrap_or(InspectError::Usage("no process to inspect".into())));
        }
        match diagnose(&live, opts, output, style) {
            Err(e) if gone(&e) => {
                let Some(p) = e.pid() else { return Err(e) };
                live.retain(|&x| x != p);
                last = Some(e);
            }
            other => return other,
        }
    }
}

/// What to print, and the optional HTML file.
struct Output {
    json: bool,
    dot: bool,
    html: Option<std::path::PathBuf>,
    /// `--watch DURATION`: sample the processes after the first snapshot.
    watch: Option<std::time::Duration>,
    /// `--all-threads`: no folding in the text report (also `lockdump run`'s).
    all_threads: bool,
}

/// Inspect every PID, analyze them as one graph, render. Returns the output
/// and the exit code; nothing is printed until everything succeeded.
fn diagnose(pids: &[i32], opts: &Options, output: &Output, style: &Style) -> Result<(String, i32), InspectError> {
    let captured_at = std::time::SystemTime::now();
    // Ahead of normal threads from here (lockdump::raise_priority): on a
    // CPU-bound target every preemption before the capture costs a round of
    // all the target's runnable threads. Raised here, not at startup:
    // `lockdump run` forks the command it watches first, and a child would
    // inherit SCHED_FIFO.
    let raised = lockdump::raise_priority();
    let cache = ModuleCache::new();
    let mut inspections = Vec::with_capacity(pids.len());
    // Still raised (SCHED_FIFO, if permitted) for the analysis and the
    // rendering only if a target turned out to be CPU-bound: it takes every
    // CPU again as soon as it is resumed, and at normal priority the answer
    // would come seconds later (lockdump::raise_priority). Otherwise
    // normal priority costs nothing, and is lowered to before the analysis.
    let mut raised = Some(raised);
    let mut busy = false;
    let mut lower_unless_busy = |s: &lockdump::Snapshot, last: bool| {
        busy |= s.cpu_bound();
        if last && !busy {
            raised = None;
        }
    };
    if opts.capture.no_stop {
        // Every process sampled before any is analyzed: a cycle's lock words
        // must be read after all its threads were sampled (inspect::verdict).
        let mut snapshots: Vec<lockdump::Snapshot> = Vec::with_capacity(pids.len());
        for &pid in pids {
            if !snapshots.iter().any(|s| s.pid.get() == pid) {
                snapshots.push(lockdump::capture(pid, opts)?);
            }
        }
        for (i, s) in snapshots.iter().enumerate() {
            lower_unless_busy(s, i + 1 == snapshots.len());
        }
        inspections.extend(snapshots.into_iter().map(|s| lockdump::analyze(s, opts, &cache)));
    }
    for &pid in pids {
        if opts.capture.no_stop || inspections.iter().any(|i: &Inspection| i.snapshot.pid.get() == pid) {
            continue;
        }
        let snapshot = lockdump::capture(pid, opts)?;
        lower_unless_busy(&snapshot, true);
        inspections.push(lockdump::analyze(snapshot, opts, &cache));
    }
    let mut verdict = lockdump::verdict(&mut inspections);
    if let Some(d) = output.watch.filter(|d| !d.is_zero()) {
        let mut watched = lockdump::watch(&inspections, &cache, d);
        lockdump::confirm_cycles(&mut watched, &verdict.deadlocks);
        verdict.watch = Some(watched);
    }
    // The report reads nothing from the target: its copies go back before it
    // is built, which is when the heap peaks.
    for i in &mut inspections {
        i.snapshot.release_copies();
    }
    let out = render(&inspections, &verdict, output, style, captured_at)?;
    // The process exits right after printing: freeing every frame of every
    // thread and the parsed DWARF first (tens of thousands of allocations
    // for a 1000-thread pool) would only delay the exit.
    // The raised priority, if any, is kept until the process exits: writing
    // the report and exiting are what whoever waits for lockdump waits for.
    std::mem::forget((inspections, verdict, cache, raised));
    Ok(out)
}

/// `--core FILE...`: the same pipeline from core files' snapshots, all of
/// them one wait-for graph (each names the others' threads as owners of
/// process-shared locks). A file that is not an x86_64 core, or holds no
/// thread, is the one error (exit 2); everything else that is wrong with
/// it becomes a note in the report.
fn diagnose_core(
    paths: &[std::path::PathBuf],
    sysroot: &std::path::Path,
    exe: Option<&std::path::Path>,
    opts: &Options,
    output: &Output,
    style: &Style,
) -> Result<(String, i32), InspectError> {
    use lockdump::CoreFile;
    let mut cores: Vec<CoreFile> = Vec::with_capacity(paths.len());
    for path in paths {
        let core = CoreFile::open(path, sysroot, exe).map_err(InspectError::Core)?;
        if let Some(same) = cores.iter().find(|c| c.pid() == core.pid()) {
            return Err(InspectError::Core(format!(
                "{} and {} are both of PID {}: give one core per process",
                same.path.display(),
                path.display(),
                core.pid()
            )));
        }
        cores.push(core);
    }
    let all: Vec<(i32, i32)> = cores
        .iter()
        .flat_map(|c| c.threads.iter().map(move |t| (t.tid, c.pid())))
        .collect();
    for c in &mut cores {
        let pid = c.pid();
        c.set_peers(all.iter().copied().filter(|&(_, p)| p != pid).collect());
    }
    let written = cores[0].written.unwrap_or_else(std::time::SystemTime::now);
    let cache = ModuleCache::new();
    let mut inspections: Vec<Inspection> = cores
        .into_iter()
        .map(|c| lockdump::inspect_core(std::sync::Arc::new(c), opts, &cache))
        .collect();
    let verdict = lockdump::verdict(&mut inspections);
    for i in &mut inspections {
        i.snapshot.release_copies();
    }
    let out = render(&inspections, &verdict, output, style, written)?;
    std::mem::forget((inspections, verdict, cache));
    Ok(out)
}

/// The report in the requested form, and the exit code; the HTML file
/// written first (an unsaved report is an error, not a silent loss).
fn render(
    inspections: &[Inspection],
    verdict: &lockdump::Verdict,
    output: &Output,
    style: &Style,
    captured_at: std::time::SystemTime,
) -> Result<(String, i32), InspectError> {
    let code = verdict.kind().exit_code();
    let ctx = report::Context::read(inspections, captured_at);
    // One document, built once; every output renders it.
    let doc = report::document::Report::build(inspections, verdict, &ctx);
    let out = if output.json {
        doc.to_json()
    } else if output.dot {
        report::dot(&doc)
    } else {
        report::text(&doc, inspections, style, &ctx)
    };
    let html = output
        .html
        .as_ref()
        .map(|_| report::html(&doc, inspections, &ctx, code));
    if let (Some(path), Some(html)) = (&output.html, html) {
        // Written before anything is printed: a report that could not be
        // saved is an error (exit 2, nothing on stdout), not a silent loss.
        std::fs::write(path, html)
            .map_err(|e| InspectError::Usage(format!("cannot write the HTML report to {}: {e}", path.display())))?;
    }
    Ok((out, code))
}

fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`lockdump -p 1 | head`) is not an error worth a panic.
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}
