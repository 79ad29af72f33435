//! End to end on Python: the lockdump binary against every Python fixture on
//! every interpreter (`common::for_each_python`: pyenv 3.11, Debian's
//! stripped 3.11, 3.12, 3.13 and the free-threaded 3.13t).
//!
//! Every check reads `lockdump -p PID --json` (the interface CI jobs parse)
//! and compares it with what the fixture itself printed on its READY line:
//! native thread ids by Python thread name, object addresses by variable
//! name, and the source line each thread blocks on (found from the
//! `@line:KEY` markers of the fixture's source). Asserted: the exit code, the
//! cycle's TIDs in cycle order (up to rotation), the Python names and kinds of
//! the locks, the owners and how sure lockdump is of them, every waiting
//! thread's Python `file:line`, the Python thread names, and which frames are
//! shown with and without `--native`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use common::{
    build_shared_lib, for_each_python, marked_line, python_fixture, python_source, run_lockdump, Fixture, Interpreter,
};
use serde_json::Value;

// ---- running lockdump -------------------------------------------------------

/// One `lockdump -p PID --json` run.
struct Dump {
    code: i32,
    json: Value,
    /// What the failure messages show: a line per thread.
    brief: String,
}

/// Run lockdump on the fixture with `--json` and `extra` arguments.
fn dump(fx: &Fixture, extra: &[&str]) -> Dump {
    let d = common::dump(common::TargetKind::Live, &[fx.pid()], extra);
    let code = d
        .code()
        .unwrap_or_else(|| panic!("lockdump {extra:?} on {} died: {:?}", fx.pid(), d.out.status));
    let json = d.json;
    let brief = brief(&json);
    Dump { code, json, brief }
}

