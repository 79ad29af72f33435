//! The one harness for the integration tests: build the fixture programs,
//! start them, wait for their READY line and for their threads to block, read
//! /proc, run lockdump on the live process or on a core of it, and clean up
//! (kill and reap) whatever was started.
//!
//! One job per module: `build` (compiling fixtures), `fixture` (a spawned
//! [`Process`], and a [`Fixture`] with a JSON READY line), `wait` (every
//! poll-until-true wait), `procfs` (reading /proc), `dump` (`lockdump
//! --json` live or on a core: [`TargetKind`]), `inproc` (capture and
//! analysis through the library), `reliability` (the reliability fixtures
//! and their health checks), `python` (the interpreters), `source` (line
//! markers), `code` (reading machine code), `load` and `throttle`.
//!
//! Every wait polls a condition with a 60 s deadline, and every failure says
//! what was expected, what was seen and what the fixture wrote to stderr: the
//! tests run on loaded 2-core machines, where sleeping "long enough" is never
//! long enough.
//!
//! Use from a test file with `mod common;` (each test binary uses a different
//! subset, hence the `dead_code` allowance).
#![allow(dead_code, unused_imports)]

pub mod build;
pub mod code;
pub mod dump;
pub mod fixture;
pub mod inproc;
pub mod load;
pub mod procfs;
pub mod python;
pub mod reliability;
pub mod source;
pub mod throttle;
pub mod wait;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

pub use build::{
    build_c, build_cpp, build_shared_lib, c_fixture, cpp_fixture, rust_example, rust_example_with, RustBuild, Variant,
};
pub use code::{branches_ending_at, has_branch, Branch};
pub use dump::{dump, gcore, json_of, lockdump_json, stuck_pids, Dump, TargetKind};
pub use fixture::{Fixture, Process, Ready};
pub use procfs::{
    blocked_signals, mapping_containing, process_state, read_mem, read_progress_u64s, read_u32, sample_thread,
    task_exists, tgid_of, tids, tracer_pid, Futex, ThreadSample, SYS_CLOCK_NANOSLEEP, SYS_FUTEX, SYS_NANOSLEEP,
    SYS_PAUSE,
};
pub use python::{for_each_python, python_fixture, python_interpreters, python_source, Interpreter};
pub use source::{mark_comment_line, marked_line};
pub use wait::{wait_for, wait_until, STABLE_FOR};

/// Deadline for every wait (READY, blocked threads, lockdump runs).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between two looks at /proc.
pub const POLL: Duration = Duration::from_millis(10);

/// The crate root (where Cargo.toml and fixtures/ are).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `fixtures/` in the source tree.
pub fn fixtures_dir() -> PathBuf {
    manifest_dir().join("fixtures")
}

/// Scratch directory for built fixtures and test files, inside the target dir.
pub fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lockdump-tests");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A path in the scratch directory that no other test (or test process) uses.
pub fn unique_path(stem: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    scratch_dir().join(format!("{stem}.{}.{n}", std::process::id()))
}

/// The lockdump binary under test: `$LOCKDUMP_BIN` when set (scripts/test
/// runs the deadlock tests once more with the static build), else
/// `$LOCKDUMP_TEST_BIN` (to show that a test fails against an older build),
/// else the one cargo built for this test run.
pub fn lockdump_bin() -> PathBuf {
    match std::env::var_os("LOCKDUMP_BIN") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "LOCKDUMP_BIN={} is not a file", p.display());
            p
        }
        _ => std::env::var_os("LOCKDUMP_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lockdump"))),
    }
}

/// The statically linked lockdump (`$LOCKDUMP_STATIC_BIN`, built by
/// scripts/build-static.sh, which scripts/test runs). Tests that need it fail,
/// not skip, without it.
pub fn static_lockdump() -> PathBuf {
    let p = std::env::var_os("LOCKDUMP_STATIC_BIN").filter(|p| !p.is_empty()).unwrap_or_else(|| {
        panic!("LOCKDUMP_STATIC_BIN is not set: run `export LOCKDUMP_STATIC_BIN=$(scripts/build-static.sh)` (scripts/test does)")
    });
    let p = PathBuf::from(p);
    assert!(p.is_file(), "LOCKDUMP_STATIC_BIN={} is not a file", p.display());
    p
}

/// Run the lockdump binary under test ([`lockdump_bin`]) with `args`, killing
/// it if it runs longer than [`TIMEOUT`].
pub fn run_lockdump(args: &[&str]) -> Output {
    let mut cmd = Command::new(lockdump_bin());
    cmd.args(args);
    fixture::output_with_timeout(cmd, TIMEOUT)
}

/// `101–140, 142`: what the folded header lists (runs of three or more as ranges).
pub fn tid_ranges(tids: &[i32]) -> String {
    let mut t = tids.to_vec();
    t.sort_unstable();
    let mut parts = Vec::new();
    let mut k = 0;
    while k < t.len() {
        let mut e = k;
        while e + 1 < t.len() && t[e + 1] == t[e] + 1 {
            e += 1;
        }
        if e - k >= 2 {
            parts.push(format!("{}–{}", t[k], t[e]));
        } else {
            parts.extend(t[k..=e].iter().map(|x| x.to_string()));
        }
        k = e + 1;
    }
    parts.join(", ")
}
