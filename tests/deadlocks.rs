//! Issue 3 end to end: the real `lockdump` binary against every native
//! fixture (fixtures/README.md). Each test starts a fixture, waits until its
//! threads sit in their blocking calls for good, runs `lockdump --json` (and
//! for some the text report), and checks the verdict against what the
//! fixture's READY line says: the exit code, the TIDs of each cycle in cycle
//! order (up to rotation), the lock addresses and symbol names, the kind and
//! confidence of every edge, each thread's `blocked_on`, the threads blocked
//! behind a cycle, and the source line each thread waits at.
//!
//! Every run prints one line `[deadlocks] fixture | verdict | cycle | locks |
//! confidence | time` to stderr (`--nocapture` shows them): the table the
//! issue's closing note asks for. Times are printed, never asserted.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::throttle::Throttle;
use common::{
    c_fixture, fixtures_dir, marked_line, run_lockdump, rust_example, tid_ranges, Dump, Fixture, TargetKind, Variant,
};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Running lockdump
// ---------------------------------------------------------------------------

/// `lockdump --json -p PID [-p PID...]` on the live processes, timed.
fn lockdump_json(pids: &[i32]) -> Dump {
    common::dump(TargetKind::Live, pids, &[]).expect_verdict()
}

/// Dump the fixture as `kind` and print its table row (see [`record`]).
fn dumped(fx: &Fixture, fixture: &str, kind: TargetKind) -> Dump {
    let run = common::dump(kind, &[fx.pid()], &[]).expect_verdict();
    record(fixture, &run);
    run
}

/// `lockdump --color never -p PID` (the text report), timed.
fn lockdump_text(pid: i32) -> Dump {
    let started = Instant::now();
    let out = run_lockdump(&["--color", "never", "-p", &pid.to_string()]);
    let elapsed = started.elapsed();
    Dump {
        kind: TargetKind::Live,
        out,
        json: Value::Null,
        elapsed,
    }
}