/// The text report (no `--json`), with its exit code.
fn dump_text(fx: &Fixture) -> (i32, String) {
    let out = run_lockdump(&["-p", &fx.pid().to_string()]);
    let code = out.status.code().expect("lockdump exit code");
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One line per thread: what it waits on, who owns it, what it holds.
fn brief(json: &Value) -> String {
    let mut out = format!("verdict: {}\n", json["verdict"]["headline"]);
    for d in json["deadlocks"].as_array().into_iter().flatten() {
        out += &format!("  cycle {} {}\n", d["threads"], d["resource_names"]);
    }
    for t in json["threads"].as_array().into_iter().flatten() {
        let b = &t["blocked_on"];
        let top = &t["frames"][0];
        out += &format!(
            "  {} {:?}: waits {} {} owner {} ({}) at {}:{} | top {}:{} | holds {} | in {}\n",
            t["tid"],
            t["python_name"].as_str().unwrap_or("-"),
            b["kind"],
            b["name"],
            b["owner_tid"],
            b["confidence"],
            b["site"]["function"],
            b["site"]["line"],
            top["function"],
            top["line"],
            t["holds"]
                .as_array()
                .map(|h| h
                    .iter()
                    .map(|h| format!("{}:{}({})", h["kind"], h["name"], h["confidence"]))
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default(),
            t["blocked_in"],
        );
    }
    out
}

impl Dump {
    fn fail(&self, msg: impl std::fmt::Display) -> ! {
        panic!("{msg}\nlockdump exit {}, report:\n{}", self.code, self.brief)
    }

    fn find_thread(&self, tid: i32) -> Option<&Value> {
        self.json["threads"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["tid"] == tid))
    }

    fn thread(&self, tid: i32) -> &Value {
        self.find_thread(tid)
            .unwrap_or_else(|| self.fail(format_args!("no thread {tid} in the report")))
    }

    fn deadlocks(&self) -> &[Value] {
        self.json["deadlocks"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_else(|| self.fail("no deadlocks array"))
    }

    fn blocked_behind(&self) -> Vec<i32> {
        self.json["verdict"]["blocked_behind"]
            .as_array()
            .unwrap_or_else(|| self.fail("no verdict.blocked_behind"))
            .iter()
            .map(|v| v.as_i64().expect("tid") as i32)
            .collect()
    }

    /// Stuck (issue 20): exit 1, no cycle, every thread of the process
    /// asleep for good.
    fn assert_stuck(&self, pid: i32) {
        let v = &self.json["verdict"];
        if self.code != 1 || v["kind"] != "stuck" || !self.deadlocks().is_empty() {
            self.fail(format_args!("expected stuck (exit 1): {v}"));
        }
        assert_eq!(v["stuck"][0]["pid"], pid, "{v}");
        assert_eq!(v["stuck"][0]["whole_process"], true, "{v}");
        for t in self.json["threads"].as_array().expect("threads") {
            assert_eq!(t["asleep_for_good"], true, "{t}");
        }
    }

    /// Exit 0, no cycle.
    fn assert_no_deadlock(&self) {
        if self.code != 0 || !self.deadlocks().is_empty() || self.json["verdict"]["deadlock"] != false {
            self.fail("expected no deadlock (exit 0)");
        }
        let h = self.json["verdict"]["headline"].as_str().unwrap_or_default();
        assert!(
            h == "No deadlock found." || h.starts_with("No deadlock found; "),
            "headline: {h}"
        );
    }
}

// ---- what a fixture leads us to expect --------------------------------------

/// The TID READY gives for a thread name.
fn tid(fx: &Fixture, name: &str) -> i32 {
    fx.tid(name)
}

/// READY's `main` is `threading`'s "MainThread".
fn python_name(name: &str) -> &str {
    if name == "main" {
        "MainThread"
    } else {
        name
    }
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// The line READY gives for `thread`, which must be the `@line:KEY` marker.
fn ready_line(fx: &Fixture, file: &str, thread: &str, key: &str) -> u32 {
    let want = marked_line(&python_source(file), key);
    let got = fx.ready.lines.get(thread).copied();
    assert_eq!(got, Some(want), "READY lines.{thread} vs @line:{key} of {file}");
    want
}

fn is_file(v: &Value, file: &str) -> bool {
    v.as_str()
        .is_some_and(|f| Path::new(f).file_name() == Some(file.as_ref()))
}

/// `site` (or a frame) is `file:line`.
fn assert_at(d: &Dump, what: &str, site: &Value, file: &str, line: u32) {
    if !is_file(&site["file"], file) || site["line"] != line {
        d.fail(format_args!("{what}: expected {file}:{line}, got {site}"));
    }
}

/// Default output: the Python threads show Python frames only, innermost
/// first, and each has its `threading` name.
fn assert_python_frames_only(d: &Dump, fx: &Fixture) {
    for (name, &t) in &fx.ready.threads {
        let th = d.thread(t);
        if th["python_name"] != python_name(name) {
            d.fail(format_args!("thread {t}: python_name {} != {name}", th["python_name"]));
        }
        let frames = th["frames"].as_array().expect("frames");
        if frames.is_empty() || frames.iter().any(|f| f["kind"] != "python") {
            d.fail(format_args!(
                "{name}: default output must show Python frames only: {frames:?}"
            ));
        }
    }
}

/// The owner named by a wait.
fn owner(b: &Value) -> Option<i32> {
    b["owner_tid"].as_i64().map(|t| t as i32)
}

/// One edge of an expected cycle: `thread` waits (on its line `key`) for a
/// lock READY calls `lock` (`None`: the GIL, which READY cannot name),
/// reported with `kind` and name `shown`; the next edge's thread holds it.
#[derive(Clone, Copy)]
struct Edge {
    thread: &'static str,
    key: &'static str,
    lock: Option<&'static str>,
    kind: &'static str,
    shown: &'static str,
    /// The marker on the holder's `with` statement, when the test checks
    /// that the evidence names it.
    held_at: Option<&'static str>,
    /// The marker on the holder's explicit `acquire()`: the owner is then
    /// inferred from the bytecode, and the evidence names that line.
    acquired_at: Option<&'static str>,
}

const fn edge(thread: &'static str, key: &'static str, lock: &'static str, kind: &'static str) -> Edge {
    Edge {
        thread,
        key,
        lock: Some(lock),
        kind,
        shown: lock,
        held_at: None,
        acquired_at: None,
    }
}

/// The evidence an exact owner of this kind must come with.
fn evidence_for(kind: &str) -> &'static str {
    match kind {
        "py_lock" => "`with` block from line ",
        "py_r_lock" => "RLock owner = thread ident ",
        "gil" => "GIL locked, last_holder = PyThreadState ",
        "mutex" => "__owner = ",
        other => panic!("no evidence rule for {other}"),
    }
}

/// Exactly one deadlock: `edges` in cycle order (up to rotation), every owner
/// exact (inferred where the edge says the holder used an explicit
/// `acquire()`, and then so is the cycle); each waiting thread at its marked
/// line (the `site` of its wait and its innermost Python frame); each owner
/// listing the lock among its holds, as sure as the edge.
fn assert_cycle(d: &Dump, fx: &Fixture, file: &str, edges: &[Edge]) {
    if d.code != 1 || d.json["verdict"]["deadlock"] != true || d.deadlocks().len() != 1 {
        d.fail("expected exactly one deadlock (exit 1)");
    }
    let cycle = &d.deadlocks()[0];
    let least = if edges.iter().any(|e| e.acquired_at.is_some()) {
        "inferred"
    } else {
        "exact"
    };
    assert_eq!(cycle["confidence"], least, "cycle confidence");
    let want: Vec<i32> = edges.iter().map(|e| tid(fx, e.thread)).collect();
    let got: Vec<i32> = cycle["threads"]
        .as_array()
        .expect("cycle threads")
        .iter()
        .map(|v| v.as_i64().expect("tid") as i32)
        .collect();
    let Some(start) = got
        .iter()
        .position(|&t| t == want[0])
        .filter(|_| got.len() == want.len())
    else {
        d.fail(format_args!("cycle {got:?}, expected {want:?} (up to rotation)"));
    };
    let rotated: Vec<i32> = got[start..].iter().chain(&got[..start]).copied().collect();
    if rotated != want {
        d.fail(format_args!("cycle {got:?}, expected {want:?} (up to rotation)"));
    }
    let json_edges = cycle["edges"].as_array().expect("edges");
    for (i, e) in edges.iter().enumerate() {
        let waiter = tid(fx, e.thread);
        let holder = tid(fx, edges[(i + 1) % edges.len()].thread);
        let line = ready_line(fx, file, e.thread, e.key);
        let what = format!("{} waits for {}", e.thread, e.shown);
        let sure = if e.acquired_at.is_some() { "inferred" } else { "exact" };

        // The thread's own view.
        let th = d.thread(waiter);
        let b = &th["blocked_on"];
        if b["kind"] != e.kind || b["name"] != e.shown || owner(b) != Some(holder) || b["confidence"] != sure {
            d.fail(format_args!("{what} ({}) held by {holder}, {sure}: got {b}", e.kind));
        }
        if let Some(lock) = e.lock {
            assert_eq!(b["address"], hex(fx.lock(lock)), "{what}: address of {lock}");
        }
        let evidence = b["evidence"].as_str().unwrap_or_default();
        let rule = match e.acquired_at {
            Some(key) => format!(
                ".acquire() at line {} and no release() of it since (replayed from the frame's bytecode)",
                marked_line(&python_source(file), key)
            ),
            None => evidence_for(e.kind).to_string(),
        };
        if !evidence.contains(&rule) {
            d.fail(format_args!("{what}: evidence {evidence:?} must contain {rule:?}"));
        }
        if let Some(key) = e.held_at {
            let with_line = marked_line(&python_source(file), key);
            if !evidence.contains(&format!("`with` block from line {with_line} open in ")) {
                d.fail(format_args!(
                    "{what}: evidence must name the `with` at line {with_line}: {evidence:?}"
                ));
            }
        }
        assert_at(d, &format!("{what}: site"), &b["site"], file, line);
        let innermost = th["frames"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["kind"] == "python"))
            .unwrap_or_else(|| d.fail(format_args!("{what}: no Python frame")));
        assert_at(d, &format!("{what}: innermost Python frame"), innermost, file, line);

        // The holder lists it, as sure as the edge.
        let holds = d.thread(holder)["holds"].as_array().expect("holds");
        let held = holds.iter().find(|h| {
            h["kind"] == e.kind
                && match e.lock {
                    Some(lock) => h["address"] == hex(fx.lock(lock)),
                    None => true,
                }
        });
        match held {
            Some(h) if h["confidence"] == sure => {}
            _ => d.fail(format_args!("{what}: holder {holder} must hold it ({sure}): {holds:?}")),
        }

        // The cycle's edge says the same.
        let je = &json_edges[(start + i) % edges.len()];
        let same = je["from_tid"] == waiter
            && je["to_tid"] == holder
            && je["kind"] == e.kind
            && je["name"] == e.shown
            && je["confidence"] == sure
            && je["address"] == b["address"];
        if !same {
            d.fail(format_args!("{what}: cycle edge {je}"));
        }
        assert_at(d, &format!("{what}: edge site"), &je["site"], file, line);
    }
}

/// `main` (outside the cycle) joins `joined`, exactly, at its `main` marker,
/// and the verdict lists it as blocked behind the cycle when there is one.
fn assert_main_joins(d: &Dump, fx: &Fixture, file: &str, joined: &str, behind_cycle: bool) {
    let main = tid(fx, "main");
    let b = &d.thread(main)["blocked_on"];
    if b["kind"] != "thread" || b["name"] != joined || owner(b) != Some(tid(fx, joined)) || b["confidence"] != "exact" {
        d.fail(format_args!("main must join {joined} (exact owner): {b}"));
    }
    assert_eq!(b["how"], "threading.Thread.join");
    assert_at(d, "main's join", &b["site"], file, ready_line(fx, file, "main", "main"));
    assert_eq!(
        d.blocked_behind().contains(&main),
        behind_cycle,
        "main blocked behind the cycle"
    );
}

/// The verdict reduced to names (thread names, READY's lock names, lines in
/// the fixture's own file), to compare interpreters with each other.
fn normalized(d: &Dump, fx: &Fixture, file: &str) -> String {
    let names: BTreeMap<i64, &str> = fx.ready.threads.iter().map(|(n, &t)| (t as i64, n.as_str())).collect();
    let locks: BTreeMap<String, &str> = fx.ready.locks.iter().map(|(n, &a)| (hex(a), n.as_str())).collect();
    let name = |v: &Value| {
        v.as_i64()
            .and_then(|t| names.get(&t).copied())
            .unwrap_or("?")
            .to_string()
    };
    let lock = |v: &Value| {
        v.as_str()
            .and_then(|a| locks.get(a).copied())
            .unwrap_or("(other)")
            .to_string()
    };
    let site = |s: &Value| {
        if is_file(&s["file"], file) {
            format!("{file}:{}", s["line"])
        } else {
            format!("{}", s["function"])
        }
    };
    // The headline may name a thread by TID ("... wait behind thread 1234"):
    // by its READY name instead, so interpreters compare.
    let mut headline = d.json["verdict"]["headline"].to_string();
    for (&t, n) in &names {
        headline = headline.replace(&format!("thread {t}"), &format!("thread {n}"));
    }
    // ... and what that thread does may name addresses (a futex word).
    let mut masked = String::new();
    let mut rest = headline.as_str();
    while let Some(at) = rest.find("0x") {
        masked.push_str(&rest[..at + 2]);
        rest = rest[at + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
        masked.push('…');
    }
    masked.push_str(rest);
    let headline = masked;
    let mut out = format!("exit {} {headline}\n", d.code);
    for c in d.deadlocks() {
        for e in c["edges"].as_array().expect("edges") {
            out += &format!(
                "  edge {} -> {} on {} {} {} {}\n",
                name(&e["from_tid"]),
                name(&e["to_tid"]),
                e["kind"],
                e["name"],
                lock(&e["address"]),
                e["confidence"]
            );
        }
    }
    for (n, &t) in &fx.ready.threads {
        let Some(th) = d.find_thread(t) else {
            out += &format!("  {n}: gone\n");
            continue;
        };
        let b = &th["blocked_on"];
        out += &format!(
            "  {n} ({}): {} {} {} owner {} {} at {}; top {}",
            th["python_name"],
            b["kind"],
            b["name"],
            lock(&b["address"]),
            name(&b["owner_tid"]),
            b["confidence"],
            site(&b["site"]),
            site(&th["frames"][0]),
        );
        for h in th["holds"].as_array().into_iter().flatten() {
            out += &format!(
                "; holds {} {} {} {}",
                h["kind"],
                h["name"],
                lock(&h["address"]),
                h["confidence"]
            );
        }
        out += "\n";
    }
    out
}

/// Run `check` on every interpreter; it returns the normalized verdict, and
/// Debian's stripped 3.11 must give exactly the verdict pyenv's 3.11 gives.
fn on_every_python(check: impl Fn(&Interpreter) -> String + Sync) {
    let seen: Mutex<BTreeMap<String, String>> = Mutex::default();
    for_each_python(|py| {
        let v = check(py);
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(py.label.clone(), v);
    });
    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    let (Some(pyenv), Some(debian)) = (seen.get("3.11"), seen.get("3.11-debian")) else {
        panic!("3.11 and 3.11-debian must both be tested: {:?}", seen.keys());
    };
    assert_eq!(debian, pyenv, "Debian's stripped 3.11 and pyenv's 3.11 disagree");
}

/// Start fixtures/python/FILE on `py` and wait until every READY thread has
/// been blocked, unchanged, for a while.
fn blocked(py: &Interpreter, file: &str) -> Fixture {
    let fx = Fixture::spawn_blocked(python_fixture(&py.path, file, &[]));
    assert_eq!(
        fx.ready.raw["gil"].as_bool(),
        Some(!py.label.ends_with('t')),
        "READY gil flag on {}",
        py.label
    );
    fx
}

// ---- deadlocks ----------------------------------------------------------------

/// A two- or three-thread cycle on Python locks, main joining t1 behind it.
fn check_cycle_fixture(py: &Interpreter, file: &str, edges: &[Edge], headline: &str) -> String {
    let fx = blocked(py, file);
    // Up to 3 dumps: a waiter caught on its way into the wait (3.14+'s
    // PyMutex yields and spins before it parks; under load it can be caught
    // there with its owner not yet attributed) is seen parked by the next.
    // docs/limits.md ("A lock waiter caught before it parks").
    let mut d = dump(&fx, &[]);
    for _ in 0..2 {
        if d.json["verdict"]["kind"] == "deadlock" && d.json["deadlocks"].as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        d = dump(&fx, &[]);
    }
    assert_cycle(&d, &fx, file, edges);
    assert_eq!(d.json["verdict"]["headline"], headline);
    assert_main_joins(&d, &fx, file, "t1", true);
    assert_python_frames_only(&d, &fx);
    normalized(&d, &fx, file)
}

#[test]
fn seed_two_locks_with() {
    let file = "seed_two_locks_with.py";
    on_every_python(|py| {
        check_cycle_fixture(
            py,
            file,
            &[
                // The evidence names the `with` statement that took the lock.
                Edge {
                    held_at: Some("hold_b"),
                    ..edge("t1", "t1", "lock_b", "py_lock")
                },
                Edge {
                    held_at: Some("hold_a"),
                    ..edge("t2", "t2", "lock_a", "py_lock")
                },
            ],
            "Found 1 deadlock (2 threads, 2 Python locks)",
        )
    });
}

/// The Py_DEBUG builds (sid's python3.14d and python3.15d) give the seed
/// the same report as the release builds.
#[test]
fn seed_two_locks_with_on_debug_builds() {
    let builds = common::python::python_debug_builds();
    let labels: Vec<&str> = builds.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["3.14d", "3.15d"]);
    for py in builds {
        check_cycle_fixture(
            py,
            "seed_two_locks_with.py",
            &[
                Edge {
                    held_at: Some("hold_b"),
                    ..edge("t1", "t1", "lock_b", "py_lock")
                },
                Edge {
                    held_at: Some("hold_a"),
                    ..edge("t2", "t2", "lock_a", "py_lock")
                },
            ],
            "Found 1 deadlock (2 threads, 2 Python locks)",
        );
    }
}

/// An interpreter whose `_Py_DebugOffsets` lockdump cannot use (the fixture
/// overwrites its own cookie, or its version word with 3.99) is never
/// reported clean: the seed's Python deadlock cannot be seen, so the verdict
/// is `incomplete`, exit 3, and the headline and JSON say what was not
/// examined and why. CPython 3.13 and later (earlier ones have no table).
#[test]
fn unusable_debug_offsets_make_the_verdict_incomplete() {
    let ran = Mutex::new(Vec::new());
    for_each_python(|py| {
        let minor: u32 = py.label[2..4].parse().expect("3.MINOR label");
        if minor < 13 {
            return;
        }
        for (damage, why) in [
            (
                "cookie",
                "must start _PyRuntime with the xdebugpy cookie, found \"xbrokenx\"",
            ),
            (
                "version",
                "CPython 3.99.0 is newer than the versions lockdump reads (3.11 to 3.15)",
            ),
        ] {
            let fx = Fixture::spawn_blocked(python_fixture(&py.path, "broken_debug_offsets.py", &[damage]));
            let d = dump(&fx, &[]);
            let v = &d.json["verdict"];
            if d.code != 3 || v["kind"] != "incomplete" || v["exit_code"] != 3 || v["complete"] != false {
                d.fail(format_args!("{damage}: want verdict incomplete, exit 3"));
            }
            assert_eq!(
                v["headline"],
                format!(
                    "Incomplete: no deadlock among what was examined; not examined: Python stacks and locks of PID {}.",
                    fx.pid()
                ),
                "{damage}"
            );
            let u = v["unexamined"].as_array().expect("unexamined");
            assert_eq!(u.len(), 1, "{damage}: {u:?}");
            assert_eq!(u[0]["pid"], fx.pid(), "{damage}");
            assert_eq!(u[0]["part"], "python", "{damage}");
            let text = u[0]["why"].as_str().expect("why");
            assert!(text.contains(why), "{damage}: {text:?} does not say {why:?}");
            assert_eq!(d.json["deadlocks"].as_array().map(Vec::len), Some(0), "{damage}");
            // The text report says the same next to the verdict.
            let (code, report) = dump_text(&fx);
            assert_eq!(code, 3, "{damage}: text mode exit code\n{report}");
            let first: Vec<&str> = report.lines().take(3).collect();
            assert!(
                first[0].starts_with("Incomplete: ")
                    && first[2].contains("Python stacks and locks not examined")
                    && first[2].contains(why),
                "{damage}: the report must open with the incomplete verdict and its reason:\n{report}"
            );
        }
        ran.lock().unwrap_or_else(|e| e.into_inner()).push(py.label.clone());
    });
    let mut ran = ran.into_inner().unwrap_or_else(|e| e.into_inner());
    ran.sort();
    assert_eq!(
        ran,
        ["3.13", "3.13t", "3.14", "3.15"],
        "interpreters with _Py_DebugOffsets"
    );
}

#[test]
fn seed_lock1_lock2() {
    // The seed's code uses `with lock1:` / `with lock2:`: exact owners.
    on_every_python(|py| {
        check_cycle_fixture(
            py,
            "seed_lock1_lock2.py",
            &[
                edge("t1", "t1", "lock2", "py_lock"),
                edge("t2", "t2", "lock1", "py_lock"),
            ],
            "Found 1 deadlock (2 threads, 2 Python locks)",
        )
    });
}

#[test]
fn lock_ring3() {
    // member(first, second): each lock is named as the waiting (and the
    // holding) frame calls it, the parameter `second` (`first`).
    let ring = |thread, lock| Edge {
        shown: "second",
        ..edge(thread, "wait", lock, "py_lock")
    };
    on_every_python(|py| {
        let v = check_cycle_fixture(
            py,
            "lock_ring3.py",
            &[ring("t1", "lock_b"), ring("t2", "lock_c"), ring("t3", "lock_a")],
            "Found 1 deadlock (3 threads, 3 Python locks)",
        );
        assert!(
            v.contains("holds \"py_lock\" \"first\""),
            "holds are named `first`:\n{v}"
        );
        v
    });
}

#[test]
fn rlock_cycle() {
    on_every_python(|py| {
        check_cycle_fixture(
            py,
            "rlock_cycle.py",
            &[
                edge("t1", "t1", "rlock_b", "py_r_lock"),
                edge("t2", "t2", "rlock_a", "py_r_lock"),
            ],
            "Found 1 deadlock (2 threads, 2 Python locks)",
        )
    });
}

#[test]
fn mixed_lock_rlock_cycle() {
    // One owner from the RLock's owner field, the other from t1's `with`.
    on_every_python(|py| {
        check_cycle_fixture(
            py,
            "mixed_lock_rlock_cycle.py",
            &[
                edge("t1", "t1", "rlock_b", "py_r_lock"),
                edge("t2", "t2", "lock_a", "py_lock"),
            ],
            "Found 1 deadlock (2 threads, 2 Python locks)",
        )
    });
}

#[test]
fn seed_debug_logging() {
    // thread(lock_a, lock_b) runs with the locks swapped in t2: t2's frame
    // calls main()'s lock_a `lock_b`. Names are the waiting frame's own.
    let file = "seed_debug_logging.py";
    on_every_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &[]);
        assert_cycle(
            &d,
            &fx,
            file,
            &[
                edge("t1", "wait", "lock_b", "py_lock"),
                Edge {
                    shown: "lock_b",
                    ..edge("t2", "wait", "lock_a", "py_lock")
                },
            ],
        );
        // main() returned: the main thread waits in the interpreter's
        // shutdown for a non-daemon thread (which one first is up to a set's
        // order), behind the cycle.
        let main = tid(&fx, "main");
        let b = &d.thread(main)["blocked_on"];
        let joined = ["t1", "t2"]
            .into_iter()
            .find(|n| owner(b) == Some(tid(&fx, n)))
            .unwrap_or_else(|| d.fail(format_args!("main must wait for t1 or t2: {b}")));
        if b["kind"] != "thread" || b["name"] != joined || b["confidence"] != "exact" {
            d.fail(format_args!("main must wait for {joined} to exit (exact): {b}"));
        }
        assert_eq!(b["site"]["function"], "_shutdown");
        assert!(d.blocked_behind().contains(&main));
        assert_python_frames_only(&d, &fx);
        // Which thread _shutdown waits for first is not deterministic.
        normalized(&d, &fx, file)
            .replace("owner t2", "owner t1")
            .replace("\"t2\"", "\"t1\"")
    });
}

