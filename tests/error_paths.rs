//! Targets lockdump cannot or must not inspect get one clear line and exit
//! code 2, quickly, and are left exactly as they were.

mod common;

use std::process::Command;
use std::time::Duration;

use common::reliability::*;

/// Error paths must answer promptly, not after a timeout.
const QUICK: Duration = Duration::from_secs(10);

fn busy(dir: &TempDir, threads: &str) -> Target {
    Target::counting(&fixture("busy"), dir, &[threads, "20"])
}

#[test]
fn stopped_target_gets_a_clear_error_and_stays_stopped() {
    let dir = TempDir::new("ep-stopped");
    let mut t = busy(&dir, "4");
    kill(t.pid, libc::SIGSTOP);
    wait_for("target group-stopped", || health(t.pid).iter().all(|h| h.state == 'T'));
    let r = run_bounded(&["-p", &t.pid.to_string()], QUICK);
    r.assert_error("stopped target", &format!("PID {} is stopped (state T", t.pid));
    // Still stopped (lockdump did not resume what someone else stopped), not traced.
    assert!(health(t.pid).iter().all(|h| h.state == 'T' && h.tracer == 0));
    kill(t.pid, libc::SIGCONT);
    assert_unharmed(&mut t, "after SIGCONT", 0);
}

#[test]
fn target_traced_by_strace_names_strace() {
    let dir = TempDir::new("ep-strace");
    let mut t = busy(&dir, "4");
    let mut strace = Command::new("strace")
        .args(["-o", "/dev/null", "-p", &t.pid.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("running strace: install it (apt-get install strace)");
    let spid = strace.id() as i32;
    wait_for("strace attached", || tracer_pid(t.pid) == spid);
    let r = run_bounded(&["-p", &t.pid.to_string()], QUICK);
    r.assert_error("traced by strace", &format!("already traced by PID {spid} (strace)"));
    kill(spid, libc::SIGINT); // strace detaches on SIGINT (then dies of it)
    strace.wait().expect("wait strace");
    assert_unharmed(&mut t, "after strace detached", 0);
}

#[test]
fn target_seized_by_another_tracer_names_it() {
    let dir = TempDir::new("ep-seize");
    let mut t = busy(&dir, "4");
    let pid = t.pid;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // A thread of this test becomes the tracer (PTRACE_SEIZE without
    // interrupting: the target keeps running). Ptrace ties a tracee to the
    // tracer *thread*, so TracerPid is this thread's TID and its name is the
    // thread's name; when the thread exits the kernel detaches.
    let seizer = std::thread::Builder::new()
        .name("ld-seizer".into())
        .spawn(move || {
            // SAFETY: PTRACE_SEIZE with no options; touches only the target's tracing state.
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
            assert_eq!(r, 0, "PTRACE_SEIZE: {}", std::io::Error::last_os_error());
            // SAFETY: gettid has no arguments.
            ready_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
        })
        .unwrap();
    let tracer = ready_rx.recv().unwrap();
    assert_eq!(tracer_pid(pid), tracer);
    let r = run_bounded(&["-p", &pid.to_string()], QUICK);
    r.assert_error(
        "seized by a test thread",
        &format!("already traced by PID {tracer} (ld-seizer)"),
    );
    done_tx.send(()).unwrap();
    seizer.join().unwrap();
    wait_for("the seizing thread's exit released the target", || tracer_pid(pid) == 0);
    assert_unharmed(&mut t, "after the other tracer left", 0);
}

#[test]
fn zombie_gets_a_clear_error() {
    let (_parent, zombie) = Target::start(Command::new(fixture("zombie")), None);
    assert_eq!(task_health(zombie, zombie).map(|h| h.state), Some('Z'));
    let r = run_bounded(&["-p", &zombie.to_string()], QUICK);
    r.assert_error("zombie", &format!("PID {zombie} is a zombie"));
}

/// PF_KTHREAD in /proc/PID/stat's flags (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

fn is_kthread(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(6)?.parse::<u64>().ok()
        })
        .is_some_and(|f| f & PF_KTHREAD != 0)
}

#[test]
fn kernel_thread_gets_a_clear_error() {
    let kthread = if is_kthread(2) {
        2
    } else {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .find(|&p| is_kthread(p))
            .expect("no kernel thread visible in /proc (PID namespace without kthreads?): run this test on the host or in a container that shares the host PID namespace")
    };
    let r = run_bounded(&["-p", &kthread.to_string()], QUICK);
    r.assert_error("kernel thread", &format!("PID {kthread} is a kernel thread"));
}

#[test]
fn nonexistent_pid_gets_a_clear_error() {
    let pid_max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let missing = (1..pid_max)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let r = run_bounded(&["-p", &missing.to_string()], QUICK);
    r.assert_error("nonexistent", &format!("no process with PID {missing}"));
    for bad in ["0", "-5"] {
        let r = run_bounded(&["-p", bad], QUICK);
        r.assert_no_panic(bad);
        assert_eq!(r.code(), Some(2), "-p {bad}: {r:?}");
    }
}

