//! Issue 12, item 1: a stopping capture must not break the target. A ptrace
//! stop makes some blocking calls fail with EINTR even under SA_RESTART
//! (signal(7)); a program that treats EINTR as fatal used to exit after one
//! `lockdump -p`. fixtures/c/eintr_calls.c parks one thread in each such
//! call and `_exit`s with a code naming the call if any of them returns
//! EINTR (or, for a long write to a pipe, returns short: a stop cuts it
//! short instead); the same process holds an AB-BA deadlock. Ten stopping runs must
//! each report the deadlock exactly and leave the fixture alive, every such
//! thread still in its call, never stopped.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{
    c_fixture, process_state, run_lockdump, sample_thread, tracer_pid, unique_path, wait_until, Fixture, ThreadSample,
    Variant,
};
use serde_json::Value;

/// Fixture threads a stop would interrupt, and the kernel call each must be
/// reported in (`semop` may be glibc's semop or semtimedop syscall).
const LEFT_RUNNING: &[(&str, &[&str], bool)] = &[
    // (thread, accepted call names, only if the socket has a timeout)
    ("ep_wait", &["epoll_wait"], false),
    ("ep_pwait", &["epoll_pwait"], false),
    ("ep_pwait2", &["epoll_pwait2"], false),
    ("sigtimedwait", &["rt_sigtimedwait"], false),
    ("sigwaitinfo", &["rt_sigtimedwait"], false),
    ("semop", &["semop", "semtimedop"], false),
    ("semtimedop", &["semtimedop"], false),
    ("io_getevents", &["io_getevents"], false),
    ("accept_to", &["accept", "accept4"], true),
    ("recv_to", &["recvfrom"], true),
    ("read_sock_to", &["read"], true),
    ("send_to", &["sendto"], true),
    ("connect_to", &["connect"], true),
    // No timeout: a stop would not interrupt it, but lockdump cannot see that.
    ("recv_plain", &["recvfrom"], true),
    // Not EINTR: a stop would make it return the 64 KiB it wrote so far.
    ("write_pipe", &["write"], false),
];

/// Threads in a call a stop cuts short (a short count, not EINTR).
const CUT_SHORT: &[&str] = &["write_pipe"];

/// Threads whose calls the kernel restarts after a stop: stopped as before.
const STOPPED: &[&str] = &[
    "inotify_read",
    "nanosleep",
    "clock_nsleep",
    "poll",
    "read_pipe",
    "write_small",
    "msgrcv",
    "t1",
    "t2",
    "main",
];

const RUNS: usize = 10;

/// The fixture plus what it leaves behind if killed: its SysV semaphore and
/// message queue (SIGKILL skips its own cleanup) and the watched directory.
struct Target {
    fx: Option<Fixture>,
    sem: i32,
    msg: i32,
    dir: PathBuf,
}

impl Target {
    fn start() -> Target {
        let dir = unique_path("eintr-watch");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let fx = Fixture::spawn_blocked(c_fixture("eintr_calls", Variant::Debug, &[dir.to_str().unwrap()]));
        let id = |k: &str| {
            fx.ready.raw["ipc"][k]
                .as_i64()
                .unwrap_or_else(|| fx.fail(format_args!("READY lacks ipc.{k}"))) as i32
        };
        let (sem, msg) = (id("sem"), id("msg"));
        Target {
            fx: Some(fx),
            sem,
            msg,
            dir,
        }
    }

    fn fx(&self) -> &Fixture {
        self.fx.as_ref().expect("fixture running")
    }

    /// Panic if the fixture exited (or is exiting), naming the call whose
    /// EINTR ended it.
    fn assert_alive(&mut self, when: &str) {
        let fx = self.fx.as_mut().expect("fixture running");
        let pid = fx.pid();
        let mut status = fx.try_exit_status();
        if status.is_none() && matches!(process_state(pid), 'Z' | 'X') {
            // Exiting: its status is on the way.
            status = wait_until("the fixture's exit status", || fx.try_exit_status(), Option::is_some);
        }
        if let Some(status) = status {
            let code = status.code();
            let call = fx.ready.raw["codes"]
                .as_object()
                .and_then(|m| m.iter().find(|(_, v)| v.as_i64().map(|v| v as i32) == code))
                .map(|(k, _)| k.clone());
            fx.fail(format_args!(
                "fixture exited {when}: {status:?} (EINTR in thread {call:?})"
            ));
        }
        let state = process_state(pid);
        assert!(!matches!(state, 'T' | 't'), "fixture state {state} {when}");
        assert_eq!(tracer_pid(pid), 0, "fixture still traced {when}");
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Kill and reap first: removing the objects under a live waiter would
        // wake it with EIDRM.
        drop(self.fx.take());
        // SAFETY: IPC_RMID on IDs the fixture created and reported; errors
        // (already removed by the fixture's own exit path) are fine.
        unsafe {
            libc::semctl(self.sem, 0, libc::IPC_RMID);
            libc::msgctl(self.msg, libc::IPC_RMID, std::ptr::null_mut());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn thread<'a>(doc: &'a Value, tid: i32) -> &'a Value {
    doc["threads"]
        .as_array()
        .expect("threads[]")
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("thread {tid} missing from lockdump's output"))
}

