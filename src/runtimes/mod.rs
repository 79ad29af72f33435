//! What each blocked thread waits on and what it holds.
//!
//! One module per runtime knows how that runtime's primitives look in memory.
//! Each turns a thread (its stack, syscall and the process memory) into a
//! [`Wait`] and a list of [`Hold`]s. Version-specific layouts live inside the
//! runtime's module and nowhere else.

pub mod cpython;

use serde::Serialize;

use crate::ids::{Addr, Pid, ThreadId, Tid};

/// How sure lockdump is of an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Read from a field the runtime maintains for this purpose (`__owner`, a lock word's TID).
    Exact,
    /// Deduced from stack contents or code being executed; may be wrong.
    Inferred,
    /// The runtime does not record an owner and nothing points to one.
    Unknown,
}

/// What kind of thing a thread waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Mutex,
    RecursiveMutex,
    ErrorCheckMutex,
    AdaptiveMutex,
    RobustMutex,
    PiMutex,
    RwLock,
    /// Waiting for another thread to exit (pthread_join, JoinHandle::join, Thread.join).
    Thread,
    RustMutex,
    RustRwLock,
    /// A `parking_lot::Mutex` (crates.io `parking_lot`): the address is its
    /// `RawMutex` state byte, the key its waiters park on; no owner recorded.
    ParkingLotMutex,
    /// A `parking_lot::RwLock`: the address is its `RawRwLock` state word.
    ParkingLotRwLock,
    CondVar,
    Semaphore,
    Barrier,
    /// A futex whose owner protocol lockdump does not know.
    Futex,
    /// A glibc-internal lock (the malloc arena lock `main_arena`, ...): no
    /// owner recorded; an owner can only be inferred ([`reentry`]).
    LibcLock,
    PyLock,
    PyRLock,
    PyCondition,
    PySemaphore,
    PyEvent,
    PyQueue,
    /// A `multiprocessing.Lock` or `RLock`: a POSIX semaphore whose owner
    /// the SemLock object records ([`cpython::semlocks`]). A counting
    /// `multiprocessing.Semaphore` stays a [`ResourceKind::Semaphore`].
    PyMpLock,
    /// A `concurrent.futures.Future` that only an asyncio event loop will
    /// resolve (`run_coroutine_threadsafe`): its "owner" is the loop's thread.
    PyFuture,
    Gil,
    /// Not a lock: a blocking syscall (read, poll, nanosleep, ...).
    Syscall,
}

impl ResourceKind {
    /// Waiting on this kind can be part of a wait-for cycle (it has a holder).
    pub fn has_owner(self) -> bool {
        !matches!(
            self,
            ResourceKind::CondVar
                | ResourceKind::Semaphore
                | ResourceKind::Barrier
                | ResourceKind::Futex
                | ResourceKind::PyCondition
                | ResourceKind::PySemaphore
                | ResourceKind::PyEvent
                | ResourceKind::PyQueue
                | ResourceKind::Syscall
        )
    }
    /// A thread may acquire this again while holding it.
    pub fn is_reentrant(self) -> bool {
        matches!(self, ResourceKind::RecursiveMutex | ResourceKind::PyRLock)
    }
}

/// A thing that can be waited on, identified by process and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub kind: ResourceKind,
    /// Address of the object (the mutex, the Python lock object, ...); for a
    /// `Thread` resource, the address of the futex the joiner sleeps on.
    pub address: Addr,
    /// The process whose address space `address` belongs to.
    pub pid: Pid,
    /// A name a user recognizes: `lock_a`, `self._lock`, `worker-2`.
    pub name: Option<String>,
    /// For a process-shared object: the identity that is the same in every
    /// process mapping it (device, inode, offset in the shared file).
    pub shared_key: Option<(u64, u64, u64)>,
}

/// How sure lockdump is of an owner it names: never unknown (an owner
/// nobody knows is [`Owner::Unknown`], which names no thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Known {
    /// Read from a field the runtime maintains for this purpose.
    Exact,
    /// Deduced from stack contents or code being executed; may be wrong.
    Inferred,
}

impl Known {
    /// The [`Known`] of a confidence, `None` for [`Confidence::Unknown`].
    pub fn of(c: Confidence) -> Option<Known> {
        match c {
            Confidence::Exact => Some(Known::Exact),
            Confidence::Inferred => Some(Known::Inferred),
            Confidence::Unknown => None,
        }
    }
}

