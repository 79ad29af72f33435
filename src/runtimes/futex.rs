//! Decoding a thread's blocking `futex(2)` call.
//!
//! Every lock wait on Linux ends in a futex syscall, so the syscall's
//! arguments are the most reliable evidence of what a thread waits on: the
//! address names the lock word, the operation tells a plain wait from a
//! priority-inheritance lock, and the expected value often encodes the lock's
//! state. This module only decodes and validates those arguments; deciding
//! which runtime object the address belongs to is the runtimes' job.
//!
//! Numbers are from the kernel's `include/uapi/linux/futex.h`.

use crate::capture::{Memory, SyscallState};

/// `futex` on x86_64.
pub const SYS_FUTEX: i64 = crate::syscalls::nr::FUTEX;
/// `futex_waitv` on x86_64 (Linux 5.16+).
pub const SYS_FUTEX_WAITV: i64 = crate::syscalls::nr::FUTEX_WAITV;

/// `FUTEX_PRIVATE_FLAG`: the futex is not shared between processes.
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
/// `FUTEX_CLOCK_REALTIME`: an absolute timeout is measured on CLOCK_REALTIME.
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
const FUTEX_CMD_MASK: u32 = !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);

/// `FUTEX_TID_MASK`: the owner TID bits of a PI or robust lock word.
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// `FUTEX_WAITERS`: set in a PI/robust lock word when someone sleeps on it.
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
/// `FUTEX_OWNER_DIED`: the kernel set this when the owner of a robust lock exited.
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

/// The futex operations that put the caller to sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutexCmd {
    /// `FUTEX_WAIT` (0): sleep while `*addr == val`; relative timeout.
    Wait,
    /// `FUTEX_WAIT_BITSET` (9): like WAIT with an absolute timeout and a wake mask.
    WaitBitset,
    /// `FUTEX_LOCK_PI` (6): take a priority-inheritance lock; the kernel knows the owner.
    LockPi,
    /// `FUTEX_LOCK_PI2` (13): LOCK_PI with a selectable clock.
    LockPi2,
    /// `FUTEX_WAIT_REQUEUE_PI` (11): a condition-variable wait that is moved to a PI mutex.
    WaitRequeuePi,
}

impl FutexCmd {
    fn from_raw(cmd: u32) -> Option<Self> {
        Some(match cmd {
            0 => FutexCmd::Wait,
            6 => FutexCmd::LockPi,
            9 => FutexCmd::WaitBitset,
            11 => FutexCmd::WaitRequeuePi,
            13 => FutexCmd::LockPi2,
            _ => return None,
        })
    }
    /// The operation takes a priority-inheritance lock (the lock word holds the owner TID).
    pub fn is_pi_lock(self) -> bool {
        matches!(self, FutexCmd::LockPi | FutexCmd::LockPi2)
    }
    pub fn name(self) -> &'static str {
        match self {
            FutexCmd::Wait => "FUTEX_WAIT",
            FutexCmd::WaitBitset => "FUTEX_WAIT_BITSET",
            FutexCmd::LockPi => "FUTEX_LOCK_PI",
            FutexCmd::LockPi2 => "FUTEX_LOCK_PI2",
            FutexCmd::WaitRequeuePi => "FUTEX_WAIT_REQUEUE_PI",
        }
    }
}

/// The clock an absolute futex timeout is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    Monotonic,
    Realtime,
}

/// A futex wait's timeout as the caller passed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutexTimeout {
    /// `FUTEX_WAIT`: a duration from the moment the call began (which is not
    /// known), so the wait ends at most this long after the capture.
    Relative { ns: i128 },
    /// `FUTEX_WAIT_BITSET`, `FUTEX_LOCK_PI2`, `FUTEX_WAIT_REQUEUE_PI`
    /// (CLOCK_MONOTONIC, or CLOCK_REALTIME with `FUTEX_CLOCK_REALTIME`) and
    /// `FUTEX_LOCK_PI` (always CLOCK_REALTIME): a point in time.
    Absolute { clock: Clock, ns: i128 },
}

/// The two clocks read once per analysis, to turn absolute deadlines into
/// "times out in X s".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clocks {
    pub monotonic_ns: i128,
    pub realtime_ns: i128,
}