#[test]
fn seed_recursive_traverse_selflock() {
    // A cycle of one: the inner recursive_traverse waits for the Lock the
    // outer one holds in its `with` block.
    let file = "seed_recursive_traverse_selflock.py";
    on_every_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &[]);
        assert_cycle(&d, &fx, file, &[edge("main", "main", "lock", "py_lock")]);
        assert_eq!(
            d.json["verdict"]["headline"],
            "Found 1 deadlock (1 thread, 1 Python lock)"
        );
        let th = d.thread(tid(&fx, "main"));
        let evidence = th["blocked_on"]["evidence"].as_str().unwrap_or_default();
        let with_line = marked_line(&python_source(file), "main");
        let want = format!("this thread already holds it: `with` block from line {with_line} open in ");
        assert!(evidence.starts_with(&want), "{evidence}");
        // Held by the outer call, at its recursive call; waited for by the inner one.
        let hold = &th["holds"][0];
        assert_at(
            &d,
            "the hold",
            &hold["site"],
            file,
            marked_line(&python_source(file), "recurse"),
        );
        let frames = th["frames"].as_array().expect("frames");
        assert_eq!(frames[0]["function"], "main.<locals>.recursive_traverse");
        assert_eq!(frames[1]["function"], "main.<locals>.recursive_traverse");
        assert!(d.blocked_behind().is_empty());
        assert_python_frames_only(&d, &fx);
        normalized(&d, &fx, file)
    });
}