/// The table row for the final report: fixture, verdict, cycle TIDs, lock
/// names, confidence and lockdump's wall time.
fn record(fixture: &str, run: &Dump) {
    let j = &run.json;
    let cycles: Vec<String> = j["deadlocks"]
        .as_array()
        .map(|ds| ds.iter().map(|d| d["threads"].to_string()).collect())
        .unwrap_or_default();
    let locks: Vec<String> = j["deadlocks"]
        .as_array()
        .map(|ds| ds.iter().map(|d| d["resource_names"].to_string()).collect())
        .unwrap_or_default();
    let conf: Vec<String> = j["deadlocks"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .map(|d| d["confidence"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    let orphaned = j["verdict"]["orphaned_locks"].as_u64().unwrap_or(0);
    let from = match run.kind {
        TargetKind::Live => "",
        TargetKind::Core => " (gcore)",
    };
    eprintln!(
        "[deadlocks] {fixture}{from} | exit {:?}, {}{} | cycles {} | locks {} | confidence {} | lockdump {:.0} ms",
        run.code(),
        j["verdict"]["headline"].as_str().unwrap_or("?"),
        if orphaned > 0 {
            format!(" ({orphaned} orphaned lock)")
        } else {
            String::new()
        },
        if cycles.is_empty() {
            "-".into()
        } else {
            cycles.join(" ")
        },
        if locks.is_empty() { "-".into() } else { locks.join(" ") },
        if conf.is_empty() { "-".into() } else { conf.join(" ") },
        run.elapsed.as_secs_f64() * 1000.0
    );
}

// ---------------------------------------------------------------------------
// Reading the JSON
// ---------------------------------------------------------------------------

fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

fn thread(doc: &Value, tid: i32) -> &Value {
    doc["threads"]
        .as_array()
        .expect("threads[]")
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("thread {tid} missing from lockdump's output"))
}

fn deadlocks(doc: &Value) -> &Vec<Value> {
    doc["deadlocks"].as_array().expect("deadlocks[]")
}

fn tids(v: &Value) -> Vec<i32> {
    v.as_array()
        .expect("array of TIDs")
        .iter()
        .map(|t| t.as_i64().expect("TID") as i32)
        .collect()
}

fn file_name(path: &str) -> &str {
    Path::new(path).file_name().and_then(|f| f.to_str()).unwrap_or(path)
}

fn c_source(name: &str) -> PathBuf {
    fixtures_dir().join("c").join(name)
}

fn rust_source(name: &str) -> PathBuf {
    fixtures_dir().join("rust").join(name)
}

/// Where a thread is expected to wait: the function that called the lock
/// function, and the marked source line of that call.
#[derive(Debug, Clone)]
struct Site {
    function: String,
    file: PathBuf,
    marker: &'static str,
}

fn site(function: &str, file: PathBuf, marker: &'static str) -> Site {
    Site {
        function: function.to_string(),
        file,
        marker,
    }
}

impl Site {
    fn line(&self) -> u32 {
        marked_line(&self.file, self.marker)
    }
    /// `json` is a `{function, file, line}` object.
    fn check(&self, json: &Value, what: &str) {
        assert_eq!(
            json["function"],
            self.function.as_str(),
            "{what}: site function in {json}"
        );
        let file = json["file"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: site without file: {json}"));
        let want = self.file.file_name().unwrap().to_str().unwrap();
        assert_eq!(file_name(file), want, "{what}: site file in {json}");
        assert_eq!(
            json["line"],
            self.line(),
            "{what}: site line ({}) in {json}",
            self.marker
        );
    }
    /// `function (file.c:LINE)` as the text report prints it.
    fn text(&self) -> String {
        format!(
            "{} ({}:{})",
            self.function,
            self.file.file_name().unwrap().to_str().unwrap(),
            self.line()
        )
    }
}

/// What a waiter waits for.
#[derive(Debug, Clone)]
enum Target {
    /// A lock the READY line lists (by its READY name), with the name
    /// lockdump's symbol lookup gives it (None: no symbol covers it).
    Lock {
        ready: &'static str,
        symbol: Option<String>,
    },
    /// Another thread's exit (pthread_join / JoinHandle::join), by READY name.
    Join(&'static str),
}

fn lock(ready: &'static str) -> Target {
    Target::Lock {
        ready,
        symbol: Some(ready.to_string()),
    }
}

/// One edge of an expected cycle: `waiter` waits for `target` (of `kind`),
/// held by `owner` with `confidence`, at `site`.
#[derive(Debug, Clone)]
struct Hop {
    waiter: &'static str,
    target: Target,
    kind: &'static str,
    owner: &'static str,
    confidence: &'static str,
    site: Site,
}

/// The expected `blocked_on` of the hop's waiter, field by field.
fn check_blocked_on(fx: &Fixture, doc: &Value, hop: &Hop, owner_pid: i32) {
    let tid = fx.tid(hop.waiter);
    let b = &thread(doc, tid)["blocked_on"];
    let what = format!("blocked_on of {} ({tid})", hop.waiter);
    assert!(b.is_object(), "{what}: missing in {}", thread(doc, tid));
    assert_eq!(b["kind"], hop.kind, "{what}: {b}");
    match &hop.target {
        Target::Lock { ready, symbol } => {
            assert_eq!(b["address"], hex(fx.lock(ready)), "{what}: {b}");
            assert_eq!(b["name"].as_str(), symbol.as_deref(), "{what}: {b}");
        }
        Target::Join(joined) => assert_eq!(b["name"], joined_name(doc, joined), "{what}: {b}"),
    }
    assert_eq!(b["owner_tid"], fx.tid(hop.owner), "{what}: {b}");
    assert_eq!(b["owner_pid"], owner_pid, "{what}: {b}");
    assert_eq!(b["confidence"], hop.confidence, "{what}: {b}");
    assert_eq!(b["owner_exited"], false, "{what}: {b}");
    hop.site.check(&b["site"], &what);
}

/// Check that `doc` reports exactly one deadlock whose cycle is `hops` (in
/// this order, up to rotation) with `confidence`, and that every waiter's
/// `blocked_on` says the same. `pid_of` gives each thread's process.
fn check_cycle(fx: &Fixture, run: &Dump, hops: &[Hop], confidence: &str, pid_of: &dyn Fn(&str) -> i32) {
    let doc = &run.json;
    assert_eq!(
        run.code(),
        Some(1),
        "exit code with a deadlock; stderr: {}",
        run.stderr()
    );
    assert_eq!(doc["verdict"]["deadlock"], true, "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["deadlocks"], 1, "{}", doc["verdict"]);
    let ds = deadlocks(doc);
    assert_eq!(ds.len(), 1, "exactly one cycle: {ds:#?}");
    let d = &ds[0];
    let got = tids(&d["threads"]);
    let want: Vec<i32> = hops.iter().map(|h| fx.tid(h.waiter)).collect();
    assert_eq!(got.len(), want.len(), "cycle {got:?}, expected {want:?}");
    // Cycle order up to rotation: rotate the expectation to start where lockdump's does.
    let start = want
        .iter()
        .position(|&t| t == got[0])
        .unwrap_or_else(|| panic!("cycle {got:?} starts with a thread outside {want:?}"));
    let hops: Vec<&Hop> = (0..hops.len()).map(|i| &hops[(start + i) % hops.len()]).collect();
    let want: Vec<i32> = hops.iter().map(|h| fx.tid(h.waiter)).collect();
    assert_eq!(got, want, "cycle order");
    let pids: Vec<i32> = hops.iter().map(|h| pid_of(h.waiter)).collect();
    assert_eq!(tids(&d["pids"]), pids, "PIDs of the cycle's threads");
    assert_eq!(d["confidence"], confidence, "cycle confidence: {d}");
    let edges = d["edges"].as_array().expect("edges[]");
    assert_eq!(edges.len(), hops.len(), "one edge per thread: {d}");
    for (i, (hop, e)) in hops.iter().zip(edges).enumerate() {
        let what = format!("edge {i} ({} -> {})", hop.waiter, hop.owner);
        assert_eq!(e["from_tid"], fx.tid(hop.waiter), "{what}: {e}");
        assert_eq!(e["from_pid"], pid_of(hop.waiter), "{what}: {e}");
        assert_eq!(e["to_tid"], fx.tid(hop.owner), "{what}: {e}");
        assert_eq!(e["to_pid"], pid_of(hop.owner), "{what}: {e}");
        assert_eq!(e["kind"], hop.kind, "{what}: {e}");
        assert_eq!(e["confidence"], hop.confidence, "{what}: {e}");
        assert!(
            e["evidence"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: no evidence: {e}"
        );
        assert_eq!(d["resources"][i], e["address"], "{what}: resources[{i}]");
        assert_eq!(d["resource_names"][i], e["name"], "{what}: resource_names[{i}]");
        match &hop.target {
            Target::Lock { ready, symbol } => {
                assert_eq!(e["address"], hex(fx.lock(ready)), "{what}: address of {ready}: {e}");
                assert_eq!(e["name"].as_str(), symbol.as_deref(), "{what}: name of {ready}: {e}");
            }
            Target::Join(joined) => {
                assert_eq!(
                    e["name"],
                    joined_name(doc, joined),
                    "{what}: the joined thread's name: {e}"
                );
                assert!(
                    e["address"].as_str().is_some_and(|a| a.starts_with("0x")),
                    "{what}: {e}"
                );
            }
        }
        hop.site.check(&e["site"], &what);
        check_blocked_on(fx, doc, hop, pid_of(hop.owner));
    }
}

/// `verdict.blocked_behind` lists exactly these threads (READY names).
fn check_blocked_behind(fx: &Fixture, doc: &Value, names: &[&str]) {
    let mut got = tids(&doc["verdict"]["blocked_behind"]);
    got.sort_unstable();
    let mut want: Vec<i32> = names.iter().map(|n| fx.tid(n)).collect();
    want.sort_unstable();
    assert_eq!(got, want, "blocked_behind (expected {names:?}): {}", doc["verdict"]);
}

/// The verdict, deadlock and edge objects have exactly the fields
/// docs/json-schema.md documents for this schema version.
fn check_documented_fields(doc: &Value) {
    assert_eq!(doc["schema_version"], 7, "docs/json-schema.md documents version 7");
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    let sorted = |names: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        keys(&doc["verdict"]),
        sorted(&[
            "kind",
            "exit_code",
            "complete",
            "unexamined",
            "waiting_behind",
            "deadlock",
            "deadlocks",
            "orphaned_locks",
            "blocked_behind",
            "blocked_behind_processes",
            "all_blocked",
            "cycles_truncated",
            "headline",
            "stuck",
            "pool_starvations",
            "await_cycles",
            "process_cycles"
        ])
    );
    let v = &doc["verdict"];
    assert_eq!(
        (&v["kind"], &v["exit_code"], &v["complete"], &v["unexamined"]),
        (
            &Value::from("deadlock"),
            &Value::from(1),
            &Value::from(true),
            &Value::Array(vec![])
        ),
        "a deadlock with everything examined"
    );
    let d = &deadlocks(doc)[0];
    assert_eq!(
        keys(d),
        sorted(&[
            "threads",
            "pids",
            "resources",
            "resource_names",
            "edges",
            "confidence",
            "breaks_by_timeout_in_ms",
            "signal_handler"
        ])
    );
    assert_eq!(
        keys(&d["edges"][0]),
        sorted(&[
            "from_tid",
            "from_pid",
            "to_tid",
            "to_pid",
            "kind",
            "address",
            "name",
            "confidence",
            "evidence",
            "site"
        ])
    );
}

/// The name a wait for the exit of the thread READY calls `joined` gives
/// it: that thread's name, which a core does not record (docs/json-schema.md,
/// version 5: "for cores, threads have empty names"). From a core it is
/// empty; the owner TID the callers also check still says which thread.
fn joined_name<'a>(doc: &Value, joined: &'a str) -> &'a str {
    if doc["source"]["kind"] == "core" {
        ""
    } else {
        joined
    }
}

/// main joins the READY thread `joined` (exact edge, not in any cycle).
fn check_main_joins(fx: &Fixture, doc: &Value, joined: &str, site: Site) {
    let b = &thread(doc, fx.tid("main"))["blocked_on"];
    assert_eq!(b["kind"], "thread", "main's wait: {b}");
    assert_eq!(b["name"], joined_name(doc, joined), "main's wait: {b}");
    assert_eq!(b["owner_tid"], fx.tid(joined), "main's wait: {b}");
    assert_eq!(b["owner_pid"], fx.pid(), "main's wait: {b}");
    assert_eq!(b["confidence"], "exact", "main's wait: {b}");
    site.check(&b["site"], "main's join");
}

/// No deadlock: exit 0, an empty `deadlocks`, the "No deadlock" headline.
fn check_no_deadlock(run: &Dump) {
    let doc = &run.json;
    assert_eq!(
        run.code(),
        Some(0),
        "exit code without a deadlock; stderr: {}",
        run.stderr()
    );
    assert_eq!(doc["verdict"]["deadlock"], false, "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["deadlocks"], 0, "{}", doc["verdict"]);
    assert!(deadlocks(doc).is_empty(), "{:#?}", doc["deadlocks"]);
    let h = doc["verdict"]["headline"].as_str().unwrap_or_default();
    assert!(
        h == "No deadlock found." || h.starts_with("No deadlock found; "),
        "{}",
        doc["verdict"]
    );
}

/// Stuck (issue 20): exit 1, no cycle, `verdict.kind` "stuck", the whole
/// process listed with exactly the READY threads `names` (all of them, when
/// `names` is empty), each `asleep_for_good` with its reason.
fn check_stuck(fx: &Fixture, run: &Dump, pid: i32, names: &[&str]) {
    let doc = &run.json;
    let v = &doc["verdict"];
    assert_eq!(run.code(), Some(1), "a stuck process exits 1; stderr: {}", run.stderr());
    assert_eq!(
        (&v["kind"], &v["exit_code"]),
        (&Value::from("stuck"), &Value::from(1)),
        "{v}"
    );
    assert!(deadlocks(doc).is_empty(), "{:#?}", doc["deadlocks"]);
    let mut want: Vec<i32> = if names.is_empty() {
        fx.ready
            .threads
            .values()
            .copied()
            .filter(|&t| common::tgid_of(t).ok() == Some(pid))
            .collect()
    } else {
        names.iter().map(|n| fx.tid(n)).collect()
    };
    want.sort_unstable();
    let stuck = v["stuck"].as_array().expect("verdict.stuck");
    assert_eq!(stuck.len(), 1, "{v}");
    assert_eq!(
        (&stuck[0]["pid"], &stuck[0]["whole_process"]),
        (&Value::from(pid), &Value::from(true)),
        "{v}"
    );
    assert_eq!(tids(&stuck[0]["threads"]), want, "{v}");
    let n = want.len();
    assert_eq!(
        v["headline"],
        format!(
            "Stuck: no thread of PID {pid} can ever run again ({n} thread{} asleep for good)",
            if n == 1 { "" } else { "s" }
        ),
        "{v}"
    );
    for &t in &want {
        let th = thread(doc, t);
        assert_eq!(th["asleep_for_good"], true, "{th}");
        assert!(th["why"].as_str().is_some_and(|w| !w.is_empty()), "{th}");
    }
}

/// Not stuck: exit 0, every thread judged, none asleep for good.
fn check_not_stuck(run: &Dump) {
    check_no_deadlock(run);
    let v = &run.json["verdict"];
    assert_eq!(v["kind"], "no_hang_found", "{v}");
    assert_eq!(v["stuck"], Value::Array(vec![]), "{v}");
    for t in run.json["threads"].as_array().expect("threads") {
        assert_eq!(t["asleep_for_good"], false, "{t}");
        assert!(t["why"].is_string(), "{t}");
    }
}

/// A wait on an object without an owner (condvar, semaphore, barrier).
fn check_ownerless(fx: &Fixture, doc: &Value, waiter: &str, kind: &str, object: &str) {
    let tid = fx.tid(waiter);
    let b = &thread(doc, tid)["blocked_on"];
    assert_eq!(b["kind"], kind, "{waiter}: {b}");
    assert_eq!(b["address"], hex(fx.lock(object)), "{waiter}: {b}");
    assert_eq!(b["name"], object, "{waiter}: {b}");
    assert_eq!(b["owner_tid"], Value::Null, "{waiter}: {b}");
    assert_eq!(b["owner_pid"], Value::Null, "{waiter}: {b}");
    assert_eq!(b["confidence"], "unknown", "{waiter}: {b}");
}

fn same_pid(fx: &Fixture) -> impl Fn(&str) -> i32 + '_ {
    move |_| fx.pid()
}

fn start_c(name: &str) -> Fixture {
    Fixture::spawn_blocked(c_fixture(name, Variant::Debug, &[]))
}

fn start_rust(name: &str) -> Fixture {
    Fixture::spawn_blocked(std::process::Command::new(rust_example(name)))
}

/// The headline for `n` threads and `m` locks of one mutex kind.
fn mutex_headline(threads: usize, mutexes: usize) -> String {
    format!(
        "Found 1 deadlock ({threads} thread{}, {mutexes} mutex{})",
        if threads == 1 { "" } else { "s" },
        if mutexes == 1 { "" } else { "es" }
    )
}

// ---------------------------------------------------------------------------
// C deadlocks
// ---------------------------------------------------------------------------

/// The AB-BA cycle of fixtures/c/abba.c: t1 holds lock_a and waits for
/// lock_b, t2 the reverse.
fn abba_hops() -> [Hop; 2] {
    abba_hops_in("abba.c", "")
}

/// The AB-BA cycle of `file` (abba.c's shape: t1_main and t2_main), its
/// locks named `{prefix}lock_a` and `{prefix}lock_b`.
fn abba_hops_in(file: &str, prefix: &str) -> [Hop; 2] {
    let src = c_source(file);
    let lock = |ready: &'static str| Target::Lock {
        ready,
        symbol: Some(format!("{prefix}{ready}")),
    };
    [
        Hop {
            waiter: "t1",
            target: lock("lock_b"),
            kind: "mutex",
            owner: "t2",
            confidence: "exact",
            site: site("t1_main", src.clone(), "t1"),
        },
        Hop {
            waiter: "t2",
            target: lock("lock_a"),
            kind: "mutex",
            owner: "t1",
            confidence: "exact",
            site: site("t2_main", src, "t2"),
        },
    ]
}

#[test]
fn abba() {
    let fx = start_c("abba");
    let run = dumped(&fx, "abba", TargetKind::Live);
    let src = c_source("abba.c");
    let hops = abba_hops();
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    assert_eq!(run.json["verdict"]["headline"], mutex_headline(2, 2));
    check_blocked_behind(&fx, &run.json, &["main"]);
    check_main_joins(&fx, &run.json, "t1", site("main", src.clone(), "main"));
    check_documented_fields(&run.json);
    // Each thread holds the lock the other one waits for.
    for (holder, held) in [("t1", "lock_a"), ("t2", "lock_b")] {
        let holds = thread(&run.json, fx.tid(holder))["holds"].as_array().unwrap().clone();
        assert!(
            holds
                .iter()
                .any(|h| h["address"] == hex(fx.lock(held)) && h["name"] == held && h["confidence"] == "exact"),
            "{holder} holds {held}: {holds:?}"
        );
    }

    // The text report: the headline first, then the cycle in jstack style
    // naming both threads, both locks and where each waits (file:line).
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1), "text report exit code; stderr: {}", text.stderr());
    let out = text.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("Found 1 deadlock (2 threads, 2 mutexes)"),
        "{out}"
    );
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let section: Vec<&str> = lines
        .iter()
        .skip_while(|l| !l.starts_with("Deadlock #1: deadlock (2 threads, confidence: exact)"))
        .take_while(|l| !l.is_empty())
        .copied()
        .collect();
    assert!(!section.is_empty(), "no cycle section in:\n{out}");
    let expect = [
        format!(
            "  Thread {t1} \"t1\" waits for mutex lock_b ({}), held by thread {t2} \"t2\"",
            hex(fx.lock("lock_b"))
        ),
        format!("      waiting in  {}", hops[0].site.text()),
        format!(
            "  Thread {t2} \"t2\" waits for mutex lock_a ({}), held by thread {t1} \"t1\"",
            hex(fx.lock("lock_a"))
        ),
        format!("      waiting in  {}", hops[1].site.text()),
    ];
    // Lines for one edge start at its "Thread" line; the cycle may start at either thread.
    let mut at = 0;
    let first = section
        .iter()
        .position(|l| *l == expect[0] || *l == expect[2])
        .unwrap_or_else(|| panic!("cycle section lacks the edge lines:\n{}", section.join("\n")));
    if section[first] == expect[2] {
        at = 2;
    }
    let mut found = Vec::new();
    for k in 0..2 {
        let head = &expect[(at + 2 * k) % 4];
        let wait = &expect[(at + 2 * k + 1) % 4];
        let i = section
            .iter()
            .position(|l| l == head)
            .unwrap_or_else(|| panic!("missing {head:?} in:\n{}", section.join("\n")));
        assert_eq!(
            section.get(i + 1).copied(),
            Some(wait.as_str()),
            "{}",
            section.join("\n")
        );
        found.push(i);
    }
    assert!(found[0] < found[1], "edges out of cycle order:\n{}", section.join("\n"));
    let main = fx.tid("main");
    assert!(
        section
            .iter()
            .any(|l| l.starts_with(&format!("  Blocked behind it: thread {main} \"abba\""))),
        "main is not listed as blocked behind:\n{}",
        section.join("\n")
    );
}

/// Locks in the zero-filled tail of .bss (fixtures/c/bss_tail_abba.c): that
/// memory is an anonymous mapping, not named after the executable, and a
/// module that ended at its last file-backed mapping left them without a
/// module, a symbol and a name. Where the linker puts a static moves with
/// the executable's size, so any lock could land there (lockdump's own demo
/// lock did when a change grew the binary).
#[test]
fn locks_in_the_zero_filled_tail_of_bss_are_named() {
    let fx = start_c("bss_tail_abba");
    // Only a test if the locks really lie in an anonymous mapping.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", fx.pid())).unwrap();
    for name in ["lock_a", "lock_b"] {
        let addr = fx.lock(name);
        let line = maps
            .lines()
            .find(|l| {
                let range = l.split_whitespace().next().unwrap_or_default();
                let (lo, hi) = range.split_once('-').unwrap_or_default();
                let (lo, hi) = (
                    u64::from_str_radix(lo, 16).unwrap(),
                    u64::from_str_radix(hi, 16).unwrap(),
                );
                (lo..hi).contains(&addr)
            })
            .unwrap_or_else(|| panic!("{name} at {addr:#x} in no mapping:\n{maps}"));
        assert_eq!(
            line.split_whitespace().count(),
            5,
            "{name} at {addr:#x} must lie in an anonymous mapping (the .bss tail) for this test to test anything: {line}"
        );
    }
    let hops = abba_hops_in("bss_tail_abba.c", "tail.");
    let run = dumped(&fx, "bss_tail_abba", TargetKind::Live);
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
}

