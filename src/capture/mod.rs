//! Capture: everything lockdump copies out of a live process while its threads
//! are stopped ([`stop`]), or reads from a core file ([`corefile`]), and the
//! read-only memory view used afterwards.
//!
//! The [`Snapshot`] is plain data, the same from either source. Unwinding, symbolization and lock analysis
//! all run on it after the target has been resumed.

pub mod corefile;
pub mod freezer;
pub mod priority;
pub mod recheck;
pub mod signals;
pub mod stop;

use std::path::PathBuf;
use std::time::Duration;

use crate::ids::{Pid, Tid};
pub use crate::live::{Live, ProcessMemory};
pub use crate::memory::{CopiedRegion, Memory, MemoryError, SnapshotMemory};
use crate::proc::MapEntry;

/// x86_64 general-purpose registers of a stopped thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub orig_rax: u64,
    pub eflags: u64,
    /// Thread pointer: for glibc, the address of the thread's `struct pthread`.
    pub fs_base: u64,
}

impl Registers {
    /// Value of the register with this DWARF number (x86_64 psABI numbering:
    /// 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15, 16 return address).
    pub fn dwarf(&self, reg: u16) -> Option<u64> {
        Some(match reg {
            0 => self.rax,
            1 => self.rdx,
            2 => self.rcx,
            3 => self.rbx,
            4 => self.rsi,
            5 => self.rdi,
            6 => self.rbp,
            7 => self.rsp,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            16 => self.rip,
            _ => return None,
        })
    }

    #[cfg(target_arch = "x86_64")]
    pub fn from_user_regs(r: &libc::user_regs_struct) -> Self {
        Registers {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            rsp: r.rsp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            orig_rax: r.orig_rax,
            eflags: r.eflags,
            fs_base: r.fs_base,
        }
    }
}

pub use crate::syscalls::SyscallState;

pub const SYS_RESTART_SYSCALL: i64 = crate::syscalls::nr::RESTART_SYSCALL;

/// How the registers of a thread were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterSource {
    /// PTRACE_GETREGS on a stopped thread: complete and exact.
    Ptrace,
    /// Only SP and PC from /proc/TID/syscall (`--no-stop`, or a thread left
    /// running because a stop would interrupt its call: [`LeftRunning`]):
    /// stacks may be partial.
    ProcSyscall,
    /// Neither: the thread was running and could not be sampled without stopping it.
    None,
}

/// What a ptrace stop would do to the call a thread is blocked in, were the
/// thread stopped ([`crate::syscalls::OnStop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHarm {
    /// The call fails with `EINTR`.
    Eintr,
    /// The call fails with `EINTR` if its socket has a timeout, which
    /// lockdump cannot see; it is assumed.
    EintrIfSocketTimeout,
    /// The call returns a short count: a write of more than `PIPE_BUF`
    /// bytes to a pipe or FIFO that has written part of its data returns
    /// that part (the kernel's `pipe_write`), and a program that treats a
    /// short write as an error, or drops the rest, is harmed.
    ShortWrite,
}

/// A thread a stopping capture did not stop, because it sat in a call that a
/// ptrace stop makes fail with `EINTR` or return short ([`StopHarm`]). Its
/// registers are SP and PC from `/proc/TID/syscall`, its stack was copied in
/// the same batch as the stopped threads' (a thread blocked in a call does
/// not touch its stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftRunning {
    /// The kernel's name of the call, e.g. `epoll_wait`.
    pub call: &'static str,
    /// What a stop would have done to it.
    pub harm: StopHarm,
    /// The thread's `/proc/TID/syscall` line and context-switch count were
    /// the same before and after its stack was copied: it did not run in
    /// between, so the copy is of one instant. `false`: it woke meanwhile and
    /// the stack may mix two moments.
    pub stack_consistent: bool,
}

impl LeftRunning {
    /// The call fails on a stop only if its socket has a timeout.
    pub fn if_socket_timeout(&self) -> bool {
        self.harm == StopHarm::EintrIfSocketTimeout
    }

