//! asyncio end to end: tasks, await cycles and asyncio.Lock cycles on
//! Debian sid's CPython 3.14 and 3.15 (the first with a task graph readable
//! from outside), CPython's own `python -m asyncio ps` / `pstree` as the
//! oracle, a healthy 1000-task service as the control, and the honest
//! "not examined" (exit 3) on 3.11-3.13.
//!
//! Every check reads `lockdump -p PID --json` and compares it with the
//! fixture's READY line: task addresses (`hex(id(task))`) by task name, lock
//! addresses by variable name, the source line each task is suspended at.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::{python_fixture, python_interpreters, run_lockdump, Fixture, Interpreter};
use serde_json::Value;

/// The interpreters with the task graph (3.14, 3.15) and those without.
fn with_task_graph() -> Vec<&'static Interpreter> {
    python_interpreters()
        .iter()
        .filter(|p| p.label.starts_with("3.14") || p.label.starts_with("3.15"))
        .collect()
}

fn without_task_graph() -> Vec<&'static Interpreter> {
    python_interpreters()
        .iter()
        .filter(|p| !(p.label.starts_with("3.14") || p.label.starts_with("3.15")))
        .collect()
}

/// Run `check` on each interpreter in turn, naming the one that failed.
fn each(pythons: &[&Interpreter], check: impl Fn(&Interpreter)) {
    assert!(
        !pythons.is_empty(),
        "no interpreter to run on (scripts/interpreters.sh)"
    );
    for py in pythons {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(py)));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("[python {} at {}] {msg}", py.label, py.path.display());
        }
    }
}

fn dump(pid: i32) -> (i32, Value) {
    let d = common::dump(common::TargetKind::Live, &[pid], &[]);
    (d.code().expect("lockdump exit code"), d.json)
}