impl Clocks {
    /// Now, on both clocks.
    pub fn now() -> Self {
        fn read(id: libc::clockid_t) -> i128 {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes the timespec we own.
            unsafe { libc::clock_gettime(id, &mut ts) };
            i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
        }
        Clocks {
            monotonic_ns: read(libc::CLOCK_MONOTONIC),
            realtime_ns: read(libc::CLOCK_REALTIME),
        }
    }
}

impl FutexTimeout {
    /// Nanoseconds from `now` until the wait times out (negative: overdue;
    /// for a relative timeout, the whole duration: an upper bound).
    pub fn remaining_ns(&self, now: &Clocks) -> i128 {
        match *self {
            FutexTimeout::Relative { ns } => ns,
            FutexTimeout::Absolute { clock, ns } => {
                ns - match clock {
                    Clock::Monotonic => now.monotonic_ns,
                    Clock::Realtime => now.realtime_ns,
                }
            }
        }
    }
}

/// The timeout argument (`utime`) of a futex wait, as the call was made.
/// One enum rather than a `timed` flag beside an `Option`: "untimed, with a
/// timeout" cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutArg {
    /// `utime` is null: only a wake-up (or a signal) ends the call.
    Untimed,
    /// A timeout was given, but the caller's `struct timespec` could not be
    /// read from the snapshot (or is not one the kernel accepts).
    Unread,
    /// A timeout was given and read (the caller's `struct timespec` is on its
    /// stack, copied at the stop).
    Read(FutexTimeout),
}

impl TimeoutArg {
    /// A timeout was given (`utime` non-null), readable or not.
    pub fn is_timed(self) -> bool {
        !matches!(self, TimeoutArg::Untimed)
    }

    /// The timeout, when one was given and read.
    pub fn read(self) -> Option<FutexTimeout> {
        match self {
            TimeoutArg::Read(t) => Some(t),
            TimeoutArg::Untimed | TimeoutArg::Unread => None,
        }
    }
}

/// Read a `struct timespec` (`{i64 tv_sec; i64 tv_nsec}`) and check it is one
/// the kernel would accept (`tv_nsec` in 0..1e9, `tv_sec` not negative).
pub fn read_timespec(mem: &dyn Memory, addr: u64) -> Option<i128> {
    let b = mem.read_vec(addr, 16).ok()?;
    let sec = i64::from_le_bytes(b[0..8].try_into().ok()?);
    let nsec = i64::from_le_bytes(b[8..16].try_into().ok()?);
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return None;
    }
    Some(i128::from(sec) * 1_000_000_000 + i128::from(nsec))
}

/// A thread asleep in a futex operation, with the word's value as read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FutexWait {
    /// The futex word (`uaddr`).
    pub addr: u64,
    pub cmd: FutexCmd,
    /// The raw `op` argument, for evidence strings.
    pub raw_op: u32,
    /// `FUTEX_PRIVATE_FLAG` was set: the object is process-private.
    pub private: bool,
    /// `FUTEX_CLOCK_REALTIME` was set.
    pub clock_realtime: bool,
    /// The value the caller expected (`val`); not meaningful for PI locks.
    pub expected: u32,
    /// The timeout `utime` points to: none, unreadable, or read.
    pub timeout: TimeoutArg,
    /// The futex word as read from the target (after the snapshot; may have moved on).
    pub current: u32,
    /// Second address (`uaddr2`) for `FUTEX_WAIT_REQUEUE_PI`: the PI mutex.
    pub uaddr2: Option<u64>,
    /// The thread is in `restart_syscall`; the arguments were recovered from registers.
    pub restarted: bool,
}

impl FutexWait {
    /// A short description for evidence strings, as the thread header
    /// shows the call: `futex(0x55d0..., FUTEX_WAIT_PRIVATE, 2)`.
    pub fn describe(&self) -> String {
        crate::syscalls::futex_text(self.addr, self.raw_op as u64, self.expected)
    }
}

