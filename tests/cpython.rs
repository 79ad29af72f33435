//! CPython analysis against real interpreters.
//!
//! Each test runs a fixture script under one interpreter, waits until its
//! threads are frozen in their final waits, builds a snapshot from /proc and
//! checks `cpython::inspect` against what the script itself printed (object
//! ids, native thread ids) and the `# MARK:` lines of its source.
//!
//! Interpreters (override with the environment variable in brackets):
//! pyenv 3.11.7 / 3.12.1 / 3.13.0 [LOCKDUMP_PYTHON311 / 312 / 313], Debian's
//! stripped /usr/bin/python3.11 [LOCKDUMP_PYTHON311_DEBIAN], and a
//! free-threaded 3.13t [LOCKDUMP_PYTHON313T].

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::inproc::{snapshot_from_proc, ProcSymbols};
use common::wait::wait_futex_waits;
use common::{mark_comment_line as marker_line, Process};
use lockdump::test_support::capture::ProcessMemory;
use lockdump::test_support::ids::Tid;
use lockdump::test_support::runtimes::cpython::{self, PythonProcess, PythonThread};
use lockdump::test_support::runtimes::{Confidence, ProcessView, ResourceKind};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/python").join(name)
}

fn pyenv_root() -> PathBuf {
    if let Ok(r) = std::env::var("PYENV_ROOT") {
        return PathBuf::from(r);
    }
    if let Ok(out) = std::process::Command::new("pyenv").arg("root").output() {
        if out.status.success() {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".pyenv")
}

/// Path of an interpreter, or a loud failure saying how to get it.
fn interpreter(which: &str) -> String {
    let (var, default, how) = match which {
        "3.11" => (
            "LOCKDUMP_PYTHON311",
            pyenv_root().join("versions/3.11.7/bin/python3.11"),
            "pyenv install 3.11.7 (with shared libpython: PYTHON_CONFIGURE_OPTS=--enable-shared)",
        ),
        "3.12" => (
            "LOCKDUMP_PYTHON312",
            pyenv_root().join("versions/3.12.1/bin/python3.12"),
            "pyenv install 3.12.1 (PYTHON_CONFIGURE_OPTS=--enable-shared)",
        ),
        "3.13" => (
            "LOCKDUMP_PYTHON313",
            pyenv_root().join("versions/3.13.0/bin/python3.13"),
            "pyenv install 3.13.0 (PYTHON_CONFIGURE_OPTS=--enable-shared)",
        ),
        "3.11-debian" => (
            "LOCKDUMP_PYTHON311_DEBIAN",
            PathBuf::from("/usr/bin/python3.11"),
            "apt-get install python3.11 (Debian 12's stripped, statically linked build)",
        ),
        "3.13t" => (
            "LOCKDUMP_PYTHON313T",
            PathBuf::from("/var/cache/lockdump/python3.13t/bin/python3.13t"),
            "build CPython 3.13 with ./configure --disable-gil --prefix=/var/cache/lockdump/python3.13t",
        ),
        "3.14" => (
            "LOCKDUMP_PYTHON314",
            PathBuf::from("/opt/sid-python/bin/python3.14"),
            "run scripts/setup-sid-python.sh (Debian sid's python3.14 in a chroot)",
        ),
        "3.15" => (
            "LOCKDUMP_PYTHON315",
            PathBuf::from("/opt/sid-python/bin/python3.15"),
            "run scripts/setup-sid-python.sh (Debian sid's python3.15 in a chroot)",
        ),
        _ => unreachable!("unknown interpreter {which}"),
    };
    let path = std::env::var(var).map(PathBuf::from).unwrap_or(default);
    assert!(
        path.exists(),
        "Python {which} not found at {}: {how}, or point {var} at one",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// Start a fixture, wait for its facts and READY, then for its threads to settle.
fn start_fixture(python: &str, script: &Path, args: &[&str]) -> (Process, Value) {
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script).args(args);
    let mut t = Process::spawn(cmd);
    let lines = t.wait_for_line("READY");
    let facts: Value = serde_json::from_str(lines.last().expect("facts line")).expect("facts JSON");
    (t, facts)
}

fn inspect(pid: i32) -> PythonProcess {
    inspect_snapshot(pid, &snapshot_from_proc(pid))
}

fn inspect_snapshot(pid: i32, snap: &lockdump::Snapshot) -> PythonProcess {
    let syms = ProcSymbols::new(pid);
    let mem = ProcessMemory::new(pid);
    let view = ProcessView {
        snapshot: snap,
        stacks: &[],
        memory: &mem,
        calls: &lockdump::test_support::runtimes::syscalls::decode_all(snap, &mem),
        symbols: &syms,
    };
    cpython::inspect(&view)
        .expect("inspect succeeds")
        .expect("recognized as CPython")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn by_name<'a>(p: &'a PythonProcess, name: &str) -> &'a PythonThread {
    p.threads
        .iter()
        .find(|t| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| {
            let names: Vec<_> = p.threads.iter().map(|t| (t.tid, t.name.clone())).collect();
            panic!("no thread named {name}; threads: {names:?}")
        })
}

fn version_of(facts: &Value) -> (u8, u8, u8) {
    let v: Vec<u8> = facts["version"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| u(x) as u8)
        .collect();
    (v[0], v[1], v[2])
}

/// The innermost frame whose function is `function`: (index, line).
fn frame_line(t: &PythonThread, function: &str) -> (usize, Option<u32>) {
    let i = t
        .frames
        .iter()
        .position(|f| f.function.as_deref() == Some(function))
        .unwrap_or_else(|| panic!("thread {:?} has no frame {function}: {:?}", t.name, t.frames));
    (i, t.frames[i].line)
}

fn check_locks_fixture(python: &str) {
    let script = fixture("cpython_locks.py");
    let (target, facts) = start_fixture(python, &script, &[]);
    wait_futex_waits(target.pid(), |_| true);
    let p = inspect(target.pid());
    let mark = |m: &str| Some(marker_line(&script, m));
    let tid_of = |name: &str| -> i32 {
        if name == "MainThread" {
            u(&facts["main"]) as i32
        } else {
            u(&facts["threads"][name]) as i32
        }
    };
    let addr = |k: &str| u(&facts[k]);

    assert_eq!(p.version, version_of(&facts));
    assert_eq!(p.free_threaded, facts["free_threaded"].as_bool().unwrap());
    let mut names: Vec<&str> = p.threads.iter().filter_map(|t| t.name.as_deref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "MainThread",
            "explicit-holder",
            "explicit-waiter",
            "queue-waiter",
            "rlock-holder",
            "rlock-waiter",
            "self-deadlock",
            "sem-waiter",
            "worker-a",
            "worker-b"
        ]
    );
    for t in &p.threads {
        let name = t.name.as_deref().unwrap();
        assert_eq!(t.tid.get(), tid_of(name), "TID of {name}");
        assert!(!t.holds_gil, "{name} does not hold the GIL");
        assert_eq!(t.frames.len(), t.eval_call.len());
        assert!(t.frame_error.is_none(), "{name}: {:?}", t.frame_error);
        assert!(
            t.findings.wait.is_some(),
            "{name} is blocked and must have a wait: {:?}",
            t.frames
        );
    }
    let file_ok = |t: &PythonThread, i: usize| {
        assert_eq!(
            t.frames[i].file.as_deref(),
            Some(script.to_str().unwrap()),
            "file of frame {i} of {:?}",
            t.name
        )
    };

    // The two-lock deadlock through `with` blocks: both edges exact.
    for (me, other, waits, holds, wait_mark, func) in [
        ("worker-a", "worker-b", "lock_b", "lock_a", "a-waits", "worker_a"),
        ("worker-b", "worker-a", "lock_a", "lock_b", "b-waits", "worker_b"),
    ] {
        let t = by_name(&p, me);
        assert_eq!(frame_line(t, func), (0, mark(wait_mark)));
        file_ok(t, 0);
        assert_eq!(t.frames[1].function.as_deref(), Some("Thread.run"));
        let w = t.findings.wait.as_ref().unwrap();
        assert_eq!(w.resource.kind, ResourceKind::PyLock);
        assert_eq!(w.resource.address.get(), addr(waits), "{me} waits for id({waits})");
        assert_eq!(w.resource.name.as_deref(), Some(waits));
        assert_eq!(w.resource.pid.get(), target.pid());
        assert_eq!(
            w.owner.tid().map(Tid::get),
            Some(tid_of(other)),
            "{me}'s lock is held by {other}"
        );
        assert_eq!(w.owner.confidence(), Confidence::Exact);
        assert_eq!(w.site_frame, Some(0));
        assert_eq!(t.findings.holds.len(), 1, "{me} holds: {:?}", t.findings.holds);
        let h = &t.findings.holds[0];
        assert_eq!(
            (h.resource.kind, h.resource.address.get(), h.resource.name.as_deref()),
            (ResourceKind::PyLock, addr(holds), Some(holds))
        );
        assert_eq!(h.confidence, Confidence::Exact);
        assert_eq!(h.site_frame, Some(0));
    }

    // RLock: owner read from the lock itself.
    let holder = by_name(&p, "rlock-holder");
    let waiter = by_name(&p, "rlock-waiter");
    assert_eq!(frame_line(waiter, "Account.deposit"), (0, mark("rlock-waits")));
    let w = waiter.findings.wait.as_ref().unwrap();
    assert_eq!(
        (w.resource.kind, w.resource.address.get(), w.resource.name.as_deref()),
        (ResourceKind::PyRLock, addr("rlock"), Some("self._lock"))
    );
    assert_eq!(w.owner.tid(), Some(holder.tid));
    assert_eq!(w.owner.confidence(), Confidence::Exact);
    assert!(w.owner.evidence().contains("RLock owner"), "{}", w.owner.evidence());
    let (hi, hline) = frame_line(holder, "Account.hold_forever");
    assert_eq!(hline, mark("rlock-holder-waits"));
    let h: Vec<_> = holder
        .findings
        .holds
        .iter()
        .map(|h| (h.resource.kind, h.resource.address.get()))
        .collect();
    assert_eq!(h, [(ResourceKind::PyRLock, addr("rlock"))]);
    assert_eq!(holder.findings.holds[0].site_frame, Some(hi));
    let w = holder.findings.wait.as_ref().unwrap();
    assert_eq!(
        (w.resource.kind, w.resource.address.get(), w.resource.name.as_deref()),
        (ResourceKind::PyEvent, addr("never"), Some("never"))
    );
    assert_eq!((w.owner.tid(), w.owner.confidence()), (None, Confidence::Unknown));
    assert_eq!(w.site_frame, Some(hi));

    // Explicit acquire(): the wait is exact; the owner is inferred from the
    // holder's bytecode (lock_c.acquire() ran, no release() since), and its
    // hold says so and points at the frame that took it.
    let holder = by_name(&p, "explicit-holder");
    let t = by_name(&p, "explicit-waiter");
    assert_eq!(frame_line(t, "explicit_waiter"), (0, mark("c-waits")));
    let w = t.findings.wait.as_ref().unwrap();
    assert_eq!(
        (w.resource.kind, w.resource.address.get(), w.resource.name.as_deref()),
        (ResourceKind::PyLock, addr("lock_c"), Some("lock_c"))
    );
    assert_eq!(
        (w.owner.tid(), w.owner.confidence()),
        (Some(holder.tid), Confidence::Inferred)
    );
    assert!(
        w.owner.evidence().contains(&format!(
            "lock_c.acquire() at line {} ",
            marker_line(&script, "c-acquired")
        )),
        "{}",
        w.owner.evidence()
    );
    let t = holder;
    assert_eq!(frame_line(t, "explicit_holder"), (1, mark("cond-waits")));
    let w = t.findings.wait.as_ref().unwrap();
    assert_eq!(
        (w.resource.kind, w.resource.address.get(), w.resource.name.as_deref()),
        (ResourceKind::PyCondition, addr("cond"), Some("cond"))
    );
    assert!(w.owner.tid().is_none());
    // Inside cond.wait() the condition's lock is released: not a hold; the
    // explicitly acquired lock_c is, inferred.
    let h: Vec<_> = t
        .findings
        .holds
        .iter()
        .map(|h| (h.resource.kind, h.resource.address.get(), h.confidence, h.site_frame))
        .collect();
    assert_eq!(
        h,
        [(ResourceKind::PyLock, addr("lock_c"), Confidence::Inferred, Some(1))]
    );

    // Library waits, classified by function.
    for (name, func, m, kind, key) in [
        (
            "sem-waiter",
            "sem_waiter",
            "sem-waits",
            ResourceKind::PySemaphore,
            "sem",
        ),
        (
            "queue-waiter",
            "queue_waiter",
            "queue-waits",
            ResourceKind::PyQueue,
            "jobs",
        ),
    ] {
        let t = by_name(&p, name);
        let (i, line) = frame_line(t, func);
        assert_eq!(line, mark(m));
        let w = t.findings.wait.as_ref().unwrap();
        assert_eq!(
            (w.resource.kind, w.resource.address.get(), w.resource.name.as_deref()),
            (kind, addr(key), Some(key))
        );
        assert_eq!((w.owner.tid(), w.owner.confidence()), (None, Confidence::Unknown));
        assert_eq!(w.site_frame, Some(i));
        assert!(t.findings.holds.is_empty());
    }

    // Self-deadlock: the owner is the waiter itself, through the outer frame's `with`.
    let t = by_name(&p, "self-deadlock");
    assert_eq!(
        frame_line(t, "self_deadlock.<locals>.recursive_traverse"),
        (0, mark("self-with"))
    );
    assert_eq!(t.frames[1].line, mark("self-recurses"));
    let w = t.findings.wait.as_ref().unwrap();
    assert_eq!(
        (w.resource.kind, w.resource.address.get(), w.resource.name.as_deref()),
        (ResourceKind::PyLock, addr("self_lock"), Some("lock"))
    );
    assert_eq!((w.owner.tid(), w.owner.confidence()), (Some(t.tid), Confidence::Exact));
    let h: Vec<_> = t
        .findings
        .holds
        .iter()
        .map(|h| (h.resource.address.get(), h.site_frame))
        .collect();
    assert_eq!(h, [(addr("self_lock"), Some(1))], "held by the outer call only");

    // Main thread joins worker-a: an edge to that thread.
    let main = by_name(&p, "MainThread");
    let (mi, mline) = frame_line(main, "main");
    assert_eq!(mline, mark("main-joins"));
    let w = main.findings.wait.as_ref().unwrap();
    assert_eq!(w.resource.kind, ResourceKind::Thread);
    assert_eq!(w.resource.name.as_deref(), Some("worker-a"));
    assert_eq!(
        (w.owner.tid().map(Tid::get), w.owner.confidence()),
        (Some(tid_of("worker-a")), Confidence::Exact)
    );
    assert_eq!(w.site_frame, Some(mi));

    // The GIL: nobody holds it while everyone sleeps.
    if p.free_threaded {
        assert!(p.gil.is_none(), "free-threaded build runs without a GIL");
    } else {
        let g = p.gil.as_ref().expect("GIL state");
        assert!(!g.locked && g.holder_tid.is_none() && g.waiters.is_empty(), "{g:?}");
    }
    drop(target);
}

