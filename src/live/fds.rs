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

/// What a blocked read or write on an fd waits for: data (or room) only
/// the holders of the other end can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtherEnd {
    /// A pipe a thread reads (both ends are one inode): the write ends.
    PipeWriters(u64),
    /// A full pipe a thread writes to: the read ends.
    PipeReaders(u64),
    /// A connected Unix socket (its own inode, its peer's inode): the fds
    /// of the peer socket.
    UnixPeer(u64, u64),
}

impl OtherEnd {
    /// `pipe:[123]`, `Unix socket:[124] (peer socket:[125])`.
    pub fn describe(self) -> String {
        match self {
            OtherEnd::PipeWriters(i) | OtherEnd::PipeReaders(i) => format!("pipe:[{i}]"),
            OtherEnd::UnixPeer(me, peer) => format!("Unix socket:[{me}] (peer socket:[{peer}])"),
        }
    }
}

/// A blocked call on an fd: a read, or a write (to a full pipe or socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blocked {
    Read(i32),
    Write(i32),
}

/// For each of `calls` of a live process whose fd is a pipe or a connected
/// Unix socket: what it is and every process holding the other end (a
/// pipe's write ends for a read, its read ends for a write, the peer
/// socket), the process itself included when it does. One pass over every
/// process's fd table serves them all.
pub fn other_ends(live: crate::live::Live, calls: &[Blocked]) -> HashMap<Blocked, (OtherEnd, Vec<i32>)> {
    let mut out = HashMap::new();
    let Ok(p) = Process::new(live.pid) else {
        return out;
    };
    let ends: HashMap<Blocked, OtherEnd> = calls
        .iter()
        .filter_map(|&call| {
            let (Blocked::Read(fd) | Blocked::Write(fd)) = call;
            let end = match (p.fd_from_fd(fd).ok()?.target, call) {
                (FDTarget::Pipe(inode), Blocked::Read(_)) => OtherEnd::PipeWriters(inode),
                (FDTarget::Pipe(inode), Blocked::Write(_)) => OtherEnd::PipeReaders(inode),
                (FDTarget::Socket(inode), _) => OtherEnd::UnixPeer(inode, unix_peer(inode)?),
                _ => return None,
            };
            Some((call, end))
        })
        .collect();
    if ends.is_empty() {
        return out;
    }
    let wanted: std::collections::HashSet<OtherEnd> = ends.values().copied().collect();
    let mut holders: HashMap<OtherEnd, Vec<i32>> = HashMap::new();
    if let Ok(all) = procfs::process::all_processes() {
        for q in all.flatten().take(MAX_PROCESSES) {
            let Ok(fds) = q.fd() else { continue };
            let mut seen = std::collections::HashSet::new();
            for f in fds.flatten() {
                let writes = f.mode().contains(procfs::process::FDPermissions::WRITE);
                let reads = f.mode().contains(procfs::process::FDPermissions::READ);
                for end in &wanted {
                    let holds = match (end, &f.target) {
                        (OtherEnd::PipeWriters(i), FDTarget::Pipe(j)) => i == j && writes,
                        (OtherEnd::PipeReaders(i), FDTarget::Pipe(j)) => i == j && reads,
                        (OtherEnd::UnixPeer(_, peer), FDTarget::Socket(j)) => peer == j,
                        _ => false,
                    };
                    if holds && seen.insert(*end) {
                        holders.entry(*end).or_default().push(q.pid);
                    }
                }
            }
        }
    }
    for (call, end) in ends {
        let mut pids = holders.get(&end).cloned().unwrap_or_default();
        pids.sort_unstable();
        out.insert(call, (end, pids));
    }
    out
}

/// The inode of the socket at the other end of the connected Unix socket
/// `inode`, asked of the kernel's sock_diag netlink interface (the peer is
/// in no /proc file). Only sockets of lockdump's own network namespace are
/// found. Layouts: linux/netlink.h (nlmsghdr), linux/sock_diag.h
/// (SOCK_DIAG_BY_FAMILY), linux/unix_diag.h (unix_diag_req, unix_diag_msg,
/// UDIAG_SHOW_PEER, UNIX_DIAG_PEER), linux/rtnetlink.h (rtattr).
pub fn unix_peer(inode: u64) -> Option<u64> {
    const NETLINK_SOCK_DIAG: i32 = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const UDIAG_SHOW_PEER: u32 = 4;
    const UNIX_DIAG_PEER: u16 = 2;
    let ino = u32::try_from(inode).ok()?;
    // nlmsghdr (16 bytes) + unix_diag_req (24 bytes).
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // seq
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req[24..28].copy_from_slice(&ino.to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
                                             // SAFETY: plain socket calls on a socket this function owns and closes;
                                             // the buffers outlive the calls that use them.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let fd = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let timeout = libc::timeval { tv_sec: 1, tv_usec: 0 };
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            raw,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        if sent != req.len() as isize {
            return None;
        }
        let mut buf = [0u8; 4096];
        let n = libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0);
        let reply = buf.get(..usize::try_from(n).ok()?)?;
        let u16_at = |o: usize| Some(u16::from_ne_bytes(reply.get(o..o + 2)?.try_into().ok()?));
        let u32_at = |o: usize| Some(u32::from_ne_bytes(reply.get(o..o + 4)?.try_into().ok()?));
        let len = (u32_at(0)? as usize).min(reply.len());
        if u16_at(4)? == NLMSG_ERROR || u32_at(16 + 4)? != ino {
            return None;
        }
        // Attributes after the 16-byte unix_diag_msg, each 4-aligned.
        let mut at = 32;
        while at + 4 <= len {
            let (alen, kind) = (u16_at(at)? as usize, u16_at(at + 2)?);
            if alen < 4 {
                return None;
            }
            if kind == UNIX_DIAG_PEER && alen >= 8 {
                return u32_at(at + 4).map(u64::from).filter(|&p| p != 0);
            }
            at += (alen + 3) & !3;
        }
        None
    }
}

/// The child processes of a live process (of all its threads), sorted.
pub fn children(live: crate::live::Live) -> Vec<i32> {
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
        .map(|(pid, comm)| format!("PID {pid} \"{}\"", crate::printable::clean(comm)))
        .collect();
    format!(", other end held by {}", list.join(", "))
}
