//! gdb as an oracle: for every thread of a fixture, the function names gdb's
//! `thread apply all bt` prints must appear, in order, in lockdump's native
//! stack for that thread — at least 95% of all of gdb's frames.
//!
//! Fixtures: a C program built -O2 with inlined functions, one with chains of
//! tail calls (gdb's "tail call frames"), a Rust program, and a CPython
//! interpreter (pyenv 3.12, with DWARF).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{c_fixture, python_fixture, python_interpreters, run_lockdump, rust_example, Fixture, Variant};

/// Required share of gdb's frames that lockdump reproduces in order.
const AGREEMENT: f64 = 0.95;

/// gdb's backtrace of every thread: TID -> function names, innermost first.
fn gdb_backtraces(pid: i32) -> BTreeMap<i32, Vec<String>> {
    let out = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-nx",
            "-ex",
            "set pagination off",
            "-ex",
            "thread apply all bt",
        ])
        .output()
        .expect("gdb must be installed (scripts/setup-tools.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = BTreeMap::new();
    let mut current: Option<i32> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Thread ") {
            // Thread 2 (Thread 0x7f... (LWP 1234) "name"):
            current = rest
                .split("(LWP ")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .and_then(|s| s.trim().parse().ok());
            if let Some(t) = current {
                result.insert(t, Vec::new());
            }
            continue;
        }
        let Some(tid) = current else { continue };
        let line = line.trim_start();
        if !line.starts_with('#') {
            continue;
        }
        // "#3  0x00007f.. in func (args) at file:line" or "#0  func (args) at ..."
        let after_num = line
            .split_once(char::is_whitespace)
            .map(|(_, r)| r.trim_start())
            .unwrap_or("");
        let name = if after_num.starts_with("0x") {
            after_num.split_once(" in ").map(|(_, r)| r).unwrap_or("??")
        } else {
            after_num
        };
        let name = if name.starts_with("<signal handler called>") {
            "__restore_rt".to_string()
        } else {
            name.split(" (").next().unwrap_or("??").trim().to_string()
        };
        result.get_mut(&tid).unwrap().push(name);
    }
    assert!(
        !result.is_empty(),
        "gdb printed no threads:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    result
}