/// Decode the thread's syscall as a sleeping futex operation.
///
/// Returns `None` for any other syscall, for futex operations that do not
/// sleep (WAKE, REQUEUE, ...), and for arguments that do not hold up: the
/// word must be 4-byte aligned and readable, and the value must be a 32-bit int as a C
/// caller passes it (zero- or sign-extended, see [`futex_val`]).
/// For `restart_syscall` the argument registers are only a guess (another
/// timed syscall may have been interrupted), so the word must also still hold
/// the expected value, or for a PI lock a non-zero owner.
pub fn decode(sys: &SyscallState, mem: &dyn Memory) -> Option<FutexWait> {
    if !(sys.nr == SYS_FUTEX || sys.restarted) {
        return None;
    }
    let [addr, op, val, utime, uaddr2, _val3] = sys.args;
    let op = u32::try_from(op).ok()?;
    let cmd = FutexCmd::from_raw(op & FUTEX_CMD_MASK)?;
    if addr == 0 || addr % 4 != 0 {
        return None;
    }
    let current = mem.read_u32(addr).ok()?;
    let expected = if cmd.is_pi_lock() {
        // LOCK_PI ignores `val` (glibc passes 0 or the private flag there).
        0
    } else {
        futex_val(val)?
    };
    // A restarted call's number is gone, and a call about to be entered has
    // not checked its word yet: either waits only if the word still holds
    // what the call expects.
    if sys.restarted || sys.entering {
        let plausible = if cmd.is_pi_lock() {
            current & FUTEX_TID_MASK != 0
        } else {
            current == expected
        };
        if !plausible {
            return None;
        }
    }
    let timeout = if utime == 0 {
        TimeoutArg::Untimed
    } else {
        let realtime = op & FUTEX_CLOCK_REALTIME != 0;
        let read = read_timespec(mem, utime).map(|ns| match cmd {
            FutexCmd::Wait => FutexTimeout::Relative { ns },
            // LOCK_PI's timeout is on CLOCK_REALTIME whatever the flag says.
            FutexCmd::LockPi => FutexTimeout::Absolute {
                clock: Clock::Realtime,
                ns,
            },
            FutexCmd::WaitBitset | FutexCmd::LockPi2 | FutexCmd::WaitRequeuePi => FutexTimeout::Absolute {
                clock: if realtime { Clock::Realtime } else { Clock::Monotonic },
                ns,
            },
        });
        read.map_or(TimeoutArg::Unread, TimeoutArg::Read)
    };
    Some(FutexWait {
        addr,
        cmd,
        raw_op: op,
        private: op & FUTEX_PRIVATE_FLAG != 0,
        clock_realtime: op & FUTEX_CLOCK_REALTIME != 0,
        expected,
        timeout,
        current,
        uaddr2: (cmd == FutexCmd::WaitRequeuePi).then_some(uaddr2),
        restarted: sys.restarted,
    })
}

/// The 32-bit `val` argument as the kernel sees it (`u32 val` in
/// `SYSCALL_DEFINE6(futex, ...)`: the low half of the register).
///
/// The high half depends on how the caller widened an `int`: glibc passes
/// `unsigned int` (zero-extended), musl passes `int` through `__syscall(long,
/// ...)`, so a value with bit 31 set (musl's `lock | 0x80000000` waiter
/// flag) arrives sign-extended, and /proc/TID/syscall prints it as
/// `0xffffffff8...`. Both are accepted; any other high half is not a value a
/// C caller passed, which keeps the check that a restarted call's registers
/// look like a futex wait.
pub fn futex_val(raw: u64) -> Option<u32> {
    let low = raw as u32;
    let sign_extended = u64::from(low) | 0xffff_ffff_0000_0000;
    (raw == u64::from(low) || (low & 0x8000_0000 != 0 && raw == sign_extended)).then_some(low)
}

/// One entry of a `futex_waitv` array (`struct futex_waitv` in the kernel UAPI):
/// `{u64 val; u64 uaddr; u32 flags; u32 reserved}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitvEntry {
    pub val: u64,
    pub uaddr: u64,
    pub flags: u32,
}

/// The kernel's limit on `futex_waitv` entries (`FUTEX_WAITV_MAX`).
pub const FUTEX_WAITV_MAX: u64 = 128;