/// The one deadlock: t1 waits for lock_b held by t2, t2 for lock_a held by t1.
fn check_cycle(fx: &Fixture, doc: &Value, run: usize) {
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let ds = doc["deadlocks"].as_array().expect("deadlocks[]");
    assert_eq!(ds.len(), 1, "run {run}: deadlocks {ds:#?}");
    let d = &ds[0];
    let mut threads: Vec<i64> = d["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    threads.sort_unstable();
    assert_eq!(threads, [t1 as i64, t2 as i64], "run {run}: cycle {d}");
    assert_eq!(d["confidence"], "exact", "run {run}: {d}");
    let edges = d["edges"].as_array().expect("edges[]");
    assert_eq!(edges.len(), 2, "run {run}: {d}");
    for (from, to, lock) in [(t1, t2, "lock_b"), (t2, t1, "lock_a")] {
        let e = edges
            .iter()
            .find(|e| e["from_tid"] == from)
            .unwrap_or_else(|| panic!("run {run}: no edge from {from} in {d}"));
        assert_eq!(e["to_tid"], to, "run {run}: {e}");
        assert_eq!(e["kind"], "mutex", "run {run}: {e}");
        assert_eq!(e["address"], format!("{:#x}", fx.lock(lock)), "run {run}: {e}");
        assert_eq!(e["name"], lock, "run {run}: {e}");
        assert_eq!(e["confidence"], "exact", "run {run}: {e}");
        let b = &thread(doc, from)["blocked_on"];
        assert_eq!(b["address"], format!("{:#x}", fx.lock(lock)), "run {run}: {b}");
        assert_eq!(b["owner_tid"], to, "run {run}: {b}");
    }
}

/// Threads in EINTR-prone calls are reported as left running, with a stack
/// copied while they stayed put; every other thread was stopped.
fn check_left_running(fx: &Fixture, doc: &Value, run: usize) {
    for &(name, calls, if_timeout) in LEFT_RUNNING {
        let t = thread(doc, fx.tid(name));
        let l = &t["left_running"];
        let call = l["call"]
            .as_str()
            .unwrap_or_else(|| panic!("run {run}: {name} not left running: {t}"));
        assert!(
            calls.contains(&call),
            "run {run}: {name} left running in {call}, want {calls:?}"
        );
        assert_eq!(l["if_socket_timeout"], if_timeout, "run {run}: {name}: {l}");
        assert_eq!(l["stack_consistent"], true, "run {run}: {name}: {l}");
        let cut_short = CUT_SHORT.contains(&name);
        assert_eq!(l["cut_short"], cut_short, "run {run}: {name}: {l}");
        let timeout = if if_timeout { " if the socket has a timeout" } else { "" };
        let harm = if cut_short {
            "cut short (a write of more than PIPE_BUF bytes to a pipe returns what it has written so far)".to_string()
        } else {
            format!("interrupt{timeout}")
        };
        assert_eq!(
            l["reason"],
            format!("captured without stopping: it sits in {call}, which a ptrace stop would {harm}"),
            "run {run}: {name}"
        );
        // SP and PC from /proc are enough to unwind to the fixture's code.
        let frames = t["frames"].as_array().expect("frames[]");
        assert!(
            frames.iter().any(|f| f["function"] == "call_main"),
            "run {run}: {name}: stack does not reach call_main: {frames:#?}"
        );
    }
    for &name in STOPPED {
        let t = thread(doc, fx.tid(name));
        assert_eq!(
            t["left_running"],
            Value::Null,
            "run {run}: {name} should have been stopped: {t}"
        );
    }
    let threads = doc["threads"].as_array().unwrap().len();
    assert_eq!(threads, LEFT_RUNNING.len() + STOPPED.len(), "run {run}: thread count");
    assert!(
        doc["pause_us"].as_u64().is_some_and(|p| p > 0),
        "run {run}: the others were stopped"
    );
}

#[test]
fn stopping_capture_leaves_eintr_calls_alone() {
    let mut target = Target::start();
    let pid = target.fx().pid();
    let before: BTreeMap<&str, ThreadSample> = LEFT_RUNNING
        .iter()
        .map(|&(name, _, _)| (name, target.fx().sample(name)))
        .collect();

    for run in 1..=RUNS {
        let out = run_lockdump(&["--json", "-p", &pid.to_string()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "run {run}: exit status; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("run {run}: bad JSON ({e}): {stdout}"));
        target.assert_alive(&format!("after run {run}"));
        check_cycle(target.fx(), &doc, run);
        check_left_running(target.fx(), &doc, run);
    }

    // The text report says why, in the thread's header.
    let out = run_lockdump(&["--color", "never", "-p", &pid.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "text run; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ep = target.fx().tid("ep_wait");
    let header = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("Thread {ep} \"ep_wait\"")))
        .unwrap_or_else(|| panic!("no header for ep_wait:\n{text}"));
    assert!(
        header.ends_with("(captured without stopping: it sits in epoll_wait, which a ptrace stop would interrupt)"),
        "{header}"
    );
    target.assert_alive("after the text run");

    // Never stopped, never woken: each thread is in the very call it was in
    // before the first run (same syscall line: number, arguments, SP, PC).
    for (name, first) in &before {
        let now = sample_thread(pid, target.fx().tid(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(now.is_blocked(), "{name} not blocked after the runs: {now:?}");
        assert_eq!(now.syscall, first.syscall, "{name} left its call");
    }
    // The deadlock and the restarted calls are still where they were.
    target.fx().wait_all_blocked();
}
