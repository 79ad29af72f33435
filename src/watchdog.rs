//! `lockdump run -- CMD`: a hang watchdog for CI jobs and scripts.
//!
//! Runs CMD with its stdin, stdout and stderr passed through and hands its
//! exit status back (a death by signal N as 128+N, as a shell does), so a
//! job that finishes in time sees no difference. If CMD is still running
//! when the timeout expires, every process of its tree is dumped as one
//! wait-for graph (the caller's `dump`), then the tree is ended (SIGTERM,
//! SIGKILL after `kill_after`) unless `keep`; the exit code is then
//! [`TIMED_OUT`], distinct from any code CMD's own death produces.
//!
//! lockdump becomes a child subreaper first, so a descendant that double-
//! forks or calls setsid stays in the tree (it is re-parented to lockdump,
//! not to init) and is dumped and ended with the rest.
//!
//! Signals: SIGCHLD and the termination signals are blocked and taken with
//! `sigtimedwait`, one loop for all events. SIGTERM, SIGHUP and SIGQUIT sent
//! to lockdump (a CI runner cancelling the job) are passed on to CMD, and
//! lockdump goes on waiting for it; SIGINT is not passed on (from a terminal
//! it reaches CMD's process group directly). A signal named with
//! `--on-signal` first dumps the tree, then is handled as above (SIGUSR1
//! and SIGUSR2 only dump).

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::InspectError;
use crate::live::tree;

/// The exit code when CMD was still running at the timeout (GNU timeout's).
pub use crate::error::exit::TIMED_OUT;

/// How `run` watches its command.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// Dump and end the tree when CMD runs longer than this.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when the tree is ended.
    pub kill_after: Duration,
    /// Leave the tree running after a timeout's dump.
    pub keep: bool,
    /// Signals that make lockdump dump the tree when it receives them.
    pub on_signals: Vec<i32>,
}

/// Why a dump is taken, for the report's opening line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpReason {
    Timeout(Duration),
    Signal(i32),
}

impl std::fmt::Display for DumpReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpReason::Timeout(d) => write!(f, "still running after the timeout ({})", format_duration(*d)),
            DumpReason::Signal(s) => write!(f, "lockdump received {}", signal_name(*s)),
        }
    }
}

/// Run the command; `dump(members, reason)` is called with the PIDs of the
/// command's tree (CMD first) whenever a dump is due. Returns lockdump's
/// exit code.
pub fn run(opts: &RunOptions, mut dump: impl FnMut(&[i32], DumpReason)) -> Result<i32, InspectError> {
    let (program, args) = opts
        .command
        .split_first()
        .ok_or_else(|| InspectError::Usage("lockdump run needs a command: lockdump run -- CMD [ARGS...]".into()))?;
    // SAFETY: prctl with an integer argument; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io_error("cannot become a child subreaper (prctl)"));
    }
    let watched = signal_set(&opts.on_signals);
    let previous = block(&watched)?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    let restore = previous;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_SETMASK, &restore, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            unblock(&previous);
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            eprintln!("lockdump: cannot run {}: {e}", program.to_string_lossy());
            return Ok(code);
        }
    };
    let pid = child.id() as i32;
    let deadline = opts.timeout.map(|t| (Instant::now() + t, t));
    loop {
        let wait = deadline.map(|(d, _)| d.saturating_duration_since(Instant::now()));
        if wait == Some(Duration::ZERO) {
            let (_, t) = deadline.expect("deadline");
            dump(&job(pid), DumpReason::Timeout(t));
            if !opts.keep {
                end_tree(pid, opts.kill_after);
            }
            unblock(&previous);
            return Ok(TIMED_OUT);
        }
        match next_signal(&watched, wait) {
            None => continue, // the timeout: handled at the top of the loop
            Some(libc::SIGCHLD) => {
                if let Some(status) = reap(pid) {
                    unblock(&previous);
                    return Ok(exit_code(status));
                }
            }
            Some(sig) => {
                if opts.on_signals.contains(&sig) {
                    dump(&job(pid), DumpReason::Signal(sig));
                }
                if matches!(sig, libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT) {
                    // SAFETY: kill with a PID and a signal number.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        }
    }
}

/// The processes of the job: CMD's tree, and whatever left it to be
/// re-parented to lockdump (the subreaper): every descendant of lockdump,
/// CMD's tree first.
fn job(cmd: i32) -> Vec<i32> {
    let mut members = tree::members(cmd);
    for p in tree::descendants(std::process::id() as i32) {
        if !members.contains(&p) {
            members.push(p);
        }
    }
    members
}

/// Reap every child that has ended (orphans re-parented to lockdump
/// included); CMD's status once it is among them.
fn reap(cmd: i32) -> Option<ExitStatus> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a local.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            return found;
        }
        if r == cmd {
            found = Some(ExitStatus::from_raw(status));
        }
    }
}

