//! Errors the user sees. Each one is a single line that says what happened and
//! what to do about it; all of them exit with code 2 ("could not inspect").

use thiserror::Error;

#[derive(Debug, Error)]
pub enum InspectError {
    #[error("no process with PID {0}: check the PID with `ps -e` (it may have exited)")]
    NoSuchProcess(i32),
    #[error("permission denied attaching to PID {pid}: run lockdump as the process owner or as root (it needs CAP_SYS_PTRACE); /proc/sys/kernel/yama/ptrace_scope is {scope}{hint}")]
    PermissionDenied {
        pid: i32,
        scope: String,
        hint: &'static str,
    },
    #[error("PID {pid} is already traced by PID {tracer} ({tracer_name}): detach that debugger first (quit gdb/strace), then run lockdump again, or use --no-stop, which reads the process without ptrace")]
    AlreadyTraced { pid: i32, tracer: i32, tracer_name: String },
    #[error("PID {0} is a zombie: it has exited and waits for its parent to reap it; there are no threads to inspect (look at its parent instead)")]
    Zombie(i32),
    #[error("PID {0} is a kernel thread: it has no user-space stack to inspect; pass the PID of a user process")]
    KernelThread(i32),
    #[error("PID {0} is stopped (state T, e.g. by SIGSTOP or Ctrl-Z): resume it with `kill -CONT {0}` and run lockdump again")]
    Stopped(i32),
    #[error("PID {0} exited while lockdump was inspecting it: nothing is left to inspect")]
    ExitedDuringDump(i32),
    #[error("PID {0} is lockdump itself: pass the PID of another process")]
    IsSelf(i32),
    #[error("PID {pid}: timed out after {secs} s waiting for threads to stop: {threads}; {cause}; lockdump detached and left the process running: `lockdump --no-stop -p {pid}` reads it without stopping it")]
    StopTimeout {
        pid: i32,
        secs: u64,
        /// Each thread that did not stop, with its state and wchan.
        threads: String,
        /// Why, where it can be known (a frozen cgroup, uninterruptible sleep).
        cause: String,
    },
    #[error("PID {pid} has {count} threads, more than lockdump stops at once ({max}): use --no-stop to sample it without stopping")]
    TooManyThreads { pid: i32, count: usize, max: usize },
    #[error("interrupted by signal {0} during capture: lockdump detached and left the process running")]
    Interrupted(i32),
    #[error("cannot inspect PID {pid}: {what}: {source}")]
    Io {
        pid: i32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// A core file that cannot be examined at all (not a core, another
    /// architecture, no thread): the one line says which and what to give.
    #[error("{0}")]
    Core(String),
}

impl InspectError {
    /// The process a "gone" error is about (no such process, a zombie, exited mid-dump).
    pub fn pid(&self) -> Option<i32> {
        match self {
            InspectError::NoSuchProcess(p) | InspectError::Zombie(p) | InspectError::ExitedDuringDump(p) => Some(*p),
            _ => None,
        }
    }

    /// Turn an I/O error from /proc into the most specific user-facing error.
    pub fn from_proc(pid: i32, what: &'static str, e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => InspectError::NoSuchProcess(pid),
            std::io::ErrorKind::PermissionDenied => permission_denied(pid),
            _ if e.raw_os_error() == Some(libc::ESRCH) => InspectError::NoSuchProcess(pid),
            _ => InspectError::Io { pid, what, source: e },
        }
    }
}

/// linux/capability.h (the libc crate does not export capability numbers).
const CAP_SYS_PTRACE: u32 = 19;

/// Whether this process has CAP_SYS_PTRACE in its effective set
/// (`CapEff` in /proc/self/status; `None` if unreadable).
fn has_cap_sys_ptrace() -> Option<bool> {
    let eff = procfs::process::Process::myself().ok()?.status().ok()?.capeff;
    Some(eff & (1 << CAP_SYS_PTRACE) != 0)
}