#[test]
fn seed_explicit_acquire() {
    // lock_a.acquire() / lock_b.acquire(): a _thread.lock records no owner
    // and no frame holds a trace of the earlier acquire(), but the bytecode
    // each thread ran does: both owners are inferred (never exact), and so
    // is the cycle. The evidence names the line of the holder's acquire().
    let file = "seed_explicit_acquire.py";
    on_every_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &[]);
        assert_cycle(
            &d,
            &fx,
            file,
            &[
                Edge {
                    acquired_at: Some("take_b"),
                    ..edge("t1", "t1", "lock_b", "py_lock")
                },
                Edge {
                    acquired_at: Some("take_a"),
                    ..edge("t2", "t2", "lock_a", "py_lock")
                },
            ],
        );
        assert_eq!(
            d.json["verdict"]["headline"],
            "Found 1 deadlock (2 threads, 2 Python locks)"
        );
        // Each holder's hold points at the frame that ran the acquire().
        for (thread, key) in [("t1", "take_a"), ("t2", "take_b")] {
            let holds = d.thread(tid(&fx, thread))["holds"].as_array().expect("holds").clone();
            assert_eq!(holds.len(), 1, "{thread} holds one lock: {holds:?}");
            assert_at(
                &d,
                &format!("{thread}'s hold"),
                &holds[0]["site"],
                file,
                ready_line(&fx, file, thread, thread),
            );
            let evidence = holds[0]["evidence"].as_str().unwrap_or_default();
            let line = marked_line(&python_source(file), key);
            assert!(evidence.contains(&format!(".acquire() at line {line} ")), "{evidence}");
        }
        assert_main_joins(&d, &fx, file, "t1", true);
        assert_python_frames_only(&d, &fx);
        let (code, text) = dump_text(&fx);
        assert_eq!(code, 1);
        assert!(
            text.starts_with("Found 1 deadlock (2 threads, 2 Python locks)"),
            "{text}"
        );
        assert!(text.contains("deadlock (2 threads, confidence: inferred)"), "{text}");
        assert!(text.contains("owner is inferred"), "{text}");
        normalized(&d, &fx, file)
    });
}

#[test]
fn explicit_acquire_in_specialized_code() {
    // Accounts' `_lock` attributes taken with acquire() in a caller frame
    // (transfer) after a warm-up that specialized the code; each thread
    // then waits in credit() for the other's. Owners inferred from the
    // caller frame's bytecode; the locks are named from the waiting frame.
    let file = "explicit_acquire_warm.py";
    let named = |thread, lock| Edge {
        shown: "dst._lock",
        acquired_at: Some("take"),
        ..edge(thread, "wait", lock, "py_lock")
    };
    on_every_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &[]);
        assert_cycle(&d, &fx, file, &[named("t1", "lock_b"), named("t2", "lock_a")]);
        for thread in ["t1", "t2"] {
            let holds = d.thread(tid(&fx, thread))["holds"].as_array().expect("holds").clone();
            assert_eq!(holds.len(), 1, "{thread} holds one lock: {holds:?}");
            // The hold's site is the caller frame, at its call to credit().
            assert_at(
                &d,
                &format!("{thread}'s hold"),
                &holds[0]["site"],
                file,
                marked_line(&python_source(file), "call"),
            );
            assert_eq!(holds[0]["name"], "src._lock", "{thread}");
        }
        assert_main_joins(&d, &fx, file, "t1", true);
        normalized(&d, &fx, file)
    });
}

/// Start gil_native_deadlock.py (`lib`: libgil_helper.so) and wait until it
/// is stuck; also returns READY's "gil" flag.
fn gil_fixture(py: &Interpreter, lib: &str) -> (Fixture, bool) {
    let fx = Fixture::spawn(python_fixture(&py.path, "gil_native_deadlock.py", &[lib]));
    let gil = fx.ready.raw["gil"].as_bool().expect("READY gil flag");
    assert_eq!(gil, !py.label.ends_with('t'), "gil flag on {}", py.label);
    // native_holder wakes every few ms to ask for the GIL again, so with a
    // GIL only gil_holder settles for good (and then native_holder can never
    // get past take_gil); without one, every thread does.
    if gil {
        fx.wait_blocked(&[tid(&fx, "gil_holder")]);
        // native_holder sleeps 1 ms per lap: until it next asks for the GIL
        // it is in clock_nanosleep, not waiting for anything. Once it is seen
        // in a futex (take_gil's condvar) after gil_holder settled, it can
        // never leave take_gil again.
        let native = tid(&fx, "native_holder");
        let deadline = std::time::Instant::now() + common::TIMEOUT;
        while !matches!(
            fx.sample_tid(native).syscall,
            lockdump::test_support::proc::SyscallLine::InSyscall {
                nr: common::SYS_FUTEX,
                ..
            }
        ) {
            if std::time::Instant::now() > deadline {
                fx.fail("native_holder never waited in a futex (take_gil) after gil_holder blocked");
            }
            std::thread::sleep(common::POLL);
        }
    } else {
        fx.wait_all_blocked();
    }
    (fx, gil)
}

#[test]
fn gil_native_deadlock() {
    // GIL builds: gil_holder holds the GIL and sleeps on the C mutex
    // native_lock (through ctypes.PyDLL); native_holder owns native_lock and
    // waits for the GIL. The GIL wait comes from CPython's analysis, the
    // mutex wait from glibc's (CPython sees no wait of its own there), and
    // both end up on the Python threads. Free-threaded: native_holder waits
    // on the Python Lock py_lock, which gil_holder holds in a `with` block.
    let lib = build_shared_lib("gil_helper");
    let lib = lib.to_str().expect("utf-8 path");
    let file = "gil_native_deadlock.py";
    on_every_python(|py| {
        let (fx, gil) = gil_fixture(py, lib);
        // With a GIL, native_holder waits in take_gil in 5 ms slices of a
        // timed condvar wait. Caught between two slices on an interpreter
        // whose take_gil is not named from symbols at that moment (sid's
        // stripped 3.14/3.15), its GIL wait cannot be attributed
        // (docs/limits.md): look again, a bounded number of times.
        let mut d = dump(&fx, &[]);
        for _ in 0..10 {
            if d.code == 1 || !gil {
                break;
            }
            d = dump(&fx, &[]);
        }
        let native_lock = edge("gil_holder", "gil_holder", "native_lock", "mutex");
        let first = if gil {
            Edge {
                thread: "native_holder",
                key: "native_holder_gil",
                lock: None,
                kind: "gil",
                shown: "GIL",
                held_at: None,
                acquired_at: None,
            }
        } else {
            edge("native_holder", "native_holder_nogil", "py_lock", "py_lock")
        };
        assert_cycle(&d, &fx, file, &[first, native_lock]);
        // Mixed kinds are counted by kind (issue 16.3), not as "2 locks".
        assert_eq!(
            d.json["verdict"]["headline"],
            if gil {
                "Found 1 deadlock (2 threads, 1 GIL, 1 mutex)"
            } else {
                "Found 1 deadlock (2 threads, 1 Python lock, 1 mutex)"
            }
        );
        let holder = d.thread(tid(&fx, "gil_holder"));
        let holds_gil = holder["holds"]
            .as_array()
            .expect("holds")
            .iter()
            .any(|h| h["kind"] == "gil");
        assert_eq!(holds_gil, gil, "gil_holder holds the GIL iff there is one");
        assert_eq!(holder["blocked_on"]["how"], "pthread_mutex_lock (normal)");
        // main: joins gil_holder, or (if the GIL went for good before it got
        // there) waits for the GIL gil_holder holds. Either way behind it.
        let main = tid(&fx, "main");
        let b = &d.thread(main)["blocked_on"];
        let ok = owner(b) == Some(tid(&fx, "gil_holder"))
            && b["confidence"] == "exact"
            && (b["kind"] == "thread" || (gil && b["kind"] == "gil"));
        if !ok {
            d.fail(format_args!("main must wait behind gil_holder: {b}"));
        }
        assert!(d.blocked_behind().contains(&main), "main blocked behind the cycle");
        assert_python_frames_only(&d, &fx);
        normalized(&d, &fx, file)
            .lines()
            .filter(|l| !l.trim_start().starts_with("main "))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

// ---- hangs without a cycle, and healthy processes ------------------------------

#[test]
fn condition_misuse() {
    // A lost wake-up: consumer waits on `cond` forever, but a Condition has
    // no owner, so there is no edge, no deadlock. Nothing else can notify
    // it (main joins consumer): stuck, exit 1 (issue 20; it was exit 0). Its
    // `with cond:` block does not count as holding cond's lock:
    // Condition.wait released it.
    let file = "condition_misuse.py";
    on_every_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &[]);
        d.assert_stuck(fx.pid());
        let th = d.thread(tid(&fx, "consumer"));
        let b = &th["blocked_on"];
        let ok = b["kind"] == "py_condition"
            && b["name"] == "cond"
            && b["address"] == hex(fx.lock("cond"))
            && b["owner_tid"].is_null()
            && b["confidence"] == "unknown"
            && b["how"] == "threading.Condition.wait";
        if !ok {
            d.fail(format_args!("consumer must wait on cond, no owner: {b}"));
        }
        assert_at(
            &d,
            "consumer",
            &b["site"],
            file,
            ready_line(&fx, file, "consumer", "consumer"),
        );
        assert_eq!(th["holds"], Value::Array(vec![]), "Condition.wait released cond's lock");
        assert_main_joins(&d, &fx, file, "consumer", false);
        assert_python_frames_only(&d, &fx);
        normalized(&d, &fx, file).replace(&fx.pid().to_string(), "PID")
    });
}