    /// The sentence the report and the JSON give for it.
    pub fn reason(&self) -> String {
        format!(
            "captured without stopping: it sits in {}, which a ptrace stop would {}{}",
            self.call,
            match self.harm {
                StopHarm::Eintr => "interrupt",
                StopHarm::EintrIfSocketTimeout => "interrupt if the socket has a timeout",
                StopHarm::ShortWrite =>
                    "cut short (a write of more than PIPE_BUF bytes to a pipe returns what it has written so far)",
            },
            if self.stack_consistent {
                ""
            } else {
                "; it woke while its stack was copied, so the stack may be torn"
            }
        )
    }
}

/// One thread as captured.
#[derive(Debug, Clone)]
pub struct ThreadSnapshot {
    pub tid: Tid,
    /// `comm` (at most 15 bytes, set by pthread_setname_np / prctl).
    pub name: String,
    /// Scheduler state before the stop (`R`, `S`, `D`, ...).
    pub state: char,
    /// Kernel wait channel before the stop, e.g. `futex_do_wait`.
    pub wchan: String,
    pub regs: Registers,
    pub register_source: RegisterSource,
    /// The syscall the thread was in, if any.
    pub syscall: Option<SyscallState>,
    /// A signal that arrived during capture and is re-delivered on detach.
    pub pending_signal: Option<i32>,
    /// Not stopped, although the capture stopped the others: see [`LeftRunning`].
    pub left_running: Option<LeftRunning>,
    /// The stack bytes from just below SP (red zone) upward, copied during the stop.
    pub stack: CopiedRegion,
    /// The thread ID in the innermost PID namespace of the target (equals `tid`
    /// unless the target runs in a container): lock words store this one.
    pub ns_tid: i32,
    /// `--no-stop` only: the thread's context switches (voluntary and not),
    /// read just before its /proc/TID/syscall. Unchanged later, with the same
    /// syscall line, it proves the thread did not run in between, so that
    /// what was read meanwhile (lock words, owners) agrees with its wait
    /// (`inspect::verdict`). `None` when stopped (the stop itself switches).
    pub switches: Option<u64>,
}

impl ThreadSnapshot {
    /// The thread was executing, not waiting, when it was captured: stopped
    /// outside any blocking call (its registers show no call the kernel
    /// would restart), or, under `--no-stop`, seen on a CPU. Its stack is a
    /// sample of where it happened to be; it is never described as blocked.
    pub fn running(&self) -> bool {
        match self.register_source {
            RegisterSource::None => true,
            RegisterSource::Ptrace => self.syscall.is_none(),
            RegisterSource::ProcSyscall => false,
        }
    }
}

/// The words the report gives a running thread (text and JSON).
pub const RUNNING_NOTE: &str = "running: its stack is a sample of where it was when captured, not a wait";

/// A tracer (debugger) found attached to the target in `--no-stop` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracer {
    pub pid: i32,
    /// Its `comm` (`gdb`), or `unknown` if it could not be read.
    pub name: String,
}

/// Everything copied from one process.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub pid: Pid,
    /// Where the snapshot came from: a live process (whose memory and /proc
    /// files later stages may still read) or a core file (which has no
    /// /proc and no live memory: its PID may now be an unrelated process).
    pub source: Source,
    /// The main thread (TID `pid`) has exited; it is not among `threads`.
    pub leader_exited: bool,
    /// `--no-stop`: the debugger attached to the process, if any (the
    /// stopping mode refuses such a process).
    pub tracer: Option<Tracer>,
    /// PID inside the target's own PID namespace.
    pub ns_pid: i32,
    pub exe: PathBuf,
    pub cmdline: Vec<String>,
    pub threads: Vec<ThreadSnapshot>,
    pub maps: Vec<MapEntry>,
    pub auxv: Vec<(u64, u64)>,
    /// First stop to last detach; zero in `--no-stop` mode.
    pub pause: Duration,
    /// Wall time of the whole capture, including /proc reads before the stop.
    pub capture_time: Duration,
    /// The target was never stopped (`--no-stop`): registers are partial.
    pub no_stop: bool,
    /// The memory around each futex word a thread sleeps on, copied while
    /// the threads were stopped (disjoint from each other and from the
    /// stacks). Lock words and owner fields are read from here, so they
    /// agree with the registers: read live after the target resumed, a busy
    /// lock's owner may already be the thread the snapshot shows waiting.
    pub wait_memory: Vec<CopiedRegion>,
    /// Runtime state (CPython's thread states, frames and thread names)
    /// copied while the threads were stopped; see [`RuntimeCopy`].
    pub runtime_copy: RuntimeCopy,
    /// The copies above were given back ([`Snapshot::release_copies`]):
    /// [`Snapshot::memory`] then reads nothing, rather than the live process
    /// where a copy was.
    pub copies_released: bool,
}

