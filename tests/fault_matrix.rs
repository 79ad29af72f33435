//! Fault matrix: whatever happens to lockdump or the target during capture,
//! the target is left as it was: running (or stopped only if someone else
//! asked), not traced, no stray stop or trap pending, every thread counting.
//!
//! Faults are injected *during* capture, not at a random time after spawn:
//! the test polls the target's TracerPid and, once lockdump has seized the
//! first thread, waits a random 0..W µs (W = 1.5 × the pause measured on the
//! same target) before injecting. The seed is printed (RELIAB_SEED repeats it).

mod common;

use std::time::{Duration, Instant};

use common::reliability::*;

/// Threads in the big target: enough that stopping them takes milliseconds.
const MANY: &str = "500";
/// Period of the counting loops, ms (500 threads waking every 50 ms is light).
const PERIOD: &str = "50";

/// Time the target is paused by one lockdump run, in µs (median of 3).
fn measure_pause_us(pid: i32) -> u64 {
    let mut v: Vec<u64> = (0..3)
        .map(|_| {
            let r = run_bounded(&["-p", &pid.to_string(), "--json"], TIMEOUT);
            r.assert_ok("calibration");
            r.json()["pause_us"].as_u64().expect("pause_us")
        })
        .collect();
    v.sort_unstable();
    v[1]
}

/// Start lockdump on `pid`, wait until it has seized the target, wait a
/// random time within `window_us`, then run `inject(Some(lockdump_pid))`.
/// If lockdump finished before the test saw it attached (a busy machine may
/// not schedule the test during the pause), `inject(None)`: it has been
/// reaped and its PID must not be signalled. Returns the run and whether the
/// target was still traced by lockdump at the moment of injection.
fn during_capture(pid: i32, rng: &mut Rng, window_us: u64, inject: impl FnOnce(Option<i32>)) -> (Run, bool) {
    let mut ld_run = Running::spawn(&["-p", &pid.to_string(), "--json"]);
    let ld = ld_run.pid;
    let mut exited = false;
    loop {
        if tracer_pid(pid) == ld {
            break;
        }
        if ld_run.exited() {
            exited = true;
            break;
        }
        if ld_run.elapsed() > TIMEOUT {
            let show = |f: &str| std::fs::read_to_string(format!("/proc/{ld}/{f}")).unwrap_or_default();
            panic!(
                "lockdump {ld} never attached to {pid}: lockdump wchan {:?} syscall {:?} stack {:?}; target {:?}",
                show("wchan"),
                show("syscall"),
                show("stack"),
                health(pid).iter().filter(|h| h.state != 'S').collect::<Vec<_>>()
            );
        }
    }
    let mut in_capture = false;
    if !exited {
        let delay = rng.below(window_us);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_micros(delay) {
            std::hint::spin_loop();
        }
        // lockdump is our unreaped child (try_wait saw it running), so its
        // PID cannot have been reused even if it has just exited.
        in_capture = tracer_pid(pid) == ld;
        inject(Some(ld));
    } else {
        inject(None);
    }
    (ld_run.finish(TIMEOUT), in_capture)
}

fn busy_target(dir: &TempDir, threads: &str) -> Target {
    Target::counting(&fixture("busy"), dir, &[threads, PERIOD])
}

#[test]
fn termination_signals_during_capture_never_harm_the_target() {
    let dir = TempDir::new("fm-sig");
    let mut t = busy_target(&dir, MANY);
    let mut rng = Rng::new("termination_signals");
    let window = measure_pause_us(t.pid) * 3 / 2 + 200;
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    let (mut interrupted, mut killed, mut finished) = (0, 0, 0);
    for run in 0..100 {
        let sig = signals[run % 3];
        let (r, _) = during_capture(t.pid, &mut rng, window, |ld| {
            if let Some(ld) = ld {
                kill(ld, sig)
            }
        });
        let ctx = format!("run {run} (signal {sig})");
        r.assert_no_panic(&ctx);
        if r.code() == Some(2) {
            // Caught while the target was stopped: detached, then reported.
            r.assert_error(&ctx, &format!("interrupted by signal {sig} during capture"));
            interrupted += 1;
        } else if r.signal() == Some(sig) {
            // Arrived before the handlers were installed or after the target
            // was resumed: default action, nothing to detach.
            killed += 1;
        } else {
            r.assert_ok(&ctx);
            finished += 1;
        }
        assert_unharmed(&mut t, &ctx, 0);
    }
    eprintln!("termination signals: {interrupted} interrupted capture, {killed} killed lockdump outside capture, {finished} arrived after exit (window {window} µs)");
    assert!(
        interrupted > 0,
        "no signal landed during capture: the injection window is wrong"
    );
}

