//! Owners of Rust std locks (which record none), inferred the principled way:
//! from live `MutexGuard`s in each frame's DWARF locals when the executable
//! has debug info, and only from evidence that cannot mean "about to lock"
//! when it is stripped. Every fixture runs in both builds of the same code
//! (`RustBuild::Debug` and `RustBuild::Stripped`), through the real binary.
//!
//! - a healthy program under heavy contention, sampled 100 times: never a cycle;
//! - AB-BA on `Arc<Mutex<_>>`s locked through a helper: the cycle, exact TIDs;
//! - a thread locking a std `Mutex` it holds: a self-deadlock.

mod common;

use std::process::Command;

use common::{run_lockdump, rust_example_with, sample_thread, wait_until, Fixture, RustBuild, SYS_FUTEX};
use serde_json::Value;

/// Samples of the contention fixture; zero may show a cycle.
const SAMPLES: usize = 100;

fn lockdump_json(pid: i32) -> (Option<i32>, Value, String) {
    let out = run_lockdump(&["--json", "-p", &pid.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code(), json, stderr)
}

fn start(name: &str, build: RustBuild, args: &[&str]) -> Fixture {
    let mut cmd = Command::new(rust_example_with(name, build));
    cmd.args(args);
    Fixture::spawn_blocked(cmd)
}

fn blocked_on(json: &Value, tid: i32) -> &Value {
    let t = json["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("no thread {tid} in {json}"));
    &t["blocked_on"]
}

fn contention_never_cycles(build: RustBuild) {
    let fx = Fixture::spawn(Command::new(rust_example_with("rust_contention", build)));
    let workers: Vec<i32> = (0..4).map(|w| fx.tid(&format!("w{w}"))).collect();
    // Run until the workers really contend: some sampled in a futex wait.
    wait_until(
        "a worker in a futex wait",
        || {
            workers
                .iter()
                .filter_map(|&t| sample_thread(fx.pid(), t).ok())
                .filter(|s| s.syscall_nr() == Some(SYS_FUTEX))
                .count()
        },
        |&n| n > 0,
    );
    let (mut waits, mut with_owner) = (0usize, 0usize);
    for n in 0..SAMPLES {
        let (code, json, stderr) = lockdump_json(fx.pid());
        assert_eq!(
            json["deadlocks"].as_array().map(Vec::len),
            Some(0),
            "sample {n}: false cycle:\n{json:#}"
        );
        assert_eq!(code, Some(0), "sample {n}: {stderr}\n{json:#}");
        for &t in &workers {
            let b = blocked_on(&json, t);
            if b["kind"] == "rust_mutex" {
                waits += 1;
                if !b["owner_tid"].is_null() {
                    with_owner += 1;
                    assert_eq!(b["confidence"], "inferred", "{b}");
                }
            }
        }
    }
    eprintln!("[rust_guards] contention {build:?}: {SAMPLES} samples, {waits} std Mutex waits, {with_owner} with an inferred owner, 0 cycles");
    assert!(waits > 0, "no sample caught a worker waiting for a std Mutex");
}

#[test]
fn contention_never_cycles_with_debug_info() {
    contention_never_cycles(RustBuild::Debug);
}

#[test]
fn contention_never_cycles_stripped() {
    contention_never_cycles(RustBuild::Stripped);
}

fn arc_helper_abba(build: RustBuild) {
    let fx = start("rust_guards", build, &["arc-helper"]);
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let (a, b) = (fx.lock("lock_a"), fx.lock("lock_b"));
    let (code, json, stderr) = lockdump_json(fx.pid());
    assert_eq!(code, Some(1), "{stderr}\n{json:#}");
    let ds = json["deadlocks"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{json:#}");
    let d = &ds[0];
    assert_eq!(d["threads"], serde_json::json!([t1.min(t2), t1.max(t2)]), "{d:#}");
    assert_eq!(d["confidence"], "inferred");
    for (waiter, lock, owner) in [(t1, b, t2), (t2, a, t1)] {
        let w = blocked_on(&json, waiter);
        assert_eq!(w["kind"], "rust_mutex", "{w}");
        assert_eq!(w["address"], format!("{lock:#x}"), "{w}");
        assert_eq!(w["owner_tid"], owner, "{w}");
        assert_eq!(w["confidence"], "inferred", "{w}");
        let ev = w["evidence"].as_str().unwrap();
        match build {
            RustBuild::Debug => assert!(ev.contains("live MutexGuard `source`"), "{ev}"),
            RustBuild::Stripped => assert!(ev.contains("lock cmpxchg"), "{ev}"),
        }
    }
    assert_eq!(json["verdict"]["blocked_behind"], serde_json::json!([fx.tid("main")]));
}

#[test]
fn arc_helper_abba_with_debug_info() {
    arc_helper_abba(RustBuild::Debug);
}

#[test]
fn arc_helper_abba_stripped() {
    arc_helper_abba(RustBuild::Stripped);
}

fn self_deadlock(build: RustBuild) {
    let fx = start("rust_guards", build, &["self"]);
    let t1 = fx.tid("t1");
    let (code, json, stderr) = lockdump_json(fx.pid());
    assert_eq!(code, Some(1), "{stderr}\n{json:#}");
    let ds = json["deadlocks"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{json:#}");
    assert_eq!(ds[0]["threads"], serde_json::json!([t1]));
    assert_eq!(
        ds[0]["resources"],
        serde_json::json!([format!("{:#x}", fx.lock("lock_s"))])
    );
    let w = blocked_on(&json, t1);
    assert_eq!(
        (w["owner_tid"].as_i64(), w["confidence"].as_str()),
        (Some(t1 as i64), Some("inferred")),
        "{w}"
    );
    if build == RustBuild::Debug {
        assert_eq!(w["name"], "rust_guards::LOCK_S");
    }
    // The guard `first` is live in DWARF, but rustc 1.95 leaves its pointer
    // to the static optimized out (an empty piece): the code that took the
    // lock (a second, RIP-relative `lock cmpxchg` on it) names the owner.
    let ev = w["evidence"].as_str().unwrap();
    assert!(
        ev.contains("live MutexGuard `first`") || ev.contains("lock cmpxchg at"),
        "{w}"
    );
    assert_eq!(json["verdict"]["blocked_behind"], serde_json::json!([fx.tid("main")]));
}

#[test]
fn self_deadlock_with_debug_info() {
    self_deadlock(RustBuild::Debug);
}

#[test]
fn self_deadlock_stripped() {
    self_deadlock(RustBuild::Stripped);
}
