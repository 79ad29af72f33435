//! Reading /proc for a process and its threads.
//!
//! Two kinds of readers (issue 24 item 7, measured in bench/README.md,
//! "/proc readers: procfs or by hand"):
//!
//! - what a run reads once per process (its status and stat, exe, auxv, the
//!   tracer's name, a thread's wchan when a stop times out): the procfs
//!   crate, whose parsers cover the formats completely;
//! - what the stop and the per-thread reads around it need (a thread's stat,
//!   status, syscall and schedstat, the task list, an fd's target) and the
//!   memory map: the hand parsers in [`parse`], which read only the fields
//!   lockdump uses, without a map of every field per thread, are fuzzed, and
//!   take any bytes (procfs 0.17 reads `maps` and `cmdline` as strict UTF-8:
//!   one mapped file or argument named in Latin-1 would fail the read).
//!
//! Nothing here needs the target stopped; callers decide when to read
//! (before the stop for per-thread state and wchan, so they describe the
//! thread, not the ptrace stop).
//! Only the capture and the live target (`crate::live`) call these: a stage
//! after capture asks the snapshot's source instead, which a core file
//! answers too (tests/layout.rs checks it).

#[cfg(test)]
mod fuzz;
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

/// A procfs-crate error as the `io::Error` the hand readers give for the
/// same failure, so that callers (`InspectError::from_proc`: no such
/// process, permission denied, exited) see the same kinds and OS errors.
fn from_procfs(what: &str, e: procfs::ProcError) -> io::Error {
    match e {
        procfs::ProcError::NotFound(_) => io::Error::from(io::ErrorKind::NotFound),
        procfs::ProcError::PermissionDenied(_) => io::Error::from(io::ErrorKind::PermissionDenied),
        procfs::ProcError::Io(e, _) => e,
        procfs::ProcError::Incomplete(_) | procfs::ProcError::Other(_) | procfs::ProcError::InternalError(_) => {
            invalid(what)
        }
    }
}

/// The procfs crate's handle on `dir` (`/proc/PID`, or `/proc/PID/task/TID`
/// for one thread's files).
fn procfs_dir(dir: PathBuf) -> io::Result<procfs::process::Process> {
    procfs::process::Process::new_with_root(dir).map_err(|e| from_procfs("process", e))
}

/// The process's status (procfs's parser). Read here as lossy UTF-8 and
/// then parsed: the name in `status` is any bytes (see [`read_text`]), and
/// procfs's own read of it is strict.
pub fn status(pid: i32) -> io::Result<Status> {
    use procfs::FromBufRead;
    let text = read_text(pid_dir(pid).join("status"))?;
    let st = procfs::process::Status::from_buf_read(text.as_bytes()).map_err(|e| from_procfs("status", e))?;
    Ok(Status {
        name: st.name,
        state: st.state.chars().next().ok_or_else(|| invalid("status"))?,
        tgid: st.tgid,
        tracer_pid: st.tracerpid,
        ns_pids: st.nspid.unwrap_or_default(),
        ns_tgids: st.nstgid.unwrap_or_default(),
        uid: st.ruid,
        ctxt_switches: match (st.voluntary_ctxt_switches, st.nonvoluntary_ctxt_switches) {
            (None, None) => None,
            (v, n) => Some(v.unwrap_or(0).wrapping_add(n.unwrap_or(0))),
        },
        ppid: st.ppid,
        sig_cgt: st.sigcgt,
    })
}