#[test]
fn sigkill_during_capture_never_harms_the_target() {
    let dir = TempDir::new("fm-kill");
    let mut t = busy_target(&dir, MANY);
    let mut rng = Rng::new("sigkill");
    let window = measure_pause_us(t.pid) * 3 / 2 + 200;
    let (mut while_traced, mut killed, mut finished) = (0, 0, 0);
    for run in 0..100 {
        let (r, traced) = during_capture(t.pid, &mut rng, window, |ld| {
            if let Some(ld) = ld {
                kill(ld, libc::SIGKILL)
            }
        });
        let ctx = format!("run {run} (SIGKILL)");
        if r.signal() == Some(libc::SIGKILL) {
            killed += 1;
            if traced {
                while_traced += 1;
            }
        } else {
            r.assert_ok(&ctx);
            finished += 1;
        }
        assert_unharmed(&mut t, &ctx, 0);
    }
    eprintln!("SIGKILL: {killed} killed ({while_traced} while the target was traced), {finished} arrived after exit (window {window} µs)");
    assert!(
        while_traced > 0,
        "no SIGKILL landed while lockdump had the target seized"
    );
}

#[test]
fn threads_created_and_exiting_during_capture() {
    let dir = TempDir::new("fm-churn");
    let mut t = Target::counting(&fixture("churn"), &dir, &["20"]);
    let first = t.progress().events;
    for run in 0..50 {
        let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], TIMEOUT);
        let ctx = format!("churn run {run}");
        r.assert_ok(&ctx);
        let threads = r.json()["threads"].as_array().expect("threads").len();
        assert!(threads >= 21, "{ctx}: only {threads} threads captured");
        assert_unharmed(&mut t, &ctx, 0);
    }
    let made = t.progress().events - first;
    eprintln!("churn: {made} short-lived threads created during 50 dumps");
    assert!(made > 50, "the fixture did not churn threads ({made})");
}

/// Under churn no thread that lived through the whole capture is missing
/// from the report: every thread present both just before lockdump started
/// and just after it exited was there throughout (a TID is not reused that
/// fast), so it was listed, or created during the attach and caught by the
/// re-scan, and must have been stopped (or left running) and reported.
#[test]
fn no_thread_that_lived_through_the_capture_is_missed() {
    let dir = TempDir::new("fm-churn-all");
    let mut t = Target::counting(&fixture("churn"), &dir, &["20"]);
    for run in 0..40 {
        let ctx = format!("churn completeness run {run}");
        let before = tids(t.pid);
        let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], TIMEOUT);
        let after = tids(t.pid);
        r.assert_ok(&ctx);
        let doc = r.json();
        let reported: std::collections::BTreeSet<i64> = doc["threads"]
            .as_array()
            .expect("threads")
            .iter()
            .filter_map(|th| th["tid"].as_i64())
            .collect();
        let missed: Vec<i32> = before
            .iter()
            .filter(|tid| after.binary_search(tid).is_ok() && !reported.contains(&i64::from(**tid)))
            .copied()
            .collect();
        assert!(
            missed.is_empty(),
            "{ctx}: threads alive before and after not reported: {missed:?}"
        );
        assert_unharmed(&mut t, &ctx, 0);
    }
}

#[test]
fn fork_and_exec_during_capture() {
    let dir = TempDir::new("fm-fork");
    let mut t = Target::counting(&fixture("forker"), &dir, &["10"]);
    let first = t.progress().events;
    for run in 0..30 {
        let r = run_bounded(&["-p", &t.pid.to_string()], TIMEOUT);
        let ctx = format!("fork run {run}");
        r.assert_ok(&ctx);
        assert_unharmed(&mut t, &ctx, 0);
    }
    let forks = t.progress().events - first;
    eprintln!("forker: {forks} fork+exec rounds during 30 dumps");
    assert!(forks > 30, "the fixture did not fork ({forks})");
}

#[test]
fn sigusr1_sent_during_capture_is_delivered_exactly_once() {
    let dir = TempDir::new("fm-usr1");
    let mut t = busy_target(&dir, "200");
    let mut rng = Rng::new("sigusr1");
    let window = measure_pause_us(t.pid) * 3 / 2 + 200;
    let mut sent = 0;
    let mut during = 0;
    for run in 0..30 {
        let pid = t.pid;
        let (r, traced) = during_capture(pid, &mut rng, window, |_| kill(pid, libc::SIGUSR1));
        let ctx = format!("SIGUSR1 run {run}");
        r.assert_ok(&ctx);
        sent += 1;
        if traced {
            during += 1;
        }
        // One signal at a time: standard signals do not queue, so a second
        // SIGUSR1 sent before the first is handled could merge with it.
        wait_for(&format!("{ctx}: handler counted {sent}"), || t.progress().usr1 >= sent);
        assert_eq!(t.progress().usr1, sent, "{ctx}: delivered more signals than sent");
        assert_unharmed(&mut t, &ctx, 0);
    }
    eprintln!("SIGUSR1: {sent} sent, {during} while the target was seized, all delivered once");
    assert!(during > 0, "no SIGUSR1 landed while lockdump had the target seized");
}

