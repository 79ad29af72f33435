//! What the graph needs from each process beyond its threads' findings:
//! the processes that could end a pipe, socket or child wait (asked of the
//! live target), asyncio awaits, what a waited-behind thread is doing, and
//! the multiprocessing locks shared across processes.

use super::Inspection;
use crate::graph::{self, Verdict};
use crate::ids::{Pid, Tid};
use crate::live::fds::{Blocked, OtherEnd};
use crate::runtimes::syscalls::Call;
use crate::runtimes::ResourceKind;

/// For each thread waiting for input that only known processes can give —
/// reading a pipe, writing to a full one, or waiting for a child — those processes (read from
/// /proc now, after the capture). The asleep-for-good rule then asks
/// whether any of them can still act.
pub(super) fn peers_of(ins: &Inspection) -> std::collections::BTreeMap<Tid, graph::Peers> {
    let pid = ins.snapshot.pid;
    let mut out = std::collections::BTreeMap::new();
    // A core's PID is no process to look at.
    let Some(live) = ins.snapshot.live() else {
        return out;
    };
    // Every fd a thread reads or writes, looked up in one pass over the fd tables.
    let on_fd = |call: &Call| match *call {
        Call::ReadFd { fd } => Some(Blocked::Read(fd)),
        Call::WriteFd { fd } => Some(Blocked::Write(fd)),
        _ => None,
    };
    let waiting_for_input = || {
        ins.snapshot
            .threads
            .iter()
            .zip(&ins.findings)
            .zip(&ins.calls)
            .filter(|((_, f), _)| matches!(f.sleep, crate::runtimes::Sleep::Input { .. }))
            .map(|((t, _), call)| (t, call))
    };
    let on_fds: Vec<Blocked> = waiting_for_input().filter_map(|(_, call)| on_fd(call)).collect();
    let ends = if on_fds.is_empty() {
        Default::default()
    } else {
        crate::live::fds::other_ends(live, &on_fds)
    };
    let mut children: Option<Vec<i32>> = None;
    // The target sees its own PID namespace: a PID argument is comparable
    // with host PIDs only when it runs in ours.
    let same_ns = ins.snapshot.ns_pid == pid.get();
    for (t, call) in waiting_for_input() {
        let peers = match (on_fd(call), call) {
            (Some(on), _) => {
                let Some((end, pids)) = ends.get(&on).cloned() else {
                    continue;
                };
                let (Blocked::Read(fd) | Blocked::Write(fd)) = on;
                graph::Peers {
                    what: format!("{} (fd {fd})", end.describe()),
                    pids: pids.into_iter().map(Pid).collect(),
                    kind: match end {
                        OtherEnd::PipeWriters(_) => graph::PeerKind::Writers,
                        OtherEnd::PipeReaders(_) => graph::PeerKind::Readers,
                        OtherEnd::UnixPeer(..) => graph::PeerKind::SocketPeers,
                    },
                }
            }
            (None, &Call::WaitChild { pid: one }) => {
                let all = children.get_or_insert_with(|| crate::live::fds::children(live)).clone();
                let pids = match one {
                    Some(c) if same_ns && all.contains(&c) => vec![c],
                    Some(_) if !same_ns => continue,
                    Some(_) => continue, // not its child: the call fails at once
                    None => all,
                };
                if pids.is_empty() {
                    continue;
                }
                graph::Peers {
                    what: match one {
                        Some(c) => format!("child PID {c}"),
                        None => format!("its children (PIDs {})", join_pids(&pids)),
                    },
                    pids: pids.into_iter().map(Pid).collect(),
                    kind: graph::PeerKind::Children,
                }
            }
            _ => continue,
        };
        out.insert(t.tid, peers);
    }
    out
}

pub(super) fn join_pids(pids: &[i32]) -> String {
    pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
}

/// A process's tasks with its threads' names and timeouts, for the
/// cycles through tasks and threads ([`graph::awaits`]).
pub(super) fn process_awaits(ins: &Inspection) -> Option<graph::awaits::ProcessAwaits<'_>> {
    let state = ins.asyncio.as_ref()?;
    let mut thread_names = std::collections::HashMap::new();
    let mut thread_timeouts = std::collections::HashMap::new();
    for (i, t) in ins.snapshot.threads.iter().enumerate() {
        let name = ins
            .python_names
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or_else(|| t.name.clone());
        thread_names.insert(t.tid, name);
        if ins.findings[i]
            .wait
            .as_ref()
            .is_some_and(|w| w.ends.by_itself().is_some())
        {
            thread_timeouts.insert(t.tid, "its wait has a timeout".to_string());
        }
    }
    Some(graph::awaits::ProcessAwaits {
        pid: ins.snapshot.pid,
        state,
        thread_names,
        thread_timeouts,
    })
}