fn hex(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a hex string"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// READY's `tasks`: task name -> address.
fn ready_tasks(fx: &Fixture) -> BTreeMap<String, u64> {
    fx.ready.raw["tasks"]
        .as_object()
        .expect("READY has tasks")
        .iter()
        .map(|(k, v)| (k.clone(), hex(v)))
        .collect()
}

/// Every task lockdump reported for the process, by address.
fn json_tasks(json: &Value) -> BTreeMap<u64, Value> {
    let a = &json["processes"][0]["asyncio"];
    assert!(a.is_object(), "processes[0].asyncio is {a}");
    a["threads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["tasks"].as_array().unwrap().iter())
        .chain(a["orphan_tasks"].as_array().unwrap())
        .map(|t| (hex(&t["address"]), t.clone()))
        .collect()
}

/// The await cycles as (task names in cycle order rotated to start at the
/// least name, edge kinds) for comparison.
fn cycles(json: &Value) -> Vec<Value> {
    json["verdict"]["await_cycles"].as_array().cloned().unwrap_or_default()
}

fn start(py: &Interpreter, name: &str) -> Fixture {
    let fx = Fixture::spawn(python_fixture(&py.path, name, &[]));
    fx.wait_all_blocked();
    fx
}

/// The cycle audit-task -> ledger-task -> audit-task, with audit-task
/// awaiting through `gather`, `wait_for` (with a timeout: reported as ending
/// the cycle) and inside a `TaskGroup`.
#[test]
fn await_cycle_through_gather_is_a_deadlock_with_its_tasks_and_lines() {
    for mode in ["gather", "wait_for", "taskgroup"] {
        each(&with_task_graph(), |py| await_cycle(py, mode));
    }
}

fn await_cycle(py: &Interpreter, mode: &str) {
    {
        let fx = Fixture::spawn(python_fixture(&py.path, "asyncio_await_cycle.py", &[mode]));
        fx.wait_all_blocked();
        let tasks = ready_tasks(&fx);
        let (code, json) = dump(fx.pid());
        assert_eq!(code, 1, "exit code: {}", json["verdict"]["headline"]);
        assert_eq!(json["schema_version"], 7);
        assert_eq!(json["verdict"]["kind"], "deadlock");
        assert_eq!(json["verdict"]["deadlock"], true);
        let cs = cycles(&json);
        assert_eq!(cs.len(), 1, "one await cycle: {cs:?}");
        let c = &cs[0];
        let members: BTreeMap<String, u64> = c["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t["kind"], "task", "{t}");
                (t["name"].as_str().unwrap().to_string(), hex(&t["address"]))
            })
            .collect();
        let want: BTreeMap<String, u64> = ["audit-task", "ledger-task"]
            .iter()
            .map(|n| (n.to_string(), tasks[*n]))
            .collect();
        assert_eq!(members, want, "cycle members");
        for t in c["members"].as_array().unwrap() {
            assert_eq!(t["tid"], fx.tid("main"), "the loop thread runs {t}");
        }
        for e in c["edges"].as_array().unwrap() {
            assert_eq!(e["via"], "task_done");
            assert_eq!(e["confidence"], "exact");
        }
        assert_eq!(c["confidence"], "exact");
        let behind: Vec<u64> = c["behind"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| hex(&t["address"]))
            .collect();
        assert_eq!(behind, vec![tasks["Task-1"]], "Task-1 (main) awaits both");
        // Each task: its name, the line it is suspended at, what it awaits.
        let all = json_tasks(&json);
        let lines = &fx.ready.raw["task_lines"];
        for (name, addr) in &tasks {
            let t = all
                .get(addr)
                .unwrap_or_else(|| panic!("task {name} ({addr:#x}) missing: {all:?}"));
            assert_eq!(t["name"], name.as_str());
            let top = t["frames"].as_array().unwrap().last().expect("frames");
            assert_eq!(top["line"], lines[name], "{name}'s outermost coroutine line: {t}");
            assert!(top["file"].as_str().unwrap().ends_with("asyncio_await_cycle.py"), "{t}");
        }
        assert_eq!(all[&tasks["ledger-task"]]["awaits"]["kind"], "task");
        assert_eq!(hex(&all[&tasks["ledger-task"]]["awaits"]["task"]), tasks["audit-task"]);
        let audit = &all[&tasks["audit-task"]]["awaits"];
        if mode == "gather" {
            assert_eq!(audit["kind"], "future", "{mode}");
            assert_eq!(audit["type"], "_GatheringFuture");
        } else {
            assert_eq!(audit["kind"], "task", "{mode}: {audit}");
            assert_eq!(hex(&audit["task"]), tasks["ledger-task"]);
        }
        if mode == "wait_for" {
            assert_eq!(
                c["breaks_by_timeout"],
                "task \"audit-task\": inside asyncio.wait_for(..., timeout=3600)"
            );
        } else {
            assert_eq!(c["breaks_by_timeout"], Value::Null, "{mode}");
        }
        // The text report names the cycle in its headline.
        let out = run_lockdump(&["-p", &fx.pid().to_string()]);
        let text = String::from_utf8_lossy(&out.stdout);
        let head = text.lines().next().unwrap_or_default();
        assert!(
            head == "Found 1 deadlock: 1 asyncio await cycle: audit-task → ledger-task → audit-task"
                || head == "Found 1 deadlock: 1 asyncio await cycle: ledger-task → audit-task → ledger-task",
            "headline: {head}"
        );
        assert_eq!(out.status.code(), Some(1));
    }
}

#[test]
fn asyncio_lock_abba_is_a_deadlock_with_inferred_holders() {
    each(&with_task_graph(), |py| {
        let fx = start(py, "asyncio_lock_abba.py");
        let tasks = ready_tasks(&fx);
        let (lock_a, lock_b) = (fx.lock("lock_a"), fx.lock("lock_b"));
        let (code, json) = dump(fx.pid());
        assert_eq!(code, 1, "{}", json["verdict"]["headline"]);
        let cs = cycles(&json);
        assert_eq!(cs.len(), 1, "{cs:?}");
        let c = &cs[0];
        assert_eq!(c["confidence"], "inferred", "asyncio.Lock records no owner");
        // task-a waits for lock_b (held by task-b), task-b for lock_a.
        let ts = c["members"].as_array().unwrap();
        let es = c["edges"].as_array().unwrap();
        let mut seen = BTreeSet::new();
        for (i, t) in ts.iter().enumerate() {
            let name = t["name"].as_str().unwrap();
            assert_eq!(hex(&t["address"]), tasks[name]);
            let (want_lock, want_name, holder) = match name {
                "task-a" => (lock_b, "lock_b", "task-b"),
                "task-b" => (lock_a, "lock_a", "task-a"),
                other => panic!("unexpected cycle member {other}"),
            };
            assert_eq!(es[i]["via"], "lock");
            assert_eq!(hex(&es[i]["address"]), want_lock, "{name}'s edge");
            assert_eq!(es[i]["name"], want_name);
            assert_eq!(es[i]["confidence"], "inferred");
            assert_eq!(ts[(i + 1) % ts.len()]["name"], holder);
            seen.insert(name);
        }
        assert_eq!(seen.len(), 2);
        let all = json_tasks(&json);
        let a = &all[&tasks["task-a"]];
        assert_eq!(a["awaits"]["kind"], "primitive");
        assert_eq!(a["awaits"]["primitive"], "lock");
        assert_eq!(hex(&a["awaits"]["address"]), lock_b);
        let holds: Vec<u64> = a["holds"].as_array().unwrap().iter().map(|h| hex(&h["lock"])).collect();
        assert_eq!(holds, vec![lock_a]);
        let top = a["frames"].as_array().unwrap().last().unwrap();
        assert_eq!(top["line"], fx.ready.raw["task_lines"]["task-a"]);
    });
}

/// A service with 1000 tasks sleeping, waiting on queues and an event,
/// awaiting children and contending for a lock (one task takes it every
/// millisecond, so the loop is busy while it is read): never a deadlock.
#[test]
fn healthy_thousand_task_service_is_not_a_deadlock() {
    const DUMPS: usize = 20;
    each(&with_task_graph(), |py| {
        let fx = Fixture::spawn(python_fixture(&py.path, "asyncio_healthy.py", &[]));
        let want = fx.ready.raw["count"].as_u64().expect("READY count") as usize;
        for run in 0..DUMPS {
            let (code, json) = dump(fx.pid());
            assert_eq!(
                code, 0,
                "run {run}: {} {:?}",
                json["verdict"]["headline"], json["verdict"]["await_cycles"]
            );
            assert!(cycles(&json).is_empty());
            let n = json_tasks(&json).len();
            // The locker tasks finish nothing, the producer only feeds queues:
            // the set of pending tasks is the one READY counted.
            assert_eq!(n, want, "run {run}: tasks read");
            let all = json_tasks(&json);
            let sleepers: Vec<&Value> = all
                .values()
                .filter(|t| t["name"].as_str().unwrap().starts_with("sleeper-"))
                .collect();
            assert_eq!(sleepers.len(), 400);
            for t in sleepers {
                assert_eq!(
                    t["awaits"],
                    serde_json::json!({"kind": "sleep", "seconds": 3600.0}),
                    "{t}"
                );
            }
            let consumers = all
                .values()
                .filter(|t| t["name"].as_str().unwrap().starts_with("consumer-"))
                .filter(|t| t["awaits"]["kind"] == "primitive" && t["awaits"]["primitive"] == "queue")
                .filter(|t| t["awaits"]["name"] == "q" && t["awaits"]["how"] == "asyncio.Queue.get")
                .count();
            // A consumer handed an item runs its loop again: at most a few are between waits.
            assert!(
                consumers >= 390,
                "run {run}: {consumers} of 400 consumers seen in Queue.get"
            );
        }
    });
}

/// `python -m asyncio ps PID` (CPython's own reader) lists every task with
/// every awaiter: each must be in lockdump's JSON, with the same name and
/// awaited_by; `pstree` reports the cycle lockdump reports.
#[test]
fn agrees_with_cpythons_own_asyncio_ps_and_pstree() {
    each(&with_task_graph(), |py| {
        for fixture in ["asyncio_await_cycle.py", "asyncio_lock_abba.py"] {
            let fx = start(py, fixture);
            let (_, json) = dump(fx.pid());
            let all = json_tasks(&json);
            let ps = Command::new(&py.path)
                .args(["-m", "asyncio", "ps", &fx.pid().to_string()])
                .output()
                .expect("python -m asyncio ps");
            let text = String::from_utf8_lossy(&ps.stdout);
            let mut rows = 0;
            for line in text.lines().skip(2) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if cols.len() < 4 || !cols[1].starts_with("0x") {
                    continue;
                }
                rows += 1;
                let task = u64::from_str_radix(&cols[1][2..], 16).unwrap();
                let t = all
                    .get(&task)
                    .unwrap_or_else(|| panic!("{fixture}: ps lists task {task:#x} ({line}); lockdump has {all:?}"));
                assert_eq!(t["name"], cols[2], "{fixture}: {line}");
                let awaiter = cols.last().unwrap();
                let awaiter = u64::from_str_radix(awaiter.trim_start_matches("0x"), 16).unwrap();
                if awaiter != 0 {
                    let by: Vec<u64> = t["awaited_by"].as_array().unwrap().iter().map(hex).collect();
                    assert!(
                        by.contains(&awaiter),
                        "{fixture}: ps says {line}; lockdump's awaited_by {by:x?}"
                    );
                }
            }
            assert!(rows >= 3, "{fixture}: python -m asyncio ps printed too little:\n{text}");
            if fixture == "asyncio_await_cycle.py" {
                let tree = Command::new(&py.path)
                    .args(["-m", "asyncio", "pstree", &fx.pid().to_string()])
                    .output()
                    .expect("python -m asyncio pstree");
                let all_out =
                    String::from_utf8_lossy(&tree.stdout).to_string() + &String::from_utf8_lossy(&tree.stderr);
                let line = all_out
                    .lines()
                    .find(|l| l.starts_with("cycle: "))
                    .unwrap_or_else(|| panic!("pstree printed no cycle:\n{all_out}"));
                let theirs: BTreeSet<&str> = line["cycle: ".len()..].split(" → ").collect();
                let ours: BTreeSet<String> = cycles(&json)[0]["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["name"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(theirs, ours.iter().map(String::as_str).collect(), "pstree: {line}");
            }
        }
    });
}

/// 3.11-3.13 keep no task graph readable from outside: a thread running an
/// event loop makes the verdict incomplete (exit 3), saying why, never a
/// clean "no deadlock" (exit 0).
#[test]
fn before_314_an_event_loop_is_reported_as_not_examined() {
    each(&without_task_graph(), |py| {
        let fx = start(py, "asyncio_await_cycle.py");
        let (code, json) = dump(fx.pid());
        assert_eq!(code, 3, "{}", json["verdict"]["headline"]);
        assert_eq!(json["verdict"]["kind"], "incomplete");
        let lt = &json["processes"][0]["asyncio"]["threads"][0];
        assert_eq!(lt["tid"], fx.tid("main"), "the loop's thread is named: {lt}");
        assert_eq!(lt["running_coroutine"], Value::Null, "the loop waits for events: {lt}");
        assert_eq!(lt["tasks"], serde_json::json!([]));
        let un = json["verdict"]["unexamined"].as_array().unwrap();
        assert!(
            un.iter().any(|u| u["part"] == "asyncio"
                && u["why"].as_str().unwrap().contains("3.14 and later")
                && u["why"].as_str().unwrap().contains(&fx.tid("main").to_string())),
            "{un:?}"
        );
    });
}

/// A worker holding a threading.Lock waits in
/// `run_coroutine_threadsafe(...).result()` while the loop's thread, inside a
/// task, blocks on that lock: one cycle across the thread and the loop, on
/// every interpreter (the loop is found from its thread's `run_forever`
/// frame; no task graph needed).
#[test]
fn thread_and_event_loop_cycle_is_one_deadlock_on_every_interpreter() {
    each(&python_interpreters().iter().collect::<Vec<_>>(), |py| {
        let fx = start(py, "asyncio_mixed_cycle.py");
        let (main, worker) = (fx.tid("main"), fx.tid("worker"));
        let (code, json) = dump(fx.pid());
        assert_eq!(code, 1, "{}", json["verdict"]["headline"]);
        let ds = json["deadlocks"].as_array().unwrap();
        assert_eq!(ds.len(), 1, "{ds:?}");
        let d = &ds[0];
        let mut tids: Vec<i64> = d["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        tids.sort_unstable();
        let mut want = vec![main as i64, worker as i64];
        want.sort_unstable();
        assert_eq!(tids, want);
        for e in d["edges"].as_array().unwrap() {
            if e["from_tid"] == main {
                assert_eq!(e["kind"], "py_lock");
                assert_eq!(hex(&e["address"]), fx.lock("shared"));
                assert_eq!(e["name"], "shared");
                assert_eq!(e["to_tid"], worker);
                assert_eq!(e["confidence"], "exact");
            } else {
                assert_eq!(e["from_tid"], worker);
                assert_eq!(e["kind"], "py_future");
                assert_eq!(e["name"], "future");
                assert_eq!(e["to_tid"], main);
                assert_eq!(e["confidence"], "inferred");
                assert!(e["evidence"].as_str().unwrap().contains("_ready"), "{e}");
                assert_eq!(e["site"]["line"], fx.ready.lines["worker"]);
            }
        }
        // Every version names the loop's thread and the coroutine it is stepping.
        let lt = &json["processes"][0]["asyncio"]["threads"][0];
        assert_eq!(lt["tid"], main, "{lt}");
        assert_eq!(
            lt["running_coroutine"],
            format!("main (asyncio_mixed_cycle.py:{})", fx.ready.lines["main"]),
            "{lt}"
        );
        assert!(lt["loop_address"].is_string(), "{lt}");
        // The text report says the loop is blocked, on 3.14+ where its tasks are read.
        if py.label.starts_with("3.14") || py.label.starts_with("3.15") {
            let out = run_lockdump(&["-p", &fx.pid().to_string()]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("The loop is blocked: its thread waits for Python Lock shared"),
                "{text}"
            );
        }
    });
}

/// Control: threads waiting for coroutines the loop runs (already started
/// as tasks, so the future is found through its chain to the task), while
/// the loop's thread idles: edges to the loop's thread, no cycle, exit 0.
#[test]
fn threads_waiting_for_an_idle_loop_are_not_a_deadlock() {
    each(&python_interpreters().iter().collect::<Vec<_>>(), |py| {
        let fx = start(py, "asyncio_threadsafe_healthy.py");
        let main = fx.tid("main");
        for run in 0..5 {
            let (code, json) = dump(fx.pid());
            assert!(
                code == 0 || (code == 3 && !(py.label.starts_with("3.14") || py.label.starts_with("3.15"))),
                "run {run}: exit {code}: {}",
                json["verdict"]["headline"]
            );
            assert!(json["deadlocks"].as_array().unwrap().is_empty());
            for name in ["sleeper-client", "event-client"] {
                let t = json["threads"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["tid"] == fx.tid(name))
                    .unwrap_or_else(|| panic!("no thread {name}"));
                let b = &t["blocked_on"];
                assert_eq!(b["kind"], "py_future", "{name}: {b}");
                assert_eq!(b["owner_tid"], main, "{name}: {b}");
                assert_eq!(b["confidence"], "inferred");
                assert!(b["evidence"].as_str().unwrap().contains("chained"), "{b}");
            }
        }
    });
}

/// A task awaits `run_in_executor` work whose pool thread waits in
/// `run_coroutine_threadsafe(...).result()` for a task that awaits the
/// first: one cycle through the task graph and the thread graph, while the
/// loop's thread idles in epoll_wait (so no thread cycle exists).
#[test]
fn task_executor_thread_cycle_is_one_deadlock() {
    each(&with_task_graph(), |py| {
        let fx = start(py, "asyncio_executor_cycle.py");
        let tasks = ready_tasks(&fx);
        let worker = fx.tid("worker");
        let (code, json) = dump(fx.pid());
        assert_eq!(code, 1, "{}", json["verdict"]["headline"]);
        assert!(json["deadlocks"].as_array().unwrap().is_empty(), "no thread-only cycle");
        let cs = cycles(&json);
        assert_eq!(cs.len(), 1, "{cs:?}");
        let c = &cs[0];
        let ms = c["members"].as_array().unwrap();
        let es = c["edges"].as_array().unwrap();
        assert_eq!(ms.len(), 3, "{ms:?}");
        // Rotate to start at audit-task: audit-task -> worker -> fetch-task.
        let start = ms
            .iter()
            .position(|m| m["name"] == "audit-task")
            .expect("audit-task in the cycle");
        let at = |k: usize| (&ms[(start + k) % 3], &es[(start + k) % 3]);
        let (m0, e0) = at(0);
        assert_eq!(hex(&m0["address"]), tasks["audit-task"]);
        assert_eq!(e0["via"], "executor");
        assert_eq!(e0["confidence"], "exact");
        let (m1, e1) = at(1);
        assert_eq!(
            (m1["kind"].as_str(), m1["tid"].as_i64()),
            (Some("thread"), Some(worker as i64))
        );
        assert_eq!(m1["name"], "worker");
        assert_eq!(e1["via"], "task_result");
        assert_eq!(e1["confidence"], "inferred");
        let (m2, e2) = at(2);
        assert_eq!(hex(&m2["address"]), tasks["fetch-task"]);
        assert_eq!(e2["via"], "task_done");
        assert_eq!(c["confidence"], "inferred");
        let behind: Vec<u64> = c["behind"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| hex(&t["address"]))
            .collect();
        assert_eq!(behind, vec![tasks["Task-1"]]);
        assert!(
            json["verdict"]["waiting_behind"].as_array().unwrap().is_empty(),
            "the worker waits for a task of the cycle, not behind the idle loop thread: {}",
            json["verdict"]["waiting_behind"]
        );
    });
}