/// Every thread of `pid` in group stop (state T, not traced).
fn all_group_stopped(pid: i32) -> bool {
    let h = health(pid);
    !h.is_empty() && h.iter().all(|h| h.state == 'T' && h.tracer == 0)
}

#[test]
fn sigstop_during_capture_stops_the_target_as_asked() {
    let dir = TempDir::new("fm-stop");
    let mut t = busy_target(&dir, "200");
    let mut rng = Rng::new("sigstop");
    let window = measure_pause_us(t.pid) * 3 / 2 + 200;
    let mut during = 0;
    for run in 0..20 {
        let pid = t.pid;
        let (r, traced) = during_capture(pid, &mut rng, window, |_| kill(pid, libc::SIGSTOP));
        let ctx = format!("SIGSTOP run {run}");
        r.assert_ok(&ctx);
        if traced {
            during += 1;
        }
        // Stopped because the test asked for it, and by nobody else: no tracer.
        wait_for(&format!("{ctx}: target group-stopped"), || all_group_stopped(pid));
        let frozen = t.progress();
        std::thread::sleep(Duration::from_millis(120)); // > 2 counting periods
        assert_eq!(
            t.progress().slots,
            frozen.slots,
            "{ctx}: a stopped thread kept counting"
        );
        kill(pid, libc::SIGCONT);
        assert_unharmed(&mut t, &ctx, 0);
    }
    eprintln!("SIGSTOP: 20 sent, {during} while the target was seized");
    assert!(during > 0, "no SIGSTOP landed while lockdump had the target seized");
}

#[test]
fn sigstop_then_sigcont_during_capture_leaves_the_target_running() {
    let dir = TempDir::new("fm-stopcont");
    let mut t = busy_target(&dir, "200");
    let mut rng = Rng::new("sigstop+sigcont");
    let window = measure_pause_us(t.pid) * 3 / 2 + 200;
    for run in 0..20 {
        let pid = t.pid;
        let (r, _) = during_capture(pid, &mut rng, window, |_| {
            kill(pid, libc::SIGSTOP);
            kill(pid, libc::SIGCONT);
        });
        let ctx = format!("SIGSTOP+SIGCONT run {run}");
        r.assert_ok(&ctx);
        // The last word was SIGCONT: the target must run, as it would have
        // without lockdump.
        assert_unharmed(&mut t, &ctx, 0);
    }
}

#[test]
fn two_lockdumps_at_once_one_wins_and_the_other_names_it() {
    let dir = TempDir::new("fm-pair");
    let mut t = busy_target(&dir, "200");
    let pid = t.pid.to_string();
    let (mut both_ok, mut one_refused) = (0, 0);
    for run in 0..30 {
        let a = Running::spawn(&["-p", &pid, "--json"]);
        let b = Running::spawn(&["-p", &pid, "--json"]);
        let (a_pid, b_pid) = (a.pid, b.pid);
        let ra = a.finish(TIMEOUT);
        let rb = b.finish(TIMEOUT);
        let ctx = format!("pair {run}");
        for (r, other) in [(&ra, b_pid), (&rb, a_pid)] {
            r.assert_no_panic(&ctx);
            if r.code() != Some(0) {
                r.assert_error(&ctx, &format!("already traced by PID {other} (lockdump)"));
            }
        }
        match (ra.code(), rb.code()) {
            (Some(0), Some(0)) => both_ok += 1,
            (Some(0), _) | (_, Some(0)) => one_refused += 1,
            _ => panic!("{ctx}: neither lockdump succeeded: {ra:?} {rb:?}"),
        }
        assert_unharmed(&mut t, &ctx, 0);
    }
    eprintln!("pairs: {one_refused} with one refused as already traced, {both_ok} one after the other");
}

// ---------------------------------------------------------------------------
// `lockdump demo` killed while its deadlocked child lives
// ---------------------------------------------------------------------------

