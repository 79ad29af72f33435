//! The x86_64 syscalls lockdump names, in one table, and the thread header's
//! rendering of the call a thread sits in (`futex(0x..., FUTEX_WAIT_PRIVATE, 2)`).
//!
//! Numbers are the libc crate's x86_64 `SYS_*` constants (the kernel's
//! `arch/x86/entry/syscalls/syscall_64.tbl`). The runtimes' "blocked in"
//! descriptions ([`crate::runtimes::syscalls`]) and futex decoding take their
//! numbers and names from here too.

use crate::target::SyscallState;

/// How the thread header (and JSON `syscall.name`) shows a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// By name: `read(fd 3)`, `pselect6(0x.., 0x.., 0x..)`.
    Named,
    /// By number: `syscall 42(0x.., 0x.., 0x..)`. These calls are only named
    /// in blocked-in descriptions; naming them in the header as well would
    /// change the report's existing output, so it is left as it was.
    Number,
}

struct Entry {
    nr: i64,
    name: &'static str,
    header: Header,
}

/// Declares the `nr` constants and the table from one list, so they cannot disagree.
/// The numbers are the libc crate's `SYS_*` constants for x86_64.
macro_rules! syscalls {
    ($($konst:ident = $sys:ident $name:literal $header:ident;)*) => {
        /// x86_64 syscall numbers, by their kernel names.
        pub mod nr {
            $(pub const $konst: i64 = libc::$sys;)*
        }
        /// Sorted by number.
        const TABLE: &[Entry] = &[$(Entry { nr: nr::$konst, name: $name, header: Header::$header }),*];
        /// The libc constant each entry's number comes from (names must agree).
        #[cfg(test)]
        const SOURCES: &[&str] = &[$(stringify!($sys)),*];
    };
}

syscalls! {
    READ = SYS_read "read" Named;
    WRITE = SYS_write "write" Named;
    POLL = SYS_poll "poll" Named;
    PREAD64 = SYS_pread64 "pread64" Named;
    PWRITE64 = SYS_pwrite64 "pwrite64" Number;
    READV = SYS_readv "readv" Number;
    WRITEV = SYS_writev "writev" Number;
    SELECT = SYS_select "select" Named;
    PAUSE = SYS_pause "pause" Named;
    NANOSLEEP = SYS_nanosleep "nanosleep" Named;
    CONNECT = SYS_connect "connect" Number;
    ACCEPT = SYS_accept "accept" Named;
    SENDTO = SYS_sendto "sendto" Number;
    RECVFROM = SYS_recvfrom "recvfrom" Named;
    SENDMSG = SYS_sendmsg "sendmsg" Number;
    RECVMSG = SYS_recvmsg "recvmsg" Named;
    WAIT4 = SYS_wait4 "wait4" Named;
    SEMGET = SYS_semget "semget" Number;
    SEMOP = SYS_semop "semop" Number;
    MSGSND = SYS_msgsnd "msgsnd" Number;
    MSGRCV = SYS_msgrcv "msgrcv" Number;
    FCNTL = SYS_fcntl "fcntl" Named;
    FLOCK = SYS_flock "flock" Number;
    RT_SIGTIMEDWAIT = SYS_rt_sigtimedwait "rt_sigtimedwait" Named;
    RT_SIGSUSPEND = SYS_rt_sigsuspend "rt_sigsuspend" Named;
    FUTEX = SYS_futex "futex" Named;
    IO_GETEVENTS = SYS_io_getevents "io_getevents" Number;
    RESTART_SYSCALL = SYS_restart_syscall "restart_syscall" Named;
    SEMTIMEDOP = SYS_semtimedop "semtimedop" Number;
    CLOCK_NANOSLEEP = SYS_clock_nanosleep "clock_nanosleep" Named;
    EPOLL_WAIT = SYS_epoll_wait "epoll_wait" Named;
    MQ_TIMEDRECEIVE = SYS_mq_timedreceive "mq_timedreceive" Number;
    WAITID = SYS_waitid "waitid" Named;
    PSELECT6 = SYS_pselect6 "pselect6" Named;
    PPOLL = SYS_ppoll "ppoll" Named;
    EPOLL_PWAIT = SYS_epoll_pwait "epoll_pwait" Named;
    ACCEPT4 = SYS_accept4 "accept4" Named;
    RECVMMSG = SYS_recvmmsg "recvmmsg" Named;
    SENDMMSG = SYS_sendmmsg "sendmmsg" Number;
    IO_URING_ENTER = SYS_io_uring_enter "io_uring_enter" Number;
    EPOLL_PWAIT2 = SYS_epoll_pwait2 "epoll_pwait2" Named;
    FUTEX_WAITV = SYS_futex_waitv "futex_waitv" Named;
}

