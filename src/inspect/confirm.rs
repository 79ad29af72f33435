//! Re-confirmation with the live target: a verdict that rests on waits
//! having lasted (a cycle whose evidence was not read at one instant, a
//! stuck process, a starved pool) is checked against the live process
//! before it is reported, through `Live` and `capture::recheck`. A core
//! file is one instant: its threads are never looked at again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::Inspection;
use crate::capture::{SyscallState, SYS_RESTART_SYSCALL};
use crate::graph::{self, Verdict};
use crate::ids::{Pid, Tid};
use crate::live::{Live, Looks};
use crate::proc::SyscallLine;
use crate::runtimes::{Owner, ResourceKind};

/// A starved pool rests on one instant too, and its futures and queue are
/// read after the threads were let go: its workers must stay still (as for
/// [`confirm_stuck`]) or the starvation is dropped.
pub(super) fn confirm_starvations(inspections: &[Inspection], v: &mut Verdict) {
    v.pool_starvations.retain(|s| {
        if !is_live(inspections, s.pool.pid) {
            return true; // a core is one instant: nothing moves
        }
        let workers = graph::Stuck {
            pid: s.pool.pid,
            whole_process: false,
            threads: s.workers.clone(),
        };
        (0..STUCK_CONFIRM_WINDOWS).any(|_| moved_in_window(inspections, &[&workers], Vec::new())[0].is_empty())
    });
}

/// How long a stuck process must stay perfectly still before it is reported.
pub const STUCK_CONFIRM: Duration = Duration::from_millis(50);

/// A stuck verdict rests on one instant: a busy process whose threads
/// contend for locks can be caught with every thread in a futex wait, and
/// its Python evidence is read after the threads were let go. So every
/// thread of a stuck process (or every listed thread, for threads behind an
/// orphaned lock) must, over [`STUCK_CONFIRM`], not run at all (same
/// context-switch count) and stay in the system call it was captured in
/// (same number and first argument; a capture interrupted timed call may
/// show as restart_syscall). GIL waiters are exempt from the count: they
/// wake every 5 ms by design. A thread that moved clears the verdict for its
/// process: it is reported as not asleep for good, with that reason.
pub(super) fn confirm_stuck(inspections: &[Inspection], v: &mut Verdict, mut first: Vec<FirstLooks>) {
    if v.stuck.is_empty() {
        return;
    }
    // A core is one instant: there is nothing to watch (and its PID may
    // now be an unrelated live process).
    let mut pending: Vec<&graph::Stuck> = v.stuck.iter().filter(|s| is_live(inspections, s.pid)).collect();
    // A thread just let go by the capture may still be on its way back into
    // its wait (runnable on a loaded machine): a few windows, and one in
    // which nothing of a process moved is enough for it. All processes of a
    // tree share each window, so ten stuck processes cost one window, not ten.
    let mut last: Vec<Vec<graph::ThreadId>> = Vec::new();
    for _ in 0..STUCK_CONFIRM_WINDOWS {
        if pending.is_empty() {
            break;
        }
        last = moved_in_window(inspections, &pending, std::mem::take(&mut first));
        let still: Vec<usize> = (0..pending.len()).filter(|&k| !last[k].is_empty()).collect();
        pending = still.iter().map(|&k| pending[k]).collect();
        last = still.into_iter().map(|k| std::mem::take(&mut last[k])).collect();
    }
    let moved: Vec<graph::ThreadId> = last.into_iter().flatten().collect();
    if moved.is_empty() {
        return;
    }
    let pids: std::collections::BTreeSet<Pid> = moved.iter().map(|m| m.pid).collect();
    v.stuck.retain(|s| !pids.contains(&s.pid));
    v.process_cycles
        .retain(|c| !c.threads.iter().any(|t| pids.contains(&t.pid)));
    for a in v.asleep.iter_mut().filter(|a| pids.contains(&a.thread.pid)) {
        if a.asleep_for_good {
            a.asleep_for_good = false;
            a.why = if moved.contains(&a.thread) {
                "it ran (or left its wait) while lockdump confirmed the process was stuck: it is not".into()
            } else {
                "another thread of the process ran while lockdump confirmed it was stuck: it is not".into()
            };
        }
    }
}

/// Whether `pid` is an inspected live process (not a core file's).
pub(super) fn is_live(inspections: &[Inspection], pid: Pid) -> bool {
    inspections
        .iter()
        .any(|i| i.snapshot.pid == pid && i.snapshot.live().is_some())
}

