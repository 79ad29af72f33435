//! Termination signals while the target is stopped.
//!
//! While lockdump holds threads of the target stopped, SIGINT/SIGTERM/SIGHUP/
//! SIGQUIT must not kill lockdump before it detaches (the kernel would detach
//! for us on exit, but a stop we caused could still be observed, and the
//! report would be lost mid-line). During capture these signals only set a
//! flag and interrupt blocking calls (no `SA_RESTART`); capture notices the
//! flag, detaches every thread, and reports [`crate::error::InspectError::Interrupted`]
//! once the target runs again.
//!
//! SIGALRM is used the same way to bound how long capture waits for threads
//! to stop.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

static RECEIVED: AtomicI32 = AtomicI32::new(0);

const TERMINATING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn on_signal(sig: libc::c_int) {
    if sig != libc::SIGALRM {
        RECEIVED.store(sig, Ordering::SeqCst);
    }
}

/// While alive, termination signals are deferred (recorded, not acted on).
/// Dropping it restores the previous handlers.
pub struct DeferSignals {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl DeferSignals {
    pub fn install() -> Self {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for &sig in TERMINATING.iter().chain(std::iter::once(&libc::SIGALRM)) {
            // SAFETY: a plain C handler that only stores to an atomic; sigaction
            // structs are fully initialised before use.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut act.sa_mask);
                act.sa_flags = 0; // no SA_RESTART: blocking waits return EINTR
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &act, &mut old) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        DeferSignals { previous }
    }

    /// The termination signal received since install, if any.
    pub fn received(&self) -> Option<i32> {
        match RECEIVED.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Arrange for SIGALRM to interrupt a blocking wait after `after`.
    pub fn alarm(&self, after: Duration) {
        let t = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval {
                tv_sec: after.as_secs() as _,
                tv_usec: after.subsec_micros().max(1) as _,
            },
        };
        // SAFETY: setitimer only reads the struct.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) };
    }

    pub fn cancel_alarm(&self) {
        let zero = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval { tv_sec: 0, tv_usec: 0 },
        };
        // SAFETY: as above.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &zero, std::ptr::null_mut()) };
    }
}

impl Drop for DeferSignals {
    fn drop(&mut self) {
        self.cancel_alarm();
        for (sig, old) in self.previous.drain(..) {
            // SAFETY: restoring the handler saved by install().
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
    }
}

/// Run `spawn` (which starts threads) with every signal blocked, then restore
/// this thread's mask. Threads inherit the mask, so the ones started inside
/// never take a signal: SIGALRM and the termination signals above must
/// reach the capturing thread, whose blocking calls they are meant to
/// interrupt. `None` if the mask cannot be changed (nothing is started then).
pub fn with_signals_blocked<T>(spawn: impl FnOnce() -> T) -> Option<T> {
    // SAFETY: sigfillset/pthread_sigmask on local sets; the previous mask is
    // restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old) != 0 {
            return None;
        }
        let out = spawn();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        Some(out)
    }
}