/// Whether `pid` runs as someone other than root but is not dumpable: the
/// kernel then makes its /proc/PID files root's (proc(5), "/proc/pid"
/// ownership and PR_SET_DUMPABLE), while its real UID (status `Uid:`) stays.
fn not_dumpable(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file in /proc/PID, by hand: procfs's
    // `Process::uid()` is the owner of the /proc/PID directory, which keeps
    // the real owner when the files become root's.
    let Ok(owner) = std::fs::metadata(format!("/proc/{pid}/stat")).map(|m| m.uid()) else {
        return false;
    };
    let real = procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .ok()
        .map(|s| s.ruid);
    owner == 0 && real.is_some_and(|uid| uid != 0)
}

pub fn permission_denied(pid: i32) -> InspectError {
    // procfs 0.17 has no reader for Yama's ptrace_scope: read by hand.
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".into());
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if has_cap_sys_ptrace() == Some(false) && (root || scope == "1" || scope == "2") {
        return InspectError::PermissionDenied {
            pid,
            scope,
            hint: " (lockdump lacks CAP_SYS_PTRACE, as a container's processes do by default, even as root; in a container, give lockdump CAP_SYS_PTRACE: `docker run --cap-add SYS_PTRACE --pid=container:NAME ...`, `kubectl debug --profile=general ...`; outside one, run it as the process owner or with sudo)",
        };
    }
    if root {
        return InspectError::PermissionDenied {
            pid,
            scope,
            hint: " (lockdump is root here, so the process is outside its reach: another user namespace or container, or a security policy such as SELinux/AppArmor; run lockdump inside the target's container)",
        };
    }
    if not_dumpable(pid) {
        return InspectError::PermissionDenied {
            pid,
            scope,
            hint: " (but that is not the cause here: the process is not dumpable — it called prctl(PR_SET_DUMPABLE, 0), or changed its credentials through setuid/setgid or file capabilities — so even its owner cannot trace it; only root (CAP_SYS_PTRACE) can: `sudo lockdump -p PID`)",
        };
    }
    let hint = match scope.as_str() {
        "1" => " (only a parent may attach unless root: `sudo lockdump -p PID`, or `echo 0 > /proc/sys/kernel/yama/ptrace_scope`; in a container, give lockdump CAP_SYS_PTRACE: `docker run --cap-add SYS_PTRACE --pid=container:NAME ...`, `kubectl debug --profile=general ...`)",
        "2" => " (only root may attach: use sudo; in a container, give lockdump CAP_SYS_PTRACE: `docker run --cap-add SYS_PTRACE --pid=container:NAME ...`, `kubectl debug --profile=general ...`)",
        "3" => " (ptrace is disabled until reboot, in every container too: no capability lifts it)",
        _ => "",
    };
    InspectError::PermissionDenied { pid, scope, hint }
}

/// Exit codes: the interface CI jobs rely on.
pub mod exit {
    /// Inspected; no deadlock found.
    pub const OK: i32 = 0;
    /// Inspected; at least one deadlock found, or threads stuck for good
    /// (a hang without a cycle): it will not resolve by itself.
    pub const DEADLOCK: i32 = 1;
    /// Could not inspect (bad PID, permissions, target vanished, usage error).
    pub const CANNOT_INSPECT: i32 = 2;
    /// `lockdump run`: CMD was still running at the timeout (its tree was
    /// dumped); GNU timeout's code, distinct from any code CMD's own death
    /// produces.
    pub const TIMED_OUT: i32 = 124;
    /// Inspected, no deadlock among what was examined, but part of a target
    /// could not be examined (e.g. a CPython whose layout is not understood).
    pub const INCOMPLETE: i32 = 3;
    /// Inspected over `--watch`: no deadlock, nothing stuck, but a probable
    /// livelock or a starving thread. Not 1: the program is not frozen and
    /// may yet get out (a livelock is inferred, a starvation can end when
    /// the load changes), but a CI job wants to fail on it.
    pub const NO_PROGRESS: i32 = 4;
}