/// Windows of [`STUCK_CONFIRM`] tried before a stuck verdict is dropped.
pub(super) const STUCK_CONFIRM_WINDOWS: usize = 5;

/// For each of `stucks`, the threads that ran or left their captured call
/// during one shared window of [`STUCK_CONFIRM`] (and any thread that appeared).
///
/// Each thread is looked at twice: its status (state and context switches)
/// and then its system call before the window, its status after. A thread
/// that slept (state S) at both looks with the same count of switches did
/// not run in between, so it is still in the call seen before the window
/// (read after the first count: had it run between the two reads, the
/// second count would differ) and its call need not be read again. A GIL
/// waiter wakes every 5 ms by design: for it only the call counts, read at
/// both looks. The files are kept open between the looks ([`Looks`]), and
/// a large process's threads are looked at by several readers at once
/// ([`Readers`]): 10,000 threads are 30,000 reads around the window.
///
/// When every listed thread's first look was taken during the analysis
/// ([`FirstLooks`]), those are the looks before the window, and only what
/// is left of [`STUCK_CONFIRM`] since they ended is waited for.
pub(super) fn moved_in_window(
    inspections: &[Inspection],
    stucks: &[&graph::Stuck],
    first: Vec<FirstLooks>,
) -> Vec<Vec<graph::ThreadId>> {
    // Only threads of live processes can be looked at again; and only those
    // of an inspected process, whose capture says what they were in.
    let listed: Vec<Vec<Listed>> = stucks
        .iter()
        .map(|s| {
            s.threads
                .iter()
                .filter(|t| is_live(inspections, t.pid))
                .filter_map(|&graph::ThreadId { pid, tid }| {
                    let ins = inspections.iter().find(|i| i.snapshot.pid == pid)?;
                    let i = ins.snapshot.thread_index(tid)?;
                    Some(Listed {
                        pid,
                        tid,
                        captured: ins.snapshot.threads[i].syscall,
                        gil: ins.findings[i]
                            .wait
                            .as_ref()
                            .is_some_and(|w| w.resource.kind == ResourceKind::Gil),
                    })
                })
                .collect()
        })
        .collect();
    let all: Vec<&Listed> = listed.iter().flatten().collect();
    let early = |t: &Listed| first.iter().find(|f| f.pid == t.pid.get())?.looks.get(&t.tid.get());
    let (mut readers, before) = if !all.is_empty() && all.iter().all(|t| early(t).is_some()) {
        let before: Vec<Option<Look>> = all.iter().filter_map(|t| early(t).cloned()).collect();
        let ended = first.iter().map(|f| f.ended).max();
        // The first looks' kept files serve the second looks (one reader).
        let readers = Readers::seeded(first.into_iter().map(|f| (f.pid, f.files)).collect());
        std::thread::sleep(ended.map_or(STUCK_CONFIRM, |e| STUCK_CONFIRM.saturating_sub(e.elapsed())));
        (readers, before)
    } else {
        drop(first);
        let mut readers = Readers::new(all.len());
        let before = readers.each(&all, |looks, _, t| {
            look_before(looks_of(looks, t.pid.get()), t.tid.get())
        });
        std::thread::sleep(STUCK_CONFIRM);
        (readers, before)
    };
    let still: Vec<bool> = readers.each(&all, |looks, k, t| {
        let Some(b) = &before[k] else {
            return false; // gone, or unreadable, before the window
        };
        if !t.still_in(&b.line) {
            return false;
        }
        let looks = looks_of(looks, t.pid.get());
        let Ok(now) = looks.status(t.tid.get()) else {
            return false; // gone
        };
        if t.gil {
            return t.still_in(&looks.syscall(t.tid.get()).ok());
        }
        // Slept through the window: its call is the one seen before.
        b.switches.is_some() && b.switches == now.ctxt_switches && b.asleep && now.state == 'S'
    });
    let mut still = still.into_iter();
    stucks
        .iter()
        .zip(&listed)
        .map(|(s, listed)| {
            let mut moved = Vec::new();
            if s.whole_process {
                let now = Live::process(s.pid.get()).threads().unwrap_or_default();
                let known: HashSet<graph::ThreadId> = s.threads.iter().copied().collect();
                if let Some(&t) = now
                    .iter()
                    .find(|t| !known.contains(&graph::ThreadId::new(s.pid, Tid(**t))))
                {
                    moved.push(graph::ThreadId::new(s.pid, Tid(t)));
                }
            }
            for t in listed {
                if !still.next().unwrap_or(false) {
                    moved.push(graph::ThreadId::new(t.pid, t.tid));
                }
            }
            moved
        })
        .collect()
}