/// The AB-BA cycle read from a gcore of the fixture: what the live run's
/// JSON says (tests `abba` above), from the core.
#[test]
fn abba_from_a_core() {
    let fx = start_c("abba");
    let run = dumped(&fx, "abba", TargetKind::Core);
    let src = c_source("abba.c");
    check_cycle(&fx, &run, &abba_hops(), "exact", &same_pid(&fx));
    assert_eq!(run.json["verdict"]["headline"], mutex_headline(2, 2));
    check_blocked_behind(&fx, &run.json, &["main"]);
    check_main_joins(&fx, &run.json, "t1", site("main", src, "main"));
    check_documented_fields(&run.json);
    for (holder, held) in [("t1", "lock_a"), ("t2", "lock_b")] {
        let holds = thread(&run.json, fx.tid(holder))["holds"].as_array().unwrap().clone();
        assert!(
            holds
                .iter()
                .any(|h| h["address"] == hex(fx.lock(held)) && h["name"] == held && h["confidence"] == "exact"),
            "{holder} holds {held}: {holds:?}"
        );
    }
}

#[test]
fn ring3() {
    let fx = start_c("ring3");
    for kind in TargetKind::BOTH {
        let run = dumped(&fx, "ring3", kind);
        let s = site("ring_member", c_source("ring3.c"), "wait");
        let hop = |waiter, target: &'static str, owner| Hop {
            waiter,
            target: lock(target),
            kind: "mutex",
            owner,
            confidence: "exact",
            site: s.clone(),
        };
        let hops = [
            hop("t1", "lock_b", "t2"),
            hop("t2", "lock_c", "t3"),
            hop("t3", "lock_a", "t1"),
        ];
        check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
        assert_eq!(run.json["verdict"]["headline"], mutex_headline(3, 3));
        check_blocked_behind(&fx, &run.json, &["main"]);
    }
}

#[test]
fn philosophers() {
    let fx = start_c("philosophers");
    for kind in TargetKind::BOTH {
        let run = dumped(&fx, "philosophers", kind);
        let s = site("philosopher", c_source("philosophers.c"), "wait");
        const PHIL: [&str; 5] = ["phil_0", "phil_1", "phil_2", "phil_3", "phil_4"];
        const FORK: [&str; 5] = ["fork_0", "fork_1", "fork_2", "fork_3", "fork_4"];
        let hops: Vec<Hop> = (0..5)
            .map(|i| Hop {
                waiter: PHIL[i],
                target: lock(FORK[(i + 1) % 5]),
                kind: "mutex",
                owner: PHIL[(i + 1) % 5],
                confidence: "exact",
                site: s.clone(),
            })
            .collect();
        check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
        assert_eq!(run.json["verdict"]["headline"], mutex_headline(5, 5));
        check_blocked_behind(&fx, &run.json, &["main"]);
    }
}

#[test]
fn self_deadlock_is_a_cycle_of_one() {
    let fx = start_c("self_deadlock");
    for kind in TargetKind::BOTH {
        let run = dumped(&fx, "self_deadlock", kind);
        let hops = [Hop {
            waiter: "t1",
            target: lock("lock_self"),
            kind: "mutex",
            owner: "t1",
            confidence: "exact",
            site: site("take_again", c_source("self_deadlock.c"), "t1"),
        }];
        check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
        assert_eq!(run.json["verdict"]["headline"], mutex_headline(1, 1));
        check_blocked_behind(&fx, &run.json, &["main"]);
    }
}

/// The AB-BA shape of cycle2.h with mutexes of `kind` (the JSON kind),
/// checked on the live process and then on a gcore of it: the same cycle
/// (TIDs in order, lock addresses and names, edge kinds and confidence,
/// sites), the same headline, exit code 1, main blocked behind it and
/// joining t1.
fn check_cycle2(fixture: &str, kind: &'static str, confidence: [&'static str; 2], cycle_confidence: &str) {
    let fx = start_c(fixture);
    for target in TargetKind::BOTH {
        let run = dumped(&fx, fixture, target);
        let s = site("cycle2_lock", c_source("cycle2.h"), "lock");
        let hops = [
            Hop {
                waiter: "t1",
                target: lock("lock_b"),
                kind,
                owner: "t2",
                confidence: confidence[0],
                site: s.clone(),
            },
            Hop {
                waiter: "t2",
                target: lock("lock_a"),
                kind,
                owner: "t1",
                confidence: confidence[1],
                site: s.clone(),
            },
        ];
        check_cycle(&fx, &run, &hops, cycle_confidence, &same_pid(&fx));
        assert_eq!(run.json["verdict"]["headline"], mutex_headline(2, 2), "{target:?}");
        check_blocked_behind(&fx, &run.json, &["main"]);
        check_main_joins(&fx, &run.json, "t1", site("cycle2_run", c_source("cycle2.h"), "join"));
    }
}

#[test]
fn recursive_cycle() {
    check_cycle2("recursive_cycle", "recursive_mutex", ["exact", "exact"], "exact");
}

#[test]
fn errorcheck_cycle() {
    check_cycle2("errorcheck_cycle", "error_check_mutex", ["exact", "exact"], "exact");
}

#[test]
fn robust_cycle() {
    check_cycle2("robust_cycle", "robust_mutex", ["exact", "exact"], "exact");
}

/// t1 sleeps in FUTEX_LOCK_PI on lock_b (owner from the lock word: exact).
/// t2 got EDEADLK from the kernel and glibc parked it on a zero word on its
/// own stack: the futex no longer names lock_a, so lockdump recovers the
/// mutex from the lock function's registers and frame, and checks it against
/// the kernel's reason for EDEADLK (lock_a's owner t1 waits in FUTEX_LOCK_PI
/// for a lock t2 owns). That identification is deduced, so the edge is
/// `inferred`, and so is the cycle.
#[test]
fn pi_cycle() {
    check_cycle2("pi_cycle", "pi_mutex", ["exact", "inferred"], "inferred");
}

/// A writer waits for an rwlock read-held by one reader, which waits for the
/// writer's mutex. glibc records only the reader count: the reader is the
/// one thread whose code on its stack read-locked the rwlock (inferred).
#[test]
fn rwlock_read_held_by_the_only_candidate_closes_a_cycle() {
    let fx = start_c("rwlock_reader_cycle");
    let run = lockdump_json(&[fx.pid()]);
    let src = c_source("rwlock_reader_cycle.c");
    let hops = [
        Hop {
            waiter: "writer",
            target: lock("rw"),
            kind: "rw_lock",
            owner: "reader",
            confidence: "inferred",
            site: site("writer_main", src.clone(), "writer"),
        },
        Hop {
            waiter: "reader",
            target: lock("lock_m"),
            kind: "mutex",
            owner: "writer",
            confidence: "exact",
            site: site("reader_main", src.clone(), "reader"),
        },
    ];
    check_cycle(&fx, &run, &hops, "inferred", &same_pid(&fx));
    let w = &thread(&run.json, fx.tid("writer"))["blocked_on"];
    let ev = w["evidence"].as_str().unwrap();
    assert!(
        ev.contains("held by 1 reader(s)")
            && ev.contains(&format!("the only candidate: thread {}", fx.tid("reader")))
            && ev.contains("read-locked it"),
        "{ev}"
    );
}

/// Two readers hold the rwlock: two candidates, no single owner, so no
/// edge; the writer's wait names both, and the process is stuck (exit 1).
#[test]
fn rwlock_read_held_by_two_names_both_candidates() {
    let fx = Fixture::spawn_blocked(c_fixture("rwlock_reader_cycle", Variant::Debug, &["two"]));
    let run = lockdump_json(&[fx.pid()]);
    assert_eq!(run.code(), Some(1));
    assert_eq!(
        run.json["verdict"]["kind"], "stuck",
        "{}",
        run.json["verdict"]["headline"]
    );
    let w = &thread(&run.json, fx.tid("writer"))["blocked_on"];
    assert_eq!(w["confidence"], "unknown", "{w}");
    assert_eq!(w["owner_tid"], Value::Null);
    let ev = w["evidence"].as_str().unwrap();
    assert!(
        ev.contains("held by 2 reader(s)") && ev.contains("candidates: "),
        "{ev}"
    );
    for r in ["reader", "reader2"] {
        assert!(
            ev.contains(&format!("thread {} is inside frame", fx.tid(r))),
            "{r}: {ev}"
        );
    }
    assert!(
        !ev.contains(&format!("thread {} is inside", fx.tid("main"))),
        "main is no candidate: {ev}"
    );
}

#[test]
fn rwlock_mutex_cycle_with_reader_blocked_behind() {
    let fx = start_c("rwlock_mutex_cycle");
    let run = dumped(&fx, "rwlock_mutex_cycle", TargetKind::Live);
    let src = c_source("rwlock_mutex_cycle.c");
    let hops = [
        Hop {
            waiter: "t1",
            target: lock("lock_m"),
            kind: "mutex",
            owner: "t2",
            confidence: "exact",
            site: site("t1_main", src.clone(), "t1"),
        },
        Hop {
            waiter: "t2",
            target: lock("rw_lock"),
            kind: "rw_lock",
            owner: "t1",
            confidence: "exact",
            site: site("t2_main", src.clone(), "t2"),
        },
    ];
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    assert_eq!(
        run.json["verdict"]["headline"],
        "Found 1 deadlock (2 threads, 1 mutex, 1 rwlock)"
    );
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1), "{}", text.stderr());
    assert_eq!(
        text.stdout().lines().next(),
        Some("Found 1 deadlock (2 threads, 1 mutex, 1 rwlock)")
    );
    // t3 (a reader) waits for the writer t1 and is blocked behind the cycle, like main.
    check_blocked_behind(&fx, &run.json, &["main", "t3"]);
    let t3 = Hop {
        waiter: "t3",
        target: lock("rw_lock"),
        kind: "rw_lock",
        owner: "t1",
        confidence: "exact",
        site: site("t3_main", src.clone(), "t3"),
    };
    check_blocked_on(&fx, &run.json, &t3, fx.pid());
    let how = thread(&run.json, fx.tid("t3"))["blocked_on"]["how"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(how.contains("rdlock"), "t3 is a reader: {how}");
}

#[test]
fn join_cycle() {
    let fx = start_c("join_cycle");
    for kind in TargetKind::BOTH {
        let run = dumped(&fx, "join_cycle", kind);
        let src = c_source("join_cycle.c");
        let hops = [
            Hop {
                waiter: "main",
                target: Target::Join("t1"),
                kind: "thread",
                owner: "t1",
                confidence: "exact",
                site: site("main", src.clone(), "main"),
            },
            Hop {
                waiter: "t1",
                target: lock("lock_m"),
                kind: "mutex",
                owner: "main",
                confidence: "exact",
                site: site("t1_main", src.clone(), "t1"),
            },
        ];
        check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
        check_blocked_behind(&fx, &run.json, &[]);
        // A join is not a lock: the headline counts each kind (issue 16.3).
        assert_eq!(
            run.json["verdict"]["headline"],
            "Found 1 deadlock (2 threads, 1 mutex, 1 thread join)"
        );
    }
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1), "{}", text.stderr());
    assert_eq!(
        text.stdout().lines().next(),
        Some("Found 1 deadlock (2 threads, 1 mutex, 1 thread join)")
    );
    // main holds lock_m: its entry says so under its header.
    let holds = format!("  holds: mutex lock_m ({}) — exact", hex(fx.lock("lock_m")));
    let out = text.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let main = lines
        .iter()
        .position(|l| l.starts_with(&format!("Thread {} \"join_cycle\" state S", fx.tid("main"))))
        .unwrap_or_else(|| panic!("no entry for main:\n{out}"));
    assert_eq!(lines.get(main + 1).copied(), Some(holds.as_str()), "{out}");
    let t1 = lines
        .iter()
        .position(|l| l.starts_with(&format!("Thread {} \"t1\" state S", fx.tid("t1"))))
        .unwrap_or_else(|| panic!("no entry for t1:\n{out}"));
    assert!(lines[t1 + 1].starts_with("    #0 "), "t1 holds nothing: {out}");
}

