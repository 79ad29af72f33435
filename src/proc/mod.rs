//! Reading /proc for a process and its threads.
//!
//! Thin I/O wrappers around the pure parsers in [`parse`]. Nothing here needs
//! the target stopped; callers decide when to read (before the stop for
//! per-thread state and wchan, so they describe the thread, not the ptrace stop).
//! Only the capture and the live target (`crate::live`) call these: a stage
//! after capture asks the snapshot's source instead, which a core file
//! answers too (tests/layout.rs checks it).

pub mod parse;
pub mod task_files;

use std::fs;
use std::io;
use std::path::PathBuf;

pub use parse::{MapEntry, Stat, Status, SyscallLine};

/// `root` + absolute `path`, without letting `path` escape to the host
/// root (`/proc/PID/root` of a container, a core's `--sysroot`).
pub fn join_under(root: &std::path::Path, path: &std::path::Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

pub fn pid_dir(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}

pub fn task_dir(pid: i32, tid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/task/{tid}"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed {what}"))
}

/// Read a /proc text file as lossy UTF-8. What it holds comes from the
/// target: thread names (`comm`, also inside `stat` and `status`) are any 15
/// bytes, and mapped file names (`maps`) are any bytes; a strict UTF-8 read
/// would make a process named in Latin-1 impossible to inspect.
fn read_text(path: impl AsRef<std::path::Path>) -> io::Result<String> {
    Ok(String::from_utf8_lossy(&fs::read(path)?).into_owned())
}

pub fn status(pid: i32) -> io::Result<Status> {
    parse::parse_status(&read_text(pid_dir(pid).join("status"))?).ok_or_else(|| invalid("status"))
}

pub fn stat(pid: i32) -> io::Result<Stat> {
    parse::parse_stat(&read_text(pid_dir(pid).join("stat"))?).ok_or_else(|| invalid("stat"))
}

pub fn task_stat(pid: i32, tid: i32) -> io::Result<Stat> {
    parse::parse_stat(&read_text(task_dir(pid, tid).join("stat"))?).ok_or_else(|| invalid("stat"))
}

pub fn task_status(pid: i32, tid: i32) -> io::Result<Status> {
    parse::parse_status(&read_text(task_dir(pid, tid).join("status"))?).ok_or_else(|| invalid("status"))
}

/// CPU time the thread has used, in nanoseconds (`schedstat`); `None` when
/// the kernel does not keep it (no CONFIG_SCHED_INFO).
pub fn task_cpu_ns(pid: i32, tid: i32) -> Option<u64> {
    parse::parse_schedstat(&read_text(task_dir(pid, tid).join("schedstat")).ok()?)
}

/// Thread IDs of a process, sorted.
pub fn tasks(pid: i32) -> io::Result<Vec<i32>> {
    let mut tids: Vec<i32> = fs::read_dir(pid_dir(pid).join("task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The thread's command name, without the trailing newline.
pub fn comm(pid: i32, tid: i32) -> io::Result<String> {
    let mut s = read_text(task_dir(pid, tid).join("comm"))?;
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

/// The kernel function the thread sleeps in (`futex_do_wait`), or empty when running.
pub fn wchan(pid: i32, tid: i32) -> io::Result<String> {
    let s = read_text(task_dir(pid, tid).join("wchan"))?;
    Ok(if s == "0" { String::new() } else { s })
}

pub fn syscall(pid: i32, tid: i32) -> io::Result<SyscallLine> {
    parse::parse_syscall(&read_text(task_dir(pid, tid).join("syscall"))?).ok_or_else(|| invalid("syscall"))
}

/// What descriptor `fd` of the process refers to (`socket:[1234]`,
/// `anon_inode:inotify`, a path).
pub fn fd_target(pid: i32, fd: i32) -> io::Result<PathBuf> {
    fs::read_link(pid_dir(pid).join("fd").join(fd.to_string()))
}

pub fn maps(pid: i32) -> io::Result<Vec<MapEntry>> {
    Ok(parse::parse_maps(&read_text(pid_dir(pid).join("maps"))?))
}

pub fn auxv(pid: i32) -> io::Result<Vec<(u64, u64)>> {
    Ok(parse::parse_auxv(&fs::read(pid_dir(pid).join("auxv"))?))
}

pub fn exe(pid: i32) -> io::Result<PathBuf> {
    fs::read_link(pid_dir(pid).join("exe"))
}

pub fn cmdline(pid: i32) -> io::Result<Vec<String>> {
    let raw = fs::read(pid_dir(pid).join("cmdline"))?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// AT_SYSINFO_EHDR: where the kernel mapped the vdso image.
pub const AT_SYSINFO_EHDR: u64 = 33;
