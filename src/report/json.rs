//! The JSON document (`--json`). It is an interface CI jobs parse: every
//! change bumps [`SCHEMA_VERSION`] and is noted in docs/json-schema.md.

use serde::Serialize;

use super::labels::hex;
use crate::ids::{Pid, Tid};
use crate::inspect::Inspection;
use crate::runtimes::{Confidence, Hold, ResourceKind, Wait};
use crate::stacks::Frame;
use crate::syscalls;

pub const SCHEMA_VERSION: u32 = 7;

#[derive(Serialize)]
pub struct Syscall {
    pub nr: i64,
    pub name: Option<&'static str>,
    pub args: [u64; 6],
    /// The rendering the text report shows: `futex(0x..., FUTEX_WAIT_PRIVATE, 2)`.
    pub text: String,
    pub restarted: bool,
    /// Stopped at its `syscall` instruction, about to enter the call
    /// ([`crate::capture::SyscallState::entering`]).
    pub entering: bool,
}

#[derive(Serialize)]
pub struct Site {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl Site {
    pub fn of(frames: &[Frame], index: Option<usize>) -> Option<Site> {
        let f = frames.get(index?)?;
        Some(Site {
            function: f.function.as_deref().map(str::to_string),
            file: f.file.as_deref().map(str::to_string),
            line: f.line,
        })
    }
}

/// `threads[].blocked_on`.
#[derive(Serialize)]
pub struct BlockedOn {
    /// The resource, for the text report's words (`mutex lock_a (0x…)`).
    #[serde(skip)]
    pub resource: crate::runtimes::Resource,
    /// The index in the thread's `frames` of the frame that called the lock
    /// function (the text report's "waiting in").
    #[serde(skip)]
    pub site_frame: Option<usize>,
    pub kind: ResourceKind,
    pub address: String,
    pub name: Option<String>,
    pub owner_tid: Option<Tid>,
    pub owner_pid: Option<Pid>,
    pub confidence: Confidence,
    pub evidence: String,
    /// The owner TID names a thread that no longer exists (orphaned lock).
    pub owner_exited: bool,
    /// How the thread waits, in words (`pthread_mutex_lock (normal)`).
    pub how: String,
    /// Where the thread called the lock function.
    pub site: Option<Site>,
}

impl BlockedOn {
    pub fn new(w: &Wait, frames: &[Frame]) -> Self {
        BlockedOn {
            resource: w.resource.clone(),
            site_frame: w.site_frame,
            kind: w.resource.kind,
            address: hex(w.resource.address),
            name: w.resource.name.clone(),
            owner_tid: w.owner.tid(),
            owner_pid: w.owner.pid(),
            confidence: w.owner.confidence(),
            evidence: w.owner.evidence().to_string(),
            owner_exited: w.owner.is_exited(),
            how: w.how.clone(),
            site: Site::of(frames, w.site_frame),
        }
    }
}

#[derive(Serialize)]
pub struct Held {
    /// The resource, for the text report's words (`mutex lock_a (0x…)`).
    #[serde(skip)]
    pub resource: crate::runtimes::Resource,
    /// The index in the thread's `frames` of the frame holding it, if known.
    #[serde(skip)]
    pub site_frame: Option<usize>,
    pub kind: ResourceKind,
    pub address: String,
    pub name: Option<String>,
    pub confidence: Confidence,
    pub evidence: String,
    pub site: Option<Site>,
}

impl Held {
    pub fn new(h: &Hold, frames: &[Frame]) -> Self {
        Held {
            resource: h.resource.clone(),
            site_frame: h.site_frame,
            kind: h.resource.kind,
            address: hex(h.resource.address),
            name: h.resource.name.clone(),
            confidence: h.confidence,
            evidence: h.evidence.clone(),
            site: Site::of(frames, h.site_frame),
        }
    }
}

#[derive(Serialize)]
pub struct Thread<'a> {
    pub pid: Pid,
    pub tid: Tid,
    /// The TID inside the target's PID namespace (what lock words store).
    pub ns_tid: i32,
    pub name: &'a str,
    pub python_name: Option<&'a str>,
    pub state: String,
    pub wchan: &'a str,
    pub syscall: Option<Syscall>,
    pub frames: &'a [Frame],
    pub unwind_error: Option<&'a str>,
    pub truncated: bool,
    pub blocked_on: Option<BlockedOn>,
    pub holds: Vec<Held>,
    pub blocked_in: Option<&'a str>,
    /// Not stopped, because a stop would have made its call fail with EINTR.
    pub left_running: Option<LeftRunning>,
    /// The thread waits, with no timeout, for something only threads of the
    /// inspected processes could provide, and all of those are asleep for
    /// good or gone (added within version 3).
    pub asleep_for_good: bool,
    /// Why it is asleep for good, or what can still end its wait.
    pub why: Option<String>,
    /// The deadline of a timed futex wait, at the capture (added within version 3).
    pub timeout: Option<TimeoutJson>,
    /// The thread was executing, not waiting, when captured (schema 3,
    /// additive): its stack is a sample; `blocked_on` and `blocked_in` are
    /// then null.
    pub running: bool,
    /// The sentence the text report gives a running thread, or null.
    pub running_note: Option<&'static str>,
    /// Why a Python thread has no `python_name` (schema 3, additive).
    pub python_name_note: Option<&'a str>,
    /// "Python stack not read: ..." when the thread's Python stack could not
    /// be read as of the stop: `frames` then lack its Python frames (schema
    /// 3, additive).
    pub python_stack_note: Option<&'a str>,
    /// The thread pool task (a future of a ThreadPoolExecutor) the thread
    /// waits for, with where that task is (version 4).
    pub pool_wait: Option<JsonPoolWait>,
    /// A signal that arrived during the capture and was re-delivered (text only).
    #[serde(skip)]
    pub pending_signal: Option<i32>,
}

