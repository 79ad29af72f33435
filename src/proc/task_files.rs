//! Fast reads of a process's per-thread /proc files, for the places that
//! read them for every thread: the capture before its stop, and the
//! re-confirmation of a verdict (a 1000-thread process means thousands of
//! reads on lockdump's critical path).

/// Reads per-thread /proc files fast: the capture's reads before the stop,
/// and the looks again at threads a verdict rests on (`crate::live::Looks`).
///
/// A pool of thousands of threads means thousands of these reads on the
/// critical path (they were a quarter of lockdump's time on 1000 threads), so
/// each is one `openat` relative to an open /proc/PID/task (no walk of the
/// full path) and one `read` into a reused buffer, where
/// `fs::read_to_string` adds an `fstat`, a 32-byte probe read and a final
/// empty read. `stat` and `wchan` are single-record seq files: a read shorter
/// than the buffer has returned all of it.
pub struct TaskFiles {
    dir: std::fs::File,
    buf: Vec<u8>,
}

/// Largest /proc file read through [`TaskFiles`] (a `stat` line is < 1 KiB).
const TASK_FILE_MAX: usize = 64 * 1024;

impl TaskFiles {
    pub fn open(pid: i32) -> Option<TaskFiles> {
        let dir = std::fs::File::open(format!("/proc/{pid}/task")).ok()?;
        Some(TaskFiles {
            dir,
            buf: vec![0; 4096],
        })
    }

    /// The text of /proc/PID/task/TID/NAME. Thread names are bytes, not
    /// necessarily UTF-8: invalid sequences become U+FFFD, as everywhere else.
    pub fn read(&mut self, tid: i32, name: &str) -> std::io::Result<std::borrow::Cow<'_, str>> {
        let file = self.open_file(tid, name)?;
        self.read_again(&file)
    }

    /// /proc/PID/task/TID/NAME, opened for [`TaskFiles::read_again`].
    pub fn open_file(&self, tid: i32, name: &str) -> std::io::Result<std::fs::File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let path = std::ffi::CString::new(format!("{tid}/{name}")).map_err(std::io::Error::other)?;
        // SAFETY: a NUL-terminated path and a directory fd that outlives the call.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }

    /// The whole text of an open /proc file, read from its start: a seq file
    /// read at offset 0 is generated afresh, so a descriptor kept open gives
    /// the file's current content on every call.
    pub fn read_again(&mut self, file: &std::fs::File) -> std::io::Result<std::borrow::Cow<'_, str>> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        loop {
            match file.read_at(&mut self.buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if filled < self.buf.len() {
                break;
            }
            if self.buf.len() >= TASK_FILE_MAX {
                return Err(std::io::Error::other("unexpectedly large /proc file"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        Ok(String::from_utf8_lossy(&self.buf[..filled]))
    }
}

/// Most per-thread descriptors one user keeps open at a time (the capture's
/// `schedstat` files from before the stop to the stop; a confirmation's
/// `status` and `syscall` files across its window), and how many
/// descriptors below the soft `RLIMIT_NOFILE` are left to everything else
/// (the symbol prefetch thread opens files meanwhile). Threads past the
/// bound are read by path, opened and closed each time. Each kept file
/// holds a page of kernel memory (its seq_file buffer) while kept: 4096
/// files are 16 MiB.
pub const KEEP_OPEN_MAX: usize = 4096;
const KEEP_OPEN_RESERVE: u64 = 512;

/// How many descriptors a user of [`TaskFiles`] may keep open.
pub fn keep_open_budget() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    (lim.rlim_cur.saturating_sub(KEEP_OPEN_RESERVE)).min(KEEP_OPEN_MAX as u64) as usize
}
