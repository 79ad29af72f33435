//! Stop every thread, copy what analysis needs, resume.
//!
//! The pause is kept to the minimum: per-thread /proc facts (name, state,
//! wchan) are read *before* the stop (they describe what the thread was doing,
//! not the ptrace stop), the memory map likewise; while stopped lockdump only
//! reads registers and copies stack bytes, in one batched `process_vm_readv`.
//!
//! Threads are stopped with `PTRACE_SEIZE` + `PTRACE_INTERRUPT`, which, unlike
//! `PTRACE_ATTACH`, sends no SIGSTOP that could leak into the target. The set of
//! threads is re-read from /proc until no new thread appears (threads created
//! during the attach are caught by the re-scan; stopped threads cannot create
//! more). Every seized thread is detached on every path: normal return, error,
//! a termination signal (see [`super::signals`]) and panic (the [`Attached`]
//! guard's `Drop`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::signals::DeferSignals;
use super::{
    LeftRunning, RegisterSource, Registers, RuntimeCopy, Snapshot, StopHarm, SyscallState, ThreadSnapshot, Tracer,
    SYS_RESTART_SYSCALL,
};
use crate::error::{permission_denied, InspectError};
use crate::ids::Tid;
use crate::memory::CopiedRegion;
use crate::proc::task_files::{keep_open_budget, TaskFiles};
use crate::proc::{self, parse::PF_KTHREAD, MapEntry, SyscallLine};
use crate::syscalls::OnStop;

/// Red zone below SP that leaf functions may use without moving SP (x86_64 psABI).
const RED_ZONE: u64 = 128;
/// At most this many iovecs per process_vm_readv call (the kernel's UIO_MAXIOV).
const MAX_IOV: usize = 1024;
/// How many times to re-scan /proc/PID/task for threads created during the attach.
const MAX_RESCANS: usize = 100;
/// Most threads lockdump stops at once. Stopping is linear in threads (a
/// seize, an interrupt and a wait each), and so is the pause every thread
/// sees; past this the pause would be seconds. Such processes are refused
/// with an error that points to `--no-stop`.
pub const MAX_THREADS: usize = 65_536;
/// Most stack bytes copied for all threads together. With many threads each
/// gets less than `--stack-bytes` (deeper frames are then read live, after
/// the target resumed), so memory stays bounded however many threads there are.
pub const MAX_TOTAL_STACK_BYTES: usize = 256 << 20;
/// How long detaching waits, in total, for seized threads whose stop was
/// never reported (a thread in uninterruptible sleep). The kernel detaches
/// any that remain when lockdump exits.
const DETACH_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Bytes of each thread's stack copied above SP while stopped. Frames
    /// deeper than this are unwound from live memory after the target resumes.
    pub stack_bytes: usize,
    /// Give up waiting for a thread to stop after this long.
    pub stop_timeout: Duration,
    /// Never stop the target: use /proc/TID/syscall's SP and PC only.
    pub no_stop: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            stack_bytes: 32 * 1024,
            stop_timeout: Duration::from_secs(5),
            no_stop: false,
        }
    }
}

/// /proc facts about one thread, read before it is stopped.
struct ThreadInfo {
    name: String,
    state: char,
    wchan: String,
    ns_tid: i32,
    /// `/proc/TID/syscall` of a thread that was sleeping (state `S`; only
    /// those can be woken by a stop) in a stopping capture, and what a stop
    /// would do to that call. Right before its interrupt the line is read
    /// again; if it is unchanged, this verdict (which may have needed a look
    /// at a descriptor) is reused, keeping that look out of the pause.
    syscall: Option<(SyscallLine, Option<Hazard>)>,
    /// `/proc/TID/schedstat` as read just before that syscall line, and the
    /// file kept open: if it reads the same right before the interrupt, the
    /// thread has not been on a CPU since (its third field counts the times
    /// it was switched in), so it still sits in the call of `syscall` and
    /// that verdict holds without reading the line again. That read, of
    /// `/proc/TID/syscall`, waits on the run queue of the CPU the thread last
    /// ran on, which during a stop is busy taking the threads already
    /// interrupted into their stops: ~6 µs a thread inside the pause
    /// (bench/README). `None` past `task_files::KEEP_OPEN_MAX` descriptors, or when
    /// the kernel keeps no such counts (all zero).
    unmoved: Option<(std::fs::File, Box<str>)>,
}

/// Why a thread must not be stopped: its call fails with EINTR, or returns
/// short, on a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hazard {
    call: &'static str,
    harm: StopHarm,
}

/// `PIPE_BUF` (Linux): a write of at most this many bytes to a pipe is
/// atomic, so it has written nothing while it waits, and a stop restarts it.
const PIPE_BUF: u64 = 4096;

/// What a stop would do to a thread whose `/proc/TID/syscall` reads `line`:
/// `Some` if its call would fail with EINTR or return short
/// ([`crate::syscalls::on_stop`]). For `read`/`write` that depends on the
/// descriptor, so `/proc/PID/fd/N` is looked at (only for threads in those
/// calls): a socket, or for a write of more than `PIPE_BUF` bytes (or a
/// `writev`, whose length is in the target's memory) a pipe or FIFO.
fn stop_hazard(pid: i32, line: &SyscallLine) -> Option<Hazard> {
    use crate::syscalls::nr;
    let SyscallLine::InSyscall { nr, args, .. } = *line else {
        return None;
    };
    let call = crate::syscalls::kernel_name(nr)?;
    let harm = match crate::syscalls::on_stop(nr) {
        OnStop::Restarted => return None,
        OnStop::Interrupted => StopHarm::Eintr,
        OnStop::InterruptedIfSocketTimeout => StopHarm::EintrIfSocketTimeout,
        OnStop::InterruptedIfOnSocket => {
            let fd = args[0] as i32;
            let target = proc::fd_target(pid, fd).ok()?;
            let target = target.to_string_lossy();
            let long_write = nr == nr::WRITEV || (nr == nr::WRITE && args[2] > PIPE_BUF);
            if target.starts_with("socket:") {
                StopHarm::EintrIfSocketTimeout
            } else if long_write && (target.starts_with("pipe:") || proc::fd_is_fifo(pid, fd)) {
                StopHarm::ShortWrite
            } else {
                return None;
            }
        }
    };
    Some(Hazard { call, harm })
}

/// A thread capture leaves running (see [`leave_running`]).
#[derive(Debug, Clone, Copy)]
struct Unstopped {
    line: SyscallLine,
    hazard: Hazard,
    /// Context switches read just before `line`; `None` if the thread never
    /// showed the same line twice in a row.
    switches: Option<u64>,
}

/// How often [`leave_running`] looks for a thread to show the same
/// syscall line twice in a row.
const LEAVE_LOOKS: usize = 3;

