//! The text of what `--watch` saw: the headline for a probable livelock or
//! a starvation, their evidence, spinning threads with where they stayed,
//! and every wait with how long it was seen unchanged (longest first).

use std::fmt::Write;

use super::index::Index;
use super::labels::resource_label;
use super::style::{clean, Style};
use crate::graph::ThreadId;
use crate::ids::Pid;
use crate::watch::Watched;

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn names(idx_names: &[String]) -> String {
    match idx_names.len() {
        0 => String::new(),
        1 => idx_names[0].clone(),
        n => format!("{} and {}", idx_names[..n - 1].join(", "), idx_names[n - 1]),
    }
}

/// `Probable livelock: 2 threads spun 1.5 s in Spouse.run (course_livelock.py lines 27–30); `fork` never changed hands`
/// or `Starvation: 2 threads waited 1.5 s for Python Lock resource; it was never free`.
/// Counts only: thread names need the index (the section names them).
pub fn headline(w: &Watched) -> Option<String> {
    if let Some(l) = w.livelocks.first() {
        let locks: Vec<String> = l
            .locks
            .iter()
            .map(|r| format!("`{}`", r.name.as_deref().unwrap_or("?")))
            .collect();
        return Some(format!(
            "Probable livelock: {} threads ran {} only in {} ({}); {} never changed hands{}",
            l.threads.len(),
            secs(w.span_ms),
            l.function,
            l.region,
            locks.join(", "),
            more(w.livelocks.len() + w.starvations.len())
        ));
    }
    let s = w.starvations.first()?;
    Some(format!(
        "Starvation: {} thread{} waited {} for {}; it was held at every sample while others kept taking it{}",
        s.waiters.len(),
        if s.waiters.len() == 1 { "" } else { "s" },
        secs(s.waited_ms),
        resource_label(&s.resource),
        more(w.starvations.len())
    ))
}

fn more(n: usize) -> String {
    if n > 1 {
        format!(" (and {} more)", n - 1)
    } else {
        String::new()
    }
}

pub fn section(w: &Watched, idx: &Index, style: &Style) -> String {
    let mut out = String::new();
    let list = |ts: &[ThreadId]| names(&ts.iter().map(|&t| idx.short(t)).collect::<Vec<_>>());
    let _ = writeln!(
        out,
        "Watched {} without stopping it: {} samples, {} µs each.",
        secs(w.span_ms),
        w.samples,
        w.sample_cost_us
    );
    for l in &w.livelocks {
        let _ = writeln!(
            out,
            "  {} {} ran the whole {} only in {} ({}); confidence: inferred",
            style.red("Probable livelock:"),
            list(&l.threads),
            secs(w.span_ms),
            l.function,
            l.region
        );
        let _ = writeln!(out, "      {}", clean(&l.evidence));
    }
    for s in &w.starvations {
        let _ = writeln!(
            out,
            "  {} {} waited {} for {}; it was never free; {} kept it; confidence: {}",
            style.red("Starvation:"),
            list(&s.waiters),
            secs(s.waited_ms),
            resource_label(&s.resource),
            if s.kept_by.is_empty() {
                "other threads".to_string()
            } else {
                list(&s.kept_by)
            },
            format!("{:?}", s.confidence).to_lowercase()
        );
        let _ = writeln!(out, "      {}", clean(&s.evidence));
    }
    for t in w.threads.iter().filter(|t| t.spinning) {
        let places: Vec<String> = t
            .places
            .iter()
            .map(|p| format!("{} ×{}", clean(&p.at), p.samples))
            .collect();
        let backoff: Vec<String> = t.backoff.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        let _ = writeln!(
            out,
            "  Spinning: {} used {} ms of CPU ({}%), never without CPU for more than {} ms; at {}{}",
            idx.short(t.thread),
            t.cpu_ms,
            t.cpu_share_pct,
            t.longest_without_cpu_ms,
            places.join(", "),
            if backoff.is_empty() {
                String::new()
            } else {
                format!("; backing off: {}", backoff.join(", "))
            }
        );
    }
    // GIL waits last 5 ms at a time by design: not a wait worth timing.
    // Threads of one process with the same wait and the same outcome (an
    // idle pool) make one line unless --all-threads.
    let mut lines: Vec<(Pid, String, String, Vec<ThreadId>)> = Vec::new();
    for t in &w.threads {
        let Some(r) = t
            .waits_for
            .as_ref()
            .filter(|r| r.kind != crate::runtimes::ResourceKind::Gil)
        else {
            continue;
        };
        let ms = t.blocked_for_ms.unwrap_or(0);
        let how = if t.blocked_whole_watch {
            if t.never_woke {
                format!("blocked ≥ {}, never woke", secs(ms))
            } else {
                format!("blocked ≥ {} (woke but stayed in the wait)", secs(ms))
            }
        } else {
            format!("left its wait after {}", secs(ms))
        };
        let label = resource_label(r);
        match lines
            .iter_mut()
            .find(|(pid, l, h, _)| !style.all_threads && *pid == t.thread.pid && *l == label && *h == how)
        {
            Some((.., members)) => members.push(t.thread),
            None => lines.push((t.thread.pid, label, how, vec![t.thread])),
        }
    }
    for (_, label, how, members) in lines {
        if members.len() < FOLD_AT {
            for t in members {
                let _ = writeln!(out, "  Blocked for: {} on {label}: {how}", idx.short(t));
            }
            continue;
        }
        let names: Vec<String> = members.iter().map(|&t| idx.plain_name(t)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let tids: Vec<i32> = members.iter().map(|t| t.tid.get()).collect();
        let _ = writeln!(
            out,
            "  Blocked for: {} threads {} (TIDs {}) on {label}: {how}",
            members.len(),
            super::threads::name_pattern(&names),
            super::threads::tid_ranges(&tids)
        );
    }
    out.push('\n');
    out
}

/// Threads with the same wait and outcome folded into one "Blocked for"
/// line from this many on (fewer are listed by name).
const FOLD_AT: usize = 3;
