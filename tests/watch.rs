//! `--watch`: hangs that only show over time (issue 23). The course's
//! livelock and readers-writers programs get their named verdicts with the
//! exact threads, locks and lines; healthy busy programs stay quiet over
//! repeated watches. Watches are 1–1.5 s to keep the suite fast; CPython
//! 3.13 (pyenv) is the interpreter (3.14 and 3.13t: see docs/limits.md).

mod common;

use std::collections::BTreeSet;

use common::{python_fixture, python_interpreters, run_lockdump, Fixture};
use serde_json::Value;

fn python_313() -> std::path::PathBuf {
    python_interpreters()
        .iter()
        .find(|p| p.label == "3.13")
        .unwrap_or_else(|| panic!("no 3.13 in scripts/interpreters.sh"))
        .path
        .clone()
}

/// Run `lockdump -p PID --watch W --json`; (exit code, document).
fn watch_json(fx: &Fixture, w: &str) -> (i32, Value) {
    let pid = fx.pid().to_string();
    let out = run_lockdump(&["-p", &pid, "--watch", w, "--json"]);
    let code = out.status.code().unwrap_or(-1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        fx.fail(format!(
            "lockdump exited {code} without JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    });
    (code, doc)
}

fn tids(v: &Value) -> BTreeSet<i64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t[1].as_i64())
        .collect()
}

fn named(fx: &Fixture, names: &[&str]) -> BTreeSet<i64> {
    names.iter().map(|n| fx.tid(n) as i64).collect()
}

#[test]
fn course_livelock_is_a_probable_livelock() {
    let fx = Fixture::spawn(python_fixture(&python_313(), "course_livelock.py", &[]));
    let (code, doc) = watch_json(&fx, "1.5");
    let w = &doc["watch"];
    assert_eq!(doc["schema_version"], 4);
    assert_eq!((code, doc["verdict"]["kind"].as_str()), (4, Some("livelock")), "{w:#}");
    assert_eq!(doc["verdict"]["exit_code"], 4);
    let l = &w["livelocks"][0];
    assert_eq!(w["livelocks"].as_array().map(|a| a.len()), Some(1), "{w:#}");
    assert_eq!(tids(&l["threads"]), named(&fx, &["Wife", "Husband"]), "{l:#}");
    assert_eq!(l["function"], "Spouse.run");
    assert_eq!(l["confidence"], "inferred");
    // The loop: from `while self.hungry` to `continue`.
    let first = common::marked_line(&common::python_source("course_livelock.py"), "loop") as u64;
    let lines: Vec<u64> = l["lines"].as_array().unwrap().iter().filter_map(|x| x.as_u64()).collect();
    assert!(!lines.is_empty() && lines.iter().all(|&n| (first..=first + 3).contains(&n)), "{lines:?} vs loop at {first}");
    assert_eq!(l["locks"][0]["name"], "fork");
    assert_eq!(l["locks"][0]["address"].as_u64(), Some(fx.lock("fork")));
    let spinning: BTreeSet<i64> = w["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["spinning"] == true)
        .filter_map(|t| t["thread"][1].as_i64())
        .collect();
    assert_eq!(spinning, named(&fx, &["Wife", "Husband"]));
    // The main thread joins Wife: seen in that wait for the whole watch.
    let main = w["threads"].as_array().unwrap().iter().find(|t| t["thread"][1].as_i64() == Some(fx.tid("main") as i64)).unwrap();
    assert_eq!(main["blocked_whole_watch"], true, "{main:#}");
    assert!(main["blocked_for_ms"].as_u64().unwrap() >= 1400, "{main:#}");
}

fn starvation(mode: &str, lock: &str, starved: &[&str], favoured: &[&str]) {
    let fx = Fixture::spawn(python_fixture(&python_313(), "course_readers_writers.py", &[mode]));
    let starved_tids: Vec<i32> = starved.iter().map(|n| fx.tid(n)).collect();
    fx.wait_blocked(&starved_tids);
    let (code, doc) = watch_json(&fx, "1.5");
    let w = &doc["watch"];
    assert_eq!((code, doc["verdict"]["kind"].as_str()), (4, Some("starvation")), "{w:#}");
    assert_eq!(w["livelocks"].as_array().map(|a| a.len()), Some(0), "{w:#}");
    let s = &w["starvations"][0];
    assert_eq!(w["starvations"].as_array().map(|a| a.len()), Some(1), "{w:#}");
    assert_eq!(s["resource"]["name"], lock);
    assert_eq!(s["resource"]["address"].as_u64(), Some(fx.lock(lock)));
    assert_eq!(s["resource"]["kind"], "py_lock");
    assert_eq!(tids(&s["waiters"]), named(&fx, starved), "{s:#}");
    assert_eq!(tids(&s["kept_by"]), named(&fx, favoured), "{s:#}");
    assert_eq!(s["confidence"], "inferred");
    assert!(s["waited_ms"].as_u64().unwrap() >= 1400, "{s:#}");
    let headline = doc["verdict"]["headline"].as_str().unwrap();
    assert!(headline.starts_with(&format!("Starvation: {} threads waited", starved.len())), "{headline}");
    assert!(headline.contains(&format!("Python Lock {lock} (")), "{headline}");
}

#[test]
fn reader_preference_starves_the_writers() {
    starvation("reader_preference", "resource", &["Writer-1", "Writer-2"], &["Reader-1", "Reader-2", "Reader-3"]);
}

#[test]
fn writer_preference_starves_the_readers() {
    starvation("writer_preference", "read_try", &["Reader-1", "Reader-2", "Reader-3"], &["Writer-1", "Writer-2"]);
}

/// 30 watches (not the 100: the suite's time; each watch is 1 s).
const CONTROL_RUNS: usize = 30;

fn stays_quiet(file: &str, w: &str) {
    let fx = Fixture::spawn(python_fixture(&python_313(), file, &[]));
    for run in 0..CONTROL_RUNS {
        let (code, doc) = watch_json(&fx, w);
        let watch = &doc["watch"];
        assert_eq!(
            (code, doc["verdict"]["kind"].as_str()),
            (0, Some("no_hang_found")),
            "run {run}: {watch:#}"
        );
        assert_eq!(watch["livelocks"].as_array().map(|a| a.len()), Some(0), "run {run}");
        assert_eq!(watch["starvations"].as_array().map(|a| a.len()), Some(0), "run {run}");
        assert!(watch["samples"].as_u64().unwrap() >= 10, "run {run}: {watch:#}");
    }
}

#[test]
fn healthy_cpu_pool_is_never_a_livelock() {
    stays_quiet("healthy_cpu_pool.py", "1");
}