/// What each thread others wait behind is doing, with the fd it waits on
/// described (a socket by its addresses and the process at the other end).
pub(super) fn describe_waited_behind(inspections: &[Inspection], v: &mut Verdict) {
    for w in &mut v.waiting_behind {
        let graph::ThreadId { pid, tid } = w.thread;
        let Some(ins) = inspections.iter().find(|i| i.snapshot.pid == pid) else {
            continue;
        };
        let Some(i) = ins.snapshot.thread_index(tid) else {
            continue;
        };
        let t = &ins.snapshot.threads[i];
        let live = ins.snapshot.live();
        w.doing = Some(match (&t.syscall, t.running()) {
            (_, true) => "is running (on a CPU, or runnable)".to_string(),
            (Some(sys), _) => {
                let mut s = format!("is in {}", crate::syscalls::describe(sys));
                // What the fd is can only be asked of a live process.
                let fd = live.and_then(|l| crate::syscalls::waited_fd(sys).and_then(|fd| l.fd_description(fd)));
                if let Some(fd) = fd {
                    s.push_str(&format!(" — {fd}"));
                }
                s
            }
            (None, _) => format!("is in state {}", t.state),
        });
    }
}

/// A lock in shared memory waited for by a thread of one inspected process
/// and owned by a thread of another: the owner's findings only saw its own
/// process's waits, so it did not list the lock among what it holds. Added
/// after the verdict (which does not use holds across processes), for the
/// reports' per-thread `holds`.
/// A `multiprocessing` lock shared by several inspected processes has one
/// semaphore in one shared mapping, and a SemLock object in each process:
/// the holder's process records the holder (`cpython::semlocks`), the
/// waiter's sees count 0. The waiter's wait gets the holder that another
/// process's hold on the same mapping names.
pub(super) fn own_shared_mp_locks(inspections: &mut [Inspection]) {
    let mut owners: Vec<(usize, usize, crate::runtimes::Owner)> = Vec::new();
    for (a, ins) in inspections.iter().enumerate() {
        for (i, f) in ins.findings.iter().enumerate() {
            let Some(w) = &f.wait else { continue };
            let Some(key) = w.resource.shared_key else { continue };
            if w.resource.kind != ResourceKind::PyMpLock || w.owner.tid().is_some() {
                continue;
            }
            let held = inspections
                .iter()
                .filter(|b| b.snapshot.pid != ins.snapshot.pid)
                .find_map(|b| {
                    b.findings.iter().zip(&b.snapshot.threads).find_map(|(g, t)| {
                        g.holds
                            .iter()
                            .find(|h| h.resource.kind == ResourceKind::PyMpLock && h.resource.shared_key == Some(key))
                            .map(|h| {
                                crate::runtimes::Owner::held_by(
                                    b.snapshot.pid,
                                    t.tid,
                                    h.confidence,
                                    format!("{} in PID {}", h.evidence, b.snapshot.pid),
                                )
                            })
                    })
                });
            if let Some(o) = held {
                owners.push((a, i, o));
            }
        }
    }
    for (a, i, o) in owners {
        if let Some(w) = inspections[a].findings[i].wait.as_mut() {
            w.owner = o;
        }
    }
}

pub(super) fn add_cross_process_holds(inspections: &mut [Inspection]) {
    let mut found: Vec<(usize, usize, crate::runtimes::Hold)> = Vec::new();
    for ins in inspections.iter() {
        for (i, f) in ins.findings.iter().enumerate() {
            let Some(w) = &f.wait else { continue };
            let Some(crate::graph::ThreadId { pid: opid, tid: otid }) = w.owner.thread() else {
                continue;
            };
            if opid == ins.snapshot.pid {
                continue;
            }
            let Some(k) = inspections.iter().position(|x| x.snapshot.pid == opid) else {
                continue;
            };
            let Some(j) = inspections[k].snapshot.thread_index(otid) else {
                continue;
            };
            found.push((
                k,
                j,
                crate::runtimes::Hold {
                    resource: w.resource.clone(),
                    confidence: w.owner.confidence(),
                    evidence: format!(
                        "{} (thread {} of PID {} waits for it)",
                        w.owner.evidence(),
                        ins.snapshot.threads[i].tid,
                        ins.snapshot.pid
                    ),
                    site_frame: None,
                },
            ));
        }
    }
    for (k, j, h) in found {
        crate::runtimes::owners::merge_holds(&mut inspections[k].findings, vec![(j, h)]);
    }
}
