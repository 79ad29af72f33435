//! `lockdump run -- CMD` (the hang watchdog) and `lockdump -p PID --tree`:
//! whole process trees, as a hung CI job leaves them.
//!
//! Each test's processes are found again afterwards through /proc by what
//! they run (a fixture path unique to the test), so "no process of the tree
//! is left" is checked, not assumed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{build_c, unique_path, Variant, POLL, TIMEOUT};
use serde_json::Value;

fn lockdump() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockdump"))
}

/// A private copy of the AB-BA fixture, so the processes a test starts can
/// be told from every other test's by their executable.
fn private_abba(stem: &str) -> std::path::PathBuf {
    let path = unique_path(stem);
    std::fs::copy(build_c("abba", Variant::Debug), &path).expect("copy abba");
    path
}

/// PIDs of live (non-zombie) processes whose executable is `exe`.
fn running(exe: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_it = std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe);
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(true);
        if is_it && !zombie {
            out.push(pid);
        }
    }
    out
}

/// Kill whatever a failed test left behind.
struct Cleanup(std::path::PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in running(&self.0) {
            // SAFETY: kill with a PID and a signal number.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    cmd.stdin(Stdio::null());
    common::fixture::output_with_timeout(cmd, limit)
}

/// CMD that finishes in time: its exit code, its output, nothing from lockdump.
#[test]
fn finished_command_passes_its_status_and_output_through() {
    let mut cmd = lockdump();
    cmd.args([
        "run",
        "--timeout",
        "10m",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    let out = output_within(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // A death by signal N is 128+N, as a shell reports it.
    let mut cmd = lockdump();
    cmd.args(["run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(output_within(cmd, TIMEOUT).status.code(), Some(128 + libc::SIGTERM));

    // A command that cannot be found: 127, as a shell.
    let mut cmd = lockdump();
    cmd.args(["run", "--", "/nonexistent/lockdump-test-command"]);
    let out = output_within(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("lockdump: cannot run /nonexistent/"));
}

/// The watched command runs at the priority it would have without
/// lockdump: lockdump raises itself to SCHED_FIFO only for a dump
/// (src/capture/priority.rs), never before it forks the command, which would
/// inherit it. Field 41 of /proc/PID/stat is the scheduling policy (0:
/// SCHED_OTHER), proc(5).
#[test]
fn the_command_runs_at_normal_priority() {
    let mut cmd = lockdump();
    cmd.args([
        "run",
        "--timeout",
        "10m",
        "--",
        "awk",
        "{ print $41 }",
        "/proc/self/stat",
    ]);
    let out = output_within(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
}

/// The acceptance test: a shell that forks a deadlocking fixture,
/// plus one that detached itself with setsid (re-parented to lockdump, the
/// subreaper); the report shows both children's cycles, exit 124, and no
/// process of the tree is left.
#[test]
fn timeout_dumps_the_whole_tree_and_ends_it() {
    let abba = private_abba("run-abba");
    let _cleanup = Cleanup(abba.clone());
    let report = unique_path("run-report.json");
    let script = format!("{a} & (setsid {a} &); wait", a = abba.display());
    let mut cmd = lockdump();
    cmd.arg("--json")
        .args(["run", "--timeout", "5s", "--kill-after", "2s", "--report"])
        .arg(&report)
        .args(["--", "sh", "-c", &script]);
    let started = Instant::now();
    let out = output_within(cmd, TIMEOUT);
    assert_eq!(
        out.status.code(),
        Some(124),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() >= Duration::from_secs(5), "ended before the timeout");
    let doc: Value = serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("JSON report");
    let _ = std::fs::remove_file(&report);
    assert_eq!(doc["verdict"]["kind"], "deadlock", "{}", doc["verdict"]);
    let deadlocks = doc["deadlocks"].as_array().expect("deadlocks");
    assert_eq!(deadlocks.len(), 2, "one cycle in each abba: {}", doc["verdict"]);
    // Every cycle is between t1 and t2 of one abba process, each a member of the dump.
    let pids: Vec<i64> = doc["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assert!(pids.len() >= 3, "sh and both abba processes: {pids:?}");
    let mut cycle_pids: Vec<i64> = deadlocks
        .iter()
        .map(|d| {
            let p = d["pids"].as_array().unwrap();
            assert_eq!(p.len(), 2);
            assert_eq!(p[0], p[1], "a cycle within one process");
            assert_eq!(d["resource_names"], serde_json::json!(["lock_b", "lock_a"]));
            p[0].as_i64().unwrap()
        })
        .collect();
    cycle_pids.sort_unstable();
    cycle_pids.dedup();
    assert_eq!(cycle_pids.len(), 2, "two different processes");
    assert!(cycle_pids.iter().all(|p| pids.contains(p)));
    // The tree is gone (the kill is synchronous: lockdump exits after it).
    assert_eq!(running(&abba), Vec::<i32>::new(), "processes of the tree left running");
    for p in &pids {
        let alive = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false);
        assert!(!alive, "PID {p} of the tree is still alive");
    }
}

/// The text report opens with what happened; `--keep` leaves the tree.
#[test]
fn timeout_report_says_what_happened_and_keep_leaves_the_tree() {
    let abba = private_abba("run-keep");
    let _cleanup = Cleanup(abba.clone());
    let report = unique_path("run-keep.txt");
    // The kept process must not hold lockdump's output pipes open.
    let script = format!("exec {} >/dev/null 2>&1", abba.display());
    let mut cmd = lockdump();
    cmd.args(["run", "--timeout", "3s", "--keep", "--report"])
        .arg(&report)
        .args(["--", "sh", "-c", &script]);
    let out = output_within(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(124), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "the report went to the file");
    let text = std::fs::read_to_string(&report).expect("report");
    let _ = std::fs::remove_file(&report);
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("lockdump run: `sh -c exec ") && first.contains("still running after the timeout (3s)"),
        "{text}"
    );
    assert!(text.contains("Found 1 deadlock (2 threads, 2 mutexes)"), "{text}");
    // Confirmed before it is reported (the default --confirm 2s).
    assert!(
        text.contains("  Confirmed: every thread stayed in its wait for ≥ 2.0 s and never woke"),
        "{text}"
    );
    // --keep: the fixture lives on (re-parented once lockdump exited).
    let left = running(&abba);
    assert_eq!(left.len(), 1, "--keep must leave the tree running: {left:?}");
}

/// `--on-signal SIGUSR1`: a dump on demand, and CMD goes on to finish normally.
#[test]
fn on_signal_dumps_and_the_command_continues() {
    let report = unique_path("run-signal.txt");
    let flag = unique_path("run-signal.flag");
    // CMD waits for the flag file the test writes after the dump.
    let script = format!("while [ ! -e {f} ]; do sleep 0.05; done; exit 3", f = flag.display());
    let mut cmd = lockdump();
    cmd.args(["run", "--on-signal", "SIGUSR1", "--report"])
        .arg(&report)
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("lockdump run");
    let pid = child.id() as i32;
    // Wait until the shell runs under lockdump (its signals are then set up).
    common::wait_until(
        "lockdump run's child",
        || lockdump::tree::descendants(pid),
        |d: &Vec<i32>| !d.is_empty(),
    );
    // SAFETY: kill with a PID and a signal number.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    let text = common::wait_until(
        "the on-signal report",
        || std::fs::read_to_string(&report).unwrap_or_default(),
        |t: &String| t.contains("PID "),
    );
    assert!(text.starts_with("lockdump run: `sh -c "), "{text}");
    assert!(text.contains("lockdump received SIGUSR1"), "{text}");
    std::fs::write(&flag, "").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "lockdump run did not finish");
        std::thread::sleep(POLL);
    };
    assert_eq!(status.code(), Some(3));
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&flag);
}

/// `-p PID --tree` finds a deadlock in a grandchild: one report, exit 1.
#[test]
fn tree_finds_a_deadlock_in_a_grandchild() {
    let abba = private_abba("tree-abba");
    let _cleanup = Cleanup(abba.clone());
    let script = format!("sh -c '{}; true'; true", abba.display());
    let mut root = Command::new("sh");
    root.args(["-c", &script]).stdout(Stdio::null()).stderr(Stdio::null());
    let mut root = root.spawn().expect("sh");
    let root_pid = root.id() as i32;
    let grandchild = common::wait_until("the abba grandchild", || running(&abba), |v: &Vec<i32>| v.len() == 1)[0];
    // Its two worker threads settle in the deadlock.
    let fx_threads = || {
        std::fs::read_dir(format!("/proc/{grandchild}/task"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    common::wait_until("abba's threads", fx_threads, |&n| n == 3);
    let out = common::wait_until(
        "the deadlock in the tree",
        || common::run_lockdump(&["-p", &root_pid.to_string(), "--tree", "--json"]),
        |o: &std::process::Output| o.status.code() == Some(1),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let pids: Vec<i64> = doc["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assert_eq!(pids[0], root_pid as i64, "the root first");
    assert_eq!(pids.len(), 3, "sh, sh, abba: {pids:?}");
    assert!(pids.contains(&(grandchild as i64)));
    let d = &doc["deadlocks"][0];
    assert_eq!(d["pids"], serde_json::json!([grandchild, grandchild]));
    assert_eq!(doc["deadlocks"].as_array().unwrap().len(), 1);
    // Without --tree only the root is looked at: no deadlock there.
    let out = common::run_lockdump(&["-p", &root_pid.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for pid in running(&abba) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = root.wait();
}

/// Bad input: no command, a bad duration, a bad signal — one line, exit 2.
#[test]
fn run_usage_errors() {
    for args in [
        &["run"][..],
        &["run", "--timeout", "ten", "--", "true"][..],
        &["run", "--on-signal", "SIGFOO", "--", "true"][..],
        &["-p", "1", "run", "--", "true"][..],
    ] {
        let out = common::run_lockdump(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