#[test]
fn locks_python311() {
    check_locks_fixture(&interpreter("3.11"));
}

#[test]
fn locks_python312() {
    check_locks_fixture(&interpreter("3.12"));
}

#[test]
fn locks_python313() {
    check_locks_fixture(&interpreter("3.13"));
}

/// Debian sid's unmodified build, run in a chroot: its files are reached
/// through /proc/PID/root.
#[test]
fn locks_python314() {
    check_locks_fixture(&interpreter("3.14"));
}

#[test]
fn locks_python315() {
    check_locks_fixture(&interpreter("3.15"));
}

/// Debian's python3.11: statically linked, stripped, no DWARF. Only
/// `_PyRuntime` / `Py_Version` in .dynsym and the `.PyRuntime` section remain.
#[test]
fn locks_python311_debian_stripped() {
    let python = interpreter("3.11-debian");
    let data = std::fs::read(&python).unwrap();
    let file = object::File::parse(&*data).unwrap();
    use object::Object;
    assert!(
        file.section_by_name(".debug_info").is_none() && file.section_by_name(".symtab").is_none(),
        "{python} is expected to be stripped"
    );
    check_locks_fixture(&python);
}

#[test]
fn locks_python313t_free_threaded() {
    check_locks_fixture(&interpreter("3.13t"));
}