/// The rows of the summary table (the box-drawn table before the stacks),
/// as cells.
fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip_while(|l| !l.starts_with("│ TID"))
        .skip(1)
        .take_while(|l| l.starts_with('│') || l.starts_with('╞') || l.starts_with('├'))
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            l.trim_matches('│')
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// 40 idle pool threads beside an AB-BA pair (issue 16.5): the pool is one
/// entry with one stack and one summary row; the cycle's threads and main
/// stay individual, cycle members first in the table; `--all-threads`
/// lists every thread.
#[test]
fn idle_pool_is_folded_beside_a_deadlock() {
    let fx = start_c("pool_abba");
    let run = dumped(&fx, "pool_abba", TargetKind::Live);
    assert_eq!(run.json["verdict"]["headline"], mutex_headline(2, 2));
    let pool: Vec<i32> = (0..40).map(|k| fx.tid(&format!("pool-{k}"))).collect();
    // JSON is not folded: every thread is listed.
    assert_eq!(run.json["threads"].as_array().unwrap().len(), 43);
    for &tid in &pool {
        assert_eq!(thread(&run.json, tid)["blocked_on"]["name"], "pool_cond");
    }
    // The header shows the call when all 40 are in the same one.
    let texts: Vec<&str> = pool
        .iter()
        .map(|&t| thread(&run.json, t)["syscall"]["text"].as_str().unwrap())
        .collect();
    let call = if texts.iter().all(|t| *t == texts[0]) {
        texts[0].to_string()
    } else {
        "futex(…)".to_string()
    };
    let wchan = thread(&run.json, pool[0])["wchan"].as_str().unwrap().to_string();
    assert!(pool.iter().all(|&t| thread(&run.json, t)["wchan"] == wchan.as_str()));
    let folded = format!(
        "40 threads \"pool-*\" (TIDs {}) state S, in {call}{}",
        tid_ranges(&pool),
        if wchan.is_empty() {
            String::new()
        } else {
            format!(" [{wchan}]")
        }
    );

    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1), "{}", text.stderr());
    let out = text.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], mutex_headline(2, 2));
    let at = lines
        .iter()
        .position(|l| *l == folded)
        .unwrap_or_else(|| panic!("no folded entry {folded:?} in:\n{out}"));
    assert!(lines[at + 1].starts_with("    #0 "), "{out}");
    assert!(
        lines[at..]
            .iter()
            .take_while(|l| !l.is_empty())
            .any(|l| l.contains(" worker+0x") && l.contains("pool_abba.c:")),
        "the one stack is the workers':\n{out}"
    );
    // The stuck section folds them too.
    let stuck = format!(
        "  40 threads \"pool-*\" (TIDs {}) wait for condition variable pool_cond ({})",
        tid_ranges(&pool),
        hex(fx.lock("pool_cond"))
    );
    assert_eq!(lines.iter().filter(|l| **l == stuck).count(), 1, "{stuck:?} in:\n{out}");
    for &tid in &pool {
        assert!(
            !out.contains(&format!("Thread {tid} ")),
            "pool thread {tid} has its own entry:\n{out}"
        );
    }
    // The cycle's threads and main have their own entries; t1 and t2 say what they hold.
    for (name, held) in [("t1", Some("lock_a")), ("t2", Some("lock_b")), ("main", None)] {
        let tid = fx.tid(name);
        let shown = if name == "main" { "pool_abba" } else { name };
        let k = lines
            .iter()
            .position(|l| l.starts_with(&format!("Thread {tid} \"{shown}\" state S")))
            .unwrap_or_else(|| panic!("no entry for {name}:\n{out}"));
        match held {
            Some(l) => assert_eq!(
                lines[k + 1],
                format!("  holds: mutex {l} ({}) — exact", hex(fx.lock(l))),
                "{out}"
            ),
            None => assert!(lines[k + 1].starts_with("    #0 "), "{out}"),
        }
    }
    // The table: the cycle first (t1, t2 in cycle order, lowest TID first),
    // then main and one row for the pool.
    let rows = table_rows(&out);
    let (t1, t2, main) = (fx.tid("t1"), fx.tid("t2"), fx.tid("main"));
    let first = t1.min(t2);
    let second = t1.max(t2);
    assert_eq!(rows.len(), 4, "{rows:?}\n{out}");
    assert_eq!(rows[0][0], first.to_string(), "{rows:?}");
    assert_eq!(rows[1][0], second.to_string(), "{rows:?}");
    assert_eq!(rows[2][0], main.to_string(), "{rows:?}");
    assert_eq!(
        rows[3][..3],
        [
            "40 threads".to_string(),
            "pool-*".to_string(),
            format!("condition variable pool_cond ({})", hex(fx.lock("pool_cond")))
        ],
        "{rows:?}"
    );
    assert_eq!(rows[3][3], "—", "{rows:?}");

    // --all-threads: an entry and a row for every thread.
    let all = run_lockdump(&["--color", "never", "--all-threads", "-p", &fx.pid().to_string()]);
    assert_eq!(all.status.code(), Some(1));
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    assert!(!all.contains("40 threads"), "{all}");
    for (k, &tid) in pool.iter().enumerate() {
        assert_eq!(
            all.lines()
                .filter(|l| l.starts_with(&format!("Thread {tid} \"pool-{k}\" state S")))
                .count(),
            1,
            "pool-{k} ({tid}):\n{all}"
        );
    }
    let rows = table_rows(&all);
    assert_eq!(rows.len(), 43, "{rows:?}");
    assert_eq!(rows[0][0], first.to_string(), "{rows:?}");
    assert_eq!(rows[1][0], second.to_string(), "{rows:?}");
    let pool_rows: Vec<i32> = rows[2..]
        .iter()
        .filter(|r| r[1].starts_with("pool-"))
        .map(|r| r[0].parse().unwrap())
        .collect();
    let mut want = pool.clone();
    want.sort_unstable();
    let mut got = pool_rows.clone();
    got.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn signal_abba_second_lock_in_a_signal_handler() {
    let fx = start_c("signal_abba");
    let run = dumped(&fx, "signal_abba", TargetKind::Live);
    let src = c_source("signal_abba.c");
    let hops = [
        Hop {
            waiter: "t1",
            target: lock("lock_b"),
            kind: "mutex",
            owner: "t2",
            confidence: "exact",
            site: site("t1_main", src.clone(), "t1"),
        },
        Hop {
            waiter: "t2",
            target: lock("lock_a"),
            kind: "mutex",
            owner: "t1",
            confidence: "exact",
            site: site("on_sigusr1", src.clone(), "handler"),
        },
    ];
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    assert_eq!(run.json["verdict"]["headline"], mutex_headline(2, 2));
    check_blocked_behind(&fx, &run.json, &["main"]);
    // The handler was entered from t2_main's raise(): the stack goes through the signal frame.
    let frames = thread(&run.json, fx.tid("t2"))["frames"].as_array().unwrap().clone();
    let names: Vec<&str> = frames.iter().map(|f| f["function"].as_str().unwrap_or("??")).collect();
    let handler = names.iter().position(|n| *n == "on_sigusr1");
    let body = names.iter().position(|n| *n == "t2_main");
    assert!(
        matches!((handler, body), (Some(h), Some(b)) if h < b),
        "t2's stack must show on_sigusr1 above t2_main: {names:?}"
    );
}

/// A SIGALRM handler calls malloc/free while the interrupted code is inside
/// malloc/free (issue 20.4): the thread waits for the arena lock main_arena,
/// which records no owner. The holder is inferred from the frames below
/// `__restore_rt` being inside the allocator: a self-deadlock through a
/// signal handler (exit 1, confidence inferred), naming the handler, the
/// interrupted function and the unsafe call. The fixture cannot print READY
/// once deadlocked: start_c waits until main sleeps in futex and stays.
#[test]
fn signal_handler_reentering_malloc_is_an_inferred_self_deadlock() {
    let fx = start_c("signal_malloc");
    let main = fx.tid("main");
    let futex = fx
        .sample("main")
        .futex()
        .unwrap_or_else(|| fx.fail("main is not in a futex wait"));
    let run = dumped(&fx, "signal_malloc", TargetKind::Live);
    let doc = &run.json;
    assert_eq!(run.out.status.code(), Some(1), "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["kind"], "deadlock");
    assert_eq!(
        doc["verdict"]["headline"],
        "Found 1 deadlock (1 thread, 1 glibc internal lock)"
    );
    let d = &deadlocks(doc)[0];
    assert_eq!(d["threads"], serde_json::json!([main]), "{d}");
    assert_eq!(d["resource_names"], serde_json::json!(["main_arena"]), "{d}");
    assert_eq!(d["resources"], serde_json::json!([format!("{:#x}", futex.addr)]), "{d}");
    assert_eq!(d["confidence"], "inferred", "{d}");
    let e = &d["edges"][0];
    assert_eq!(
        (&e["from_tid"], &e["to_tid"]),
        (&Value::from(main), &Value::from(main)),
        "{e}"
    );
    assert_eq!(e["kind"], "libc_lock", "{e}");
    assert_eq!(e["confidence"], "inferred", "{e}");
    let h = &d["signal_handler"];
    let call = h["call"].as_str().unwrap_or_else(|| panic!("no call: {d}"));
    assert!(call == "malloc" || call == "free", "{h}");
    let src = c_source("signal_malloc.c");
    let line = marked_line(&src, if call == "malloc" { "handler" } else { "handler_free" });
    assert_eq!(e["site"]["function"], "on_alarm", "{e}");
    assert_eq!(e["site"]["line"], line, "{e}");
    assert_eq!(h["handler"], format!("on_alarm (signal_malloc.c:{line})"), "{h}");
    // churn, in its malloc() or its free() line.
    let caller = h["interrupted_caller"].as_str().unwrap_or_default().to_string();
    let churn = |key: &str| format!("churn (signal_malloc.c:{})", marked_line(&src, key));
    assert!(caller == churn("main") || caller == churn("main_free"), "{h}");
    // Interrupted somewhere in glibc's allocator (often an inlined helper
    // such as unlink_chunk), inside malloc or free, which hold the arena.
    let interrupted = h["interrupted"].as_str().unwrap_or_default();
    assert!(
        interrupted.contains("(malloc.c:") || interrupted.contains("(arena.c:"),
        "the interrupted frame is in the allocator: {h}"
    );
    let evidence = e["evidence"].as_str().unwrap_or_default();
    let holder = evidence
        .split("are inside ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_default();
    assert!(
        ["malloc", "free", "_int_malloc", "_int_free"]
            .contains(&lockdump::test_support::runtimes::reentry::public_name(holder)),
        "held by the interrupted malloc or free: {evidence}"
    );
    for part in [
        "main_arena records no owner",
        "signal handler on_alarm interrupted (below __restore_rt) are inside",
        &format!("the handler called {call}, which is not async-signal-safe"),
    ] {
        assert!(evidence.contains(part), "{part:?} in {evidence}");
    }
    // idle (SIGALRM blocked, in pause()) is no part of it.
    let idle = thread(doc, fx.tid("idle"));
    assert_eq!(idle["blocked_on"], Value::Null, "{idle}");
    let text = lockdump_text(fx.pid()).stdout();
    assert!(
        text.contains("Deadlock #1: self-deadlock through a signal handler (1 thread, confidence: inferred)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "The signal handler on_alarm (signal_malloc.c:{line}) interrupted {interrupted} (called from \
             {caller}) on the same thread and waits for what the interrupted code holds; the handler called \
             {call}, which is not async-signal-safe"
        )),
        "{text}"
    );
}

/// A signal handler locking a default mutex its interrupted code holds
/// (issue 20.4): exact (`__owner`), reported as a self-deadlock through a
/// signal handler naming the handler, the interrupted code and the call.
#[test]
fn signal_handler_relocking_a_held_mutex_is_an_exact_self_deadlock() {
    let fx = start_c("signal_self_mutex");
    let run = dumped(&fx, "signal_self_mutex", TargetKind::Live);
    let doc = &run.json;
    let t1 = fx.tid("t1");
    assert_eq!(run.out.status.code(), Some(1), "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["headline"], mutex_headline(1, 1));
    let d = &deadlocks(doc)[0];
    assert_eq!(d["threads"], serde_json::json!([t1]), "{d}");
    assert_eq!(
        d["resources"],
        serde_json::json!([format!("{:#x}", fx.lock("lock_sig"))]),
        "{d}"
    );
    assert_eq!(d["resource_names"], serde_json::json!(["lock_sig"]), "{d}");
    assert_eq!(d["confidence"], "exact", "{d}");
    assert_eq!(d["edges"][0]["evidence"], format!("__owner = {t1}"), "{d}");
    let src = c_source("signal_self_mutex.c");
    let h = &d["signal_handler"];
    assert_eq!(
        h["handler"],
        format!("on_sigusr1 (signal_self_mutex.c:{})", marked_line(&src, "handler")),
        "{h}"
    );
    assert_eq!(
        h["interrupted_caller"],
        format!("t1_main (signal_self_mutex.c:{})", marked_line(&src, "t1")),
        "{h}"
    );
    assert_eq!(h["call"], "pthread_mutex_lock", "{h}");
    check_blocked_behind(&fx, doc, &["main"]);
    let text = lockdump_text(fx.pid()).stdout();
    assert!(
        text.contains("Deadlock #1: self-deadlock through a signal handler (1 thread, confidence: exact)"),
        "{text}"
    );
    assert!(
        text.contains("the handler called pthread_mutex_lock, which is not async-signal-safe"),
        "{text}"
    );
}

/// Healthy control: the same malloc churn under the same timer, with an
/// async-signal-safe handler: 30 dumps, never a deadlock (whatever instant
/// the capture lands on, inside the handler or the allocator).
#[test]
fn healthy_safe_signal_handler_over_malloc_is_never_a_deadlock() {
    let fx = Fixture::spawn(c_fixture("signal_malloc", Variant::Debug, &["safe"]));
    for round in 0..30 {
        let run = lockdump_json(&[fx.pid()]);
        let v = &run.json["verdict"];
        assert_eq!(run.out.status.code(), Some(0), "round {round}: {v}");
        assert_eq!(v["kind"], "no_hang_found", "round {round}: {v}");
        assert!(deadlocks(&run.json).is_empty(), "round {round}: {v}");
    }
}

/// Two processes deadlock on PROCESS_SHARED mutexes in a MAP_SHARED mapping:
/// `-p PARENT -p CHILD` gives one cycle spanning both PIDs. The mutexes live
/// in anonymous shared memory that no symbol covers; DWARF names them
/// through the global pointer to that memory (before: no name).
#[test]
fn pshared_cycle_across_two_processes() {
    let fx = start_c("pshared_cycle");
    let (parent, child) = (fx.ready.pids["parent"], fx.ready.pids["child"]);
    assert_eq!((fx.tid("parent"), fx.tid("child")), (parent, child));
    let run = lockdump_json(&[parent, child]);
    record("pshared_cycle", &run);
    let src = c_source("pshared_cycle.c");
    let named = |ready: &'static str| Target::Lock {
        ready,
        symbol: Some(format!("shared_locks->{ready}")),
    };
    let hops = [
        Hop {
            waiter: "parent",
            target: named("lock_b"),
            kind: "mutex",
            owner: "child",
            confidence: "exact",
            site: site("main", src.clone(), "parent"),
        },
        Hop {
            waiter: "child",
            target: named("lock_a"),
            kind: "mutex",
            owner: "parent",
            confidence: "exact",
            site: site("child_main", src.clone(), "child"),
        },
    ];
    let pid_of = |name: &str| if name == "parent" { parent } else { child };
    check_cycle(&fx, &run, &hops, "exact", &pid_of);
    assert_eq!(tids(&run.json["pids"]), vec![parent, child]);
    assert_eq!(run.json["verdict"]["headline"], mutex_headline(2, 2));
    for t in run.json["threads"].as_array().unwrap() {
        let how = t["blocked_on"]["how"].as_str().unwrap_or_default();
        assert!(how.contains("process-shared"), "{}: {how}", t["tid"]);
    }
    // The evidence names the other process.
    let e = &deadlocks(&run.json)[0]["edges"][0];
    let other = e["to_pid"].as_i64().unwrap();
    assert!(
        e["evidence"].as_str().unwrap().contains(&format!("of process {other}")),
        "{e}"
    );
    // Each holds the lock the other process's thread waits for (issue 16.3:
    // the holder's own process sees no wait for it).
    for (holder, held) in [("parent", "lock_a"), ("child", "lock_b")] {
        let holds = thread(&run.json, fx.tid(holder))["holds"].as_array().unwrap().clone();
        assert_eq!(holds.len(), 1, "{holder}: {holds:?}");
        assert_eq!(holds[0]["address"], hex(fx.lock(held)), "{holder}: {holds:?}");
        assert_eq!(holds[0]["confidence"], "exact", "{holder}: {holds:?}");
    }
}

/// The owner of lock_orphan ("leaver") exited holding it: a hang without a
/// cycle. Issue 20: stuck, exit 1 (it was "No deadlock found", exit 0),
/// one orphaned lock, `owner_exited` true with the leaver's TID as owner,
/// and main, which joins t1, blocked behind it and asleep for good.
#[test]
fn orphaned_mutex_is_stuck() {
    let fx = start_c("orphaned_mutex");
    let leaver = fx.ready.raw["exited"]["leaver"].as_i64().expect("READY exited.leaver") as i32;
    let run = dumped(&fx, "orphaned_mutex", TargetKind::Live);
    check_stuck(&fx, &run, fx.pid(), &[]);
    assert_eq!(run.json["verdict"]["orphaned_locks"], 1, "{}", run.json["verdict"]);
    let t1 = thread(&run.json, fx.tid("t1"));
    let b = &t1["blocked_on"];
    assert_eq!(b["kind"], "mutex", "{b}");
    assert_eq!(b["address"], hex(fx.lock("lock_orphan")), "{b}");
    assert_eq!(b["name"], "lock_orphan", "{b}");
    assert_eq!(b["owner_tid"], leaver, "{b}");
    assert_eq!(b["owner_exited"], true, "{b}");
    assert_eq!(b["confidence"], "exact", "{b}");
    assert!(b["evidence"].as_str().unwrap().contains("exited"), "{b}");
    assert_eq!(
        t1["why"],
        format!("its owner is gone: __owner = {leaver}; thread {leaver} has exited"),
        "{t1}"
    );
    assert_eq!(
        thread(&run.json, fx.tid("main"))["why"],
        format!("its owner, thread {}, is itself asleep for good", fx.tid("t1"))
    );
    site("t1_main", c_source("orphaned_mutex.c"), "t1").check(&b["site"], "t1");
    assert!(
        run.json["threads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["tid"] != leaver),
        "the leaver has exited"
    );
    check_blocked_behind(&fx, &run.json, &["main"]);
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1));
    let out = text.stdout();
    let t1 = fx.tid("t1");
    assert!(
        out.starts_with(&format!(
            "Stuck: no thread of PID {} can ever run again (2 threads asleep for good)",
            fx.pid()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Orphaned lock: Thread {t1} \"t1\" waits for mutex lock_orphan ({}), but thread {leaver} has exited",
            hex(fx.lock("lock_orphan"))
        )),
        "{out}"
    );
    assert!(!out.contains("Every thread is blocked"), "{out}");
}

