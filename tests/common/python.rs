//! The CPython interpreters the Python fixtures run on, and running a check
//! on all of them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{fixtures_dir, manifest_dir};

/// One interpreter: a label (`3.12`, `3.13t`, `3.11-debian`) and its path.
#[derive(Debug, Clone)]
pub struct Interpreter {
    pub label: String,
    pub path: PathBuf,
}

/// The interpreters listed by `scripts/interpreters.sh` (one `label path`
/// per line). Panics, never skips, when the script is missing or fails: a
/// Python test that ran on no interpreter would prove nothing.
pub fn python_interpreters() -> &'static [Interpreter] {
    static LIST: OnceLock<Vec<Interpreter>> = OnceLock::new();
    LIST.get_or_init(|| listed(&[]))
}

/// The Py_DEBUG builds (`scripts/interpreters.sh --debug-builds`: sid's
/// python3.14d and python3.15d), for the tests that must hold on them too.
pub fn python_debug_builds() -> &'static [Interpreter] {
    static LIST: OnceLock<Vec<Interpreter>> = OnceLock::new();
    LIST.get_or_init(|| listed(&["--debug-builds"]))
}

fn listed(args: &[&str]) -> Vec<Interpreter> {
    let script = manifest_dir().join("scripts").join("interpreters.sh");
    if !script.exists() {
        panic!(
            "{} is missing: it lists the CPython interpreters (3.11, 3.11-debian, 3.12, 3.13, 3.13t, 3.14, 3.15) \
             the Python fixture tests run on. It comes with the CI setup scripts (scripts/); \
             check out a tree that has it, then run it once by hand to see what it needs installed.",
            script.display()
        );
    }
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        panic!(
            "{} {args:?} failed ({}): a required interpreter is missing. Its output:\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list: Vec<Interpreter> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (label, path) = l
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("{}: bad line {l:?} (want `label path`)", script.display()));
            let path = PathBuf::from(path.trim());
            assert!(
                path.is_file(),
                "{}: {label} -> {} does not exist",
                script.display(),
                path.display()
            );
            Interpreter {
                label: label.to_string(),
                path,
            }
        })
        .collect();
    assert!(!list.is_empty(), "{} {args:?} listed no interpreters", script.display());
    list
}

/// fixtures/python/NAME.
pub fn python_source(name: &str) -> PathBuf {
    fixtures_dir().join("python").join(name)
}

/// A command running fixtures/python/NAME with `args` on `python`.
pub fn python_fixture(python: &Path, name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(python_source(name)).args(args);
    cmd
}

/// Run `check` once per interpreter, all interpreters at the same time (each
/// on its own thread, so fixtures are spawned and dropped on that thread).
/// Panics after all have finished if any failed, naming every failure.
pub fn for_each_python<F>(check: F)
where
    F: Fn(&Interpreter) + Sync,
{
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = python_interpreters()
            .iter()
            .map(|py| (py, s.spawn(|| check(py))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(py, h)| {
                h.join().err().map(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "(non-string panic)".into());
                    format!("[python {} at {}] {msg}", py.label, py.path.display())
                })
            })
            .collect()
    });
    if !failures.is_empty() {
        panic!("{} interpreter(s) failed:\n{}", failures.len(), failures.join("\n\n"));
    }
}
