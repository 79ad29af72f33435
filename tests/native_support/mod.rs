//! Test-only helpers for live analyzer tests: build fixtures, run them until
//! they report READY, capture them with lockdump's own capture and symbol
//! tables, and run the native analyzers on the result *without* unwound
//! stacks, the memory-and-futex-only path the analyzers must also handle
//! (the full pipeline, stacks included, is tested through the binary in
//! tests/deadlocks.rs).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use lockdump::capture::stop::CaptureOptions;
use lockdump::capture::Snapshot;
use lockdump::proc::{self as lproc, SyscallLine};
use lockdump::symbols::{ModuleCache, ProcessSymbols};

/// Generous: the machine is a loaded 2-core box.
pub const TIMEOUT: Duration = Duration::from_secs(60);

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("native-fixtures");
    std::fs::create_dir_all(&d).expect("create fixture output dir");
    d
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/native")
        .join(name)
}

/// Build each fixture once per test process: tests run in parallel threads and
/// must not link the same output file concurrently.
fn build_once(name: &str, build: impl FnOnce() -> PathBuf) -> PathBuf {
    static BUILT: std::sync::Mutex<Option<HashMap<String, PathBuf>>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let map = built.get_or_insert_with(HashMap::new);
    if let Some(p) = map.get(name) {
        return p.clone();
    }
    let p = build();
    map.insert(name.to_string(), p.clone());
    p
}

/// Compile `tests/data/native/<name>.c` with `cc -O2 -pthread`.
pub fn compile_c(name: &str) -> PathBuf {
    build_once(name, || compile_c_now(name))
}

fn compile_c_now(name: &str) -> PathBuf {
    let out = out_dir().join(name);
    let status = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(data(&format!("{name}.c")))
        .status()
        .unwrap_or_else(|e| panic!("cannot run `cc` ({e}): install a C compiler (apt-get install gcc)"));
    assert!(status.success(), "cc failed for {name}.c");
    out
}

/// Compile `tests/data/native/<name>.rs` with `rustc -O` (the toolchain running the tests).
pub fn compile_rust(name: &str) -> PathBuf {
    build_once(name, || compile_rust_now(name))
}

fn compile_rust_now(name: &str) -> PathBuf {
    let out = out_dir().join(name);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["-O", "--edition", "2021", "-o"])
        .arg(&out)
        .arg(data(&format!("{name}.rs")))
        .status()
        .unwrap_or_else(|e| panic!("cannot run rustc ({e})"));
    assert!(status.success(), "rustc failed for {name}.rs");
    out
}

/// A running fixture; killed and reaped on drop.
pub struct Fixture {
    pub child: Child,
    pub pid: i32,
    /// `key=value` pairs of the READY line.
    pub ready: HashMap<String, String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fixture {
    /// Start `exe args...` and wait (at most [`TIMEOUT`]) for its `READY k=v ...` line.
    pub fn start(exe: &Path, args: &[&str]) -> Fixture {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut fx = Fixture {
            child,
            pid,
            ready: HashMap::new(),
        };
        fx.ready = read_ready(stdout, &exe.display().to_string());
        fx
    }

    pub fn get(&self, key: &str) -> &str {
        self.ready
            .get(key)
            .unwrap_or_else(|| panic!("READY line has no {key}: {:?}", self.ready))
    }
    pub fn tid(&self, key: &str) -> i32 {
        self.get(key).parse().unwrap_or_else(|_| panic!("{key} is not a TID"))
    }
    pub fn addr(&self, key: &str) -> u64 {
        let v = self.get(key);
        u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("{key}={v} is not an address"))
    }
}

/// Read lines on a helper thread so a fixture that never prints cannot hang the test.
fn read_ready(stdout: ChildStdout, what: &str) -> HashMap<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("READY") {
                let kv = rest
                    .split_whitespace()
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>();
                let _ = tx.send(kv);
                // Keep draining so the fixture never blocks on a full pipe.
            }
        }
    });
    rx.recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("{what} did not print READY within {TIMEOUT:?}"))
}

/// Wait until every thread in `tids` of `pid` sleeps in syscall `nr`.
pub fn wait_in_syscall(pid: i32, tids: &[i32], nr: i64) {
    let start = Instant::now();
    loop {
        let pending: Vec<i32> = tids
            .iter()
            .copied()
            .filter(|&t| !matches!(lproc::syscall(pid, t), Ok(SyscallLine::InSyscall { nr: n, .. }) if n == nr))
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "threads {pending:?} of {pid} not in syscall {nr} after {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the process has exactly `n` threads.
pub fn wait_for_thread_count(pid: i32, n: usize) {
    let start = Instant::now();
    while lproc::tasks(pid).map(|t| t.len()).unwrap_or(0) != n {
        assert!(start.elapsed() < TIMEOUT, "process {pid} never had {n} threads");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// lockdump's own capture (`lockdump::capture::stop`, default options):
/// per-thread facts from /proc read before the stop, then registers, stack
/// bytes and futex words copied during one brief ptrace stop.
pub fn capture(pid: i32) -> Snapshot {
    lockdump::capture::stop::capture(pid, &CaptureOptions::default())
        .unwrap_or_else(|e| panic!("capturing {pid}: {e} (run the tests as root or with ptrace permission)"))
}

/// lockdump's own symbol tables for the captured process (ELF `.symtab` and
/// `.dynsym` of every mapped module, placed at its load bias).
pub fn symbols(snap: &Snapshot) -> ProcessSymbols {
    ProcessSymbols::load(snap, &ModuleCache::new())
}

/// Run glibc + Rust std analysis on a captured process (no unwound stacks:
/// exercises the memory-only path the analyzers must handle).
pub fn analyze(snap: &Snapshot) -> Vec<lockdump::runtimes::ThreadFindings> {
    analyze_with_stacks(snap, false)
}

/// [`analyze`], with unwound stacks when `unwind` (Rust std owners are
/// inferred from the frames: their DWARF locals and the code they ran).
pub fn analyze_with_stacks(snap: &Snapshot, unwind: bool) -> Vec<lockdump::runtimes::ThreadFindings> {
    let syms = symbols(snap);
    let mem = snap.memory();
    let mut unwinder = lockdump::unwind::Unwinder::default();
    let stacks: Vec<lockdump::stacks::Stack> = snap
        .threads
        .iter()
        .map(|t| {
            if unwind {
                unwinder.unwind(t, &syms, &mem)
            } else {
                Default::default()
            }
        })
        .collect();
    let view = lockdump::runtimes::ProcessView {
        snapshot: snap,
        stacks: &stacks,
        memory: &mem,
        symbols: &syms,
    };
    lockdump::runtimes::native::analyze(&view)
}

/// Index of the thread with this TID in the snapshot.
pub fn index_of(snap: &Snapshot, tid: i32) -> usize {
    snap.threads
        .iter()
        .position(|t| t.tid == tid)
        .unwrap_or_else(|| panic!("no thread {tid} in snapshot"))
}
