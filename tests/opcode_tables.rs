//! The opcode tables lockdump walks CPython bytecode with
//! (src/runtimes/cpython/layout/opcode_tables.rs) against the interpreters
//! themselves, on every interpreter the suite covers:
//!
//! * the committed table equals what scripts/gen-opcodes.py prints under
//!   that interpreter (its `dis` / `opcode` modules);
//! * real bytecode the interpreter has specialized (`_co_code_adaptive`)
//!   yields the same acquire()/release() calls as the compiler's bytecode
//!   (`co_code`), and those are the calls the source makes.

mod common;

use std::process::Command;

use common::{for_each_python, manifest_dir};
use lockdump::test_support::runtimes::cpython::acquires::{lock_calls, render, CallKind};
use lockdump::test_support::runtimes::cpython::layout::opcode_table;
use serde_json::Value;

fn run(py: &common::Interpreter, script: &std::path::Path) -> String {
    let out = Command::new(&py.path)
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("{}: cannot run {}: {e}", py.label, py.path.display()));
    assert!(
        out.status.success(),
        "{} {}: {}\n{}",
        py.label,
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn committed_tables_match_every_interpreter() {
    let committed = std::fs::read_to_string(manifest_dir().join("src/runtimes/cpython/layout/opcode_tables.rs"))
        .expect("opcode_tables.rs");
    for_each_python(|py| {
        let printed = run(py, &manifest_dir().join("scripts/gen-opcodes.py"));
        // The first line names the exact interpreter build; the table follows.
        let table = &printed[printed.find("pub static").expect("a table")..];
        assert!(
            committed.contains(table),
            "{}: src/runtimes/cpython/layout/opcode_tables.rs differs from what this interpreter \
             reports; run scripts/gen-opcode-tables.sh\n{table}",
            py.label
        );
    });
}

fn hex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn specialized_bytecode_gives_the_source_calls() {
    for_each_python(|py| {
        let json: Value =
            serde_json::from_str(&run(py, &manifest_dir().join("tests/opcode_tables/specialized.py"))).expect("JSON");
        let v = json["version"].as_array().expect("version");
        let version = (v[0].as_u64().unwrap() as u8, v[1].as_u64().unwrap() as u8, 0);
        let table = opcode_table(version).unwrap_or_else(|| panic!("{}: no opcode table", py.label));
        let mut specialized = 0;
        for f in json["functions"].as_array().expect("functions") {
            let name = &f["function"];
            let (adaptive, code) = (hex(&f["adaptive"]), hex(&f["code"]));
            assert_eq!(adaptive.len(), code.len(), "{}: {name}", py.label);
            let names = strings(&f["names"]);
            let locals = strings(&f["localsplus"]);
            let units = code.len() as u64 / 2;
            let from_code = lock_calls(table, &code, &names, units)
                .unwrap_or_else(|| panic!("{}: {name}: co_code does not decode", py.label))
                .calls;
            let from_adaptive = lock_calls(table, &adaptive, &names, units)
                .unwrap_or_else(|| panic!("{}: {name}: specialized code does not decode", py.label))
                .calls;
            assert_eq!(from_adaptive, from_code, "{}: {name}", py.label);
            let got: Vec<(String, String)> = from_adaptive
                .iter()
                .map(|c| {
                    let kind = match c.kind {
                        CallKind::Acquire => "acquire",
                        CallKind::Release => "release",
                    };
                    (kind.to_string(), render(&c.expr, &locals))
                })
                .collect();
            let want: Vec<(String, String)> = f["calls"]
                .as_array()
                .expect("calls")
                .iter()
                .map(|c| (c[0].as_str().unwrap().to_string(), c[1].as_str().unwrap().to_string()))
                .collect();
            assert_eq!(got, want, "{}: {name}", py.label);
            if adaptive != code {
                specialized += 1;
            }
        }
        // GIL builds specialize hot code; 3.13t does not (specialization is
        // off in free-threaded 3.13), where both views must simply agree.
        if !py.label.ends_with('t') {
            assert!(specialized > 0, "{}: nothing was specialized", py.label);
        }
    });
}