fn check_gil_fixture(python: &str) {
    let script = fixture("cpython_gil.py");
    let (target, facts) = start_fixture(python, &script, &[]);
    let hog = u(&facts["threads"]["gil-hog"]) as i32;
    let waiters: Vec<i32> = ["spinner-1", "spinner-2"]
        .iter()
        .map(|n| u(&facts["threads"][n]) as i32)
        .chain([u(&facts["main"]) as i32])
        .collect();
    // The hog sits in pause() holding the GIL; everyone else sleeps in take_gil.
    common::wait::wait_in_syscall(target.pid(), &[hog], common::SYS_PAUSE);
    wait_futex_waits(target.pid(), |tid| tid != hog);
    // GIL waits are timed (the switch interval): a waiter can be caught
    // between two waits, outside any syscall. Without a native stack lockdump
    // only sees the futex, so take a snapshot in which every waiter sleeps.
    let deadline = Instant::now() + common::TIMEOUT;
    let snap = loop {
        let snap = snapshot_from_proc(target.pid());
        let asleep = |tid: i32| {
            snap.thread(Tid(tid))
                .and_then(|t| t.syscall)
                .is_some_and(|s| s.nr == 202)
        };
        if waiters.iter().all(|&t| asleep(t)) {
            break snap;
        }
        assert!(Instant::now() < deadline, "GIL waiters never all asleep at once");
        std::thread::sleep(Duration::from_millis(2));
    };
    let p = inspect_snapshot(target.pid(), &snap);
    let g = p.gil.as_ref().expect("GIL state");
    assert!(g.locked);
    assert_eq!(g.holder_tid.map(Tid::get), Some(hog));
    let mut got: Vec<i32> = g.waiters.iter().map(|t| t.get()).collect();
    got.sort();
    let mut want = waiters.clone();
    want.sort();
    let state: Vec<String> = want
        .iter()
        .map(|tid| {
            let line =
                std::fs::read_to_string(format!("/proc/{}/task/{tid}/syscall", target.pid())).unwrap_or_default();
            format!(
                "{tid}: {} {:?}",
                line.trim(),
                p.threads.iter().find(|t| t.tid.get() == *tid).map(|t| &t.frames)
            )
        })
        .collect();
    assert_eq!(got, want, "threads in take_gil; state: {state:#?}");
    let h = by_name(&p, "gil-hog");
    assert!(h.holds_gil);
    assert!(h
        .findings
        .holds
        .iter()
        .any(|x| x.resource.kind == ResourceKind::Gil && x.confidence == Confidence::Exact));
    assert_eq!(frame_line(h, "hog"), (0, Some(marker_line(&script, "gil-hog"))));
    for tid in waiters {
        let t = p.threads.iter().find(|t| t.tid.get() == tid).unwrap();
        assert!(!t.holds_gil);
        let w = t
            .findings
            .wait
            .as_ref()
            .unwrap_or_else(|| panic!("{:?} waits for the GIL", t.name));
        assert_eq!(w.resource.kind, ResourceKind::Gil);
        assert_eq!(
            (w.owner.tid().map(Tid::get), w.owner.confidence()),
            (Some(hog), Confidence::Exact)
        );
    }
    let spinner = by_name(&p, "spinner-1");
    assert_eq!(frame_line(spinner, "spin").1, Some(marker_line(&script, "spin")));

    // The same main thread caught between two timed waits (no syscall), with
    // a native stack in take_gil: still a GIL waiter.
    let main = u(&facts["main"]) as i32;
    let mut between = snap.clone();
    let i = between.threads.iter().position(|t| t.tid.get() == main).unwrap();
    between.threads[i].syscall = None;
    let mut stacks = vec![lockdump::test_support::stacks::Stack::default(); between.threads.len()];
    let mut take_gil = lockdump::test_support::stacks::Frame::native(0x1000, 0x2000);
    take_gil.function = Some("take_gil".into());
    stacks[i].frames.push(take_gil);
    let syms = ProcSymbols::new(target.pid());
    let mem = ProcessMemory::new(target.pid());
    let view = ProcessView {
        snapshot: &between,
        stacks: &stacks,
        memory: &mem,
        calls: &lockdump::test_support::runtimes::syscalls::decode_all(&between, &mem),
        symbols: &syms,
    };
    let p = cpython::inspect(&view).unwrap().unwrap();
    let t = p.threads.iter().find(|t| t.tid.get() == main).unwrap();
    let w = t.findings.wait.as_ref().expect("main still waits for the GIL");
    assert_eq!(
        (w.resource.kind, w.owner.tid().map(Tid::get)),
        (ResourceKind::Gil, Some(hog))
    );
    assert!(p.gil.unwrap().waiters.contains(&Tid(main)));
}

