//! Issue 14.3: `lockdump --core FILE` gives the verdict a live run gives.
//!
//! Each fixture (AB-BA in C, the process-shared cycle, a Python lock cycle)
//! is inspected live, then dumped twice: by `gcore` (gdb, the process
//! stopped by ptrace) and by the kernel (SIGABRT with RLIMIT_CORE raised and
//! core_pattern pointed at a temporary directory, restored afterwards even
//! on panic). Every core must give the same verdict kind, exit code, cycle
//! members (TIDs) and lock addresses as the live run. A kernel dump wakes
//! every thread blocked in a futex (`orig_rax` stays the call, `rax` holds
//! the restart code), which must not change the verdict.
//!
//! Then bad input: a file that is not ELF, an ELF that is not a core, a core
//! of another architecture, cores cut inside their notes and inside their
//! memory, and `--exe` naming no file. Exit 2 (one line on stderr) only when
//! nothing could be examined; never a panic.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{c_fixture, gcore, json_of, run_lockdump, unique_path, Fixture, Variant, POLL, TIMEOUT};
use serde_json::Value;

/// The interpreter of the Python fixture (tests/python.rs runs every one;
/// one is enough here: the core path is the same for all).
const PYTHON: &str = "/root/.pyenv/versions/3.12.1/bin/python3.12";

// ---------------------------------------------------------------------------
// Running lockdump and comparing verdicts
// ---------------------------------------------------------------------------

/// What must agree between a live run and a core: verdict kind, exit code,
/// each cycle's TIDs and lock addresses (sorted), and the exact edges.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    kind: String,
    exit_code: Option<i32>,
    cycles: Vec<(Vec<i64>, Vec<String>)>,
    /// (waiter TID, lock address, owner TID) of every cycle edge.
    edges: Vec<(i64, String, Option<i64>)>,
}

