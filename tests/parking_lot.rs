//! Locks of the crates.io `parking_lot` crate (fixtures/rust/rust_parking_lot*.rs,
//! built by cargo against parking_lot 0.12): the lock a parked thread waits
//! for is read from parking_lot_core's hash table (its futex word is its
//! own), named like std's locks, and its owner inferred (parking_lot records
//! none) from live guards in the DWARF locals or the code that took it.
//!
//! Every fixture runs in the builds that keep the symbols the hash table is
//! found through: the release profile (symbols, line tables, no DWARF
//! locals) and `fixture-debug` (full DWARF). Stripped, the table cannot be
//! found: tests/unsupported_runtimes.rs checks that this is said.
//!
//! - AB-BA on two `Mutex`es: the cycle, exact TIDs, lock addresses and names;
//! - an `RwLock` reader waiting for a `Mutex` whose holder waits to write:
//!   the cycle through the writer parked on the RwLock's address + 1;
//! - healthy contention, sampled 100 times: never a cycle.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{
    marked_line, run_lockdump, rust_example, rust_example_with, sample_thread, wait_until, Fixture, RustBuild,
    SYS_FUTEX,
};
use serde_json::Value;

/// Samples of the contention fixture; zero may show a cycle.
const SAMPLES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    /// The release profile: symbols and line tables, no DWARF locals.
    Release,
    /// `fixture-debug`: full DWARF.
    Debug,
}

fn exe(name: &str, build: Build) -> PathBuf {
    match build {
        Build::Release => rust_example(name),
        Build::Debug => rust_example_with(name, RustBuild::Debug),
    }
}

fn lockdump_json(pid: i32) -> (Option<i32>, Value, String) {
    let d = common::dump(common::TargetKind::Live, &[pid], &[]);
    let stderr = d.stderr();
    (d.code(), d.json, stderr)
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

/// One wait of a cycle: `waiter` waits for the lock READY names `lock`
/// (symbol `symbol`), of `kind`, held by `owner`.
struct Hop<'a> {
    waiter: &'a str,
    lock: &'a str,
    symbol: &'a str,
    kind: &'a str,
    owner: &'a str,
}