impl From<Known> for Confidence {
    fn from(k: Known) -> Confidence {
        match k {
            Known::Exact => Confidence::Exact,
            Known::Inferred => Confidence::Inferred,
        }
    }
}

/// Who holds a resource, with the evidence: a thread, a thread that has
/// exited, or nobody known. Which one it is decides what the graph does
/// with the wait (an edge, an orphaned lock, an unknown-owner wait), so it
/// is the variant, not fields to test in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Owner {
    /// A thread that exists: of the waiter's process, of another inspected
    /// process, or (for a process-shared lock) of a process not inspected.
    Thread {
        /// The holder (host PID and TID).
        thread: ThreadId,
        confidence: Known,
        /// The field or frame the owner was read from, in words: `__owner field = 1234`.
        evidence: String,
    },
    /// The lock names a thread that no longer exists (it exited with the
    /// lock held): an orphaned lock.
    Exited {
        /// The TID it had, when the lock records one (CPython's RLock
        /// records a thread ident: `None` when no thread has it).
        tid: Option<Tid>,
        /// Its process, when the lock is process-private (`None` for a
        /// process-shared one: any process mapping it could have held it).
        pid: Option<Pid>,
        confidence: Known,
        evidence: String,
    },
    /// Nobody known: the runtime records no owner, or what it records names
    /// no thread lockdump can tell. Never a graph edge.
    Unknown {
        /// Why, in words (what was read and why it names nobody).
        why: String,
    },
}

impl Owner {
    pub fn unknown(why: impl Into<String>) -> Self {
        Owner::Unknown { why: why.into() }
    }

    /// The owner thread of process `pid`; an unknown `confidence` gives
    /// [`Owner::Unknown`] with the evidence as its reason.
    pub fn held_by(pid: Pid, tid: Tid, confidence: Confidence, evidence: impl Into<String>) -> Self {
        match Known::of(confidence) {
            Some(confidence) => Owner::Thread {
                thread: ThreadId::new(pid, tid),
                confidence,
                evidence: evidence.into(),
            },
            None => Owner::unknown(evidence),
        }
    }

    /// An owner that exited (see [`Owner::Exited`] for `tid` and `pid`);
    /// an unknown `confidence` gives [`Owner::Unknown`] with the evidence as
    /// its reason.
    pub fn exited(tid: Option<Tid>, pid: Option<Pid>, confidence: Confidence, evidence: impl Into<String>) -> Self {
        match Known::of(confidence) {
            Some(confidence) => Owner::Exited {
                tid,
                pid,
                confidence,
                evidence: evidence.into(),
            },
            None => Owner::unknown(evidence),
        }
    }

    /// The owner thread, if the owner is a thread that exists.
    pub fn thread(&self) -> Option<ThreadId> {
        match *self {
            Owner::Thread { thread, .. } => Some(thread),
            _ => None,
        }
    }

    /// The owner thread if it exists and was read from the lock itself (exact).
    pub fn exact_thread(&self) -> Option<ThreadId> {
        match *self {
            Owner::Thread {
                thread,
                confidence: Known::Exact,
                ..
            } => Some(thread),
            _ => None,
        }
    }

    /// The TID the owner has or had (an exited owner's too), when known.
    pub fn tid(&self) -> Option<Tid> {
        match *self {
            Owner::Thread { thread, .. } => Some(thread.tid),
            Owner::Exited { tid, .. } => tid,
            Owner::Unknown { .. } => None,
        }
    }

    /// The owner's process, when known (an exited owner's too).
    pub fn pid(&self) -> Option<Pid> {
        match *self {
            Owner::Thread { thread, .. } => Some(thread.pid),
            Owner::Exited { pid, .. } => pid,
            Owner::Unknown { .. } => None,
        }
    }

    /// Exact, inferred, or unknown for [`Owner::Unknown`].
    pub fn confidence(&self) -> Confidence {
        match *self {
            Owner::Thread { confidence, .. } | Owner::Exited { confidence, .. } => confidence.into(),
            Owner::Unknown { .. } => Confidence::Unknown,
        }
    }

    /// The evidence in words: where the owner was read, or why none is known.
    pub fn evidence(&self) -> &str {
        match self {
            Owner::Thread { evidence, .. } | Owner::Exited { evidence, .. } => evidence,
            Owner::Unknown { why } => why,
        }
    }