#[derive(Serialize)]
pub struct TimeoutJson {
    /// Milliseconds from the capture until the wait times out (negative:
    /// overdue); for a relative timeout, the whole duration (an upper bound).
    pub in_ms: i64,
    pub relative: bool,
    pub clock: Option<crate::runtimes::futex::Clock>,
    /// `times out in 2.4 s`.
    pub text: String,
}

#[derive(Serialize)]
pub struct LeftRunning {
    pub call: &'static str,
    pub if_socket_timeout: bool,
    /// A stop would make the call return short (a long write to a pipe),
    /// rather than fail with EINTR (version 7).
    pub cut_short: bool,
    pub stack_consistent: bool,
    pub reason: String,
}

#[derive(Serialize)]
pub struct Process<'a> {
    /// Why Python analysis failed, if it did (the rest of the report stands).
    pub python_error: Option<&'a str>,
    pub pid: Pid,
    pub ns_pid: i32,
    pub exe: String,
    pub cmdline: &'a [String],
    pub threads: usize,
    pub pause_us: u64,
    pub capture_us: u64,
    pub analysis_us: u64,
    /// `--no-stop`: stacks may be partial.
    pub no_stop: bool,
    pub python: Option<&'a str>,
    /// The target's C library (schema 3): `{name, linkage, evidence}`;
    /// `name`/`linkage` null when it was not identified.
    pub libc: &'a crate::runtimes::libc::LibcInfo,
    /// The debugger attached to the process (`--no-stop` only: the stopping
    /// mode refuses a traced process).
    pub tracer: Option<TracerJson<'a>>,
    /// The main thread (TID `pid`) called pthread_exit; it is not in `threads`.
    pub leader_exited: bool,
    /// Its asyncio event loops and tasks (schema 5; null when it runs none).
    pub asyncio: Option<super::asyncio::JsonAsyncio>,
    /// Inode of its PID namespace (added within 3; null for a core).
    pub pid_ns: Option<u64>,
    /// The container its cgroup names (added within 3).
    pub container: Option<&'a crate::live::identity::Container>,
}

#[derive(Serialize)]
pub struct TracerJson<'a> {
    pub pid: Pid,
    pub name: &'a str,
}