/// Decode a `futex_waitv(waiters, nr, flags, timeout, clockid)` call.
pub fn decode_waitv(sys: &SyscallState, mem: &dyn Memory) -> Option<Vec<WaitvEntry>> {
    if sys.nr != SYS_FUTEX_WAITV {
        return None;
    }
    let (ptr, n) = (sys.args[0], sys.args[1]);
    if n == 0 || n > FUTEX_WAITV_MAX {
        return None;
    }
    let bytes = mem.read_vec(ptr, n as usize * 24).ok()?;
    Some(
        bytes
            .chunks_exact(24)
            .map(|c| WaitvEntry {
                val: u64::from_le_bytes(c[0..8].try_into().unwrap_or_default()),
                uaddr: u64::from_le_bytes(c[8..16].try_into().unwrap_or_default()),
                flags: u32::from_le_bytes(c[16..20].try_into().unwrap_or_default()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};

    fn mem_with(addr: u64, bytes: &[u8]) -> BufferMemory {
        BufferMemory {
            regions: vec![CopiedRegion {
                start: addr,
                bytes: bytes.to_vec(),
            }],
        }
    }

    fn sys(nr: i64, args: [u64; 6], restarted: bool) -> SyscallState {
        SyscallState {
            nr,
            args,
            restarted,
            entering: false,
        }
    }

    #[test]
    fn plain_private_wait() {
        let m = mem_with(0x1000, &2u32.to_le_bytes());
        let w = decode(&sys(202, [0x1000, 128, 2, 0, 0, 0], false), &m).unwrap();
        assert_eq!(
            (w.addr, w.cmd, w.private, w.expected, w.current),
            (0x1000, FutexCmd::Wait, true, 2, 2)
        );
        assert!(!w.timeout.is_timed() && !w.clock_realtime);
        assert_eq!(w.describe(), "futex(0x1000, FUTEX_WAIT_PRIVATE, 2)");
    }

    #[test]
    fn bitset_realtime_and_pi() {
        let m = mem_with(0x1000, &0x8000_1234u32.to_le_bytes());
        let w = decode(&sys(202, [0x1000, 393, 0x8000_1234, 0, 0, u32::MAX as u64], false), &m).unwrap();
        assert_eq!(w.cmd, FutexCmd::WaitBitset);
        assert!(w.private && w.clock_realtime);
        let pi = decode(&sys(202, [0x1000, 134, 0, 0, 0, 0], false), &m).unwrap();
        assert_eq!(pi.cmd, FutexCmd::LockPi);
        assert_eq!(pi.current & FUTEX_TID_MASK, 0x1234);
        assert!(decode(&sys(202, [0x1000, 13, 0, 0, 0, 0], false), &m).unwrap().cmd == FutexCmd::LockPi2);
    }

    #[test]
    fn rejects_non_waits_and_bad_arguments() {
        let m = mem_with(0x1000, &2u32.to_le_bytes());
        // FUTEX_WAKE does not sleep.
        assert!(decode(&sys(202, [0x1000, 129, 1, 0, 0, 0], false), &m).is_none());
        // Unmapped, misaligned, oversized value.
        assert!(decode(&sys(202, [0x2000, 128, 2, 0, 0, 0], false), &m).is_none());
        assert!(decode(&sys(202, [0x1001, 128, 2, 0, 0, 0], false), &m).is_none());
        assert!(decode(&sys(202, [0x1000, 128, 1 << 40, 0, 0, 0], false), &m).is_none());
        // Another syscall.
        assert!(decode(&sys(7, [0x1000, 128, 2, 0, 0, 0], false), &m).is_none());
    }

    /// musl passes `val` as an `int` through `__syscall(long, ...)`, so a value
    /// with bit 31 set (its mutex waiters pass `lock | 0x80000000`) arrives
    /// sign-extended in the register and in /proc/TID/syscall. The kernel
    /// takes the low 32 bits; so must lockdump.
    #[test]
    fn sign_extended_value_is_the_low_32_bits() {
        let m = mem_with(0x1000, &0x8000_0010u32.to_le_bytes());
        let w = decode(&sys(202, [0x1000, 128, 0xffff_ffff_8000_0010, 0, 0, 0], false), &m).unwrap();
        assert_eq!((w.expected, w.current), (0x8000_0010, 0x8000_0010));
        assert_eq!(w.describe(), "futex(0x1000, FUTEX_WAIT_PRIVATE, 0x80000010)");
        // Zero-extended (glibc's robust waits) decodes the same.
        let z = decode(&sys(202, [0x1000, 128, 0x8000_0010, 0, 0, 0], false), &m).unwrap();
        assert_eq!(z.expected, 0x8000_0010);
        // A restarted wait recovered from registers is matched on the same 32 bits.
        let r = decode(
            &sys(219, [0x1000, 128, 0xffff_ffff_8000_0010, 0x7ffc_0000, 0, 0], true),
            &m,
        )
        .unwrap();
        assert!(r.restarted && r.expected == 0x8000_0010);
        // A positive value sign-extended is just itself; anything else in the
        // high half is not an int the caller passed.
        assert!(decode(&sys(202, [0x1000, 128, 0xffff_ffff_0000_0010, 0, 0, 0], false), &m).is_none());
        assert!(decode(&sys(202, [0x1000, 128, 0x0000_0001_8000_0010, 0, 0, 0], false), &m).is_none());
    }

    #[test]
    fn timeouts_relative_and_absolute() {
        let mut bytes = 2u32.to_le_bytes().to_vec();
        bytes.resize(16, 0);
        // timespec at 0x1010: 2 s 500 ms.
        bytes.extend_from_slice(&2i64.to_le_bytes());
        bytes.extend_from_slice(&500_000_000i64.to_le_bytes());
        let m = mem_with(0x1000, &bytes);
        let now = Clocks {
            monotonic_ns: 1_000_000_000,
            realtime_ns: 2_000_000_000,
        };
        let rel = decode(&sys(202, [0x1000, 128, 2, 0x1010, 0, 0], false), &m).unwrap();
        assert_eq!(
            rel.timeout,
            TimeoutArg::Read(FutexTimeout::Relative { ns: 2_500_000_000 })
        );
        assert_eq!(rel.timeout.read().unwrap().remaining_ns(&now), 2_500_000_000);
        let mono = decode(&sys(202, [0x1000, 137, 2, 0x1010, 0, u32::MAX as u64], false), &m).unwrap();
        assert_eq!(mono.timeout.read().unwrap().remaining_ns(&now), 1_500_000_000);
        let real = decode(&sys(202, [0x1000, 393, 2, 0x1010, 0, u32::MAX as u64], false), &m).unwrap();
        assert_eq!(real.timeout.read().unwrap().remaining_ns(&now), 500_000_000);
        // Timed, but the timespec is unreadable or invalid: timed without a value.
        let lost = decode(&sys(202, [0x1000, 137, 2, 0x9000, 0, 0], false), &m).unwrap();
        assert!(lost.timeout.is_timed() && lost.timeout.read().is_none());
        assert_eq!(
            read_timespec(&mem_with(0x1000, &[0xff; 16]), 0x1000),
            None,
            "negative tv_sec"
        );
    }

    #[test]
    fn restarted_needs_matching_value() {
        let m = mem_with(0x1000, &3u32.to_le_bytes());
        let ok = decode(&sys(219, [0x1000, 393, 3, 0x7ffc0000, 0, 0], true), &m).unwrap();
        assert!(ok.restarted && ok.timeout.is_timed());
        // A restarted nanosleep/poll whose registers do not look like a futex wait.
        assert!(decode(&sys(219, [0x1000, 393, 7, 0, 0, 0], true), &m).is_none());
        assert!(decode(&sys(219, [0x1000, 0x7ffc_0000, 3, 0, 0, 0], true), &m).is_none());
        assert!(decode(&sys(219, [1, 0, 0, 0, 0, 0], true), &m).is_none());
    }

    #[test]
    fn entering_waits_only_if_the_word_still_matches() {
        let m = mem_with(0x1000, &2u32.to_le_bytes());
        let entering = |val: u64| SyscallState {
            entering: true,
            ..sys(202, [0x1000, 128, val, 0, 0, 0], false)
        };
        let w = decode(&entering(2), &m).unwrap();
        assert_eq!((w.addr, w.expected, w.cmd), (0x1000, 2, FutexCmd::Wait));
        // The word changed (the lock was released): the call returns at once.
        assert!(decode(&entering(0), &m).is_none());
        // Inside the call, the kernel already compared: no second check.
        assert!(decode(&sys(202, [0x1000, 128, 0, 0, 0, 0], false), &m).is_some());
    }

    #[test]
    fn waitv_entries() {
        let mut b = Vec::new();
        for (val, addr) in [(5u64, 0x2000u64), (6, 0x3000)] {
            b.extend_from_slice(&val.to_le_bytes());
            b.extend_from_slice(&addr.to_le_bytes());
            b.extend_from_slice(&130u32.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        let m = mem_with(0x1000, &b);
        let v = decode_waitv(&sys(449, [0x1000, 2, 0, 0, 1, 0], false), &m).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[1].val, v[1].uaddr, v[1].flags), (6, 0x3000, 130));
        assert!(decode_waitv(&sys(449, [0x1000, 500, 0, 0, 1, 0], false), &m).is_none());
    }
}
