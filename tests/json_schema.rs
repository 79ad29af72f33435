//! docs/json-schema.md against the report's type (issue 24): every field
//! the `Report` serializes is named in the document's section for its
//! level, and every field a section's table lists is serialized.
//!
//! Two sources of JSON: a real run (`lockdump demo --json --confirm`: a
//! deadlock, so the verdict, its cycle and edges, the threads with their
//! waits and holds, the process and the watch are all filled), and, for the
//! parts that run leaves null or empty (pools, asyncio, a thread left
//! running, a timed wait, cores...), the report's own types built here by
//! hand: a field added to one of them does not compile here until it is
//! added below, and then this test asks for its documentation.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use lockdump::test_support::ids::{Pid, Tid};
use serde_json::Value;

const DOC: &str = include_str!("../docs/json-schema.md");

/// A section of the document (a `#` heading down to the next heading).
#[derive(Default, Debug)]
struct Section {
    /// Field names in the first column of its table rows (`a` / `b`, `a`, `b`).
    table: Vec<String>,
    /// Every identifier written between backticks anywhere in the section:
    /// what prose and the tables' meaning cells name (`{pid, part, why}`).
    words: BTreeSet<String>,
}

fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn identifiers(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase() || c == '_'))
}

/// The sections by heading, without `#`s and without a `(version N)` tail.
/// Backticks are paired over the whole section (a span may wrap a line).
fn sections() -> BTreeMap<String, Section> {
    let mut text: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in DOC.lines() {
        if let Some(h) = line.strip_prefix('#') {
            let h = h.trim_start_matches('#').trim();
            text.push((h.split(" (").next().unwrap_or(h).to_string(), String::new()));
            continue;
        }
        let cur = &mut text.last_mut().expect("a section").1;
        cur.push_str(line);
        cur.push('\n');
    }
    let mut out: BTreeMap<String, Section> = BTreeMap::new();
    for (title, body) in text {
        let sec = out.entry(title).or_default();
        for line in body.lines().filter(|l| l.starts_with("| `")) {
            let first = line.split('|').nth(1).unwrap_or("");
            sec.table.extend(backticked(first).into_iter().map(str::to_string));
        }
        for span in backticked(&body) {
            sec.words.extend(identifiers(span).map(str::to_string));
        }
    }
    out
}

/// The values at `path` (`verdict.stuck[]`: every element of the array),
/// nulls left out.
fn at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![v];
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, each) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        for c in cur {
            let x = if name.is_empty() { c } else { &c[name] };
            match (each, x) {
                (_, Value::Null) => {}
                (true, Value::Array(a)) => next.extend(a.iter().filter(|e| !e.is_null())),
                (true, other) => panic!("{path}: {seg} is not an array: {other}"),
                (false, x) => next.push(x),
            }
        }
        cur = next;
    }
    cur
}

/// Where each level of the document is described: its path, its section,
/// and whether the section's table lists exactly its fields (`strict`;
/// otherwise the fields need only be named in the section).
const LEVELS: &[(&str, &str, bool)] = &[
    ("", "Top level", true),
    ("host", "Top level", false),
    ("source", "Top level", false),
    ("source.cores[]", "Top level", false),
    ("verdict", "Verdict", true),
    ("verdict.unexamined[]", "Verdict", false),
    ("verdict.stuck[]", "Verdict", false),
    ("verdict.waiting_behind[]", "Verdict", false),
    ("verdict.blocked_behind_processes[]", "Verdict", false),
    ("verdict.pool_starvations[]", "PoolStarvation", true),
    ("verdict.pool_starvations[].waits[]", "TaskWait", false),
    ("verdict.pool_starvations[].blocked_behind[]", "TaskWait", false),
    ("verdict.await_cycles[]", "AwaitCycle", true),
    ("verdict.await_cycles[].members[]", "AwaitCycle", false),
    ("verdict.await_cycles[].behind[]", "AwaitCycle", false),
    ("verdict.await_cycles[].edges[]", "AwaitCycle", false),
    ("verdict.process_cycles[]", "ProcessCycle", true),
    ("verdict.process_cycles[].waits[]", "ProcessCycle", false),
    ("deadlocks[]", "Deadlock", true),
    ("deadlocks[].signal_handler", "Deadlock", false),
    ("deadlocks[].edges[]", "Edge", true),
    ("deadlocks[].edges[].site", "Edge", false),
    ("processes[]", "Process", false),
    ("processes[].libc", "Process", false),
    ("processes[].tracer", "Process", false),
    ("processes[].container", "Process", false),
    ("processes[].asyncio", "asyncio", true),
    ("processes[].asyncio.threads[]", "asyncio", false),
    ("processes[].asyncio.threads[].tasks[]", "asyncio", false),
    ("processes[].asyncio.threads[].tasks[].frames[]", "asyncio", false),
    ("processes[].asyncio.threads[].tasks[].awaits", "asyncio", false),
    ("processes[].asyncio.threads[].tasks[].holds[]", "asyncio", false),
    ("processes[].asyncio.orphan_tasks[]", "asyncio", false),
    ("threads[]", "Thread", true),
    ("threads[].syscall", "Thread", false),
    ("threads[].timeout", "Thread", false),
    ("threads[].pool_wait", "Thread", false),
    ("threads[].left_running", "LeftRunning", true),
    ("threads[].frames[]", "Frame", false),
    ("threads[].blocked_on", "BlockedOn", true),
    ("threads[].blocked_on.site", "BlockedOn", false),
    ("threads[].holds[]", "Held", false),
    ("threads[].holds[].site", "BlockedOn", false),
    ("watch", "Watch", true),
    ("watch.threads[]", "Watch", false),
    ("watch.threads[].places[]", "Watch", false),
    ("watch.livelocks[]", "Watch", false),
    ("watch.starvations[]", "Watch", false),
    ("watch.cycles[]", "Watch", false),
    ("watch.cycles[].left[]", "Watch", false),
];

