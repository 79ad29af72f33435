//! Issue 22.1: a loaded service is shown as completely as an idle one.
//!
//! http.server's ThreadingHTTPServer (fixtures/python/loaded_http_server.py)
//! on every interpreter of the matrix, under 4 local clients (tests/common/
//! load.rs: 127.0.0.1 only, bounded in requests and time), inspected
//! `LOCKDUMP_LOADED_RUNS` times (default 30; the issue asks 100) with
//! `--json --native`. Each run must exit 0, and every thread whose native
//! stack is inside the eval loop must have its Python frames, and a Python
//! name unless the report says why not (a thread between its start and
//! threading's registry). A thread whose Python stack could not be read as
//! of the stop must say so (`python_stack_note`); that counts as a failure
//! here, since the copy during the stop is meant to prevent it. The clients
//! must see no error.

mod common;

use common::load::HttpLoad;
use common::{python_fixture, python_interpreters, run_lockdump, Fixture, Interpreter};
use serde_json::Value;

fn runs() -> usize {
    std::env::var("LOCKDUMP_LOADED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn in_eval_loop(t: &Value) -> bool {
    t["frames"].as_array().is_some_and(|f| {
        f.iter().any(|f| {
            f["kind"] == "native"
                && f["function"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("_PyEval_EvalFrame"))
        })
    })
}

fn python_frames(t: &Value) -> usize {
    t["frames"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| f["kind"] == "python").count())
}

/// What the runs on one interpreter saw.
#[derive(Default, Debug)]
struct Seen {
    runs: usize,
    request_threads_in_eval: usize,
    named: usize,
    unnamed_with_reason: usize,
    problems: Vec<String>,
}

fn check_interpreter(py: &Interpreter, runs: usize) -> Seen {
    let fx = Fixture::spawn(python_fixture(&py.path, "loaded_http_server.py", &[]));
    let port = fx.ready.raw["port"].as_u64().expect("READY port") as u16;
    let load = HttpLoad::start(port, 4);
    load.wait_for(20);
    let mut seen = Seen::default();
    let pid = fx.pid().to_string();
    for run in 0..runs {
        let out = run_lockdump(&["--json", "--native", "-p", &pid]);
        seen.runs += 1;
        if out.status.code() != Some(0) {
            seen.problems.push(format!(
                "run {run}: exit {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        for t in doc["threads"].as_array().expect("threads") {
            if t["tid"].as_i64() == Some(fx.pid() as i64) || !in_eval_loop(t) {
                continue;
            }
            seen.request_threads_in_eval += 1;
            let brief = || {
                format!(
                    "run {run} thread {} ({}, {}): python_name {}, name note {}, stack note {}, {} Python frames",
                    t["tid"],
                    t["name"],
                    t["state"],
                    t["python_name"],
                    t["python_name_note"],
                    t["python_stack_note"],
                    python_frames(t)
                )
            };
            if python_frames(t) == 0 {
                seen.problems.push(format!("no Python frames: {}", brief()));
                continue;
            }
            match (t["python_name"].as_str(), t["python_name_note"].as_str()) {
                (Some(_), _) => seen.named += 1,
                (None, Some(note)) if note.contains("starting") || note.contains("ending") => {
                    seen.unnamed_with_reason += 1
                }
                _ => seen.problems.push(format!("no Python name and no reason: {}", brief())),
            }
        }
    }
    let errors = load.finish();
    if !errors.is_empty() {
        seen.problems.push(format!(
            "{} client errors, first: {:?}",
            errors.len(),
            &errors[..errors.len().min(3)]
        ));
    }
    if fx.stderr().contains("Traceback") {
        seen.problems.push(format!("server stderr:\n{}", fx.stderr()));
    }
    seen
}

#[test]
fn loaded_threading_http_server_shows_every_request_thread() {
    let n = runs();
    let mut failures = Vec::new();
    // One interpreter at a time: 4 clients, a server and lockdump already
    // fill 2 CPUs.
    for py in python_interpreters() {
        let s = check_interpreter(py, n);
        eprintln!(
            "[{}] {} runs: {} request threads in the eval loop, {} named, {} unnamed with the reason, {} problems",
            py.label,
            s.runs,
            s.request_threads_in_eval,
            s.named,
            s.unnamed_with_reason,
            s.problems.len()
        );
        if s.request_threads_in_eval == 0 {
            failures.push(format!(
                "[{}] no request thread was ever caught in the eval loop",
                py.label
            ));
        }
        for p in s.problems.iter().take(10) {
            failures.push(format!("[{}] {p}", py.label));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
