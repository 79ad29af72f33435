//! Test-only helpers for live analyzer tests: build fixtures, run them until
//! they report READY, capture a minimal [`Snapshot`] (syscalls from /proc,
//! registers and stack bytes through a brief ptrace stop), and look symbols
//! up in the fixtures' ELF files. The real capture and symbolizer live in the
//! lead's modules; these exist so the analyzers can be tested against real
//! glibc and Rust std objects now.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use lockdump::proc::{self as lproc, MapEntry, SyscallLine};
use lockdump::runtimes::SymbolLookup;
use lockdump::target::{
    CopiedRegion, Memory, ProcessMemory, RegisterSource, Registers, Snapshot, SyscallState, ThreadSnapshot,
};
use nix::sys::ptrace;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};

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

/// A minimal capture: per-thread syscall, state and wchan from /proc (read
/// before the stop, so they describe the wait and not the ptrace stop), then
/// a brief PTRACE_SEIZE/INTERRUPT per thread for registers and stack bytes.
pub fn capture(pid: i32) -> Snapshot {
    let maps = lproc::maps(pid).expect("maps");
    let mut threads = Vec::new();
    for tid in lproc::tasks(pid).expect("tasks") {
        let syscall = match lproc::syscall(pid, tid).expect("syscall") {
            SyscallLine::InSyscall { nr, args, .. } => Some(SyscallState {
                nr,
                args,
                restarted: nr == lockdump::target::SYS_RESTART_SYSCALL,
            }),
            _ => None,
        };
        let st = lproc::task_status(pid, tid).expect("status");
        let name = lproc::comm(pid, tid).unwrap_or_default();
        let wchan = lproc::wchan(pid, tid).unwrap_or_default();
        let regs = stop_and_read_regs(tid);
        let stack = copy_stack(pid, &maps, regs.rsp);
        threads.push(ThreadSnapshot {
            tid,
            name,
            state: st.state,
            wchan,
            regs,
            register_source: RegisterSource::Ptrace,
            syscall,
            pending_signal: None,
            stack,
            ns_tid: tid,
        });
    }
    Snapshot {
        pid,
        ns_pid: pid,
        exe: lproc::exe(pid).unwrap_or_default(),
        cmdline: lproc::cmdline(pid).unwrap_or_default(),
        threads,
        maps,
        auxv: lproc::auxv(pid).unwrap_or_default(),
        pause: Duration::ZERO,
        capture_time: Duration::ZERO,
        no_stop: false,
        wait_memory: Vec::new(),
    }
}

fn stop_and_read_regs(tid: i32) -> Registers {
    let p = Pid::from_raw(tid);
    ptrace::seize(p, ptrace::Options::empty())
        .unwrap_or_else(|e| panic!("PTRACE_SEIZE {tid}: {e} (run the tests as root or with ptrace permission)"));
    ptrace::interrupt(p).expect("PTRACE_INTERRUPT");
    waitpid(p, Some(WaitPidFlag::__WALL)).expect("waitpid");
    let regs = ptrace::getregs(p).expect("PTRACE_GETREGS");
    ptrace::detach(p, None).expect("PTRACE_DETACH");
    Registers::from_user_regs(&regs)
}

/// Copy the stack from 128 bytes below SP (red zone) to the end of its mapping, at most 1 MiB.
fn copy_stack(pid: i32, maps: &[MapEntry], sp: u64) -> CopiedRegion {
    let Some(m) = maps.iter().find(|m| m.contains(sp)) else {
        return CopiedRegion::default();
    };
    let start = sp.saturating_sub(128).max(m.start);
    let end = m.end.min(start + (1 << 20));
    let mem = ProcessMemory::new(pid);
    CopiedRegion {
        start,
        bytes: mem.read_vec(start, (end - start) as usize).unwrap_or_default(),
    }
}

/// Symbols of every ELF file mapped in the process (`.symtab` and `.dynsym`),
/// relocated with each module's load bias.
pub struct ElfSymbols {
    /// (name, runtime address, size, module path)
    syms: Vec<(String, u64, u64, String)>,
    sections: Vec<(String, u64, u64)>,
    modules: Vec<(u64, u64, String)>,
}

impl ElfSymbols {
    pub fn load(pid: i32) -> ElfSymbols {
        let maps = lproc::maps(pid).expect("maps");
        let mut out = ElfSymbols {
            syms: Vec::new(),
            sections: Vec::new(),
            modules: Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        for m in maps.iter().filter(|m| m.is_file() && !m.deleted) {
            out.modules.push((m.start, m.end, m.path.clone()));
            if !seen.insert(m.path.clone()) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&m.path) else { continue };
            let Ok(file) = object::File::parse(&*bytes) else {
                continue;
            };
            // Bias: the first mapping of the file (lowest address) maps its first PT_LOAD.
            let first = maps
                .iter()
                .filter(|x| x.path == m.path)
                .min_by_key(|x| x.start)
                .expect("mapping");
            let Some(seg) = file.segments().find(|s| s.file_range().0 & !0xfff == first.offset) else {
                continue;
            };
            let bias = if file.kind() == object::ObjectKind::Executable {
                0
            } else {
                first.start.wrapping_sub(seg.address() & !0xfff)
            };
            for s in file.symbols().chain(file.dynamic_symbols()) {
                let (Ok(name), true) = (s.name(), s.address() != 0) else {
                    continue;
                };
                if name.is_empty() {
                    continue;
                }
                out.syms.push((
                    name.to_string(),
                    s.address().wrapping_add(bias),
                    s.size(),
                    m.path.clone(),
                ));
            }
            for sec in file.sections() {
                if let Ok(name) = sec.name() {
                    out.sections
                        .push((name.to_string(), sec.address().wrapping_add(bias), sec.size()));
                }
            }
        }
        out
    }
}

impl SymbolLookup for ElfSymbols {
    fn symbol_address(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| s.0 == name).map(|s| s.1)
    }
    fn symbol_at(&self, addr: u64) -> Option<(String, u64)> {
        self.syms
            .iter()
            .filter(|s| s.2 > 0 && s.1 <= addr && addr < s.1 + s.2)
            .min_by_key(|s| s.2)
            .map(|s| (s.0.clone(), addr - s.1))
    }
    fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.sections.iter().find(|s| s.0 == name).map(|s| (s.1, s.2))
    }
    fn module_at(&self, addr: u64) -> Option<String> {
        self.modules
            .iter()
            .find(|m| m.0 <= addr && addr < m.1)
            .map(|m| m.2.clone())
    }
}

/// Run glibc + Rust std analysis on a captured process (no unwound stacks:
/// exercises the memory-only path the analyzers must handle).
pub fn analyze(snap: &Snapshot) -> Vec<lockdump::runtimes::ThreadFindings> {
    let syms = ElfSymbols::load(snap.pid);
    let mem = snap.memory();
    let stacks = vec![lockdump::stacks::Stack::default(); snap.threads.len()];
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
