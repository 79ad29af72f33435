//! Issue 22.4: real services, inspected again and again while they work.
//!
//! - redis-server (Debian's; scripts/setup-tools.sh installs it), a child of
//!   this test on a random 127.0.0.1 port with no persistence, loaded by
//!   redis-benchmark (4 connections, bounded request counts);
//! - http.server's ThreadingHTTPServer under 4 local clients
//!   (tests/common/load.rs);
//! - the same server idle, with four worker threads in `queue.Queue.get()`
//!   (issue 20.7's healthy control), 100 dumps on every interpreter;
//! - node (Debian's nodejs) with four worker_threads echoing a message the
//!   main thread sends every millisecond (fixtures/node_workers.js), dumped
//!   100 times: issue 20's healthy control for a runtime lockdump does not
//!   read (V8's threads wait in epoll and on condition variables).
//!
//! Each is inspected `LOCKDUMP_SMOKE_RUNS` times (default 50) in the
//! stopping mode: every run exits 0 (no deadlock, nothing unexamined), the
//! clients see no error, every thread has a name (its comm; a Python thread
//! its Python name or the reason it has none), and every call a thread sits
//! in is named, with the same words in `syscall.text` and `blocked_in`.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::load::HttpLoad;
use common::{python_fixture, python_interpreters, run_lockdump, wait_until, Fixture};
use serde_json::Value;

fn runs() -> usize {
    std::env::var("LOCKDUMP_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).is_file() {
            return p;
        }
    }
    panic!("{name} is missing: scripts/setup-tools.sh installs it (Debian packages redis-server, redis-tools, nodejs)");
}

/// A child process killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Checks of one lockdump run that hold for every service; problems are pushed.
fn check_run(run: usize, out: &std::process::Output, problems: &mut Vec<String>) -> Option<Value> {
    if out.status.code() != Some(0) {
        problems.push(format!(
            "run {run}: exit {:?} (want 0: no deadlock, nothing stuck, all examined): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("")
        ));
        return None;
    }
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    if doc["verdict"]["kind"] != "no_hang_found" || doc["deadlocks"].as_array().is_none_or(|d| !d.is_empty()) {
        problems.push(format!("run {run}: verdict {}", doc["verdict"]));
    }
    for t in doc["threads"].as_array().expect("threads") {
        if t["name"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("run {run}: thread {} has no name", t["tid"]));
        }
        let sys = &t["syscall"];
        if !sys.is_null() {
            let (Some(name), Some(text)) = (sys["name"].as_str(), sys["text"].as_str()) else {
                problems.push(format!("run {run}: thread {} in an unnamed call: {sys}", t["tid"]));
                continue;
            };
            if !text.starts_with(name) && !text.starts_with("restart_syscall") {
                problems.push(format!(
                    "run {run}: thread {}: text {text:?} does not name {name}",
                    t["tid"]
                ));
            }
            if let Some(b) = t["blocked_in"].as_str() {
                if name != "futex" && name != "restart_syscall" && !b.starts_with(text) {
                    problems.push(format!(
                        "run {run}: thread {}: blocked_in {b:?} and the header's {text:?} differ",
                        t["tid"]
                    ));
                }
            }
        }
        if !t["running"].is_boolean() {
            problems.push(format!(
                "run {run}: thread {} does not say whether it was running",
                t["tid"]
            ));
        }
        // (A GIL waiter inside take_gil keeps its GIL wait: see inspect.rs.)
        let gil_wait = t["blocked_on"]["kind"] == "gil";
        if t["running"] == true && !((t["blocked_on"].is_null() || gil_wait) && t["blocked_in"].is_null()) {
            problems.push(format!(
                "run {run}: running thread {} described as blocked: {t}",
                t["tid"]
            ));
        }
    }
    Some(doc)
}