fn entry(nr: i64) -> Option<&'static Entry> {
    TABLE
        .binary_search_by_key(&nr, |e| e.nr)
        .ok()
        .and_then(|i| TABLE.get(i))
}

/// The kernel's name for any syscall in the table.
pub fn kernel_name(nr: i64) -> Option<&'static str> {
    entry(nr).map(|e| e.name)
}

/// The name the thread header and JSON `syscall.name` show: the calls a
/// blocked thread is commonly found in.
pub fn name(nr: i64) -> Option<&'static str> {
    entry(nr).filter(|e| e.header == Header::Named).map(|e| e.name)
}

/// What a ptrace stop (`PTRACE_INTERRUPT`, or any stop) does to a thread
/// blocked in a call.
///
/// A stop wakes the sleeping thread as a signal does. When no handler runs,
/// the kernel restarts calls that returned one of its internal restart codes
/// (`ERESTARTSYS`, `ERESTARTNOHAND`, `ERESTART_RESTARTBLOCK`: futex, poll,
/// nanosleep, read on a pipe, msgrcv, ...), and the program never notices.
/// A few calls return plain `EINTR` instead (signal(7), "Interruption of
/// system calls and library functions by stop signals"), and a program that
/// treats `EINTR` as fatal dies of being looked at. lockdump does not stop
/// threads blocked in those. Checked on Linux 6.18 by
/// `fixtures/c/eintr_calls.c` (one thread per call; `LOCKDUMP_EINTR_PROBE=1`
/// lists the calls a stop interrupts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Restarted by the kernel, or not a blocking wait: stopping is harmless.
    Restarted,
    /// Fails with `EINTR`: epoll waits, `sigtimedwait`/`sigwaitinfo`,
    /// `semop`/`semtimedop`, `io_getevents`.
    Interrupted,
    /// A socket call: fails with `EINTR` if the socket has a receive or send
    /// timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO`; the kernel's `sock_intr_errno`).
    /// Another process cannot see that timeout, so lockdump assumes it.
    InterruptedIfSocketTimeout,
    /// `read`/`write`/`readv`/`writev`: as [`OnStop::InterruptedIfSocketTimeout`]
    /// when the descriptor (first argument) is a socket, else restarted.
    /// The caller looks at the descriptor (`/proc/PID/fd/N`).
    InterruptedIfOnSocket,
}

/// [`OnStop`] of syscall `nr` (its number as `/proc/TID/syscall` or
/// `orig_rax` give it). `restart_syscall` (an interrupted timed wait that a
/// stop already restarted) is restarted again.
///
/// Not covered: `io_pgetevents` (333, which fails like `io_getevents`; the
/// libc crate has no x86_64 constant for it, so it is not in the table) and
/// reads of device files whose drivers return `EINTR` (see docs/limits.md).
pub fn on_stop(nr: i64) -> OnStop {
    match nr {
        nr::EPOLL_WAIT
        | nr::EPOLL_PWAIT
        | nr::EPOLL_PWAIT2
        | nr::RT_SIGTIMEDWAIT
        | nr::SEMOP
        | nr::SEMTIMEDOP
        | nr::IO_GETEVENTS => OnStop::Interrupted,
        nr::ACCEPT
        | nr::ACCEPT4
        | nr::CONNECT
        | nr::RECVFROM
        | nr::RECVMSG
        | nr::RECVMMSG
        | nr::SENDTO
        | nr::SENDMSG
        | nr::SENDMMSG => OnStop::InterruptedIfSocketTimeout,
        nr::READ | nr::WRITE | nr::READV | nr::WRITEV => OnStop::InterruptedIfOnSocket,
        _ => OnStop::Restarted,
    }
}

/// futex operation names (low 7 bits of the op argument).
pub fn futex_op_name(op: u64) -> String {
    let base = match op & 0x7f {
        0 => "FUTEX_WAIT",
        1 => "FUTEX_WAKE",
        5 => "FUTEX_WAKE_OP",
        6 => "FUTEX_LOCK_PI",
        7 => "FUTEX_UNLOCK_PI",
        8 => "FUTEX_TRYLOCK_PI",
        9 => "FUTEX_WAIT_BITSET",
        10 => "FUTEX_WAKE_BITSET",
        11 => "FUTEX_WAIT_REQUEUE_PI",
        12 => "FUTEX_CMP_REQUEUE_PI",
        13 => "FUTEX_LOCK_PI2",
        other => return format!("{op:#x} (op {other})"),
    };
    let mut s = base.to_string();
    if op & 128 != 0 {
        s.push_str("_PRIVATE");
    }
    if op & 256 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
    s
}

