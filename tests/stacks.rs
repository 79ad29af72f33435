//! Issue 2: every thread of a live process, with a correct symbolized stack.
//! Each test starts a fixture, waits for its threads to block, runs the real
//! `lockdump` binary, and checks frames against what the fixture's source says.

mod common;

use common::{c_fixture, marked_line, run_lockdump, Fixture, Variant};
use serde_json::Value;

/// Run `lockdump -p PID --json` and parse it; panics with lockdump's stderr on failure.
fn dump(pid: i32) -> Value {
    let out = run_lockdump(&["-p", &pid.to_string(), "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "lockdump failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("lockdump printed invalid JSON ({e}): {stdout}"))
}

fn thread(doc: &Value, tid: i32) -> &Value {
    doc["threads"]
        .as_array()
        .expect("threads[]")
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("thread {tid} missing from lockdump's output"))
}

/// The function names of a thread's frames, innermost first.
fn functions(t: &Value) -> Vec<String> {
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("??").to_string())
        .collect()
}

/// The first frame (innermost first) whose function is `name`.
fn frame<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == name)
        .unwrap_or_else(|| panic!("no frame {name} in {:?}", functions(t)))
}

/// `want` appears in `have` in this order (other frames may come between).
fn assert_in_order(have: &[String], want: &[&str]) {
    let mut it = have.iter();
    for w in want {
        assert!(
            it.any(|h| h == w),
            "expected frames {want:?} in this order, got {have:?}"
        );
    }
}

fn source(name: &str) -> std::path::PathBuf {
    common::fixtures_dir().join("c").join(name)
}

#[test]
fn nested_calls_frames_lines_and_inlining() {
    let fx = Fixture::spawn_blocked(c_fixture("nested_calls", Variant::Debug, &[]));
    let doc = dump(fx.pid());
    let src = source("nested_calls.c");

    assert_eq!(doc["pid"], fx.pid());
    assert!(doc["pause_us"].as_u64().is_some(), "pause_us missing");
    assert_eq!(
        thread(&doc, fx.pid())["name"],
        "nested_calls",
        "the main thread keeps the program's name"
    );
    for name in ["chain_a", "chain_b", "chain_r"] {
        let t = thread(&doc, fx.tid(name));
        assert_eq!(t["name"], name, "comm of {name}");
        assert_eq!(t["state"], "S");
    }

    // chain_a: real frames, innermost first, each at the marked line.
    let a = thread(&doc, fx.tid("chain_a"));
    assert_eq!(a["syscall"]["nr"], 202);
    assert_eq!(
        a["syscall"]["args"][0],
        fx.lock("lock_nested"),
        "futex address is the mutex"
    );
    assert_in_order(
        &functions(a),
        &["level_one", "level_two", "level_three", "chain_a_main", "start_thread"],
    );
    for (func, key) in [
        ("level_one", "level_one"),
        ("level_two", "level_two"),
        ("level_three", "level_three"),
        ("chain_a_main", "chain_a"),
    ] {
        let f = frame(a, func);
        assert_eq!(f["line"], marked_line(&src, key), "line of {func}");
        assert!(
            f["file"].as_str().unwrap().ends_with("nested_calls.c"),
            "file of {func}: {f}"
        );
        assert_eq!(f["inlined"], false);
        assert_eq!(f["module"], "nested_calls");
    }

    // chain_b: the inl_* levels exist only in DWARF, as inlined frames of chain_b_main.
    let b = thread(&doc, fx.tid("chain_b"));
    assert_in_order(
        &functions(b),
        &["inl_level_one", "inl_level_two", "inl_level_three", "chain_b_main"],
    );
    for (func, key) in [
        ("inl_level_one", "inl_level_one"),
        ("inl_level_two", "inl_level_two"),
        ("inl_level_three", "inl_level_three"),
    ] {
        let f = frame(b, func);
        assert_eq!(f["inlined"], true, "{func} is inlined");
        assert_eq!(f["line"], marked_line(&src, key), "line of {func}");
    }
    assert_eq!(frame(b, "chain_b_main")["inlined"], false);
    assert_eq!(frame(b, "chain_b_main")["line"], marked_line(&src, "chain_b"));

    // chain_r: the same function four times.
    let r = thread(&doc, fx.tid("chain_r"));
    let recursions = functions(r).iter().filter(|f| *f == "recurse").count();
    assert_eq!(recursions, 4, "recurse(3..0) frames: {:?}", functions(r));

    // Every thread's stack ends cleanly at its outermost frame.
    for t in doc["threads"].as_array().unwrap() {
        assert!(
            t["unwind_error"].is_null(),
            "thread {} stopped early: {}",
            t["tid"],
            t["unwind_error"]
        );
        let last = functions(t).last().cloned().unwrap_or_default();
        assert!(
            last == "_start" || last == "clone3" || last == "clone",
            "outermost frame of {}: {last}",
            t["tid"]
        );
    }
}

