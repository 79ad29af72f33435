//! Test-only helpers for testing the runtime analyzers against real
//! processes on their own: lockdump's symbol tables and `--no-stop` capture
//! (a `Snapshot` from /proc without ptrace) for a PID, and a child-process
//! guard.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lockdump::capture::stop::{capture, CaptureOptions};
use lockdump::capture::Snapshot;
use lockdump::proc;
use lockdump::runtimes::SymbolLookup;
use lockdump::symbols::{ModuleCache, ProcessSymbols};

/// Generous timeout for anything a loaded 2-core machine must reach.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// lockdump's own symbol tables for a live process (every mapped ELF
/// module's `.symtab`, `.dynsym` and sections, placed at its load bias).
pub struct ProcSymbols(ProcessSymbols);

impl ProcSymbols {
    pub fn new(pid: i32) -> Self {
        ProcSymbols(ProcessSymbols::load(&snapshot_from_proc(pid), &ModuleCache::new()))
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

/// lockdump's own capture in `--no-stop` mode: nothing is stopped; each
/// thread's syscall and its SP and PC come from /proc/PID/task/TID/syscall.
pub fn snapshot_from_proc(pid: i32) -> Snapshot {
    let opts = CaptureOptions {
        no_stop: true,
        ..CaptureOptions::default()
    };
    capture(pid, &opts).unwrap_or_else(|e| panic!("reading {pid} from /proc: {e}"))
}

/// A spawned target, killed and reaped on drop.
pub struct Target {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    pub output: Vec<String>,
}

impl Target {
    pub fn spawn(program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Target {
            child,
            lines: rx,
            output: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Read stdout until a line equal to `marker`; returns the lines before it.
    pub fn wait_for_line(&mut self, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push(line.clone());
                    if line == marker {
                        return before;
                    }
                    before.push(line);
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "target {} did not print {marker:?} within {TIMEOUT:?} (exit status {status:?}); output so far: {:?}",
                        self.pid(),
                        self.output
                    );
                }
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until every thread of `pid` sleeps in a futex wait and stays on the
/// same futex for several consecutive polls: the process is frozen.
pub fn wait_all_blocked(pid: i32) {
    wait_blocked(pid, |_| true)
}

/// Like [`wait_all_blocked`], for the threads `pick` selects.
pub fn wait_blocked(pid: i32, pick: impl Fn(i32) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    let mut stable = 0;
    let mut last: Vec<(i32, String)> = Vec::new();
    loop {
        let mut now = Vec::new();
        let mut all = true;
        for tid in proc::tasks(pid).unwrap_or_default() {
            if !pick(tid) {
                continue;
            }
            let line = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).unwrap_or_default();
            if !line.starts_with("202 ") {
                all = false;
            }
            // Syscall number and the futex arguments (not sp/pc).
            let key: Vec<&str> = line.split_whitespace().take(4).collect();
            now.push((tid, key.join(" ")));
        }
        if all && !now.is_empty() && now == last {
            stable += 1;
            if stable >= 4 {
                return;
            }
        } else {
            stable = 0;
        }
        last = now;
        if Instant::now() > deadline {
            panic!("threads of {pid} did not all settle in futex waits within {TIMEOUT:?}: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Line number (1-based) of the line containing `# MARK:<name>` in a file.
pub fn marker_line(path: &Path, name: &str) -> u32 {
    let text = std::fs::read_to_string(path).expect("read fixture");
    let needle = format!("# MARK:{name}");
    let found = text.lines().position(|l| l.trim_end().ends_with(&needle));
    found.unwrap_or_else(|| panic!("no marker {needle} in {}", path.display())) as u32 + 1
}