#[test]
fn target_exiting_mid_dump_is_reported_not_garbled() {
    let dir = TempDir::new("ep-exit");
    let mut rng = Rng::new("exit mid-dump");
    // How long lockdump takes here to start and capture a 200-thread
    // target (its analysis afterwards no longer needs the target).
    let window_us = {
        let t = busy(&dir, "200");
        let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], TIMEOUT);
        r.assert_ok("calibration");
        let analysis = r.json()["processes"][0]["analysis_us"].as_u64().expect("analysis_us");
        (r.elapsed.as_micros() as u64).saturating_sub(analysis).max(1000)
    };
    let (mut ok, mut exited, mut zombie) = (0, 0, 0);
    for run in 0..30 {
        let delay = rng.below(window_us).to_string();
        let t = Target::counting(&fixture("busy"), &dir, &["200", "20", &delay]);
        let r = run_bounded(&["-p", &t.pid.to_string()], TIMEOUT);
        let ctx = format!("run {run} (exit after {delay} µs)");
        r.assert_no_panic(&ctx);
        match r.code() {
            Some(0) => {
                // A complete report, not a torn one: verdict first, then the
                // process section, then the footer.
                assert!(
                    r.stdout.starts_with("No deadlock found.") && r.stdout.contains(&format!("Process {} (", t.pid)),
                    "{ctx}: {}",
                    r.stdout
                );
                assert!(
                    r.stdout
                        .trim_end()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .starts_with(&format!("PID {}: target paused", t.pid)),
                    "{ctx}: report has no footer: {}",
                    r.stdout
                );
                ok += 1;
            }
            _ if r.stderr.contains("is a zombie") => {
                // Exited before lockdump looked (it stays a zombie until this test reaps it).
                r.assert_error(&ctx, "is a zombie");
                zombie += 1;
            }
            _ => {
                r.assert_error(&ctx, &format!("PID {} exited while lockdump was inspecting it", t.pid));
                exited += 1;
            }
        }
    }
    eprintln!("exit mid-dump: {ok} complete reports, {exited} 'exited while inspecting', {zombie} already zombies (window {window_us} µs)");
    assert!(
        exited + zombie > 0,
        "the target never exited during a dump: window too long?"
    );
}

#[test]
fn unprivileged_user_gets_permission_error_for_root_process() {
    let dir = TempDir::new("ep-unpriv-root");
    let mut t = busy(&dir, "4"); // runs as root
    let r = {
        let mut c = as_test_user(&lockdump_bin());
        c.args(["-p", &t.pid.to_string()]);
        run_cmd(c)
    };
    r.assert_error(
        "unprivileged vs root",
        &format!("permission denied attaching to PID {}", t.pid),
    );
    assert_unharmed(&mut t, "after the refused attach", 0);
}

#[test]
fn unprivileged_user_can_inspect_its_own_process_where_ptrace_scope_allows() {
    let dir = TempDir::new("ep-unpriv-own");
    open_up(dir.path());
    let counters = dir.path().join("counters");
    let mut cmd = as_test_user(&fixture("busy"));
    cmd.arg(&counters).args(["4", "20"]);
    let (mut t, _) = Target::start(cmd, Some(counters));
    let mut c = as_test_user(&lockdump_bin());
    c.args(["-p", &t.pid.to_string(), "--json"]);
    let r = run_cmd(c);
    match ptrace_scope() {
        // Same user, no Yama restriction: allowed.
        None | Some(0) => {
            r.assert_ok("own process");
            let doc = r.json();
            let threads = doc["threads"].as_array().unwrap();
            assert_eq!(threads.len(), 5, "main + 4 workers");
            let named = threads
                .iter()
                .filter(|th| {
                    th["frames"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["function"] == "busy_worker")
                })
                .count();
            assert_eq!(named, 4, "every worker's stack shows busy_worker: {}", r.stdout);
        }
        // 1: only descendants (lockdump is not the target's parent); 2: admin only; 3: none.
        Some(scope) => r.assert_error(
            "own process under Yama",
            &format!("/proc/sys/kernel/yama/ptrace_scope is {scope}"),
        ),
    }
    assert_unharmed(&mut t, "after the unprivileged dump", 0);
}