#[test]
fn gil_python311() {
    check_gil_fixture(&interpreter("3.11"));
}

#[test]
fn gil_python312() {
    check_gil_fixture(&interpreter("3.12"));
}

#[test]
fn gil_python313() {
    check_gil_fixture(&interpreter("3.13"));
}

/// Debian sid's unmodified build, run in a chroot: its files are reached
/// through /proc/PID/root.
#[test]
fn gil_python314() {
    check_gil_fixture(&interpreter("3.14"));
}

#[test]
fn gil_python315() {
    check_gil_fixture(&interpreter("3.15"));
}

#[test]
fn gil_python311_debian_stripped() {
    check_gil_fixture(&interpreter("3.11-debian"));
}

/// 100 blocked threads: every one found and named; prints the cost of inspect.
fn check_many_threads(python: &str) {
    let script = fixture("cpython_many.py");
    let (target, facts) = start_fixture(python, &script, &["100"]);
    wait_futex_waits(target.pid(), |_| true);
    let snap = snapshot_from_proc(target.pid());
    let syms = ProcSymbols::new(target.pid());
    let mem = ProcessMemory::new(target.pid());
    let view = ProcessView {
        snapshot: &snap,
        stacks: &[],
        memory: &mem,
        calls: &lockdump::test_support::runtimes::syscalls::decode_all(&snap, &mem),
        symbols: &syms,
    };
    let start = Instant::now();
    let p = cpython::inspect(&view).unwrap().unwrap();
    let took = start.elapsed();
    eprintln!("inspect of {} Python threads ({python}) took {took:?}", p.threads.len());
    let want: HashMap<String, i32> = facts["threads"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), u(v) as i32))
        .collect();
    assert_eq!(want.len(), 100);
    assert_eq!(p.threads.len(), 101);
    for (name, tid) in &want {
        let t = by_name(&p, name);
        assert_eq!(t.tid.get(), *tid);
        let w = t.findings.wait.as_ref().expect("blocked");
        let expect = if name.starts_with("locker") {
            ResourceKind::PyLock
        } else {
            ResourceKind::PyEvent
        };
        assert_eq!(w.resource.kind, expect, "{name}");
    }
    assert!(took < Duration::from_secs(10), "inspect took {took:?}");
}