/// The target a [`Snapshot`] was taken from.
#[derive(Debug, Clone)]
pub enum Source {
    Live(Live),
    Core(std::sync::Arc<corefile::CoreFile>),
}

impl Source {
    /// A live process with `pid`, read through thread `mm_tid`.
    pub fn live(pid: i32, mm_tid: i32) -> Source {
        Source::Live(Live { pid, mm_tid })
    }
}

/// The memory beneath a snapshot's copies: the live process, or the core.
pub enum Backing<'a> {
    Live(ProcessMemory),
    Core(&'a corefile::CoreFile),
    /// After [`Snapshot::release_copies`]: every read fails.
    Released,
}

impl Memory for Backing<'_> {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        match self {
            Backing::Live(m) => m.read_exact(addr, buf),
            Backing::Core(c) => c.read_exact(addr, buf),
            Backing::Released => Err(MemoryError { addr, len: buf.len() }),
        }
    }
}

/// Memory a runtime analyzer copied while every thread was stopped, so that
/// what it reports (a Python thread's frames and name) describes the same
/// instant as the registers and native stacks. Disjoint from the stacks and
/// [`Snapshot::wait_memory`], and read through [`Snapshot::memory`] like them.
#[derive(Debug, Clone, Default)]
pub struct RuntimeCopy {
    /// A copy was made (the stopping mode found the runtime before the stop).
    pub made: bool,
    pub regions: Vec<CopiedRegion>,
    /// Host TIDs whose runtime state was copied completely.
    pub complete_tids: Vec<Tid>,
    /// Why the copy stopped before every thread (its bound in bytes or time).
    pub incomplete: Option<String>,
    /// Time the copy added to the pause.
    pub took: Duration,
}

impl Snapshot {
    /// More of the target's threads were runnable (state `R` before the
    /// stop) than there are CPUs: once resumed, the target takes every CPU,
    /// and work done at normal priority waits behind it (see [`priority`]).
    pub fn cpu_bound(&self) -> bool {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads.iter().filter(|t| t.state == 'R').count() > cpus
    }
    /// Thread `tid`. A live capture's threads are sorted by TID (a binary
    /// search: owners are looked up for every waiting thread, and a linear
    /// scan made that quadratic in a 10,000-thread process); a core's come
    /// in its notes' order, so a miss falls back to a scan.
    pub fn thread(&self, tid: Tid) -> Option<&ThreadSnapshot> {
        match self.threads.binary_search_by_key(&tid, |t| t.tid) {
            Ok(i) => Some(&self.threads[i]),
            Err(_) => self.threads.iter().find(|t| t.tid == tid),
        }
    }
    /// The index of thread `tid` in `threads` (see [`Snapshot::thread`]).
    pub fn thread_index(&self, tid: Tid) -> Option<usize> {
        match self.threads.binary_search_by_key(&tid, |t| t.tid) {
            Ok(i) => Some(i),
            Err(_) => self.threads.iter().position(|t| t.tid == tid),
        }
    }
    /// Map a TID as the target sees it (its PID namespace) to the host TID.
    pub fn host_tid(&self, ns_tid: i32) -> Option<Tid> {
        self.threads.iter().find(|t| t.ns_tid == ns_tid).map(|t| t.tid)
    }
    /// The mapping that contains `addr`.
    pub fn mapping(&self, addr: u64) -> Option<&MapEntry> {
        MapEntry::find(&self.maps, addr)
    }
    pub fn vdso_base(&self) -> Option<u64> {
        self.auxv
            .iter()
            .find(|(k, _)| *k == crate::proc::AT_SYSINFO_EHDR)
            .map(|(_, v)| *v)
    }
    /// The live process, if the snapshot is of one (not of a core file).
    pub fn live(&self) -> Option<Live> {
        match &self.source {
            Source::Live(l) => Some(*l),
            Source::Core(_) => None,
        }
    }
    /// The core file, if the snapshot is of one.
    pub fn core(&self) -> Option<&corefile::CoreFile> {
        match &self.source {
            Source::Core(c) => Some(c),
            Source::Live(_) => None,
        }
    }
    /// The process's memory as of the snapshot: copied stacks and wait words
    /// over live memory, or the core's memory.
    pub fn memory(&self) -> SnapshotMemory<'_, Backing<'_>> {
        SnapshotMemory::new(
            self.threads
                .iter()
                .map(|t| &t.stack)
                .chain(&self.wait_memory)
                .chain(&self.runtime_copy.regions)
                .collect(),
            match &self.source {
                _ if self.copies_released => Backing::Released,
                Source::Live(l) => Backing::Live(ProcessMemory::new(l.mm_tid)),
                Source::Core(c) => Backing::Core(c),
            },
        )
    }
    /// Give back the memory copied at the capture (stacks, wait words,
    /// runtime state) once nothing will read it: the report is rendered from
    /// the analysis, and at 10,000 threads the stack copies are 49 of a
    /// 115 MB heap peak that falls while the report is built (bench/README).
    /// Afterwards [`Snapshot::memory`] reads nothing, so a late reader fails
    /// instead of silently reading the live process where a copy was.
    pub fn release_copies(&mut self) {
        for t in &mut self.threads {
            t.stack.bytes = Vec::new();
        }
        self.wait_memory = Vec::new();
        self.runtime_copy.regions = Vec::new();
        self.copies_released = true;
    }
}