/// The process's stat (procfs: its read is lossy UTF-8 already).
pub fn stat(pid: i32) -> io::Result<Stat> {
    let st = procfs_dir(pid_dir(pid))?.stat().map_err(|e| from_procfs("stat", e))?;
    Ok(Stat {
        comm: st.comm,
        state: st.state,
        ppid: st.ppid,
        flags: u64::from(st.flags),
        start_time: st.starttime,
        cpu_ticks: st.utime + st.stime,
    })
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

/// The thread's command name (procfs: the name in its `stat`, which is
/// its `comm`).
pub fn comm(pid: i32, tid: i32) -> io::Result<String> {
    Ok(procfs_dir(task_dir(pid, tid))?
        .stat()
        .map_err(|e| from_procfs("stat", e))?
        .comm)
}

/// The kernel function the thread sleeps in (`futex_do_wait`), or empty
/// when running (procfs).
pub fn wchan(pid: i32, tid: i32) -> io::Result<String> {
    let s = procfs_dir(task_dir(pid, tid))?
        .wchan()
        .map_err(|e| from_procfs("wchan", e))?;
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

/// Whether `fd` of `pid` is a pipe or a FIFO (a named pipe's link is its
/// path, so the file it opens is asked).
pub fn fd_is_fifo(pid: i32, fd: i32) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::metadata(pid_dir(pid).join("fd").join(fd.to_string())).is_ok_and(|m| m.file_type().is_fifo())
}

pub fn maps(pid: i32) -> io::Result<Vec<MapEntry>> {
    Ok(parse::parse_maps(&read_text(pid_dir(pid).join("maps"))?))
}

/// The auxiliary vector, as (type, value) pairs by type (procfs).
pub fn auxv(pid: i32) -> io::Result<Vec<(u64, u64)>> {
    let mut pairs: Vec<(u64, u64)> = procfs_dir(pid_dir(pid))?
        .auxv()
        .map_err(|e| from_procfs("auxv", e))?
        .into_iter()
        .collect();
    pairs.sort_unstable();
    Ok(pairs)
}

/// The executable (procfs).
pub fn exe(pid: i32) -> io::Result<PathBuf> {
    procfs_dir(pid_dir(pid))?.exe().map_err(|e| from_procfs("exe", e))
}

/// The arguments, each as lossy UTF-8 (by hand: procfs 0.17's `cmdline`
/// fails on an argument that is not UTF-8).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The moved readers give what the hand parsers gave.
    #[test]
    fn procfs_readers_agree_with_the_hand_parsers() {
        let me = std::process::id() as i32;
        let by_hand = parse::parse_status(&read_text(pid_dir(me).join("status")).unwrap()).unwrap();
        let mut st = status(me).unwrap();
        // procfs splits the Name line at every ':' (lockdump reads no
        // process name from `status`: thread names come from `stat`).
        st.name.clone_from(&by_hand.name);
        // The state and switch counts are read at different moments.
        assert!(st.ctxt_switches.is_some() && st.state != '?');
        (st.state, st.ctxt_switches) = (by_hand.state, by_hand.ctxt_switches);
        assert_eq!(st, by_hand);
        let by_hand = parse::parse_stat(&read_text(pid_dir(me).join("stat")).unwrap()).unwrap();
        let s = stat(me).unwrap();
        assert_eq!(
            (&s.comm, s.ppid, s.flags, s.start_time),
            (&by_hand.comm, by_hand.ppid, by_hand.flags, by_hand.start_time)
        );
        assert_eq!(s.flags & parse::PF_KTHREAD, 0);
        let mut by_hand = parse::parse_auxv(&fs::read(pid_dir(me).join("auxv")).unwrap());
        by_hand.sort_unstable();
        assert_eq!(auxv(me).unwrap(), by_hand);
        assert!(auxv(me).unwrap().iter().any(|&(k, _)| k == AT_SYSINFO_EHDR));
        assert_eq!(exe(me).unwrap(), fs::read_link("/proc/self/exe").unwrap());
        let comm_file = read_text(task_dir(me, me).join("comm")).unwrap();
        assert_eq!(comm(me, me).unwrap(), comm_file.trim_end_matches('\n'));
        assert!(wchan(me, me).is_ok());
    }

    /// A PID that names nothing gives the error kinds callers map to "no
    /// such process".
    #[test]
    fn procfs_readers_fail_like_the_hand_ones() {
        let gone = i32::MAX - 7;
        for e in [
            status(gone).unwrap_err(),
            stat(gone).unwrap_err(),
            auxv(gone).unwrap_err(),
            exe(gone).unwrap_err(),
            comm(gone, gone).unwrap_err(),
            wchan(gone, gone).unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        }
    }

    /// Per-call cost of each reader moved to procfs against the hand parser
    /// it replaced, and of `maps` (kept by hand) both ways (bench/README.md).
    /// `LOCKDUMP_BENCH_PID=PID cargo test --release --lib proc::tests::reader_costs -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn reader_costs() {
        let pid: i32 = std::env::var("LOCKDUMP_BENCH_PID")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(std::process::id() as i32);
        let time = |name: &str, f: &mut dyn FnMut()| {
            let n = 2000;
            f();
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = std::time::Instant::now();
                for _ in 0..n {
                    f();
                }
                best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            }
            println!("{name:<28} {best:8.2} µs");
        };
        time("status: procfs", &mut || drop(status(pid).unwrap()));
        time("status: by hand", &mut || {
            drop(parse::parse_status(&read_text(pid_dir(pid).join("status")).unwrap()).unwrap())
        });
        time("stat: procfs", &mut || drop(stat(pid).unwrap()));
        time("stat: by hand", &mut || {
            drop(parse::parse_stat(&read_text(pid_dir(pid).join("stat")).unwrap()).unwrap())
        });
        time("auxv: procfs", &mut || drop(auxv(pid).unwrap()));
        time("auxv: by hand", &mut || {
            drop(parse::parse_auxv(&fs::read(pid_dir(pid).join("auxv")).unwrap()))
        });
        time("exe: procfs", &mut || drop(exe(pid).unwrap()));
        time("exe: by hand", &mut || {
            drop(fs::read_link(pid_dir(pid).join("exe")).unwrap())
        });
        time("comm: procfs (stat)", &mut || drop(comm(pid, pid).unwrap()));
        time("comm: by hand", &mut || {
            drop(read_text(task_dir(pid, pid).join("comm")).unwrap())
        });
        time("wchan: procfs", &mut || drop(wchan(pid, pid).unwrap()));
        time("wchan: by hand", &mut || {
            drop(read_text(task_dir(pid, pid).join("wchan")).unwrap())
        });
        let n = maps(pid).unwrap().len();
        time(&format!("maps ({n} lines): procfs"), &mut || {
            drop(procfs::process::Process::new(pid).unwrap().maps().unwrap())
        });
        time(&format!("maps ({n} lines): by hand"), &mut || drop(maps(pid).unwrap()));
        let t = tasks(pid).unwrap().len();
        time(&format!("tasks ({t}): procfs"), &mut || {
            let p = procfs::process::Process::new(pid).unwrap();
            drop(p.tasks().unwrap().filter_map(|t| Some(t.ok()?.tid)).collect::<Vec<_>>())
        });
        time(&format!("tasks ({t}): by hand"), &mut || drop(tasks(pid).unwrap()));
        time("task status: procfs", &mut || {
            use procfs::FromBufRead;
            let text = read_text(task_dir(pid, pid).join("status")).unwrap();
            drop(procfs::process::Status::from_buf_read(text.as_bytes()).unwrap())
        });
        time("task status: by hand", &mut || drop(task_status(pid, pid).unwrap()));
    }
}
