//! The verdict part of the reports: the headline, each deadlock in jstack's
//! style (with source lines and evidence), the hangs that are not cycles,
//! and a one-table summary of who waits for what.

use std::collections::HashMap;
use std::fmt::Write;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, ContentArrangement, Table};
use serde::Serialize;

use super::index::Index;
use super::json::{Site, Thread};
use super::labels::{confidence_label, hex, resource_label, site_label};
use super::style::{clean, Style};
use crate::graph::{CycleWait, Deadlock, Edge, Leads, PeerKind, ProcessCycle, ThreadId, Verdict};
use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::{Confidence, ResourceKind};

/// "Found 2 deadlocks (5 threads, 5 locks)" or "No deadlock found".
pub fn headline(v: &Verdict, style: &Style) -> String {
    if !v.pool_starvations.is_empty() || !v.await_cycles.is_empty() {
        let pools: Vec<String> = v
            .pool_starvations
            .iter()
            .map(super::pools::headline_part)
            .chain(super::asyncio::headline_part(v))
            .collect();
        let n = v.pool_starvations.len() + v.deadlocks.len() + v.await_cycles.len();
        let cycles = if v.deadlocks.is_empty() {
            String::new()
        } else {
            let c = v.deadlocks.len();
            format!("{c} lock cycle{}; ", if c == 1 { "" } else { "s" })
        };
        return style.red(&format!(
            "Found {n} deadlock{}: {cycles}{}",
            if n == 1 { "" } else { "s" },
            pools.join("; ")
        ));
    }
    if v.deadlocks.is_empty() && !v.stuck.is_empty() {
        return style.red(&stuck_headline(v));
    }
    if let (true, Some(w)) = (v.deadlocks.is_empty(), v.watch.as_ref()) {
        if let Some(h) = super::watch::headline(w) {
            return style.red(&h);
        }
    }
    if v.deadlocks.is_empty() {
        if v.unexamined.is_empty() {
            return match waiting_behind_headline(v) {
                Some(w) => format!("{} {}", style.green("No deadlock found;"), style.yellow(&w)),
                None => style.green("No deadlock found."),
            };
        }
        let parts: std::collections::BTreeSet<String> = v
            .unexamined
            .iter()
            .map(|u| format!("{} of PID {}", u.part.describe(), u.pid))
            .collect();
        return style.yellow(&format!(
            "Incomplete: no deadlock among what was examined; not examined: {}.",
            parts.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let threads: std::collections::BTreeSet<ThreadId> =
        v.deadlocks.iter().flat_map(|d| d.threads.iter().copied()).collect();
    // Each distinct resource counted under its noun: "2 mutexes", and for
    // mixed cycles every noun ("1 mutex, 1 thread join"): a join is not a lock.
    let mut seen: std::collections::BTreeSet<(Pid, Addr)> = std::collections::BTreeSet::new();
    let mut counts: Vec<(&str, &str, usize)> = Vec::new();
    for r in v.deadlocks.iter().flat_map(|d| d.resources.iter()) {
        if !seen.insert((r.pid, r.address)) {
            continue;
        }
        let (one, many) = noun(r.kind);
        match counts.iter_mut().find(|c| c.0 == one) {
            Some(c) => c.2 += 1,
            None => counts.push((one, many, 1)),
        }
    }
    // In a fixed order (not the cycle's, which starts at the lowest TID).
    counts.sort_by_key(|c| c.0);
    let what: Vec<String> = counts
        .iter()
        .map(|&(one, many, k)| format!("{k} {}", if k == 1 { one } else { many }))
        .collect();
    let n = v.deadlocks.len();
    style.red(&format!(
        "Found {n} deadlock{} ({} thread{}, {})",
        if n == 1 { "" } else { "s" },
        threads.len(),
        if threads.len() == 1 { "" } else { "s" },
        what.join(", ")
    ))
}

/// What a headline counts a resource as, singular and plural.
fn noun(kind: ResourceKind) -> (&'static str, &'static str) {
    use ResourceKind as K;
    match kind {
        K::Mutex | K::RecursiveMutex | K::ErrorCheckMutex | K::AdaptiveMutex | K::RobustMutex | K::PiMutex => {
            ("mutex", "mutexes")
        }
        K::RwLock => ("rwlock", "rwlocks"),
        K::Thread => ("thread join", "thread joins"),
        K::RustMutex | K::RustRwLock => ("Rust lock", "Rust locks"),
        K::ParkingLotMutex | K::ParkingLotRwLock => ("parking_lot lock", "parking_lot locks"),
        K::PyLock | K::PyRLock => ("Python lock", "Python locks"),
        K::Gil => ("GIL", "GILs"),
        K::CondVar => ("condition variable", "condition variables"),
        K::Semaphore => ("semaphore", "semaphores"),
        K::Barrier => ("barrier", "barriers"),
        K::PyCondition => ("Python Condition", "Python Conditions"),
        K::PySemaphore => ("Python Semaphore", "Python Semaphores"),
        K::PyMpLock => ("multiprocessing lock", "multiprocessing locks"),
        K::PyEvent => ("Python Event", "Python Events"),
        K::PyQueue => ("Python Queue", "Python Queues"),
        K::PyFuture => ("future of an event loop", "futures of event loops"),
        K::LibcLock => ("glibc internal lock", "glibc internal locks"),
        K::Futex | K::Syscall => ("lock", "locks"),
    }
}

/// `Stuck: no thread of PID 1234 can ever run again (3 threads asleep for good)`.
fn stuck_headline(v: &Verdict) -> String {
    let parts: Vec<String> = v
        .stuck
        .iter()
        .map(|s| {
            let n = s.threads.len();
            let threads = format!("{n} thread{}", if n == 1 { "" } else { "s" });
            if s.whole_process {
                format!(
                    "no thread of PID {} can ever run again ({threads} asleep for good)",
                    s.pid
                )
            } else {
                format!(
                    "{threads} of PID {} can never run again (behind a lock whose owner is gone)",
                    s.pid
                )
            }
        })
        .collect();
    format!("Stuck: {}", parts.join("; "))
}

/// The stuck processes and threads: each thread, what it waits for, and
/// why nothing can end the wait.
fn stuck_section(v: &Verdict, idx: &Index, style: &Style) -> String {
    let mut out = String::new();
    for s in &v.stuck {
        let title = if s.whole_process {
            format!("Stuck: PID {}: every thread is asleep for good", s.pid)
        } else {
            format!("Stuck: PID {}: threads behind a lock whose owner is gone", s.pid)
        };
        let _ = writeln!(out, "{}", style.bold(&title));
        let entries: Vec<(ThreadId, String, String, String)> = s
            .threads
            .iter()
            .map(|&t| {
                let what = waits_for(idx, t).unwrap_or_else(|| "something".into());
                let why = v
                    .asleep
                    .binary_search_by_key(&t, |a| a.thread)
                    .ok()
                    .map(|k| v.asleep[k].why.clone())
                    .unwrap_or_default();
                let site = idx.wait_site(t).map(site_label).unwrap_or_default();
                (t, what, site, why)
            })
            .collect();
        // An idle pool is one entry (unless --all-threads), as in the stacks below.
        let in_cycle = |t: ThreadId| v.deadlocks.iter().any(|d| d.threads.contains(&t));
        let foldable = |t: ThreadId| !style.all_threads && !in_cycle(t) && idx.holds_nothing_waits_for_no_owner(t);
        let same = |a: &(ThreadId, String, String, String), b: &(ThreadId, String, String, String)| {
            a.0.pid == b.0.pid && a.1 == b.1 && a.2 == b.2 && a.3 == b.3
        };
        let mut done = vec![false; entries.len()];
        for k in 0..entries.len() {
            if done[k] {
                continue;
            }
            let e = &entries[k];
            let group: Vec<usize> = if foldable(e.0) {
                (k..entries.len())
                    .filter(|&j| !done[j] && foldable(entries[j].0) && same(e, &entries[j]))
                    .collect()
            } else {
                vec![k]
            };
            let group = if group.len() >= 3 { group } else { vec![k] };
            for &j in &group {
                done[j] = true;
            }
            let (t, what, site, why) = e;
            if group.len() == 1 {
                let _ = writeln!(out, "  {} waits for {what}", capitalize(&idx.name(*t)));
            } else {
                let names: Vec<String> = group.iter().map(|&j| idx.plain_name(entries[j].0)).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let tids: Vec<i32> = group.iter().map(|&j| entries[j].0.tid.get()).collect();
                let _ = writeln!(
                    out,
                    "  {} threads {} (TIDs {}) wait for {what}",
                    group.len(),
                    super::threads::name_pattern(&names),
                    super::threads::tid_ranges(&tids)
                );
            }
            if !site.is_empty() {
                let _ = writeln!(out, "      waiting in  {site}");
            }
            let _ = writeln!(out, "      nothing can end it: {}", clean(why));
        }
        out.push('\n');
    }
    for c in &v.process_cycles {
        out.push_str(&process_cycle_section(c, idx, style));
    }
    if v.process_cycles.len() >= crate::graph::MAX_PROCESS_CYCLES {
        let _ = writeln!(
            out,
            "{}\n",
            style.yellow(&format!(
                "(the first {} circular waits through processes are listed; more may exist)",
                crate::graph::MAX_PROCESS_CYCLES
            ))
        );
    }
    out
}

/// A circular wait through processes, step by step, under the stuck
/// processes it explains:
///
/// ```text
/// Circular wait through processes:
///   thread 100 "parent" of PID 100 waits on pipe:[1] (fd 3), which only PID 200 can write to;
///   thread 200 "child" of PID 200 waits on pipe:[2] (fd 4), which only PID 100 can write to.
/// ```
fn process_cycle_section(c: &ProcessCycle, idx: &Index, style: &Style) -> String {
    let mut out = format!("{}\n", style.bold("Circular wait through processes:"));
    let n = c.threads.len();
    for (k, (&t, w)) in c.threads.iter().zip(&c.waits).enumerate() {
        let next = c.threads[(k + 1) % n];
        let step = match w {
            CycleWait::Lock { resource, confidence } => format!(
                "waits for {}, which {} holds{}",
                resource_label(resource),
                idx.name(next),
                match confidence {
                    Confidence::Exact => "",
                    _ => " (owner inferred)",
                }
            ),
            CycleWait::Process {
                waits_on,
                pid,
                ended_by,
            } => {
                let can = match ended_by {
                    PeerKind::Writers => "can write to",
                    PeerKind::Readers => "can read from",
                    PeerKind::SocketPeers => "can send on",
                    PeerKind::Children => "can end, by exiting",
                };
                format!("waits on {waits_on}, which only PID {pid} {can}")
            }
        };
        let end = if k + 1 == n { '.' } else { ';' };
        let _ = writeln!(out, "  {} {}{end}", capitalize(&idx.name(t)), clean(&step));
    }
    out.push('\n');
    out
}

/// What thread `t` waits for, as the report names it.
fn waits_for(idx: &Index, t: ThreadId) -> Option<String> {
    let t = idx.thread(t)?;
    match &t.blocked_on {
        Some(w) => Some(resource_label(&w.resource)),
        None => t.blocked_in.map(clean),
    }
}

/// What `--confirm` (`--watch`) saw of a cycle's threads.
fn confirmation(c: &crate::watch::CycleSeen, idx: &Index, style: &Style) -> String {
    let over = format!("{:.1} s", c.watched_ms as f64 / 1000.0);
    if c.never_woke {
        return format!(
            "{} every thread stayed in its wait for ≥ {over} and never woke",
            style.green("Confirmed:")
        );
    }
    if c.stayed {
        let woke: Vec<String> = c.woke.iter().map(|t| idx.name(*t)).collect();
        return format!(
            "{} every thread stayed in its wait for ≥ {over} ({} woke and went back to it)",
            style.green("Confirmed:"),
            woke.join(", ")
        );
    }
    let left: Vec<String> = c
        .left
        .iter()
        .map(|l| {
            let after = format!("{:.1} s", l.after_ms as f64 / 1000.0);
            if l.ended {
                format!("{} was in its wait until it ended, after {after}", idx.name(l.thread))
            } else {
                format!("{} left its wait after {after}", idx.name(l.thread))
            }
        })
        .collect();
    let why = if c.left.iter().all(|l| l.ended) {
        "watched for less than asked"
    } else {
        "the cycle did not last (a timed wait ended, or the snapshot saw locks change hands)"
    };
    format!("{} {}: {why}", style.yellow("Not confirmed:"), left.join(", "))
}

/// One deadlock in jstack's style.
fn deadlock(n: usize, d: &Deadlock, v: &Verdict, idx: &Index, style: &Style) -> String {
    let mut out = String::new();
    let through_handler = signal_reentry(d, idx);
    let kind = match (d.threads.len(), &through_handler) {
        (1, Some(_)) => "self-deadlock through a signal handler",
        (1, None) => "self-deadlock",
        _ => "deadlock",
    };
    let _ = writeln!(
        out,
        "{} ({} thread{}, confidence: {})",
        style.bold(&format!("Deadlock #{n}: {kind}")),
        d.threads.len(),
        if d.threads.len() == 1 { "" } else { "s" },
        confidence_label(d.confidence)
    );
    for e in &d.edges {
        let _ = writeln!(
            out,
            "  {} waits for {}, held by {}",
            capitalize(&idx.name(e.from)),
            resource_label(&e.resource),
            idx.name(e.to)
        );
        if let Some(f) = idx.wait_site(e.from) {
            let _ = writeln!(out, "      waiting in  {}", site_label(f));
        }
        if let Some(f) = idx.hold_site(e.to, &e.resource) {
            // The frame that holds it, at its current line (not where it
            // was acquired: the evidence says that when it is known).
            let _ = writeln!(out, "      held by {} in {}", idx.name(e.to), site_label(f));
        }
        let _ = writeln!(
            out,
            "      owner is {} — {}",
            confidence_label(e.confidence),
            clean(&e.evidence)
        );
    }
    if let Some(h) = &through_handler {
        let _ = writeln!(
            out,
            "  The signal handler {} interrupted {}{} on the same thread and waits for what the interrupted code \
             holds{}",
            h.handler,
            h.interrupted,
            match &h.interrupted_caller {
                Some(c) => format!(" (called from {c})"),
                None => String::new(),
            },
            match &h.call {
                Some(c) => format!("; the handler called {c}, which is not async-signal-safe"),
                None => String::new(),
            }
        );
    }
    if let Some(c) = v
        .watch
        .as_ref()
        .and_then(|w| w.cycles.iter().find(|c| c.deadlock == n - 1))
    {
        let _ = writeln!(out, "  {}", confirmation(c, idx, style));
    }
    if let Some(Some(ms)) = v.breaks_by_timeout_ms.get(n - 1) {
        let to = crate::runtimes::Timeout {
            in_ms: *ms,
            relative: false,
            clock: None,
        };
        let _ = writeln!(
            out,
            "  {} a timed wait in it {} (it is still a deadlock until then)",
            style.yellow("Resolves by timeout:"),
            to.describe()
        );
    }
    let behind: Vec<&crate::graph::BlockedBehind> = v
        .blocked_behind
        .iter()
        .filter(|b| b.leads_to == Leads::Deadlock(n - 1))
        .collect();
    for b in behind {
        let first = b.chain.first();
        let what = first.map(|e| resource_label(&e.resource)).unwrap_or_default();
        let _ = writeln!(out, "  Blocked behind it: {} (waits for {what})", idx.name(b.thread));
    }
    for b in v
        .blocked_behind_processes
        .iter()
        .filter(|b| b.leads_to == Leads::Deadlock(n - 1))
    {
        let _ = writeln!(
            out,
            "  Blocked behind it: {} (waits on {}, which only PID {} could end: held up by this deadlock)",
            idx.name(b.thread),
            clean(&b.waits_on),
            b.pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    out
}

/// `Waiting behind thread 12 "reader": 4 threads wait for mutex m (0x...)
/// that it holds: 13 "w1", ...; it is in read(fd 3) — fd 3: TCP ...`.
/// The headline's words for the thread most others wait behind (issue
/// 20.5): `3 threads wait behind thread 1234, which is in read(fd 3) — fd 3:
/// TCP ...`, plus how many other such threads there are. Not a hang: the
/// verdict stays "no deadlock".
fn waiting_behind_headline(v: &Verdict) -> Option<String> {
    let w = v.waiting_behind.first()?;
    let n = w.waiters.len();
    let mut s = format!(
        "{n} thread{} wait{} behind thread {}",
        if n == 1 { "" } else { "s" },
        if n == 1 { "s" } else { "" },
        w.thread.tid
    );
    if let Some(d) = &w.doing {
        let _ = write!(s, ", which {}", clean(d));
    }
    let more = v.waiting_behind.len() - 1;
    if more > 0 {
        let _ = write!(
            s,
            " (and {more} more thread{} others wait behind)",
            if more == 1 { "" } else { "s" }
        );
    }
    Some(s)
}

fn waiting_behind_section(v: &Verdict, idx: &Index, style: &Style) -> String {
    let mut out = String::new();
    for w in &v.waiting_behind {
        let locks: Vec<String> = w.holds.iter().map(resource_label).collect();
        let waiters: Vec<String> = w.waiters.iter().map(|&t| idx.short(t)).collect();
        let n = w.waiters.len();
        let _ = writeln!(
            out,
            "{} {}: {n} thread{} wait{} for {} that it holds ({}){}",
            style.yellow("Waiting behind"),
            idx.name(w.thread),
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            locks.join(", "),
            waiters.join(", "),
            w.doing
                .as_deref()
                .map(|d| format!("; it {}", clean(d)))
                .unwrap_or_default()
        );
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// A self-deadlock whose wait is inside a signal handler (its wait site is
/// above the `__restore_rt` frame): the handler, the interrupted function
/// and the C library call the handler made.
#[derive(Serialize)]
pub struct SignalReentry {
    /// `on_alarm (signal_malloc.c:31)`.
    pub handler: String,
    /// `__libc_malloc (malloc.c:3323)`.
    pub interrupted: String,
    /// The first interrupted frame outside the C library, when the
    /// interrupted function is inside it: `churn (signal_malloc.c:50)`.
    pub interrupted_caller: Option<String>,
    /// The public name of the C library function the handler called (`malloc`).
    pub call: Option<String>,
}

fn signal_reentry(d: &Deadlock, idx: &Index) -> Option<SignalReentry> {
    let [t] = d.threads.as_slice() else { return None };
    let frames = idx.frames(*t);
    let hw = crate::runtimes::reentry::handler_wait(frames)?;
    let site = idx.wait_site(*t)?;
    let k = frames.iter().position(|f| std::ptr::eq(f, site))?;
    if k >= hw.signal_frame {
        return None; // the wait is in the interrupted code, not in the handler
    }
    Some(SignalReentry {
        handler: site_label(&frames[hw.handler]),
        interrupted: site_label(&frames[hw.interrupted]),
        interrupted_caller: hw.interrupted_caller.map(|k| site_label(&frames[k])),
        call: hw
            .call
            .and_then(|c| frames[c].function.as_deref())
            .map(|f| crate::runtimes::reentry::public_name(f).to_string()),
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Everything the verdict says, as text, before the thread stacks: from
/// the verdict and the report's `threads` (of `processes` processes).
pub fn text(threads: &[Thread], processes: usize, v: &Verdict, style: &Style) -> String {
    let idx = Index::new(threads);
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", headline(v, style));
    for u in &v.unexamined {
        let _ = writeln!(
            out,
            "{}",
            style.yellow(&format!(
                "PID {}: {} not examined: {}",
                u.pid,
                u.part.describe(),
                clean(&u.why)
            ))
        );
    }
    if !v.unexamined.is_empty() {
        out.push('\n');
    }
    out.push_str(&waiting_behind_section(v, &idx, style));
    for (n, d) in v.deadlocks.iter().enumerate() {
        out.push_str(&deadlock(n + 1, d, v, &idx, style));
        out.push('\n');
    }
    for (k, p) in v.pool_starvations.iter().enumerate() {
        out.push_str(&super::pools::section(v.deadlocks.len() + k + 1, p, &idx, style));
        out.push('\n');
    }
    for (k, c) in v.await_cycles.iter().enumerate() {
        let n = v.deadlocks.len() + v.pool_starvations.len() + k + 1;
        out.push_str(&super::asyncio::section(n, c, style));
        out.push('\n');
    }
    if v.cycles_truncated {
        let _ = writeln!(out, "{}\n", style.yellow("(more cycles exist than are listed)"));
    }
    out.push_str(&stuck_section(v, &idx, style));
    for o in &v.orphaned {
        let owner = o
            .owner_tid
            .map(|t| format!("thread {t}"))
            .unwrap_or_else(|| "its owner".into());
        let cause = if o.evidence.contains("copied locked at fork()") {
            format!(
                "it was copied locked at fork() from the parent, where {owner} holds it: no thread of this process \
                 will release it"
            )
        } else if o.resource.kind == crate::runtimes::ResourceKind::RobustMutex {
            format!("{owner} has exited: the next lock returns EOWNERDEAD (robust mutex)")
        } else {
            format!("{owner} has exited: the lock will never be released")
        };
        let _ = writeln!(
            out,
            "{} {} waits for {}, but {cause} ({}).",
            style.yellow("Orphaned lock:"),
            capitalize(&idx.name(o.thread)),
            resource_label(&o.resource),
            // The field it was read from; the cause is said above.
            clean(if o.evidence.contains("copied locked at fork()") {
                o.evidence.split(';').next().unwrap_or_default()
            } else {
                &o.evidence
            })
        );
        for b in v
            .blocked_behind
            .iter()
            .filter(|b| matches!(b.leads_to, Leads::Orphaned(_)))
        {
            if b.chain.last().map(|e| e.to) == Some(o.thread) {
                let _ = writeln!(out, "  Blocked behind it: {}", idx.name(b.thread));
            }
        }
    }
    if !v.orphaned.is_empty() {
        out.push('\n');
    }
    if v.deadlocks.is_empty() && v.stuck.is_empty() && v.all_blocked && !v.asleep.is_empty() {
        let n = v.asleep.len();
        let outside = v.asleep.iter().filter(|a| a.woken_from_outside).count();
        let _ = writeln!(
            out,
            "All {n} thread{} waiting; {outside} can be woken from outside (timers, fds, signals, child processes).\n",
            if n == 1 { " is" } else { "s are" }
        );
    }
    if let Some(w) = &v.watch {
        out.push_str(&super::watch::section(w, &idx, style));
    }
    out.push_str(&summary_table(threads, processes, v, &idx, style));
    out
}

/// One row of the summary table before folding.
struct Row {
    id: ThreadId,
    name: String,
    what: String,
    owner: String,
    conf: &'static str,
    site: String,
    /// May share a row with others: no owner, holds nothing, in no cycle.
    foldable: bool,
    /// Under `--watch`: how long the wait was seen unchanged (ms, for
    /// sorting) and as the column shows it.
    blocked_ms: u64,
    blocked_for: String,
}

/// Who waits for what, one row per blocked thread; the threads of the
/// deadlocks first, in cycle order. Unless `--all-threads`, at least three
/// threads of one process with the same wait, no owner, no held lock and
/// the same waiting site share one row (`40 threads`).
fn summary_table(threads: &[Thread], processes: usize, v: &Verdict, idx: &Index, style: &Style) -> String {
    let watch = v.watch.as_ref();
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled);
    let multi = processes > 1;
    let mut header = vec!["TID", "name", "waits for", "held by", "confidence", "waiting in"];
    if multi {
        header.insert(0, "PID");
    }
    if watch.is_some() {
        header.push("blocked for");
    }
    table.set_header(header);
    let in_cycle: Vec<ThreadId> = v.deadlocks.iter().flat_map(|d| d.threads.iter().copied()).collect();
    let mut rows: Vec<Row> = Vec::new();
    for t in threads {
        let id = ThreadId::new(t.pid, t.tid);
        let timeout = t
            .timeout
            .as_ref()
            .map(|to| format!(" ({})", to.text))
            .unwrap_or_default();
        let (what, owner, conf) = match &t.blocked_on {
            Some(w) => (
                resource_label(&w.resource) + &timeout,
                match (w.owner_tid, w.owner_exited) {
                    (Some(tid), true) => format!("{tid} (exited)"),
                    (Some(tid), false) if w.owner_pid.is_some_and(|p| p != id.pid) => {
                        format!("{tid} (PID {})", w.owner_pid.unwrap_or(Pid(0)))
                    }
                    (Some(tid), false) => tid.to_string(),
                    (None, _) if w.kind.has_owner() => "unknown".into(),
                    (None, _) => "—".into(),
                },
                if w.owner_tid.is_some() {
                    confidence_label(w.confidence)
                } else {
                    ""
                },
            ),
            None => match t.blocked_in {
                Some(b) => (format!("({})", clean(b)), String::new(), ""),
                None => continue,
            },
        };
        let name = t.python_name.unwrap_or(t.name).to_string();
        let site = idx.wait_site(id).map(site_label).unwrap_or_default();
        let foldable = (owner == "—" || owner.is_empty()) && t.holds.is_empty() && !in_cycle.contains(&id);
        // Under --watch: how long the wait was seen unchanged.
        let seen = watch.and_then(|w| w.threads.iter().find(|t| t.thread == id));
        let blocked_ms = seen.and_then(|t| t.blocked_for_ms).unwrap_or(0);
        let blocked_for = match seen {
            Some(t) if t.blocked_for_ms.is_some() => {
                format!(
                    "{}{:.1} s",
                    if t.blocked_whole_watch { "≥ " } else { "" },
                    blocked_ms as f64 / 1000.0
                )
            }
            _ => String::new(),
        };
        rows.push(Row {
            blocked_ms,
            blocked_for,
            id,
            name,
            what,
            owner,
            conf,
            site,
            foldable,
        });
    }
    if rows.is_empty() {
        return String::new();
    }
    // Cycle members first, in cycle order; then (under --watch) the longest
    // seen blocked first; else thread order (stable sort).
    rows.sort_by_key(|r| {
        (
            in_cycle.iter().position(|t| *t == r.id).unwrap_or(usize::MAX),
            std::cmp::Reverse(r.blocked_ms),
        )
    });
    let key = |r: &Row| {
        (
            r.id.pid,
            r.what.clone(),
            r.owner.clone(),
            r.conf,
            r.site.clone() + &r.blocked_for,
        )
    };
    let mut count: HashMap<(Pid, String, String, &str, String), Vec<usize>> = HashMap::new();
    if !style.all_threads {
        for (k, r) in rows.iter().enumerate().filter(|(_, r)| r.foldable) {
            count.entry(key(r)).or_default().push(k);
        }
        count.retain(|_, m| m.len() >= 3);
    }
    for (k, r) in rows.iter().enumerate() {
        let group = r.foldable.then(|| count.get(&key(r))).flatten();
        let (tid, name) = match group {
            Some(m) if m[0] != k => continue,
            Some(m) => {
                let names: Vec<&str> = m.iter().map(|&j| rows[j].name.as_str()).collect();
                (
                    format!("{} threads", m.len()),
                    super::threads::name_pattern_with(&names, false),
                )
            }
            None => (r.id.tid.to_string(), super::style::escape_name(&r.name)),
        };
        let mut row = vec![
            Cell::new(tid),
            Cell::new(name),
            Cell::new(&r.what),
            Cell::new(&r.owner),
            Cell::new(r.conf),
            Cell::new(&r.site),
        ];
        if multi {
            row.insert(0, Cell::new(r.id.pid));
        }
        if watch.is_some() {
            row.push(Cell::new(&r.blocked_for));
        }
        table.add_row(row);
    }
    format!("{table}\n\n")
}

/// `deadlocks[]` in the JSON document.
#[derive(Serialize)]
pub struct JsonDeadlock {
    /// TIDs in cycle order.
    pub threads: Vec<Tid>,
    /// PIDs parallel to `threads`.
    pub pids: Vec<Pid>,
    /// Addresses of the resources, `resources[i]` waited for by `threads[i]`.
    pub resources: Vec<String>,
    pub resource_names: Vec<Option<String>>,
    pub edges: Vec<JsonEdge>,
    pub confidence: Confidence,
    /// A timed wait of one of the cycle's threads ends within this many
    /// milliseconds (at most an hour), breaking the cycle; null otherwise.
    pub breaks_by_timeout_in_ms: Option<i64>,
    /// A self-deadlock inside a signal handler (version 4): the handler, the
    /// interrupted function and the call the handler made; null otherwise.
    pub signal_handler: Option<SignalReentry>,
}

#[derive(Serialize)]
pub struct JsonEdge {
    pub from_tid: Tid,
    pub from_pid: Pid,
    pub to_tid: Tid,
    pub to_pid: Pid,
    pub kind: ResourceKind,
    pub address: String,
    pub name: Option<String>,
    pub confidence: Confidence,
    pub evidence: String,
    /// Where `from` waits.
    pub site: Option<Site>,
}

fn json_edge(e: &Edge, idx: &Index) -> JsonEdge {
    let frames = idx.frames(e.from);
    let site = idx.wait_site(e.from).and_then(|f| {
        let k = frames.iter().position(|x| std::ptr::eq(x, f))?;
        Site::of(frames, Some(k))
    });
    JsonEdge {
        from_tid: e.from.tid,
        from_pid: e.from.pid,
        to_tid: e.to.tid,
        to_pid: e.to.pid,
        kind: e.resource.kind,
        address: hex(e.resource.address),
        name: e.resource.name.clone(),
        confidence: e.confidence,
        evidence: e.evidence.clone(),
        site,
    }
}

/// `deadlocks[]`: `idx` indexes the report's threads (for the wait sites).
pub fn json_deadlocks(idx: &Index, v: &Verdict) -> Vec<JsonDeadlock> {
    v.deadlocks
        .iter()
        .enumerate()
        .map(|(k, d)| JsonDeadlock {
            threads: d.threads.iter().map(|t| t.tid).collect(),
            pids: d.threads.iter().map(|t| t.pid).collect(),
            resources: d.resources.iter().map(|r| hex(r.address)).collect(),
            resource_names: d.resources.iter().map(|r| r.name.clone()).collect(),
            edges: d.edges.iter().map(|e| json_edge(e, idx)).collect(),
            confidence: d.confidence,
            breaks_by_timeout_in_ms: v.breaks_by_timeout_ms.get(k).copied().flatten(),
            signal_handler: signal_reentry(d, idx),
        })
        .collect()
}

/// `verdict` in the JSON document.
#[derive(Serialize)]
pub struct JsonVerdict {
    /// `deadlock`, `stuck`, `incomplete` or `no_hang_found`.
    pub kind: crate::graph::VerdictKind,
    /// The exit code lockdump exits with for this verdict.
    pub exit_code: i32,
    /// Everything was examined (`unexamined` is empty).
    pub complete: bool,
    pub unexamined: Vec<crate::graph::Unexamined>,
    pub deadlock: bool,
    pub deadlocks: usize,
    pub orphaned_locks: usize,
    pub blocked_behind: Vec<Tid>,
    /// Threads behind a deadlock through other processes (a parent waiting
    /// for a deadlocked child, a reader of a pipe only it writes); version 6.
    pub blocked_behind_processes: Vec<JsonProcessBehind>,
    pub all_blocked: bool,
    pub cycles_truncated: bool,
    pub headline: String,
    /// Threads that can never run again (added within version 3).
    pub stuck: Vec<JsonStuck>,
    /// Threads others wait behind, outside any cycle (version 4).
    pub waiting_behind: Vec<JsonWaitingBehind>,
    /// Thread pools whose every worker waits for a task only its workers
    /// could run (version 4): deadlocks through a pool, not counted in
    /// `deadlocks` (the lock cycles) but in `deadlock`.
    pub pool_starvations: Vec<super::pools::JsonPoolStarvation>,
    /// asyncio tasks awaiting each other in a cycle (version 5): deadlocks
    /// among tasks, not counted in `deadlocks` but in `deadlock`.
    pub await_cycles: Vec<super::asyncio::JsonAwaitCycle>,
    /// Circular waits through processes among threads that can never run
    /// again (added within version 6): why `stuck` processes are stuck.
    pub process_cycles: Vec<JsonProcessCycle>,
}

/// A circular wait through processes ([`ProcessCycle`]).
#[derive(Serialize)]
pub struct JsonProcessCycle {
    /// TIDs in cycle order, from the lowest (PID, TID).
    pub threads: Vec<Tid>,
    /// Each thread's PID, parallel to `threads`.
    pub pids: Vec<Pid>,
    /// `waits[i]`: what `threads[i]` waits for, which only the next thread
    /// (or its process) could provide.
    pub waits: Vec<JsonCycleWait>,
}

/// One step of a [`JsonProcessCycle`].
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JsonCycleWait {
    /// A lock the next thread holds: `resource` as the text names it.
    Lock {
        resource: String,
        resource_kind: ResourceKind,
        address: String,
        name: Option<String>,
        confidence: Confidence,
    },
    /// Input (or an exit) only process `pid`, the next thread's, could
    /// provide; `ended_by`: `writers`, `socket_peers` or `children`.
    Process {
        waits_on: String,
        pid: Pid,
        ended_by: PeerKind,
    },
}

fn json_process_cycle(c: &ProcessCycle) -> JsonProcessCycle {
    JsonProcessCycle {
        threads: c.threads.iter().map(|t| t.tid).collect(),
        pids: c.threads.iter().map(|t| t.pid).collect(),
        waits: c
            .waits
            .iter()
            .map(|w| match w {
                CycleWait::Lock { resource, confidence } => JsonCycleWait::Lock {
                    resource: resource_label(resource),
                    resource_kind: resource.kind,
                    address: hex(resource.address),
                    name: resource.name.clone(),
                    confidence: *confidence,
                },
                CycleWait::Process {
                    waits_on,
                    pid,
                    ended_by,
                } => JsonCycleWait::Process {
                    waits_on: waits_on.clone(),
                    pid: *pid,
                    ended_by: *ended_by,
                },
            })
            .collect(),
    }
}

#[derive(Serialize)]
pub struct JsonWaitingBehind {
    pub pid: Pid,
    pub tid: Tid,
    /// TIDs of every thread whose chain of waits ends at it.
    pub waiters: Vec<Tid>,
    /// The locks its direct waiters wait for: `mutex m (0x...)`.
    pub holds: Vec<String>,
    /// What it is doing: `is in read(fd 3) — fd 3: TCP ...`.
    pub doing: Option<String>,
}

#[derive(Serialize)]
pub struct JsonProcessBehind {
    pub pid: Pid,
    pub tid: Tid,
    /// `child PID 4567`, `pipe:[123] (fd 3)`.
    pub waits_on: String,
    /// The processes that alone could end the wait.
    pub pids: Vec<Pid>,
    /// Index into `deadlocks`.
    pub deadlock: usize,
}

#[derive(Serialize)]
pub struct JsonStuck {
    pub pid: Pid,
    /// Every thread of the process is asleep for good.
    pub whole_process: bool,
    /// TIDs of the threads asleep for good.
    pub threads: Vec<Tid>,
}

pub fn json_verdict(v: &Verdict) -> JsonVerdict {
    JsonVerdict {
        kind: v.kind(),
        exit_code: v.kind().exit_code(),
        complete: v.unexamined.is_empty(),
        unexamined: v.unexamined.clone(),
        deadlock: !v.deadlocks.is_empty() || !v.pool_starvations.is_empty() || !v.await_cycles.is_empty(),
        deadlocks: v.deadlocks.len(),
        orphaned_locks: v.orphaned.len(),
        blocked_behind: v.blocked_behind.iter().map(|b| b.thread.tid).collect(),
        blocked_behind_processes: v
            .blocked_behind_processes
            .iter()
            .filter_map(|b| match b.leads_to {
                Leads::Deadlock(k) => Some(JsonProcessBehind {
                    pid: b.thread.pid,
                    tid: b.thread.tid,
                    waits_on: b.waits_on.clone(),
                    pids: b.pids.clone(),
                    deadlock: k,
                }),
                Leads::Orphaned(_) => None,
            })
            .collect(),
        all_blocked: v.all_blocked,
        cycles_truncated: v.cycles_truncated,
        headline: headline(v, &Style::plain()),
        stuck: v
            .stuck
            .iter()
            .map(|s| JsonStuck {
                pid: s.pid,
                whole_process: s.whole_process,
                threads: s.threads.iter().map(|t| t.tid).collect(),
            })
            .collect(),
        waiting_behind: v
            .waiting_behind
            .iter()
            .map(|w| JsonWaitingBehind {
                pid: w.thread.pid,
                tid: w.thread.tid,
                waiters: w.waiters.iter().map(|t| t.tid).collect(),
                holds: w.holds.iter().map(resource_label).collect(),
                doing: w.doing.clone(),
            })
            .collect(),
        pool_starvations: super::pools::json(v),
        await_cycles: super::asyncio::json_cycles(v),
        process_cycles: v.process_cycles.iter().map(json_process_cycle).collect(),
    }
}