/// Hand-built snapshots for unit tests, here and in the analyzers'.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::ids::Pid;

    /// A live snapshot of `pid` (its own memory manager) with `threads` and `maps`.
    pub fn snapshot(pid: i32, threads: Vec<ThreadSnapshot>, maps: Vec<MapEntry>) -> Snapshot {
        Snapshot {
            pid: Pid(pid),
            source: Source::live(pid, pid),
            leader_exited: false,
            tracer: None,
            ns_pid: pid,
            exe: "/bin/test".into(),
            cmdline: vec![],
            threads,
            maps,
            auxv: vec![],
            pause: Duration::ZERO,
            capture_time: Duration::ZERO,
            no_stop: false,
            wait_memory: Vec::new(),
            runtime_copy: Default::default(),
            copies_released: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Tid;

    /// A live snapshot of this test's own process with one thread whose
    /// stack copy is `stack`.
    fn own_snapshot(stack: CopiedRegion) -> Snapshot {
        let pid = std::process::id() as i32;
        let thread = ThreadSnapshot {
            tid: Tid(pid),
            name: "test".into(),
            state: 'S',
            wchan: String::new(),
            regs: Registers::default(),
            register_source: RegisterSource::None,
            syscall: None,
            pending_signal: None,
            left_running: None,
            stack,
            ns_tid: pid,
            switches: None,
        };
        testing::snapshot(pid, vec![thread], vec![])
    }

    /// After `release_copies`, nothing is read: neither the copy nor, in its
    /// place, the live process (this test's own, which is readable).
    #[test]
    fn released_copies_read_nothing_not_the_live_process() {
        let copied = [7u8; 16];
        let addr = copied.as_ptr() as u64;
        let elsewhere = [5u8; 16];
        let mut snap = own_snapshot(CopiedRegion {
            start: addr,
            bytes: vec![9; 16],
        });
        let mut buf = [0u8; 16];
        snap.memory().read_exact(addr, &mut buf).unwrap();
        assert_eq!(buf, [9; 16], "the copy, not the live bytes");
        let other = elsewhere.as_ptr() as u64;
        snap.memory().read_exact(other, &mut buf).unwrap();
        assert_eq!(buf, [5; 16], "outside the copies: the live process");
        snap.release_copies();
        assert!(snap.threads[0].stack.bytes.is_empty());
        assert!(snap.memory().read_exact(addr, &mut buf).is_err());
        assert!(snap.memory().read_exact(other, &mut buf).is_err());
        assert_eq!((copied, elsewhere), ([7; 16], [5; 16]));
    }
}