/// Run a prepared lockdump command (e.g. through setpriv) with output captured.
fn run_cmd(mut c: Command) -> Run {
    use std::process::Stdio;
    let started = std::time::Instant::now();
    let out = c
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv: install util-linux");
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A process in a frozen cgroup (`docker pause`, systemd's freeze) cannot
/// be stopped: the stop times out with one line that names every thread
/// with its state, the frozen cgroup and how to thaw it, and `--no-stop`
/// (issue 12.9). The process is left untraced, and runs on once thawed.
/// Uses the cgroup v1 freezer when mounted (this machine kind), else cgroup
/// v2's cgroup.freeze; fails, not skips, when neither can be used.
#[test]
fn frozen_cgroup_stop_times_out_with_the_cause_and_the_way_out() {
    let dir = TempDir::new("ep-frozen");
    let mut t = busy(&dir, "2");
    let frozen = Freezer::new(&format!("lockdump-test-{}", t.pid), t.pid);
    frozen.set(true);
    wait_for("every thread frozen (state D)", || {
        health(t.pid).iter().all(|h| h.state == 'D')
    });
    let r = run_bounded(&["--stop-timeout", "1", "-p", &t.pid.to_string()], QUICK);
    r.assert_error(
        "frozen cgroup",
        &format!(
            "PID {}: timed out after 1 s waiting for threads to stop: thread ",
            t.pid
        ),
    );
    let line = r.stderr.trim_end();
    for tid in tids(t.pid) {
        assert!(
            line.contains(&format!("thread {tid} state D (uninterruptible sleep)")),
            "{line}"
        );
    }
    assert!(line.contains(&frozen.cause()), "{line}\nwant: {}", frozen.cause());
    assert!(
        line.ends_with(&format!(
            "lockdump detached and left the process running: `lockdump --no-stop -p {}` reads it without stopping it",
            t.pid
        )),
        "{line}"
    );
    assert!(health(t.pid).iter().all(|h| h.tracer == 0), "left traced");
    frozen.set(false);
    assert_unharmed(&mut t, "after thawing", 0);
}

/// A freezer cgroup of one process, removed (thawed first) when dropped.
struct Freezer {
    dir: std::path::PathBuf,
    v1: bool,
}

impl Freezer {
    fn new(name: &str, pid: i32) -> Freezer {
        let v1_root = std::path::Path::new("/sys/fs/cgroup/freezer");
        let (dir, v1) = if v1_root.join("freezer.state").exists() || v1_root.join("tasks").exists() {
            (v1_root.join(name), true)
        } else if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (std::path::Path::new("/sys/fs/cgroup").join(name), false)
        } else {
            panic!("no cgroup freezer: neither /sys/fs/cgroup/freezer (v1) nor cgroup v2 at /sys/fs/cgroup is mounted");
        };
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e} (needs root)", dir.display()));
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", dir.display()));
        Freezer { dir, v1 }
    }
    fn set(&self, frozen: bool) {
        let (file, value) = match (self.v1, frozen) {
            (true, true) => ("freezer.state", "FROZEN"),
            (true, false) => ("freezer.state", "THAWED"),
            (false, true) => ("cgroup.freeze", "1"),
            (false, false) => ("cgroup.freeze", "0"),
        };
        std::fs::write(self.dir.join(file), value).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    /// The sentence lockdump must give.
    fn cause(&self) -> String {
        let d = self.dir.display();
        if self.v1 {
            format!("its cgroup {d} is FROZEN (cgroup v1 freezer): thaw it with `echo THAWED > {d}/freezer.state`")
        } else {
            format!("its cgroup {d} is frozen (cgroup v2): thaw it with `echo 0 > {d}/cgroup.freeze`")
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.set(false);
        // The processes go back to the root cgroup before the directory can go.
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        let root = self.dir.parent().unwrap().join("cgroup.procs");
        for p in procs.lines() {
            let _ = std::fs::write(&root, p);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A process that made itself non-dumpable (prctl PR_SET_DUMPABLE 0, as
/// ssh-agent and setuid programs do) cannot be traced even by its owner:
/// the error says so and that root can (issue 12.9), instead of blaming
/// ptrace_scope alone.
#[test]
fn non_dumpable_process_of_the_same_user_names_the_real_cause() {
    let dir = TempDir::new("ep-nondumpable");
    open_up(dir.path());
    let script = dir.path().join("nondumpable.py");
    std::fs::write(
        &script,
        "import ctypes, sys, time\n\
         assert ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4\n\
         print('READY', flush=True)\n\
         time.sleep(600)\n",
    )
    .unwrap();
    open_up(&script);
    let mut cmd = as_test_user(std::path::Path::new("/usr/bin/python3"));
    cmd.arg(&script).stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("python3");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let pid = child.id() as i32;
    let mut c = as_test_user(&lockdump_bin());
    c.args(["-p", &pid.to_string()]);
    let r = run_cmd(c);
    let _ = child.kill();
    let _ = child.wait();
    r.assert_error(
        "non-dumpable",
        "the process is not dumpable — it called prctl(PR_SET_DUMPABLE, 0), or changed its credentials through \
         setuid/setgid or file capabilities — so even its owner cannot trace it; only root (CAP_SYS_PTRACE) can",
    );
}
