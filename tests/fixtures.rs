//! The fixtures do what they claim, proven without lockdump: after READY,
//! each named thread sleeps in the expected system call on the expected
//! address, stays there (no context switch over two seconds), and where the
//! lock records its owner (glibc mutexes), the owner is the expected thread.
//! Healthy busy fixtures keep making progress.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Gap between the two looks that prove a thread stays blocked.
const STAY: Duration = Duration::from_secs(2);

/// glibc 2.36 pthread_mutex_t: `__lock`@0, `__count`@4, `__owner`@8
/// (sysdeps/nptl/bits/struct_mutex.h; see /work/shared/notes/internals.md §2).
const MUTEX_COUNT: u64 = 4;
const MUTEX_OWNER: u64 = 8;
/// FUTEX_TID_MASK (linux/futex.h): the owner TID bits of a robust/PI lock word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
const FUTEX_WAITERS: u32 = 0x8000_0000;
const SIGUSR1: u32 = 10;
const SIGUSR2: u32 = 12;
/// sizeof(pthread_cond_t), sizeof(pthread_rwlock_t), sizeof(pthread_barrier_t) on x86_64.
const COND_SIZE: u64 = 48;
const RWLOCK_SIZE: u64 = 56;
const BARRIER_SIZE: u64 = 32;

