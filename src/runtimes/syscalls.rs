//! Blocking system calls that are not lock waits, in words.
//!
//! A thread asleep in `read(0)` or `epoll_wait` is not part of a wait-for
//! cycle, but the report should still say where it is: "every thread is
//! blocked" is only convincing when each thread's wait is named.
//! Numbers are the x86_64 syscall table (`arch/x86/entry/syscalls/syscall_64.tbl`).

use super::futex::{self, FutexCmd};
use crate::target::{Memory, SyscallState, SYS_RESTART_SYSCALL};

/// `fcntl` commands that block on a record lock.
const F_SETLKW: u64 = 7;
const F_OFD_SETLKW: u64 = 38;

/// Describe the syscall the thread is in, if it is one a thread may block in.
/// Futex waits are described generically (`futex_wait`); the runtime
/// analyzers say which lock they belong to.
pub fn describe(sys: &SyscallState, mem: &dyn Memory) -> Option<String> {
    let a = sys.args;
    let fd = a[0] as i64 as i32;
    let s = match sys.nr {
        0 => format!("read(fd {fd})"),
        1 => format!("write(fd {fd})"),
        7 => format!("poll({} fds)", a[1]),
        17 => format!("pread64(fd {fd})"),
        18 => format!("pwrite64(fd {fd})"),
        19 => format!("readv(fd {fd})"),
        20 => format!("writev(fd {fd})"),
        23 => "select".into(),
        34 => "pause".into(),
        35 => "nanosleep".into(),
        42 => format!("connect(fd {fd})"),
        43 => format!("accept(fd {fd})"),
        44 => format!("sendto(fd {fd})"),
        45 => format!("recvfrom(fd {fd})"),
        46 => format!("sendmsg(fd {fd})"),
        47 => format!("recvmsg(fd {fd})"),
        61 => "wait4".into(),
        64 | 65 | 220 => "semop (System V semaphore)".into(),
        69 => "msgsnd".into(),
        70 => "msgrcv".into(),
        72 if a[1] == F_SETLKW || a[1] == F_OFD_SETLKW => format!("fcntl(fd {fd}, F_SETLKW) record lock"),
        73 => format!("flock(fd {fd})"),
        128 => "rt_sigtimedwait".into(),
        130 => "rt_sigsuspend".into(),
        202 => match futex::decode(sys, mem) {
            Some(w) => format!("futex_wait {}", w.describe()),
            None => return None,
        },
        208 => "io_getevents".into(),
        230 => "clock_nanosleep".into(),
        232 => format!("epoll_wait(fd {fd})"),
        243 => "mq_timedreceive".into(),
        247 => "waitid".into(),
        270 => "pselect6".into(),
        271 => format!("ppoll({} fds)", a[1]),
        281 => format!("epoll_pwait(fd {fd})"),
        288 => format!("accept4(fd {fd})"),
        299 => format!("recvmmsg(fd {fd})"),
        426 => format!("io_uring_enter(fd {fd})"),
        441 => format!("epoll_pwait2(fd {fd})"),
        449 => match futex::decode_waitv(sys, mem) {
            Some(v) => format!("futex_waitv on {} futexes", v.len()),
            None => "futex_waitv".into(),
        },
        SYS_RESTART_SYSCALL => match futex::decode(sys, mem) {
            Some(w) if w.cmd == FutexCmd::Wait || w.cmd == FutexCmd::WaitBitset => {
                format!("futex_wait {} (timed, restarted)", w.describe())
            }
            Some(w) => format!("{} (timed, restarted)", w.describe()),
            None => "restart_syscall (a timed wait such as nanosleep or poll, resumed after a stop)".into(),
        },
        _ => return None,
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::memory::BufferMemory;

    fn sys(nr: i64, args: [u64; 6]) -> SyscallState {
        SyscallState {
            nr,
            args,
            restarted: nr == SYS_RESTART_SYSCALL,
        }
    }

    #[test]
    fn names_common_waits() {
        let m = BufferMemory::default();
        assert_eq!(describe(&sys(0, [0; 6]), &m).as_deref(), Some("read(fd 0)"));
        assert_eq!(
            describe(&sys(232, [3, 0, 1, u64::MAX, 0, 0]), &m).as_deref(),
            Some("epoll_wait(fd 3)")
        );
        assert_eq!(
            describe(&sys(230, [1, 0, 0, 0, 0, 0]), &m).as_deref(),
            Some("clock_nanosleep")
        );
        assert_eq!(
            describe(&sys(72, [5, 7, 0, 0, 0, 0]), &m).as_deref(),
            Some("fcntl(fd 5, F_SETLKW) record lock")
        );
        assert_eq!(describe(&sys(72, [5, 1, 0, 0, 0, 0]), &m), None);
        assert_eq!(describe(&sys(39, [0; 6]), &m), None);
        assert!(describe(&sys(219, [1, 0, 0, 0, 0, 0]), &m)
            .unwrap()
            .starts_with("restart_syscall"));
        // An unreadable futex word: not described as a futex wait.
        assert_eq!(describe(&sys(202, [0x1000, 128, 2, 0, 0, 0]), &m), None);
    }
}
