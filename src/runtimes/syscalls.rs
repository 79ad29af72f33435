//! Blocking system calls that are not lock waits, in words.
//!
//! A thread asleep in `read(0)` or `epoll_wait` is not part of a wait-for
//! cycle, but the report should still say where it is: "every thread is
//! blocked" is only convincing when each thread's wait is named.
//! Numbers and names come from the one table in [`crate::syscalls`].

use super::futex::{self, Clocks, FutexCmd, FutexWait, WaitvEntry};
use super::{Deadline, Sleep, Timeout};
use crate::capture::{Memory, RegisterSource, Snapshot, SyscallState, ThreadSnapshot};
use crate::syscalls::{self as table, kernel_name, nr};

/// A thread's system call, decoded once from its registers and the words
/// they point to ([`decode`]). Every runtime, the sleep classification
/// ([`sleep`]) and the peers of a read or a child wait read this instead of
/// decoding the raw arguments again: a futex word read twice could differ
/// between readers, and a rule about what a call waits on lives here only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Call {
    /// Not in a system call, or not in one this decodes (see
    /// [`ThreadSnapshot::syscall`] for its number and raw arguments).
    #[default]
    Other,
    /// A futex operation that sleeps, with its word and timeout read
    /// ([`futex::decode`]; a `restart_syscall` whose registers look like one).
    Futex(FutexWait),
    /// `futex_waitv` on these futexes.
    FutexWaitv(Vec<WaitvEntry>),
    /// A read of data on an fd (`read`, `readv`, `recvfrom`, `recvmsg`): on
    /// a pipe or a connected socket, only the holders of the other end can
    /// end it.
    ReadFd { fd: i32 },
    /// A write of data to an fd (`write`, `writev`, `sendto`, `sendmsg`):
    /// asleep in it, on a full pipe or socket, only the holders of the
    /// other end can make room.
    WriteFd { fd: i32 },
    /// `wait4` / `waitid` for one child (its PID, as the target's namespace
    /// numbers it), or for any of them (`None`; a process group counts as
    /// any).
    WaitChild { pid: Option<i32> },
}

impl Call {
    /// The futex wait, if the thread sleeps in one.
    pub fn futex(&self) -> Option<&FutexWait> {
        match self {
            Call::Futex(w) => Some(w),
            _ => None,
        }
    }
}

/// Decode the call thread `t` is in ([`Call`]).
pub fn decode(t: &ThreadSnapshot, mem: &dyn Memory) -> Call {
    t.syscall.map_or(Call::Other, |sys| decode_call(&sys, mem))
}

/// Decode one system call with its arguments ([`Call`]).
pub fn decode_call(sys: &SyscallState, mem: &dyn Memory) -> Call {
    if let Some(w) = futex::decode(sys, mem) {
        return Call::Futex(w);
    }
    if sys.restarted {
        return Call::Other;
    }
    let first = sys.args[0] as i64 as i32;
    match sys.nr {
        nr::FUTEX_WAITV => futex::decode_waitv(sys, mem).map_or(Call::Other, Call::FutexWaitv),
        nr::READ | nr::READV | nr::RECVFROM | nr::RECVMSG => Call::ReadFd { fd: first },
        nr::WRITE | nr::WRITEV | nr::SENDTO | nr::SENDMSG => Call::WriteFd { fd: first },
        // wait4(pid > 0): that child; else any (a process group: all of them).
        nr::WAIT4 => Call::WaitChild {
            pid: Some(first).filter(|&p| p > 0),
        },
        // waitid(P_PID, id): that child; P_ALL, P_PGID, P_PIDFD: any.
        nr::WAITID => Call::WaitChild {
            pid: (sys.args[0] == P_PID).then_some(sys.args[1] as i64 as i32),
        },
        _ => Call::Other,
    }
}

/// `idtype_t`'s `P_PID` (`<sys/wait.h>`).
const P_PID: u64 = 1;

/// [`decode`] for every thread of a snapshot, parallel to its threads.
pub fn decode_all(snapshot: &Snapshot, mem: &dyn Memory) -> Vec<Call> {
    snapshot.threads.iter().map(|t| decode(t, mem)).collect()
}

