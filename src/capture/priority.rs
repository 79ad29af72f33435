//! Running lockdump's capturing thread ahead of the target's threads.
//!
//! Stopping a process is thousands of short syscalls (seize, interrupt,
//! wait, read registers, detach) made one after the other by one thread.
//! On a target whose threads want more CPU than there is (2000 threads
//! waking every millisecond on 2 CPUs: ~1500 of them runnable at any time),
//! that thread is one runnable task among thousands and gets a
//! thousandth of a CPU: every time the scheduler preempts it, it waits for
//! a round of all the target's runnable threads. Threads not yet seized
//! (while stopping) and threads already detached (while resuming) are the
//! ones it waits behind, so the part of the target still stopped waits
//! with it: a 3.5 s pause for 2000 such threads, and a minute end to end,
//! where the same syscalls take ~20 ms on an idle target. The raw ptrace
//! floor (`bench/floor.c`) shows the same: ~2.2 s at normal priority,
//! ~30 ms under `SCHED_FIFO`.
//!
//! So while it captures, and while it analyzes a target that had more
//! runnable threads than there are CPUs, lockdump's thread runs under
//! `SCHED_FIFO` at the lowest real-time priority: it is never preempted by
//! a normal thread, and gives the CPU up whenever it blocks (waiting for a
//! stop, reading a file). Nothing of the target is changed: only lockdump's
//! own thread's policy, restored when the guard is dropped. The kernel's
//! real-time throttling (`kernel.sched_rt_runtime_us`, 95% by default)
//! still leaves every CPU some time for normal threads, and the capture is
//! bounded work (linear in threads). Threads started meanwhile inherit the
//! policy (the /proc readers of `capture::thread_infos`, which otherwise
//! would starve the same way); the DWARF prefetch thread drops to
//! `SCHED_IDLE` itself.
//!
//! Needs `CAP_SYS_NICE` (root) or an `RLIMIT_RTPRIO` of at least 1; without
//! it nothing changes and capture works as before, only slower on such
//! targets.

/// The calling thread's scheduling policy and parameters before [`raise`].
#[must_use = "dropping the guard restores the previous priority at once"]
pub struct Raised {
    previous: Option<(libc::c_int, libc::sched_param)>,
}

impl Raised {
    /// Whether the thread runs under `SCHED_FIFO` now because of this guard.
    pub fn active(&self) -> bool {
        self.previous.is_some()
    }
}

/// Put the calling thread under `SCHED_FIFO` (priority 1) until the guard
/// is dropped. Does nothing if not permitted, or if the thread already has
/// a real-time policy (someone ran lockdump under `chrt`: leave it be).
pub fn raise() -> Raised {
    // SAFETY: sched_getscheduler/getparam/setscheduler on the calling
    // thread (0), with initialised parameter structs.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        let mut param: libc::sched_param = std::mem::zeroed();
        if policy < 0 || libc::sched_getparam(0, &mut param) != 0 {
            return Raised { previous: None };
        }
        if policy & !libc::SCHED_RESET_ON_FORK != libc::SCHED_OTHER {
            return Raised { previous: None };
        }
        // Zeroed, not a struct literal: musl's sched_param has more fields.
        let mut fifo: libc::sched_param = std::mem::zeroed();
        fifo.sched_priority = 1;
        if libc::sched_setscheduler(0, libc::SCHED_FIFO, &fifo) != 0 {
            return Raised { previous: None };
        }
        Raised {
            previous: Some((policy, param)),
        }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some((policy, param)) = self.previous.take() {
            // SAFETY: restoring what sched_getscheduler/getparam returned.
            unsafe { libc::sched_setscheduler(0, policy, &param) };
        }
    }
}

/// Give thread `tid` of this process the calling thread's policy (a thread
/// the caller is about to wait for must not wait at a lower priority than
/// the caller, or under a busy target it may not run at all). Errors are
/// ignored (the thread may have finished).
pub fn share_with(tid: i32) {
    // SAFETY: as in `raise`; `tid` is a thread of this process.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        let mut param: libc::sched_param = std::mem::zeroed();
        if policy < 0 || libc::sched_getparam(0, &mut param) != 0 {
            return;
        }
        libc::sched_setscheduler(tid, policy & !libc::SCHED_RESET_ON_FORK, &param);
    }
}