/// Decide, right before interrupting `tid`, whether to leave it running:
/// re-read its `/proc/TID/syscall` (the pre-stop pass may be tens of
/// milliseconds old on a big process; this shrinks the window in which a
/// thread can enter such a call unseen to the time between this read and
/// the interrupt) and, if its call would fail with EINTR on a stop, read its
/// context-switch count and the line again, so that the same two reads after
/// the stack copy can prove the thread did not run meanwhile.
/// A thread whose `/proc/TID/schedstat` is unchanged since the read before
/// the stop skips the re-read (see [`ThreadInfo::unmoved`]).
/// `None`: stop it as usual (including when it exited: seizing then fails).
fn leave_running(files: &mut TaskFiles, pid: i32, tid: i32, info: Option<&ThreadInfo>) -> Option<Unstopped> {
    // Off CPU in a call a stop does not break when its line was read before
    // the stop, and not switched in since: stop it. (A line of "running"
    // proves nothing here: the thread may have entered a call since without
    // being switched in again.)
    if let Some(ThreadInfo {
        unmoved: Some((file, before)),
        syscall: Some((line, None)),
        ..
    }) = info
    {
        if *line != SyscallLine::Running && files.read_again(file).is_ok_and(|now| *now == **before) {
            return None;
        }
    }
    let read_line = |files: &mut TaskFiles| proc::parse::parse_syscall(&files.read(tid, "syscall").ok()?);
    let mut line = read_line(files)?;
    let mut hazard = match info.and_then(|i| i.syscall) {
        Some((before, hazard)) if before == line => hazard,
        _ => stop_hazard(pid, &line),
    }?;
    for _ in 0..LEAVE_LOOKS {
        let switches = files
            .read(tid, "status")
            .ok()
            .and_then(|t| proc::parse::parse_switches(&t));
        let now = read_line(files)?;
        if now == line {
            return Some(Unstopped { line, hazard, switches });
        }
        // It moved on: stop it unless it is now in another such call.
        line = now;
        hazard = stop_hazard(pid, &line)?;
    }
    // Going from one such call to the next: never stop it; its stack is
    // marked as possibly torn.
    Some(Unstopped {
        line,
        hazard,
        switches: None,
    })
}

/// Capture a snapshot of process `pid`.
pub fn capture(pid: i32, opts: &CaptureOptions) -> Result<Snapshot, InspectError> {
    capture_with(pid, opts, |_, _| {})
}

/// [`capture`], calling `maps_read` with the memory map and the number of
/// threads as soon as both are read, before the per-thread reads and the
/// stop (to start work that needs only the map, such as preparing DWARF, in
/// parallel with them).
pub fn capture_with(
    pid: i32,
    opts: &CaptureOptions,
    maps_read: impl FnOnce(&[MapEntry], usize),
) -> Result<Snapshot, InspectError> {
    capture_hooked(pid, opts, maps_read, &mut |_, _| RuntimeCopy::default())
}

/// Work a runtime analyzer does while every thread is stopped, after the
/// registers, stacks and wait words are copied and before the detach: it
/// reads the target (through the thread given, see [`super::Live::mm_tid`]),
/// knowing the captured threads, and returns what it copied. It runs inside
/// the pause, so it must bound its own time and bytes (CPython's does:
/// `runtimes::cpython::stopcopy`). Not called under `--no-stop`.
pub type WhileStopped<'a> = &'a mut dyn FnMut(i32, &[ThreadSnapshot]) -> RuntimeCopy;

/// [`capture_with`], with `while_stopped` run during the stop (see [`WhileStopped`]).
pub fn capture_hooked(
    pid: i32,
    opts: &CaptureOptions,
    maps_read: impl FnOnce(&[MapEntry], usize),
    while_stopped: WhileStopped,
) -> Result<Snapshot, InspectError> {
    let started = Instant::now();
    // Ahead of the target's threads until the snapshot is taken (see
    // `super::priority`: on a target with more runnable threads than CPUs
    // the reads below and the stop would otherwise wait behind them, and a
    // stopped part of the target with them). Dropped on return.
    let _raised = super::priority::raise();
    let target = preflight(pid, opts.no_stop)?;
    let (pid, mm) = (target.pid, target.mm_tid);
    let status = proc::status(pid).map_err(|e| after_preflight(pid, "reading status", e))?;
    let ns_pid = status.ns_tgids.last().copied().unwrap_or(pid);
    let in_pid_namespace = status.ns_pids.len() > 1;
    let exe = proc::exe(mm).unwrap_or_default();
    let cmdline = proc::cmdline(mm).unwrap_or_default();
    let auxv = proc::auxv(mm).map_err(|e| after_preflight(pid, "reading auxv", e))?;
    let mut maps = proc::maps(mm).map_err(|e| after_preflight(pid, "reading maps", e))?;

    let tids = proc::tasks(pid).map_err(|e| after_preflight(pid, "listing threads", e))?;
    if tids.len() > MAX_THREADS && !opts.no_stop {
        return Err(InspectError::TooManyThreads {
            pid,
            count: tids.len(),
            max: MAX_THREADS,
        });
    }
    maps_read(&maps, tids.len());
    let mut files = TaskFiles::open(pid).ok_or(InspectError::ExitedDuringDump(pid))?;
    let mut infos = thread_infos(&mut files, pid, &tids, in_pid_namespace, !opts.no_stop);
    if infos.is_empty() {
        return Err(InspectError::ExitedDuringDump(pid));
    }

    let (threads, wait_memory, runtime_copy, pause) = if opts.no_stop {
        // Nothing is stopped, so nothing copied now would be more consistent than a live read.
        (
            sample_without_stopping(pid, mm, &infos, &maps, opts),
            Vec::new(),
            RuntimeCopy::default(),
            Duration::ZERO,
        )
    } else {
        stop_and_copy(
            pid,
            mm,
            &mut infos,
            &mut files,
            &maps,
            opts,
            in_pid_namespace,
            while_stopped,
        )?
    };
    if threads.is_empty() {
        return Err(InspectError::ExitedDuringDump(pid));
    }
    // New mappings (stacks of threads created during the attach) are rare;
    // re-read the map only if some thread's SP is not covered.
    if threads
        .iter()
        .any(|t| t.regs.rsp != 0 && MapEntry::find(&maps, t.regs.rsp).is_none())
    {
        if let Ok(m) = proc::maps(mm) {
            maps = m;
        }
    }
    Ok(Snapshot {
        pid: crate::ids::Pid(pid),
        source: super::Source::live(pid, mm),
        leader_exited: target.leader_exited,
        tracer: target.tracer,
        ns_pid,
        exe,
        cmdline,
        threads,
        maps,
        auxv,
        pause,
        capture_time: started.elapsed(),
        no_stop: opts.no_stop,
        wait_memory,
        runtime_copy,
        copies_released: false,
    })
}

/// A /proc read failed after [`preflight`] found the process: if the process
/// is gone now, it exited during the dump (not "no such process", which would
/// send the user to check a PID that was right).
fn after_preflight(pid: i32, what: &'static str, e: std::io::Error) -> InspectError {
    match InspectError::from_proc(pid, what, e) {
        InspectError::NoSuchProcess(_) => InspectError::ExitedDuringDump(pid),
        other => other,
    }
}

