//! Preparing the target's DWARF on a background thread while capture runs.
//!
//! Capture (the per-thread /proc reads, the stop) does not need DWARF, and
//! symbolization needs it right after; preparing it (inflating compressed
//! sections, or mapping them from the disk cache, and indexing the units)
//! takes up to ~25 ms for libc with libc6-dbg. So as soon as the
//! target's memory map is read, a thread prepares the DWARF of every mapped
//! file through [`super::dwarf::prepared`], the same call the symbolizer
//! makes: a file the thread has done is ready, one it is doing is waited
//! for, one it has not reached is done by the symbolizer itself. Either way
//! the result is the same; only when it is ready changes.
//!
//! The thread runs under `SCHED_IDLE`: it uses only CPU time nobody else
//! wants, so it never delays the target's threads on their way into the
//! ptrace stop (at normal priority it lengthened the pause by half on a
//! 2-CPU machine). When the symbolizer needs a file the thread is still
//! preparing, it gives the thread its own priority back and waits. Going back from `SCHED_IDLE` needs `CAP_SYS_NICE` (or an
//! `RLIMIT_NICE` of 20), so without it no thread is started and
//! symbolization prepares everything itself, as it would anyway.
//!
//! The thread is detached (nothing waits for it at exit) and blocks every
//! signal, so that the SIGALRM and termination signals capture relies on
//! reach the capturing thread.

use std::path::Path;

use object::{Object, ObjectSymbol};

use super::{debuginfo, dwarf, file, file_groups, open_mapped};
use crate::proc::MapEntry;

/// Start preparing the DWARF of the files mapped in `maps` of process `pid`.
/// With `unless_cpython`, nothing is prepared if a mapped file holds the
/// CPython runtime: such targets name most native frames from ELF symbols
/// only (see `inspect`), so their DWARF is mostly not needed.
pub fn start(live: crate::live::Live, maps: &[MapEntry], unless_cpython: bool) {
    if !may_boost() {
        return;
    }
    let maps = maps.to_vec();
    let _ = crate::capture::signals::with_signals_blocked(|| {
        std::thread::Builder::new()
            .name("lockdump-dwarf".into())
            .spawn(move || run(live, &maps, unless_cpython))
    });
}

/// A mapped file with DWARF: its build ID and the file the DWARF is in.
struct Target {
    build_id: Option<Vec<u8>>,
    debug: &'static [u8],
}

/// The prefetch thread's TID while it runs (0: none), and whether it
/// should stop early; see [`hurry`]. The mutex makes sure [`hurry`] never
/// changes the priority of a TID after the thread has exited.
static RUNNING: std::sync::Mutex<i32> = std::sync::Mutex::new(0);
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Clears [`RUNNING`] however [`run`] returns.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut tid) = RUNNING.lock() {
            *tid = 0;
        }
    }
}

/// lockdump is about to exit: tell the prefetch thread, if it still runs,
/// to stop after the file it is preparing, and give it the caller's
/// priority. A process exits only once all its threads have, and a
/// `SCHED_IDLE` thread on CPUs a busy target keeps saturated gets almost no
/// time: it held lockdump's exit (and so whoever waits for lockdump) back
/// by up to 15 s with 1000 threads waking every millisecond.
pub fn hurry() {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Ok(tid) = RUNNING.lock() {
        if *tid != 0 {
            crate::capture::priority::share_with(*tid);
        }
    }
}

fn run(live: crate::live::Live, maps: &[MapEntry], unless_cpython: bool) {
    let idle = sched_param(0);
    // SAFETY: plain syscall on this thread (0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) } != 0 {
        return;
    }
    if let Ok(mut tid) = RUNNING.lock() {
        // SAFETY: gettid has no preconditions.
        *tid = unsafe { libc::gettid() };
    }
    let _running = Running;
    let root = live.root_dir();
    let mut targets = Vec::new();
    for (first, group) in file_groups(maps) {
        let Some(data) = open_mapped(live, &root, first, &group, |p| file::map_file(p).ok()) else {
            continue;
        };
        let Ok(file) = object::File::parse(data) else { continue };
        if STOP.load(std::sync::atomic::Ordering::SeqCst) || unless_cpython && holds_cpython(&file) {
            return;
        }
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        let debug = if file.section_by_name(".debug_info").is_some() {
            Some(data)
        } else {
            let link = file.gnu_debuglink().ok().flatten();
            debuginfo::find_debug_file(&root, Path::new(&first.path), build_id.as_deref(), link).map(|(_, d)| d)
        };
        if let Some(debug) = debug {
            targets.push(Target { build_id, debug });
        }
    }
    for t in targets {
        if STOP.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // Back to idle priority in case a waiter boosted this thread for
        // the previous file.
        // SAFETY: as above.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) };
        dwarf::prefetch(t.build_id.as_deref(), t.debug);
    }
}

/// Whether this process may move a thread from `SCHED_IDLE` back to normal
/// priority: root, or an `RLIMIT_NICE` that allows nice 0 (rlimit 20).
/// (`CAP_SYS_NICE` without root is not looked for: the thread is then not
/// started, which costs time, not correctness.)
fn may_boost() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: geteuid has no preconditions; getrlimit writes into `lim`.
    unsafe { libc::geteuid() == 0 || (libc::getrlimit(libc::RLIMIT_NICE, &mut lim) == 0 && lim.rlim_cur >= 20) }
}

/// A `sched_param` with `priority`. Built from zeroes rather than a struct
/// literal: musl's has more fields than glibc's (the `SCHED_SPORADIC` ones),
/// all of which must be zero for the policies used here.
fn sched_param(priority: i32) -> libc::sched_param {
    // SAFETY: sched_param is plain integers (and, on musl, timespecs); all
    // zeroes is a valid value.
    let mut p: libc::sched_param = unsafe { std::mem::zeroed() };
    p.sched_priority = priority;
    p
}

/// The file defines CPython's runtime state (as `cpython::runtime` finds it).
fn holds_cpython(file: &object::File<'static>) -> bool {
    file.section_by_name(".PyRuntime").is_some()
        || file
            .symbols()
            .chain(file.dynamic_symbols())
            .any(|s| s.is_definition() && s.name() == Ok("_PyRuntime"))
}