#[test]
fn many_threads_python312() {
    check_many_threads(&interpreter("3.12"));
}

#[test]
fn many_threads_python313() {
    check_many_threads(&interpreter("3.13"));
}

/// Debian sid's unmodified build, run in a chroot: its files are reached
/// through /proc/PID/root.
#[test]
fn many_threads_python314() {
    check_many_threads(&interpreter("3.14"));
}

#[test]
fn many_threads_python315() {
    check_many_threads(&interpreter("3.15"));
}

/// A C program is not a CPython process: `Ok(None)`, quickly.
#[test]
fn not_python() {
    let mut sh = std::process::Command::new("/bin/sh");
    sh.args(["-c", "echo READY; exec sleep 600"]);
    let mut t = Process::spawn(sh);
    t.wait_for_line("READY");
    // `exec sleep` replaces the shell; wait until the image is sleep's.
    common::wait_for("the shell's image to become sleep's", || {
        std::fs::read_link(format!("/proc/{}/exe", t.pid()))
            .map(|p| p.to_string_lossy().contains("sleep"))
            .unwrap_or(false)
    });
    let snap = snapshot_from_proc(t.pid());
    let syms = ProcSymbols::new(t.pid());
    let mem = ProcessMemory::new(t.pid());
    let view = ProcessView {
        snapshot: &snap,
        stacks: &[],
        memory: &mem,
        calls: &lockdump::test_support::runtimes::syscalls::decode_all(&snap, &mem),
        symbols: &syms,
    };
    let start = Instant::now();
    assert!(cpython::inspect(&view).unwrap().is_none());
    assert!(start.elapsed() < Duration::from_secs(1));
}