/// Describe the syscall the thread is in, if it is one a thread may block in.
/// The call itself is rendered as the thread header renders it
/// ([`crate::syscalls::describe`]: the same name and arguments in the header,
/// the summary table and the JSON); a few get what they wait for appended.
/// Futex waits are described generically (`futex_wait`); the runtime
/// analyzers say which lock they belong to.
pub fn describe(sys: &SyscallState, call: &Call) -> Option<String> {
    let a = sys.args;
    let call_of = call;
    let call = table::describe(sys);
    let s = match sys.nr {
        nr::READ
        | nr::WRITE
        | nr::PREAD64
        | nr::PWRITE64
        | nr::READV
        | nr::WRITEV
        | nr::CONNECT
        | nr::ACCEPT
        | nr::SENDTO
        | nr::RECVFROM
        | nr::SENDMSG
        | nr::RECVMSG
        | nr::FLOCK
        | nr::EPOLL_WAIT
        | nr::EPOLL_PWAIT
        | nr::ACCEPT4
        | nr::RECVMMSG
        | nr::SENDMMSG
        | nr::IO_URING_ENTER
        | nr::EPOLL_PWAIT2
        | nr::POLL
        | nr::PPOLL
        | nr::SELECT
        | nr::PAUSE
        | nr::NANOSLEEP
        | nr::WAIT4
        | nr::MSGSND
        | nr::MSGRCV
        | nr::RT_SIGTIMEDWAIT
        | nr::RT_SIGSUSPEND
        | nr::IO_GETEVENTS
        | nr::CLOCK_NANOSLEEP
        | nr::MQ_TIMEDRECEIVE
        | nr::WAITID
        | nr::PSELECT6 => call,
        nr::SEMGET | nr::SEMOP | nr::SEMTIMEDOP => format!("{call} (System V semaphore)"),
        nr::FCNTL if a[1] == table::F_SETLKW || a[1] == table::F_OFD_SETLKW => format!("{call} record lock"),
        nr::FUTEX => match call_of.futex() {
            Some(w) => format!("futex_wait {}", w.describe()),
            None => return None,
        },
        nr::FUTEX_WAITV => match call_of {
            Call::FutexWaitv(v) => format!("futex_waitv on {} futexes", v.len()),
            _ => call,
        },
        nr::RESTART_SYSCALL => match call_of.futex() {
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

/// How thread `t` sleeps: its scheduler state and system call, decoded
/// once. `now` turns an absolute futex deadline into time left.
pub fn sleep(t: &ThreadSnapshot, decoded: &Call, now: &Clocks) -> Sleep {
    if t.state == 'D' {
        return Sleep::Uninterruptible;
    }
    let Some(sys) = t.syscall else {
        return Sleep::Running;
    };
    // Sampled without a stop, a runnable thread still shown in its call was
    // woken and is leaving it. A stopped thread's registers are newer than
    // its state (read before the stop): one runnable then may have entered
    // a wait since, or be about to re-enter the wait an earlier stop
    // interrupted (`SyscallState::entering`).
    if t.state == 'R' && t.register_source == RegisterSource::ProcSyscall && t.left_running.is_none() {
        return Sleep::Running;
    }
    let call = || kernel_name(sys.nr).unwrap_or("?").to_string();
    match sys.nr {
        nr::FUTEX | nr::RESTART_SYSCALL => match decoded.futex() {
            Some(w) => Sleep::Futex {
                timeout: match w.timeout {
                    futex::TimeoutArg::Read(to) => {
                        let ns = to.remaining_ns(now);
                        Deadline::In(Timeout {
                            in_ms: i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX),
                            relative: matches!(to, futex::FutexTimeout::Relative { .. }),
                            clock: match to {
                                futex::FutexTimeout::Absolute { clock, .. } => Some(clock),
                                futex::FutexTimeout::Relative { .. } => None,
                            },
                        })
                    }
                    futex::TimeoutArg::Unread => Deadline::Unread,
                    futex::TimeoutArg::Untimed => Deadline::Never,
                },
            },
            // Only timed calls are restarted through restart_syscall.
            None if sys.nr == nr::RESTART_SYSCALL => Sleep::Timer {
                call: "restart_syscall".into(),
            },
            None => Sleep::Unknown { call: call() },
        },
        nr::NANOSLEEP | nr::CLOCK_NANOSLEEP => Sleep::Timer { call: call() },
        nr::READ
        | nr::WRITE
        | nr::PREAD64
        | nr::PWRITE64
        | nr::READV
        | nr::WRITEV
        | nr::CONNECT
        | nr::ACCEPT
        | nr::ACCEPT4
        | nr::SENDTO
        | nr::RECVFROM
        | nr::SENDMSG
        | nr::RECVMSG
        | nr::RECVMMSG
        | nr::SENDMMSG
        | nr::POLL
        | nr::PPOLL
        | nr::SELECT
        | nr::PSELECT6
        | nr::EPOLL_WAIT
        | nr::EPOLL_PWAIT
        | nr::EPOLL_PWAIT2
        | nr::IO_GETEVENTS
        | nr::IO_URING_ENTER
        | nr::PAUSE
        | nr::RT_SIGSUSPEND
        | nr::RT_SIGTIMEDWAIT
        | nr::WAIT4
        | nr::WAITID
        | nr::SEMOP
        | nr::SEMTIMEDOP
        | nr::MSGSND
        | nr::MSGRCV
        | nr::MQ_TIMEDRECEIVE
        | nr::FLOCK
        | nr::FCNTL => Sleep::Input { call: call() },
        _ => Sleep::Unknown { call: call() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::BufferMemory;

    fn sys(number: i64, args: [u64; 6]) -> SyscallState {
        SyscallState {
            nr: number,
            args,
            restarted: number == nr::RESTART_SYSCALL,
            entering: false,
        }
    }

    #[test]
    fn names_common_waits() {
        let m = BufferMemory::default();
        let describe = |s: &SyscallState, m: &BufferMemory| describe(s, &decode_call(s, m));
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

    /// What each call waits on is decoded once: the fd of a read, the
    /// child of a wait (waitid's P_PID only), a futex only when its word is
    /// readable, a restarted call only as a futex.
    #[test]
    fn decodes_what_a_call_waits_on() {
        let m = BufferMemory {
            regions: vec![crate::memory::CopiedRegion {
                start: 0x1000,
                bytes: 2u32.to_le_bytes().to_vec(),
            }],
        };
        let call = |n, args| decode_call(&sys(n, args), &m);
        assert_eq!(call(nr::READ, [7, 0, 1, 0, 0, 0]), Call::ReadFd { fd: 7 });
        assert_eq!(call(nr::RECVFROM, [4, 0, 1, 0, 0, 0]), Call::ReadFd { fd: 4 });
        assert_eq!(call(nr::WRITE, [7, 0, 1, 0, 0, 0]), Call::WriteFd { fd: 7 });
        assert_eq!(call(nr::PWRITE64, [7, 0, 1, 0, 0, 0]), Call::Other);
        assert_eq!(
            call(nr::WAIT4, [4567, 0, 0, 0, 0, 0]),
            Call::WaitChild { pid: Some(4567) }
        );
        assert_eq!(
            call(nr::WAIT4, [u64::MAX, 0, 0, 0, 0, 0]),
            Call::WaitChild { pid: None }
        );
        assert_eq!(
            call(nr::WAITID, [1, 4567, 0, 4, 0, 0]),
            Call::WaitChild { pid: Some(4567) }
        );
        assert_eq!(call(nr::WAITID, [0, 0, 0, 4, 0, 0]), Call::WaitChild { pid: None });
        let w = call(nr::FUTEX, [0x1000, 128, 2, 0, 0, 0]);
        assert_eq!(w.futex().map(|w| (w.addr, w.expected, w.current)), Some((0x1000, 2, 2)));
        assert_eq!(
            call(nr::FUTEX, [0x2000, 128, 2, 0, 0, 0]),
            Call::Other,
            "unreadable word"
        );
        // restart_syscall's registers: a futex only if the word still holds the value.
        assert!(call(nr::RESTART_SYSCALL, [0x1000, 128, 2, 0, 0, 0]).futex().is_some());
        assert_eq!(call(nr::RESTART_SYSCALL, [0x1000, 128, 3, 0, 0, 0]), Call::Other);
        assert_eq!(call(nr::RESTART_SYSCALL, [7, 0, 1, 0, 0, 0]), Call::Other);
    }
}
