//! A running fixture: spawned in its own process group, READY line parsed,
//! stdout and stderr drained in the background, killed and reaped on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::procfs::{sample_thread, tgid_of, ThreadSample};
use super::wait::{wait_threads, STABLE_FOR};
use super::{POLL, TIMEOUT};

/// The parsed READY line.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The PID that printed READY.
    pub pid: i32,
    /// Thread name -> kernel TID.
    pub threads: BTreeMap<String, i32>,
    /// Lock name -> address.
    pub locks: BTreeMap<String, u64>,
    /// Other processes the fixture started (`"pids"`), by role.
    pub pids: BTreeMap<String, i32>,
    /// Thread name (Python) or marker key -> source line (`"lines"`).
    pub lines: BTreeMap<String, u32>,
    /// The whole JSON object, for fixture-specific fields ("gil", "exited").
    pub raw: serde_json::Value,
}

impl Ready {
    /// Parse the text after `READY `.
    pub fn parse(json: &str) -> Result<Ready, String> {
        let raw: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("READY is not JSON: {e}"))?;
        let obj = raw.as_object().ok_or("READY is not a JSON object")?;
        let ints = |key: &str, required: bool| -> Result<BTreeMap<String, i64>, String> {
            match obj.get(key) {
                None if !required => Ok(BTreeMap::new()),
                None => Err(format!("READY has no \"{key}\"")),
                Some(v) => v
                    .as_object()
                    .ok_or(format!("READY \"{key}\" is not an object"))?
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            v.as_i64().ok_or(format!("READY {key}.{k} is not an integer"))?,
                        ))
                    })
                    .collect(),
            }
        };
        let narrow = |m: BTreeMap<String, i64>| -> Result<BTreeMap<String, i32>, String> {
            m.into_iter()
                .map(|(k, v)| Ok((k, i32::try_from(v).map_err(|_| format!("{v} is not a PID"))?)))
                .collect()
        };
        let locks = obj
            .get("locks")
            .ok_or("READY has no \"locks\"")?
            .as_object()
            .ok_or("READY \"locks\" is not an object")?
            .iter()
            .map(|(k, v)| {
                let s = v.as_str().ok_or(format!("READY locks.{k} is not a string"))?;
                let hex = s
                    .strip_prefix("0x")
                    .ok_or(format!("READY locks.{k} = {s:?} lacks 0x"))?;
                let addr = u64::from_str_radix(hex, 16).map_err(|e| format!("READY locks.{k} = {s:?}: {e}"))?;
                Ok((k.clone(), addr))
            })
            .collect::<Result<_, String>>()?;
        let pid = obj
            .get("pid")
            .and_then(|p| p.as_i64())
            .ok_or("READY has no integer \"pid\"")?;
        Ok(Ready {
            pid: i32::try_from(pid).map_err(|_| "bad pid")?,
            threads: narrow(ints("threads", true)?)?,
            locks,
            pids: narrow(ints("pids", false)?)?,
            lines: ints("lines", false)?
                .into_iter()
                .map(|(k, v)| Ok((k, u32::try_from(v).map_err(|_| "bad line")?)))
                .collect::<Result<_, String>>()?,
            raw,
        })
    }

    /// TID of the thread READY calls `name`.
    pub fn tid(&self, name: &str) -> i32 {
        *self
            .threads
            .get(name)
            .unwrap_or_else(|| panic!("READY has no thread {name:?}; it has {:?}", self.threads.keys()))
    }

    /// Address of the lock READY calls `name`.
    pub fn lock(&self, name: &str) -> u64 {
        *self
            .locks
            .get(name)
            .unwrap_or_else(|| panic!("READY has no lock {name:?}; it has {:?}", self.locks.keys()))
    }

    /// A number READY reports under `group.key` (as `fx_int` writes it),
    /// e.g. `fds.child_write`.
    pub fn int(&self, group: &str, key: &str) -> i64 {
        let v = &self.raw[group][key];
        v.as_i64()
            .unwrap_or_else(|| panic!("READY {group}.{key} is not a number: {v}"))
    }

    /// An address READY reports under `group.key` (a `"0x..."` string, as
    /// `fx_addr` writes it), e.g. `funcs.tail_d`.
    pub fn address(&self, group: &str, key: &str) -> u64 {
        let v = &self.raw[group][key];
        v.as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("READY {group}.{key} is not a \"0x...\" address: {v}"))
    }
}

/// Collects a pipe in the background.
pub(super) type Sink = Arc<Mutex<Vec<u8>>>;

pub(super) fn drain<R: Read + Send + 'static>(mut from: R, into: Sink) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buf[..n]);
        }
    })
}

