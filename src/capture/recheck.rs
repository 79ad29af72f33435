//! Whether a captured thread is still where the capture found it: asked of
//! the live process before a verdict that rests on a wait having lasted
//! (a cycle's member, a stuck thread) is reported. A core file is one
//! instant and has nothing to re-check; its snapshot has no [`Live`].

use std::time::Duration;

use super::{Live, SyscallState, ThreadSnapshot, SYS_RESTART_SYSCALL};
use crate::proc::SyscallLine;

/// Whether a cycle member's captured wait still holds now, and so held
/// through everything read since its capture; `Err` says why not.
///
/// Sampled without a stop (`no_stop`): the thread must be in the
/// same system call with the same arguments, stack and instruction pointers
/// (a valid /proc/TID/syscall line means the kernel saw it off CPU), and
/// have the same count of context switches as when sampled. Off CPU at both
/// looks with no switch between, it did not run in between: it neither left
/// its wait nor took or released anything, so every owner read meanwhile
/// agrees with its wait. (A thread that took the lock and came back to wait
/// on it at the same place shows the same syscall line, but not the same
/// count.) A thread stopped by its debugger (state t) passes: it cannot run
/// either. One look; a thread that ran is not stuck.
///
/// After a stop (the stop itself switches contexts, so no count helps):
/// the thread must still be blocked in the system call (same number, same
/// first argument: the futex) it was captured in. A timed wait interrupted
/// by the stop continues as `restart_syscall` with its arguments still in
/// the registers. A thread seen between two waits (a signal handled, a
/// timed wait renewed) gets a few more looks.
pub fn wait_still_holds(live: Live, t: &ThreadSnapshot, no_stop: bool) -> Result<(), &'static str> {
    const LEFT: &str = "the thread left this wait after the capture, so it was not stuck: the owner found afterwards \
                        is not trusted";
    const RAN: &str = "the thread ran after --no-stop sampled its wait (its wait and the lock's owner were not read \
                       at one instant), so it was not stuck: the owner is not trusted";
    let Some(captured) = t.syscall else {
        return Err(LEFT);
    };
    if no_stop {
        let Some(switches) = t.switches else {
            return Err(RAN);
        };
        let same_line = matches!(
            live.thread_syscall(t.tid.get()),
            Ok(SyscallLine::InSyscall { nr, args, sp, pc })
                if nr == captured.nr && args == captured.args && sp == t.regs.rsp && pc == t.regs.rip
        );
        // The count after the syscall line: see above.
        let same_count = live
            .thread_status(t.tid.get())
            .is_ok_and(|s| s.ctxt_switches == Some(switches));
        return if same_line && same_count { Ok(()) } else { Err(RAN) };
    }
    if still_in_captured_syscall(live, t, captured) {
        Ok(())
    } else {
        Err(LEFT)
    }
}

/// The thread is still blocked in the call it was captured in (a few
/// looks, 2 ms apart: a thread between two waits gets another chance).
pub fn still_in_captured_syscall(live: Live, t: &ThreadSnapshot, captured: SyscallState) -> bool {
    for look in 0..5 {
        if look > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        match live.thread_syscall(t.tid.get()) {
            Ok(SyscallLine::InSyscall { nr, args, .. }) => {
                let same_call = nr == captured.nr || nr == SYS_RESTART_SYSCALL || captured.restarted;
                if same_call && args[0] == captured.args[0] {
                    return true;
                }
            }
            Ok(_) => {}
            Err(_) => return false, // gone
        }
    }
    false
}
