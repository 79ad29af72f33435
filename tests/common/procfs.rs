//! Reading a fixture's state from /proc without stopping it.

use std::io;
use std::path::{Path, PathBuf};

pub use lockdump::test_support::proc::SyscallLine;

/// What one look at a thread shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    /// `State:` letter (R, S, D, T, t, Z, ...).
    pub state: char,
    /// `/proc/PID/task/TID/syscall`.
    pub syscall: SyscallLine,
    /// voluntary + nonvoluntary context switches: unchanged between two
    /// looks means the thread did not run in between.
    pub switches: u64,
    /// The thread's comm (name), as pthread_setname_np / prctl left it.
    pub comm: String,
}

impl ThreadSample {
    /// Sleeping (S or D) inside a system call.
    pub fn is_blocked(&self) -> bool {
        matches!(self.state, 'S' | 'D') && matches!(self.syscall, SyscallLine::InSyscall { .. })
    }

    /// The syscall number, when in one.
    pub fn syscall_nr(&self) -> Option<i64> {
        match self.syscall {
            SyscallLine::InSyscall { nr, .. } => Some(nr),
            _ => None,
        }
    }

    /// `(uaddr, op, val)` when the thread is in futex(2).
    pub fn futex(&self) -> Option<Futex> {
        match self.syscall {
            SyscallLine::InSyscall {
                nr: SYS_FUTEX, args, ..
            } => Some(Futex {
                addr: args[0],
                op: args[1] as u32,
                val: args[2] as u32,
            }),
            _ => None,
        }
    }
}

pub const SYS_FUTEX: i64 = 202;
pub const SYS_PAUSE: i64 = 34;
pub const SYS_NANOSLEEP: i64 = 35;
pub const SYS_CLOCK_NANOSLEEP: i64 = 230;

/// The arguments of a futex(2) call that matter for lock analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Futex {
    pub addr: u64,
    pub op: u32,
    pub val: u32,
}

impl Futex {
    pub const WAIT: u32 = 0;
    pub const LOCK_PI: u32 = 6;
    pub const WAIT_BITSET: u32 = 9;
    pub const LOCK_PI2: u32 = 13;
    pub const PRIVATE_FLAG: u32 = 128;
    pub const CLOCK_REALTIME: u32 = 256;

    /// The operation without the PRIVATE and CLOCK_REALTIME flags.
    pub fn cmd(&self) -> u32 {
        self.op & 127
    }
    pub fn is_wait(&self) -> bool {
        matches!(self.cmd(), Self::WAIT | Self::WAIT_BITSET)
    }
    pub fn is_lock_pi(&self) -> bool {
        matches!(self.cmd(), Self::LOCK_PI | Self::LOCK_PI2)
    }
    pub fn is_private(&self) -> bool {
        self.op & Self::PRIVATE_FLAG != 0
    }
}

fn task_dir(pid: i32, tid: i32) -> PathBuf {
    lockdump::test_support::proc::task_dir(pid, tid)
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

fn parse_field<T: std::str::FromStr>(status: &str, key: &str, path: &Path) -> io::Result<T> {
    field(status, key)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {key} in {}", path.display())))
}

/// Look at one thread of process `pid`.
pub fn sample_thread(pid: i32, tid: i32) -> io::Result<ThreadSample> {
    let dir = task_dir(pid, tid);
    let status_path = dir.join("status");
    let status = std::fs::read_to_string(&status_path)?;
    let syscall = lockdump::test_support::proc::syscall(pid, tid)?;
    let state = field(&status, "State")
        .and_then(|s| s.chars().next())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no State"))?;
    let voluntary: u64 = parse_field(&status, "voluntary_ctxt_switches", &status_path)?;
    let involuntary: u64 = parse_field(&status, "nonvoluntary_ctxt_switches", &status_path)?;
    let comm = field(&status, "Name").unwrap_or_default().to_string();
    Ok(ThreadSample {
        state,
        syscall,
        switches: voluntary + involuntary,
        comm,
    })
}

/// The process (thread group) a TID belongs to.
pub fn tgid_of(tid: i32) -> io::Result<i32> {
    let path = PathBuf::from(format!("/proc/{tid}/status"));
    parse_field(&std::fs::read_to_string(&path)?, "Tgid", &path)
}

/// The TIDs of PID's threads, sorted (none when it is gone).
pub fn tids(pid: i32) -> Vec<i32> {
    lockdump::test_support::proc::tasks(pid).unwrap_or_default()
}

/// Whether TID is (still) a thread of PID.
pub fn task_exists(pid: i32, tid: i32) -> bool {
    task_dir(pid, tid).exists()
}

/// The process's state letter.
pub fn process_state(pid: i32) -> char {
    lockdump::test_support::proc::status(pid)
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"))
        .state
}

/// PID of the process tracing PID (0 when none): lockdump must always leave 0.
pub fn tracer_pid(pid: i32) -> i32 {
    lockdump::test_support::proc::status(pid)
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"))
        .tracer_pid
}

/// Signals blocked in a thread (`SigBlk`), as a bit mask (bit n-1 = signal n).
pub fn blocked_signals(pid: i32, tid: i32) -> u64 {
    let path = task_dir(pid, tid).join("status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let hex = field(&status, "SigBlk").unwrap_or_else(|| panic!("no SigBlk in {}", path.display()));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("bad SigBlk {hex:?}: {e}"))
}

/// The stack mapping of a thread's stack pointer: the `[start, end)` of the
/// mapping that contains `sp` in `/proc/PID/maps`.
pub fn mapping_containing(pid: i32, addr: u64) -> Option<(u64, u64)> {
    let maps = lockdump::test_support::proc::maps(pid).ok()?;
    maps.iter().find(|m| m.contains(addr)).map(|m| (m.start, m.end))
}

/// Counters written by a busy fixture's `--progress FILE`: native-endian u64s.
pub fn read_progress_u64s(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read progress file {}: {e}", path.display()));
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("chunk of 8")))
        .collect()
}

/// Read `len` bytes of PID's memory at `addr` through /proc/PID/mem (no
/// ptrace stop; allowed for the fixture's parent). Read-only, like lockdump.
pub fn read_mem(pid: i32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, addr)?;
    Ok(buf)
}

/// A native-endian u32 of PID's memory.
pub fn read_u32(pid: i32, addr: u64) -> u32 {
    let b = read_mem(pid, addr, 4).unwrap_or_else(|e| panic!("cannot read 4 bytes at {addr:#x} of {pid}: {e}"));
    u32::from_ne_bytes(b.try_into().expect("4 bytes"))
}