/// What a thread is expected to be blocked on.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// futex wait on a glibc mutex; its `__owner` is the named thread.
    Mutex { lock: &'static str, owner: &'static str },
    /// futex wait on a glibc mutex whose `__owner` is a TID from READY's
    /// "exited" object (a thread that is gone).
    MutexOwnedByExited { lock: &'static str, exited: &'static str },
    /// Robust mutex: shared futex wait, lock word = FUTEX_WAITERS | owner TID.
    Robust { lock: &'static str, owner: &'static str },
    /// FUTEX_LOCK_PI on a PI mutex whose lock word holds the owner TID.
    LockPi { lock: &'static str, owner: &'static str },
    /// glibc's "delay indefinitely" after EDEADLK from FUTEX_LOCK_PI: a futex
    /// wait on a zero on the thread's own stack.
    OwnStackForever,
    /// futex wait on a word inside the object (condvar, rwlock, barrier, Rust std locks).
    Inside { lock: &'static str, size: u64 },
    /// pthread_join / JoinHandle::join: futex wait whose expected value is
    /// the joined thread's TID.
    Join { thread: &'static str },
    /// Any of these system calls.
    Syscall(&'static [i64]),
    /// Some futex wait (Python locks: the futex is an internal semaphore).
    AnyFutex,
}

fn futex_of(f: &Fixture, name: &str, s: &ThreadSample) -> Futex {
    s.futex()
        .unwrap_or_else(|| f.fail(format_args!("{name} is not in futex: {s:?}")))
}

fn owner_tid(f: &Fixture, lock: u64) -> i32 {
    let pid = f.pid();
    read_u32(pid, lock + MUTEX_OWNER) as i32
}

/// Check that thread `name`, sampled as `s`, is blocked as `wait` says.
fn check_wait(f: &Fixture, name: &str, s: &ThreadSample, wait: Wait) {
    let fail = |what: String| -> ! { f.fail(format_args!("{name}: {what}; sample {s:?}")) };
    if !s.is_blocked() {
        fail("not blocked".into());
    }
    match wait {
        Wait::Mutex { lock, owner } => {
            let fx = futex_of(f, name, s);
            if fx.addr != f.lock(lock) || !fx.is_wait() {
                fail(format!(
                    "expected a futex wait on {lock} at {:#x}, got {fx:?}",
                    f.lock(lock)
                ));
            }
            let got = owner_tid(f, f.lock(lock));
            if got != f.tid(owner) {
                fail(format!("{lock}.__owner is {got}, expected {owner} ({})", f.tid(owner)));
            }
        }
        Wait::MutexOwnedByExited { lock, exited } => {
            let fx = futex_of(f, name, s);
            let dead = f.ready.raw["exited"][exited]
                .as_i64()
                .unwrap_or_else(|| fail(format!("READY has no exited.{exited}"))) as i32;
            if fx.addr != f.lock(lock) || !fx.is_wait() {
                fail(format!("expected a futex wait on {lock}, got {fx:?}"));
            }
            if owner_tid(f, f.lock(lock)) != dead {
                fail(format!("{lock}.__owner is not the exited thread {dead}"));
            }
            if task_exists(f.pid(), dead) {
                fail(format!("exited thread {dead} still exists"));
            }
        }
        Wait::Robust { lock, owner } => {
            let fx = futex_of(f, name, s);
            let addr = f.lock(lock);
            let expected = FUTEX_WAITERS | f.tid(owner) as u32;
            if fx.addr != addr || !fx.is_wait() || fx.is_private() || fx.val != expected {
                fail(format!(
                    "expected a shared futex wait on {lock} for value {expected:#x}, got {fx:?}"
                ));
            }
            let word = read_u32(f.pid(), addr);
            if word & FUTEX_TID_MASK != f.tid(owner) as u32 || owner_tid(f, addr) != f.tid(owner) {
                fail(format!("{lock}: lock word {word:#x} / __owner do not name {owner}"));
            }
        }
        Wait::LockPi { lock, owner } => {
            let fx = futex_of(f, name, s);
            let addr = f.lock(lock);
            if fx.addr != addr || !fx.is_lock_pi() {
                fail(format!("expected FUTEX_LOCK_PI on {lock}, got {fx:?}"));
            }
            let word = read_u32(f.pid(), addr);
            if word & FUTEX_TID_MASK != f.tid(owner) as u32 {
                fail(format!("{lock}: PI lock word {word:#x} does not name {owner}"));
            }
        }
        Wait::OwnStackForever => {
            let fx = futex_of(f, name, s);
            let lockdump::test_support::proc::SyscallLine::InSyscall { sp, .. } = s.syscall else {
                unreachable!()
            };
            let stack = mapping_containing(tgid_of(f.tid(name)).unwrap(), sp);
            let on_stack = stack.is_some_and(|(lo, hi)| (lo..hi).contains(&fx.addr));
            if !fx.is_wait() || fx.val != 0 || !on_stack {
                fail(format!(
                    "expected a futex wait for 0 on its own stack {stack:x?}, got {fx:?}"
                ));
            }
            if f.ready.locks.values().any(|&l| l == fx.addr) {
                fail("waits on a lock address, not on its stack".into());
            }
        }
        Wait::Inside { lock, size } => {
            let fx = futex_of(f, name, s);
            let base = f.lock(lock);
            if !(base..base + size).contains(&fx.addr) || !fx.is_wait() {
                fail(format!(
                    "expected a futex wait inside {lock} [{base:#x}, +{size}), got {fx:?}"
                ));
            }
        }
        Wait::Join { thread } => {
            let fx = futex_of(f, name, s);
            if !fx.is_wait() || fx.val != f.tid(thread) as u32 {
                fail(format!(
                    "expected a join on {thread} (futex value {}), got {fx:?}",
                    f.tid(thread)
                ));
            }
        }
        Wait::Syscall(nrs) => {
            if !s.syscall_nr().is_some_and(|nr| nrs.contains(&nr)) {
                fail(format!("expected one of syscalls {nrs:?}"));
            }
        }
        Wait::AnyFutex => {
            if !s.futex().is_some_and(|fx| fx.is_wait()) {
                fail("expected a futex wait".into());
            }
        }
    }
}

/// Every READY thread is listed in `expects`, is blocked as expected, and
/// stays so for [`STAY`]; then each is checked again on its second sample.
fn check_all(f: &Fixture, expects: &[(&str, Wait)]) {
    let listed: BTreeSet<&str> = expects.iter().map(|(n, _)| *n).collect();
    let ready: BTreeSet<&str> = f.ready.threads.keys().map(String::as_str).collect();
    assert_eq!(listed, ready, "test expectations vs READY threads of {}", f.label);
    for (name, wait) in expects {
        check_wait(f, name, &f.sample(name), *wait);
    }
    let names: Vec<&str> = expects.iter().map(|(n, _)| *n).collect();
    let later = f.assert_stays_blocked(&names, STAY);
    for (name, wait) in expects {
        check_wait(f, name, &later[*name], *wait);
    }
}

/// Threads the fixture named (all but main) carry their name as comm.
fn check_comm_names(f: &Fixture) {
    for (name, &tid) in &f.ready.threads {
        if name != "main" {
            assert_eq!(&f.sample_tid(tid).comm, name, "comm of thread {tid} in {}", f.label);
        }
    }
}

fn c_deadlock(name: &str, variant: Variant, expects: &[(&str, Wait)]) -> Fixture {
    let f = Fixture::spawn_blocked(c_fixture(name, variant, &[]));
    check_comm_names(&f);
    check_all(&f, expects);
    assert_eq!(tracer_pid(f.pid()), 0, "nobody may stay attached");
    f
}

/// Shorthand: a futex wait on glibc mutex `lock`, owned by thread `owner`.
#[allow(non_snake_case)]
fn M(lock: &'static str, owner: &'static str) -> Wait {
    Wait::Mutex { lock, owner }
}

/// Shorthand: joining `thread`.
#[allow(non_snake_case)]
fn JOIN(thread: &'static str) -> Wait {
    Wait::Join { thread }
}

// ---- C: deadlocks --------------------------------------------------------

#[test]
fn c_abba() {
    let f = c_deadlock(
        "abba",
        Variant::Debug,
        &[
            ("t1", M("lock_b", "t2")),
            ("t2", M("lock_a", "t1")),
            ("main", JOIN("t1")),
        ],
    );
    let src = fixtures_dir().join("c/abba.c");
    assert!(marked_line(&src, "t1") < marked_line(&src, "t2"));
    drop(f);
}

#[test]
fn c_abba_stripped() {
    c_deadlock(
        "abba",
        Variant::Stripped,
        &[
            ("t1", M("lock_b", "t2")),
            ("t2", M("lock_a", "t1")),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_ring3() {
    c_deadlock(
        "ring3",
        Variant::Debug,
        &[
            ("t1", M("lock_b", "t2")),
            ("t2", M("lock_c", "t3")),
            ("t3", M("lock_a", "t1")),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_philosophers() {
    c_deadlock(
        "philosophers",
        Variant::Debug,
        &[
            ("phil_0", M("fork_1", "phil_1")),
            ("phil_1", M("fork_2", "phil_2")),
            ("phil_2", M("fork_3", "phil_3")),
            ("phil_3", M("fork_4", "phil_4")),
            ("phil_4", M("fork_0", "phil_0")),
            ("main", JOIN("phil_0")),
        ],
    );
}

#[test]
fn c_dwarf_names() {
    c_deadlock(
        "dwarf_names",
        Variant::Debug,
        &[
            ("t1", M("fork_1", "t2")),
            ("t2", M("acct_h", "t3")),
            ("t3", M("grid_12", "t4")),
            ("t4", M("bank_3", "t1")),
            ("t5", M("hidden", "t4")),
            ("t6", M("bank_3", "t1")),
            ("t7", M("vault", "t6")),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_self_deadlock() {
    c_deadlock(
        "self_deadlock",
        Variant::Debug,
        &[("t1", M("lock_self", "t1")), ("main", JOIN("t1"))],
    );
}

#[test]
fn c_recursive_cycle() {
    let f = c_deadlock(
        "recursive_cycle",
        Variant::Debug,
        &[
            ("t1", M("lock_b", "t2")),
            ("t2", M("lock_a", "t1")),
            ("main", JOIN("t1")),
        ],
    );
    for lock in ["lock_a", "lock_b"] {
        assert_eq!(read_u32(f.pid(), f.lock(lock) + MUTEX_COUNT), 2, "{lock}.__count");
    }
}

#[test]
fn c_errorcheck_cycle() {
    c_deadlock(
        "errorcheck_cycle",
        Variant::Debug,
        &[
            ("t1", M("lock_b", "t2")),
            ("t2", M("lock_a", "t1")),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_robust_cycle() {
    c_deadlock(
        "robust_cycle",
        Variant::Debug,
        &[
            (
                "t1",
                Wait::Robust {
                    lock: "lock_b",
                    owner: "t2",
                },
            ),
            (
                "t2",
                Wait::Robust {
                    lock: "lock_a",
                    owner: "t1",
                },
            ),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_pi_cycle() {
    c_deadlock(
        "pi_cycle",
        Variant::Debug,
        &[
            (
                "t1",
                Wait::LockPi {
                    lock: "lock_b",
                    owner: "t2",
                },
            ),
            ("t2", Wait::OwnStackForever),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_rwlock_mutex_cycle() {
    let f = c_deadlock(
        "rwlock_mutex_cycle",
        Variant::Debug,
        &[
            ("t1", M("lock_m", "t2")),
            (
                "t2",
                Wait::Inside {
                    lock: "rw_lock",
                    size: RWLOCK_SIZE,
                },
            ),
            (
                "t3",
                Wait::Inside {
                    lock: "rw_lock",
                    size: RWLOCK_SIZE,
                },
            ),
            ("main", JOIN("t1")),
        ],
    );
    // glibc 2.36 pthread_rwlock_t.__cur_writer@24 is the write holder's TID.
    assert_eq!(
        read_u32(f.pid(), f.lock("rw_lock") + 24) as i32,
        f.tid("t1"),
        "rw_lock.__cur_writer"
    );
}

#[test]
fn c_join_cycle() {
    c_deadlock(
        "join_cycle",
        Variant::Debug,
        &[("t1", M("lock_m", "main")), ("main", JOIN("t1"))],
    );
}

#[test]
fn c_orphaned_mutex() {
    c_deadlock(
        "orphaned_mutex",
        Variant::Debug,
        &[
            (
                "t1",
                Wait::MutexOwnedByExited {
                    lock: "lock_orphan",
                    exited: "leaver",
                },
            ),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn c_pshared_cycle() {
    let f = Fixture::spawn_blocked(c_fixture("pshared_cycle", Variant::Debug, &[]));
    let (parent, child) = (f.ready.pids["parent"], f.ready.pids["child"]);
    assert_eq!((f.tid("parent"), f.tid("child")), (parent, child));
    assert_eq!(tgid_of(child).unwrap(), child, "the child is its own process");
    assert_ne!(parent, child);
    let expect = [("parent", "lock_b", "child"), ("child", "lock_a", "parent")];
    let check = |samples: &dyn Fn(&str) -> ThreadSample| {
        for (who, lock, owner) in expect {
            let s = samples(who);
            let fx = futex_of(&f, who, &s);
            assert!(s.is_blocked() && fx.is_wait(), "{who}: {s:?}");
            assert_eq!(fx.addr, f.lock(lock), "{who} waits on {lock}");
            assert!(!fx.is_private(), "process-shared futex must not be private: {fx:?}");
            // Same mapping address in both processes: read the owner from either.
            assert_eq!(read_u32(parent, f.lock(lock) + MUTEX_OWNER) as i32, f.tid(owner));
            assert_eq!(read_u32(child, f.lock(lock) + MUTEX_OWNER) as i32, f.tid(owner));
        }
    };
    check(&|n| f.sample(n));
    let later = f.assert_stays_blocked(&["parent", "child"], STAY);
    check(&|n| later[n].clone());
    drop(f);
    wait_until(
        "the child process to be gone",
        || task_exists(child, child),
        |alive| !alive,
    );
}

#[test]
fn c_signal_abba() {
    let f = c_deadlock(
        "signal_abba",
        Variant::Debug,
        &[
            ("t1", M("lock_b", "t2")),
            ("t2", M("lock_a", "t1")),
            ("main", JOIN("t1")),
        ],
    );
    // A running handler blocks its own signal (no SA_NODEFER): t2 is inside it.
    let bit = 1u64 << (SIGUSR1 - 1);
    assert_ne!(
        blocked_signals(f.pid(), f.tid("t2")) & bit,
        0,
        "t2 is in the SIGUSR1 handler"
    );
    assert_eq!(blocked_signals(f.pid(), f.tid("t1")) & bit, 0, "t1 is not in a handler");
}

// ---- C: blocked, no deadlock --------------------------------------------

#[test]
fn c_signal_handler() {
    let f = Fixture::spawn_blocked(c_fixture("signal_handler", Variant::Debug, &[]));
    check_comm_names(&f);
    check_all(
        &f,
        &[
            ("sig_lock", M("lock_handler", "main")),
            ("sig_pause", Wait::Syscall(&[SYS_PAUSE])),
            ("main", Wait::Syscall(&[SYS_PAUSE])),
        ],
    );
    let (pid, usr1, usr2) = (f.pid(), 1u64 << (SIGUSR1 - 1), 1u64 << (SIGUSR2 - 1));
    assert_ne!(
        blocked_signals(pid, f.tid("sig_lock")) & usr1,
        0,
        "sig_lock in its SIGUSR1 handler"
    );
    assert_ne!(
        blocked_signals(pid, f.tid("sig_pause")) & usr2,
        0,
        "sig_pause in its SIGUSR2 handler"
    );
    assert_eq!(
        blocked_signals(pid, f.tid("main")) & (usr1 | usr2),
        0,
        "main in no handler"
    );
}

fn nested_expectations() -> [(&'static str, Wait); 4] {
    [
        ("chain_a", M("lock_nested", "main")),
        ("chain_b", M("lock_nested", "main")),
        ("chain_r", M("lock_nested", "main")),
        ("main", Wait::Syscall(&[SYS_PAUSE])),
    ]
}

/// Names in the ELF symbol table (.symtab), and whether it has DWARF.
fn elf_symbols(path: &std::path::Path) -> (BTreeSet<String>, Option<Vec<u8>>) {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let names = file
        .symbols()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    let debug_str = file
        .section_by_name(".debug_str")
        .map(|s| s.uncompressed_data().unwrap().into_owned());
    (names, debug_str)
}

#[test]
fn c_nested_calls() {
    let f = Fixture::spawn_blocked(c_fixture("nested_calls", Variant::Debug, &[]));
    check_comm_names(&f);
    check_all(&f, &nested_expectations());

    let (symbols, debug_str) = elf_symbols(&build_c("nested_calls", Variant::Debug));
    for present in [
        "level_one",
        "level_two",
        "level_three",
        "recurse",
        "chain_a_main",
        "chain_b_main",
        "chain_r_main",
        "lock_nested",
    ] {
        assert!(
            symbols.contains(present),
            "symbol {present} missing (inlined or renamed at -O2?)"
        );
    }
    for inlined in ["inl_level_one", "inl_level_two", "inl_level_three"] {
        assert!(
            !symbols.contains(inlined),
            "{inlined} should be inlined, but has a symbol"
        );
        let strings = debug_str.as_deref().expect("debug build has .debug_str");
        assert!(
            strings.windows(inlined.len()).any(|w| w == inlined.as_bytes()),
            "DWARF should still name the inlined {inlined}"
        );
    }
    let src = fixtures_dir().join("c/nested_calls.c");
    let lines: Vec<u32> = ["level_one", "level_two", "level_three", "chain_a"]
        .iter()
        .map(|k| marked_line(&src, k))
        .collect();
    assert!(
        lines.windows(2).all(|w| w[0] < w[1]),
        "markers in source order: {lines:?}"
    );
}

#[test]
fn c_nested_calls_stripped() {
    let f = Fixture::spawn_blocked(c_fixture("nested_calls", Variant::Stripped, &[]));
    check_all(&f, &nested_expectations());
    let (symbols, debug_str) = elf_symbols(&build_c("nested_calls", Variant::Stripped));
    assert!(
        symbols.is_empty(),
        "stripped binary has no .symtab, found {} symbols",
        symbols.len()
    );
    assert!(debug_str.is_none(), "stripped binary has no DWARF");
}

/// tail_calls: every thread waits on lock_tail held by main, and the code
/// really has the shape the fixture describes: jumps where it says tail call,
/// a call where a frame must stay.
#[test]
fn c_tail_calls() {
    let f = Fixture::spawn_blocked(c_fixture("tail_calls", Variant::Debug, &[]));
    check_comm_names(&f);
    check_all(
        &f,
        &[
            ("tc_chain", M("lock_tail", "main")),
            ("tc_ambig", M("lock_tail", "main")),
            ("tc_partial", M("lock_tail", "main")),
            ("main", Wait::Syscall(&[SYS_PAUSE])),
        ],
    );
    let func = |name: &str| f.ready.address("funcs", name);
    // Each function is a few instructions; 64 bytes covers all of them.
    let branch = |from: &str, kind: Branch, to: &str| {
        assert!(
            has_branch(f.pid(), func(from), 64, kind, func(to)),
            "{from} should {kind:?} to {to} ({:#x})",
            func(to)
        )
    };
    branch("tail_a", Branch::Call, "tail_b");
    branch("tail_b", Branch::Jmp, "tail_c");
    branch("tail_c", Branch::Jmp, "tail_d");
    branch("amb_x", Branch::Call, "amb_y");
    branch("amb_y", Branch::Jmp, "amb_p");
    branch("amb_y", Branch::Jmp, "amb_q");
    branch("part_x", Branch::Call, "part_y");
    branch("part_y", Branch::Jmp, "part_p");
    branch("part_y", Branch::Jmp, "part_q");
    branch("part_p", Branch::Jmp, "part_r");
    branch("part_q", Branch::Jmp, "part_r");
    let (symbols, _) = elf_symbols(&build_c("tail_calls", Variant::Debug));
    for present in [
        "tail_b", "tail_c", "tail_d", "amb_p", "amb_q", "part_p", "part_q", "part_r",
    ] {
        assert!(
            symbols.contains(present),
            "symbol {present} missing (inlined or renamed?)"
        );
    }
}

fn idle(n: usize) {
    let arg = n.to_string();
    let f = Fixture::spawn_blocked(c_fixture("threads_idle", Variant::Debug, &[&arg]));
    assert_eq!(f.ready.threads.len(), n + 1, "w0..w{} and main", n - 1);
    let names: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
    let mut expects: Vec<(&str, Wait)> = names
        .iter()
        .map(|w| {
            (
                w.as_str(),
                Wait::Inside {
                    lock: "idle_cond",
                    size: COND_SIZE,
                },
            )
        })
        .collect();
    expects.push(("main", JOIN("w0")));
    check_comm_names(&f);
    check_all(&f, &expects);
}

#[test]
fn c_threads_idle_default() {
    let f = Fixture::spawn(c_fixture("threads_idle", Variant::Debug, &[]));
    assert_eq!(f.ready.threads.len(), 5, "default is 4 workers + main");
    drop(f);
    idle(4);
}

#[test]
fn c_threads_idle_1000() {
    idle(1000);
}

#[test]
fn c_threads_idle_4000() {
    idle(4000);
}

#[test]
fn c_condvar_wait() {
    let f = Fixture::spawn_blocked(c_fixture("condvar_wait", Variant::Debug, &[]));
    check_comm_names(&f);
    let cv = Wait::Inside {
        lock: "cond_never",
        size: COND_SIZE,
    };
    check_all(&f, &[("cw0", cv), ("cw1", cv), ("main", JOIN("cw0"))]);
}

#[test]
fn c_sem_wait() {
    let f = Fixture::spawn_blocked(c_fixture("sem_wait", Variant::Debug, &[]));
    check_comm_names(&f);
    // glibc's 64-bit sem_t keeps the value (the futex word) at offset 0.
    let sem = Wait::Inside {
        lock: "sem_never",
        size: 4,
    };
    check_all(&f, &[("sw0", sem), ("sw1", sem), ("main", JOIN("sw0"))]);
}

#[test]
fn c_barrier_wait() {
    let f = Fixture::spawn_blocked(c_fixture("barrier_wait", Variant::Debug, &[]));
    check_comm_names(&f);
    let b = Wait::Inside {
        lock: "barrier_never",
        size: BARRIER_SIZE,
    };
    check_all(&f, &[("bw0", b), ("bw1", b), ("main", JOIN("bw0"))]);
}

#[test]
fn c_long_sleep() {
    let f = Fixture::spawn_blocked(c_fixture("long_sleep", Variant::Debug, &[]));
    check_comm_names(&f);
    check_all(
        &f,
        &[
            ("sleeper", Wait::Syscall(&[SYS_NANOSLEEP, SYS_CLOCK_NANOSLEEP])),
            ("main", JOIN("sleeper")),
        ],
    );
}

#[test]
fn c_seed_concurrent() {
    let f = Fixture::spawn(c_fixture("seed_concurrent", Variant::Debug, &[]));
    check_comm_names(&f);
    f.wait_blocked(&[f.tid("main")]);
    check_wait(&f, "main", &f.sample("main"), JOIN("numbers"));
    // The workers keep printing (to stderr) while main stays in its join.
    let count = |what: &str| f.stderr().matches(what).count();
    let (n0, l0) = (count("Number: "), count("Letter: "));
    wait_until(
        "both workers to print twice more",
        || (count("Number: "), count("Letter: ")),
        |&(n, l)| n >= n0 + 2 && l >= l0 + 2,
    );
    check_wait(&f, "main", &f.sample("main"), JOIN("numbers"));
    assert_eq!(f.stdout_after_ready(), "", "nothing but READY on stdout");
}

// ---- C: healthy and running ---------------------------------------------

/// Wait until every counter of `file` has moved past its first value.
fn wait_all_counters_advance(f: &Fixture, file: &std::path::Path, slots: usize) {
    let first = wait_until("the progress file", || read_progress_u64s(file), |v| v.len() == slots);
    wait_until(
        "every counter to advance",
        || read_progress_u64s(file),
        |now| now.iter().zip(&first).all(|(n, f0)| n > f0),
    );
    assert!(f.stdout_after_ready().is_empty(), "nothing but READY on stdout");
}

#[test]
fn c_busy_progress() {
    let progress = unique_path("busy.progress");
    let p = progress.to_str().unwrap();
    let f = Fixture::spawn(c_fixture("busy", Variant::Debug, &["3", "--progress", p]));
    assert_eq!(f.ready.threads.len(), 4);
    check_comm_names(&f);
    f.wait_blocked(&[f.tid("main")]);
    wait_all_counters_advance(&f, &progress, 3);
    let b0 = f.sample("b0");
    assert!(!b0.is_blocked(), "b0 spins: {b0:?}");
    drop(f);
    std::fs::remove_file(progress).unwrap();
}

#[test]
fn c_contention_progress() {
    let progress = unique_path("contention.progress");
    let p = progress.to_str().unwrap();
    let f = Fixture::spawn(c_fixture("contention", Variant::Debug, &["--progress", p]));
    assert_eq!(f.ready.threads.len(), 9);
    check_comm_names(&f);
    wait_all_counters_advance(&f, &progress, 8);
    // And again: contention never stops progress.
    wait_all_counters_advance(&f, &progress, 8);
    drop(f);
    std::fs::remove_file(progress).unwrap();
}

// ---- Rust -----------------------------------------------------------------

fn rust_fixture(name: &str) -> Fixture {
    let f = Fixture::spawn_blocked(std::process::Command::new(rust_example(name)));
    check_comm_names(&f);
    f
}

#[test]
fn rust_abba() {
    let f = rust_fixture("rust_abba");
    let size = std::mem::size_of::<std::sync::Mutex<u64>>() as u64;
    check_all(
        &f,
        &[
            ("t1", Wait::Inside { lock: "lock_b", size }),
            ("t2", Wait::Inside { lock: "lock_a", size }),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn rust_rwlock_cycle() {
    let f = rust_fixture("rust_rwlock_cycle");
    let size = std::mem::size_of::<std::sync::RwLock<u64>>() as u64;
    check_all(
        &f,
        &[
            ("t1", Wait::Inside { lock: "rw_b", size }),
            ("t2", Wait::Inside { lock: "rw_a", size }),
            ("main", JOIN("t1")),
        ],
    );
}

#[test]
fn rust_idle() {
    let f = rust_fixture("rust_idle");
    let size = std::mem::size_of::<std::sync::Condvar>() as u64;
    let cv = Wait::Inside { lock: "cv", size };
    check_all(&f, &[("cv0", cv), ("cv1", cv), ("main", JOIN("cv0"))]);
}

#[test]
fn rust_join() {
    let f = rust_fixture("rust_join");
    let size = std::mem::size_of::<std::sync::Mutex<u64>>() as u64;
    check_all(
        &f,
        &[("t1", Wait::Inside { lock: "lock_m", size }), ("main", JOIN("t1"))],
    );
}

// ---- Python -----------------------------------------------------------------

/// Run fixture `name` on `py`, wait for every READY thread to block, check
/// READY's "lines" against the source markers (`lines`: thread -> marker),
/// and that every thread is in a futex wait and stays there.
fn python_blocked(py: &Interpreter, name: &str, args: &[&str], lines: &[(&str, &str)], waits: &[(&str, Wait)]) {
    let f = Fixture::spawn_blocked(python_fixture(&py.path, name, args));
    let src = python_source(name);
    for (thread, key) in lines {
        assert_eq!(
            f.ready.lines.get(*thread).copied(),
            Some(marked_line(&src, key)),
            "READY lines.{thread} vs marker @line:{key}"
        );
    }
    check_all(&f, waits);
    assert_eq!(
        f.ready.raw["gil"].as_bool(),
        Some(!py.label.ends_with('t')),
        "gil flag on {}",
        py.label
    );
}

/// All threads in some futex wait (what a Python lock, join or queue looks like).
fn all_futex(names: &[&'static str]) -> Vec<(&'static str, Wait)> {
    names.iter().map(|n| (*n, Wait::AnyFutex)).collect()
}

#[test]
fn py_seed_two_locks_with() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(
            py,
            "seed_two_locks_with.py",
            &[],
            &[("t1", "t1"), ("t2", "t2"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_seed_debug_logging() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(py, "seed_debug_logging.py", &[], &[("t1", "wait"), ("t2", "wait")], &w);
    });
}

#[test]
fn py_seed_recursive_traverse_selflock() {
    for_each_python(|py| {
        let w = all_futex(&["main"]);
        python_blocked(py, "seed_recursive_traverse_selflock.py", &[], &[("main", "main")], &w);
    });
}

#[test]
fn py_seed_lock1_lock2() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(
            py,
            "seed_lock1_lock2.py",
            &[],
            &[("t1", "t1"), ("t2", "t2"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_seed_explicit_acquire() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(
            py,
            "seed_explicit_acquire.py",
            &[],
            &[("t1", "t1"), ("t2", "t2"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_explicit_acquire_warm() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(
            py,
            "explicit_acquire_warm.py",
            &[],
            &[("t1", "wait"), ("t2", "wait"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_lock_ring3() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "t3", "main"]);
        let lines = [("t1", "wait"), ("t2", "wait"), ("t3", "wait"), ("main", "main")];
        python_blocked(py, "lock_ring3.py", &[], &lines, &w);
    });
}

#[test]
fn py_rlock_cycle() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(
            py,
            "rlock_cycle.py",
            &[],
            &[("t1", "t1"), ("t2", "t2"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_mixed_lock_rlock_cycle() {
    for_each_python(|py| {
        let w = all_futex(&["t1", "t2", "main"]);
        python_blocked(
            py,
            "mixed_lock_rlock_cycle.py",
            &[],
            &[("t1", "t1"), ("t2", "t2"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_condition_misuse() {
    for_each_python(|py| {
        let w = all_futex(&["consumer", "main"]);
        python_blocked(
            py,
            "condition_misuse.py",
            &[],
            &[("consumer", "consumer"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_gil_native_deadlock() {
    let lib = build_shared_lib("gil_helper");
    let lib = lib.to_str().unwrap();
    for_each_python(|py| {
        let f = Fixture::spawn(python_fixture(&py.path, "gil_native_deadlock.py", &[lib]));
        let gil = f.ready.raw["gil"].as_bool().expect("READY gil flag");
        assert_eq!(gil, !py.label.ends_with('t'), "gil flag on {}", py.label);
        let src = python_source("gil_native_deadlock.py");
        let holder_key = if gil {
            "native_holder_gil"
        } else {
            "native_holder_nogil"
        };
        assert_eq!(f.ready.lines["gil_holder"], marked_line(&src, "gil_holder"));
        assert_eq!(f.ready.lines["native_holder"], marked_line(&src, holder_key));

        // gil_holder sleeps on the C mutex, which native_holder owns
        // (glibc __owner: exact), whatever the build.
        f.wait_blocked(&[f.tid("gil_holder")]);
        let holder = M("native_lock", "native_holder");
        check_wait(&f, "gil_holder", &f.sample("gil_holder"), holder);
        if gil {
            // native_holder waits for the GIL: a timed condvar wait it wakes
            // from every few ms to ask for the GIL again. It never gets past
            // it: whenever it is in a syscall, it is a futex wait on the same
            // word.
            let mut addrs = BTreeSet::new();
            for _ in 0..200 {
                let s = f.sample("native_holder");
                if let Some(fx) = s.futex() {
                    assert!(fx.is_wait(), "native_holder: {s:?}");
                    addrs.insert(fx.addr);
                } else {
                    assert!(
                        matches!(s.syscall, lockdump::test_support::proc::SyscallLine::Running),
                        "native_holder outside futex: {s:?}"
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                addrs.len(),
                1,
                "native_holder waits on one word (the GIL's): {addrs:x?}"
            );
            let later = f.assert_stays_blocked(&["gil_holder"], STAY);
            check_wait(&f, "gil_holder", &later["gil_holder"], holder);
        } else {
            f.wait_all_blocked();
            check_all(
                &f,
                &[
                    ("gil_holder", holder),
                    ("native_holder", Wait::AnyFutex),
                    ("main", Wait::AnyFutex),
                ],
            );
        }
    });
}

#[test]
fn py_condition_gil_wait() {
    let lib = build_shared_lib("gil_helper");
    let lib = lib.to_str().unwrap();
    for_each_python(|py| {
        let f = Fixture::spawn(python_fixture(&py.path, "condition_gil_wait.py", &[lib]));
        let gil = f.ready.raw["gil"].as_bool().expect("READY gil flag");
        assert_eq!(gil, !py.label.ends_with('t'), "gil flag on {}", py.label);
        let src = python_source("condition_gil_wait.py");
        assert_eq!(f.ready.lines["waiter"], marked_line(&src, "waiter"));
        assert_eq!(f.ready.lines["main"], marked_line(&src, "main"));
        // main sleeps on the C mutex (native_owner's), holding the GIL;
        // native_owner in Event.wait; waiter, with a GIL, sleeps for good
        // waiting for it (the switch interval is 1000 s); without, it exits.
        let mut expect = vec![
            ("main", M("native_lock", "native_owner")),
            ("native_owner", Wait::AnyFutex),
        ];
        if gil {
            expect.push(("waiter", Wait::AnyFutex));
            f.wait_all_blocked();
        } else {
            f.wait_blocked(&[f.tid("main"), f.tid("native_owner")]);
            let waiter = f.tid("waiter");
            wait_until("waiter to exit", || task_exists(f.pid(), waiter), |e| !e);
        }
        if gil {
            check_all(&f, &expect);
        } else {
            for (name, wait) in expect {
                check_wait(&f, name, &f.sample(name), wait);
            }
        }
        if gil {
            // Not the same futex as the others: the GIL's.
            let w = f.sample("waiter").futex().expect("waiter in futex");
            assert_ne!(w.addr, f.lock("native_lock"));
        }
    });
}

#[test]
fn py_healthy_event() {
    for_each_python(|py| {
        let w = all_futex(&["ev0", "ev1", "timer", "main"]);
        python_blocked(
            py,
            "healthy_event.py",
            &[],
            &[("ev0", "wait"), ("ev1", "wait"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_healthy_queue() {
    for_each_python(|py| {
        let sleep = Wait::Syscall(&[SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, 7, 23, 270]);
        let mut w = all_futex(&["c0", "c1", "main"]);
        w.push(("producer", sleep));
        python_blocked(
            py,
            "healthy_queue.py",
            &[],
            &[("c0", "get"), ("c1", "get"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_stuck_waits() {
    for case in ["lock_left", "queue_join"] {
        for_each_python(|py| {
            python_blocked(py, "stuck_waits.py", &[case], &[("main", case)], &all_futex(&["main"]));
        });
    }
}

#[test]
fn py_daemon_event() {
    for_each_python(|py| {
        python_blocked(
            py,
            "daemon_event.py",
            &[],
            &[("main", "main"), ("w0", "worker"), ("w1", "worker")],
            &all_futex(&["main", "w0", "w1"]),
        );
    });
}

#[test]
fn py_healthy_join() {
    for_each_python(|py| {
        // time.sleep: clock_nanosleep on 3.11+ (select() on builds without it).
        let sleep = Wait::Syscall(&[SYS_CLOCK_NANOSLEEP, SYS_NANOSLEEP, 7, 23, 270]);
        let w = [("s0", sleep), ("s1", sleep), ("main", Wait::AnyFutex)];
        python_blocked(
            py,
            "healthy_join.py",
            &[],
            &[("s0", "sleep"), ("s1", "sleep"), ("main", "main")],
            &w,
        );
    });
}

#[test]
fn py_healthy_contention() {
    for_each_python(|py| {
        let progress = unique_path(&format!("py-contention-{}.progress", py.label));
        let p = progress.to_str().unwrap();
        let f = Fixture::spawn(python_fixture(&py.path, "healthy_contention.py", &["--progress", p]));
        assert_eq!(f.ready.threads.len(), 9, "w0..w7 and main");
        let read = || -> Option<u64> { std::fs::read_to_string(&progress).ok()?.trim().parse().ok() };
        let first = wait_until("the progress file", read, Option::is_some).unwrap();
        wait_until("the total to grow", read, |v| v.is_some_and(|n| n > first + 1000));
        assert_eq!(f.stdout_after_ready(), "", "nothing but READY on stdout");
        drop(f);
        let _ = std::fs::remove_file(&progress);
    });
}

// ---- the harness itself -----------------------------------------------------

#[test]
fn ready_line_parsing() {
    let r = Ready::parse(r#"{"threads": {"main": 10, "t1": 11}, "locks": {"lock_a": "0x5600"}, "pid": 10}"#).unwrap();
    assert_eq!((r.pid, r.tid("t1"), r.lock("lock_a")), (10, 11, 0x5600));
    assert!(r.pids.is_empty() && r.lines.is_empty());
    let r = Ready::parse(r#"{"threads": {}, "locks": {}, "pids": {"child": 7}, "lines": {"t": 3}, "pid": 1}"#).unwrap();
    assert_eq!((r.pids["child"], r.lines["t"]), (7, 3));
    for bad in [
        "",
        "[]",
        r#"{"threads": {}, "locks": {}}"#,
        r#"{"threads": {"t": "x"}, "locks": {}, "pid": 1}"#,
        r#"{"threads": {}, "locks": {"a": "5600"}, "pid": 1}"#,
        r#"{"threads": {}, "locks": {"a": 5600}, "pid": 1}"#,
        r#"{"locks": {}, "pid": 1}"#,
    ] {
        assert!(Ready::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn markers_resolve_to_one_line() {
    let dir = unique_path("markers");
    std::fs::write(&dir, "a\nb // @line:t1\nc # @line:t10\n").unwrap();
    assert_eq!(marked_line(&dir, "t1"), 2);
    assert_eq!(marked_line(&dir, "t10"), 3);
    assert!(std::panic::catch_unwind(|| marked_line(&dir, "t")).is_err());
    std::fs::remove_file(dir).unwrap();
}
