//! Waits lockdump cannot attribute are said, not hidden: a Go program and a
//! stripped Rust program deadlocked on `parking_lot` locks (whose hash table
//! lockdump finds only through its symbol; with symbols, tests/parking_lot.rs)
//! give an incomplete verdict (exit 3) naming what was not examined and what
//! to do, never a clean "No deadlock found" nor a verdict that pretends to
//! understand the waits.

mod common;

use std::process::Command;

use common::{run_lockdump, rust_example_with, scratch_dir, unique_path, Fixture, RustBuild};
use serde_json::Value;

fn lockdump_json(pid: i32) -> (Option<i32>, Value) {
    let out = run_lockdump(&["--json", "-p", &pid.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), json)
}

fn lockdump_text(pid: i32) -> (Option<i32>, String) {
    let out = run_lockdump(&["--color", "never", "-p", &pid.to_string()]);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn stripped_parking_lot_abba_is_incomplete_not_clean() {
    let fx = Fixture::spawn_blocked(Command::new(rust_example_with("rust_parking_lot", RustBuild::Stripped)));
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let (code, json) = lockdump_json(fx.pid());
    assert_eq!(code, Some(3), "{json:#}");
    assert_eq!(json["verdict"]["kind"], "incomplete");
    let un = json["verdict"]["unexamined"].as_array().unwrap();
    assert_eq!(un.len(), 1, "{un:?}");
    assert_eq!(
        (un[0]["pid"].as_i64(), un[0]["part"].as_str()),
        (Some(fx.pid() as i64), Some("parking_lot"))
    );
    let why = un[0]["why"].as_str().unwrap();
    for tid in [t1, t2] {
        assert!(why.contains(&tid.to_string()), "{why}");
    }
    assert!(why.contains("deadlock_detection"), "{why}");
    assert!(why.contains("its symbols are stripped"), "{why}");
    let (code, text) = lockdump_text(fx.pid());
    assert_eq!(code, Some(3));
    assert!(
        text.starts_with(&format!(
            "Incomplete: no deadlock among what was examined; not examined: parking_lot locks of PID {}.",
            fx.pid()
        )),
        "{text}"
    );
}

/// fixtures/go/go_abba.go, built with the system's `go` (golang-go, installed
/// by scripts/setup-tools.sh; missing, the test fails).
fn go_fixture() -> Command {
    let src = common::fixtures_dir().join("go").join("go_abba.go");
    let out = scratch_dir().join("go_abba");
    let tmp = unique_path(".go_abba.tmp");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(&src)
        .env("GOCACHE", scratch_dir().join("gocache"))
        .env("GOPATH", scratch_dir().join("gopath"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run go ({e}): install golang-go (scripts/setup-tools.sh does)"));
    assert!(
        built.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    Command::new(out)
}

#[test]
fn go_program_is_incomplete_not_clean() {
    let fx = Fixture::spawn(go_fixture());
    let (code, json) = lockdump_json(fx.pid());
    assert_eq!(code, Some(3), "{json:#}");
    let un = json["verdict"]["unexamined"].as_array().unwrap();
    assert_eq!(un.len(), 1, "{un:?}");
    assert_eq!(un[0]["part"], "go");
    let why = un[0]["why"].as_str().unwrap();
    assert!(
        why.contains("this is a Go program (its .go.buildinfo section)"),
        "{why}"
    );
    assert!(why.contains("SIGQUIT"), "{why}");
}
