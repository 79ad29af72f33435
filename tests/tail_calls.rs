//! Tail-call frames: functions that jumped to their callee have no frame on
//! the stack; lockdump puts them back from DWARF call-site information, in
//! order, marked `how: "tailcall"`, and only when the path is certain.
//!
//! Fixture: fixtures/c/tail_calls.c (its /proc and machine-code shape is
//! checked by tests/fixtures.rs `c_tail_calls`).

mod common;

use common::{branches_ending_at, c_fixture, marked_line, run_lockdump, Branch, Fixture, Variant};
use serde_json::Value;

fn dump(pid: i32, args: &[&str]) -> std::process::Output {
    let pid = pid.to_string();
    let mut all = vec!["-p", pid.as_str()];
    all.extend_from_slice(args);
    let out = run_lockdump(&all);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "lockdump failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(pid: i32) -> Value {
    let out = dump(pid, &["--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lockdump printed invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn frames(doc: &Value, tid: i32) -> &[Value] {
    doc["threads"]
        .as_array()
        .expect("threads[]")
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("thread {tid} missing from lockdump's output"))["frames"]
        .as_array()
        .expect("frames[]")
}

fn names(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["function"].as_str().unwrap_or("??")).collect()
}

/// The frames strictly between glibc's mutex lock frame and the frame of
/// `caller` (the fixture function that really called).
fn between_lock_and<'a>(frames: &'a [Value], caller: &str) -> &'a [Value] {
    let lock = frames
        .iter()
        .position(|f| {
            f["function"]
                .as_str()
                .is_some_and(|n| n.ends_with("pthread_mutex_lock"))
        })
        .unwrap_or_else(|| panic!("no pthread_mutex_lock frame in {:?}", names(frames)));
    let at = frames
        .iter()
        .position(|f| f["function"] == caller)
        .unwrap_or_else(|| panic!("no {caller} frame in {:?}", names(frames)));
    assert!(lock < at, "{caller} must be outside the lock: {:?}", names(frames));
    assert_ne!(
        frames[lock]["how"], "tailcall",
        "the lock function has a real frame: {:?}",
        frames[lock]
    );
    assert_ne!(
        frames[at]["how"], "tailcall",
        "{caller} has a real frame: {:?}",
        frames[at]
    );
    &frames[lock + 1..at]
}

#[test]
fn tail_call_frames_are_synthesized_in_order() {
    let fx = Fixture::spawn_blocked(c_fixture("tail_calls", Variant::Debug, &[]));
    let pid = fx.pid();
    let doc = json(pid);
    let src = common::fixtures_dir().join("c/tail_calls.c");
    let func = |name: &str| fx.ready.address("funcs", name);

    // tc_chain: tail_a called tail_b, which jumped to tail_c, which jumped to
    // tail_d, which jumped to pthread_mutex_lock.
    let chain = frames(&doc, fx.tid("tc_chain"));
    let tail = between_lock_and(chain, "tail_a");
    assert_eq!(
        names(tail),
        ["tail_d", "tail_c", "tail_b"],
        "innermost first; whole stack {:?}",
        names(chain)
    );
    for (f, key) in tail.iter().zip(["tail_d", "tail_c", "tail_b"]) {
        assert_eq!(f["how"], "tailcall", "{f}");
        assert_eq!(f["kind"], "native");
        assert_eq!(f["inlined"], false);
        assert_eq!(f["module"], "tail_calls");
        assert!(f["file"].as_str().unwrap_or("").ends_with("tail_calls.c"), "{f}");
        assert_eq!(f["line"], marked_line(&src, key), "line of the tail call in {key}");
        // pc is the address right after the function's jmp: pc - offset is its entry.
        let pc = f["pc"].as_u64().unwrap();
        let offset = f["offset"].as_u64().unwrap_or_else(|| panic!("offset of {f}"));
        assert_eq!(pc - offset, func(key), "{key} entry, frame {f}");
    }
    // The jumps are real: each synthesized pc ends a jmp to the next function in.
    let pcs: Vec<u64> = tail.iter().map(|f| f["pc"].as_u64().unwrap()).collect();
    for (pc, to) in pcs[1..].iter().zip(["tail_d", "tail_c"]) {
        let branches = branches_ending_at(pid, *pc);
        assert!(
            branches.contains(&(Branch::Jmp, func(to))),
            "{pc:#x} should end a jmp to {to}: {branches:?}"
        );
    }
    assert!(
        branches_ending_at(pid, pcs[0]).iter().any(|(k, _)| *k == Branch::Jmp),
        "tail_d's pc ends its jmp to pthread_mutex_lock"
    );
    let tail_a = chain.iter().find(|f| f["function"] == "tail_a").unwrap();
    assert_eq!(tail_a["line"], marked_line(&src, "tail_a"));

    // tc_ambig: amb_y jumped to amb_p or amb_q, which both jump to the lock.
    // Two paths with nothing in common: nothing is invented.
    let ambig = frames(&doc, fx.tid("tc_ambig"));
    let between = between_lock_and(ambig, "amb_x");
    assert!(between.is_empty(), "ambiguous: no frames, got {:?}", names(between));

    // tc_partial: two paths (via part_p or part_q) that share part_r only.
    let partial = frames(&doc, fx.tid("tc_partial"));
    let between = between_lock_and(partial, "part_x");
    assert_eq!(
        names(between),
        ["part_r"],
        "only the common inner tail call; whole stack {:?}",
        names(partial)
    );
    assert_eq!(between[0]["how"], "tailcall");
    assert_eq!(between[0]["line"], marked_line(&src, "part_r"));

    // No thread has a tail-call frame anywhere else.
    let total: usize = doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["how"] == "tailcall")
                .count()
        })
        .sum();
    assert_eq!(total, 4, "tail_d, tail_c, tail_b and part_r only");
}

#[test]
fn text_report_marks_tail_call_frames() {
    let fx = Fixture::spawn_blocked(c_fixture("tail_calls", Variant::Debug, &[]));
    let out = dump(fx.pid(), &["--native"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["tail_d", "tail_c", "tail_b", "part_r"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {name}+")))
            .unwrap_or_else(|| panic!("no frame line for {name} in:\n{text}"));
        assert!(line.contains("(tail call)"), "{name} is marked: {line}");
    }
    let tail_a = text
        .lines()
        .find(|l| l.contains(" tail_a+"))
        .unwrap_or_else(|| panic!("no tail_a line in:\n{text}"));
    assert!(!tail_a.contains("(tail call)"), "tail_a has a real frame: {tail_a}");
}
