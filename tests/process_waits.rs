//! Hangs across processes that are not lock cycles: a pipe (or a connected
//! Unix socket) each side reads while only the other could write, and a parent waiting for a child that
//! can never exit. With `--tree` both ends are inspected and the verdict is
//! `stuck` (exit 1); without it the other end was not looked at, so the
//! wait may still end and nothing is claimed (exit 0). A healthy tree (a
//! pipe whose writer sleeps between writes, a parent waiting for a child that
//! sleeps) is never stuck.

mod common;

use common::{c_fixture, stuck_pids, Fixture, Variant};
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

/// Start pipe_waits MODE, wait until its parent and child are blocked, and
/// dump the tree: both processes must be stuck (exit 1).
fn stuck_pair(mode: &str) -> (Fixture, i32, i32, Value) {
    let fx = Fixture::spawn(c_fixture("pipe_waits", Variant::Debug, &[mode]));
    let (parent, child) = (fx.tid("parent"), fx.tid("child"));
    fx.wait_blocked(&[parent, child]);
    let (code, doc) = dump(parent, true);
    assert_eq!(code, 1, "{}", doc["verdict"]["headline"]);
    assert_eq!(doc["verdict"]["kind"], "stuck");
    let mut want = vec![parent as i64, child as i64];
    want.sort_unstable();
    assert_eq!(stuck_pids(&doc), want);
    (fx, parent, child, doc)
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
    let (_fx, parent, child, doc) = stuck_pair(mode);
    // The circular wait through both processes, from the lower (PID, TID).
    let cycles = doc["verdict"]["process_cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let mut tids = vec![parent, child];
    tids.sort_unstable();
    assert_eq!(cycles[0]["threads"], serde_json::json!(tids));
    for (k, &tid) in tids.iter().enumerate() {
        let other = if tid == parent { child } else { parent };
        let w = &cycles[0]["waits"][k];
        assert_eq!(
            (w["kind"].as_str(), w["pid"].as_i64()),
            (Some("process"), Some(other as i64)),
            "{w}"
        );
        assert!(w["waits_on"].as_str().unwrap().starts_with(channel), "{w}");
    }
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

/// The classic pipe deadlock: the child fills the pipe, the parent waits
/// for it to exit before it would read. Both processes are stuck, and the
/// report shows the circular wait through them: the parent waits for the
/// child to exit, the child for the parent to read.
#[test]
fn parent_waiting_for_a_child_that_fills_its_pipe_is_stuck_with_tree() {
    waits_for_a_full_channel("full", "pipe:[", "every process holding its read end", "readers");
}

/// The same over a socketpair: the child's send buffer fills.
#[test]
fn parent_waiting_for_a_child_that_fills_its_socket_is_stuck_with_tree() {
    waits_for_a_full_channel(
        "sockfull",
        "Unix socket:[",
        "every process holding the other end",
        "socket_peers",
    );
}

fn waits_for_a_full_channel(mode: &str, channel: &str, holders: &str, ended_by: &str) {
    let (fx, parent, child, doc) = stuck_pair(mode);
    let fd = fx.int("fds", "child_write");
    let why = |tid| thread(&doc, tid)["why"].as_str().unwrap().to_string();
    assert!(why(parent).contains(&format!("child PID {child}")), "{}", why(parent));
    assert!(
        why(child).contains(&format!("{channel}"))
            && why(child).contains(&format!("(fd {fd}): {holders} (PID {parent})")),
        "{}",
        why(child)
    );
    // The cycle through both processes, from the lower (PID, TID).
    let cycles = doc["verdict"]["process_cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let c = &cycles[0];
    let by_child = serde_json::json!({
        "kind": "process", "waits_on": format!("child PID {child}"), "pid": child, "ended_by": "children",
    });
    let channel_wait = &c["waits"][if parent < child { 1 } else { 0 }];
    assert_eq!(channel_wait["kind"], "process", "{c}");
    assert_eq!(channel_wait["pid"], parent, "{c}");
    assert_eq!(channel_wait["ended_by"], ended_by, "{c}");
    let on = channel_wait["waits_on"].as_str().unwrap();
    assert!(on.starts_with(channel) && on.ends_with(&format!(" (fd {fd})")), "{on}");
    if parent < child {
        assert_eq!(c["threads"], serde_json::json!([parent, child]));
        assert_eq!(c["pids"], serde_json::json!([parent, child]));
        assert_eq!(c["waits"][0], by_child);
    } else {
        assert_eq!(c["threads"], serde_json::json!([child, parent]));
        assert_eq!(c["waits"][1], by_child);
    }
    // In words, under the stuck processes.
    let out = common::run_lockdump(&["-p", &parent.to_string(), "--tree"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Circular wait through processes:")
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(section.len(), 3, "{text}");
    let parent_line = section
        .iter()
        .find(|l| l.contains(&format!("Thread {parent} ")))
        .unwrap();
    assert!(
        parent_line.contains(&format!(
            "waits on child PID {child}, which only PID {child} can end, by exiting"
        )),
        "{parent_line}"
    );
    // In the picture: parent → its wait on the child → the child's thread, in red.
    let dot = common::run_lockdump(&["-p", &parent.to_string(), "--tree", "--dot"]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    let label = format!("[label=\"child PID {child}\\nonly PID {child} can end it, by exiting\"");
    let node = dot
        .lines()
        .find(|l| l.contains(&label))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no node {label} in {dot}"));
    for edge in [
        format!("t_{parent}_{parent} -> {node} [label=\"waits on (cycle)\", color=\"#cc0000\""),
        format!("{node} -> t_{child}_{child} [label=\"PID {child} acts through\", color=\"#cc0000\""),
    ] {
        assert!(
            dot.lines().any(|l| l.trim_start().starts_with(&edge)),
            "no {edge} in {dot}"
        );
    }
    // Either side alone: the other end was not inspected, nothing is claimed.
    for (pid, other) in [(parent, child), (child, parent)] {
        let (code, doc) = dump(pid, false);
        assert_eq!(code, 0, "{}", doc["verdict"]["headline"]);
        assert!(doc["verdict"]["process_cycles"].as_array().unwrap().is_empty());
        let why = thread(&doc, pid)["why"].as_str().unwrap().to_string();
        assert!(why.contains(&format!("PID {other}, which was not inspected")), "{why}");
    }
}

/// Control: the same writer, but the parent drains the pipe between
/// sleeps while its other thread waits for the writer to exit: never stuck.
#[test]
fn a_full_pipe_its_reader_drains_is_never_stuck() {
    never_stuck("fullhealthy");
}

/// The same over a socketpair.
#[test]
fn a_full_socket_its_reader_drains_is_never_stuck() {
    never_stuck("sockfullhealthy");
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
        assert!(doc["verdict"]["process_cycles"].as_array().unwrap().is_empty());
        let w = thread(&doc, waiter);
        assert_eq!(w["asleep_for_good"], false, "{w}");
    }
}