/// Checks every level of `doc` present; returns what disagrees, in words.
fn disagreements(doc: &Value, what: &str) -> Vec<String> {
    let secs = sections();
    let mut out = Vec::new();
    for &(path, title, strict) in LEVELS {
        let sec = secs
            .get(title)
            .unwrap_or_else(|| panic!("docs/json-schema.md has no section {title:?}"));
        for v in at(doc, path) {
            let Some(obj) = v.as_object() else { continue };
            for k in obj.keys() {
                if !sec.words.contains(k) && !sec.table.contains(k) {
                    out.push(format!(
                        "{what}: `{path}.{k}` is serialized, but section {title:?} of docs/json-schema.md does not name it"
                    ));
                }
            }
            if strict {
                for f in &sec.table {
                    if !obj.contains_key(f) {
                        out.push(format!(
                            "{what}: section {title:?} of docs/json-schema.md lists `{f}`, but `{path}` has no such field"
                        ));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn assert_agree(doc: &Value, what: &str) {
    let d = disagreements(doc, what);
    assert!(
        d.is_empty(),
        "docs/json-schema.md and the report's type disagree ({} problems):\n  {}",
        d.len(),
        d.join("\n  ")
    );
}

/// A real run: the demo's deadlock, confirmed over a short watch.
#[test]
fn schema_document_matches_a_real_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_lockdump"))
        .args(["demo", "--json", "--confirm", "300ms"])
        .output()
        .expect("run lockdump demo");
    assert_eq!(
        out.status.code(),
        Some(1),
        "lockdump demo --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("demo JSON");
    // The levels this run must fill, or the test proves less than it says.
    for path in [
        "verdict",
        "deadlocks[]",
        "deadlocks[].edges[]",
        "processes[]",
        "threads[]",
        "threads[].blocked_on",
        "threads[].holds[]",
        "threads[].frames[]",
        "threads[].syscall",
        "watch",
        "watch.threads[]",
        "watch.cycles[]",
    ] {
        assert!(!at(&doc, path).is_empty(), "the demo run has no `{path}`: {doc:#}");
    }
    assert_agree(&doc, "lockdump demo --json --confirm 300ms");
}

/// The parts a demo run leaves null or empty, from the report's own types.
#[test]
fn schema_document_matches_the_types_a_demo_leaves_empty() {
    use lockdump::report::asyncio::{
        JsonAsyncio, JsonAwaitCycle, JsonAwaitEdge, JsonAwaits, JsonLoopThread, JsonMember, JsonTask, JsonTaskFrame,
        JsonTaskHold,
    };
    use lockdump::report::document::{CoreSource, Source};
    use lockdump::report::json::{JsonPoolWait, JsonTaskWait, LeftRunning, Site, TimeoutJson, TracerJson};
    use lockdump::report::pools::JsonPoolStarvation;
    use lockdump::report::verdict::{
        JsonCycleWait, JsonProcessBehind, JsonProcessCycle, JsonStuck, JsonWaitingBehind, SignalReentry,
    };
    use lockdump::test_support::graph::PeerKind;
    use lockdump::test_support::runtimes::Confidence;
    use serde_json::to_value;

    let task_wait = || JsonTaskWait {
        tid: Tid(1),
        future: "0x1".into(),
        future_name: None,
        state: "PENDING".into(),
        queued_position: Some(0),
        run_by_tid: None,
    };
    let member = || JsonMember {
        kind: "task",
        pid: Pid(1),
        tid: Some(Tid(1)),
        address: Some("0x1".into()),
        name: "t".into(),
    };
    let task = |awaits| JsonTask {
        address: "0x1".into(),
        name: "t".into(),
        frames: vec![JsonTaskFrame {
            function: None,
            file: None,
            line: None,
        }],
        awaits,
        awaited_by: vec![],
        holds: vec![JsonTaskHold {
            lock: "0x2".into(),
            name: None,
            confidence: Confidence::Inferred,
            evidence: String::new(),
        }],
        timeout: None,
        chain_note: None,
    };
    let awaits = vec![
        JsonAwaits::Task { task: "0x1".into() },
        JsonAwaits::Future {
            future: "0x1".into(),
            type_name: "_GatheringFuture".into(),
            chained_from: None,
        },
        JsonAwaits::Primitive {
            primitive: lockdump::test_support::runtimes::cpython::asyncio::Primitive::Lock,
            address: "0x1".into(),
            name: None,
            how: "Lock.acquire".into(),
        },
        JsonAwaits::Sleep { seconds: None },
        JsonAwaits::NotSuspended { why: String::new() },
        JsonAwaits::Other { what: String::new() },
    ];
    let asyncio = JsonAsyncio {
        threads: vec![JsonLoopThread {
            tid: Tid(1),
            loop_address: None,
            loop_type: None,
            running_task: None,
            running_coroutine: None,
            tasks: awaits.into_iter().map(task).collect(),
            list_note: None,
        }],
        orphan_tasks: vec![],
        not_examined: None,
    };
    let doc = serde_json::json!({
        "source": to_value(Source::Core { cores: vec![CoreSource {
            file: "core".into(), pid: Pid(1), signal: Some(6), written_at: None, notes: vec![],
        }] }).unwrap(),
        "verdict": {
            "stuck": [to_value(JsonStuck { pid: Pid(1), whole_process: true, threads: vec![Tid(1)] }).unwrap()],
            "waiting_behind": [to_value(JsonWaitingBehind {
                pid: Pid(1), tid: Tid(1), waiters: vec![Tid(2)], holds: vec![], doing: None,
            }).unwrap()],
            "blocked_behind_processes": [to_value(JsonProcessBehind {
                pid: Pid(1), tid: Tid(1), waits_on: String::new(), pids: vec![Pid(2)], deadlock: 0,
            }).unwrap()],
            "pool_starvations": [to_value(JsonPoolStarvation {
                pid: Pid(1), executor: "0x1".into(), executor_type: "ThreadPoolExecutor".into(),
                executor_name: None, thread_name_prefix: None, max_workers: Some(1), workers: vec![Tid(1)],
                waits: vec![task_wait()], queued: vec![], blocked_behind: vec![task_wait()], text: String::new(),
            }).unwrap()],
            "process_cycles": [to_value(JsonProcessCycle {
                threads: vec![Tid(1), Tid(2)],
                pids: vec![Pid(1), Pid(2)],
                waits: vec![
                    JsonCycleWait::Process { waits_on: "child PID 2".into(), pid: Pid(2), ended_by: PeerKind::Children },
                    JsonCycleWait::Lock {
                        resource: String::new(),
                        resource_kind: lockdump::test_support::runtimes::ResourceKind::Mutex,
                        address: "0x1".into(),
                        name: None,
                        confidence: Confidence::Exact,
                    },
                ],
            }).unwrap()],
            "await_cycles": [to_value(JsonAwaitCycle {
                members: vec![member()],
                edges: vec![JsonAwaitEdge {
                    via: "lock", address: None, name: None, resource_kind: None,
                    confidence: Confidence::Exact, evidence: String::new(),
                }],
                confidence: Confidence::Exact,
                behind: vec![member()],
                breaks_by_timeout: None,
            }).unwrap()],
        },
        "deadlocks": [{
            "signal_handler": to_value(SignalReentry {
                handler: String::new(), interrupted: String::new(), interrupted_caller: None, call: None,
            }).unwrap(),
            "edges": [],
        }],
        "processes": [{
            "tracer": to_value(TracerJson { pid: Pid(1), name: "gdb" }).unwrap(),
            "asyncio": to_value(&asyncio).unwrap(),
        }],
        "threads": [{
            "left_running": to_value(LeftRunning {
                call: "epoll_wait", if_socket_timeout: false, cut_short: false, stack_consistent: true,
                reason: String::new(),
            }).unwrap(),
            "timeout": to_value(TimeoutJson { in_ms: 1, relative: true, clock: None, text: String::new() }).unwrap(),
            "pool_wait": to_value(JsonPoolWait { executor: "0x1".into(), wait: task_wait() }).unwrap(),
            "blocked_on": { "site": to_value(Site { function: None, file: None, line: None }).unwrap() },
        }],
    });
    // Only the levels built here: the hand-made parents are not checked
    // strictly (they carry only the children under test).
    let secs = sections();
    let mut problems = Vec::new();
    for &(path, title, strict) in LEVELS {
        let parent_only = matches!(path, "" | "verdict" | "deadlocks[]" | "processes[]" | "threads[]")
            || path == "threads[].blocked_on";
        if parent_only {
            continue;
        }
        let sec = &secs[title];
        for v in at(&doc, path) {
            let Some(obj) = v.as_object() else { continue };
            for k in obj.keys() {
                if !sec.words.contains(k) && !sec.table.contains(k) {
                    problems.push(format!("`{path}.{k}` is not named in section {title:?}"));
                }
            }
            if strict {
                for f in &sec.table {
                    if !obj.contains_key(f) {
                        problems.push(format!(
                            "section {title:?} lists `{f}`, which `{path}` does not serialize"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/json-schema.md and the report's types disagree:\n  {}",
        problems.join("\n  ")
    );
}