/// What [`preflight`] found out about the target.
struct Preflight {
    /// The thread-group ID (a TID passed by the user means its process).
    pid: i32,
    /// See [`super::Live::mm_tid`].
    mm_tid: i32,
    leader_exited: bool,
    /// Only in `--no-stop` mode; the stopping mode refuses a traced process.
    tracer: Option<Tracer>,
}

/// Refuse targets lockdump cannot or must not inspect, with the reason.
///
/// `--no-stop` never uses ptrace, so another tracer (gdb left attached) does
/// not stand in its way: it is only reported. A leader in state Z is a
/// zombie process only if no thread is left: after `pthread_exit` in main
/// the other threads live on (and may be the ones deadlocked).
fn preflight(pid: i32, no_stop: bool) -> Result<Preflight, InspectError> {
    if pid <= 0 {
        return Err(InspectError::NoSuchProcess(pid));
    }
    let status = proc::status(pid).map_err(|e| InspectError::from_proc(pid, "reading status", e))?;
    let pid = if status.tgid > 0 { status.tgid } else { pid };
    if pid == std::process::id() as i32 {
        return Err(InspectError::IsSelf(pid));
    }
    let stat = proc::stat(pid).map_err(|e| InspectError::from_proc(pid, "reading stat", e))?;
    if stat.flags & PF_KTHREAD != 0 {
        return Err(InspectError::KernelThread(pid));
    }
    let (mm_tid, leader_exited) = match stat.state {
        'Z' | 'X' => (live_thread(pid).ok_or(InspectError::Zombie(pid))?, true),
        'T' => return Err(InspectError::Stopped(pid)),
        _ => (pid, false),
    };
    // An exited leader shows no tracer even when the live threads have one.
    let tracer_pid = if leader_exited {
        proc::status(mm_tid).map_or(0, |s| s.tracer_pid)
    } else {
        status.tracer_pid
    };
    let mut tracer = None;
    if tracer_pid != 0 {
        if !no_stop {
            return Err(already_traced(pid, tracer_pid));
        }
        tracer = Some(Tracer {
            pid: tracer_pid,
            name: tracer_name(tracer_pid),
        });
    }
    Ok(Preflight {
        pid,
        mm_tid,
        leader_exited,
        tracer,
    })
}

/// A thread of `pid` that has not exited, if any.
fn live_thread(pid: i32) -> Option<i32> {
    proc::tasks(pid)
        .ok()?
        .into_iter()
        .find(|&tid| proc::task_status(pid, tid).is_ok_and(|s| !matches!(s.state, 'Z' | 'X')))
}

fn tracer_name(tracer: i32) -> String {
    proc::comm(tracer, tracer).unwrap_or_else(|_| "unknown".into())
}

fn already_traced(pid: i32, tracer: i32) -> InspectError {
    InspectError::AlreadyTraced {
        pid,
        tracer,
        tracer_name: tracer_name(tracer),
    }
}

/// Most threads one reader of [`thread_infos`] handles (more readers start
/// only for larger processes: starting one costs about as much as 5 reads).
const TIDS_PER_READER: usize = 128;
/// Most reader threads, the capturing thread included.
const MAX_READERS: usize = 4;
/// The [`ThreadInfo`] of every thread of `tids` still alive, read through
/// `files` and, for a large process, helper threads. Each thread's reads are independent syscalls (~20 µs of kernel
/// time for `stat` and `wchan`, the largest part of capture before the stop
/// for a big pool), so they are split between this thread and up to 3 more,
/// as many as there are CPUs. Helpers run with signals blocked; the share of
/// one that cannot start, or fails, is read here.
fn thread_infos(
    files: &mut TaskFiles,
    pid: i32,
    tids: &[i32],
    in_pid_namespace: bool,
    stopping: bool,
) -> BTreeMap<i32, ThreadInfo> {
    let budget = std::sync::atomic::AtomicUsize::new(if stopping { keep_open_budget() } else { 0 });
    let budget = &budget;
    let read = |files: &mut TaskFiles, chunk: &[i32]| -> Vec<(i32, ThreadInfo)> {
        chunk
            .iter()
            .filter_map(|&tid| Some((tid, thread_info(files, pid, tid, in_pid_namespace, stopping, budget)?)))
            .collect()
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let readers = cpus.min(MAX_READERS).min(tids.len() / TIDS_PER_READER).max(1);
    let chunks: Vec<&[i32]> = tids.chunks(tids.len().div_ceil(readers).max(1)).collect();
    let Some((mine, others)) = chunks.split_first() else {
        return BTreeMap::new();
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = super::signals::with_signals_blocked(|| {
            others
                .iter()
                .map(|&c| {
                    let helper = move || Some(read(&mut TaskFiles::open(pid)?, c));
                    std::thread::Builder::new().spawn_scoped(s, helper).ok()
                })
                .collect()
        })
        .unwrap_or_else(|| others.iter().map(|_| None).collect());
        let mut infos: BTreeMap<i32, ThreadInfo> = read(files, mine).into_iter().collect();
        for (chunk, helper) in others.iter().zip(helpers) {
            let part = helper.and_then(|h| h.join().ok().flatten());
            infos.extend(part.unwrap_or_else(|| read(files, chunk)));
        }
        infos
    })
}

fn thread_info(
    files: &mut TaskFiles,
    pid: i32,
    tid: i32,
    in_pid_namespace: bool,
    stopping: bool,
    keep_open: &std::sync::atomic::AtomicUsize,
) -> Option<ThreadInfo> {
    // A thread that exits between listing and reading is simply skipped.
    // One read gives both the name and the state (`comm` is inside `stat`).
    let stat = proc::parse::parse_stat(&files.read(tid, "stat").ok()?)?;
    let name = stat.comm;
    // Same text as proc::wchan: "0" means not sleeping in the kernel.
    let wchan = match files.read(tid, "wchan") {
        Ok(w) if w != "0" => w.into_owned(),
        _ => String::new(),
    };
    let ns_tid = if in_pid_namespace {
        proc::task_status(pid, tid)
            .ok()
            .and_then(|s| s.ns_pids.last().copied())
            .unwrap_or(tid)
    } else {
        tid
    };
    // Only a stopping capture needs it, and only for sleeping threads: a
    // thread in uninterruptible sleep (D) is not woken by a stop, and one
    // that runs is looked at again right before its interrupt anyway.
    let mut unmoved = None;
    let syscall = if stopping && stat.state == 'S' {
        use std::sync::atomic::Ordering::Relaxed;
        // schedstat first, then the line (see `ThreadInfo::unmoved`).
        if keep_open.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok() {
            unmoved = files.open_file(tid, "schedstat").ok().and_then(|f| {
                let text: Box<str> = files.read_again(&f).ok()?.into();
                // All zero: schedstats off (or never ran): proves nothing.
                (text.split_whitespace().nth(2)? != "0").then_some((f, text))
            });
            if unmoved.is_none() {
                keep_open.fetch_add(1, Relaxed);
            }
        }
        let parsed = files
            .read(tid, "syscall")
            .ok()
            .and_then(|t| proc::parse::parse_syscall(&t))
            .map(|line| (line, stop_hazard(pid, &line)));
        if parsed.is_none() {
            unmoved = None;
        }
        parsed
    } else {
        None
    };
    Some(ThreadInfo {
        name,
        state: stat.state,
        wchan,
        ns_tid,
        syscall,
        unmoved,
    })
}