    /// The owner has exited (the lock is orphaned).
    pub fn is_exited(&self) -> bool {
        matches!(self, Owner::Exited { .. })
    }
}

/// What a blocked thread waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wait {
    pub resource: Resource,
    pub owner: Owner,
    /// A readable description: `pthread_mutex_lock (normal)`, `threading.Lock.acquire`.
    pub how: String,
    /// Index into the thread's stack of the frame that called the lock
    /// function (the first frame outside the runtime), if found.
    pub site_frame: Option<usize>,
    /// When the wait ends by itself, if it does. A runtime builds a wait
    /// as [`Ends::WITH_CALL`], or as [`Ends::NotByItself`] when it knows
    /// its call's timeout does not end the wait; the deadline is filled in
    /// one place, [`ThreadFindings::set_sleep`], from the thread's call as
    /// decoded once ([`Sleep`]). Every rule about timeouts reads this.
    pub ends: Ends,
}

/// When a wait ends by itself. The runtime that builds the wait decides
/// what its call's timeout means for it; the graph only reads the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ends {
    /// When its call ends: the call's timeout, if it has one, ends the
    /// wait (the caller gets `ETIMEDOUT` and gives up). `Deadline::Never`:
    /// only a wake-up (or a signal) ends it.
    WithCall(Deadline),
    /// Not by itself, whatever its call's timeout: the runtime calls again
    /// when it times out (CPython's `take_gil` waits in 5 ms slices and
    /// loops until it has the GIL). `why` says so, in words.
    NotByItself { why: &'static str },
}

impl Ends {
    /// What a runtime builds a lock wait with: its call's timeout ends it.
    /// Until [`ThreadFindings::set_sleep`] reads the call, no deadline.
    pub const WITH_CALL: Ends = Ends::WithCall(Deadline::Never);

    /// The deadline at which the wait ends by itself (`In` or `Unread`),
    /// `None` when it does not.
    pub fn by_itself(self) -> Option<Deadline> {
        match self {
            Ends::WithCall(Deadline::Never) | Ends::NotByItself { .. } => None,
            Ends::WithCall(d) => Some(d),
        }
    }

    /// When the wait times out by itself, if that is known.
    pub fn timeout(self) -> Option<Timeout> {
        match self.by_itself() {
            Some(Deadline::In(to)) => Some(to),
            _ => None,
        }
    }

    /// Only a wake-up ends it: its call has no timeout.
    pub fn untimed(self) -> bool {
        self == Ends::WithCall(Deadline::Never)
    }

    /// This wait's ends once its thread's call is known to be `sleep`: a
    /// futex call's deadline for a wait that ends with its call, none for
    /// any other call; a wait that does not end by itself stays so.
    fn with_call(self, sleep: &Sleep) -> Ends {
        match (self, sleep) {
            (Ends::NotByItself { .. }, _) => self,
            (Ends::WithCall(_), Sleep::Futex { timeout }) => Ends::WithCall(*timeout),
            (Ends::WithCall(_), _) => Ends::WithCall(Deadline::Never),
        }
    }
}

/// A resource a thread holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub resource: Resource,
    pub confidence: Confidence,
    pub evidence: String,
    /// Where it was acquired (stack frame index), when known.
    pub site_frame: Option<usize>,
}

/// A pool of worker threads that runs queued tasks (CPython's
/// `concurrent.futures.ThreadPoolExecutor`), with the threads that wait for
/// results of its tasks. The verdict's pool-starvation rule
/// (`graph::pools`) reads it: a task queued in a pool can only be run by
/// that pool's workers, which makes "waits for a pool's task" an edge to
/// all of its workers at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskPool {
    pub pid: Pid,
    /// Address of the pool object (the executor).
    pub address: Addr,
    /// Type name: `ThreadPoolExecutor` or a subclass.
    pub kind: String,
    /// A name a user recognizes (the variable or attribute holding it).
    pub name: Option<String>,
    /// `_thread_name_prefix`: worker threads are named `<prefix>_<n>`.
    pub thread_name_prefix: Option<String>,
    /// Host TIDs of the live threads running this pool's worker loop, sorted.
    pub workers: Vec<Tid>,
    /// `_max_workers`, if readable.
    pub max_workers: Option<u64>,
    /// `len(_threads)`: the worker threads the pool has started, if readable.
    pub started_threads: Option<u64>,
    /// Futures of the tasks in the pool's work queue, oldest first.
    pub queued: Vec<Addr>,
    /// Threads waiting for the result of one of this pool's tasks.
    pub waits: Vec<TaskWait>,
}