fn check_cycle(fx: &Fixture, hops: &[Hop<'_>], source: &str) {
    let (code, json, stderr) = lockdump_json(fx.pid());
    assert_eq!(code, Some(1), "exit code with a deadlock: {stderr}\n{json:#}");
    assert_eq!(json["verdict"]["kind"], "deadlock", "{}", json["verdict"]);
    let ds = json["deadlocks"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{json:#}");
    let d = &ds[0];
    let mut want: Vec<i32> = hops.iter().map(|h| fx.tid(h.waiter)).collect();
    want.sort_unstable();
    let mut got: Vec<i32> = d["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap() as i32)
        .collect();
    got.sort_unstable();
    assert_eq!(got, want, "{d:#}");
    assert_eq!(d["confidence"], "inferred", "{d:#}");
    for hop in hops {
        let (waiter, owner) = (fx.tid(hop.waiter), fx.tid(hop.owner));
        let w = blocked_on(&json, waiter);
        assert_eq!(w["kind"], hop.kind, "{}: {w}", hop.waiter);
        assert_eq!(w["address"], format!("{:#x}", fx.lock(hop.lock)), "{}: {w}", hop.waiter);
        assert_eq!(w["name"], hop.symbol, "{}: {w}", hop.waiter);
        assert_eq!(w["owner_tid"], owner, "{}: {w}", hop.waiter);
        assert_eq!(w["owner_pid"], fx.pid(), "{}: {w}", hop.waiter);
        assert_eq!(w["confidence"], "inferred", "{}: {w}", hop.waiter);
        let ev = w["evidence"].as_str().unwrap();
        assert!(ev.starts_with("parking_lot locks record no owner; "), "{ev}");
        assert!(ev.contains(&format!("thread {owner} ")), "{ev}");
        // The site is the fixture's own line, not parking_lot's code.
        let src = common::fixtures_dir().join("rust").join(source);
        assert_eq!(w["site"]["line"], marked_line(&src, hop.waiter), "{}: {w}", hop.waiter);
        assert!(
            w["site"]["file"].as_str().is_some_and(|f| f.ends_with(source)),
            "{}: {w}",
            hop.waiter
        );
        // The edge of the cycle says the same.
        let e = d["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["from_tid"] == waiter)
            .unwrap_or_else(|| panic!("no edge from {waiter}: {d:#}"));
        assert_eq!(
            (&e["to_tid"], &e["kind"], &e["confidence"]),
            (&Value::from(owner), &Value::from(hop.kind), &Value::from("inferred")),
            "{e}"
        );
    }
    assert_eq!(json["verdict"]["blocked_behind"], serde_json::json!([fx.tid("main")]));
    assert!(
        json["verdict"]["unexamined"].as_array().is_none_or(|u| u.is_empty()),
        "{}",
        json["verdict"]
    );
}

fn abba(build: Build) {
    let fx = Fixture::spawn_blocked(Command::new(exe("rust_parking_lot", build)));
    let hops = [
        Hop {
            waiter: "t1",
            lock: "lock_b",
            symbol: "rust_parking_lot::LOCK_B",
            kind: "parking_lot_mutex",
            owner: "t2",
        },
        Hop {
            waiter: "t2",
            lock: "lock_a",
            symbol: "rust_parking_lot::LOCK_A",
            kind: "parking_lot_mutex",
            owner: "t1",
        },
    ];
    check_cycle(&fx, &hops, "rust_parking_lot.rs");
    let out = run_lockdump(&["--color", "never", "-p", &fx.pid().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Found 1 deadlock (2 threads, 2 parking_lot locks)"),
        "{text}"
    );
}

#[test]
fn mutex_abba_release_build() {
    abba(Build::Release);
}

#[test]
fn mutex_abba_with_debug_info() {
    abba(Build::Debug);
}

fn rwlock_cycle(build: Build) {
    let fx = Fixture::spawn_blocked(Command::new(exe("rust_parking_lot_rwlock", build)));
    let hops = [
        Hop {
            waiter: "t1",
            lock: "m",
            symbol: "rust_parking_lot_rwlock::M",
            kind: "parking_lot_mutex",
            owner: "t2",
        },
        Hop {
            waiter: "t2",
            lock: "rw",
            symbol: "rust_parking_lot_rwlock::RW",
            kind: "parking_lot_rw_lock",
            owner: "t1",
        },
    ];
    check_cycle(&fx, &hops, "rust_parking_lot_rwlock.rs");
    let (_, json, _) = lockdump_json(fx.pid());
    let w = blocked_on(&json, fx.tid("t2"));
    // The writer took the writer bit and parks on the RwLock's address + 1.
    assert_eq!(
        w["how"],
        format!(
            "parking_lot::RwLock::write (holds the writer bit, waits for the readers to leave) (parked on key {:#x})",
            fx.lock("rw") + 1
        ),
        "{w}"
    );
    assert!(w["evidence"].as_str().unwrap().contains("one reader"), "{w}");
}

#[test]
fn rwlock_reader_and_writer_cycle_release_build() {
    rwlock_cycle(Build::Release);
}

#[test]
fn rwlock_reader_and_writer_cycle_with_debug_info() {
    rwlock_cycle(Build::Debug);
}

fn contention_never_cycles(build: Build) {
    let fx = Fixture::spawn(Command::new(exe("rust_parking_lot_contention", build)));
    let workers: Vec<i32> = (0..4).map(|w| fx.tid(&format!("w{w}"))).collect();
    let locks: Vec<String> = ["rw", "lock_a", "lock_b"]
        .iter()
        .map(|l| format!("{:#x}", fx.lock(l)))
        .collect();
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
            let kind = b["kind"].as_str().unwrap_or_default();
            if kind == "parking_lot_mutex" || kind == "parking_lot_rw_lock" {
                waits += 1;
                let addr = b["address"].as_str().unwrap().to_string();
                assert!(
                    locks.contains(&addr),
                    "sample {n}: a wait on {addr}, not a fixture lock: {b}"
                );
                if !b["owner_tid"].is_null() {
                    with_owner += 1;
                    assert_eq!(b["confidence"], "inferred", "{b}");
                }
            }
        }
    }
    eprintln!(
        "[parking_lot] contention {build:?}: {SAMPLES} samples, {waits} parking_lot waits, {with_owner} with an inferred owner, 0 cycles"
    );
    assert!(waits > 0, "no sample caught a worker waiting for a parking_lot lock");
}

#[test]
fn contention_never_cycles_release_build() {
    contention_never_cycles(Build::Release);
}

#[test]
fn contention_never_cycles_with_debug_info() {
    contention_never_cycles(Build::Debug);
}