/// A pipe whose buffer is already full: a blocking write to `.1` sleeps until
/// someone reads `.0`, which nobody does.
fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Page-sized writes fill whole pipe buffers, single bytes any remainder;
    // bounded by far more than any pipe's capacity (1 MiB by default at most).
    let page = [b'x'; 4096];
    for chunk in [&page[..], &page[..1]] {
        for _ in 0..(16 << 20) / chunk.len() {
            // SAFETY: writes from a live buffer of the given length.
            let n = unsafe { libc::write(wr.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "filling the pipe: {e}");
                break;
            }
        }
    }
    // Blocking again for the writer (O_NONBLOCK belongs to the shared open file).
    // SAFETY: fcntl on a descriptor we own.
    let r = unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETFL, 0) };
    assert_eq!(r, 0, "fcntl: {}", std::io::Error::last_os_error());
    (rd, wr)
}

/// A process's state letter and start time (clock ticks after boot), from
/// /proc/PID/stat; `None` once it is gone.
fn state_and_start(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses).
    let rest: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // starttime is field 22 of stat; field 3 (state) is rest[0].
    let start = rest.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Kills and reaps a process on every path, and kills the demo child it
/// started (`grandchild`: PID, start time) if that outlived the test.
struct Reaped {
    process: std::process::Child,
    grandchild: Option<(i32, u64)>,
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if let Some((pid, start)) = self.grandchild {
            // Only the very process seen (same start time), never a reused PID.
            if state_and_start(pid).is_some_and(|(_, s)| s == start) {
                // SAFETY: plain kill(2).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// If lockdump is killed with SIGKILL during `lockdump demo`, nothing runs
/// its cleanup; the deadlocked demo child must still not outlive it.
#[test]
fn demo_child_dies_with_a_sigkilled_lockdump() {
    let dir = TempDir::new("fm-demo");
    // lockdump's report goes to a full pipe: it diagnoses the child, then
    // blocks writing the report while the child is still alive.
    let (_unread, stdout) = full_pipe();
    let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
    let lockdump = std::process::Command::new(lockdump_bin())
        .arg("demo")
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn lockdump demo");
    let ld = lockdump.id() as i32;
    let mut run = Reaped {
        process: lockdump,
        grandchild: None,
    };
    let stderr_text = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    wait_for("lockdump demo blocks writing its report to stdout", || {
        assert!(
            run.process.try_wait().expect("try_wait").is_none(),
            "lockdump demo exited early: {}",
            stderr_text()
        );
        std::fs::read_to_string(format!("/proc/{ld}/syscall")).is_ok_and(|s| s.starts_with("1 0x1 "))
    });
    let mut children: Vec<i32> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{ld}/task"))
        .expect("lockdump's tasks")
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_else(|e| {
            panic!(
                "reading {}/children: {e}: the kernel needs CONFIG_PROC_CHILDREN",
                task.path().display()
            )
        });
        children.extend(list.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    assert_eq!(
        children.len(),
        1,
        "lockdump {ld} should have one child (the demo's): {children:?}"
    );
    let child = children[0];
    let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("__demo-child"),
        "child {child} of lockdump is not the demo child: {:?}",
        String::from_utf8_lossy(&cmdline)
    );
    let (state, start) = state_and_start(child).expect("demo child's stat");
    assert_ne!(state, 'Z', "demo child {child} already exited");
    run.grandchild = Some((child, start));

    kill(ld, libc::SIGKILL);
    let status = run.process.wait().expect("reap lockdump");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{status:?}"
    );
    // Gone, or a zombie waiting for its new parent to reap it (a container's
    // PID 1 may never do so): either way it no longer runs.
    wait_for(&format!("demo child {child} dies after lockdump was SIGKILLed"), || {
        state_and_start(child).map_or(true, |(st, s)| st == 'Z' || s != start)
    });
}

/// The race the parent-death signal leaves open: lockdump dies before the
/// child arms it. The child then has another parent than the PID lockdump
/// gave it and must exit at once instead of deadlocking. Simulated by naming
/// a parent (PID 1) that is not the one that started it (this test).
#[test]
fn demo_child_whose_lockdump_is_already_gone_exits() {
    let child = std::process::Command::new(lockdump_bin())
        .arg("__demo-child")
        .env("LOCKDUMP_DEMO_PARENT", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the demo child");
    let mut run = Reaped {
        process: child,
        grandchild: None,
    };
    let mut status = None;
    wait_for("the orphaned demo child exits", || {
        status = run.process.try_wait().expect("try_wait");
        status.is_some()
    });
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut run.process.stdout.take().expect("stdout"), &mut out);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{status:?}");
    assert!(out.is_empty(), "the orphaned demo child started anyway: {out}");
}