/// A thread waiting for the result of a pool's task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskWait {
    pub tid: Tid,
    /// Address of the future waited for.
    pub future: Addr,
    /// A name a user recognizes (`fut`, `self.inner`).
    pub future_name: Option<String>,
    /// The future's `_state` (`PENDING`, `RUNNING`).
    pub state: String,
    pub place: TaskPlace,
}

/// Where the task a thread waits for is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TaskPlace {
    /// Still in the pool's work queue (0: next to be taken).
    Queued { position: usize },
    /// Being run by this worker of the pool.
    RunBy { tid: Tid },
}

pub use crate::symbols::SymbolLookup;

/// A part of a process that lockdump could not examine, and why. It travels
/// with the verdict to the report and the exit code: "no deadlock" is only
/// said of what was looked at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unexamined {
    pub pid: Pid,
    pub part: Part,
    /// Why, in words (the analysis' own error).
    pub why: String,
}

/// What was not examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The CPython interpreter: Python stacks, thread names, Python locks and their owners.
    Python,
    /// Go's runtime: goroutines and what they wait for (`sync.Mutex`,
    /// channels) live in Go's scheduler, not in OS threads' futex waits.
    Go,
    /// Locks of the Rust `parking_lot` crate: waiters queue in its global
    /// hash table and no owner is recorded.
    ParkingLot,
    /// asyncio tasks: what each awaits and which asyncio locks it holds.
    Asyncio,
    /// Memory a core file left out (and no mapped file supplied): whatever
    /// the analysis needed there is unknown.
    CoreMemory,
}

impl Part {
    /// What the report says was left out.
    pub fn describe(self) -> &'static str {
        match self {
            Part::Python => "Python stacks and locks",
            Part::Go => "Go goroutines and their locks",
            Part::ParkingLot => "parking_lot locks",
            Part::Asyncio => "asyncio tasks",
            Part::CoreMemory => "memory missing from the core file",
        }
    }
}

/// Everything a runtime analyzer may look at for one process.
pub struct ProcessView<'a> {
    pub snapshot: &'a crate::capture::Snapshot,
    /// Parallel to `snapshot.threads`.
    pub stacks: &'a [crate::stacks::Stack],
    pub memory: &'a dyn crate::capture::Memory,
    pub symbols: &'a dyn SymbolLookup,
    /// Parallel to `snapshot.threads`: the call each thread is in, decoded
    /// once ([`syscalls::decode_all`]). Runtimes read a futex wait here, not
    /// from the raw arguments.
    pub calls: &'a [syscalls::Call],
}

impl ProcessView<'_> {
    /// The futex wait thread `i` sleeps in, if any.
    pub fn futex(&self, i: usize) -> Option<&futex::FutexWait> {
        self.calls.get(i)?.futex()
    }
}

/// What the runtimes found about one thread.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadFindings {
    pub wait: Option<Wait>,
    pub holds: Vec<Hold>,
    /// A blocking call that is not a lock wait, in words: `nanosleep`, `read(fd 0)`.
    pub blocked_in: Option<String>,
    /// How the thread sleeps, decoded once from its state and system call
    /// ([`syscalls::sleep`]); the verdict's "asleep for good" rule reads it.
    /// Set with [`ThreadFindings::set_sleep`], which also gives `wait` its
    /// deadline.
    pub sleep: Sleep,
}

impl ThreadFindings {
    /// Record how the thread sleeps, and give its wait (if any) the
    /// deadline of that call ([`Ends`]): the one place a wait's timeout is
    /// filled. Call it after the wait is final.
    pub fn set_sleep(&mut self, sleep: Sleep) {
        if let Some(w) = self.wait.as_mut() {
            w.ends = w.ends.with_call(&sleep);
        }
        self.sleep = sleep;
    }
}

