//! The reliability fixtures (fixtures/reliability/) and their health
//! checks: a [`Target`] started from one (READY line with a PID, killed and
//! reaped on drop), the progress counters a counting fixture maps, whether
//! lockdump left a target unharmed (no stop, no tracer, no stray signal,
//! every counter advancing), lockdump runs that must finish in bounded time
//! ([`run_bounded`], [`Running`]), the seeded random generator, and the
//! unprivileged test user.
//!
//! Use with `use common::reliability::*;` (plus what else the test needs
//! from `common`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use super::build::{reliability_fixture as fixture, reliability_shared_lib as shared_lib};
pub use super::fixture::Process;
pub use super::procfs::{tids, tracer_pid};
pub use super::wait::{wait_for, wait_n_threads_sleeping as wait_all_blocked};
pub use super::{lockdump_bin, TIMEOUT};

/// A fresh directory in the scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = super::scratch_dir().join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running reliability fixture. Killed (SIGKILL, with its process group)
/// and reaped when dropped.
pub struct Target {
    pub process: Process,
    pub pid: i32,
    /// The counters file, for fixtures that count progress.
    pub counters: Option<PathBuf>,
}

impl Target {
    /// Start `cmd` and wait for its `READY <pid>` line (the pid it prints is
    /// the one returned in `ready_pid`, e.g. a zombie child's).
    pub fn start(cmd: Command, counters: Option<PathBuf>) -> (Target, i32) {
        let process = Process::spawn(cmd);
        let mut t = Target {
            pid: process.pid(),
            process,
            counters,
        };
        let ready = t.expect_line("READY ");
        let ready_pid = ready
            .trim_start_matches("READY ")
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad READY line {ready:?}"));
        (t, ready_pid)
    }

    /// Wait (up to [`TIMEOUT`]) for a line starting with `prefix`.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        self.process
            .wait_line(&format!("a line starting {prefix:?}"), |l| l.starts_with(prefix))
            .1
    }

    /// A counting fixture: `busy`, `churn` or `forker` with these arguments
    /// after the counters file.
    pub fn counting(exe: &Path, dir: &TempDir, args: &[&str]) -> Target {
        let file = dir.path().join(format!("counters-{}", rand_u64()));
        let mut cmd = Command::new(exe);
        cmd.arg(&file).args(args);
        Target::start(cmd, Some(file)).0
    }

    pub fn progress(&self) -> Progress {
        Progress::read(self.counters.as_ref().expect("not a counting fixture"))
    }

    /// The fixture has not exited (it is our child, so a zombie is visible here).
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.process.try_exit_status() {
            panic!(
                "target {} is dead: {status:?}\nstderr:\n{}",
                self.pid,
                self.process.stderr()
            );
        }
    }
}

/// A snapshot of a counting fixture's progress file (see fixtures/reliability/progress.h).
#[derive(Debug, Clone)]
pub struct Progress {
    pub usr1: u64,
    pub events: u64,
    pub slots: Vec<u64>,
}

impl Progress {
    pub fn read(path: &Path) -> Progress {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let word = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        let n = word(0) as usize;
        assert_eq!(bytes.len(), 64 + n * 8, "counter file size");
        Progress {
            usr1: word(1),
            events: word(2),
            slots: (0..n).map(|i| word(8 + i)).collect(),
        }
    }
}

/// Signals a stray stop or trap would leave pending: SIGTRAP, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU.
pub const STRAY_SIGNALS: u64 = sig_bit(libc::SIGTRAP)
    | sig_bit(libc::SIGSTOP)
    | sig_bit(libc::SIGTSTP)
    | sig_bit(libc::SIGTTIN)
    | sig_bit(libc::SIGTTOU);

pub const fn sig_bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// The /proc facts about one thread that say whether it was harmed.
#[derive(Debug, Clone)]
pub struct TaskHealth {
    pub tid: i32,
    pub state: char,
    pub tracer: i32,
    pub sig_pnd: u64,
    pub shd_pnd: u64,
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

pub fn task_health(pid: i32, tid: i32) -> Option<TaskHealth> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    Some(TaskHealth {
        tid,
        state: status_field(&s, "State")?.chars().next()?,
        tracer: status_field(&s, "TracerPid")?.parse().ok()?,
        sig_pnd: u64::from_str_radix(status_field(&s, "SigPnd")?, 16).ok()?,
        shd_pnd: u64::from_str_radix(status_field(&s, "ShdPnd")?, 16).ok()?,
    })
}

/// Every live thread's health (threads that exit while being read are skipped).
pub fn health(pid: i32) -> Vec<TaskHealth> {
    tids(pid).into_iter().filter_map(|t| task_health(pid, t)).collect()
}

