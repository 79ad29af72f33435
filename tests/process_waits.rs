//! Hangs across processes that are not lock cycles: a pipe (or a connected
//! Unix socket) each side reads while only the other could write, and a parent waiting for a child that
//! can never exit. With `--tree` both ends are inspected and the verdict is
//! `stuck` (exit 1); without it the other end was not looked at, so the
//! wait may still end and nothing is claimed (exit 0). A healthy tree (a
//! pipe whose writer sleeps between writes, a parent waiting for a child that
//! sleeps) is never stuck.

mod common;

use common::{c_fixture, Fixture, Variant};
use serde_json::Value;

fn dump(pid: i32, tree: bool) -> (i32, Value) {
    let extra: &[&str] = if tree { &["--tree"] } else { &[] };
    let d = common::dump(common::TargetKind::Live, &[pid], extra);
    (d.code().expect("exit code"), d.json)
}

fn thread<'a>(doc: &'a Value, tid: i32) -> &'a Value {
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("no thread {tid} in {}", doc["threads"]))
}

fn stuck_pids(doc: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = doc["verdict"]["stuck"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["whole_process"] == true)
        .map(|s| s["pid"].as_i64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn pipe_read_by_both_sides_is_stuck_with_tree() {
    read_by_both_sides("cycle", "pipe:[", "every process holding its write end");
}

/// The same with connected Unix sockets: the peer socket's holders, found
/// through the kernel's sock_diag (the parent waits in recvfrom).
#[test]
fn unix_socket_read_by_both_sides_is_stuck_with_tree() {
    read_by_both_sides("sockcycle", "Unix socket:[", "every process holding the other end");
}

/// Parent and child each read a channel (MODE) only the other writes.
fn read_by_both_sides(mode: &str, channel: &str, holders: &str) {
    let fx = Fixture::spawn(c_fixture("pipe_waits", Variant::Debug, &[mode]));
    let (parent, child) = (fx.tid("parent"), fx.tid("child"));
    fx.wait_blocked(&[parent, child]);
    let (code, doc) = dump(parent, true);
    assert_eq!(code, 1, "{}", doc["verdict"]["headline"]);
    assert_eq!(doc["verdict"]["kind"], "stuck");
    let mut want = vec![parent as i64, child as i64];
    want.sort_unstable();
    assert_eq!(stuck_pids(&doc), want);
    for (tid, other) in [(parent, child), (child, parent)] {
        let t = thread(&doc, tid);
        assert_eq!(t["asleep_for_good"], true, "{t}");
        let why = t["why"].as_str().unwrap();
        assert!(
            why.contains(channel) && why.contains(&format!("{holders} (PID {other})")),
            "{why}"
        );
    }
    // Only the parent: its writer (the child) was not inspected.
    let (code, doc) = dump(parent, false);
    assert_eq!(code, 0, "{}", doc["verdict"]["headline"]);
    let why = thread(&doc, parent)["why"].as_str().unwrap().to_string();
    assert!(why.contains(&format!("PID {child}, which was not inspected")), "{why}");
}

/// Within one process: two threads each read a pipe whose write end only
/// their own process holds, and nothing else runs. Stuck without --tree.
#[test]
fn pipes_read_by_two_threads_of_one_process_are_stuck() {
    let fx = Fixture::spawn(c_fixture("pipe_waits", Variant::Debug, &["threads"]));
    let (a, b) = (fx.tid("reader_a"), fx.tid("reader_b"));
    fx.wait_blocked(&[fx.tid("main"), a, b]);
    let (code, doc) = dump(fx.pid(), false);
    assert_eq!(code, 1, "{}", doc["verdict"]["headline"]);
    assert_eq!(doc["verdict"]["kind"], "stuck");
    assert_eq!(stuck_pids(&doc), vec![fx.pid() as i64]);
    for tid in [a, b] {
        let t = thread(&doc, tid);
        assert_eq!(t["asleep_for_good"], true, "{t}");
        let why = t["why"].as_str().unwrap();
        assert!(
            why.contains("pipe:[") && why.contains(&format!("every process holding its write end (PID {})", fx.pid())),
            "{why}"
        );
    }
}

#[test]
fn parent_waiting_for_a_deadlocked_child_is_stuck() {
    let fx = Fixture::spawn(c_fixture("pipe_waits", Variant::Debug, &["wait"]));
    let (parent, child) = (fx.tid("parent"), fx.tid("child"));
    // The child's two threads settle in their deadlock; the parent in wait4.
    common::wait_until(
        "the child's deadlock",
        || dump(parent, true),
        |(code, doc)| *code == 1 && doc["deadlocks"].as_array().is_some_and(|d| d.len() == 1),
    );
    fx.wait_blocked(&[parent]);
    let (code, doc) = dump(parent, true);
    assert_eq!(code, 1);
    assert_eq!(doc["verdict"]["kind"], "deadlock");
    assert_eq!(doc["deadlocks"][0]["pids"], serde_json::json!([child, child]));
    let t = thread(&doc, parent);
    assert_eq!(t["asleep_for_good"], true, "{t}");
    let why = t["why"].as_str().unwrap();
    assert!(
        why.contains(&format!("child PID {child}")) && why.contains("every child it waits for"),
        "{why}"
    );
    assert!(
        stuck_pids(&doc).contains(&(parent as i64)),
        "{}",
        doc["verdict"]["stuck"]
    );
    // Shown behind the child's deadlock, in JSON and under the cycle.
    assert_eq!(
        doc["verdict"]["blocked_behind_processes"],
        serde_json::json!([{
            "pid": parent, "tid": parent, "waits_on": format!("child PID {child}"),
            "pids": [child], "deadlock": 0
        }])
    );
    let out = common::run_lockdump(&["-p", &parent.to_string(), "--tree"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!("  Blocked behind it: thread {parent} \"");
    let behind = text
        .lines()
        .skip_while(|l| !l.starts_with("Deadlock #1"))
        .take_while(|l| !l.is_empty())
        .find(|l| l.starts_with(&line))
        .unwrap_or_else(|| panic!("no {line:?} under the deadlock: {text}"));
    assert!(
        behind.ends_with(&format!(
            "(waits on child PID {child}, which only PID {child} could end: held up by this deadlock)"
        )),
        "{behind}"
    );
}

/// Control: 100 dumps of a tree whose pipe writer sleeps between writes and
/// whose waited-for child sleeps: nothing stuck, exit 0 every time.
#[test]
fn healthy_pipe_and_child_waits_are_never_stuck() {
    never_stuck("healthy");
}

/// The same over a Unix socket whose peer sends every 10 ms.
#[test]
fn healthy_unix_socket_and_child_waits_are_never_stuck() {
    never_stuck("sockhealthy");
}

fn never_stuck(mode: &str) {
    let fx = Fixture::spawn(c_fixture("pipe_waits", Variant::Debug, &[mode]));
    let (parent, waiter) = (fx.tid("parent"), fx.tid("waiter"));
    fx.wait_blocked(&[waiter]);
    for run in 0..100 {
        let (code, doc) = dump(parent, true);
        assert_eq!(
            code, 0,
            "run {run}: {} {}",
            doc["verdict"]["headline"], doc["verdict"]["stuck"]
        );
        assert!(doc["verdict"]["stuck"].as_array().unwrap().is_empty());
        let w = thread(&doc, waiter);
        assert_eq!(w["asleep_for_good"], false, "{w}");
    }
}