/// How a thread sleeps, as far as the kernel's side of it tells: what kind
/// of event can end it. Decoded once per thread from its scheduler state and
/// system call (futex arguments, timeouts); runtimes say *what* a futex
/// belongs to, this says whether anything but another thread can end it.
///
/// A futex call's timeout is the *call's*: when the kernel returns from it,
/// as the caller's `struct timespec` says. Whether that ends the *wait* is
/// the runtime's word, [`Wait::ends`], filled from this timeout in one
/// place ([`ThreadFindings::set_sleep`]); they differ only where the
/// runtime says so (CPython's GIL waits time out every 5 ms and wait
/// again). So every rule about a wait's timeout (asleep for good, cycles a
/// timeout breaks, pool starvation, await cycles) reads `Wait::ends`, and
/// nothing else reads this timeout but the report's `threads[].timeout`,
/// which the JSON schema defines as the call's deadline (shown for a GIL
/// slice too, and for a futex call no runtime made a wait of).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Sleep {
    /// Not asleep in a system call (running, runnable, or between calls).
    #[default]
    Running,
    /// Uninterruptible sleep (state D): the kernel ends it (I/O, a page fault).
    Uninterruptible,
    /// A call the outside world ends: an fd (read, write, accept, poll,
    /// epoll, select), a signal (pause, sigsuspend, sigtimedwait), a child
    /// process (wait4, waitid), System V IPC, file locks. `call` names it.
    Input { call: String },
    /// A sleep for a set time (nanosleep, clock_nanosleep, a timed call
    /// resumed as restart_syscall).
    Timer { call: String },
    /// A futex wait: only what the futex belongs to says who can end it,
    /// unless it has a timeout.
    Futex { timeout: Deadline },
    /// A system call lockdump does not classify.
    Unknown { call: String },
}

/// Whether a futex wait ends by itself. A timeout that was given but could
/// not be read is its own case, so "untimed, with a timeout" cannot be
/// written (it was two fields, `timed` and `timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Deadline {
    /// No timeout: only a wake-up (or a signal) ends the wait.
    Never,
    /// A timeout was given, but the caller's `struct timespec` could not be
    /// read from the snapshot (or is invalid).
    Unread,
    /// A timeout was given: when it expires, from the capture.
    In(Timeout),
}

/// The timeout of a timed wait, at the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeout {
    /// Milliseconds from the capture until the wait times out (negative:
    /// overdue). For a relative timeout (`relative`), the whole duration
    /// passed to the call: the wait ends at most this long after the capture.
    pub in_ms: i64,
    /// `FUTEX_WAIT`'s timeout is a duration from when the call began, which
    /// is not known; absolute deadlines are exact.
    pub relative: bool,
    /// The clock of an absolute deadline.
    pub clock: Option<futex::Clock>,
}

impl Timeout {
    /// `times out in 2.4 s`, `times out within 10 s`.
    pub fn describe(&self) -> String {
        let secs = self.in_ms as f64 / 1000.0;
        let amount = if self.in_ms.abs() >= 10_000 {
            format!("{secs:.0} s")
        } else {
            format!("{secs:.1} s")
        };
        if self.in_ms < 0 {
            format!("timed out {} ago (overdue)", amount.trim_start_matches('-'))
        } else if self.relative {
            format!("times out within {amount}")
        } else {
            format!("times out in {amount}")
        }
    }
}

impl Sleep {
    /// The deadline of a timed futex call, if known: the call's, which the
    /// report shows; what the wait does about it is [`Wait::ends`].
    pub fn timeout(&self) -> Option<Timeout> {
        match self {
            Sleep::Futex {
                timeout: Deadline::In(to),
            } => Some(*to),
            _ => None,
        }
    }
}

pub mod codescan;
pub mod frames;
pub mod futex;
pub mod glibc;
pub mod libc;
pub mod musl;
pub mod native;
pub mod owners;
pub mod parking_lot;
pub mod reentry;
pub mod rust_std;
pub mod signals;
pub mod stackscan;
pub mod syscalls;
pub mod unsupported;