// The layouts themselves are checked against each interpreter's DWARF,
// entry by entry, in tests/cpython_layouts.rs.

/// Mutation fuzzing over a real interpreter's memory: copy a frozen 3.12
/// target's memory, then corrupt words on the pages a clean inspection
/// reads and inspect again. Whatever the damage: no panic, bounded time.
#[test]
fn corrupted_interpreter_memory_never_panics() {
    use lockdump::test_support::capture::{CopiedRegion, Memory};
    use lockdump::test_support::memory::BufferMemory;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    struct Touch<'a> {
        inner: &'a BufferMemory,
        pages: RefCell<BTreeSet<u64>>,
    }
    impl Memory for Touch<'_> {
        fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), lockdump::test_support::capture::MemoryError> {
            self.pages.borrow_mut().insert(addr & !0xfff);
            self.inner.read_exact(addr, buf)
        }
    }

    let python = interpreter("3.12");
    let (target, _facts) = start_fixture(&python, &fixture("cpython_locks.py"), &[]);
    wait_futex_waits(target.pid(), |_| true);
    let snap = snapshot_from_proc(target.pid());
    let syms = ProcSymbols::new(target.pid());
    let live = ProcessMemory::new(target.pid());
    let mut image = BufferMemory::default();
    for m in snap
        .maps
        .iter()
        .filter(|m| m.readable && m.path != "[vvar]" && m.path != "[vsyscall]")
    {
        let len = (m.end - m.start) as usize;
        if len > 256 << 20 {
            continue;
        }
        if let Ok(bytes) = live.read_vec(m.start, len) {
            image.regions.push(CopiedRegion { start: m.start, bytes });
        }
    }
    drop(target);

    let view_of = |mem: &dyn Memory| -> Result<Option<PythonProcess>, cpython::CpythonError> {
        let view = ProcessView {
            snapshot: &snap,
            stacks: &[],
            memory: mem,
            calls: &lockdump::test_support::runtimes::syscalls::decode_all(&snap, mem),
            symbols: &syms,
        };
        cpython::inspect(&view)
    };
    // The copy inspects like the live process did.
    let touch = Touch {
        inner: &image,
        pages: RefCell::new(BTreeSet::new()),
    };
    let clean = view_of(&touch).unwrap().unwrap();
    assert_eq!(clean.threads.len(), 10);
    assert!(clean.threads.iter().all(|t| t.findings.wait.is_some()));
    let pages: Vec<u64> = touch.pages.into_inner().into_iter().collect();

    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for _ in 0..300 {
        let mut saved = Vec::new();
        for _ in 0..1 + next() % 64 {
            let page = pages[(next() % pages.len() as u64) as usize];
            let addr = page + ((next() % 0x1000) & !7);
            let Some((ri, off)) =
                image.regions.iter().enumerate().find_map(|(i, r)| {
                    (r.start <= addr && addr + 8 <= r.end()).then(|| (i, (addr - r.start) as usize))
                })
            else {
                continue;
            };
            let bytes = &mut image.regions[ri].bytes[off..off + 8];
            saved.push((ri, off, bytes.to_vec()));
            let value = match next() % 4 {
                0 => 0,
                1 => next(),
                2 => page + (next() % 0x1000),
                _ => u64::from_le_bytes(bytes.try_into().unwrap()) ^ (1 << (next() % 64)),
            };
            bytes.copy_from_slice(&value.to_le_bytes());
        }
        let start = Instant::now();
        let r = view_of(&image);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "inspect took {:?}",
            start.elapsed()
        );
        *outcomes
            .entry(match r {
                Ok(Some(p)) if p.threads.len() == clean.threads.len() => "ok, all threads",
                Ok(Some(_)) => "ok, threads lost",
                Ok(None) => "none",
                Err(_) => "error",
            })
            .or_default() += 1;
        for (ri, off, old) in saved.into_iter().rev() {
            image.regions[ri].bytes[off..off + 8].copy_from_slice(&old);
        }
    }
    eprintln!("corruption outcomes: {outcomes:?} over {} touched pages", pages.len());
}