fn verdict(out: &Output, doc: &Value) -> Verdict {
    let mut cycles = Vec::new();
    let mut edges = Vec::new();
    for d in doc["deadlocks"].as_array().expect("deadlocks[]") {
        let mut tids: Vec<i64> = d["threads"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        tids.sort_unstable();
        let mut res: Vec<String> = d["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap_or_default().to_string())
            .collect();
        res.sort();
        cycles.push((tids, res));
        for e in d["edges"].as_array().unwrap() {
            edges.push((
                e["from_tid"].as_i64().unwrap(),
                e["address"].as_str().unwrap_or_default().to_string(),
                e["to_tid"].as_i64(),
            ));
        }
    }
    cycles.sort();
    edges.sort();
    Verdict {
        kind: doc["verdict"]["kind"].as_str().unwrap_or("?").to_string(),
        exit_code: out.status.code(),
        cycles,
        edges,
    }
}

fn live(pid: i32) -> (Verdict, Value) {
    live_of(&[pid])
}

fn live_of(pids: &[i32]) -> (Verdict, Value) {
    let mut args = vec!["--json".to_string()];
    for p in pids {
        args.push("-p".into());
        args.push(p.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_lockdump(&args);
    let doc = json_of(&out, "live run");
    assert_eq!(doc["source"]["kind"], "live", "{}", doc["source"]);
    (verdict(&out, &doc), doc)
}

fn from_core(core: &Path, extra: &[&str]) -> (Verdict, Value, Output) {
    from_cores(&[core], extra)
}

fn from_cores(cores: &[&Path], extra: &[&str]) -> (Verdict, Value, Output) {
    let mut args = vec!["--json"];
    for c in cores {
        args.extend(["--core", c.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    let core = cores[0];
    let out = run_lockdump(&args);
    let doc = json_of(&out, &format!("--core {}", core.display()));
    (verdict(&out, &doc), doc, out)
}

/// The core's verdict equals the live one, and the report says where it
/// came from.
fn check_same(label: &str, pid: i32, live: &Verdict, core: &Path) -> Value {
    let (v, doc, out) = from_core(core, &[]);
    eprintln!(
        "[core] {label}: live {:?} {} {:?} | core {:?} {} {:?}",
        live.exit_code, live.kind, live.cycles, v.exit_code, v.kind, v.cycles
    );
    assert_eq!(
        &v,
        live,
        "{label}: the core's verdict differs from the live one; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(doc["source"]["kind"], "core", "{label}: {}", doc["source"]);
    let src = &doc["source"]["cores"][0];
    assert_eq!(src["file"], core.to_str().unwrap(), "{label}: {src}");
    assert_eq!(src["pid"], pid, "{label}: {src}");
    assert_eq!(doc["pids"], serde_json::json!([pid]), "{label}");
    // Nothing was missing from these cores: every file is on this machine.
    assert_eq!(src["notes"], serde_json::json!([]), "{label}: {src}");
    doc
}

// ---------------------------------------------------------------------------
// Writing cores
// ---------------------------------------------------------------------------

/// A fixture command whose process may dump core (RLIMIT_CORE unlimited).
fn dumpable(mut cmd: Command) -> Command {
    // SAFETY: setrlimit is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &unlimited) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";

/// The kernel's core_pattern, pointed at a directory of ours while this
/// lives; the old value is written back on drop (also on panic). Holds an
/// exclusive lock on a file so no other test process changes it meanwhile.
struct CorePattern {
    old: String,
    dir: PathBuf,
    _lock: std::fs::File,
}

impl CorePattern {
    /// `Err` says why core_pattern cannot be set (the caller prints it).
    fn set() -> Result<CorePattern, String> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("lockdump-core-pattern.lock"))
            .map_err(|e| format!("cannot open the core_pattern lock file: {e}"))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(format!("flock: {}", std::io::Error::last_os_error()));
        }
        let old = std::fs::read_to_string(CORE_PATTERN).map_err(|e| format!("cannot read {CORE_PATTERN}: {e}"))?;
        let dir = unique_path("kernel-cores");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let pattern = format!("{}/core.%p", dir.display());
        std::fs::write(CORE_PATTERN, &pattern).map_err(|e| format!("cannot write {CORE_PATTERN}: {e}"))?;
        let now = std::fs::read_to_string(CORE_PATTERN).unwrap_or_default();
        let guard = CorePattern { old, dir, _lock: lock };
        if now.trim() != pattern {
            return Err(format!("{CORE_PATTERN} reads {now:?} after writing {pattern:?}"));
        }
        Ok(guard)
    }
}

impl Drop for CorePattern {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(CORE_PATTERN, self.old.trim_end()) {
            eprintln!("[core] could not restore {CORE_PATTERN} to {:?}: {e}", self.old);
        }
    }
}

/// Kill the fixture with SIGABRT and wait for the kernel's core of `pid`.
fn kernel_core(fx: &mut Fixture, pattern: &CorePattern, pid: i32) -> PathBuf {
    // SAFETY: kill(2) on the fixture's PID, which it still is (not reaped).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGABRT) }, 0, "kill -ABRT {pid}");
    let core = pattern.dir.join(format!("core.{pid}"));
    let deadline = Instant::now() + TIMEOUT;
    // The core is complete when the dumping process has exited (the kernel
    // writes it before the exit is reported).
    let mut exited = fx.child_pid() != pid;
    loop {
        if !exited {
            exited = fx.try_exit_status().is_some();
        } else if !common::task_exists(pid, pid) && core.is_file() {
            return core;
        }
        if Instant::now() > deadline {
            panic!(
                "no kernel core {} within {TIMEOUT:?} (exited: {exited}); {CORE_PATTERN} = {:?}",
                core.display(),
                std::fs::read_to_string(CORE_PATTERN).unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// The fixtures
// ---------------------------------------------------------------------------

fn abba() -> Fixture {
    Fixture::spawn_blocked(dumpable(c_fixture("abba", Variant::Debug, &[])))
}

fn pshared() -> Fixture {
    Fixture::spawn_blocked(dumpable(c_fixture("pshared_cycle", Variant::Debug, &[])))
}

fn python() -> Fixture {
    assert!(
        Path::new(PYTHON).is_file(),
        "{PYTHON} is missing: the core tests run the Python fixture on pyenv's 3.12.1 (scripts/setup-tools.sh)"
    );
    Fixture::spawn_blocked(dumpable(common::python_fixture(
        Path::new(PYTHON),
        "seed_lock1_lock2.py",
        &[],
    )))
}

/// The AB-BA cycle (t1, t2 over lock_a, lock_b) in a live run.
fn check_abba_live(fx: &Fixture, v: &Verdict) {
    let mut tids = vec![fx.tid("t1") as i64, fx.tid("t2") as i64];
    tids.sort_unstable();
    let mut locks = vec![format!("{:#x}", fx.lock("lock_a")), format!("{:#x}", fx.lock("lock_b"))];
    locks.sort();
    assert_eq!((v.kind.as_str(), v.exit_code), ("deadlock", Some(1)), "{v:?}");
    assert_eq!(v.cycles, vec![(tids, locks)], "{v:?}");
}

#[test]
fn gcore_of_abba_gives_the_live_verdict() {
    let fx = abba();
    let (live, _) = live(fx.pid());
    check_abba_live(&fx, &live);
    let core = gcore(fx.pid());
    let doc = check_same("abba gcore", fx.pid(), &live, &core);
    // The thread that joins t1 still waits for it, named from the core.
    let main = doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == fx.tid("main"))
        .expect("main thread");
    assert_eq!(main["blocked_on"]["kind"], "thread", "{main}");
    assert_eq!(main["blocked_on"]["owner_tid"], fx.tid("t1"), "{main}");
    assert_eq!(main["name"], "", "a core has no thread names: none invented");
    // The text report says it read a core.
    let out = run_lockdump(&["--color", "never", "--core", core.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("from core file {}", core.display())), "{text}");
    assert!(text.contains("t1_main (abba.c:"), "frames named from the files: {text}");
    let _ = std::fs::remove_file(core);
}

/// One process of the pair: the core holds the parent only, so lock_b's
/// owner (the child's thread) is not in it: the wait's owner is unknown
/// rather than "exited", and the verdict is the one a live run of the
/// parent alone gives.
#[test]
fn gcore_of_one_pshared_process() {
    let fx = pshared();
    let parent = fx.ready.pids["parent"];
    let (live, _) = live(parent);
    let core = gcore(parent);
    let (v, doc, _) = from_core(&core, &[]);
    eprintln!("[core] pshared gcore: live {live:?} | core {v:?}");
    assert_eq!((v.kind.as_str(), v.exit_code), (live.kind.as_str(), live.exit_code));
    assert!(v.cycles.is_empty(), "one process of the pair holds no cycle: {v:?}");
    let t = &doc["threads"][0];
    assert_eq!(t["tid"], parent, "{t}");
    let b = &t["blocked_on"];
    assert_eq!(b["address"], format!("{:#x}", fx.lock("lock_b")), "{b}");
    assert_eq!(
        (b["kind"].as_str(), b["confidence"].as_str()),
        (Some("mutex"), Some("unknown")),
        "{b}"
    );
    assert_eq!(b["owner_exited"], false, "not in the core is not exited: {b}");
    assert!(
        b["evidence"]
            .as_str()
            .unwrap_or_default()
            .contains(&fx.tid("child").to_string()),
        "the evidence names the owner TID the lock records: {b}"
    );
    // Both processes' cores are one graph, as `-p PARENT -p CHILD` is live:
    // the cycle across the two processes.
    let child = fx.ready.pids["child"];
    let (live2, _) = live_of(&[parent, child]);
    assert_eq!(
        (live2.kind.as_str(), live2.exit_code),
        ("deadlock", Some(1)),
        "{live2:?}"
    );
    let child_core = gcore(child);
    let (v2, doc2, out) = from_cores(&[&core, &child_core], &[]);
    eprintln!("[core] pshared gcores of both: live {live2:?} | cores {v2:?}");
    assert_eq!(v2, live2, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(doc2["pids"], serde_json::json!([parent, child]));
    assert_eq!(doc2["source"]["cores"].as_array().map(Vec::len), Some(2));
    // The same core twice is refused, in one line.
    let c = core.to_str().unwrap();
    check_refused(&["--core", c, "--core", c], "are both of PID");
    let _ = std::fs::remove_file(core);
    let _ = std::fs::remove_file(child_core);
}

#[test]
fn gcore_of_python_gives_the_live_verdict() {
    let fx = python();
    let (live, live_doc) = live(fx.pid());
    assert_eq!((live.kind.as_str(), live.exit_code), ("deadlock", Some(1)), "{live:?}");
    let core = gcore(fx.pid());
    let doc = check_same("python gcore", fx.pid(), &live, &core);
    // Python thread names and stacks come from the core's memory.
    for name in ["t1", "t2"] {
        let t = doc["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"] == fx.tid(name))
            .unwrap();
        assert_eq!(t["python_name"], name, "{t}");
        assert!(t["python_stack_note"].is_null(), "{t}");
        let lt = live_doc["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tid"] == fx.tid(name))
            .unwrap();
        assert_eq!(
            t["frames"], lt["frames"],
            "{name}: same Python stack live and from the core"
        );
    }
    let _ = std::fs::remove_file(core);
}

/// Every interpreter the Python tests run on (scripts/interpreters.sh), one
/// after the other: the same cycle from a gcore as live. Interpreters run
/// in Debian sid's chroot are left out, with the reason printed: gdb
/// outside the chroot wrote zeros for their threads' stacks (seen with
/// 3.14), so their gcores hold no native frames to compare.
#[test]
fn gcore_of_python_on_every_interpreter() {
    for py in common::python_interpreters() {
        if py.path.starts_with("/opt/sid-python") {
            eprintln!(
                "[core] {} left out: runs in the sid chroot, whose thread stacks gcore wrote as zeros",
                py.label
            );
            continue;
        }
        let fx = Fixture::spawn_blocked(common::python_fixture(&py.path, "seed_lock1_lock2.py", &[]));
        let (live, _) = live(fx.pid());
        assert_eq!(
            (live.kind.as_str(), live.exit_code),
            ("deadlock", Some(1)),
            "{}: {live:?}",
            py.label
        );
        let core = gcore(fx.pid());
        let doc = check_same(&format!("python {} gcore", py.label), fx.pid(), &live, &core);
        for name in ["t1", "t2"] {
            let t = doc["threads"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tid"] == fx.tid(name))
                .unwrap();
            assert_eq!(t["python_name"], name, "{}: {t}", py.label);
        }
        let _ = std::fs::remove_file(core);
    }
}

/// The kernel's own cores of the three fixtures (one test: core_pattern is
/// global).
#[test]
fn kernel_cores_give_the_live_verdict() {
    let pattern = match CorePattern::set() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("[core] SKIPPED kernel_cores_give_the_live_verdict: {why}");
            return;
        }
    };
    {
        let mut fx = abba();
        let (live, _) = live(fx.pid());
        check_abba_live(&fx, &live);
        let pid = fx.pid();
        let core = kernel_core(&mut fx, &pattern, pid);
        let doc = check_same("abba kernel core", pid, &live, &core);
        assert_eq!(doc["source"]["cores"][0]["signal"], libc::SIGABRT, "{}", doc["source"]);
        // Cut in the middle of its memory (the kernel writes the notes
        // first): every thread is read, the missing memory is noted, and
        // what it took for the verdict says so or stands.
        let bytes = std::fs::read(&core).unwrap();
        let ((note_off, _), (load_off, load_size)) = segments(&bytes);
        assert!(note_off < load_off, "the kernel writes notes first");
        let cut = unique_path("kernel-cut");
        std::fs::write(&cut, &bytes[..load_off + load_size / 2]).unwrap();
        let cut_doc = check_partial(
            &["--json", "--core", cut.to_str().unwrap()],
            "the core file is truncated",
        );
        assert_eq!(
            cut_doc["threads"].as_array().unwrap().len(),
            3,
            "every thread is in the notes"
        );
        let _ = std::fs::remove_file(cut);
        // Woken for the dump, the cycle's threads still show their futex
        // call (orig_rax) with a restart code in rax.
        for name in ["t1", "t2"] {
            let t = doc["threads"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tid"] == fx.tid(name))
                .unwrap();
            assert_eq!(t["syscall"]["name"], "futex", "{t}");
        }
    }
    {
        // Both processes dumped by the kernel (the child first: it dies
        // with its parent), analyzed together.
        let mut fx = pshared();
        let (parent, child) = (fx.ready.pids["parent"], fx.ready.pids["child"]);
        let (live, _) = live_of(&[parent, child]);
        assert_eq!(live.kind, "deadlock", "{live:?}");
        // SAFETY: kill(2) on the fixture's child, alive until it dumps.
        assert_eq!(unsafe { libc::kill(child, libc::SIGABRT) }, 0);
        let child_core = pattern.dir.join(format!("core.{child}"));
        let deadline = Instant::now() + TIMEOUT;
        // Dumped when it is a zombie (its parent, deadlocked, never reaps it).
        let dead = || lockdump::test_support::proc::status(child).map_or(true, |s| matches!(s.state, 'Z' | 'X'));
        while !dead() || !child_core.is_file() {
            assert!(Instant::now() < deadline, "no kernel core of the child {child}");
            std::thread::sleep(POLL);
        }
        let core = kernel_core(&mut fx, &pattern, parent);
        let (v, _, out) = from_cores(&[&core, &child_core], &[]);
        eprintln!("[core] pshared kernel cores: live {live:?} | cores {v:?}");
        assert_eq!(v, live, "{}", String::from_utf8_lossy(&out.stderr));
    }
    {
        let mut fx = python();
        let (live, _) = live(fx.pid());
        assert_eq!(live.kind, "deadlock", "{live:?}");
        let pid = fx.pid();
        let core = kernel_core(&mut fx, &pattern, pid);
        check_same("python kernel core", pid, &live, &core);
    }
    let _ = std::fs::remove_dir_all(&pattern.dir);
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// Exit 2 with exactly one line on stderr containing `want`, nothing on stdout.
fn check_refused(args: &[&str], want: &str) {
    let out = run_lockdump(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line wanted: {stderr}");
    assert!(
        stderr.starts_with("lockdump: ") && stderr.contains(want),
        "{args:?}: {stderr}"
    );
    assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

/// Examined in part: not exit 2, no panic, a JSON report whose notes say
/// what is missing.
fn check_partial(args: &[&str], note: &str) -> Value {
    let out = run_lockdump(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 3)),
        "{args:?}: exit {:?}: {stderr}",
        out.status
    );
    assert!(!stderr.contains("internal error"), "{args:?}: {stderr}");
    let doc = json_of(&out, &format!("{args:?}"));
    let notes = doc["source"]["cores"][0]["notes"].to_string();
    assert!(notes.contains(note), "{args:?}: want a note with {note:?}: {notes}");
    doc
}

/// Offsets of (PT_NOTE, the PT_LOAD with data that lies last in the file)
/// in an ELF64 core.
fn segments(core: &[u8]) -> ((usize, usize), (usize, usize)) {
    let u16_at = |o: usize| u16::from_le_bytes(core[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(core[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phnum) = (u64_at(32), u16_at(56));
    let (mut note, mut load) = (None, None);
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        let kind = u32::from_le_bytes(core[ph..ph + 4].try_into().unwrap());
        let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
        match kind {
            4 if note.is_none() => note = Some((off, size)),
            1 if size > 0 && !load.is_some_and(|(o, _)| o >= off) => load = Some((off, size)),
            _ => {}
        }
    }
    (note.expect("PT_NOTE"), load.expect("PT_LOAD"))
}

#[test]
fn bad_input_is_one_line_or_a_note_never_a_panic() {
    let fx = abba();
    let core = gcore(fx.pid());
    drop(fx);
    let bytes = std::fs::read(&core).unwrap();
    let write = |name: &str, data: &[u8]| -> PathBuf {
        let p = unique_path(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Not ELF, empty, not a core, no such file.
    let text = write("not-elf", b"hello, I am not a core\n");
    check_refused(&["--core", &s(&text)], "not an ELF file");
    let empty = write("empty", b"");
    check_refused(&["--core", &s(&empty)], "not an ELF file");
    let exe = common::lockdump_bin();
    check_refused(&["--core", &s(&exe)], "not an ELF core file (ELF type DYN");
    check_refused(
        &["--core", "/nonexistent/core.1"],
        "cannot open core file /nonexistent/core.1",
    );

    // Another architecture: e_machine patched to aarch64.
    let mut arm = bytes.clone();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes());
    let arm = write("aarch64", &arm);
    check_refused(&["--core", &s(&arm)], "another architecture (aarch64)");

    let ((note_off, note_size), (load_off, load_size)) = segments(&bytes);
    // Cut before the first note ends: no thread at all.
    let cut = write("cut-header", &bytes[..note_off + 40]);
    check_refused(&["--core", &s(&cut)], "no thread in its notes");
    // Cut in the middle of the notes: the threads before the cut are read.
    let cut = write("cut-notes", &bytes[..note_off + note_size / 2]);
    let doc = check_partial(&["--json", "--core", &s(&cut)], "truncated");
    assert!(!doc["threads"].as_array().unwrap().is_empty());
    // Cut in the middle of the memory. gcore writes its notes after the
    // memory: such a cut leaves no thread (a kernel core, notes first, is
    // cut in kernel_cores_give_the_live_verdict).
    assert!(note_off > load_off, "gcore's layout changed: notes at {note_off:#x}");
    let cut = write("cut-memory", &bytes[..load_off + load_size / 2]);
    check_refused(&["--core", &s(&cut)], "no thread in its notes");
    // A segment whose data lies past the end of the file (a damaged
    // header): that memory is missing, the rest is read.
    let mut past = bytes.clone();
    let phoff = u64::from_le_bytes(past[32..40].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(past[56..58].try_into().unwrap()) as usize;
    let last_load = (0..phnum)
        .map(|i| phoff + 56 * i)
        .rfind(|&ph| past[ph..ph + 4] == 1u32.to_le_bytes())
        .unwrap();
    past[last_load + 8..last_load + 16].copy_from_slice(&(bytes.len() as u64 * 2).to_le_bytes());
    let past = write("past-end", &past);
    let doc = check_partial(&["--json", "--core", &s(&past)], "the core file is truncated");
    assert_eq!(
        doc["threads"].as_array().unwrap().len(),
        3,
        "every thread is in the notes"
    );

    // --exe naming no file: a note, the rest of the report stands.
    let doc = check_partial(
        &["--json", "--core", &s(&core), "--exe", "/nonexistent/abba"],
        "--exe /nonexistent/abba: no such file",
    );
    assert_eq!(doc["verdict"]["kind"], "deadlock", "libc's locks need no executable");

    // Options that need a live process.
    for opt in [&["--no-stop"][..], &["--tree"], &["--watch", "1s"], &["-p", "1"]] {
        let mut args = vec!["--core", core.to_str().unwrap()];
        args.extend_from_slice(opt);
        let out = run_lockdump(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("cannot be used with"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_file(core);
}

/// A mapped file that is not the build the process had (here: the core's
/// executable replaced under a sysroot) is named and not used.
#[test]
fn a_different_build_under_sysroot_is_not_used() {
    let fx = abba();
    let core = gcore(fx.pid());
    let exe = std::fs::read_link(format!("/proc/{}/exe", fx.pid())).unwrap();
    drop(fx);
    // A sysroot holding only another ELF at the executable's path.
    let root = unique_path("sysroot");
    let at = root.join(exe.strip_prefix("/").unwrap());
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::copy(common::lockdump_bin(), &at).unwrap();
    let (v, doc, _) = from_core(&core, &["--sysroot", root.to_str().unwrap()]);
    let notes = doc["source"]["cores"][0]["notes"].to_string();
    assert!(
        notes.contains(&format!("mapped file {}", exe.display())) && notes.contains("another build"),
        "{notes}"
    );
    assert!(notes.contains("libc.so.6: ") && notes.contains("not found"), "{notes}");
    // No file names a frame wrongly: nothing here is named from lockdump.
    let frames = doc["threads"].to_string();
    assert!(!frames.contains("lockdump"), "{frames}");
    eprintln!("[core] abba under an empty sysroot: {v:?}");
    // --exe is what is read for the executable: a copy of the right build
    // elsewhere names its frames, another build is refused by build ID.
    let moved = root.join("moved-abba");
    std::fs::copy(&exe, &moved).unwrap();
    let (_, doc, _) = from_core(&core, &["--exe", moved.to_str().unwrap()]);
    assert_eq!(doc["source"]["cores"][0]["notes"], serde_json::json!([]));
    assert!(doc["threads"].to_string().contains("t1_main"), "{}", doc["threads"]);
    let (_, doc, _) = from_core(&core, &["--exe", at.to_str().unwrap()]);
    let notes = doc["source"]["cores"][0]["notes"].to_string();
    assert!(notes.contains("another build"), "{notes}");
    assert!(!doc["threads"].to_string().contains("t1_main"), "{}", doc["threads"]);
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_file(core);
    let _ = Duration::ZERO;
}