/// A thread a verdict lists, as its looks need it.
struct Listed {
    pid: Pid,
    tid: Tid,
    /// The call it was captured in.
    captured: Option<SyscallState>,
    /// It waits for the GIL (wakes every 5 ms by design).
    gil: bool,
}

impl Listed {
    /// `line` is still the captured call: the same number and first
    /// argument, or a capture-interrupted timed call continuing as
    /// restart_syscall.
    fn still_in(&self, line: &Option<SyscallLine>) -> bool {
        match (line, self.captured) {
            (Some(SyscallLine::InSyscall { nr, args, .. }), Some(c)) => {
                (*nr == c.nr || *nr == SYS_RESTART_SYSCALL || c.restarted) && args[0] == c.args[0]
            }
            _ => false,
        }
    }
}

/// The looks at `pid`'s threads, opened on first use.
fn looks_of(looks: &mut BTreeMap<i32, Looks>, pid: i32) -> &mut Looks {
    looks.entry(pid).or_insert_with(|| Live::process(pid).looks())
}

/// One look at a thread: its system call (if readable), its count of
/// context switches, and whether it sleeps (state S). A thread that was
/// woken but has not run yet still shows its wait and its old count: only
/// a sleeping one is still.
#[derive(Clone)]
pub(super) struct Look {
    line: Option<SyscallLine>,
    switches: Option<u64>,
    asleep: bool,
}

/// The look before a window: the status (state and count) first, then the
/// call (see [`moved_in_window`] for why in that order).
fn look_before(looks: &mut Looks, tid: i32) -> Option<Look> {
    let status = looks.status(tid).ok()?;
    let line = looks.syscall(tid).ok();
    Some(Look {
        line,
        switches: status.ctxt_switches,
        asleep: status.state == 'S',
    })
}

/// The first look at every thread of a live process, taken on another
/// thread while the process is analyzed, right after the capture let it go.
///
/// A stuck verdict is known only after the analysis, and is then watched
/// over a window of [`STUCK_CONFIRM`]; starting the window with these looks
/// lets the analysis time count towards it (~25 ms of a 1000-thread
/// process's ~50 ms). Taken only for a process none of whose threads ran
/// at the capture (one that ran is not stuck) and never for `--no-stop`
/// (whose verdicts are confirmed differently). A thread still on its way
/// back into its wait shows as moved, and the next window starts afresh,
/// as it would without these looks.
pub struct FirstLooks {
    pid: i32,
    looks: HashMap<i32, Option<Look>>,
    /// The files they kept open, for the looks after the window.
    files: Looks,
    ended: std::time::Instant,
}

/// How often, and how long apart, [`FirstLooks`] looks again at threads
/// not yet back asleep.
const SETTLE_RETRIES: usize = 5;
const SETTLE_PAUSE: Duration = Duration::from_millis(1);

impl FirstLooks {
    /// Start taking them, if the snapshot is of a process that may be stuck.
    pub(super) fn start(snapshot: &crate::capture::Snapshot) -> Option<std::thread::JoinHandle<FirstLooks>> {
        let live = snapshot.live()?;
        if snapshot.no_stop || snapshot.threads.iter().any(|t| t.state == 'R') {
            return None;
        }
        let tids: Vec<i32> = snapshot.threads.iter().map(|t| t.tid.get()).collect();
        std::thread::Builder::new()
            .name("lockdump-looks".into())
            .spawn(move || {
                let mut files = live.looks();
                let mut looks: HashMap<i32, Option<Look>> =
                    tids.iter().map(|&tid| (tid, look_before(&mut files, tid))).collect();
                // Threads just let go are on their way back into their waits:
                // one not yet asleep again is looked at again, a little later.
                for _ in 0..SETTLE_RETRIES {
                    let unsettled: Vec<i32> = looks
                        .iter()
                        .filter(|(_, l)| l.as_ref().is_some_and(|l| !l.asleep))
                        .map(|(&t, _)| t)
                        .collect();
                    if unsettled.is_empty() {
                        break;
                    }
                    std::thread::sleep(SETTLE_PAUSE);
                    for tid in unsettled {
                        looks.insert(tid, look_before(&mut files, tid));
                    }
                }
                FirstLooks {
                    pid: live.pid,
                    looks,
                    files,
                    ended: std::time::Instant::now(),
                }
            })
            .ok()
    }
}