/// Issue 20.2: fork() while another thread holds a mutex and a write-locked
/// rwlock. Each child's only thread waits for a lock owned by a thread of
/// its parent: stuck, exit 1, the cause named (the parent's PID and the
/// holder's TID). The parent, waiting in sigwait, is not stuck.
#[test]
fn fork_copied_locks_are_stuck_with_the_cause_named() {
    let fx = start_c("fork_locked");
    let (parent, holder) = (fx.ready.pids["parent"], fx.tid("holder"));
    for (child, kind, lock, field) in [
        ("child_m", "mutex", "lock_fork", "__owner"),
        ("child_rw", "rw_lock", "rw_fork", "__cur_writer"),
    ] {
        let pid = fx.ready.pids[child];
        let run = lockdump_json(&[pid]);
        record(&format!("fork_locked {child}"), &run);
        check_stuck(&fx, &run, pid, &[child]);
        let t = thread(&run.json, pid);
        let b = &t["blocked_on"];
        assert_eq!(
            (&b["kind"], &b["name"]),
            (&Value::from(kind), &Value::from(lock)),
            "{b}"
        );
        assert_eq!(b["address"], hex(fx.lock(lock)), "{b}");
        assert_eq!(
            (&b["owner_tid"], &b["owner_exited"]),
            (&Value::from(holder), &Value::from(true)),
            "{b}"
        );
        let cause = format!("copied locked at fork() from PID {parent} (the parent), where thread {holder} held it");
        assert!(
            b["evidence"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field} = {holder}; {cause}")),
            "{b}"
        );
        assert!(t["why"].as_str().unwrap().contains(&cause), "{t}");
        site("child", c_source("fork_locked.c"), child).check(&b["site"], child);
        let text = lockdump_text(pid);
        assert_eq!(text.code(), Some(1));
        assert!(
            text.stdout().contains(&format!(
                "but it was copied locked at fork() from the parent, where thread {holder} holds it"
            )),
            "{}",
            text.stdout()
        );
    }
    let run = lockdump_json(&[parent]);
    check_not_stuck(&run);
}

/// Issue 12.6: t1's pthread_mutex_timedlock (600 s) closes a cycle with
/// t2's plain lock: still a deadlock, exit 1, marked as resolving by timeout
/// in about 600 s; t1's and sem_timed's deadlines are reported; no thread in
/// a timed wait is asleep for good.
#[test]
fn timed_cycle_is_a_deadlock_that_resolves_by_timeout() {
    let fx = start_c("timed_cycle");
    let epoch_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    // lockdump computes the time left somewhere between these two instants
    // (however long it takes on a loaded machine).
    let before = epoch_ms();
    let run = lockdump_json(&[fx.pid()]);
    let now = epoch_ms();
    record("timed_cycle", &run);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let d = &deadlocks(&run.json)[0];
    let mut cycle = tids(&d["threads"]);
    cycle.sort_unstable();
    assert_eq!(cycle, vec![fx.tid("t1"), fx.tid("t2")]);
    let left = |who: &str| fx.ready.raw["deadline"][who].as_i64().expect("READY deadline") * 1000 - now;
    let ms = d["breaks_by_timeout_in_ms"].as_i64().expect("breaks_by_timeout_in_ms");
    // The deadline is whole seconds from READY's clock.
    assert!(
        (left("t1") - 2000..=left("t1") + (now - before) + 1000).contains(&ms),
        "{ms} vs {} (lockdump ran {} ms)",
        left("t1"),
        now - before
    );
    for (who, lock) in [("t1", "lock_b"), ("sem_timed", "sem_t_never")] {
        let t = thread(&run.json, fx.tid(who));
        assert_eq!(t["blocked_on"]["address"], hex(fx.lock(lock)), "{t}");
        let to = &t["timeout"];
        assert_eq!(
            (&to["relative"], &to["clock"]),
            (&Value::from(false), &Value::from("realtime")),
            "{to}"
        );
        let in_ms = to["in_ms"].as_i64().unwrap();
        assert!(
            (left(who) - 2000..=left(who) + (now - before) + 1000).contains(&in_ms),
            "{who}: {to}"
        );
        assert!(to["text"].as_str().unwrap().starts_with("times out in "), "{to}");
        assert_eq!(t["asleep_for_good"], false, "{t}");
        assert!(
            t["why"].as_str().unwrap().starts_with("a timed wait: times out in "),
            "{t}"
        );
    }
    assert_eq!(thread(&run.json, fx.tid("t2"))["timeout"], Value::Null);
    assert_eq!(run.json["verdict"]["stuck"], Value::Array(vec![]));
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1));
    assert!(
        text.stdout()
            .contains("Resolves by timeout: a timed wait in it times out in "),
        "{}",
        text.stdout()
    );
}

/// An hour and more: a plain deadlock, not marked.
#[test]
fn long_timeout_leaves_a_plain_deadlock() {
    let fx = Fixture::spawn_blocked(c_fixture("timed_cycle", Variant::Debug, &["7200", "7200"]));
    let run = lockdump_json(&[fx.pid()]);
    assert_eq!(run.code(), Some(1));
    assert_eq!(deadlocks(&run.json)[0]["breaks_by_timeout_in_ms"], Value::Null);
    let to = &thread(&run.json, fx.tid("t1"))["timeout"];
    assert!(to["in_ms"].as_i64().unwrap() > 7_100_000, "{to}");
}

/// Issue 20 (e): processes that wait for the outside world beside an idle
/// pool on a condvar are never stuck and never deadlocked. Each mode is
/// dumped HEALTHY_RUNS times (100, as the issue asks; a dump of this small
/// idle process takes tens of milliseconds).
const HEALTHY_RUNS: usize = 100;

fn healthy_idle(mode: &str, woken_from_outside: &str) {
    let fx = Fixture::spawn(c_fixture("healthy_idle", Variant::Debug, &[mode]));
    fx.wait_blocked(&[fx.tid("main"), fx.tid("w0"), fx.tid("w1")]);
    for round in 0..HEALTHY_RUNS {
        let run = lockdump_json(&[fx.pid()]);
        if round == 0 {
            record(&format!("healthy_idle {mode}"), &run);
        }
        check_not_stuck(&run);
        let main = thread(
            &run.json,
            fx.tid(if mode.ends_with("sleep") { "ticker" } else { "main" }),
        );
        let why = main["why"].as_str().unwrap_or_default();
        // The ticker may be caught between two sleeps, and main between two
        // timer expirations (it wakes to read the timerfd): running.
        let wakes = mode.ends_with("sleep") || mode == "timerfd";
        assert!(
            why.contains(woken_from_outside) || (wakes && why.starts_with("running")),
            "round {round}, {mode}: {main}"
        );
        for w in ["w0", "w1"] {
            check_ownerless(&fx, &run.json, w, "cond_var", "idle_cond");
        }
        assert!(fx_status(&fx).is_none(), "round {round}: the fixture died");
    }
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(0));
    assert!(!text.stdout().contains("Every thread is blocked"), "{}", text.stdout());
}

