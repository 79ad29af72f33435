//! `lockdump demo`: a deadlock to look at on a fresh machine, no compiler needed.
//!
//! lockdump starts a copy of itself as a child (`lockdump __demo-child`) in
//! which two threads take two glibc pthread mutexes in opposite order, waits
//! until both threads are blocked in the kernel, diagnoses the child like any
//! other process, prints the report and kills the child. Should lockdump be
//! killed first, the kernel kills the child with it (`PR_SET_PDEATHSIG`).

use std::cell::UnsafeCell;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// A pthread mutex in a static, so the report can name it by its symbol.
#[repr(transparent)]
pub struct StaticMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: pthread mutexes are made to be shared between threads; all access
// goes through pthread_mutex_lock.
unsafe impl Sync for StaticMutex {}

impl StaticMutex {
    fn lock(&self) {
        // SAFETY: the mutex is statically initialized and never moved.
        unsafe { libc::pthread_mutex_lock(self.0.get()) };
    }
    fn addr(&self) -> usize {
        self.0.get() as usize
    }
}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static lock_a: StaticMutex = StaticMutex(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static lock_b: StaticMutex = StaticMutex(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

fn gettid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() }
}

#[inline(never)]
fn transfer(first: &StaticMutex, second: &StaticMutex, rendezvous: &Barrier) {
    first.lock();
    rendezvous.wait();
    // Both threads now hold their first lock: each waits for the other's.
    second.lock();
    // Not reached; keeps the call above from becoming a tail call, so this
    // function keeps its frame in the report.
    std::hint::black_box(first.addr());
}

/// How lockdump tells the demo child its PID, so the child can tell whether
/// lockdump died before it asked to die with it.
const PARENT_ENV: &str = "LOCKDUMP_DEMO_PARENT";

/// Make the kernel SIGKILL this process when lockdump dies: lockdump killed
/// with SIGKILL runs no cleanup, and the child would otherwise stay
/// deadlocked forever. The signal is armed by the parent *thread*: lockdump
/// starts the child from its main thread, which lives as long as it does.
fn die_with_parent() {
    let Some(parent) = std::env::var(PARENT_ENV).ok().and_then(|v| v.parse::<i32>().ok()) else {
        // Started by hand, not by `lockdump demo`: nobody to follow.
        return;
    };
    // SAFETY: prctl with integer arguments only.
    let armed = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) } == 0;
    // If lockdump died before the prctl, no signal will ever come: the child
    // was already handed to another parent (init or a subreaper).
    // SAFETY: getppid cannot fail.
    let orphaned = unsafe { libc::getppid() } != parent;
    if !armed || orphaned {
        std::process::exit(1);
    }
}

/// musl (a `--target x86_64-unknown-linux-musl` build of lockdump): a
/// normal musl mutex records no owner, so the demo's cycle could only be
/// inferred, or not found at all. Error-checking mutexes keep the owner's TID
/// in the lock word, as glibc's normal ones do in `__owner`, so the demo
/// shows an exact deadlock with either C library.
#[cfg(target_env = "musl")]
fn owner_recording_mutexes() {
    // SAFETY: called before any other thread exists; the mutexes are
    // unlocked statics, initialized once more with a valid attribute object.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK);
        for m in [&lock_a, &lock_b] {
            libc::pthread_mutex_init(m.0.get(), &attr);
        }
        libc::pthread_mutexattr_destroy(&mut attr);
    }
}

#[cfg(not(target_env = "musl"))]
fn owner_recording_mutexes() {}

/// The child: never returns.
pub fn child() -> ! {
    die_with_parent();
    owner_recording_mutexes();
    let rendezvous: &'static Barrier = Box::leak(Box::new(Barrier::new(3)));
    let (tx, rx) = std::sync::mpsc::channel();
    for (name, first, second) in [
        ("transfer-a-to-b", &lock_a, &lock_b),
        ("transfer-b-to-a", &lock_b, &lock_a),
    ] {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                tx.send((name, gettid())).ok();
                transfer(first, second, rendezvous);
            })
            .expect("spawn demo thread");
    }
    let mut tids: Vec<(&str, i32)> = (0..2).filter_map(|_| rx.recv().ok()).collect();
    tids.sort();
    rendezvous.wait();
    println!(
        "READY {{\"threads\": {{\"{}\": {}, \"{}\": {}}}, \"locks\": {{\"lock_a\": \"{:#x}\", \"lock_b\": \"{:#x}\"}}}}",
        tids[0].0,
        tids[0].1,
        tids[1].0,
        tids[1].1,
        lock_a.addr(),
        lock_b.addr()
    );
    loop {
        std::thread::park();
    }
}

/// Kills and reaps the child on every path.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the child and wait until both of its worker threads sleep in futex.
/// Returns the guard (kill on drop) and the child's PID.
pub fn start_child() -> Result<(impl Drop, i32), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find lockdump's own executable: {e}"))?;
    let child = Command::new(exe)
        .arg("__demo-child")
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the demo child: {e}"))?;
    let mut guard = ChildGuard(child);
    let pid = guard.0.id() as i32;
    let stdout = guard.0.stdout.take().ok_or("demo child has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("demo child: {e}"))?;
    if !line.starts_with("READY ") {
        return Err("the demo child did not start".into());
    }
    let ready: serde_json::Value = serde_json::from_str(&line[6..]).map_err(|e| format!("demo child: {e}"))?;
    let tids: Vec<i32> = ready["threads"]
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_i64()).map(|v| v as i32).collect())
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tids.iter().all(|&t| in_futex(pid, t)) {
        if Instant::now() > deadline {
            return Err("the demo child's threads did not block within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((guard, pid))
}

fn in_futex(pid: i32, tid: i32) -> bool {
    matches!(
        crate::proc::syscall(pid, tid),
        Ok(crate::proc::SyscallLine::InSyscall {
            nr: crate::syscalls::nr::FUTEX,
            ..
        })
    )
}