#[test]
fn condition_wait_woken_without_the_gil_holds_nothing() {
    // waiter was notified but cannot get the GIL back inside Condition.wait:
    // main holds it, asleep on a C mutex native_owner owns. waiter's caller
    // still has `with cond:` open, yet cond's lock is free: waiter must not
    // be reported holding it. No cycle: native_owner waits on an Event.
    // Free-threaded, waiter just returns and exits.
    let lib = build_shared_lib("gil_helper");
    let lib = lib.to_str().expect("utf-8 path");
    let file = "condition_gil_wait.py";
    on_every_python(|py| {
        let fx = Fixture::spawn(python_fixture(&py.path, file, &[lib]));
        let gil = fx.ready.raw["gil"].as_bool().expect("READY gil flag");
        assert_eq!(gil, !py.label.ends_with('t'), "gil flag on {}", py.label);
        let (main, waiter, native_owner) = (tid(&fx, "main"), tid(&fx, "waiter"), tid(&fx, "native_owner"));
        if gil {
            fx.wait_all_blocked();
        } else {
            fx.wait_blocked(&[main, native_owner]);
        }
        let d = dump(&fx, &[]);
        // Nobody sets `stop`, so native_owner never releases native_lock,
        // main never drops the GIL, waiter never gets it: stuck (issue 20).
        d.assert_stuck(fx.pid());

        let m = d.thread(main);
        let b = &m["blocked_on"];
        let ok = b["kind"] == "mutex"
            && b["name"] == "native_lock"
            && b["address"] == hex(fx.lock("native_lock"))
            && owner(b) == Some(native_owner)
            && b["confidence"] == "exact";
        if !ok {
            d.fail(format_args!(
                "main must wait on native_lock, owned by native_owner: {b}"
            ));
        }
        assert_at(&d, "main", &b["site"], file, ready_line(&fx, file, "main", "main"));
        let holds: Vec<&Value> = m["holds"].as_array().expect("holds").iter().collect();
        assert_eq!(
            holds.iter().any(|h| h["kind"] == "gil" && h["confidence"] == "exact"),
            gil,
            "main holds the GIL: {holds:?}"
        );

        let o = d.thread(native_owner);
        let b = &o["blocked_on"];
        if b["kind"] != "py_event" || b["name"] != "stop" || !b["owner_tid"].is_null() {
            d.fail(format_args!("native_owner must wait on the Event stop: {b}"));
        }
        let holds_native =
            o["holds"].as_array().expect("holds").iter().any(|h| {
                h["kind"] == "mutex" && h["address"] == hex(fx.lock("native_lock")) && h["confidence"] == "exact"
            });
        assert!(holds_native, "native_owner holds native_lock: {}", o["holds"]);

        if gil {
            let w = d.thread(waiter);
            let b = &w["blocked_on"];
            if b["kind"] != "gil" || owner(b) != Some(main) || b["confidence"] != "exact" {
                d.fail(format_args!("waiter must wait for the GIL main holds: {b}"));
            }
            assert_eq!(b["site"]["function"], "Condition.wait", "{b}");
            assert_eq!(
                w["holds"],
                Value::Array(vec![]),
                "cond's lock is free: waiter holds nothing"
            );
            let frames = w["frames"].as_array().expect("frames");
            let caller = frames.iter().find(|f| f["function"] == "waiter_body");
            assert_at(
                &d,
                "waiter's caller",
                caller.expect("waiter_body frame"),
                file,
                ready_line(&fx, file, "waiter", "waiter"),
            );
        } else {
            common::wait_until("waiter to exit", || common::task_exists(fx.pid(), waiter), |e| !e);
        }
        normalized(&d, &fx, file).replace(&fx.pid().to_string(), "PID")
    });
}

/// Exit 0, no cycle, and `waiters` wait on `object` (kind, no owner) at
/// their marker `key`; main joins `joined`.
fn check_ownerless_waits(
    py: &Interpreter,
    file: &str,
    kind: &str,
    object: &str,
    waiters: &[&str],
    key: &str,
) -> String {
    let fx = blocked(py, file);
    let d = dump(&fx, &[]);
    d.assert_no_deadlock();
    for &w in waiters {
        let th = d.thread(tid(&fx, w));
        let b = &th["blocked_on"];
        let ok = b["kind"] == kind
            && b["name"] == object
            && b["address"] == hex(fx.lock(object))
            && b["owner_tid"].is_null()
            && b["confidence"] == "unknown";
        if !ok {
            d.fail(format_args!("{w} must wait on {object} ({kind}), no owner: {b}"));
        }
        let line = ready_line(&fx, file, w, key);
        assert_at(&d, w, &b["site"], file, line);
    }
    assert_main_joins(&d, &fx, file, waiters[0], false);
    assert_python_frames_only(&d, &fx);
    normalized(&d, &fx, file)
}

#[test]
fn healthy_event() {
    on_every_python(|py| {
        let v = check_ownerless_waits(py, "healthy_event.py", "py_event", "event", &["ev0", "ev1"], "wait");
        // The Timer waits on its own Event: named from Timer.run, not as
        // Event.wait's `self`.
        assert!(
            v.contains("timer (\"timer\"): \"py_event\" \"self.finished\""),
            "the timer's Event is self.finished:\n{v}"
        );
        v
    });
}

#[test]
fn healthy_queue() {
    // A producer sleeps before feeding the queue: idle, not stuck.
    on_every_python(|py| check_ownerless_waits(py, "healthy_queue.py", "py_queue", "q", &["c0", "c1"], "get"));
}

#[test]
fn healthy_join() {
    // Thread.join: the owner is the joined thread, exactly; s0 and s1 sleep
    // (a syscall, not a lock wait).
    let file = "healthy_join.py";
    on_every_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &[]);
        d.assert_no_deadlock();
        assert_main_joins(&d, &fx, file, "s0", false);
        for s in ["s0", "s1"] {
            let th = d.thread(tid(&fx, s));
            assert!(th["blocked_on"].is_null(), "{s} sleeps: {}", th["blocked_on"]);
            assert_eq!(th["blocked_in"], "clock_nanosleep", "{s}");
            assert_at(&d, s, &th["frames"][0], file, ready_line(&fx, file, s, "sleep"));
        }
        assert_python_frames_only(&d, &fx);
        normalized(&d, &fx, file)
    });
}

/// Issue 20.3: a Lock left acquired by a thread that ended, and
/// Queue.join() after the worker died. main is the only thread left, its
/// wait has no timeout, and the only caught signal is SIGINT with CPython's
/// own default_int_handler (read from the interpreter): stuck, exit 1.
#[test]
fn python_waits_nobody_can_end_are_stuck() {
    for (case, kind, object) in [("lock_left", "py_lock", "lock_left"), ("queue_join", "py_queue", "q")] {
        on_every_python(|py| {
            let fx = Fixture::spawn_blocked(python_fixture(&py.path, "stuck_waits.py", &[case]));
            let d = dump(&fx, &[]);
            let v = &d.json["verdict"];
            let main = tid(&fx, "main");
            if d.code != 1 || v["kind"] != "stuck" || !d.deadlocks().is_empty() {
                d.fail(format_args!("{case}: expected stuck (exit 1): {v}"));
            }
            assert_eq!(
                v["headline"],
                format!(
                    "Stuck: no thread of PID {} can ever run again (1 thread asleep for good)",
                    fx.pid()
                ),
                "{case}"
            );
            assert_eq!(v["stuck"][0]["threads"], serde_json::json!([main]), "{case}: {v}");
            let th = d.thread(main);
            let b = &th["blocked_on"];
            if b["kind"] != kind || b["address"] != hex(fx.lock(object)) || b["name"] != object {
                d.fail(format_args!("{case}: main must wait on {object} ({kind}): {b}"));
            }
            assert_eq!(th["asleep_for_good"], true, "{case}: {th}");
            assert_eq!(
                th["why"], "it is the process's only thread: nothing can wake it",
                "{case}"
            );
            let line = ready_line(&fx, "stuck_waits.py", "main", case);
            assert_at(&d, "main", &b["site"], "stuck_waits.py", line);
            // The headline names the PID, which differs between interpreters.
            format!("{case}: {}", normalized(&d, &fx, "stuck_waits.py")).replace(&fx.pid().to_string(), "PID")
        });
    }
}

/// The subprocess documentation's warning, on every interpreter: the parent
/// calls `Popen.wait()` while the child blocks writing more output than the
/// pipe holds, output the parent reads only after the wait. With `--tree`
/// both processes are stuck (exit 1), and the circular wait through them is
/// reported: the parent waits for the child to exit, the child for the
/// parent to read. Without `--tree` the child was not looked at: exit 0.
#[test]
fn subprocess_wait_on_a_child_filling_its_pipe_is_stuck_with_tree() {
    on_every_python(|py| {
        let fx = Fixture::spawn_blocked(python_fixture(&py.path, "subprocess_pipe.py", &["wait"]));
        let (main, child) = (tid(&fx, "main"), tid(&fx, "child"));
        assert_eq!(fx.int("pids", "child"), i64::from(child));
        let d = dump(&fx, &["--tree"]);
        let v = &d.json["verdict"];
        if d.code != 1 || v["kind"] != "stuck" {
            d.fail(format_args!("expected stuck (exit 1): {v}"));
        }
        let mut both = vec![i64::from(fx.pid()), i64::from(child)];
        both.sort_unstable();
        assert_eq!(common::stuck_pids(&d.json), both, "{v}");
        let cycles = v["process_cycles"].as_array().unwrap();
        if cycles.len() != 1 {
            d.fail(format_args!("expected one circular wait through the processes: {v}"));
        }
        let c = &cycles[0];
        let (first, second) = if main < child { (main, child) } else { (child, main) };
        assert_eq!(c["threads"], serde_json::json!([first, second]), "{c}");
        let step = |t: i32| &c["waits"][if t == first { 0 } else { 1 }];
        assert_eq!(
            step(main),
            &serde_json::json!({
                "kind": "process", "waits_on": format!("child PID {child}"), "pid": child, "ended_by": "children",
            }),
            "{c}"
        );
        let w = step(child);
        assert_eq!(
            (&w["kind"], &w["pid"], &w["ended_by"]),
            (&Value::from("process"), &Value::from(fx.pid()), &Value::from("readers")),
            "{c}"
        );
        let on = w["waits_on"].as_str().unwrap_or_default();
        assert!(on.starts_with("pipe:[") && on.ends_with("(fd 1)"), "{on}");
        assert_eq!(d.thread(child)["asleep_for_good"], true, "{}", d.brief);
        // Only the parent: its child was not inspected, nothing is claimed.
        let alone = dump(&fx, &[]);
        if alone.code != 0 || !alone.json["verdict"]["process_cycles"].as_array().unwrap().is_empty() {
            alone.fail(format_args!("without --tree: {}", alone.json["verdict"]));
        }
        "ok".to_string()
    });
}