/// CMD's status as a shell reports it: its code, or 128+N for signal N.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

/// SIGTERM to every process of the tree, SIGKILL to those still there after
/// `grace`; reaps what it can. The tree is read again before each round, so
/// processes forked meanwhile are not missed.
fn end_tree(root: i32, grace: Duration) {
    let me = std::process::id() as i32;
    let alive = || -> Vec<i32> {
        let mut m = tree::descendants(me);
        m.retain(|&p| crate::proc::stat(p).map(|s| s.state != 'Z').unwrap_or(false));
        m
    };
    for &p in &alive() {
        // SAFETY: kill with a PID and a signal number.
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let until = Instant::now() + grace;
    while Instant::now() < until {
        reap(root);
        if alive().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..50 {
        let left = alive();
        if left.is_empty() {
            break;
        }
        for &p in &left {
            // SAFETY: as above.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
        reap(root);
    }
    reap(root);
}

fn signal_set(extra: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT]
            .iter()
            .chain(extra)
        {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn block(set: &libc::sigset_t) -> Result<libc::sigset_t, InspectError> {
    // SAFETY: pthread_sigmask with valid set pointers.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, set, &mut old) != 0 {
            return Err(io_error("cannot block signals"));
        }
        Ok(old)
    }
}

fn unblock(previous: &libc::sigset_t) {
    // SAFETY: as above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut()) };
}

/// The next signal of `set`, or `None` when `wait` passed first.
fn next_signal(set: &libc::sigset_t, wait: Option<Duration>) -> Option<i32> {
    let ts = wait.map(|w| libc::timespec {
        tv_sec: w.as_secs() as _,
        tv_nsec: w.subsec_nanos() as _,
    });
    // SAFETY: sigtimedwait with a valid set and optional timeout.
    let r = unsafe {
        libc::sigtimedwait(
            set,
            std::ptr::null_mut(),
            ts.as_ref().map_or(std::ptr::null(), |t| t as *const _),
        )
    };
    (r > 0).then_some(r)
}

fn io_error(what: &str) -> InspectError {
    InspectError::Usage(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// `90s`, `10m`, `1h`, `500ms`, `1.5h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 90s, 10m, 1h or 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 && s % 3600.0 == 0.0 {
        format!("{}h", s / 3600.0)
    } else if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else if s >= 1.0 {
        format!("{}s", (s * 1000.0).round() / 1000.0)
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `SIGUSR1`, `USR1`, `sigterm` or a number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) && n != libc::SIGKILL && n != libc::SIGSTOP {
            return Ok(n);
        }
        return Err(format!("{s}: not a signal lockdump can catch"));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| v)
        .ok_or_else(|| format!("{s}: unknown signal (use e.g. SIGUSR1, SIGTERM)"))
}

const SIGNALS: [(&str, i32); 7] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("ALRM", libc::SIGALRM),
];

pub fn signal_name(sig: i32) -> String {
    SIGNALS
        .iter()
        .find(|&&(_, v)| v == sig)
        .map(|(n, _)| format!("SIG{n}"))
        .unwrap_or_else(|| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(format_duration(Duration::from_secs(1200)), "20m");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGUSR1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("10"), Ok(10));
        assert!(parse_signal("9").is_err());
        assert!(parse_signal("SIGFOO").is_err());
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
    }
}