#[test]
fn healthy_daemon_in_sigwait_is_not_stuck() {
    healthy_idle("sigwait", "waiting for input in rt_sigtimedwait");
}

/// Issue 16.1: glibc linked statically. Its lock code is in the executable
/// (`__lll_lock_wait`, `pthread_mutex_lock`), with no libc module to tell it
/// apart: the same exact cycle as the dynamic build, and each thread waits in
/// its own function at its line, not in `__lll_lock_wait`.
#[test]
fn abba_with_static_glibc() {
    let fx = Fixture::spawn_blocked(c_fixture("abba", Variant::GlibcStatic, &[]));
    let run = dumped(&fx, "abba glibc-static", TargetKind::Live);
    check_cycle(&fx, &run, &abba_hops(), "exact", &same_pid(&fx));
    check_main_joins(&fx, &run.json, "t1", site("main", c_source("abba.c"), "main"));
}

/// Most dumps a test below runs, and how many with a thread caught at its
/// `syscall` instruction it waits for before it stops early.
const RESUMED_MAX_ROUNDS: usize = 300;
const RESUMED_WANTED: usize = 5;

/// How many threads of `run` were stopped about to enter their call.
fn entering_threads(run: &Dump) -> usize {
    run.json["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["syscall"]["entering"] == true)
        .count()
}

/// Dumps `fx`, throttled (see common::throttle), again and again right after
/// each other, checking each dump, until [`RESUMED_WANTED`] dumps caught a
/// thread that the previous one let go still on its way back into its wait.
/// Fails if none did: then the case was not exercised.
fn dump_right_after_dumps(fx: &Fixture, check: impl Fn(usize, &Dump)) {
    let _throttle = Throttle::new(fx.pid());
    let mut caught = 0;
    let mut rounds = 0;
    while rounds < RESUMED_MAX_ROUNDS && caught < RESUMED_WANTED {
        let run = lockdump_json(&[fx.pid()]);
        check(rounds, &run);
        for t in run.json["threads"].as_array().expect("threads") {
            assert_ne!(t["running"], true, "round {rounds}: an idle thread shown running: {t}");
        }
        caught += usize::from(entering_threads(&run) > 0);
        rounds += 1;
        assert!(fx_status(fx).is_none(), "round {rounds}: the fixture died");
    }
    assert!(
        caught > 0,
        "no dump of {rounds} caught a thread at its syscall instruction: the case was not exercised"
    );
    eprintln!("{caught} of {rounds} dumps caught a thread about to re-enter its wait");
}

/// Found by a CI run (the Python daemon control, round 91 of 100): a thread
/// that a dump lets go re-enters the wait the stop interrupted only once it
/// gets a CPU; until then it sits at its `syscall` instruction with the call's
/// number in rax. The next dump, on a loaded machine, showed such threads
/// "running": the AB-BA threads lost their waits ("No deadlock found", exit
/// 0, on a real deadlock) and idle workers their condition variable. Every
/// dump right after another must give the same exact cycle.
#[test]
fn abba_dumped_right_after_a_dump_is_the_same_deadlock() {
    let fx = start_c("abba");
    let hops = abba_hops();
    dump_right_after_dumps(&fx, |round, run| {
        if run.code() != Some(1) {
            panic!("round {round}: exit {:?}: {}", run.code(), run.json["verdict"]);
        }
        check_cycle(&fx, run, &hops, "exact", &same_pid(&fx));
    });
}

/// The healthy control of the case above: the idle daemon's workers keep
/// their condition variable wait, main its sigwait, and nothing is stuck.
#[test]
fn idle_daemon_dumped_right_after_a_dump_is_the_same() {
    let fx = Fixture::spawn(c_fixture("healthy_idle", Variant::Debug, &["sigwait"]));
    fx.wait_blocked(&[fx.tid("main"), fx.tid("w0"), fx.tid("w1")]);
    dump_right_after_dumps(&fx, |round, run| {
        check_not_stuck(run);
        for w in ["w0", "w1"] {
            check_ownerless(&fx, &run.json, w, "cond_var", "idle_cond");
        }
        let main = thread(&run.json, fx.tid("main"));
        let why = main["why"].as_str().unwrap_or_default();
        assert!(
            why.contains("waiting for input in rt_sigtimedwait"),
            "round {round}: {main}"
        );
    });
}

#[test]
fn healthy_semaphore_posted_by_a_signal_handler_is_not_stuck() {
    healthy_idle(
        "sighandler",
        "a signal handler may wake it: the process catches SIGUSR1",
    );
}

#[test]
fn healthy_usleep_loop_is_not_stuck() {
    healthy_idle("usleep", "sleeping for a set time");
}

#[test]
fn healthy_nanosleep_loop_is_not_stuck() {
    healthy_idle("nanosleep", "sleeping for a set time");
}

#[test]
fn healthy_timerfd_epoll_is_not_stuck() {
    healthy_idle("timerfd", "waiting for input in epoll_wait");
}

#[test]
fn healthy_waitpid_for_a_running_child_is_not_stuck() {
    // Only the parent is inspected: its child, which may still exit, was not.
    healthy_idle("waitpid", "waiting in wait4 on child PID");
}

// ---------------------------------------------------------------------------
// Rust deadlocks
// ---------------------------------------------------------------------------

#[test]
fn rust_abba() {
    let fx = start_rust("rust_abba");
    for kind in TargetKind::BOTH {
        let run = dumped(&fx, "rust_abba", kind);
        let src = rust_source("rust_abba.rs");
        let sym = |s: &str| Some(format!("rust_abba::{s}"));
        let hops = [
            Hop {
                waiter: "t1",
                target: Target::Lock {
                    ready: "lock_b",
                    symbol: sym("LOCK_B"),
                },
                kind: "rust_mutex",
                owner: "t2",
                confidence: "inferred",
                site: site("rust_abba::main::{{closure}}", src.clone(), "t1"),
            },
            Hop {
                waiter: "t2",
                target: Target::Lock {
                    ready: "lock_a",
                    symbol: sym("LOCK_A"),
                },
                kind: "rust_mutex",
                owner: "t1",
                confidence: "inferred",
                site: site("rust_abba::main::{{closure}}", src.clone(), "t2"),
            },
        ];
        check_cycle(&fx, &run, &hops, "inferred", &same_pid(&fx));
        assert_eq!(
            run.json["verdict"]["headline"],
            "Found 1 deadlock (2 threads, 2 Rust locks)"
        );
        check_blocked_behind(&fx, &run.json, &["main"]);
        check_main_joins(&fx, &run.json, "t1", site("rust_abba::main", src.clone(), "main"));
    }
}

#[test]
fn rust_rwlock_cycle() {
    let fx = start_rust("rust_rwlock_cycle");
    let run = dumped(&fx, "rust_rwlock_cycle", TargetKind::Live);
    let src = rust_source("rust_rwlock_cycle.rs");
    let sym = |s: &str| Some(format!("rust_rwlock_cycle::{s}"));
    let hops = [
        Hop {
            waiter: "t1",
            target: Target::Lock {
                ready: "rw_b",
                symbol: sym("RW_B"),
            },
            kind: "rust_rw_lock",
            owner: "t2",
            confidence: "inferred",
            site: site("rust_rwlock_cycle::main::{{closure}}", src.clone(), "t1"),
        },
        Hop {
            waiter: "t2",
            target: Target::Lock {
                ready: "rw_a",
                symbol: sym("RW_A"),
            },
            kind: "rust_rw_lock",
            owner: "t1",
            confidence: "inferred",
            site: site("rust_rwlock_cycle::main::{{closure}}", src.clone(), "t2"),
        },
    ];
    check_cycle(&fx, &run, &hops, "inferred", &same_pid(&fx));
    check_blocked_behind(&fx, &run.json, &["main"]);
    check_main_joins(
        &fx,
        &run.json,
        "t1",
        site("rust_rwlock_cycle::main", src.clone(), "main"),
    );
}

#[test]
fn rust_join_cycle() {
    let fx = start_rust("rust_join");
    let run = dumped(&fx, "rust_join", TargetKind::Live);
    let src = rust_source("rust_join.rs");
    let hops = [
        Hop {
            waiter: "main",
            target: Target::Join("t1"),
            kind: "thread",
            owner: "t1",
            confidence: "exact",
            site: site("rust_join::main", src.clone(), "main"),
        },
        Hop {
            waiter: "t1",
            target: Target::Lock {
                ready: "lock_m",
                symbol: Some("rust_join::LOCK_M".into()),
            },
            kind: "rust_mutex",
            owner: "main",
            confidence: "inferred",
            site: site("rust_join::main::{{closure}}", src.clone(), "t1"),
        },
    ];
    check_cycle(&fx, &run, &hops, "inferred", &same_pid(&fx));
    check_blocked_behind(&fx, &run.json, &[]);
}

// ---------------------------------------------------------------------------
// Never a deadlock
// ---------------------------------------------------------------------------

/// Two threads in `Condvar::wait` on a static Condvar nobody notifies; main
/// joins cv0. The waits are on the Condvar itself (no owner), not on some
/// glibc object guessed from the bytes around it.
#[test]
fn rust_idle_condvar_has_no_owner() {
    let fx = start_rust("rust_idle");
    let run = dumped(&fx, "rust_idle", TargetKind::Live);
    // Nothing can signal CV and main joins cv0: stuck (issue 20). Rust std's
    // SIGSEGV/SIGBUS stack-overflow handlers are no way out.
    check_stuck(&fx, &run, fx.pid(), &[]);
    let src = rust_source("rust_idle.rs");
    for w in ["cv0", "cv1"] {
        let b = &thread(&run.json, fx.tid(w))["blocked_on"];
        assert_eq!(b["kind"], "cond_var", "{w}: {b}");
        assert_eq!(b["address"], hex(fx.lock("cv")), "{w}: {b}");
        assert_eq!(b["name"], "rust_idle::CV", "{w}: {b}");
        assert_eq!(
            (b["owner_tid"].clone(), b["confidence"].as_str()),
            (Value::Null, Some("unknown")),
            "{w}: {b}"
        );
        assert_eq!(b["how"], "std::sync::Condvar::wait", "{w}: {b}");
        site("rust_idle::waiter", src.clone(), "wait").check(&b["site"], w);
    }
    check_main_joins(&fx, &run.json, "cv0", site("rust_idle::main", src.clone(), "main"));
    check_blocked_behind(&fx, &run.json, &[]);
}

/// 8 threads hammer one mutex: dumped 30 times, never a deadlock, and every
/// wait seen is on lock_hot with, when known, an owner that is a live thread.
#[test]
fn contention_is_never_a_deadlock() {
    let fx = Fixture::spawn(c_fixture("contention", Variant::Debug, &[]));
    let workers: Vec<i32> = (0..8).map(|i| fx.tid(&format!("c{i}"))).collect();
    let mut waits = 0;
    let mut total = Duration::ZERO;
    let mut slowest = Duration::ZERO;
    for round in 0..30 {
        let run = lockdump_json(&[fx.pid()]);
        total += run.elapsed;
        slowest = slowest.max(run.elapsed);
        check_no_deadlock(&run);
        assert_eq!(run.json["verdict"]["orphaned_locks"], 0, "round {round}");
        for &tid in &workers {
            let b = &thread(&run.json, tid)["blocked_on"];
            if b.is_null() {
                continue;
            }
            waits += 1;
            assert_eq!(b["kind"], "mutex", "round {round}, c thread {tid}: {b}");
            assert_eq!(b["address"], hex(fx.lock("lock_hot")), "round {round}: {b}");
            assert_eq!(b["owner_exited"], false, "round {round}: {b}");
            if let Some(owner) = b["owner_tid"].as_i64() {
                assert!(
                    workers.contains(&(owner as i32)),
                    "round {round}: owner {owner} is not a worker: {b}"
                );
                assert_eq!(b["confidence"], "exact", "round {round}: {b}");
            }
        }
        if let Some(status) = fx_status(&fx) {
            panic!("contention exited during the dumps: {status}");
        }
    }
    eprintln!(
        "[deadlocks] contention x30 | exit 0 each, No deadlock found. ({waits} waits on lock_hot seen) | cycles - | locks - | confidence - | lockdump mean {:.0} ms, max {:.0} ms",
        total.as_secs_f64() * 1000.0 / 30.0,
        slowest.as_secs_f64() * 1000.0
    );
}

/// Why the fixture is dead, if it is (a healthy fixture must survive being dumped).
fn fx_status(fx: &Fixture) -> Option<String> {
    let state = common::process_state(fx.pid());
    matches!(state, 'Z' | 'X' | '?').then(|| format!("state {state}"))
}

#[test]
fn condvar_wait_has_no_owner() {
    let fx = start_c("condvar_wait");
    let run = dumped(&fx, "condvar_wait", TargetKind::Live);
    // Nothing can wake the waiters and main joins one of them: stuck (issue 20).
    check_stuck(&fx, &run, fx.pid(), &[]);
    for w in ["cw0", "cw1"] {
        check_ownerless(&fx, &run.json, w, "cond_var", "cond_never");
        let how = thread(&run.json, fx.tid(w))["blocked_on"]["how"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            how.contains(&format!("lock_cv at {}", hex(fx.lock("lock_cv")))),
            "the condvar's mutex is named: {how}"
        );
    }
}

#[test]
fn sem_wait_has_no_owner() {
    let fx = start_c("sem_wait");
    let run = dumped(&fx, "sem_wait", TargetKind::Live);
    // Nothing can wake the waiters and main joins one of them: stuck (issue 20).
    check_stuck(&fx, &run, fx.pid(), &[]);
    for w in ["sw0", "sw1"] {
        check_ownerless(&fx, &run.json, w, "semaphore", "sem_never");
    }
}

#[test]
fn barrier_wait_has_no_owner() {
    let fx = start_c("barrier_wait");
    let run = dumped(&fx, "barrier_wait", TargetKind::Live);
    // Nothing can wake the waiters and main joins one of them: stuck (issue 20).
    check_stuck(&fx, &run, fx.pid(), &[]);
    for w in ["bw0", "bw1"] {
        check_ownerless(&fx, &run.json, w, "barrier", "barrier_never");
    }
}

#[test]
fn long_sleep_is_not_a_lock_wait() {
    let fx = start_c("long_sleep");
    let run = dumped(&fx, "long_sleep", TargetKind::Live);
    check_no_deadlock(&run);
    let sleeper = thread(&run.json, fx.tid("sleeper"));
    assert_eq!(sleeper["blocked_on"], Value::Null, "{sleeper}");
    assert!(
        sleeper["blocked_in"].as_str().is_some_and(|s| s.contains("nanosleep")),
        "{}",
        sleeper["blocked_in"]
    );
    let main = &thread(&run.json, fx.tid("main"))["blocked_on"];
    assert_eq!(
        (main["kind"].as_str(), main["owner_tid"].as_i64()),
        (Some("thread"), Some(fx.tid("sleeper") as i64))
    );
    check_blocked_behind(&fx, &run.json, &[]);
}

#[test]
fn threads_idle_wait_on_a_condvar() {
    let fx = start_c("threads_idle");
    let run = dumped(&fx, "threads_idle", TargetKind::Live);
    // Nothing can wake the waiters and main joins one of them: stuck (issue 20).
    check_stuck(&fx, &run, fx.pid(), &[]);
    for w in ["w0", "w1", "w2", "w3"] {
        check_ownerless(&fx, &run.json, w, "cond_var", "idle_cond");
    }
}

/// A stuck process with more threads than lockdump may keep descriptors
/// open for: the confirmation window keeps each thread's status file open
/// between its two looks (`live::Looks`) only within a budget below
/// RLIMIT_NOFILE, and reads the rest by path. Without the budget the looks
/// past the limit failed (EMFILE), read as threads that moved, and the
/// stuck verdict of a 10,000-thread process became "no hang found". Here
/// 256 descriptors leave none to keep (512 are reserved) for 301 threads.
#[test]
fn stuck_holds_with_fewer_descriptors_than_threads() {
    use std::os::unix::process::CommandExt;
    let fx = Fixture::spawn_blocked(c_fixture("threads_idle", Variant::Debug, &["300"]));
    let mut cmd = std::process::Command::new(common::lockdump_bin());
    cmd.args(["--json", "-p", &fx.pid().to_string()]);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let out = common::fixture::output_with_timeout(cmd, common::TIMEOUT);
    let json = common::json_of(&out, "lockdump --json with 256 descriptors");
    let run = Dump {
        kind: TargetKind::Live,
        out,
        json,
        elapsed: started.elapsed(),
    };
    check_stuck(&fx, &run, fx.pid(), &[]);
}

/// Three call chains wait for lock_nested, which main holds while it sits
/// in pause(): waits with an exact owner that is not waiting for anything.
#[test]
fn nested_calls_wait_on_a_held_lock_without_a_cycle() {
    let fx = start_c("nested_calls");
    let run = dumped(&fx, "nested_calls", TargetKind::Live);
    check_no_deadlock(&run);
    for w in ["chain_a", "chain_b", "chain_r"] {
        let b = &thread(&run.json, fx.tid(w))["blocked_on"];
        assert_eq!(b["kind"], "mutex", "{w}: {b}");
        assert_eq!(b["name"], "lock_nested", "{w}: {b}");
        assert_eq!(b["address"], hex(fx.lock("lock_nested")), "{w}: {b}");
        assert_eq!(b["owner_tid"], fx.tid("main"), "{w}: {b}");
        assert_eq!(b["confidence"], "exact", "{w}: {b}");
    }
    let main = thread(&run.json, fx.tid("main"));
    assert_eq!(main["blocked_on"], Value::Null);
    assert_eq!(main["blocked_in"], "pause");
}

#[test]
fn signal_handler_waits_without_a_cycle() {
    let fx = start_c("signal_handler");
    let run = dumped(&fx, "signal_handler", TargetKind::Live);
    check_no_deadlock(&run);
    let b = &thread(&run.json, fx.tid("sig_lock"))["blocked_on"];
    assert_eq!(b["kind"], "mutex", "{b}");
    assert_eq!(b["name"], "lock_handler", "{b}");
    assert_eq!(b["address"], hex(fx.lock("lock_handler")), "{b}");
    assert_eq!(b["owner_tid"], fx.tid("main"), "{b}");
    assert_eq!(b["confidence"], "exact", "{b}");
    let p = thread(&run.json, fx.tid("sig_pause"));
    assert_eq!(
        (p["blocked_on"].clone(), p["blocked_in"].as_str()),
        (Value::Null, Some("pause"))
    );
}

/// Issue 22.3: threads that were executing when stopped are marked running,
/// in text and JSON, with the note that their stack is a sample, and never
/// described as blocked; the joining main thread is not one of them.
#[test]
fn running_threads_are_marked_running() {
    // Its spinning threads never block: wait for READY, then for main to be
    // in its join (READY is written by main itself: caught in that write(),
    // main is running too).
    let fx = Fixture::spawn(c_fixture("busy", Variant::Debug, &[]));
    fx.wait_blocked(&[fx.tid("main")]);
    let run = lockdump_json(&[fx.pid()]);
    check_no_deadlock(&run);
    const NOTE: &str = "running: its stack is a sample of where it was when captured, not a wait";
    for b in ["b0", "b1", "b2", "b3"] {
        let t = thread(&run.json, fx.tid(b));
        assert_eq!(
            (
                t["running"].as_bool(),
                t["running_note"].as_str(),
                t["blocked_on"].clone(),
                t["blocked_in"].clone(),
                t["syscall"].clone()
            ),
            (Some(true), Some(NOTE), Value::Null, Value::Null, Value::Null),
            "{b}: {t}"
        );
    }
    let main = thread(&run.json, fx.tid("main"));
    assert_eq!(
        (main["running"].as_bool(), main["running_note"].clone()),
        (Some(false), Value::Null),
        "{main}"
    );
    let text = lockdump_text(fx.pid());
    let out = text.stdout();
    for b in ["b0", "b1", "b2", "b3"] {
        let header = format!("Thread {} \"{b}\" state R, {NOTE}", fx.tid(b));
        assert!(out.contains(&header), "no `{header}` in:\n{out}");
    }
}

/// seeds/001: two threads print and sleep(1) forever; main joins one.
#[test]
fn seed_concurrent_is_healthy() {
    let fx = start_c("seed_concurrent");
    let run = dumped(&fx, "seed_concurrent", TargetKind::Live);
    check_no_deadlock(&run);
    let main = &thread(&run.json, fx.tid("main"))["blocked_on"];
    assert_eq!(
        (main["kind"].as_str(), main["owner_tid"].as_i64()),
        (Some("thread"), Some(fx.tid("numbers") as i64))
    );
    for w in ["numbers", "letters"] {
        let t = thread(&run.json, fx.tid(w));
        // Mostly asleep; at a second boundary one may briefly wait for stdout's lock.
        let b = &t["blocked_on"];
        assert!(
            b.is_null() || b["how"].as_str().is_some_and(|h| h.contains("libc internal lock")),
            "{w}: {t}"
        );
    }
}

// ---------------------------------------------------------------------------
// lockdump demo
// ---------------------------------------------------------------------------

/// PIDs of processes whose command line contains `__demo-child` and whose
/// executable is the lockdump binary under test.
fn demo_children() -> Vec<i32> {
    let me = std::fs::canonicalize(common::lockdump_bin()).expect("lockdump binary");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains("__demo-child") {
            continue;
        }
        let exe = std::fs::read_link(e.path().join("exe")).unwrap_or_default();
        let exe = exe.to_string_lossy().trim_end_matches(" (deleted)").to_string();
        if Path::new(&exe) == me {
            out.push(pid);
        }
    }
    out
}