pub(super) fn text(sink: &Sink) -> String {
    String::from_utf8_lossy(&sink.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Kill the whole process group of `child` (it was made a group leader).
fn kill_group(child: &Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on a process group we created; errors (already
    // gone) are fine.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// A spawned process of any kind (a fixture, `sh -c`, `unshare`, a program
/// run as another user): its own process group, dead with the thread that
/// spawned it (PR_SET_PDEATHSIG), stdout read line by line and stderr
/// collected in the background (so it never blocks on a full pipe), and
/// killed with its whole group and reaped on drop. [`Fixture`] is one whose
/// READY line is JSON; [`super::reliability::Target`] and
/// [`super::inproc::KvFixture`] wait for other READY lines.
pub struct Process {
    /// What to call it in messages (the command line).
    pub label: String,
    child: Child,
    /// stdout, one line at a time (each with its newline, if it had one).
    lines: Mutex<mpsc::Receiver<String>>,
    /// stdout lines taken off `lines` by [`Process::stdout_so_far`].
    taken: Mutex<String>,
    stderr: Sink,
}

impl Process {
    /// Start `cmd` (stdin from /dev/null). Keep the Process on the thread
    /// that created it: the process dies with that thread.
    pub fn spawn(mut cmd: Command) -> Process {
        let label = format!("{cmd:?}");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        let stderr: Sink = Arc::default();
        drain(child.stderr.take().expect("piped stderr"), stderr.clone());
        let (tx, rx) = mpsc::channel::<String>();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                // Keep reading after the receiver is gone: the process must
                // never block on a full pipe.
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
            }
        });
        Process {
            label,
            child,
            lines: Mutex::new(rx),
            taken: Mutex::default(),
            stderr,
        }
    }

    /// Read stdout (up to [`TIMEOUT`] in all) until a line for which `pred`
    /// holds; return the lines before it and the line (without newlines).
    /// Panics, with the exit status and stderr, when no such line comes.
    pub fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> (Vec<String>, String) {
        match self.try_wait_line(pred) {
            Ok(found) => found,
            Err((before, why)) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{}: {why} {what}\nexit status: {status:?}\nstdout so far:\n{}\nstderr:\n{}",
                    self.label,
                    before.join("\n"),
                    self.stderr()
                );
            }
        }
    }

    /// [`Process::wait_line`] without the panic: on failure, the lines read
    /// and why it failed.
    fn try_wait_line(&mut self, pred: impl Fn(&str) -> bool) -> Result<(Vec<String>, String), (Vec<String>, String)> {
        let deadline = Instant::now() + TIMEOUT;
        let rx = self.lines.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut before = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(raw) => {
                    let line = raw.trim_end_matches('\n').to_string();
                    if pred(&line) {
                        return Ok((before, line));
                    }
                    before.push(line);
                }
                Err(RecvTimeoutError::Timeout) => return Err((before, format!("no line within {TIMEOUT:?}:"))),
                Err(RecvTimeoutError::Disconnected) => return Err((before, "stdout closed without".to_string())),
            }
        }
    }

    /// Read stdout until the line equal to `marker`; return the lines before it.
    pub fn wait_for_line(&mut self, marker: &str) -> Vec<String> {
        self.wait_line(&format!("{marker:?}"), |l| l == marker).0
    }

    /// Everything on stdout not yet read by [`Process::wait_line`], as far
    /// as it has been written.
    pub fn stdout_so_far(&self) -> String {
        let rx = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while let Ok(line) = rx.try_recv() {
            taken.push_str(&line);
        }
        taken.clone()
    }

    /// PID of the process spawned.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }

    /// The exit status, if it has exited (it is not reaped before drop, so
    /// until then its PID stays its own, a zombie at worst).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kill the process group and reap the process; its exit status.
    pub fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        kill_group(&self.child);
        self.child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// A running fixture that printed a JSON READY line. Dropping it kills
/// (SIGKILL) its process group and every PID its READY line listed, and
/// reaps it.
pub struct Fixture {
    /// What to call it in messages (the command line).
    pub label: String,
    pub ready: Ready,
    process: Process,
    /// Lines printed to stdout before READY.
    pub before_ready: Vec<String>,
}

impl Fixture {
    /// Start `cmd` and wait (up to 60 s) for its READY line. The threads may
    /// still be on their way into their blocking calls: use
    /// [`Fixture::wait_all_blocked`] / [`Fixture::wait_blocked`] (or
    /// [`Fixture::spawn_blocked`]) before looking at them.
    ///
    /// The fixture gets its own process group (so drop can kill it with its
    /// children) and dies with the thread that spawned it (PR_SET_PDEATHSIG),
    /// so an interrupted test run leaves no deadlocked processes behind:
    /// keep a Fixture on the thread that created it.
    pub fn spawn(cmd: Command) -> Fixture {
        let mut process = Process::spawn(cmd);
        let label = process.label.clone();
        let failure = match process.try_wait_line(|l| l.starts_with("READY ")) {
            Ok((before_ready, line)) => match Ready::parse(&line["READY ".len()..]) {
                Ok(ready) => {
                    return Fixture {
                        label,
                        ready,
                        process,
                        before_ready,
                    }
                }
                Err(e) => (before_ready, format!("bad READY line ({e}): {line}")),
            },
            Err((before, why)) => (before, format!("{why} a READY line")),
        };
        let status = process.kill_and_reap();
        panic!(
            "fixture {label}: {}\nexit status: {status:?}\nstdout before READY:\n{}\nstderr:\n{}",
            failure.1,
            failure.0.join("\n"),
            process.stderr()
        );
    }

