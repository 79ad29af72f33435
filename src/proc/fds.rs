//! What a file descriptor is, in words a user can act on: a TCP or UDP
//! socket by its local and peer address, a Unix socket by its path, a pipe,
//! a file by its path, an eventfd/timerfd/signalfd, and the processes on
//! this machine that hold the other end where /proc shows them.
//!
//! Read with the procfs crate (fd links, /proc/PID/net tables). Only used
//! after the capture, for the few threads the report singles out (the
//! thread others wait behind), never on the stop's hot path, which keeps
//! its own parser (src/proc/parse.rs).

use std::collections::HashMap;

use procfs::process::{FDTarget, Process};

/// Most processes scanned for the other end of a pipe or socket.
const MAX_PROCESSES: usize = 4096;

/// `fd 3: TCP 127.0.0.1:41234 -> 127.0.0.1:5000 (established), other end in PID 812 "server"`,
/// or `None` when the fd cannot be read.
pub fn describe(pid: i32, fd: i32) -> Option<String> {
    let p = Process::new(pid).ok()?;
    let info = p.fd_from_fd(fd).ok()?;
    let what = match info.target {
        FDTarget::Path(path) => format!("file {}", path.display()),
        FDTarget::Pipe(inode) => {
            // Both ends of a pipe are the same inode: the fd itself is one.
            let ends = holders(pid, 1, |t| matches!(t, FDTarget::Pipe(i) if *i == inode));
            format!("pipe:[{inode}]{}", other_end(&ends))
        }
        FDTarget::Socket(inode) => socket(&p, pid, inode).unwrap_or_else(|| format!("socket:[{inode}]")),
        FDTarget::AnonInode(kind) => kind,
        FDTarget::MemFD(name) => format!("memfd {name}"),
        FDTarget::Net(inode) => format!("net namespace [{inode}]"),
        FDTarget::Other(kind, inode) => format!("{kind}:[{inode}]"),
    };
    Some(format!("fd {fd}: {what}"))
}

/// For each of `fds` of a live process that is a pipe: its inode and every
/// process holding a write end of it (the process itself included when it
/// does). One pass over every process's fd table serves them all.
pub fn pipe_writers(live: crate::capture::Live, fds: &[i32]) -> HashMap<i32, (u64, Vec<i32>)> {
    let mut out = HashMap::new();
    let Ok(p) = Process::new(live.pid) else {
        return out;
    };
    let inodes: HashMap<i32, u64> = fds
        .iter()
        .filter_map(|&fd| match p.fd_from_fd(fd).ok()?.target {
            FDTarget::Pipe(inode) => Some((fd, inode)),
            _ => None,
        })
        .collect();
    if inodes.is_empty() {
        return out;
    }
    let wanted: std::collections::HashSet<u64> = inodes.values().copied().collect();
    let mut writers: HashMap<u64, Vec<i32>> = HashMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for q in all.flatten().take(MAX_PROCESSES) {
            let Ok(fds) = q.fd() else { continue };
            let mut seen = std::collections::HashSet::new();
            for f in fds.flatten() {
                if let FDTarget::Pipe(i) = f.target {
                    if wanted.contains(&i) && f.mode().contains(procfs::process::FDPermissions::WRITE) && seen.insert(i)
                    {
                        writers.entry(i).or_default().push(q.pid);
                    }
                }
            }
        }
    }
    for (fd, inode) in inodes {
        let mut pids = writers.get(&inode).cloned().unwrap_or_default();
        pids.sort_unstable();
        out.insert(fd, (inode, pids));
    }
    out
}

/// The child processes of a live process (of all its threads), sorted.
pub fn children(live: crate::capture::Live) -> Vec<i32> {
    let Ok(p) = Process::new(live.pid) else {
        return Vec::new();
    };
    let Ok(tasks) = p.tasks() else {
        return Vec::new();
    };
    let mut out: Vec<i32> = tasks
        .flatten()
        .flat_map(|t| t.children().unwrap_or_default())
        .filter_map(|c| i32::try_from(c).ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A socket from the process's own network namespace tables.
fn socket(p: &Process, pid: i32, inode: u64) -> Option<String> {
    let tcp = p
        .tcp()
        .unwrap_or_default()
        .into_iter()
        .chain(p.tcp6().unwrap_or_default());
    let tcp: Vec<_> = tcp.collect();
    if let Some(e) = tcp.iter().find(|e| e.inode == inode) {
        // The other end on this machine: the entry with the addresses swapped.
        let peer = tcp
            .iter()
            .find(|o| o.local_address == e.remote_address && o.remote_address == e.local_address && o.inode != 0)
            .map(|o| holders(pid, 0, |t| matches!(t, FDTarget::Socket(i) if *i == o.inode)))
            .unwrap_or_default();
        return Some(format!(
            "TCP {} -> {} ({}){}",
            e.local_address,
            e.remote_address,
            format!("{:?}", e.state).to_lowercase(),
            other_end(&peer)
        ));
    }
    let udp = p
        .udp()
        .unwrap_or_default()
        .into_iter()
        .chain(p.udp6().unwrap_or_default());
    if let Some(e) = udp.into_iter().find(|e| e.inode == inode) {
        return Some(format!("UDP {} -> {}", e.local_address, e.remote_address));
    }
    if let Some(e) = p.unix().unwrap_or_default().into_iter().find(|e| e.inode == inode) {
        return Some(match e.path {
            Some(path) => format!("Unix socket {}", path.display()),
            None => format!("Unix socket:[{inode}] (unnamed)"),
        });
    }
    None
}

/// Processes that hold an fd matching `is_it`, `(pid, comm)`; process `me`
/// only if it holds more than `own` such fds (its own end).
fn holders(me: i32, own: usize, is_it: impl Fn(&FDTarget) -> bool) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(all) = procfs::process::all_processes() else {
        return out;
    };
    for p in all.flatten().take(MAX_PROCESSES) {
        let Ok(fds) = p.fd() else { continue };
        let skip = if p.pid == me { own } else { 0 };
        let n = fds.flatten().filter(|f| is_it(&f.target)).count();
        if n > skip {
            let comm = p.stat().map(|s| s.comm).unwrap_or_default();
            out.push((p.pid, comm));
        }
    }
    out
}

fn other_end(holders: &[(i32, String)]) -> String {
    if holders.is_empty() {
        return String::new();
    }
    let list: Vec<String> = holders
        .iter()
        .map(|(pid, comm)| format!("PID {pid} \"{}\"", crate::report::style::clean(comm)))
        .collect();
    format!(", other end held by {}", list.join(", "))
}