/// `futex(0x5638dbdb2060, FUTEX_WAIT_PRIVATE, 2)`-style rendering.
pub fn describe(sys: &SyscallState) -> String {
    let a = &sys.args;
    if sys.nr == nr::FUTEX {
        return format!("futex({:#x}, {}, {})", a[0], futex_op_name(a[1]), a[2] as u32);
    }
    if sys.restarted || sys.nr == nr::RESTART_SYSCALL {
        return "restart_syscall() (an interrupted timed wait)".to_string();
    }
    let Some(name) = name(sys.nr) else {
        return format!("syscall {}({:#x}, {:#x}, {:#x})", sys.nr, a[0], a[1], a[2]);
    };
    match sys.nr {
        nr::READ | nr::WRITE | nr::RECVFROM | nr::RECVMSG | nr::ACCEPT | nr::ACCEPT4 => {
            format!("{name}(fd {})", a[0] as i32)
        }
        nr::EPOLL_WAIT | nr::EPOLL_PWAIT | nr::EPOLL_PWAIT2 => format!("{name}(epfd {})", a[0] as i32),
        nr::POLL | nr::PPOLL => format!("{name}({} fds)", a[1]),
        nr::WAIT4 | nr::WAITID => format!("{name}({})", a[0] as i32),
        nr::PAUSE | nr::NANOSLEEP | nr::CLOCK_NANOSLEEP | nr::RT_SIGSUSPEND => format!("{name}()"),
        _ => format!("{name}({:#x}, {:#x}, {:#x})", a[0], a[1], a[2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(nr: i64, args: [u64; 6]) -> SyscallState {
        SyscallState {
            nr,
            args,
            restarted: false,
        }
    }

    #[test]
    fn table_is_sorted_and_named_like_libc() {
        assert!(TABLE.windows(2).all(|w| w[0].nr < w[1].nr));
        assert_eq!(TABLE.len(), SOURCES.len());
        for (e, src) in TABLE.iter().zip(SOURCES) {
            assert_eq!(format!("SYS_{}", e.name), *src);
        }
        assert_eq!(nr::FUTEX, 202);
        assert_eq!(kernel_name(42), Some("connect"));
        assert_eq!(name(42), None);
        assert_eq!(name(17), Some("pread64"));
        assert_eq!(kernel_name(39), None);
    }

    #[test]
    fn calls_a_stop_interrupts() {
        // The calls fixtures/c/eintr_calls.c saw fail with EINTR after one
        // stopping capture (Linux 6.18), and controls it saw restarted.
        for nr in [232, 281, 441, 128, 220, 65, 208] {
            assert_eq!(on_stop(nr), OnStop::Interrupted, "{:?}", kernel_name(nr));
        }
        for nr in [43, 45, 44, 42] {
            assert_eq!(on_stop(nr), OnStop::InterruptedIfSocketTimeout, "{:?}", kernel_name(nr));
        }
        assert_eq!(on_stop(0), OnStop::InterruptedIfOnSocket);
        for nr in [202, 230, 35, 7, 70, 219, 34, 61] {
            assert_eq!(on_stop(nr), OnStop::Restarted, "{:?}", kernel_name(nr));
        }
    }

    #[test]
    fn futex_rendering() {
        let s = sys(202, [0x5638dbdb2060, 0x80, 2, 0, 0, 0]);
        assert_eq!(describe(&s), "futex(0x5638dbdb2060, FUTEX_WAIT_PRIVATE, 2)");
        assert_eq!(futex_op_name(393), "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME");
        assert_eq!(futex_op_name(134), "FUTEX_LOCK_PI_PRIVATE");
        assert_eq!(describe(&sys(0, [3, 0, 0, 0, 0, 0])), "read(fd 3)");
    }

    #[test]
    fn header_rendering_of_other_calls() {
        let a = [3, 2, 0x10, 0, 0, 0];
        assert_eq!(describe(&sys(232, a)), "epoll_wait(epfd 3)");
        assert_eq!(describe(&sys(271, a)), "ppoll(2 fds)");
        assert_eq!(describe(&sys(61, a)), "wait4(3)");
        assert_eq!(describe(&sys(230, a)), "clock_nanosleep()");
        assert_eq!(describe(&sys(17, a)), "pread64(0x3, 0x2, 0x10)");
        assert_eq!(describe(&sys(42, a)), "syscall 42(0x3, 0x2, 0x10)");
        assert_eq!(describe(&sys(219, a)), "restart_syscall() (an interrupted timed wait)");
        let restarted = SyscallState {
            restarted: true,
            ..sys(219, a)
        };
        assert_eq!(describe(&restarted), "restart_syscall() (an interrupted timed wait)");
    }
}
