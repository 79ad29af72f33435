//! Names and human-readable decoding of the syscalls blocked threads sit in.

use crate::target::SyscallState;

/// x86_64 syscall names for the calls a blocked thread is commonly found in.
pub fn name(nr: i64) -> Option<&'static str> {
    Some(match nr {
        0 => "read",
        1 => "write",
        7 => "poll",
        17 => "pread64",
        23 => "select",
        34 => "pause",
        35 => "nanosleep",
        43 => "accept",
        45 => "recvfrom",
        47 => "recvmsg",
        61 => "wait4",
        72 => "fcntl",
        130 => "rt_sigsuspend",
        128 => "rt_sigtimedwait",
        202 => "futex",
        219 => "restart_syscall",
        230 => "clock_nanosleep",
        232 => "epoll_wait",
        247 => "waitid",
        270 => "pselect6",
        271 => "ppoll",
        281 => "epoll_pwait",
        288 => "accept4",
        299 => "recvmmsg",
        441 => "epoll_pwait2",
        449 => "futex_waitv",
        _ => return None,
    })
}

pub const SYS_FUTEX: i64 = 202;
pub const SYS_FUTEX_WAITV: i64 = 449;

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
    let name = if sys.restarted {
        "restart_syscall"
    } else {
        name(sys.nr).unwrap_or("")
    };
    match (sys.nr, name) {
        (SYS_FUTEX, _) => format!("futex({:#x}, {}, {})", a[0], futex_op_name(a[1]), a[2] as u32),
        (_, "") => format!("syscall {}({:#x}, {:#x}, {:#x})", sys.nr, a[0], a[1], a[2]),
        (_, "restart_syscall") => "restart_syscall() (an interrupted timed wait)".to_string(),
        (_, "read" | "write" | "recvfrom" | "recvmsg" | "accept" | "accept4") => format!("{name}(fd {})", a[0] as i32),
        (_, "epoll_wait" | "epoll_pwait" | "epoll_pwait2") => format!("{name}(epfd {})", a[0] as i32),
        (_, "poll" | "ppoll") => format!("{name}({} fds)", a[1]),
        (_, "wait4" | "waitid") => format!("{name}({})", a[0] as i32),
        (_, "pause" | "nanosleep" | "clock_nanosleep" | "rt_sigsuspend") => format!("{name}()"),
        _ => format!("{name}({:#x}, {:#x}, {:#x})", a[0], a[1], a[2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futex_rendering() {
        let s = SyscallState {
            nr: 202,
            args: [0x5638dbdb2060, 0x80, 2, 0, 0, 0],
            restarted: false,
        };
        assert_eq!(describe(&s), "futex(0x5638dbdb2060, FUTEX_WAIT_PRIVATE, 2)");
        assert_eq!(futex_op_name(393), "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME");
        assert_eq!(futex_op_name(134), "FUTEX_LOCK_PI_PRIVATE");
        let r = SyscallState {
            nr: 0,
            args: [3, 0, 0, 0, 0, 0],
            restarted: false,
        };
        assert_eq!(describe(&r), "read(fd 3)");
    }
}