/// The seed's own deadlock program: locks passed as arguments in opposite
/// orders, main thread already in interpreter shutdown.
fn check_seed_logging(python: &str) {
    let script = fixture("cpython_seed_logging.py");
    let (target, facts) = start_fixture(python, &script, &[]);
    wait_futex_waits(target.pid(), |_| true);
    let p = inspect(target.pid());
    let (t1, t2) = (u(&facts["t1"]) as i32, u(&facts["t2"]) as i32);
    let thread = |tid: i32| p.threads.iter().find(|t| t.tid.get() == tid).unwrap();
    // t1 runs thread(lock_a, lock_b): holds main's lock_a, waits for main's lock_b.
    for (me, other, holds, waits) in [(t1, t2, "lock_a", "lock_b"), (t2, t1, "lock_b", "lock_a")] {
        let t = thread(me);
        assert_eq!(frame_line(t, "thread"), (0, Some(marker_line(&script, "waits"))));
        let w = t.findings.wait.as_ref().unwrap();
        assert_eq!(
            (w.resource.kind, w.resource.address.get()),
            (ResourceKind::PyLock, u(&facts[waits]))
        );
        // Named as the waiting code calls it: its parameter `lock_b`.
        assert_eq!(w.resource.name.as_deref(), Some("lock_b"));
        assert_eq!(
            (w.owner.tid().map(Tid::get), w.owner.confidence()),
            (Some(other), Confidence::Exact)
        );
        let h: Vec<_> = t
            .findings
            .holds
            .iter()
            .map(|h| (h.resource.address.get(), h.resource.name.clone()))
            .collect();
        assert_eq!(h, [(u(&facts[holds]), Some("lock_a".to_string()))]);
    }
    let main = thread(u(&facts["main"]) as i32);
    assert_eq!(main.frames[0].function.as_deref(), Some("_shutdown"));
    let w = main.findings.wait.as_ref().expect("main waits in _shutdown");
    assert_eq!(w.resource.kind, ResourceKind::Thread);
    assert!(
        w.owner.tid().map(Tid::get) == Some(t1) || w.owner.tid().map(Tid::get) == Some(t2),
        "shutdown waits for one of the deadlocked threads: {w:?}"
    );
    assert_eq!(w.owner.confidence(), Confidence::Exact);
}

