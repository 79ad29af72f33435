//! Capturing and analyzing a live process in-process, through the library
//! instead of the binary: lockdump's own capture (stopping or `--no-stop`),
//! its symbol tables, and the native analyzers run on the result. For the
//! tests of one runtime analyzer on its own (tests/glibc_live.rs,
//! tests/rust_std_live.rs, tests/cpython.rs); the whole pipeline is tested
//! through the binary (tests/deadlocks.rs).
//!
//! Also [`KvFixture`]: the analyzer tests' fixtures (tests/data/native/)
//! print `READY key=value ...` instead of fixtures/'s JSON READY line.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use lockdump::test_support::capture::stop::CaptureOptions;
use lockdump::test_support::runtimes::SymbolLookup;
use lockdump::test_support::symbols::{ModuleCache, ProcessSymbols};
use lockdump::Snapshot;

use super::fixture::Process;
use lockdump::test_support::ids::{Addr, Pid, Tid};

/// A tests/data/native fixture started and past its `READY k=v ...` line;
/// killed and reaped on drop (it is a [`Process`]).
pub struct KvFixture {
    pub process: Process,
    pub pid: i32,
    /// `key=value` pairs of the READY line.
    pub ready: HashMap<String, String>,
}

impl KvFixture {
    /// Start `exe args...` and wait (at most [`super::TIMEOUT`]) for its
    /// `READY k=v ...` line.
    pub fn start(exe: &Path, args: &[&str]) -> KvFixture {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        let mut process = Process::spawn(cmd);
        let (_, line) = process.wait_line("a READY line", |l| l.starts_with("READY"));
        let ready = line["READY".len()..]
            .split_whitespace()
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KvFixture {
            pid: process.pid(),
            process,
            ready,
        }
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

/// lockdump's own capture (`lockdump::test_support::capture::stop`, default options):
/// per-thread facts from /proc read before the stop, then registers, stack
/// bytes and futex words copied during one brief ptrace stop.
pub fn capture(pid: i32) -> Snapshot {
    lockdump::test_support::capture::stop::capture(pid, &CaptureOptions::default())
        .unwrap_or_else(|e| panic!("capturing {pid}: {e} (run the tests as root or with ptrace permission)"))
}

/// lockdump's own capture in `--no-stop` mode: nothing is stopped; each
/// thread's syscall and its SP and PC come from /proc/PID/task/TID/syscall.
pub fn snapshot_from_proc(pid: i32) -> Snapshot {
    let opts = CaptureOptions {
        no_stop: true,
        ..CaptureOptions::default()
    };
    lockdump::test_support::capture::stop::capture(pid, &opts)
        .unwrap_or_else(|e| panic!("reading {pid} from /proc: {e}"))
}

/// lockdump's own symbol tables for the captured process (ELF `.symtab` and
/// `.dynsym` of every mapped module, placed at its load bias).
pub fn symbols(snap: &Snapshot) -> ProcessSymbols {
    ProcessSymbols::load(snap, &ModuleCache::new())
}

/// [`symbols`] of a live process (read with [`snapshot_from_proc`]), as the
/// [`SymbolLookup`] the runtime analyzers take.
pub struct ProcSymbols(ProcessSymbols);

impl ProcSymbols {
    pub fn new(pid: i32) -> Self {
        ProcSymbols(symbols(&snapshot_from_proc(pid)))
    }
}

impl SymbolLookup for ProcSymbols {
    fn symbol_address(&self, name: &str) -> Option<u64> {
        self.0.symbol_address(name)
    }
    fn symbol_at(&self, addr: u64) -> Option<(String, u64)> {
        self.0.symbol_at(addr)
    }
    fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.0.section(name)
    }
    fn module_at(&self, addr: u64) -> Option<String> {
        self.0.module_at(addr)
    }
}

/// Run glibc + Rust std analysis on a captured process (no unwound stacks:
/// exercises the memory-only path the analyzers must handle).
pub fn analyze(snap: &Snapshot) -> Vec<lockdump::test_support::runtimes::ThreadFindings> {
    analyze_with_stacks(snap, false)
}

/// [`analyze`], with unwound stacks when `unwind` (Rust std owners are
/// inferred from the frames: their DWARF locals and the code they ran).
pub fn analyze_with_stacks(snap: &Snapshot, unwind: bool) -> Vec<lockdump::test_support::runtimes::ThreadFindings> {
    let syms = symbols(snap);
    let mem = snap.memory();
    let mut unwinder = lockdump::test_support::unwind::Unwinder::default();
    let stacks: Vec<lockdump::test_support::stacks::Stack> = snap
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
    let view = lockdump::test_support::runtimes::ProcessView {
        snapshot: snap,
        stacks: &stacks,
        memory: &mem,
        calls: &lockdump::test_support::runtimes::syscalls::decode_all(snap, &mem),
        symbols: &syms,
    };
    lockdump::test_support::runtimes::native::analyze(&view)
}

/// Index of the thread with this TID in the snapshot.
pub fn index_of(snap: &Snapshot, tid: i32) -> usize {
    snap.threads
        .iter()
        .position(|t| t.tid == Tid(tid))
        .unwrap_or_else(|| panic!("no thread {tid} in snapshot"))
}