/// The last word on each thread's findings, after every runtime spoke: a
/// thread that was running is waiting for nothing, a sleep is measured,
/// and a signal handler waiting on a lock its own interrupted frames hold
/// is a self-deadlock.
pub fn finish(
    snapshot: &crate::capture::Snapshot,
    native: &[crate::stacks::Stack],
    calls: &[syscalls::Call],
    clocks: &futex::Clocks,
    findings: &mut [ThreadFindings],
) {
    // A thread that was executing when captured is not waiting for anything,
    // whatever its stack passes through (a Python thread running inside
    // take_gil, a loop polling a lock): its stack is a sample, and the report
    // says so instead of describing it as blocked.
    // One exception: a GIL waiter whose native stack is inside take_gil
    // keeps its GIL wait even when caught outside the condvar's futex (it
    // loops there until it gets the GIL). Without it the GIL deadlocks of
    // tests/python.rs (native_flag_merges_frames_at_eval_calls) went
    // unreported on 3.11-debian and 3.14. Its header still says running.
    for (f, t) in findings.iter_mut().zip(&snapshot.threads) {
        if t.running() {
            if f.wait.as_ref().is_some_and(|w| w.resource.kind != ResourceKind::Gil) {
                f.wait = None;
            }
            f.blocked_in = None;
        }
    }
    // A handler waiting on a glibc lock its own interrupted frames hold.
    for (i, t) in snapshot.threads.iter().enumerate() {
        reentry::infer_self_deadlock(snapshot.pid, t.tid, &native[i], &mut findings[i]);
    }
    // Last, once every wait is final: the call each thread sleeps in, and
    // with it each wait's deadline.
    for ((f, t), call) in findings.iter_mut().zip(&snapshot.threads).zip(calls) {
        f.set_sleep(syscalls::sleep(t, call, clocks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(ends: Ends) -> ThreadFindings {
        ThreadFindings {
            wait: Some(Wait {
                resource: Resource {
                    kind: ResourceKind::Mutex,
                    address: crate::ids::Addr(0x1000),
                    pid: crate::ids::Pid(1),
                    name: None,
                    shared_key: None,
                },
                owner: Owner::unknown("test"),
                how: "test".into(),
                site_frame: None,
                ends,
            }),
            ..Default::default()
        }
    }

    const IN_2S: Timeout = Timeout {
        in_ms: 2000,
        relative: false,
        clock: None,
    };

    fn futex(timeout: Deadline) -> Sleep {
        Sleep::Futex { timeout }
    }

    fn ends(f: &ThreadFindings) -> Ends {
        f.wait.as_ref().unwrap().ends
    }

    /// A wait that ends with its call takes the call's deadline; one whose
    /// runtime says it does not end by itself keeps saying so.
    #[test]
    fn a_wait_takes_its_calls_deadline_unless_its_runtime_says_otherwise() {
        let mut f = wait(Ends::WITH_CALL);
        f.set_sleep(futex(Deadline::In(IN_2S)));
        assert_eq!(ends(&f), Ends::WithCall(Deadline::In(IN_2S)));
        assert_eq!(ends(&f).timeout(), Some(IN_2S));
        assert_eq!(ends(&f).by_itself(), Some(Deadline::In(IN_2S)));
        assert!(!ends(&f).untimed());
        assert_eq!(f.sleep.timeout(), Some(IN_2S), "the call keeps its own timeout");

        let mut f = wait(Ends::WITH_CALL);
        f.set_sleep(futex(Deadline::Unread));
        assert_eq!(ends(&f).by_itself(), Some(Deadline::Unread));
        assert_eq!(ends(&f).timeout(), None);

        let mut f = wait(Ends::WITH_CALL);
        f.set_sleep(futex(Deadline::Never));
        assert!(ends(&f).untimed());
        assert_eq!(ends(&f).by_itself(), None);

        // Not in a futex call (running, or in another call): no deadline,
        // even set again after a timed one.
        let mut f = wait(Ends::WITH_CALL);
        f.set_sleep(futex(Deadline::In(IN_2S)));
        f.set_sleep(Sleep::Running);
        assert_eq!(ends(&f), Ends::WithCall(Deadline::Never));

        // The GIL's slices: the call times out, the wait does not end.
        let slices = Ends::NotByItself { why: "loops" };
        let mut f = wait(slices);
        f.set_sleep(futex(Deadline::In(IN_2S)));
        assert_eq!(ends(&f), slices);
        assert_eq!((ends(&f).by_itself(), ends(&f).timeout()), (None, None));
        assert!(!ends(&f).untimed(), "timed, though it does not end");
        assert_eq!(
            f.sleep.timeout(),
            Some(IN_2S),
            "the report still shows the call's timeout"
        );

        // No wait: only the call is recorded.
        let mut f = ThreadFindings::default();
        f.set_sleep(futex(Deadline::In(IN_2S)));
        assert_eq!(f.sleep.timeout(), Some(IN_2S));
    }
}