/// Control: the parent reads its child's output as it comes while the
/// child writes a line every 10 ms: 20 dumps per interpreter with --tree,
/// never stuck.
#[test]
fn subprocess_reading_its_childs_output_is_never_stuck() {
    on_every_python(|py| {
        let fx = Fixture::spawn(python_fixture(&py.path, "subprocess_pipe.py", &["drain"]));
        for round in 0..20 {
            let d = dump(&fx, &["--tree"]);
            if d.code != 0 || d.json["verdict"]["stuck"] != serde_json::json!([]) {
                d.fail(format_args!("round {round}: {}", d.json["verdict"]));
            }
            assert!(d.json["verdict"]["process_cycles"].as_array().unwrap().is_empty());
        }
        "ok".to_string()
    });
}

/// Healthy (issue 20 e): main in stop.wait() on an Event its SIGTERM handler
/// sets, workers idle on a Condition: never stuck, never a deadlock, 100
/// dumps per interpreter (issue 20.7's count for healthy controls).
#[test]
fn python_daemon_with_a_sigterm_handler_is_not_stuck() {
    on_every_python(|py| {
        let fx = blocked(py, "daemon_event.py");
        for round in 0..100 {
            let d = dump(&fx, &[]);
            d.assert_no_deadlock();
            assert_eq!(d.json["verdict"]["stuck"], serde_json::json!([]), "round {round}");
            for name in ["main", "w0", "w1"] {
                let th = d.thread(tid(&fx, name));
                assert_eq!(th["asleep_for_good"], false, "round {round}: {th}");
                assert!(
                    th["why"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("a Python signal handler (SIGTERM)"),
                    "round {round}: {name}: {}",
                    th["why"]
                );
            }
            let b = &d.thread(tid(&fx, "main"))["blocked_on"];
            assert_eq!(
                (&b["kind"], &b["name"]),
                (&Value::from("py_event"), &Value::from("stop")),
                "{b}"
            );
        }
        "ok".to_string()
    });
}

#[test]
fn healthy_contention_never_a_deadlock() {
    // w0..w7 hammer one Lock in `with` blocks: at any instant some wait for
    // it (or for the GIL) while its holder runs.
    check_contention(&[]);
}

#[test]
fn healthy_explicit_contention_never_a_deadlock() {
    // The same with lock.acquire() / lock.release(): owners can only be
    // inferred from the code the workers run, which changes under lockdump's
    // feet; still never a cycle, never a thread waiting for itself, never an
    // exact owner of the plain Lock.
    check_contention(&["--explicit"]);
}

/// Twenty dumps of healthy_contention.py (with `mode` arguments) on every
/// interpreter: none may find a cycle, and the workers keep counting in
/// between.
fn check_contention(mode: &[&str]) {
    const DUMPS: usize = 20;
    let explicit = mode.contains(&"--explicit");
    for_each_python(|py| {
        let progress = common::unique_path(&format!("py-e2e-contention-{}{}.progress", py.label, mode.join("")));
        let p = progress.to_str().expect("utf-8 path");
        let mut args = mode.to_vec();
        args.extend(["--progress", p]);
        let fx = Fixture::spawn(python_fixture(&py.path, "healthy_contention.py", &args));
        let read = || -> Option<u64> { std::fs::read_to_string(&progress).ok()?.trim().parse().ok() };
        let before = common::wait_until("the progress file", read, Option::is_some).expect("count");
        for n in 0..DUMPS {
            let d = dump(&fx, &[]);
            if d.code != 0 || !d.deadlocks().is_empty() {
                d.fail(format_args!("dump {n}: a healthy process reported as deadlocked"));
            }
            for (name, &t) in &fx.ready.threads {
                let b = &d.thread(t)["blocked_on"];
                if owner(b) == Some(t) {
                    d.fail(format_args!("dump {n}: {name} waits on something it holds: {b}"));
                }
                if explicit && b["kind"] == "py_lock" && b["confidence"] == "exact" {
                    d.fail(format_args!(
                        "dump {n}: {name}: an explicit acquire() has no exact owner: {b}"
                    ));
                }
            }
            assert_python_frames_only(&d, &fx);
        }
        common::wait_until("the count to grow after the dumps", read, |v| {
            v.is_some_and(|n| n > before)
        });
        drop(fx);
        let _ = std::fs::remove_file(&progress);
    });
}

// ---- frames and the text report -----------------------------------------------

/// `--native`: Python threads show native and Python frames, each run of
/// Python frames just inside the `_PyEval_EvalFrameDefault` call that runs
/// it; the waits keep their Python sites.
#[test]
fn native_flag_merges_frames_at_eval_calls() {
    let lib = build_shared_lib("gil_helper");
    let lib = lib.to_str().expect("utf-8 path");
    for_each_python(|py| {
        let file = "gil_native_deadlock.py";
        let (fx, _) = gil_fixture(py, lib);
        let d = dump(&fx, &["--native"]);
        assert_eq!(d.code, 1, "the deadlock is found with --native too");
        for (name, &t) in &fx.ready.threads {
            let th = d.thread(t);
            let frames = th["frames"].as_array().expect("frames");
            let kinds: Vec<&str> = frames.iter().map(|f| f["kind"].as_str().unwrap_or("?")).collect();
            if !kinds.contains(&"python") || !kinds.contains(&"native") {
                d.fail(format_args!("{name}: --native shows both kinds: {kinds:?}"));
            }
            for (k, f) in frames.iter().enumerate() {
                let run_ends = f["kind"] == "python" && frames.get(k + 1).is_some_and(|g| g["kind"] != "python");
                let eval = frames.get(k + 1).and_then(|g| g["function"].as_str()).unwrap_or("");
                if run_ends && eval != "_PyEval_EvalFrameDefault" {
                    d.fail(format_args!(
                        "{name}: Python frame #{k} is not inside an eval call: {frames:?}"
                    ));
                }
            }
            if frames.last().is_some_and(|f| f["kind"] == "python") {
                d.fail(format_args!("{name}: the outermost frames are native"));
            }
        }
        // gil_holder: the C function that blocks, then the Python caller.
        let th = d.thread(tid(&fx, "gil_holder"));
        let frames = th["frames"].as_array().expect("frames");
        let at = |function: &str| frames.iter().position(|f| f["function"] == function);
        let (Some(c), Some(p)) = (at("native_lock_acquire"), at("gil_holder_body")) else {
            d.fail("gil_holder: native_lock_acquire and gil_holder_body in the merged stack");
        };
        assert!(c < p, "the C call is inside the Python frame");
        assert_at(
            &d,
            "gil_holder's Python frame",
            &frames[p],
            file,
            ready_line(&fx, file, "gil_holder", "gil_holder"),
        );
        // The native wait's site is where C called pthread_mutex_lock.
        let b = &th["blocked_on"];
        assert_eq!(b["kind"], "mutex");
        let src = common::fixtures_dir().join("c").join("gil_helper.c");
        assert_eq!(b["site"]["function"], "native_lock_acquire", "{b}");
        assert_eq!(b["site"]["line"], marked_line(&src, "acquire"), "{b}");
    });
}

#[test]
fn native_flag_keeps_python_sites_of_python_waits() {
    let file = "seed_two_locks_with.py";
    for_each_python(|py| {
        let fx = blocked(py, file);
        let d = dump(&fx, &["--native"]);
        assert_cycle(
            &d,
            &fx,
            file,
            &[
                edge("t1", "t1", "lock_b", "py_lock"),
                edge("t2", "t2", "lock_a", "py_lock"),
            ],
        )
    });
}

/// The closing note of the issue: the human report for the seed's two-lock
/// example on the free-threaded build.
#[test]
fn text_report_of_seed_two_locks_with_on_313t() {
    let py = common::python_interpreters()
        .iter()
        .find(|p| p.label == "3.13t")
        .expect("3.13t is among the interpreters");
    let file = "seed_two_locks_with.py";
    let fx = blocked(py, file);
    let (code, text) = dump_text(&fx);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.starts_with("Found 1 deadlock (2 threads, 2 Python locks)"),
        "{text}"
    );
    for needle in [
        "lock_a".to_string(),
        "lock_b".to_string(),
        "(Python \"t1\")".to_string(),
        "(Python \"t2\")".to_string(),
        format!("{file}:{}", ready_line(&fx, file, "t1", "t1")),
        format!("{file}:{}", ready_line(&fx, file, "t2", "t2")),
        format!("{}", tid(&fx, "t1")),
        format!("{}", tid(&fx, "t2")),
        "CPython 3.13".to_string(),
        "free-threaded".to_string(),
    ] {
        assert!(text.contains(&needle), "the report must contain {needle:?}:\n{text}");
    }
    if let Ok(path) = std::env::var("LOCKDUMP_SAVE_REPORT") {
        std::fs::write(path, &text).expect("write the report");
    }
}