/// What a seized thread is doing, as far as capture knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracee {
    /// Seized and interrupted; its stop has not been reported yet.
    Stopping,
    /// In a ptrace stop; `Some(sig)` if a signal arrived that must be re-delivered.
    Stopped { pending: Option<i32> },
    /// Exited during capture.
    Gone,
}

/// Owns the seized threads; detaches all stopped ones when dropped, so every
/// exit path (including `?` and panics) resumes the target.
struct Attached {
    tracees: BTreeMap<i32, Tracee>,
    first_stop: Option<Instant>,
}

impl Attached {
    fn detach_all(&mut self) {
        let deadline = Instant::now() + DETACH_WAIT;
        for (&tid, state) in self.tracees.iter_mut() {
            match *state {
                Tracee::Stopped { pending } => {
                    let sig = pending.and_then(|s| Signal::try_from(s).ok());
                    let _ = ptrace::detach(Pid::from_raw(tid), sig);
                }
                // Seized but not yet stopped: PTRACE_DETACH needs a stopped
                // tracee. Wait briefly for its stop (at most DETACH_WAIT for
                // all such threads together), then detach; if it never
                // stops, the kernel detaches it when lockdump exits.
                Tracee::Stopping => {
                    let p = Pid::from_raw(tid);
                    loop {
                        match waitpid(p, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(1))
                            }
                            Ok(WaitStatus::Stopped(_, sig)) => {
                                let _ = ptrace::detach(p, Some(sig));
                                break;
                            }
                            Ok(WaitStatus::PtraceEvent(..)) => {
                                let _ = ptrace::detach(p, None);
                                break;
                            }
                            _ => break,
                        }
                    }
                }
                Tracee::Gone => {}
            }
            *state = Tracee::Gone;
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.detach_all();
    }
}

fn stop_and_copy(
    pid: i32,
    mm_tid: i32,
    infos: &mut BTreeMap<i32, ThreadInfo>,
    files: &mut TaskFiles,
    maps: &[MapEntry],
    opts: &CaptureOptions,
    in_pid_namespace: bool,
    while_stopped: WhileStopped,
) -> Result<(Vec<ThreadSnapshot>, Vec<CopiedRegion>, RuntimeCopy, Duration), InspectError> {
    let signals = DeferSignals::install();
    let mut att = Attached {
        tracees: BTreeMap::new(),
        first_stop: None,
    };

    // Seize + interrupt every thread, except those a stop would break (their
    // call would fail with EINTR); re-scan until the set is stable.
    let mut left: BTreeMap<i32, Unstopped> = BTreeMap::new();
    let mut tids: Vec<i32> = infos.keys().copied().collect();
    for round in 0..MAX_RESCANS {
        let mut seized_any = false;
        for &tid in &tids {
            if att.tracees.contains_key(&tid) || left.contains_key(&tid) {
                continue;
            }
            if let Some(u) = leave_running(files, pid, tid, infos.get(&tid)) {
                left.insert(tid, u);
                continue;
            }
            match seize(tid) {
                Ok(()) => {
                    if att.first_stop.is_none() {
                        att.first_stop = Some(Instant::now());
                    }
                    att.tracees.insert(tid, Tracee::Stopping);
                    seized_any = true;
                }
                Err(Errno::ESRCH) => {} // exited meanwhile
                Err(Errno::EPERM) => {
                    if seize_after_eperm(pid, tid)? {
                        if att.first_stop.is_none() {
                            att.first_stop = Some(Instant::now());
                        }
                        att.tracees.insert(tid, Tracee::Stopping);
                        seized_any = true;
                    }
                }
                Err(e) => {
                    return Err(InspectError::Io {
                        pid,
                        what: "attaching",
                        source: std::io::Error::from(e),
                    });
                }
            }
        }
        wait_for_stops(pid, &mut att, &signals, opts.stop_timeout)?;
        if !seized_any && round > 0 {
            break;
        }
        tids = match proc::tasks(pid) {
            Ok(t) => t,
            Err(_) => return Err(InspectError::ExitedDuringDump(pid)),
        };
        if tids.len() > MAX_THREADS {
            return Err(InspectError::TooManyThreads {
                pid,
                count: tids.len(),
                max: MAX_THREADS,
            });
        }
        if tids.iter().all(|t| att.tracees.contains_key(t) || left.contains_key(t)) {
            break;
        }
        for &tid in &tids {
            if let std::collections::btree_map::Entry::Vacant(slot) = infos.entry(tid) {
                // Created during the attach: its /proc facts are read now (it is
                // about to be stopped, so its state may already show the stop).
                if let Some(info) = thread_info(files, pid, tid, in_pid_namespace, true, &Default::default()) {
                    slot.insert(info);
                }
            }
        }
    }

    let stopped: Vec<(i32, Option<i32>)> = att
        .tracees
        .iter()
        .filter_map(|(&tid, s)| match s {
            Tracee::Stopped { pending } => Some((tid, *pending)),
            _ => None,
        })
        .collect();
    if stopped.is_empty() && left.is_empty() {
        return Err(InspectError::ExitedDuringDump(pid));
    }

    // Registers (of the threads left running: SP and PC from /proc), then
    // all stacks in one batched read.
    let mut threads = Vec::with_capacity(stopped.len());
    // A thread as /proc described it before the stop, with its registers.
    let described = |tid: i32, regs: Registers, syscall: Option<SyscallState>, register_source: RegisterSource| {
        let info = infos.get(&tid);
        ThreadSnapshot {
            tid: Tid(tid),
            name: info.map(|i| i.name.clone()).unwrap_or_default(),
            state: info.map(|i| i.state).unwrap_or('?'),
            wchan: info.map(|i| i.wchan.clone()).unwrap_or_default(),
            syscall,
            regs,
            register_source,
            pending_signal: None,
            left_running: None,
            stack: CopiedRegion::default(),
            ns_tid: info.map(|i| i.ns_tid).unwrap_or(tid),
            switches: None,
        }
    };
    for &(tid, pending) in &stopped {
        let Ok(raw) = ptrace::getregs(Pid::from_raw(tid)) else {
            continue;
        };
        let regs = Registers::from_user_regs(&raw);
        threads.push(ThreadSnapshot {
            pending_signal: pending,
            ..described(tid, regs, syscall_from_regs(&regs), RegisterSource::Ptrace)
        });
    }
    for (&tid, u) in &left {
        let (regs, syscall, register_source) = registers_from_line(u.line);
        threads.push(ThreadSnapshot {
            left_running: Some(LeftRunning {
                call: u.hazard.call,
                harm: u.hazard.harm,
                stack_consistent: false,
            }),
            ..described(tid, regs, syscall, register_source)
        });
    }
    threads.sort_unstable_by_key(|t| t.tid);
    // Before the wait words are copied, so that those of threads about to
    // enter a futex wait are copied too.
    find_entering_calls(&mut threads, &super::ProcessMemory::new(mm_tid));
    let budget = stack_budget(opts.stack_bytes, threads.len());
    copy_stacks(mm_tid, &mut threads, maps, budget);
    let wait_memory = copy_wait_words(mm_tid, &threads, maps);
    // Issue 22: a runtime's own state (CPython's thread states, frames and
    // thread names) is copied here too, while nothing can change it, so that
    // it describes the same instant as the stacks.
    let mut runtime_copy = while_stopped(mm_tid, &threads);

    att.detach_all();
    let pause = att.first_stop.map(|t| t.elapsed()).unwrap_or_default();
    // Cut to stay disjoint from the stacks and wait words (same instant, so
    // nothing is lost). Only copies are touched: after the detach, where it
    // costs no pause (1000 Python threads: ~2100 regions against ~1000
    // stacks, ~33 ms inside the pause when each region sorted every stack).
    if !runtime_copy.regions.is_empty() {
        let taken: Vec<(u64, u64)> = threads
            .iter()
            .map(|t| (t.stack.start, t.stack.end()))
            .chain(wait_memory.iter().map(|r| (r.start, r.end())))
            .collect();
        runtime_copy.regions = cut_regions(std::mem::take(&mut runtime_copy.regions), &taken);
    }
    if let Some(sig) = signals.received() {
        return Err(InspectError::Interrupted(sig));
    }
    // Did each thread left running stay put while its stack was copied?
    // Line, then switches, the reverse of the reads before: a thread that ran
    // in between is either running at the line read, or has been switched
    // out since and counted (see `proc::parse::parse_switches`). Read after
    // the detach, to keep the pause short: unchanged now means unchanged
    // during the copy.
    for t in threads.iter_mut() {
        let (Some(l), Some(u)) = (t.left_running.as_mut(), left.get(&t.tid.get())) else {
            continue;
        };
        let line = files
            .read(t.tid.get(), "syscall")
            .ok()
            .and_then(|x| proc::parse::parse_syscall(&x));
        let switches = files
            .read(t.tid.get(), "status")
            .ok()
            .and_then(|x| proc::parse::parse_switches(&x));
        l.stack_consistent = line == Some(u.line) && u.switches.is_some() && switches == u.switches;
    }
    Ok((threads, wait_memory, runtime_copy, pause))
}

