//! Property-based fuzzing of the cycle finder (runs on stable, in CI with the
//! default case count; `PROPTEST_CASES=100000 cargo test --release --test
//! fuzz_graph` for a long run).
//!
//! Each thread waits on at most one lock, so the wait-for graph is a
//! functional graph whose cycles an independent, trivially correct walk can
//! list. The finder must report exactly those cycles, each in edge order,
//! the same whatever order the threads come in, with every edge backed by an
//! input wait, and never panic.

use std::collections::BTreeSet;

use lockdump::test_support::graph::analyze;
use lockdump::test_support::ids::{Addr, Pid, Tid};
use lockdump::test_support::runtimes::{Confidence, Owner, Resource, ResourceKind, ThreadFindings, Wait};
use proptest::prelude::*;

const PID: i32 = 4242;

fn waits_for(owner: i32, recursive: bool) -> ThreadFindings {
    ThreadFindings {
        wait: Some(Wait {
            resource: Resource {
                kind: if recursive {
                    ResourceKind::RecursiveMutex
                } else {
                    ResourceKind::Mutex
                },
                address: Addr(0x1000 + owner as u64 * 0x40),
                pid: Pid(PID),
                name: None,
                shared_key: None,
            },
            owner: Owner::held_by(Pid(PID), Tid(owner), Confidence::Exact, format!("__owner = {owner}")),
            how: "pthread_mutex_lock".into(),
            site_frame: None,
            ends: lockdump::test_support::runtimes::Ends::WITH_CALL,
        }),
        holds: vec![],
        blocked_in: None,
        sleep: Default::default(),
    }
}

/// The cycles of a functional graph (`next[i]` = whom thread i waits for), as
/// sets of TIDs, found by walking from every node.
fn expected_cycles(next: &[Option<usize>], tid: impl Fn(usize) -> i32) -> BTreeSet<BTreeSet<i32>> {
    let mut cycles = BTreeSet::new();
    for start in 0..next.len() {
        let mut seen = Vec::new();
        let mut at = start;
        while let Some(n) = next[at] {
            if let Some(pos) = seen.iter().position(|&s| s == at) {
                cycles.insert(seen[pos..].iter().map(|&i| tid(i)).collect());
                break;
            }
            seen.push(at);
            at = n;
        }
        if let Some(pos) = seen.iter().position(|&s| s == at) {
            cycles.insert(seen[pos..].iter().map(|&i| tid(i)).collect());
        }
    }
    cycles
}

proptest! {
    #[test]
    fn finds_exactly_the_cycles(
        targets in proptest::collection::vec(proptest::option::weighted(0.8, 0usize..40), 1..40),
        recursive in proptest::collection::vec(any::<bool>(), 40),
        rotate in 0usize..40,
    ) {
        let n = targets.len();
        let next: Vec<Option<usize>> = targets.iter().map(|t| t.map(|x| x % n)).collect();
        let tid = |i: usize| 1000 + i as i32;
        // A recursive mutex waited on by its own holder is a re-entry, not a
        // wait: such a self-loop is not an input edge at all.
        let findings: Vec<ThreadFindings> = (0..n)
            .map(|i| match next[i] {
                Some(j) if !(j == i && recursive[i]) => waits_for(tid(j), recursive[i]),
                _ => ThreadFindings::default(),
            })
            .collect();
        let effective: Vec<Option<usize>> =
            (0..n).map(|i| next[i].filter(|&j| !(j == i && recursive[i]))).collect();

        let v = analyze((0..n).map(|i| (Pid(PID), Tid(tid(i)), &findings[i])));
        let found: BTreeSet<BTreeSet<i32>> =
            v.deadlocks.iter().map(|d| d.threads.iter().map(|t| t.tid.get()).collect()).collect();
        prop_assert_eq!(&found, &expected_cycles(&effective, tid));
        for d in &v.deadlocks {
            prop_assert_eq!(d.threads.len(), d.edges.len());
            prop_assert_eq!(d.threads.iter().min(), d.threads.first(), "cycles start at the lowest thread");
            for (k, e) in d.edges.iter().enumerate() {
                prop_assert_eq!(e.from, d.threads[k]);
                prop_assert_eq!(e.to, d.threads[(k + 1) % d.threads.len()]);
                let i = (e.from.tid.get() - 1000) as usize;
                prop_assert_eq!(effective[i].map(tid), Some(e.to.tid.get()), "edge not backed by an input wait");
            }
        }
        // The same verdict whatever order the threads are given in.
        let r = rotate % n;
        let order: Vec<usize> = (r..n).chain(0..r).collect();
        let again = analyze(order.iter().map(|&i| (Pid(PID), Tid(tid(i)), &findings[i])));
        prop_assert_eq!(again, v);
    }
}