/// CPython 3.8–3.10 (pyenv's builds, which the machine image ships): their
/// interpreter state has another shape, so the Python part is not examined.
/// The verdict says so with the version it found (major.minor: before 3.11
/// only the file name tells it), exit 3 never the clean 0, and the native
/// stacks and lock waits are still there (issue 12.8: these printed "module
/// None" and a wrong "3.10.0" before). pyenv 3.8 and 3.9 keep `_PyRuntime`
/// in the anonymous part of libpython's .bss, outside any file mapping.
#[test]
fn older_cpython_is_incomplete_with_its_version_named() {
    let root = std::process::Command::new("pyenv")
        .arg("root")
        .output()
        .expect("pyenv root (the machine image ships pyenv)");
    let root = String::from_utf8_lossy(&root.stdout).trim().to_string();
    for (version, minor) in [("3.8.18", "3.8"), ("3.9.18", "3.9"), ("3.10.13", "3.10")] {
        let python = Path::new(&root).join(format!("versions/{version}/bin/python{minor}"));
        assert!(
            python.is_file(),
            "{} missing: the machine image's pyenv ships it",
            python.display()
        );
        let fx = Fixture::spawn_blocked(python_fixture(&python, "seed_two_locks_with.py", &[]));
        let pid = fx.pid();
        let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
        let out = run_lockdump(&["--json", "-p", &pid.to_string()]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{minor}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let v = &doc["verdict"];
        assert_eq!(v["kind"], "incomplete", "{minor}");
        let un = v["unexamined"].as_array().expect("unexamined");
        assert_eq!(un.len(), 1, "{minor}: {un:?}");
        assert_eq!(un[0]["pid"], pid, "{minor}");
        assert_eq!(un[0]["part"], "python", "{minor}");
        assert_eq!(
            un[0]["why"].as_str().unwrap(),
            format!(
                "CPython {minor} is older than the versions lockdump reads (3.11 to 3.15): its interpreter state has \
                 another shape; the native stacks and locks are still shown (a Python 3.11+ interpreter gives Python \
                 stacks)"
            ),
            "{minor}"
        );
        // The lock waits of t1 and t2 are still shown, from their native stacks.
        for tid in [t1, t2] {
            let t = doc["threads"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tid"] == tid)
                .expect("thread");
            let funcs: Vec<&str> = t["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["function"].as_str())
                .collect();
            assert!(
                funcs.contains(&"PyThread_acquire_lock_timed"),
                "{minor} {tid}: {funcs:?}"
            );
            assert!(t["blocked_on"].is_object(), "{minor} {tid}: {}", t["blocked_on"]);
        }
    }
}

// ---- thread pools (issue 20.3) -----------------------------------------------

/// Pool starvation: both workers of a 2-worker ThreadPoolExecutor wait
/// (result(), no timeout) on inner futures queued in the same executor. A
/// deadlock through the pool (exit 1), naming the executor, both workers
/// with their Python names, the future each waits for and its place in the
/// work queue; main, waiting on an outer future a worker runs, is blocked
/// behind it. With main sleeping instead, still a deadlock but not stuck.
#[test]
fn pool_starvation_is_a_deadlock_through_the_pool() {
    for case in ["main_waits", "main_sleeps"] {
        on_every_python(|py| {
            let fx = Fixture::spawn_blocked(python_fixture(&py.path, "pool_starvation.py", &[case]));
            let d = dump(&fx, &[]);
            let v = &d.json["verdict"];
            if d.code != 1 || v["kind"] != "deadlock" || v["deadlock"] != true || !d.deadlocks().is_empty() {
                d.fail(format_args!("{case}: expected a pool starvation (exit 1): {v}"));
            }
            let executor = hex(fx.lock("executor"));
            let names = ["ThreadPoolExecutor-0_0", "ThreadPoolExecutor-0_1"];
            let workers: Vec<i32> = names.iter().map(|n| tid(&fx, n)).collect();
            let mut sorted = workers.clone();
            sorted.sort_unstable();
            assert_eq!(
                v["headline"],
                format!(
                    "Found 1 deadlock: pool starvation: both workers of ThreadPoolExecutor executor ({executor}, \
                     threads ThreadPoolExecutor-0_*) wait on futures that only its workers can run"
                ),
                "{case}"
            );
            let ps = v["pool_starvations"].as_array().expect("pool_starvations");
            assert_eq!(ps.len(), 1, "{case}: {v}");
            let p = &ps[0];
            assert_eq!(p["pid"], fx.pid(), "{case}");
            assert_eq!(p["executor"], executor, "{case}");
            assert_eq!(p["executor_type"], "ThreadPoolExecutor", "{case}");
            assert_eq!(p["executor_name"], "executor", "{case}");
            assert_eq!(p["thread_name_prefix"], "ThreadPoolExecutor-0", "{case}");
            assert_eq!(p["max_workers"], 2, "{case}");
            assert_eq!(p["workers"], serde_json::json!(sorted), "{case}: {p}");
            let inner = |n: &str| hex(fx.lock(&format!("inner@{n}")));
            let mut queued: Vec<String> = p["queued"]
                .as_array()
                .expect("queued")
                .iter()
                .map(|q| q.as_str().unwrap_or_default().to_string())
                .collect();
            queued.sort();
            let mut want: Vec<String> = names.iter().map(|n| inner(n)).collect();
            want.sort();
            assert_eq!(queued, want, "{case}: both inner futures are queued: {p}");
            let mut positions = Vec::new();
            for (n, &t) in names.iter().zip(&workers) {
                let k = sorted.iter().position(|&s| s == t).expect("worker listed");
                let w = &p["waits"][k];
                assert_eq!(w["tid"], t, "{case}: {w}");
                assert_eq!(w["future"], inner(n), "{case}: {n} waits for its own inner future: {w}");
                assert_eq!(w["future_name"], "fut", "{case}");
                assert_eq!(w["state"], "PENDING", "{case}");
                assert_eq!(w["run_by_tid"], Value::Null, "{case}");
                let pos = w["queued_position"].as_u64().expect("queued_position");
                assert_eq!(p["queued"][pos as usize], inner(n), "{case}: position of {n}'s future");
                positions.push(pos);
                let th = d.thread(t);
                assert_eq!(th["python_name"], *n, "{case}");
                assert_eq!(th["asleep_for_good"], true, "{case}: {th}");
                let why = th["why"].as_str().unwrap_or_default();
                assert_eq!(
                    why,
                    format!(
                        "pool starvation: it waits for a task still queued in executor ({executor}), and both \
                         workers of the pool wait for tasks only its workers can run"
                    ),
                    "{case}"
                );
                assert_eq!(th["pool_wait"]["executor"], executor, "{case}");
                assert_eq!(th["pool_wait"]["future"], inner(n), "{case}");
                let b = &th["blocked_on"];
                assert_eq!(b["kind"], "py_condition", "{case}: {b}");
                let line = ready_line(&fx, "pool_starvation.py", n, "worker");
                assert_at(&d, n, &b["site"], "pool_starvation.py", line);
            }
            positions.sort_unstable();
            assert_eq!(positions, [0, 1], "{case}");
            let main = tid(&fx, "main");
            let behind = p["blocked_behind"].as_array().expect("blocked_behind");
            if case == "main_waits" {
                let runs_outer0 = names
                    .iter()
                    .zip(&workers)
                    .find(|(n, _)| fx.ready.raw["runs"][**n] == "outer0")
                    .map(|(_, &t)| t)
                    .expect("a worker runs outer0");
                assert_eq!(behind.len(), 1, "{case}: {p}");
                assert_eq!(behind[0]["tid"], main, "{case}");
                assert_eq!(behind[0]["future"], hex(fx.lock("outer0")), "{case}");
                assert_eq!(behind[0]["future_name"], "outer0", "{case}");
                assert_eq!(behind[0]["state"], "RUNNING", "{case}");
                assert_eq!(behind[0]["run_by_tid"], runs_outer0, "{case}: {p}");
                assert_eq!(
                    v["stuck"][0]["whole_process"], true,
                    "{case}: every thread is asleep: {v}"
                );
                let line = ready_line(&fx, "pool_starvation.py", "main", "main_waits");
                assert_at(
                    &d,
                    "main",
                    &d.thread(main)["blocked_on"]["site"],
                    "pool_starvation.py",
                    line,
                );
            } else {
                assert!(behind.is_empty(), "{case}: {p}");
                assert_eq!(v["stuck"], serde_json::json!([]), "{case}: main sleeps: not stuck: {v}");
                assert_eq!(d.thread(main)["asleep_for_good"], false, "{case}");
            }
            // The text report says the same, naming each worker.
            let (code, text) = dump_text(&fx);
            assert_eq!(code, 1, "{case}: {text}");
            assert!(
                text.contains("Deadlock #1: pool starvation (2 threads, confidence: exact)"),
                "{case}: {text}"
            );
            for (n, &t) in names.iter().zip(&workers) {
                let line = format!("Thread {t} ");
                let row = text
                    .lines()
                    .find(|l| l.trim_start().starts_with(&line) && l.contains("waits for future fut ("))
                    .unwrap_or_else(|| panic!("{case}: no line for worker {t}:\n{text}"));
                assert!(row.contains(&format!("(Python \"{n}\")")), "{case}: {row}");
                assert!(row.contains(&inner(n)) && row.contains("PENDING"), "{case}: {row}");
            }
            format!(
                "{case}: exit {} {} workers {} behind {}",
                d.code,
                v["kind"],
                p["workers"].as_array().map_or(0, Vec::len),
                behind.len()
            )
        });
    }
}

/// Healthy pools (issue 20.3 controls), 100 dumps each on every interpreter:
/// workers waiting on futures a thread outside the pool completes, a pool
/// whose nested tasks free workers run, an idle pool. Never a starvation,
/// never stuck, never a deadlock.
#[test]
fn healthy_pools_are_never_starved() {
    const DUMPS: usize = 100;
    for case in ["outside", "nested", "idle"] {
        on_every_python(|py| {
            let cmd = python_fixture(&py.path, "healthy_pool.py", &[case]);
            let fx = if case == "nested" {
                Fixture::spawn(cmd)
            } else {
                Fixture::spawn_blocked(cmd)
            };
            let mut saw_pool_wait = 0;
            for round in 0..DUMPS {
                let d = dump(&fx, &[]);
                let v = &d.json["verdict"];
                if d.code != 0 || v["kind"] != "no_hang_found" {
                    d.fail(format_args!("{case} round {round}: expected no hang: {v}"));
                }
                d.assert_no_deadlock();
                assert_eq!(v["pool_starvations"], serde_json::json!([]), "{case} round {round}");
                assert_eq!(v["stuck"], serde_json::json!([]), "{case} round {round}");
                saw_pool_wait += d.json["threads"]
                    .as_array()
                    .expect("threads")
                    .iter()
                    .filter(|t| !t["pool_wait"].is_null())
                    .count();
                if case == "outside" {
                    // Future() objects are no pool's tasks.
                    for n in ["ThreadPoolExecutor-0_0", "ThreadPoolExecutor-0_1"] {
                        let th = d.thread(tid(&fx, n));
                        assert_eq!(th["pool_wait"], Value::Null, "{case}: {th}");
                        assert_eq!(th["blocked_on"]["kind"], "py_condition", "{case}: {th}");
                        assert_eq!(th["asleep_for_good"], false, "{case}: {th}");
                        let line = ready_line(&fx, "healthy_pool.py", n, "outside");
                        assert_at(&d, n, &th["blocked_on"]["site"], "healthy_pool.py", line);
                    }
                }
            }
            if case != "nested" {
                assert_eq!(saw_pool_wait, 0, "{case}: no thread waits for a pool task");
            }
            format!("{case}: {DUMPS} dumps, exit 0")
        });
    }
}

/// multiprocessing's locks (POSIX semaphores taken in C). Issue 16.1, the
/// frame that matters: `with mp_lock:` runs SemLock.__enter__ in
/// multiprocessing/synchronize.py before the C acquire; the wait is shown at
/// the program's `with` line, and a direct `mp_sem.acquire()` at its line.
/// The Lock's owner is the thread its SemLock records (count 1, last_tid):
/// exact; the counting Semaphore has none.
#[test]
fn multiprocessing_waits_name_the_lock_its_owner_and_the_programs_line() {
    on_every_python(|py| {
        let fx = Fixture::spawn_blocked(python_fixture(&py.path, "multiprocessing_waits.py", &["waits"]));
        let d = dump(&fx, &[]);
        d.assert_no_deadlock();
        let holder = tid(&fx, "holder");
        for (name, lock, kind, owner) in [
            ("with_waiter", "mp_lock", "py_mp_lock", Value::from(holder)),
            ("sem_waiter", "mp_sem", "semaphore", Value::Null),
        ] {
            let b = &d.thread(tid(&fx, name))["blocked_on"];
            let sem = format!("{lock}_sem");
            if b["kind"] != kind || b["address"] != hex(fx.lock(&sem)) || b["name"] != lock || b["owner_tid"] != owner {
                d.fail(format_args!(
                    "{name}: expected a wait on {kind} {lock} ({sem}) owned by {owner}: {b}"
                ));
            }
            let line = ready_line(&fx, "multiprocessing_waits.py", name, name);
            assert_at(&d, name, &b["site"], "multiprocessing_waits.py", line);
            if b["site"]["function"] != name {
                d.fail(format_args!("{name}: site function {}", b["site"]));
            }
        }
        let b = &d.thread(tid(&fx, "with_waiter"))["blocked_on"];
        assert_eq!(b["confidence"], "exact", "{b}");
        let holds = d.thread(holder)["holds"].clone();
        let held: Vec<&Value> = holds.as_array().into_iter().flatten().map(|h| &h["name"]).collect();
        if !held.contains(&&Value::from("mp_lock")) {
            d.fail(format_args!("holder must hold mp_lock: {holds}"));
        }
        "ok".to_string()
    });
}

/// `waiter` waits for the multiprocessing lock READY calls `lock` (at the
/// address of its sem_t, `{lock}_sem`), held by `owner` (TID, PID), exact, at
/// the line marked `marker`.
fn check_mp_lock_wait(d: &Dump, fx: &Fixture, waiter: &str, marker: &str, lock: &str, owner: (i32, i32)) {
    let b = &d.thread(tid(fx, waiter))["blocked_on"];
    let sem = format!("{lock}_sem");
    if b["kind"] != "py_mp_lock"
        || b["address"] != hex(fx.lock(&sem))
        || b["name"] != lock
        || (&b["owner_tid"], &b["owner_pid"]) != (&Value::from(owner.0), &Value::from(owner.1))
        || b["confidence"] != "exact"
    {
        d.fail(format_args!(
            "{waiter}: expected {lock} held by {owner:?} (TID, PID), exact: {b}"
        ));
    }
    let line = ready_line(fx, "multiprocessing_waits.py", waiter, marker);
    assert_at(d, waiter, &b["site"], "multiprocessing_waits.py", line);
}

/// AB-BA between a multiprocessing.Lock and a multiprocessing.RLock (held
/// twice) in threads of one process: a deadlock, both owners exact from the
/// SemLocks, each thread at its own line.
#[test]
fn multiprocessing_lock_cycle_is_a_deadlock() {
    on_every_python(|py| {
        let fx = Fixture::spawn_blocked(python_fixture(&py.path, "multiprocessing_waits.py", &["abba"]));
        let d = dump(&fx, &[]);
        let (t1, t2) = (tid(&fx, "t1"), tid(&fx, "t2"));
        if d.code != 1 || d.deadlocks().len() != 1 {
            d.fail(format_args!("expected one deadlock (exit 1): {}", d.json["verdict"]));
        }
        for (waiter, lock, owner) in [("t1", "rlock_b", t2), ("t2", "lock_a", t1)] {
            check_mp_lock_wait(&d, &fx, waiter, waiter, lock, (owner, fx.pid()));
        }
        let mut members = d.deadlocks()[0]["threads"].as_array().cloned().unwrap_or_default();
        members.sort_by_key(|v| v.as_i64());
        let mut want = vec![Value::from(t1), Value::from(t2)];
        want.sort_by_key(|v| v.as_i64());
        assert_eq!(members, want, "{}", d.json["deadlocks"]);
        "ok".to_string()
    });
}

/// A multiprocessing.Lock cycle between a process and its forked child:
/// each process's SemLock records only its own holder, and the waiter's
/// sees count 0; dumped with `--tree`, the two are matched through the
/// shared semaphore mapping: one deadlock across the processes, exact.
#[test]
fn multiprocessing_lock_cycle_across_processes() {
    on_every_python(|py| {
        let fx = Fixture::spawn_blocked(python_fixture(&py.path, "multiprocessing_waits.py", &["across"]));
        let (parent, child) = (fx.ready.pids["parent"], fx.ready.pids["child"]);
        assert_eq!(fx.tid("child"), child);
        let d = dump(&fx, &["--tree"]);
        let t1 = tid(&fx, "t1");
        if d.code != 1 || d.deadlocks().len() != 1 {
            d.fail(format_args!("expected one deadlock (exit 1): {}", d.json["verdict"]));
        }
        for (waiter, marker, lock, owner) in [
            ("t1", "t1_across", "lock_b", (child, child)),
            ("child", "child", "lock_a", (t1, parent)),
        ] {
            check_mp_lock_wait(&d, &fx, waiter, marker, lock, owner);
        }
        "ok".to_string()
    });
}

/// Healthy control for multiprocessing lock owners: four threads take and
/// release one multiprocessing.Lock in a loop. The SemLock is read after the
/// stop, so a waiter the stop caught may have taken the lock by then: read
/// naively, that made "self-deadlocks" (9 in 150 dumps on 3.13). 100 dumps
/// per interpreter: never a deadlock, never stuck.
#[test]
fn contended_multiprocessing_lock_is_never_a_deadlock() {
    on_every_python(|py| {
        let fx = Fixture::spawn(python_fixture(&py.path, "multiprocessing_waits.py", &["contend"]));
        for round in 0..100 {
            let d = dump(&fx, &[]);
            if d.code != 0 || !d.deadlocks().is_empty() {
                d.fail(format_args!("round {round}: {}", d.json["verdict"]));
            }
        }
        "ok".to_string()
    });
}