#[test]
fn seed_logging_python311() {
    check_seed_logging(&interpreter("3.11"));
}

#[test]
fn seed_logging_python312() {
    check_seed_logging(&interpreter("3.12"));
}

#[test]
fn seed_logging_python313() {
    check_seed_logging(&interpreter("3.13"));
}

/// Debian sid's unmodified build, run in a chroot: its files are reached
/// through /proc/PID/root.
#[test]
fn seed_logging_python314() {
    check_seed_logging(&interpreter("3.14"));
}

#[test]
fn seed_logging_python315() {
    check_seed_logging(&interpreter("3.15"));
}

#[test]
fn seed_logging_python313t() {
    check_seed_logging(&interpreter("3.13t"));
}

/// A target in its own PID namespace (a container): CPython records the
/// namespace's TIDs; lockdump must report host TIDs.
#[test]
fn pid_namespace_python312() {
    let python = interpreter("3.12");
    let script = fixture("cpython_locks.py");
    let mut unshare = std::process::Command::new("unshare");
    unshare.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        &python,
        script.to_str().unwrap(),
    ]);
    let mut t = Process::spawn(unshare);
    let lines = t.wait_for_line("READY");
    let facts: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let children = std::fs::read_to_string(format!("/proc/{}/task/{}/children", t.pid(), t.pid())).unwrap();
    let pid: i32 = children
        .split_whitespace()
        .next()
        .expect("python child")
        .parse()
        .unwrap();
    wait_futex_waits(pid, |_| true);
    let snap = snapshot_from_proc(pid);
    assert_eq!(snap.ns_pid, 1, "python is PID 1 of its namespace");
    let host = |ns: u64| snap.host_tid(ns as i32).expect("thread in snapshot");
    let p = inspect_snapshot(pid, &snap);
    let a = by_name(&p, "worker-a");
    let b = by_name(&p, "worker-b");
    assert_eq!(a.tid, host(u(&facts["threads"]["worker-a"])));
    assert_eq!(b.tid, host(u(&facts["threads"]["worker-b"])));
    assert_ne!(
        a.tid.get() as u64,
        u(&facts["threads"]["worker-a"]),
        "host and namespace TIDs differ"
    );
    assert_eq!(a.findings.wait.as_ref().unwrap().owner.tid(), Some(b.tid));
    let r = by_name(&p, "rlock-waiter").findings.wait.clone().unwrap();
    assert_eq!(r.owner.tid(), Some(by_name(&p, "rlock-holder").tid));
    assert_eq!(by_name(&p, "MainThread").tid.get(), pid);
}