/// Assert lockdump left no trace on a counting target: no thread stopped or
/// traced, no stray stop/trap pending (plus no pending signal outside
/// `allowed_pending`), the process alive, and every counter advancing.
pub fn assert_unharmed(t: &mut Target, context: &str, allowed_pending: u64) {
    t.assert_alive();
    let before = t.progress();
    let forbidden = !allowed_pending;
    for h in health(t.pid) {
        // A worker thread may be caught exiting (Z/X) in fixtures that
        // churn threads; the main thread never exits.
        let dead = matches!(h.state, 'Z' | 'X') && h.tid == t.pid;
        assert!(
            !matches!(h.state, 'T' | 't') && !dead,
            "{context}: thread {} of {} is in state {}",
            h.tid,
            t.pid,
            h.state
        );
        assert_eq!(h.tracer, 0, "{context}: thread {} still traced by {}", h.tid, h.tracer);
        assert_eq!(
            h.sig_pnd & (forbidden | STRAY_SIGNALS),
            0,
            "{context}: thread {} has pending signals {:#x}",
            h.tid,
            h.sig_pnd
        );
        assert_eq!(
            h.shd_pnd & (forbidden | STRAY_SIGNALS),
            0,
            "{context}: process {} has shared pending signals {:#x}",
            t.pid,
            h.shd_pnd
        );
    }
    wait_for(&format!("{context}: every counter of {} advances", t.pid), || {
        let now = t.progress();
        now.slots.iter().zip(&before.slots).all(|(a, b)| a > b)
    });
    t.assert_alive();
}

/// How a lockdump run ended.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }
    /// Never a panic, never a half line: stderr is empty or single lines
    /// starting `lockdump: ` with no "internal error" among them.
    pub fn assert_no_panic(&self, context: &str) {
        assert!(
            !self.stderr.contains("internal error") && !self.stderr.contains("panicked"),
            "{context}: lockdump panicked: {}",
            self.stderr
        );
    }
    /// Exit 2 with exactly one line on stderr containing `needle`, nothing on stdout.
    pub fn assert_error(&self, context: &str, needle: &str) {
        self.assert_no_panic(context);
        assert_eq!(self.code(), Some(2), "{context}: expected exit 2, got {self:?}");
        assert!(self.stdout.is_empty(), "{context}: stdout not empty on error: {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{context}: expected one error line, got {:?}",
            self.stderr
        );
        assert!(
            lines[0].starts_with("lockdump: ") && lines[0].contains(needle),
            "{context}: expected an error containing {needle:?}, got {:?}",
            lines[0]
        );
    }
    /// Exit 0 with a complete report.
    pub fn assert_ok(&self, context: &str) {
        self.assert_no_panic(context);
        assert_eq!(self.code(), Some(0), "{context}: expected exit 0, got {self:?}");
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

/// A lockdump process whose output is being collected (so it never blocks
/// on a full pipe while the test is busy elsewhere).
pub struct Running {
    pub child: Child,
    pub pid: i32,
    started: Instant,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

fn drain_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

impl Running {
    pub fn spawn(args: &[&str]) -> Running {
        let started = Instant::now();
        let mut child = lockdump_cmd(args).spawn().expect("spawn lockdump");
        let out = drain_all(child.stdout.take().expect("piped stdout"));
        let err = drain_all(child.stderr.take().expect("piped stderr"));
        Running {
            pid: child.id() as i32,
            child,
            started,
            out,
            err,
        }
    }

    /// Whether it has exited (the status is kept; the PID stays ours until `finish`).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Wait for the exit; kill it and fail if it runs past `limit` in total.
    pub fn finish(mut self, limit: Duration) -> Run {
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for lockdump") {
                break st;
            }
            if self.started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("lockdump ran longer than {limit:?}: it must finish in bounded time");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        Run {
            status,
            stdout: self.out.join().unwrap_or_default(),
            stderr: self.err.join().unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

pub fn lockdump_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(lockdump_bin());
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Run lockdump to completion, failing if it runs longer than `limit` (the
/// bound these tests assert; [`super::run_lockdump`] only guards against a
/// hang).
pub fn run_bounded(args: &[&str], limit: Duration) -> Run {
    Running::spawn(args).finish(limit)
}

/// A small xorshift generator: no dependency, and its seed is printed so a
/// failing run can be repeated with RELIAB_SEED.
pub struct Rng(u64);

impl Rng {
    pub fn new(context: &str) -> Rng {
        let seed = std::env::var("RELIAB_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand_u64);
        eprintln!("{context}: RELIAB_SEED={seed}");
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// The unprivileged account the security tests run lockdump as (created on
/// first use; `useradd` needs root, which these tests run as).
pub const TEST_USER: &str = "lockdump-rel";

/// UID and GID of [`TEST_USER`], creating the account if needed.
pub fn test_user() -> (u32, u32) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .status()
            .expect("running useradd: install the passwd package (apt-get install passwd)");
        // Another test binary may have created it at the same moment.
        assert!(st.success() || id("-u").is_some(), "useradd {TEST_USER} failed");
    }
    (id("-u").expect("uid of test user"), id("-g").expect("gid of test user"))
}

/// `program args...` run as [`TEST_USER`] with no supplementary groups and
/// no capabilities (setpriv from util-linux).
pub fn as_test_user(program: &Path) -> Command {
    let (uid, gid) = test_user();
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--inh-caps=-all")
        .arg("--")
        .arg(program);
    c
}

/// Make a directory writable by everyone (for fixtures run as [`TEST_USER`]).
pub fn open_up(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod 777");
}

/// /proc/sys/kernel/yama/ptrace_scope, or None when Yama is not built in
/// (then only the classic same-user check applies).
pub fn ptrace_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
