//! The live target: everything lockdump asks a running process after its
//! capture, and the only place outside the capture itself that reads /proc
//! or the process's memory.
//!
//! A snapshot of a live process carries a [`Live`] (`Source::Live`); one of
//! a core file does not, so code that needs the live process cannot run on
//! a core by mistake (a core's PID may name an unrelated process by now).
//! Asking a question of the target goes through [`Live`]'s methods (the
//! memory, a thread's state and system call now, its mapped files, its fds,
//! the task table) or through the snapshot's `Source`, which answers for a
//! core too. `tests/layout.rs` fails when another module after capture
//! reads /proc or live memory itself.

pub mod fds;
pub mod identity;
pub mod looks;
pub mod memory;
pub mod tree;

use std::io;
use std::path::PathBuf;

pub use looks::Looks;
pub use memory::ProcessMemory;

use crate::proc::{self, Stat, Status, SyscallLine};

/// A live process: the only thing through which later stages may read
/// /proc or the process's memory. A core's snapshot has none, so code that
/// needs one cannot run on a core by mistake (its PID is not a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub pid: i32,
    /// A live thread through which the process's memory and process-wide
    /// /proc files (maps, auxv, root, map_files) are read: `pid` itself,
    /// unless the main thread has exited (pthread_exit) and left a zombie
    /// leader, whose mm and fs are gone while the other threads run on.
    pub mm_tid: i32,
}

impl Live {
    /// The process `pid`, read through its main thread (before a capture
    /// has found out whether that thread still has the process's memory).
    pub fn process(pid: i32) -> Live {
        Live { pid, mm_tid: pid }
    }
    /// Its memory now (`process_vm_readv`: read-only, never stops it).
    pub fn memory(&self) -> ProcessMemory {
        ProcessMemory::new(self.mm_tid)
    }
    /// Its root directory as this process sees it (a container's image).
    pub fn root_dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.mm_tid))
    }
    /// The file mapped at `start..end`, even when deleted or replaced on
    /// disk since (`map_files` needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE).
    pub fn mapped_file(&self, start: u64, end: u64) -> PathBuf {
        PathBuf::from(format!("/proc/{}/map_files/{start:x}-{end:x}", self.mm_tid))
    }
    /// The process's status now (signal dispositions: `SigCgt`).
    pub fn status(&self) -> io::Result<Status> {
        proc::status(self.pid)
    }
    /// The process still exists and is not a zombie.
    pub fn is_alive(&self) -> bool {
        proc::stat(self.pid).is_ok_and(|s| s.state != 'Z')
    }
    /// Its threads now.
    pub fn threads(&self) -> io::Result<Vec<i32>> {
        proc::tasks(self.pid)
    }
    pub fn thread_stat(&self, tid: i32) -> io::Result<Stat> {
        proc::task_stat(self.pid, tid)
    }
    pub fn thread_status(&self, tid: i32) -> io::Result<Status> {
        proc::task_status(self.pid, tid)
    }
    /// The call thread `tid` is in now (`/proc/PID/task/TID/syscall`).
    pub fn thread_syscall(&self, tid: i32) -> io::Result<SyscallLine> {
        proc::syscall(self.pid, tid)
    }
    /// Its threads, to be looked at several times (files kept open: [`Looks`]).
    pub fn looks(&self) -> Looks {
        Looks::new(self.pid)
    }
    /// CPU time thread `tid` has used, in ns (`schedstat`), if readable.
    pub fn thread_cpu_ns(&self, tid: i32) -> Option<u64> {
        proc::task_cpu_ns(self.pid, tid)
    }
    /// What its fd `fd` is, in words (`pipe:[123] (fd 3), other end held by ...`).
    pub fn fd_description(&self, fd: i32) -> Option<String> {
        fds::describe(self.pid, fd)
    }
}

/// The thread group (process) of task `tid` on this host now, if such a
/// task exists and can still run (not a zombie).
pub fn thread_group_of(tid: i32) -> Option<i32> {
    if tid <= 0 {
        return None;
    }
    let status = proc::status(tid).ok()?;
    // A zombie thread group still has a status file but no threads that can unlock.
    (status.state != 'Z' && status.state != 'X').then_some(status.tgid)
}

/// The parent of process `pid` on this host now, if known.
pub fn parent_of(pid: i32) -> Option<i32> {
    proc::status(pid).ok().map(|s| s.ppid).filter(|&p| p > 0)
}
