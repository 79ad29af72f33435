//! What a process's signal handlers could do for its sleeping threads: a
//! wait a handler may end is not asleep for good (see `crate::graph`'s
//! stuck rule). Read from the live process's `SigCgt`; a core records no
//! dispositions, and its caller assumes a handler.

use serde::Serialize;

use super::cpython::PythonProcess;
use crate::live::Live;

/// What signals can do for the sleeping threads of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SignalWayOut {
    /// No handler that could end a wait: every signal only ends the process
    /// (default dispositions, CPython's default SIGINT handler) or is ignored.
    #[default]
    None,
    /// C handlers are installed (`SigCgt`): a handler may post a semaphore
    /// or set what an ownerless wait waits for (`sem_post` is
    /// async-signal-safe). Releasing a lock or ending a thread from a
    /// handler is not, so owned-lock waits and joins are not affected.
    Handler { signals: String },
    /// Python-level handlers (or a SIGINT handler lockdump could not prove
    /// to be CPython's default): they run as bytecode in the main thread and
    /// may release or set anything.
    Python { signals: String },
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
pub fn way_out(live: Live, python: Option<&PythonProcess>) -> SignalWayOut {
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

/// The signal way out of `snapshot`'s process.
pub fn of(snapshot: &crate::capture::Snapshot, python: Option<&PythonProcess>) -> SignalWayOut {
    match snapshot.live() {
        Some(live) => way_out(live, python),
        // A core records no signal dispositions: assume a handler, so that
        // no thread is called asleep for good on that account (a cycle is
        // a deadlock all the same).
        None => SignalWayOut::Handler {
            signals: "signals (a core file does not record signal handlers)".into(),
        },
    }
}
