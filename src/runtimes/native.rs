//! Native waits of a process: the C library's (glibc or musl) and Rust std's together.
//!
//! Both analyzers look at the same futex waits; each claims only what it
//! recognizes. This module merges their findings per thread: a recognized
//! lock wait wins over a bare futex, holds are combined, and a futex wait
//! nobody recognizes is still reported (as a [`ResourceKind::Futex`] with no
//! owner) so that the report names the address a thread sleeps on.

use super::libc::{self, LibcInfo};
use super::owners::{self, TaskTable};
use super::{frames, ResourceKind};
use super::{glibc, musl, parking_lot, rust_std, Owner, ProcessView, ThreadFindings, Wait};
use crate::stacks::Stack;

/// glibc and Rust std findings for every thread, parallel to `view.snapshot.threads`.
pub fn analyze(view: &ProcessView<'_>) -> Vec<ThreadFindings> {
    let libc = libc::detect(view.snapshot, view.memory);
    analyze_for(view, &libc)
}

/// [`analyze`] for a process whose C library is already known: musl's
/// analyzer for musl, glibc's otherwise (also when the library is unknown,
/// as before libc detection existed: glibc's readers check every field they
/// rely on, and the report notes that the library was not identified).
pub fn analyze_for(view: &ProcessView<'_>, libc: &LibcInfo) -> Vec<ThreadFindings> {
    analyze_with_libc(view, owners::task_table(view.snapshot), libc)
}

/// [`analyze`] with an explicit table of tasks outside the snapshot (glibc).
pub fn analyze_with(view: &ProcessView<'_>, tasks: &dyn TaskTable) -> Vec<ThreadFindings> {
    analyze_with_libc(view, tasks, &LibcInfo::glibc_assumed())
}

fn analyze_with_libc(view: &ProcessView<'_>, tasks: &dyn TaskTable, libc: &LibcInfo) -> Vec<ThreadFindings> {
    let g = if libc.is_musl() {
        musl::analyze_with(view, tasks)
    } else {
        glibc::analyze_with(view, tasks)
    };
    let r = rust_std::analyze(view);
    let pl = parking_lot::analyze(view);
    let empty = Stack::default();
    g.into_iter()
        .zip(r)
        .zip(pl)
        .enumerate()
        .map(|(i, ((g, r), pl))| {
            let mut merged = merge(g, r);
            if let Some(pl) = pl {
                // A parked thread's futex word is its own: parking_lot's
                // reading of it wins over a bare futex.
                let claimed = pl.blocked_in.is_some();
                merged = merge(pl, merged);
                if claimed {
                    return merged;
                }
            }
            if merged.wait.is_none() {
                merged.wait = unrecognized_futex(view, i, view.stacks.get(i).unwrap_or(&empty));
                if merged.wait.is_some() {
                    merged.blocked_in = None;
                }
            }
            merged
        })
        .collect()
}

/// Combine two analyzers' findings for one thread; `a` wins ties.
pub fn merge(a: ThreadFindings, b: ThreadFindings) -> ThreadFindings {
    let wait = match (a.wait, b.wait) {
        (Some(x), Some(y)) if x.resource.kind == ResourceKind::Futex && y.resource.kind != ResourceKind::Futex => {
            Some(y)
        }
        (Some(x), _) => Some(x),
        (None, y) => y,
    };
    let mut holds = a.holds;
    for h in b.holds {
        if !holds
            .iter()
            .any(|x| x.resource.address == h.resource.address && x.resource.pid == h.resource.pid)
        {
            holds.push(h);
        }
    }
    let blocked_in = if wait.is_some() {
        None
    } else {
        a.blocked_in.or(b.blocked_in)
    };
    ThreadFindings {
        sleep: Default::default(),
        wait,
        holds,
        blocked_in,
    }
}

/// The owner evidence of a futex wait no analyzer recognized.
pub const UNRECOGNIZED: &str = "a futex whose owner protocol lockdump does not know";