/// Both demo runs in one test: no other test of this binary starts a demo
/// child, so "no `__demo-child` of this lockdump remains" is exact.
#[test]
fn demo_finds_its_deadlock_and_cleans_up() {
    // JSON.
    let started = Instant::now();
    let out = run_lockdump(&["demo", "--json"]);
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "demo --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("demo JSON ({e}): {stdout}"));
    let run = Dump {
        kind: TargetKind::Live,
        out,
        json: doc,
        elapsed,
    };
    record("demo --json", &run);
    let doc = &run.json;
    let child = doc["pid"].as_i64().expect("pid") as i32;
    let ds = deadlocks(doc);
    assert_eq!(ds.len(), 1, "{ds:#?}");
    let d = &ds[0];
    assert_eq!(d["confidence"], "exact");
    let names: Vec<&str> = d["resource_names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["lock_a", "lock_b"], "{d}");
    let by_tid = |tid: i32| thread(doc, tid)["name"].as_str().unwrap().to_string();
    let cycle = tids(&d["threads"]);
    let mut thread_names: Vec<String> = cycle.iter().map(|&t| by_tid(t)).collect();
    thread_names.sort();
    assert_eq!(thread_names, ["transfer-a-to-b", "transfer-b-to-a"], "{d}");
    for (i, e) in d["edges"].as_array().unwrap().iter().enumerate() {
        // transfer-a-to-b holds lock_a and waits for lock_b, and the reverse.
        let from = by_tid(e["from_tid"].as_i64().unwrap() as i32);
        let want = if from == "transfer-a-to-b" { "lock_b" } else { "lock_a" };
        assert_eq!(e["name"], want, "edge {i}: {e}");
        assert_eq!(
            (e["kind"].as_str(), e["confidence"].as_str()),
            (Some("mutex"), Some("exact")),
            "{e}"
        );
        assert_eq!(e["to_tid"], cycle[(i + 1) % cycle.len()], "{e}");
    }
    let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("__demo-child"),
        "demo child {child} still exists"
    );
    assert!(
        demo_children().is_empty(),
        "demo children left behind: {:?}",
        demo_children()
    );

    // Text; global options before the subcommand as well as after it.
    let started = Instant::now();
    let out = run_lockdump(&["--color", "never", "demo"]);
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "[deadlocks] demo (text) | exit 1, {} | lockdump {:.0} ms",
        text.lines().next().unwrap_or(""),
        elapsed.as_secs_f64() * 1000.0
    );
    assert_eq!(
        text.lines().next(),
        Some("Found 1 deadlock (2 threads, 2 mutexes)"),
        "{text}"
    );
    for needle in ["lock_a", "lock_b", "\"transfer-a-to-b\"", "\"transfer-b-to-a\""] {
        assert!(text.contains(needle), "demo text lacks {needle}:\n{text}");
    }
    assert!(!text.contains('\x1b'), "--color never, yet escapes:\n{text}");

    // `-p` names a target; the demo brings its own: a usage error, no child started.
    let out = run_lockdump(&["-p", "1", "demo"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "-p 1 demo: {err}");
    assert!(
        err.contains("the subcommand 'demo' cannot be used with '--pid <PID>'"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "-p 1 demo printed a report");
    assert!(
        demo_children().is_empty(),
        "demo children left behind: {:?}",
        demo_children()
    );
}

/// The thread everyone waits behind (issue 20.5): `holder` keeps
/// account_lock across a TCP read that never returns; w1..w4 wait for the
/// lock. No cycle and nothing asleep for good (the read can end), so exit 0,
/// but the report names the holder, the lock, its four waiters and the
/// connection it reads, by its addresses, with the process at the other end.
#[test]
fn waiting_behind_a_thread_in_a_socket_read() {
    let fx = Fixture::spawn_blocked(c_fixture("waiting_behind", Variant::Debug, &[]));
    let pid = fx.pid();
    let holder = fx.tid("holder");
    let waiters: Vec<i64> = ["w1", "w2", "w3", "w4"].iter().map(|n| fx.tid(n) as i64).collect();
    let lock = fx.lock("account_lock");
    let (local, peer, fd) = (
        fx.ready.raw["ports"]["local"].as_u64().unwrap(),
        fx.ready.raw["ports"]["peer"].as_u64().unwrap(),
        fx.ready.raw["fds"]["reading"].as_u64().unwrap(),
    );
    let doing = format!(
        "is in read(fd {fd}) — fd {fd}: TCP 127.0.0.1:{local} -> 127.0.0.1:{peer} (established), other end held by \
         PID {pid} \"waiting_behind\""
    );
    let out = run_lockdump(&["--json", "-p", &pid.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let wb = doc["verdict"]["waiting_behind"].as_array().expect("waiting_behind");
    assert_eq!(wb.len(), 1, "{wb:?}");
    assert_eq!(wb[0]["pid"], pid);
    assert_eq!(wb[0]["tid"], holder);
    let got: Vec<i64> = wb[0]["waiters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    assert_eq!(got, waiters);
    assert_eq!(
        wb[0]["holds"],
        serde_json::json!([format!("mutex account_lock ({lock:#x})")])
    );
    assert_eq!(wb[0]["doing"], doing.as_str());
    assert_eq!(doc["verdict"]["kind"], "no_hang_found");
    // The headline names the thread they wait behind and what it does.
    assert_eq!(
        doc["verdict"]["headline"],
        format!("No deadlock found; 4 threads wait behind thread {holder}, which {doing}")
    );

    let out = run_lockdump(&["-p", &pid.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(2).unwrap_or("");
    assert_eq!(
        line,
        format!(
            "Waiting behind thread {holder} \"holder\": 4 threads wait for mutex account_lock ({lock:#x}) that it \
             holds (w1 ({}), w2 ({}), w3 ({}), w4 ({})); it {doing}",
            waiters[0], waiters[1], waiters[2], waiters[3]
        ),
        "{text}"
    );
}

// ---- C++ (issue 16.1: the frame that matters) ---------------------------

fn cpp_source(name: &str) -> PathBuf {
    fixtures_dir().join("cpp").join(name)
}

fn start_cpp(mode: &str) -> Fixture {
    Fixture::spawn_blocked(common::cpp_fixture("cxx_waits", &[mode]))
}

/// A lock the READY line lists as `ready`, named `symbol` by lockdump.
fn lock_named(ready: &'static str, symbol: &str) -> Target {
    Target::Lock {
        ready,
        symbol: Some(symbol.to_string()),
    }
}

/// The bank-transfer deadlock with `std::lock_guard<std::mutex>`: exact, and
/// each thread waits in `transfer` at its line, not in libstdc++'s inlined
/// `__gthread_mutex_lock` / `std::mutex::lock` / `std::lock_guard` frames.
#[test]
fn cpp_std_mutex_transfer_deadlock() {
    let fx = start_cpp("mutex");
    let run = dumped(&fx, "cxx_waits mutex", TargetKind::Live);
    let src = cpp_source("cxx_waits.cpp");
    // std::mutex is the first member of Account: DWARF names the member
    // (the ELF symbol alone said `account_b`, the whole Account).
    let hops = [
        Hop {
            waiter: "t1",
            target: lock_named("mu_b", "account_b.mu"),
            kind: "mutex",
            owner: "t2",
            confidence: "exact",
            site: site("transfer", src.clone(), "transfer"),
        },
        Hop {
            waiter: "t2",
            target: lock_named("mu_a", "account_a.mu"),
            kind: "mutex",
            owner: "t1",
            confidence: "exact",
            site: site("transfer", src.clone(), "transfer"),
        },
    ];
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    check_main_joins(&fx, &run.json, "t1", site("main", src, "main"));
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1), "{}", text.stderr());
    let out = text.stdout();
    assert!(out.contains("      waiting in  transfer (cxx_waits.cpp:"), "{out}");
    assert!(!out.contains("waiting in  __gthread"), "{out}");
}

/// `std::shared_mutex` (a glibc rwlock) held exclusively by t1, which waits
/// for a `std::mutex` that t2 holds while it asks for a `std::shared_lock`:
/// both owners exact (the rwlock records its writer), each thread waiting in
/// its own function, not `__glibcxx_rwlock_rdlock` or `std::shared_lock`.
#[test]
fn cpp_shared_mutex_deadlock() {
    let fx = start_cpp("shared_mutex");
    let run = dumped(&fx, "cxx_waits shared_mutex", TargetKind::Live);
    let src = cpp_source("cxx_waits.cpp");
    let hops = [
        Hop {
            waiter: "t1",
            target: lock("journal"),
            kind: "mutex",
            owner: "t2",
            confidence: "exact",
            site: site("rebuild_table", src.clone(), "rebuild"),
        },
        Hop {
            waiter: "t2",
            target: lock("table"),
            kind: "rw_lock",
            owner: "t1",
            confidence: "exact",
            site: site("append_journal", src.clone(), "append"),
        },
    ];
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    check_main_joins(&fx, &run.json, "t1", site("main", src, "main"));
}

/// A lost wakeup with `std::condition_variable::wait(lock, predicate)`: the
/// process is stuck, and the worker waits in `wait_until_ready` at its line
/// — the inlined `std::condition_variable::wait<...>` (which DWARF names
/// just `wait<...>`) is library code, found by its header.
#[test]
fn cpp_condition_variable_lost_wakeup_is_stuck() {
    let fx = start_cpp("condvar");
    let run = dumped(&fx, "cxx_waits condvar", TargetKind::Live);
    check_stuck(&fx, &run, fx.pid(), &[]);
    let src = cpp_source("cxx_waits.cpp");
    check_ownerless(&fx, &run.json, "worker", "cond_var", "ready_cv");
    let b = &thread(&run.json, fx.tid("worker"))["blocked_on"];
    site("wait_until_ready", src.clone(), "worker").check(&b["site"], "worker's wait");
    check_main_joins(&fx, &run.json, "worker", site("main", src, "main"));
}

// ---- Names from DWARF (issue 16.2) ---------------------------------------

/// Locks that only DWARF names by their source path: a member of an array
/// element inside a global struct, a member of an array element, an element
/// of a two-dimensional array, and a heap object's member through a global
/// pointer; a heap object's member through a pointer parameter of a frame
/// (t7's `take(acct)`). The heap lock reached only through a pointer inside
/// another heap object (t5's) has no name: lockdump follows no chains of
/// pointers.
#[test]
fn dwarf_names_source_paths() {
    let fx = start_c("dwarf_names");
    let run = dumped(&fx, "dwarf_names", TargetKind::Live);
    let src = c_source("dwarf_names.c");
    let hop = |waiter, ready, name: &str, owner, marker| Hop {
        waiter,
        target: Target::Lock {
            ready,
            symbol: Some(name.to_string()),
        },
        kind: "mutex",
        owner,
        confidence: "exact",
        site: site(&format!("{waiter}_main"), src.clone(), marker),
    };
    let hops = [
        hop("t1", "fork_1", "forks[1].m", "t2", "t1"),
        hop("t2", "acct_h", "account_h->lock", "t3", "t2"),
        hop("t3", "grid_12", "grid[1][2]", "t4", "t3"),
        hop("t4", "bank_3", "bank.accounts[3].lock", "t1", "t4"),
    ];
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    check_blocked_behind(&fx, &run.json, &["main", "t5", "t6", "t7"]);
    let b = &thread(&run.json, fx.tid("t5"))["blocked_on"];
    assert_eq!(b["address"], hex(fx.lock("hidden")), "{b}");
    assert_eq!(
        b["name"],
        Value::Null,
        "a pointer inside a heap object is not followed: {b}"
    );
    assert_eq!(b["owner_tid"], fx.tid("t4"), "{b}");
    // No global points to the vault; take()'s parameter `acct` does.
    let b = &thread(&run.json, fx.tid("t7"))["blocked_on"];
    assert_eq!(b["address"], hex(fx.lock("vault")), "{b}");
    assert_eq!(b["name"], "acct->lock", "{b}");
    assert_eq!(b["owner_tid"], fx.tid("t6"), "{b}");
    site("take", src.clone(), "t7").check(&b["site"], "t7's wait");
    // The text keeps the address beside the name.
    let text = lockdump_text(fx.pid());
    assert_eq!(text.code(), Some(1), "{}", text.stderr());
    let out = text.stdout();
    for (ready, name) in [
        ("fork_1", "forks[1].m"),
        ("acct_h", "account_h->lock"),
        ("grid_12", "grid[1][2]"),
        ("bank_3", "bank.accounts[3].lock"),
        ("vault", "acct->lock"),
    ] {
        let want = format!("waits for mutex {name} ({:#x})", fx.lock(ready));
        assert!(out.contains(&want), "{want:?} in {out}");
    }
    assert!(
        out.contains(&format!("waits for mutex {:#x}", fx.lock("hidden"))),
        "{out}"
    );
}

/// Without DWARF (symbols only) the same locks keep the ELF symbol and
/// offset, and the heap ones have no name.
#[test]
fn dwarf_names_without_dwarf_keep_symbol_offsets() {
    let fx = Fixture::spawn_blocked(c_fixture("dwarf_names", Variant::NoDwarf, &[]));
    let run = lockdump_json(&[fx.pid()]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let global = |g| fx.ready.address("globals", g);
    // x86_64 layouts: struct bank {char *; struct account {pthread_mutex_t (40); long} [4]},
    // struct fork {int; pthread_mutex_t} (48 bytes), pthread_mutex_t grid[2][3].
    assert_eq!(fx.lock("bank_3") - global("bank"), 8 + 3 * 48);
    assert_eq!(fx.lock("fork_1") - global("forks"), 48 + 8);
    assert_eq!(fx.lock("grid_12") - global("grid"), (3 + 2) * 40);
    for (waiter, ready, name) in [
        ("t1", "fork_1", Some("forks+0x38")),
        ("t2", "acct_h", None),
        ("t3", "grid_12", Some("grid+0xc8")),
        ("t4", "bank_3", Some("bank+0x98")),
        ("t5", "hidden", None),
        ("t6", "bank_3", Some("bank+0x98")),
        ("t7", "vault", None),
    ] {
        let b = &thread(&run.json, fx.tid(waiter))["blocked_on"];
        assert_eq!(b["address"], hex(fx.lock(ready)), "{waiter}: {b}");
        assert_eq!(b["name"].as_str(), name, "{waiter}: {b}");
    }
}

fn start_cpp_fixture(name: &str) -> Fixture {
    Fixture::spawn_blocked(common::cpp_fixture(name, &[]))
}

/// C++: a `std::mutex` member of a global object in a namespace
/// (`shop::bank.mu_`), a static member (`shop::Bank::registry_mu_`, the
/// demangled name), an element of a base class's member array
/// (`ledger.lines_[1]`), a heap object's member through a global pointer
/// (`bank_h->mu_`); never the inside of libstdc++'s types (`._M_mutex`).
#[test]
fn cpp_dwarf_names() {
    let fx = start_cpp_fixture("cxx_names");
    let run = dumped(&fx, "cxx_names", TargetKind::Live);
    let src = cpp_source("cxx_names.cpp");
    let hop = |waiter, ready, name: &str, owner| Hop {
        waiter,
        target: lock_named(ready, name),
        kind: "mutex",
        owner,
        confidence: "exact",
        site: site("run", src.clone(), "want"),
    };
    let hops = [
        hop("t1", "registry_mu", "shop::Bank::registry_mu_", "t2"),
        hop("t2", "heap_mu", "bank_h->mu_", "t3"),
        hop("t3", "line_1", "ledger.lines_[1]", "t4"),
        hop("t4", "bank_mu", "shop::bank.mu_", "t1"),
    ];
    check_cycle(&fx, &run, &hops, "exact", &same_pid(&fx));
    check_main_joins(&fx, &run.json, "t1", site("main", src, "main"));
}