/// lockdump's native frames per thread.
fn lockdump_backtraces(pid: i32) -> BTreeMap<i32, Vec<String>> {
    let out = run_lockdump(&["-p", &pid.to_string(), "--json", "--native"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lockdump JSON: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let frames = t["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["kind"] == "native")
                .map(|f| f["function"].as_str().unwrap_or("??").to_string())
                .collect();
            (t["tid"].as_i64().unwrap() as i32, frames)
        })
        .collect()
}

/// Names as both tools may spell them: `<Type>::method` (v0 demangling of an
/// inherent method) as `Type::method`, no generic arguments, one spelling of closures.
fn normalize(name: &str) -> String {
    let name = unwrap_inherent(name);
    let mut out = String::new();
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let out = out.replace("{{closure}}", "{closure}");
    let out = regex_lite_closure(&out);
    // `do_call::<T>` (v0 turbofish) loses its generics to `do_call::`.
    out.trim().trim_end_matches("::").to_string()
}

/// `{closure#0}` -> `{closure}` without a regex dependency.
fn regex_lite_closure(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{closure#") {
        out.push_str(&rest[..i]);
        out.push_str("{closure}");
        rest = rest[i..].split_once('}').map(|(_, r)| r).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// `<std::sys::Mutex>::lock` -> `std::sys::Mutex::lock`; trait impls (`<A as B>::m`) stay.
fn unwrap_inherent(name: &str) -> String {
    if let Some(rest) = name.strip_prefix('<') {
        let mut depth = 1;
        for (i, c) in rest.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        let inner = &rest[..i];
                        if !inner.contains(" as ") && rest[i + 1..].starts_with("::") {
                            return format!("{inner}{}", &rest[i + 1..]);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    name.to_string()
}

/// Trait impl methods are named differently by the two tools (`{impl#2}::call_once`
/// in gdb, `<A as B>::call_once` in lockdump): compare only the method then.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (normalize(a), normalize(b));
    if a.contains("{impl#") || b.contains("{impl#") || a.starts_with('<') || b.starts_with('<') {
        return a.rsplit("::").next() == b.rsplit("::").next();
    }
    a == b || a.ends_with(&format!("::{b}")) || b.ends_with(&format!("::{a}"))
}

/// How many of gdb's frames lockdump has, matched in order (longest common subsequence).
fn matched_in_order(gdb: &[String], ours: &[String]) -> usize {
    let mut dp = vec![vec![0usize; ours.len() + 1]; gdb.len() + 1];
    for i in 1..=gdb.len() {
        for j in 1..=ours.len() {
            dp[i][j] = if same(&gdb[i - 1], &ours[j - 1]) {
                dp[i - 1][j - 1] + 1
            } else {
                dp[i - 1][j].max(dp[i][j - 1])
            };
        }
    }
    dp[gdb.len()][ours.len()]
}

/// Compare and return the agreement; panics with a per-thread diff below the bar.
fn compare(label: &str, pid: i32) -> f64 {
    let ours = lockdump_backtraces(pid);
    let gdb = gdb_backtraces(pid);
    let (mut total, mut matched) = (0usize, 0usize);
    let mut report = String::new();
    for (tid, g) in &gdb {
        let o = ours
            .get(tid)
            .unwrap_or_else(|| panic!("{label}: lockdump did not list thread {tid}"));
        let m = matched_in_order(g, o);
        total += g.len();
        matched += m;
        if m < g.len() {
            report.push_str(&format!("\n  thread {tid}: gdb {g:?}\n             lockdump {o:?}"));
        }
    }
    let agreement = matched as f64 / total.max(1) as f64;
    eprintln!(
        "{label}: lockdump reproduces {matched}/{total} of gdb's frames ({:.1}%)",
        agreement * 100.0
    );
    assert!(total > 0, "{label}: gdb showed no frames");
    assert!(
        agreement >= AGREEMENT,
        "{label}: only {matched}/{total} of gdb's frames matched in order:{report}"
    );
    agreement
}

#[test]
fn agrees_with_gdb_on_c_with_inlining() {
    let fx = Fixture::spawn_blocked(c_fixture("nested_calls", Variant::Debug, &[]));
    compare("nested_calls (C -O2)", fx.pid());
}

#[test]
fn agrees_with_gdb_on_c_tail_calls() {
    let fx = Fixture::spawn_blocked(c_fixture("tail_calls", Variant::Debug, &[]));
    compare("tail_calls (C -O2, tail-call frames)", fx.pid());
}

#[test]
fn agrees_with_gdb_on_rust() {
    let fx = Fixture::spawn_blocked(Command::new(rust_example("rust_abba")));
    compare("rust_abba (Rust)", fx.pid());
}

#[test]
fn agrees_with_gdb_on_cpython_interpreter() {
    let py = python_interpreters()
        .iter()
        .find(|i| i.label == "3.12")
        .expect("pyenv 3.12 in scripts/interpreters.sh");
    let fx = Fixture::spawn_blocked(python_fixture(&py.path, "seed_two_locks_with.py", &[]));
    compare("CPython 3.12 interpreter", fx.pid());
}

#[test]
fn normalization() {
    assert!(same(
        "std::thread::Builder::spawn_unchecked_::{{closure}}",
        "std::thread::Builder::spawn_unchecked_::{closure#1}"
    ));
    assert!(same(
        "core::ops::function::FnOnce::call_once<F, ()>",
        "core::ops::function::FnOnce::call_once"
    ));
    assert!(!same("level_one", "level_two"));
    assert!(same(
        "<std::sys::sync::mutex::futex::Mutex>::lock_contended",
        "std::sys::sync::mutex::futex::Mutex::lock_contended"
    ));
    assert!(same(
        "core::panic::unwind_safe::{impl#23}::call_once<(),",
        "<core::panic::AssertUnwindSafe<F> as FnOnce<()>>::call_once"
    ));
    assert_eq!(
        matched_in_order(
            &["a".into(), "b".into(), "c".into()],
            &["a".into(), "x".into(), "c".into()]
        ),
        2
    );
}
