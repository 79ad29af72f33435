//! Looking at the same threads of a live process again and again: a
//! verdict's confirmation window reads every thread of a stuck process
//! before and after it (1000 threads: thousands of reads where the window
//! itself is 50 ms), so each thread's `status` file is opened once and
//! re-read from offset 0 (a seq file read at offset 0 is generated afresh),
//! and every file is opened relative to an open /proc/PID/task, instead of
//! walking the full path, `fstat`ing and reading to EOF each time. At most
//! [`KEEP_OPEN_MAX`](crate::proc::task_files::KEEP_OPEN_MAX) files are
//! kept, for all [`Looks`] together (a 10,000-thread process would
//! otherwise exhaust the descriptor limit); the rest are opened and closed
//! at each look.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::proc::parse::{parse_status, parse_syscall};
use crate::proc::task_files::{keep_open_budget, TaskFiles};
use crate::proc::{Status, SyscallLine};

/// Files kept open by all [`Looks`] now (see the module doc).
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Threads of one process looked at more than once (see the module doc).
/// A thread's `status` is opened on its first read and kept (within the
/// budget) until this is dropped.
pub struct Looks {
    files: Option<TaskFiles>,
    /// How many files all [`Looks`] may keep open together.
    budget: usize,
    kept: HashMap<i32, File>,
    /// How many of [`KEPT`] are this one's.
    mine: usize,
}

impl Drop for Looks {
    fn drop(&mut self) {
        KEPT.fetch_sub(self.mine, Relaxed);
    }
}

impl Looks {
    pub(super) fn new(pid: i32) -> Looks {
        Looks {
            files: TaskFiles::open(pid),
            budget: keep_open_budget(),
            kept: HashMap::new(),
            mine: 0,
        }
    }

    /// Thread `tid`'s status now (state, context switches).
    pub fn status(&mut self, tid: i32) -> io::Result<Status> {
        let text = self.read_status(tid)?;
        parse_status(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed status"))
    }

    /// The call thread `tid` is in now.
    pub fn syscall(&mut self, tid: i32) -> io::Result<SyscallLine> {
        let files = self.files.as_mut().ok_or_else(gone)?;
        parse_syscall(&files.read(tid, "syscall")?)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed syscall"))
    }

    fn read_status(&mut self, tid: i32) -> io::Result<String> {
        let files = self.files.as_mut().ok_or_else(gone)?;
        if let Some(file) = self.kept.get(&tid) {
            // A thread that exited since its file was opened reads as ESRCH.
            return Ok(files.read_again(file)?.into_owned());
        }
        let file = files.open_file(tid, "status")?;
        let text = files.read_again(&file)?.into_owned();
        let budget = self.budget;
        if KEPT
            .fetch_update(Relaxed, Relaxed, |n| (n < budget).then_some(n + 1))
            .is_ok()
        {
            self.kept.insert(tid, file);
            self.mine += 1;
        }
        Ok(text)
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the process has exited")
}