    /// [`Fixture::spawn`], then [`Fixture::wait_all_blocked`].
    pub fn spawn_blocked(cmd: Command) -> Fixture {
        let f = Fixture::spawn(cmd);
        f.wait_all_blocked();
        f
    }

    /// PID of the process spawned (READY's PID differs when it is a
    /// wrapper such as `unshare --fork`, or in another PID namespace).
    pub fn child_pid(&self) -> i32 {
        self.process.pid()
    }

    /// PID that printed READY.
    pub fn pid(&self) -> i32 {
        self.ready.pid
    }

    pub fn tid(&self, name: &str) -> i32 {
        self.ready.tid(name)
    }

    pub fn lock(&self, name: &str) -> u64 {
        self.ready.lock(name)
    }

    /// A number READY reports under `group.key` ([`Ready::int`]).
    pub fn int(&self, group: &str, key: &str) -> i64 {
        self.ready.int(group, key)
    }

    /// Everything the fixture wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Everything the fixture wrote to stdout after the READY line so far.
    pub fn stdout_after_ready(&self) -> String {
        self.process.stdout_so_far()
    }

    /// The fixture's exit status, if it has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.process.try_exit_status()
    }

    /// Panic with `msg` plus the fixture's stderr.
    pub fn fail(&self, msg: impl std::fmt::Display) -> ! {
        panic!("fixture {}: {msg}\nstderr:\n{}", self.label, self.stderr())
    }

    /// Sample the thread READY calls `name` (in whichever process it lives).
    pub fn sample(&self, name: &str) -> ThreadSample {
        let tid = self.tid(name);
        self.sample_tid(tid)
    }

    /// Sample a thread by TID (in whichever process it lives).
    pub fn sample_tid(&self, tid: i32) -> ThreadSample {
        let pid = tgid_of(tid).unwrap_or_else(|e| self.fail(format_args!("thread {tid} is gone: {e}")));
        sample_thread(pid, tid).unwrap_or_else(|e| self.fail(format_args!("cannot sample thread {tid}: {e}")))
    }

    /// Wait until every thread named in READY is blocked for good.
    pub fn wait_all_blocked(&self) {
        let tids: Vec<i32> = self.ready.threads.values().copied().collect();
        self.wait_blocked(&tids);
    }

    /// Wait (up to 60 s, polling every 10 ms) until every thread in `tids`
    /// sleeps (state S or D) in a system call and has stayed exactly so (same
    /// syscall and arguments, no context switch) for [`STABLE_FOR`].
    pub fn wait_blocked(&self, tids: &[i32]) {
        let threads: Vec<(i32, i32)> = tids
            .iter()
            .map(|&t| {
                (
                    tgid_of(t).unwrap_or_else(|e| self.fail(format_args!("thread {t} is gone: {e}"))),
                    t,
                )
            })
            .collect();
        let blocked = |s: &ThreadSample| s.is_blocked().then(|| s.clone());
        // A thread that exited will never block: fail at once, not after
        // the timeout.
        let listed = || {
            for &(pid, tid) in &threads {
                if let Err(e) = sample_thread(pid, tid) {
                    self.fail(format_args!("cannot sample thread {tid}: {e}"));
                }
            }
            threads.clone()
        };
        if let Err(e) = wait_threads(listed, blocked, STABLE_FOR) {
            self.fail(format_args!("threads not all blocked: {e}"));
        }
    }

    /// Sample `names` now and again after `gap`: every one must be blocked
    /// both times, in the same syscall with the same arguments, without
    /// having run in between. Returns the second samples.
    pub fn assert_stays_blocked(&self, names: &[&str], gap: Duration) -> BTreeMap<String, ThreadSample> {
        let first: Vec<ThreadSample> = names.iter().map(|n| self.sample(n)).collect();
        std::thread::sleep(gap);
        let mut out = BTreeMap::new();
        for (name, before) in names.iter().zip(first) {
            let after = self.sample(name);
            if !before.is_blocked() || before != after {
                self.fail(format_args!(
                    "thread {name} did not stay blocked over {gap:?}:\n  before {before:?}\n  after  {after:?}"
                ));
            }
            out.insert(name.to_string(), after);
        }
        out
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for &pid in self.ready.pids.values() {
            // SAFETY: kill(2) on PIDs this fixture reported as its own.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        // Then `process` drops: its group is killed and it is reaped.
    }
}

/// Run `cmd` to completion with piped output, killing it after `timeout`.
pub fn output_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let label = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {label}: {e}"));
    let (out, err): (Sink, Sink) = (Arc::default(), Arc::default());
    let t_out = drain(child.stdout.take().expect("piped"), out.clone());
    let t_err = drain(child.stderr.take().expect("piped"), err.clone());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{label} did not finish within {timeout:?}\nstderr:\n{}", text(&err));
        }
        std::thread::sleep(POLL);
    };
    let _ = t_out.join();
    let _ = t_err.join();
    let take = |s: Sink| std::mem::take(&mut *s.lock().unwrap_or_else(|e| e.into_inner()));
    Output {
        status,
        stdout: take(out),
        stderr: take(err),
    }
}