#[test]
fn redis_under_load() {
    let server = tool("redis-server");
    let bench = tool("redis-benchmark");
    let port = free_port();
    let child = Command::new(&server)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--daemonize",
            "no",
            "--io-threads",
            "2",
            "--dir",
            "/tmp",
            "--logfile",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let redis = Reaped(child);
    wait_until(
        "redis-server to accept connections",
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        |&up| up,
    );
    let pid = redis.0.id().to_string();
    // The load: redis-benchmark rounds of 20 000 requests, 4 connections,
    // one after the other until the runs are done (at most 15 minutes).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        let port = port.to_string();
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut rounds = 0;
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < Duration::from_secs(900) {
                let out = Command::new(&bench)
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-c",
                        "4",
                        "-n",
                        "20000",
                        "-q",
                        "-t",
                        "set,get,lpush,lpop",
                    ])
                    .output()
                    .expect("run redis-benchmark");
                rounds += 1;
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if !out.status.success() || text.to_lowercase().contains("error") {
                    failures.push(format!("round {rounds}: {:?}: {text}", out.status));
                }
            }
            (rounds, failures)
        })
    };
    let mut problems = Vec::new();
    for run in 0..runs() {
        let out = run_lockdump(&["--json", "-p", &pid]);
        check_run(run, &out, &mut problems);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (rounds, failures) = loader.join().expect("load thread");
    eprintln!(
        "redis: {} runs, {rounds} redis-benchmark rounds, {} problems",
        runs(),
        problems.len()
    );
    problems.extend(failures);
    assert!(rounds > 0, "redis-benchmark never ran");
    drop(redis);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn threading_http_server_under_load() {
    let py = &python_interpreters()[0];
    let fx = Fixture::spawn(python_fixture(&py.path, "loaded_http_server.py", &[]));
    let port = fx.ready.raw["port"].as_u64().expect("READY port") as u16;
    let load = HttpLoad::start(port, 4);
    load.wait_for(20);
    let mut problems = Vec::new();
    let pid = fx.pid().to_string();
    for run in 0..runs() {
        // --native: the native frames show which threads are in the eval loop.
        let out = run_lockdump(&["--json", "--native", "-p", &pid]);
        let Some(doc) = check_run(run, &out, &mut problems) else {
            continue;
        };
        for t in doc["threads"].as_array().expect("threads") {
            let frames = t["frames"].as_array().cloned().unwrap_or_default();
            let python = frames.iter().any(|f| f["kind"] == "python");
            let in_eval = frames.iter().any(|f| {
                f["kind"] == "native"
                    && f["function"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("_PyEval_EvalFrame"))
            });
            if in_eval && !python {
                problems.push(format!(
                    "run {run}: thread {} is in the eval loop with no Python frame",
                    t["tid"]
                ));
            }
            if python && t["python_name"].is_null() && t["python_name_note"].is_null() {
                problems.push(format!(
                    "run {run}: Python thread {} has no Python name and no reason",
                    t["tid"]
                ));
            }
            if !t["python_stack_note"].is_null() {
                problems.push(format!("run {run}: thread {}: {}", t["tid"], t["python_stack_note"]));
            }
        }
    }
    let errors = load.finish();
    eprintln!(
        "http.server ({}): {} runs, {} problems, {} client errors",
        py.label,
        runs(),
        problems.len(),
        errors.len()
    );
    if !errors.is_empty() {
        problems.push(format!(
            "{} client errors: {:?}",
            errors.len(),
            &errors[..errors.len().min(3)]
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn node_with_busy_worker_threads_is_never_a_hang() {
    let node = tool("node");
    let script = common::fixtures_dir().join("node_workers.js");
    let fx = Fixture::spawn({
        let mut c = Command::new(node);
        c.arg(script);
        c
    });
    let pid = fx.pid().to_string();
    let mut problems = Vec::new();
    let mut threads = 0;
    for run in 0..runs().max(100) {
        let out = run_lockdump(&["--json", "-p", &pid]);
        if let Some(doc) = check_run(run, &out, &mut problems) {
            threads = threads.max(doc["threads"].as_array().map_or(0, Vec::len));
            if !doc["verdict"]["stuck"].as_array().is_some_and(Vec::is_empty) {
                problems.push(format!("run {run}: stuck: {}", doc["verdict"]["stuck"]));
            }
        }
    }
    eprintln!(
        "node worker_threads: {} runs, {threads} threads, {} problems",
        runs().max(100),
        problems.len()
    );
    assert!(threads >= 5, "node and its 4 workers: {threads} threads");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn idle_threading_http_server_with_queue_workers_is_never_stuck() {
    common::for_each_python(|py| {
        let fx = Fixture::spawn_blocked(python_fixture(&py.path, "loaded_http_server.py", &["idle-workers"]));
        let pid = fx.pid().to_string();
        let mut problems = Vec::new();
        for run in 0..runs().max(100) {
            let out = run_lockdump(&["--json", "-p", &pid]);
            let Some(doc) = check_run(run, &out, &mut problems) else {
                continue;
            };
            if !doc["verdict"]["stuck"].as_array().is_some_and(Vec::is_empty) {
                problems.push(format!("run {run}: stuck: {}", doc["verdict"]["stuck"]));
            }
            for i in 0..4 {
                let tid = fx.tid(&format!("worker-{i}"));
                let Some(t) = doc["threads"]
                    .as_array()
                    .and_then(|a| a.iter().find(|t| t["tid"] == tid))
                else {
                    problems.push(format!("run {run}: no thread worker-{i}"));
                    continue;
                };
                if t["blocked_on"]["kind"] != "py_queue" || t["asleep_for_good"] != false {
                    problems.push(format!("run {run}: worker-{i}: {} / {}", t["blocked_on"], t["why"]));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    });
}