/// `regions` (sorted by start, disjoint) less the `taken` ranges: the bytes
/// of each region outside every taken range, as new regions. A region no
/// taken range overlaps is kept as it is (not copied).
fn cut_regions(regions: Vec<CopiedRegion>, taken: &[(u64, u64)]) -> Vec<CopiedRegion> {
    // Sorted and merged once, so each region finds the taken ranges it
    // overlaps by a binary search (ends are then increasing too).
    let mut sorted: Vec<(u64, u64)> = taken.iter().copied().filter(|(s, e)| s < e).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (s, e) in sorted {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut out = Vec::with_capacity(regions.len());
    for r in regions {
        let first = merged.partition_point(|&(_, e)| e <= r.start);
        let overlapping: Vec<(u64, u64)> = merged[first..]
            .iter()
            .copied()
            .take_while(|&(s, _)| s < r.end())
            .collect();
        if overlapping.is_empty() {
            out.push(r);
            continue;
        }
        for (s, e) in disjoint_windows(vec![(r.start, r.end())], &overlapping) {
            if let Some(bytes) = r.slice(s, (e - s) as usize) {
                out.push(CopiedRegion {
                    start: s,
                    bytes: bytes.to_vec(),
                });
            }
        }
    }
    out
}

/// Bytes copied before and after each futex address: enough for every object
/// the lock analyzers read around a futex word (a glibc rwlock starts up to 12
/// bytes before its futex and is 56 bytes long; a condvar's futex is 40 or 44
/// bytes into it; a mutex is 40 bytes from its futex on).
const WAIT_WINDOW: u64 = 64;

/// Copy the memory around every futex word a stopped thread sleeps on.
///
/// Lock state read after the target resumes can disagree with the registers
/// captured during the stop: on a busy lock, a thread captured in its futex
/// wait may own the lock a moment later, and a live read of `__owner` then
/// shows a thread "waiting for itself" (a false self-deadlock). Copied now,
/// the owner fields are from the same instant as the waits.
fn copy_wait_words(pid: i32, threads: &[ThreadSnapshot], maps: &[MapEntry]) -> Vec<CopiedRegion> {
    let windows: Vec<(u64, u64)> = threads
        .iter()
        .filter_map(|t| t.syscall.as_ref())
        .filter(|s| s.nr == crate::syscalls::nr::FUTEX || s.nr == SYS_RESTART_SYSCALL)
        .filter_map(|s| {
            let addr = s.args[0];
            let m = MapEntry::find(maps, addr).filter(|m| m.readable)?;
            let start = (addr.saturating_sub(WAIT_WINDOW) & !7).max(m.start);
            let end = addr.saturating_add(WAIT_WINDOW).min(m.end);
            (end > start).then_some((start, end))
        })
        .collect();
    let stacks: Vec<(u64, u64)> = threads
        .iter()
        .filter(|t| !t.stack.bytes.is_empty())
        .map(|t| (t.stack.start, t.stack.end()))
        .collect();
    disjoint_windows(windows, &stacks)
        .into_iter()
        .filter_map(|(start, end)| {
            let mut region = CopiedRegion {
                start,
                bytes: vec![0u8; (end - start) as usize],
            };
            read_prefix(pid, &mut region);
            (!region.bytes.is_empty()).then_some(region)
        })
        .collect()
}

/// Merge overlapping or touching `windows` and cut out the `taken` ranges
/// (stacks copied already, at the same instant), so that the result is a
/// sorted list of disjoint ranges none of which overlaps `taken`.
fn disjoint_windows(mut windows: Vec<(u64, u64)>, taken: &[(u64, u64)]) -> Vec<(u64, u64)> {
    windows.retain(|(s, e)| s < e);
    windows.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(windows.len());
    for (s, e) in windows {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut taken: Vec<(u64, u64)> = taken.iter().copied().filter(|(s, e)| s < e).collect();
    taken.sort_unstable();
    let mut out = Vec::with_capacity(merged.len());
    for (mut s, e) in merged {
        for &(ts, te) in &taken {
            if te <= s || ts >= e {
                continue;
            }
            if ts > s {
                out.push((s, ts));
            }
            s = s.max(te);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

/// How often to retry a thread whose seize failed with EPERM while /proc
/// shows no tracer on it (see [`seize_after_eperm`]).
const SEIZE_RETRIES: usize = 3;

/// PTRACE_SEIZE of `tid` failed with EPERM: another tracer has the thread, or
/// lockdump may not trace it at all. Ask the *thread's* status which one: the
/// main thread's TracerPid is not enough, because another tracer (a second
/// lockdump, for one) detaches thread by thread and may already have let the
/// main thread go while it still holds this one. If the thread shows no
/// tracer, that tracer let go between our attempt and our look, so try again.
/// The kernel also answers EPERM for a thread that is exiting (it has an exit
/// state): such a thread is gone, not forbidden.
/// Returns whether the thread is now seized (`false`: it exited meanwhile).
fn seize_after_eperm(pid: i32, tid: i32) -> Result<bool, InspectError> {
    let me = std::process::id() as i32;
    for _ in 0..SEIZE_RETRIES {
        match proc::task_status(pid, tid) {
            Ok(s) if matches!(s.state, 'Z' | 'X') => return Ok(false),
            Ok(s) if s.tracer_pid != 0 && s.tracer_pid != me => return Err(already_traced(pid, s.tracer_pid)),
            Ok(_) => {}
            Err(_) => return Ok(false),
        }
        match seize(tid) {
            Ok(()) => return Ok(true),
            Err(Errno::ESRCH) => return Ok(false),
            Err(Errno::EPERM) => continue,
            Err(e) => {
                return Err(InspectError::Io {
                    pid,
                    what: "attaching",
                    source: std::io::Error::from(e),
                })
            }
        }
    }
    Err(permission_denied(pid))
}

fn seize(tid: i32) -> Result<(), Errno> {
    ptrace::seize(Pid::from_raw(tid), ptrace::Options::empty())?;
    if let Err(e) = ptrace::interrupt(Pid::from_raw(tid)) {
        // Seized but could not be interrupted (it is exiting): let it go.
        let _ = ptrace::detach(Pid::from_raw(tid), None);
        return Err(e);
    }
    Ok(())
}

/// Collect stop reports until every seized thread is stopped or gone.
fn wait_for_stops(pid: i32, att: &mut Attached, signals: &DeferSignals, timeout: Duration) -> Result<(), InspectError> {
    let deadline = Instant::now() + timeout;
    let mut pending = att.tracees.values().filter(|s| **s == Tracee::Stopping).count();
    // One timer for the whole wait: SIGALRM interrupts a stuck waitpid (EINTR).
    signals.alarm(timeout);
    let result = wait_loop(pid, att, signals, deadline, &mut pending, timeout);
    signals.cancel_alarm();
    result
}

fn wait_loop(
    pid: i32,
    att: &mut Attached,
    signals: &DeferSignals,
    deadline: Instant,
    pending: &mut usize,
    timeout: Duration,
) -> Result<(), InspectError> {
    let mut searched_from = i32::MIN;
    while *pending > 0 {
        if let Some(sig) = signals.received() {
            return Err(InspectError::Interrupted(sig));
        }
        let now = Instant::now();
        if now >= deadline {
            let tids: Vec<String> = att
                .tracees
                .iter()
                .filter(|(_, s)| **s == Tracee::Stopping)
                .map(|(t, _)| t.to_string())
                .collect();
            // Threads that never report a stop because they are exiting (the
            // process is on its way out): that is an exit, not a thread
            // stuck in uninterruptible sleep.
            let exiting = |t: &String| {
                proc::task_stat(pid, t.parse().unwrap_or(0)).map_or(true, |s| matches!(s.state, 'Z' | 'X'))
            };
            if tids.iter().all(exiting) {
                return Err(InspectError::ExitedDuringDump(pid));
            }
            let tids: Vec<i32> = tids.iter().filter_map(|t| t.parse().ok()).collect();
            let threads = super::freezer::describe_threads(pid, &tids, 5);
            let cause = super::freezer::frozen_cgroup(pid).unwrap_or_else(|| {
                if threads.contains("state D") {
                    "a thread in uninterruptible sleep cannot be stopped until the kernel call it waits in returns \
                     (wchan names where)"
                        .to_string()
                } else {
                    "they may be in uninterruptible sleep or the machine is overloaded: try again, or raise \
                     --stop-timeout"
                        .to_string()
                }
            });
            return Err(InspectError::StopTimeout {
                pid,
                secs: timeout.as_secs(),
                threads,
                cause,
            });
        }
        // Wait for a specific thread: the kernel finds it directly, whereas
        // waiting for any tracee scans all of them (quadratic for big pools).
        // A thread never returns to Stopping within one wait, so the search
        // resumes where the last one ended (from the start, it was
        // quadratic here too: a tenth of the pause at 10,000 threads).
        let next = att
            .tracees
            .range(searched_from..)
            .find(|(_, s)| **s == Tracee::Stopping)
            .map(|(t, _)| Pid::from_raw(*t));
        if let Some(p) = next {
            searched_from = p.as_raw();
        }
        let status = waitpid(next, Some(WaitPidFlag::__WALL));
        let (tid, new_state) = match status {
            Err(Errno::EINTR) => continue,
            // Not (or no longer) our tracee: it exited and was reaped.
            Err(Errno::ECHILD) => match next {
                Some(p) => (p.as_raw(), Tracee::Gone),
                None => break,
            },
            Err(e) => {
                return Err(InspectError::Io {
                    pid,
                    what: "waiting for threads",
                    source: e.into(),
                })
            }
            Ok(WaitStatus::PtraceEvent(p, _sig, _event)) => (p.as_raw(), Tracee::Stopped { pending: None }),
            // A signal-delivery stop: a signal (from elsewhere) arrived during
            // capture. It is re-delivered on detach, SIGSTOP included, so the
            // target sees exactly the signals it would have seen without us.
            Ok(WaitStatus::Stopped(p, sig)) => (
                p.as_raw(),
                Tracee::Stopped {
                    pending: Some(sig as i32),
                },
            ),
            Ok(WaitStatus::Exited(p, _)) | Ok(WaitStatus::Signaled(p, _, _)) => (p.as_raw(), Tracee::Gone),
            Ok(_) => continue,
        };
        if let Some(state) = att.tracees.get_mut(&tid) {
            if *state == Tracee::Stopping {
                *pending -= 1;
            }
            // A second report for an already stopped thread (e.g. the interrupt
            // trap after a signal-delivery stop) keeps the first pending signal.
            match (*state, new_state) {
                (Tracee::Stopped { pending: Some(_) }, Tracee::Stopped { .. }) => {}
                _ => *state = new_state,
            }
        }
    }
    Ok(())
}

/// The syscall a stopped thread was in, decoded from its registers.
///
/// A thread interrupted inside a blocking syscall has `orig_rax` = the syscall
/// number and `rax` = one of the kernel's internal restart codes (-512..-516),
/// which tell us the syscall will be restarted when it resumes.
pub(crate) fn syscall_from_regs(r: &Registers) -> Option<SyscallState> {
    let nr = r.orig_rax as i64;
    let rax = r.rax as i64;
    if nr < 0 || !(-516..=-512).contains(&rax) && rax != -(libc::EINTR as i64) {
        return None;
    }
    Some(SyscallState {
        nr,
        args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
        restarted: nr == SYS_RESTART_SYSCALL,
        entering: false,
    })
}

/// The x86_64 `syscall` instruction.
const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];

/// Whether a thread whose registers show no call in progress may be stopped
/// right at its `syscall` instruction, about to enter call `rax`:
/// - rewound by the kernel after an interrupted blocking call (`orig_rax` is
///   the call, `rax` the same number again, or `restart_syscall` for a
///   timed one): a thread an earlier dump or debugger let go is caught here
///   until it gets a CPU, which on a loaded machine can take milliseconds;
/// - preempted by an interrupt (`orig_rax` = -1) just before a futex call.
///   Other calls are left "running": whether they would block is unknown.
///
/// Only the code bytes at `rip` (see [`syscall_entering`]) decide.
fn may_be_entering(r: &Registers) -> bool {
    let (nr, rax) = (r.orig_rax as i64, r.rax as i64);
    (nr >= 0 && (rax == nr || rax == SYS_RESTART_SYSCALL)) || (nr == -1 && rax == crate::syscalls::nr::FUTEX)
}

/// The call a thread stopped at its `syscall` instruction is about to enter
/// (see [`may_be_entering`] and [`SyscallState::entering`]); `code` holds
/// the bytes at `rip`.
pub(crate) fn syscall_entering(r: &Registers, code: [u8; 2]) -> Option<SyscallState> {
    if !may_be_entering(r) || code != SYSCALL_INSN {
        return None;
    }
    let nr = r.rax as i64;
    Some(SyscallState {
        nr,
        args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
        restarted: nr == SYS_RESTART_SYSCALL,
        entering: true,
    })
}

/// Sets the call of every thread stopped at its `syscall` instruction
/// (`entering`), reading the code at each candidate's `rip` once per address.
pub(crate) fn find_entering_calls(threads: &mut [ThreadSnapshot], mem: &dyn super::Memory) {
    let mut code: BTreeMap<u64, Option<[u8; 2]>> = BTreeMap::new();
    for t in threads.iter_mut() {
        if t.syscall.is_some() || t.register_source != RegisterSource::Ptrace || !may_be_entering(&t.regs) {
            continue;
        }
        let bytes = *code.entry(t.regs.rip).or_insert_with(|| {
            let mut b = [0u8; 2];
            mem.read_exact(t.regs.rip, &mut b).ok().map(|()| b)
        });
        t.syscall = bytes.and_then(|b| syscall_entering(&t.regs, b));
    }
}

/// The range of stack to copy for a thread: from below the red zone up to
/// `stack_bytes` above SP, clipped to the stack's mapping.
pub(crate) fn stack_range(sp: u64, maps: &[MapEntry], stack_bytes: usize) -> Option<(u64, u64)> {
    let m = MapEntry::find(maps, sp).filter(|m| m.readable)?;
    let start = sp.saturating_sub(RED_ZONE).max(m.start);
    let end = sp.saturating_add(stack_bytes as u64).min(m.end);
    (end > start).then_some((start, end))
}

/// Bytes of stack to copy per thread: `--stack-bytes`, unless that many for
/// every thread would exceed [`MAX_TOTAL_STACK_BYTES`].
fn stack_budget(stack_bytes: usize, threads: usize) -> usize {
    stack_bytes.min(MAX_TOTAL_STACK_BYTES / threads.max(1))
}

/// Copy every thread's stack with as few syscalls as possible.
fn copy_stacks(pid: i32, threads: &mut [ThreadSnapshot], maps: &[MapEntry], stack_bytes: usize) {
    let ranges: Vec<Option<(u64, u64)>> = threads
        .iter()
        .map(|t| stack_range(t.regs.rsp, maps, stack_bytes))
        .collect();
    for (t, r) in threads.iter_mut().zip(&ranges) {
        if let Some((s, e)) = r {
            t.stack = CopiedRegion {
                start: *s,
                bytes: vec![0u8; (e - s) as usize],
            };
        }
    }
    let mut batch: Vec<usize> = Vec::with_capacity(MAX_IOV);
    let indices: Vec<usize> = (0..threads.len())
        .filter(|&i| !threads[i].stack.bytes.is_empty())
        .collect();
    for chunk in indices.chunks(MAX_IOV) {
        batch.clear();
        batch.extend_from_slice(chunk);
        let local: Vec<libc::iovec> = batch
            .iter()
            .map(|&i| libc::iovec {
                iov_base: threads[i].stack.bytes.as_mut_ptr().cast(),
                iov_len: threads[i].stack.bytes.len(),
            })
            .collect();
        let remote: Vec<libc::iovec> = batch
            .iter()
            .map(|&i| libc::iovec {
                iov_base: threads[i].stack.start as *mut libc::c_void,
                iov_len: threads[i].stack.bytes.len(),
            })
            .collect();
        let want: usize = local.iter().map(|v| v.iov_len).sum();
        // SAFETY: each local iovec points at a live Vec of exactly iov_len bytes.
        let got = unsafe {
            libc::process_vm_readv(
                pid,
                local.as_ptr(),
                local.len() as _,
                remote.as_ptr(),
                remote.len() as _,
                0,
            )
        };
        if got as usize != want {
            // Some stack was not fully readable: fall back to one read each,
            // keeping the readable prefix.
            for &i in &batch {
                read_prefix(pid, &mut threads[i].stack);
            }
        }
    }
}

/// Read as much of `region` as is readable from its start, shrinking it to that.
fn read_prefix(pid: i32, region: &mut CopiedRegion) {
    let mem = super::ProcessMemory::new(pid);
    let mut ok = 0usize;
    let len = region.bytes.len();
    while ok < len {
        let n = (0x1000 - ((region.start + ok as u64) & 0xfff)) as usize;
        let n = n.min(len - ok);
        use super::Memory;
        if mem
            .read_exact(region.start + ok as u64, &mut region.bytes[ok..ok + n])
            .is_err()
        {
            break;
        }
        ok += n;
    }
    region.bytes.truncate(ok);
}

/// What `/proc/TID/syscall` tells of a thread that is not stopped: SP and PC,
/// and the call and its arguments if it is in one.
fn registers_from_line(line: SyscallLine) -> (Registers, Option<SyscallState>, RegisterSource) {
    match line {
        SyscallLine::InSyscall { nr, args, sp, pc } => {
            let regs = Registers {
                rsp: sp,
                rip: pc,
                orig_rax: nr as u64,
                ..Default::default()
            };
            let sys = SyscallState {
                nr,
                args,
                restarted: nr == SYS_RESTART_SYSCALL,
                entering: false,
            };
            (regs, Some(sys), RegisterSource::ProcSyscall)
        }
        SyscallLine::Blocked { sp, pc } => (
            Registers {
                rsp: sp,
                rip: pc,
                ..Default::default()
            },
            None,
            RegisterSource::ProcSyscall,
        ),
        SyscallLine::Running => (Registers::default(), None, RegisterSource::None),
    }
}

/// `--no-stop`: what can be learned without stopping anything. Threads blocked
/// in a syscall expose SP and PC and the arguments in /proc/TID/syscall; the
/// stack is read live (it does not change while the thread stays blocked).
/// Each thread's context switches are read just before its syscall line, so
/// that `inspect::verdict` can later prove it has not run since (see
/// [`ThreadSnapshot::switches`]). An exited thread (the leader after
/// `pthread_exit`) has neither registers nor stack and is left out.
fn sample_without_stopping(
    pid: i32,
    mm_tid: i32,
    infos: &BTreeMap<i32, ThreadInfo>,
    maps: &[MapEntry],
    opts: &CaptureOptions,
) -> Vec<ThreadSnapshot> {
    let mut threads = Vec::with_capacity(infos.len());
    for (&tid, info) in infos {
        if matches!(info.state, 'Z' | 'X') {
            continue;
        }
        let switches = proc::task_status(pid, tid).ok().and_then(|s| s.ctxt_switches);
        let Ok(line) = proc::syscall(pid, tid) else { continue };
        let (regs, syscall, source) = registers_from_line(line);
        let mut stack = CopiedRegion::default();
        if let Some((s, e)) = stack_range(regs.rsp, maps, stack_budget(opts.stack_bytes, infos.len())) {
            stack = CopiedRegion {
                start: s,
                bytes: vec![0; (e - s) as usize],
            };
            read_prefix(mm_tid, &mut stack);
        }
        threads.push(ThreadSnapshot {
            tid: Tid(tid),
            name: info.name.clone(),
            state: info.state,
            wchan: info.wchan.clone(),
            regs,
            register_source: source,
            syscall,
            pending_signal: None,
            left_running: None,
            stack,
            ns_tid: info.ns_tid,
            switches,
        });
    }
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_regions_keeps_only_bytes_outside_the_taken_ranges() {
        let region = |start: u64, len: u64| CopiedRegion {
            start,
            bytes: (start..start + len).map(|a| a as u8).collect(),
        };
        let regions = vec![region(0x1000, 0x1000), region(0x3000, 0x1000), region(0x5000, 0x1000)];
        // Unsorted, overlapping and empty taken ranges; none touches 0x3000.
        let taken = [
            (0x5800, 0x5900),
            (0x1100, 0x1200),
            (0x1180, 0x1300),
            (0x4000, 0x5100),
            (0x1f00, 0x1f00),
        ];
        let out = cut_regions(regions, &taken);
        let spans: Vec<(u64, u64)> = out.iter().map(|r| (r.start, r.end())).collect();
        assert_eq!(
            spans,
            [
                (0x1000, 0x1100),
                (0x1300, 0x2000),
                (0x3000, 0x4000),
                (0x5100, 0x5800),
                (0x5900, 0x6000)
            ]
        );
        for r in &out {
            assert!(r
                .bytes
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (r.start + i as u64) as u8));
        }
    }

    #[test]
    fn syscall_decoding_from_registers() {
        let mut r = Registers {
            orig_rax: 202,
            rax: (-512i64) as u64,
            rdi: 0x1000,
            rsi: 0x80,
            rdx: 2,
            ..Default::default()
        };
        let s = syscall_from_regs(&r).unwrap();
        assert_eq!(
            (s.nr, s.args[0], s.args[1], s.args[2], s.restarted),
            (202, 0x1000, 0x80, 2, false)
        );
        r.orig_rax = 219;
        r.rax = (-516i64) as u64;
        assert!(syscall_from_regs(&r).unwrap().restarted);
        r.orig_rax = u64::MAX; // -1: not in a syscall
        assert!(syscall_from_regs(&r).is_none());
        r.orig_rax = 202;
        r.rax = 0; // returned normally; was not blocked in it
        assert!(syscall_from_regs(&r).is_none());
    }

    #[test]
    fn syscall_about_to_be_entered() {
        // Rewound by the kernel after an earlier stop: rax = orig_rax = 202,
        // rip back on the `syscall` instruction.
        let mut r = Registers {
            orig_rax: 202,
            rax: 202,
            rdi: 0x1000,
            rdx: 2,
            ..Default::default()
        };
        assert_eq!(syscall_from_regs(&r), None);
        let s = syscall_entering(&r, SYSCALL_INSN).unwrap();
        assert_eq!(
            (s.nr, s.args[0], s.args[2], s.entering, s.restarted),
            (202, 0x1000, 2, true, false)
        );
        // Not at a syscall instruction: it returned 202 from some call.
        assert_eq!(syscall_entering(&r, [0x48, 0x3d]), None);
        // A timed wait rewound to restart_syscall.
        r.rax = 219;
        assert!(syscall_entering(&r, SYSCALL_INSN).unwrap().restarted);
        // Preempted in user space just before a futex call: entering; before
        // any other call: left running (whether it would block is unknown).
        r.orig_rax = u64::MAX;
        r.rax = 202;
        assert!(syscall_entering(&r, SYSCALL_INSN).is_some());
        r.rax = 0;
        assert_eq!(syscall_entering(&r, SYSCALL_INSN), None);
    }

    #[test]
    fn stack_budget_bounds_the_total() {
        assert_eq!(stack_budget(32 * 1024, 500), 32 * 1024);
        assert_eq!(
            stack_budget(32 * 1024, MAX_THREADS),
            MAX_TOTAL_STACK_BYTES / MAX_THREADS
        );
        assert!(stack_budget(usize::MAX, 3) * 3 <= MAX_TOTAL_STACK_BYTES);
        assert_eq!(stack_budget(4096, 0), 4096);
    }

    #[test]
    fn wait_windows_are_merged_and_keep_out_of_stacks() {
        // Two waiters on one lock, one on a neighbour: one merged window.
        assert_eq!(
            disjoint_windows(vec![(0x1000, 0x1080), (0x1000, 0x1080), (0x1040, 0x10c0)], &[]),
            vec![(0x1000, 0x10c0)]
        );
        // A futex on a copied stack (glibc's PI "park", CPython's wait_entry):
        // the stack copy already has those bytes, only the rest is kept.
        assert_eq!(
            disjoint_windows(
                vec![(0x1000, 0x1080), (0x2000, 0x2080)],
                &[(0x1040, 0x1050), (0x1f00, 0x3000)]
            ),
            vec![(0x1000, 0x1040), (0x1050, 0x1080)]
        );
        assert_eq!(disjoint_windows(vec![(0x10, 0x10), (0x30, 0x20)], &[]), vec![]);
    }

    #[test]
    fn stack_range_clips_to_mapping() {
        let maps = crate::proc::parse::parse_maps("7f0000000000-7f0000010000 rw-p 00000000 00:00 0\n");
        assert_eq!(
            stack_range(0x7f000000ff00, &maps, 4096),
            Some((0x7f000000fe80, 0x7f0000010000))
        );
        assert_eq!(
            stack_range(0x7f0000000010, &maps, 16),
            Some((0x7f0000000000, 0x7f0000000020))
        );
        assert_eq!(stack_range(0x1000, &maps, 16), None);
    }
}