fn unrecognized_futex(view: &ProcessView<'_>, i: usize, stack: &Stack) -> Option<Wait> {
    let w = view.futex(i)?;
    Some(Wait {
        resource: owners::resource_at(view, ResourceKind::Futex, w.addr),
        owner: Owner::unknown(UNRECOGNIZED),
        how: w.describe(),
        site_frame: frames::site_frame(stack),
        ends: crate::runtimes::Ends::WITH_CALL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};
    use crate::runtimes::owners::testing::{futex, snapshot, thread, Symbols};
    use crate::runtimes::owners::NoTasks;
    use crate::runtimes::Confidence;

    #[test]
    fn glibc_rust_and_unknown_futexes_side_by_side() {
        // 0x5000: glibc mutex owned by thread 3; 0x5100: Rust mutex; 0x5200: some other futex.
        let mut bytes = vec![0u8; 0x300];
        bytes[0..4].copy_from_slice(&2u32.to_le_bytes());
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&1u32.to_le_bytes());
        bytes[0x100..0x104].copy_from_slice(&2u32.to_le_bytes());
        bytes[0x200..0x204].copy_from_slice(&9u32.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![CopiedRegion { start: 0x5000, bytes }],
        };
        let snap = snapshot(
            4,
            vec![
                thread(1, futex(0x5000, 128, 2), 0),
                thread(2, futex(0x5100, 137, 2), 0),
                thread(3, futex(0x5200, 137, 9), 0),
            ],
            vec![],
        );
        let syms = Symbols::default();
        let view = ProcessView {
            snapshot: &snap,
            stacks: &[],
            memory: &mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
            symbols: &syms,
        };
        let out = analyze_with(&view, &NoTasks);
        let kinds: Vec<ResourceKind> = out.iter().map(|f| f.wait.as_ref().unwrap().resource.kind).collect();
        assert_eq!(
            kinds,
            vec![ResourceKind::Mutex, ResourceKind::RustMutex, ResourceKind::Futex]
        );
        assert_eq!(out[0].wait.as_ref().unwrap().owner.confidence(), Confidence::Exact);
        assert_eq!(
            out[2].wait.as_ref().unwrap().how,
            "futex(0x5200, FUTEX_WAIT_BITSET_PRIVATE, 9)"
        );
        assert!(out.iter().all(|f| f.blocked_in.is_none()));
        assert_eq!(out[2].holds.len(), 1, "thread 3 holds the glibc mutex");
    }

    /// glibc's analyzer, then the native one (glibc's, Rust's and the stack
    /// scan together), over memory and syscall arguments that are garbage.
    #[test]
    fn garbage_memory_and_arguments_never_panic() {
        use crate::runtimes::frames::testing::stack;
        // glibc's tests' memory image and PID.
        const BASE: u64 = 0x10000;
        const PID: i32 = 10;
        // A small deterministic generator: memory and syscall arguments drawn from it.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let mut img = vec![0u8; 0x10000];
            for chunk in img.chunks_mut(8) {
                let v = next();
                // Bias toward small values and in-image pointers.
                let v = match v % 4 {
                    0 => v % 16,
                    1 => BASE + (v % 0x10000),
                    2 => v & 0xffff_ffff,
                    _ => v,
                };
                chunk.copy_from_slice(&v.to_le_bytes());
            }
            let ops = [0u64, 128, 9, 137, 393, 265, 6, 134, 13, 11, 1, 0xffff_ffff];
            let threads = (0..4)
                .map(|k| {
                    let addr = (BASE + next() % 0x10000) & !3;
                    let op = ops[(next() % ops.len() as u64) as usize];
                    let val = next() % 8;
                    let fs = match k {
                        0 => BASE + (next() % 0xf000),
                        1 => u64::MAX - (next() % 0x1000),
                        _ => 0,
                    };
                    let mut t = thread(20 + k, futex(addr, op, val), fs);
                    t.regs.rsp = if k == 2 { u64::MAX - 3 } else { next() };
                    t
                })
                .collect();
            let snap = snapshot(PID, threads, vec![]);
            let names = [
                "___pthread_mutex_lock",
                "pthread_rwlock_rdlock",
                "pthread_join",
                "sem_wait",
                "pthread_cond_wait",
                "pthread_barrier_wait",
            ];
            let stacks: Vec<Stack> = (0..4)
                .map(|k| {
                    if round % 2 == 0 {
                        stack(&[(names[(k + round) % names.len()], "libc.so.6")])
                    } else {
                        Stack::default()
                    }
                })
                .collect();
            let mem = BufferMemory {
                regions: vec![CopiedRegion {
                    start: BASE,
                    bytes: img.clone(),
                }],
            };
            let syms = Symbols::default();
            let view = ProcessView {
                snapshot: &snap,
                stacks: &stacks,
                memory: &mem,
                calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
                symbols: &syms,
            };
            let out = glibc::analyze_with(&view, &NoTasks);
            assert_eq!(out.len(), 4);
            // The Rust analyzer and the stack scan over the same garbage, with garbage stacks.
            let mut snap = snap;
            for t in &mut snap.threads {
                t.stack = CopiedRegion {
                    start: t.regs.rsp.min(u64::MAX - 0x100) & !7,
                    bytes: (0..32).flat_map(|_| (BASE + next() % 0x10000).to_le_bytes()).collect(),
                };
            }
            let mem = BufferMemory {
                regions: vec![CopiedRegion {
                    start: BASE,
                    bytes: img.clone(),
                }],
            };
            let view = ProcessView {
                snapshot: &snap,
                stacks: &stacks,
                memory: &mem,
                calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
                symbols: &syms,
            };
            assert_eq!(analyze_with(&view, &NoTasks).len(), 4);
        }
    }
}