#[test]
fn stripped_binary_still_unwinds_and_names_library_frames() {
    let fx = Fixture::spawn_blocked(c_fixture("nested_calls", Variant::Stripped, &[]));
    let doc = dump(fx.pid());
    let a = thread(&doc, fx.tid("chain_a"));
    let names = functions(a);
    // No symbols for the fixture's own functions, but CFI survives strip:
    // the unwinder gets through them to libc's thread start.
    assert!(names.iter().any(|n| n.contains("pthread_mutex_lock")), "{names:?}");
    assert!(names.iter().any(|n| n == "start_thread"), "{names:?}");
    let own: Vec<&Value> = a["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["module"] == "nested_calls-stripped")
        .collect();
    assert!(
        own.len() >= 4,
        "the fixture's own frames (chain_a_main + 3 levels) are listed: {names:?}"
    );
    assert!(
        own.iter().all(|f| f["file"].is_null()),
        "a stripped binary has no file:line"
    );
    assert!(a["unwind_error"].is_null(), "{}", a["unwind_error"]);
}

#[test]
fn signal_handler_frames() {
    let fx = Fixture::spawn_blocked(c_fixture("signal_handler", Variant::Debug, &[]));
    let doc = dump(fx.pid());
    for name in ["sig_lock", "sig_pause"] {
        let t = thread(&doc, fx.tid(name));
        let names = functions(t);
        let restore = names
            .iter()
            .position(|n| n == "__restore_rt")
            .unwrap_or_else(|| panic!("{name}: no __restore_rt in {names:?}"));
        let frames = t["frames"].as_array().unwrap();
        assert_eq!(frames[restore]["how"], "signal", "{name}: trampoline frame is marked");
        assert!(
            names[..restore].iter().any(|n| n.starts_with("on_")),
            "{name}: handler above the trampoline: {names:?}"
        );
        assert!(
            names[restore..].iter().any(|n| n == "start_thread"),
            "{name}: unwinds through the signal frame: {names:?}"
        );
        assert!(t["unwind_error"].is_null());
    }
}

#[test]
fn thousand_threads_are_all_listed() {
    let fx = Fixture::spawn_blocked(c_fixture("threads_idle", Variant::Debug, &["1000"]));
    let doc = dump(fx.pid());
    let listed: std::collections::BTreeSet<i64> = doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tid"].as_i64().unwrap())
        .collect();
    assert_eq!(fx_count(&fx), 1001);
    for (name, tid) in fx_threads(&fx) {
        assert!(listed.contains(&(tid as i64)), "thread {name} ({tid}) not listed");
    }
    let w = thread(&doc, fx.tid("w999"));
    assert!(
        functions(w).iter().any(|f| f.contains("pthread_cond_wait")),
        "{:?}",
        functions(w)
    );
    // The text report folds the 1000 idle workers into one entry; with
    // --all-threads it lists every thread on its own.
    let out = run_lockdump(&["-p", &fx.pid().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1000 threads "),
        "no folded entry for the 1000 workers:\n{text}"
    );
    let out = run_lockdump(&["--all-threads", "-p", &fx.pid().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    for (_, tid) in fx_threads(&fx) {
        assert!(
            text.contains(&format!("Thread {tid} ")),
            "text report misses thread {tid}"
        );
    }
}

fn fx_threads(fx: &Fixture) -> Vec<(String, i32)> {
    fx.ready.threads.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

fn fx_count(fx: &Fixture) -> usize {
    fx.ready.threads.len()
}

#[test]
fn busy_target_survives_fifty_dumps() {
    let progress = common::unique_path("busy-progress");
    let progress_s = progress.to_string_lossy().to_string();
    let fx = Fixture::spawn(c_fixture("busy", Variant::Debug, &["4", "--progress", &progress_s]));
    for i in 0..50 {
        let out = run_lockdump(&["-p", &fx.pid().to_string(), "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "dump {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let before = common::read_progress_u64s(&progress);
    common::wait_until(
        "every busy counter to advance after 50 dumps",
        || common::read_progress_u64s(&progress),
        |now| now.len() == before.len() && now.iter().zip(&before).all(|(n, b)| n > b),
    );
    let state = common::process_state(fx.pid());
    assert!(state != 'T' && state != 't', "target left stopped ({state})");
    assert_eq!(common::tracer_pid(fx.pid()), 0, "target still traced");
}

#[test]
fn no_stop_mode_still_finds_the_deadlock_and_says_stacks_may_be_partial() {
    let fx = Fixture::spawn_blocked(c_fixture("abba", Variant::Debug, &[]));
    let pid = fx.pid().to_string();
    let out = run_lockdump(&["-p", &pid, "--no-stop", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["processes"][0]["no_stop"], true);
    assert_eq!(doc["pause_us"], 0, "--no-stop never pauses the target");
    let mut cycle: Vec<i64> = doc["deadlocks"][0]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    cycle.sort();
    let mut want = vec![fx.tid("t1") as i64, fx.tid("t2") as i64];
    want.sort();
    assert_eq!(cycle, want);
    let text = run_lockdump(&["-p", &pid, "--no-stop"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("stacks may be partial"));
    // Stacks still reach the fixture's own code from the syscall's SP and PC.
    let t1 = thread(&doc, fx.tid("t1"));
    assert!(functions(t1).iter().any(|f| f == "t1_main"), "{:?}", functions(t1));
}