pub fn threads<'a>(ins: &'a Inspection, verdict: &crate::graph::Verdict) -> Vec<Thread<'a>> {
    let s = &ins.snapshot;
    s.threads
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let stack = &ins.stacks[i];
            let f = &ins.findings[i];
            // `asleep` is sorted by thread.
            let asleep = verdict
                .asleep
                .binary_search_by_key(&crate::graph::ThreadId::new(s.pid, t.tid), |a| a.thread)
                .ok()
                .map(|k| &verdict.asleep[k]);
            Thread {
                pid: s.pid,
                tid: t.tid,
                ns_tid: t.ns_tid,
                name: &t.name,
                python_name: ins.python_names[i].as_deref(),
                state: t.state.to_string(),
                wchan: &t.wchan,
                syscall: t.syscall.as_ref().map(|sys| Syscall {
                    nr: sys.nr,
                    name: syscalls::name(sys.nr),
                    args: sys.args,
                    text: syscalls::describe(sys),
                    restarted: sys.restarted,
                    entering: sys.entering,
                }),
                frames: &stack.frames,
                unwind_error: stack.error.as_deref(),
                truncated: stack.truncated,
                blocked_on: f.wait.as_ref().map(|w| BlockedOn::new(w, &stack.frames)),
                holds: f.holds.iter().map(|h| Held::new(h, &stack.frames)).collect(),
                blocked_in: f.blocked_in.as_deref(),
                left_running: t.left_running.map(|l| LeftRunning {
                    call: l.call,
                    if_socket_timeout: l.if_socket_timeout(),
                    cut_short: l.harm == crate::capture::StopHarm::ShortWrite,
                    stack_consistent: l.stack_consistent,
                    reason: l.reason(),
                }),
                asleep_for_good: asleep.is_some_and(|a| a.asleep_for_good),
                why: asleep.map(|a| a.why.clone()),
                timeout: f.sleep.timeout().map(|to| TimeoutJson {
                    in_ms: to.in_ms,
                    relative: to.relative,
                    clock: to.clock,
                    text: to.describe(),
                }),
                running: t.running(),
                running_note: t.running().then_some(crate::capture::RUNNING_NOTE),
                python_name_note: ins.python_name_notes[i].as_deref(),
                python_stack_note: ins.python_stack_notes[i].as_deref(),
                pool_wait: thread_wait(&ins.pools, t.tid),
                pending_signal: t.pending_signal,
            }
        })
        .collect()
}

/// `processes[]`: `id` is the process's identity read at the capture
/// (none for a core).
pub fn process<'a>(ins: &'a Inspection, id: Option<&'a crate::live::identity::ProcessIdentity>) -> Process<'a> {
    let s = &ins.snapshot;
    Process {
        pid: s.pid,
        ns_pid: s.ns_pid,
        exe: s.exe.display().to_string(),
        cmdline: &s.cmdline,
        threads: s.threads.len(),
        pause_us: s.pause.as_micros() as u64,
        capture_us: s.capture_time.as_micros() as u64,
        analysis_us: ins.analysis_time.as_micros() as u64,
        no_stop: s.no_stop,
        python: ins.python_version.as_deref(),
        python_error: ins
            .unexamined
            .iter()
            .find(|u| u.part == crate::graph::Part::Python)
            .map(|u| u.why.as_str()),
        libc: &ins.libc,
        tracer: s.tracer.as_ref().map(|t| TracerJson {
            pid: Pid(t.pid),
            name: &t.name,
        }),
        leader_exited: s.leader_exited,
        asyncio: super::asyncio::json_process(ins.asyncio.as_ref()),
        pid_ns: id.and_then(|i| i.pid_ns),
        container: id.and_then(|i| i.container.as_ref()),
    }
}

/// A wait for a pool task (`waits[]`, `blocked_behind[]`, and `threads[].pool_wait`).
#[derive(Serialize)]
pub struct JsonTaskWait {
    pub tid: Tid,
    pub future: String,
    pub future_name: Option<String>,
    /// `PENDING` (not yet taken) or `RUNNING`.
    pub state: String,
    /// Index in the work queue (0: next), when still queued.
    pub queued_position: Option<usize>,
    /// The worker running it, when it runs.
    pub run_by_tid: Option<Tid>,
}

impl JsonTaskWait {
    pub fn new(w: &crate::runtimes::TaskWait) -> Self {
        let (queued_position, run_by_tid) = match w.place {
            crate::runtimes::TaskPlace::Queued { position } => (Some(position), None),
            crate::runtimes::TaskPlace::RunBy { tid } => (None, Some(tid)),
        };
        JsonTaskWait {
            tid: w.tid,
            future: hex(w.future),
            future_name: w.future_name.clone(),
            state: w.state.clone(),
            queued_position,
            run_by_tid,
        }
    }
}

/// `threads[].pool_wait`: the pool task a thread waits for, if any (schema 4).
pub fn thread_wait(pools: &[crate::runtimes::TaskPool], tid: Tid) -> Option<JsonPoolWait> {
    pools.iter().find_map(|p| {
        let w = p.waits.iter().find(|w| w.tid == tid)?;
        Some(JsonPoolWait {
            executor: hex(p.address),
            wait: JsonTaskWait::new(w),
        })
    })
}

#[derive(Serialize)]
pub struct JsonPoolWait {
    pub executor: String,
    #[serde(flatten)]
    pub wait: JsonTaskWait,
}