/// Most threads one reader looks at (a reader thread costs about as much
/// to start as 5 looks).
const THREADS_PER_READER: usize = 256;
/// Most readers, this thread included.
const MAX_READERS: usize = 4;

/// The listed threads split between up to [`MAX_READERS`] threads, as many
/// as there are CPUs, each with its own [`Looks`] (its kept files): each
/// look is a few independent reads in the kernel, so a 10,000-thread
/// process is read in half the time on two CPUs. Every pass gives each
/// reader the same share, so a thread's second look reads the file its
/// first look kept open.
struct Readers {
    share: usize,
    looks: Vec<BTreeMap<i32, Looks>>,
}

impl Readers {
    fn new(threads: usize) -> Readers {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let readers = cpus.min(MAX_READERS).min(threads / THREADS_PER_READER).max(1);
        Readers {
            share: threads.div_ceil(readers).max(1),
            looks: (0..readers).map(|_| BTreeMap::new()).collect(),
        }
    }

    /// One reader with files already open (the first looks').
    fn seeded(files: BTreeMap<i32, Looks>) -> Readers {
        Readers {
            share: usize::MAX,
            looks: vec![files],
        }
    }

    /// `look(files, k, all[k])` for every k, in order. A reader that cannot
    /// be started has its share looked at here.
    fn each<T: Send>(
        &mut self,
        all: &[&Listed],
        look: impl Fn(&mut BTreeMap<i32, Looks>, usize, &Listed) -> T + Sync,
    ) -> Vec<T> {
        let share = self.share;
        let look = &look;
        let run = move |files: &mut BTreeMap<i32, Looks>, n: usize, part: &[&Listed]| -> Vec<T> {
            part.iter()
                .enumerate()
                .map(|(j, t)| look(files, n * share + j, t))
                .collect()
        };
        let mut parts = self.looks.iter_mut().zip(all.chunks(share)).enumerate();
        let Some((_, (mine, my_part))) = parts.next() else {
            return Vec::new();
        };
        std::thread::scope(|s| {
            let others: Vec<_> = parts
                .map(|(n, (files, part))| {
                    let handle = std::thread::Builder::new().spawn_scoped(s, move || run(files, n, part));
                    (n, part, handle)
                })
                .collect();
            let mut out = run(mine, 0, my_part);
            for (n, part, handle) in others {
                match handle.ok().map(|h| h.join()) {
                    Some(Ok(v)) => out.extend(v),
                    _ => out.extend(run(&mut BTreeMap::new(), n, part)),
                }
            }
            out
        })
    }
}

pub(super) fn confirmed_graph(inspections: &mut [Inspection]) -> (graph::WaitGraph, Verdict) {
    for _ in 0..4 {
        let (g, v) = graph_of(inspections);
        let mut moved = false;
        for &graph::ThreadId { pid, tid } in v.deadlocks.iter().flat_map(|d| &d.threads) {
            let Some(ins) = inspections.iter_mut().find(|i| i.snapshot.pid == pid) else {
                continue;
            };
            let Some(i) = ins.snapshot.thread_index(tid) else {
                continue;
            };
            let no_stop = ins.snapshot.no_stop;
            // Evidence from a core is all of one instant: nothing to confirm.
            let Some(live) = ins.snapshot.live() else {
                continue;
            };
            let Some(w) = ins.findings[i].wait.as_mut() else {
                continue;
            };
            // Python lock state (and a multiprocessing lock's SemLock) is
            // read after the threads were let go.
            let read_after_capture = no_stop
                || matches!(
                    w.resource.kind,
                    ResourceKind::PyLock | ResourceKind::PyRLock | ResourceKind::PyMpLock
                );
            if !read_after_capture {
                continue;
            }
            let Err(why) = crate::capture::recheck::wait_still_holds(live, &ins.snapshot.threads[i], no_stop) else {
                continue;
            };
            w.owner = Owner::unknown(why);
            moved = true;
        }
        if !moved {
            return (g, v);
        }
    }
    graph_of(inspections)
}

/// The graph of the inspected threads' waits, and its lock verdict.
pub(super) fn graph_of(inspections: &[Inspection]) -> (graph::WaitGraph, Verdict) {
    let mut g = graph::WaitGraph::new();
    for ins in inspections {
        for (t, f) in ins.snapshot.threads.iter().zip(&ins.findings) {
            g.add_thread(ins.snapshot.pid, t.tid, f);
        }
    }
    let v = g.verdict();
    (g, v)
}
