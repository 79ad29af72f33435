//! Issue 12 item 4: statically linked musl programs (`musl-gcc -static`,
//! with symbols and stripped). The fixtures are the glibc ones of
//! fixtures/c, built by tests/common/build.rs's musl variants.
//!
//! Debian's musl libc.a has no unwind tables, so these stacks end in musl's
//! syscall wrapper: the verdicts must come from futex arguments and memory
//! alone, and no test here asserts a call site.

mod common;

use common::{c_fixture, run_lockdump, Fixture, TargetKind, Variant};
use serde_json::Value;

fn json(pid: i32) -> (Option<i32>, Value) {
    let d = common::dump(TargetKind::Live, &[pid], &[]);
    (d.code(), d.json)
}

fn thread(doc: &Value, tid: i32) -> &Value {
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("thread {tid} missing"))
}

fn hex(a: u64) -> String {
    format!("{a:#x}")
}

fn check_libc(doc: &Value) {
    let libc = &doc["processes"][0]["libc"];
    assert_eq!(libc["name"], "musl", "{libc}");
    assert_eq!(libc["linkage"], "static", "{libc}");
}

/// t1 waits for lock_b held by t2, t2 for lock_a held by t1 (cycle2.h /
/// abba.c), with `kind` and `confidence` on both edges; main joins t1 (exact).
fn check_abba(fx: &Fixture, doc: &Value, code: Option<i32>, kind: &str, confidence: &str, named: bool) {
    assert_eq!(code, Some(1), "a deadlock: {}", doc["verdict"]);
    check_libc(doc);
    let ds = doc["deadlocks"].as_array().unwrap();
    assert_eq!(ds.len(), 1, "{ds:#?}");
    let d = &ds[0];
    let (t1, t2) = (fx.tid("t1"), fx.tid("t2"));
    let mut got: Vec<i64> = d["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    got.sort_unstable();
    let mut want = vec![t1 as i64, t2 as i64];
    want.sort_unstable();
    assert_eq!(got, want, "cycle members");
    assert_eq!(d["confidence"], confidence, "{d}");
    for (waiter, lock, owner) in [("t1", "lock_b", t2), ("t2", "lock_a", t1)] {
        let b = &thread(doc, fx.tid(waiter))["blocked_on"];
        assert_eq!(b["kind"], kind, "{waiter}: {b}");
        assert_eq!(b["address"], hex(fx.lock(lock)), "{waiter}: {b}");
        assert_eq!(b["name"].as_str(), named.then_some(lock), "{waiter}: {b}");
        assert_eq!(b["owner_tid"], owner, "{waiter}: {b}");
        assert_eq!(b["owner_pid"], fx.pid(), "{waiter}: {b}");
        assert_eq!(b["confidence"], confidence, "{waiter}: {b}");
        assert_eq!(b["owner_exited"], false, "{waiter}: {b}");
        let e = d["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["from_tid"] == fx.tid(waiter))
            .unwrap();
        assert_eq!(
            (e["to_tid"].as_i64(), e["address"].as_str()),
            (Some(owner as i64), Some(hex(fx.lock(lock)).as_str()))
        );
    }
    let main = &thread(doc, fx.tid("main"))["blocked_on"];
    assert_eq!(main["kind"], "thread", "{main}");
    assert_eq!(main["owner_tid"], t1, "{main}");
    assert_eq!(main["confidence"], "exact", "{main}");
    let behind: Vec<i64> = doc["verdict"]["blocked_behind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    assert_eq!(behind, vec![fx.tid("main") as i64]);
}

fn run_abba(fixture: &str, variant: Variant, kind: &str, confidence: &str) {
    let fx = Fixture::spawn_blocked(c_fixture(fixture, variant, &[]));
    let (code, doc) = json(fx.pid());
    let named = variant == Variant::MuslStatic;
    check_abba(&fx, &doc, code, kind, confidence, named);
    let owner_evidence = thread(&doc, fx.tid("t1"))["blocked_on"]["evidence"]
        .as_str()
        .unwrap()
        .to_string();
    if confidence == "exact" {
        assert_eq!(
            owner_evidence,
            format!(
                "_m_lock = {:#x}: owner TID {}",
                0x8000_0000u32 | fx.tid("t2") as u32,
                fx.tid("t2")
            )
        );
    } else {
        assert!(
            owner_evidence.starts_with("musl's normal mutexes record no owner"),
            "{owner_evidence}"
        );
    }
    eprintln!(
        "[musl] {fixture} {variant:?}: exit {code:?}, {} ({confidence})",
        doc["verdict"]["headline"]
    );
}

#[test]
fn errorcheck_cycle_static() {
    run_abba("errorcheck_cycle", Variant::MuslStatic, "error_check_mutex", "exact");
}

#[test]
fn errorcheck_cycle_static_stripped() {
    run_abba(
        "errorcheck_cycle",
        Variant::MuslStaticStripped,
        "error_check_mutex",
        "exact",
    );
}

#[test]
fn recursive_cycle_static() {
    run_abba("recursive_cycle", Variant::MuslStatic, "recursive_mutex", "exact");
}

#[test]
fn recursive_cycle_static_stripped() {
    run_abba(
        "recursive_cycle",
        Variant::MuslStaticStripped,
        "recursive_mutex",
        "exact",
    );
}

/// NORMAL mutexes keep no owner: owners may only be inferred (here each
/// holder keeps a pointer to the lock it holds in a saved register slot).
#[test]
fn normal_abba_static_is_inferred_never_exact() {
    run_abba("abba", Variant::MuslStatic, "mutex", "inferred");
    run_abba("abba", Variant::MuslStaticStripped, "mutex", "inferred");
}

/// The text report names the library.
#[test]
fn text_report_names_the_libc() {
    let fx = Fixture::spawn_blocked(c_fixture("errorcheck_cycle", Variant::MuslStaticStripped, &[]));
    let out = run_lockdump(&["--color", "never", "-p", &fx.pid().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("— libc: musl (static)"), "{text}");
}

/// Condition-variable waiters: a wait on the named condvar, no owner, no deadlock.
#[test]
fn condvar_wait_static_has_no_owner() {
    let fx = Fixture::spawn_blocked(c_fixture("condvar_wait", Variant::MuslStatic, &[]));
    let (code, doc) = json(fx.pid());
    // Nothing can signal cond_never and main joins cw0: stuck (issue 20).
    assert_eq!(code, Some(1), "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["kind"], "stuck", "{}", doc["verdict"]);
    check_libc(&doc);
    for w in ["cw0", "cw1"] {
        let b = &thread(&doc, fx.tid(w))["blocked_on"];
        assert_eq!(b["kind"], "cond_var", "{w}: {b}");
        assert_eq!(b["address"], hex(fx.lock("cond_never")), "{w}: {b}");
        assert_eq!(b["name"], "cond_never", "{w}: {b}");
        assert_eq!(b["owner_tid"], Value::Null, "{w}: {b}");
        assert_eq!(b["confidence"], "unknown", "{w}: {b}");
    }
}

/// Healthy control: eight threads hammering one NORMAL mutex, sampled 50
/// times: waits on lock_hot, never a deadlock, never an exact owner (musl
/// records none for a NORMAL mutex).
#[test]
fn contention_static_is_never_a_deadlock() {
    let mut fx = Fixture::spawn(c_fixture("contention", Variant::MuslStaticStripped, &[]));
    let workers: Vec<i32> = (0..8).map(|i| fx.tid(&format!("c{i}"))).collect();
    let mut waits = 0;
    for round in 0..50 {
        let (code, doc) = json(fx.pid());
        assert_eq!(code, Some(0), "round {round}: {}", doc["verdict"]);
        assert_eq!(doc["verdict"]["deadlocks"], 0, "round {round}");
        assert_eq!(doc["verdict"]["orphaned_locks"], 0, "round {round}");
        check_libc(&doc);
        for &tid in &workers {
            let b = &thread(&doc, tid)["blocked_on"];
            if b.is_null() {
                continue;
            }
            if b["kind"] == "futex" {
                // One of musl's internal locks (malloc, stdio, the thread
                // list: a worker starting or printing), which record no
                // owner: shown as a futex nobody is known to hold.
                assert_eq!(b["confidence"], "unknown", "round {round}: {b}");
                assert_eq!(b["owner_tid"], Value::Null, "round {round}: {b}");
                continue;
            }
            waits += 1;
            assert_eq!(b["kind"], "mutex", "round {round}: {b}");
            assert_eq!(b["address"], hex(fx.lock("lock_hot")), "round {round}: {b}");
            assert_ne!(b["confidence"], "exact", "round {round}: {b}");
        }
        assert!(fx.try_exit_status().is_none(), "contention exited during the dumps");
    }
    eprintln!("[musl] contention x50: no deadlock, {waits} waits on lock_hot seen");
}
