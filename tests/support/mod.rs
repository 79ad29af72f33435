//! Test-only helpers: a `SymbolLookup` over the ELF files a live process maps,
//! a `Snapshot` built from /proc without ptrace, and a child-process guard.
//!
//! The real capture / symbolizer live in the main program; these exist so the
//! runtime analyzers can be tested against real processes on their own.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lockdump::proc::{self, MapEntry, SyscallLine};
use lockdump::runtimes::SymbolLookup;
use lockdump::target::{CopiedRegion, RegisterSource, Registers, Snapshot, SyscallState, ThreadSnapshot};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

/// Generous timeout for anything a loaded 2-core machine must reach.
pub const TIMEOUT: Duration = Duration::from_secs(60);

struct Module {
    path: String,
    symbols: HashMap<String, u64>,
    /// (address, size, name), sorted by address.
    sorted: Vec<(u64, u64, String)>,
    sections: HashMap<String, (u64, u64)>,
}

/// Symbols and sections of every ELF file mapped by a process, relocated.
pub struct ProcSymbols {
    modules: Vec<Module>,
    maps: Vec<MapEntry>,
}

impl ProcSymbols {
    pub fn new(pid: i32) -> Self {
        let maps = proc::maps(pid).expect("read maps");
        let mut modules = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in maps.iter().filter(|m| m.is_file()) {
            if !seen.insert(m.path.clone()) {
                continue;
            }
            if let Some(module) = load_module(pid, &m.path, &maps) {
                modules.push(module);
            }
        }
        ProcSymbols { modules, maps }
    }
}

fn load_module(pid: i32, path: &str, maps: &[MapEntry]) -> Option<Module> {
    let root = format!("/proc/{pid}/root{path}");
    let data = std::fs::read(&root).or_else(|_| std::fs::read(path)).ok()?;
    let file = object::File::parse(&*data).ok()?;
    // Bias: match a PT_LOAD's page-aligned file offset to a mapping's offset.
    let mut bias = None;
    for seg in file.segments() {
        let (off, _) = seg.file_range();
        let page_off = off & !0xfff;
        if let Some(m) = maps.iter().find(|m| m.path == path && m.offset == page_off) {
            bias = Some(m.start.wrapping_sub(seg.address() & !0xfff));
            break;
        }
    }
    let bias = bias?;
    let mut symbols = HashMap::new();
    let mut sorted = Vec::new();
    for sym in file.dynamic_symbols().chain(file.symbols()) {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let addr = sym.address().wrapping_add(bias);
        symbols.entry(name.to_string()).or_insert(addr);
        sorted.push((addr, sym.size(), name.to_string()));
    }
    sorted.sort();
    let mut sections = HashMap::new();
    for s in file.sections() {
        if let Ok(name) = s.name() {
            if s.address() != 0 {
                sections.insert(name.to_string(), (s.address().wrapping_add(bias), s.size()));
            }
        }
    }
    Some(Module {
        path: path.to_string(),
        symbols,
        sorted,
        sections,
    })
}

impl SymbolLookup for ProcSymbols {
    fn symbol_address(&self, name: &str) -> Option<u64> {
        self.modules.iter().find_map(|m| m.symbols.get(name).copied())
    }
    fn symbol_at(&self, addr: u64) -> Option<(String, u64)> {
        for m in &self.modules {
            let i = m.sorted.partition_point(|(a, _, _)| *a <= addr);
            if i > 0 {
                let (a, size, name) = &m.sorted[i - 1];
                if addr < a + (*size).max(1) {
                    return Some((name.clone(), addr - a));
                }
            }
        }
        None
    }
    fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.modules.iter().find_map(|m| m.sections.get(name).copied())
    }
    fn module_at(&self, addr: u64) -> Option<String> {
        self.maps
            .iter()
            .find(|m| m.contains(addr) && m.is_file())
            .map(|m| m.path.clone())
    }
}

/// A snapshot built from /proc alone (no ptrace): syscall arguments from
/// /proc/PID/task/TID/syscall, registers left at zero.
pub fn snapshot_from_proc(pid: i32) -> Snapshot {
    let status = proc::status(pid).expect("status");
    let mut threads = Vec::new();
    for tid in proc::tasks(pid).expect("tasks") {
        let Ok(st) = proc::task_status(pid, tid) else { continue };
        let syscall = match proc::syscall(pid, tid) {
            Ok(SyscallLine::InSyscall { nr, args, .. }) => Some(SyscallState {
                nr,
                args,
                restarted: nr == lockdump::target::SYS_RESTART_SYSCALL,
            }),
            _ => None,
        };
        threads.push(ThreadSnapshot {
            tid,
            name: proc::comm(pid, tid).unwrap_or_default(),
            state: st.state,
            wchan: proc::wchan(pid, tid).unwrap_or_default(),
            regs: Registers::default(),
            register_source: RegisterSource::ProcSyscall,
            syscall,
            pending_signal: None,
            stack: CopiedRegion::default(),
            ns_tid: st.ns_pids.last().copied().unwrap_or(tid),
        });
    }
    Snapshot {
        pid,
        ns_pid: status.ns_pids.last().copied().unwrap_or(pid),
        exe: proc::exe(pid).unwrap_or_default(),
        cmdline: proc::cmdline(pid).unwrap_or_default(),
        threads,
        maps: proc::maps(pid).expect("maps"),
        auxv: proc::auxv(pid).unwrap_or_default(),
        pause: Duration::ZERO,
        capture_time: Duration::ZERO,
        no_stop: true,
        wait_memory: Vec::new(),
    }
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
