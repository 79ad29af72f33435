//! Starved thread pools in the reports: the deadlock section (text) and
//! `verdict.pool_starvations` (JSON, schema 4).

use std::fmt::Write;

use serde::Serialize;

use super::index::Index;
use super::json::JsonTaskWait;
use super::labels::{hex, site_label};
use super::style::{clean, Style};
use crate::graph::{PoolStarvation, ThreadId, Verdict};
use crate::ids::{Pid, Tid};
use crate::runtimes::{TaskPlace, TaskPool, TaskWait};

/// `ThreadPoolExecutor executor (0x7f..., threads ThreadPoolExecutor-0_*)`.
pub fn pool_label(p: &TaskPool) -> String {
    let mut s = clean(&p.kind);
    if let Some(n) = &p.name {
        let _ = write!(s, " {}", clean(n));
    }
    let _ = write!(s, " ({:#x}", p.address);
    if let Some(prefix) = &p.thread_name_prefix {
        let _ = write!(s, ", threads {}_*", clean(prefix));
    }
    s.push(')');
    s
}

/// `future fut (0x7f...), PENDING, queued at position 1 of 2`.
fn task_label(w: &TaskWait, pool: &TaskPool, idx: &Index) -> String {
    let name = w
        .future_name
        .as_deref()
        .map(|n| format!(" {}", clean(n)))
        .unwrap_or_default();
    let place = match w.place {
        TaskPlace::Queued { position } => format!(
            "still queued in the pool's work queue ({} of {})",
            position + 1,
            pool.queued.len()
        ),
        TaskPlace::RunBy { tid } => format!("run by {}", idx.name(ThreadId::new(pool.pid, tid))),
    };
    format!("future{name} ({:#x}, {}), {place}", w.future, clean(&w.state))
}

/// The headline's words for one starved pool.
pub fn headline_part(s: &PoolStarvation) -> String {
    format!(
        "pool starvation: {} of {} wait on futures that only its workers can run",
        s.workers_phrase(),
        pool_label(&s.pool)
    )
}

/// One starved pool, numbered after the lock cycles.
pub fn section(n: usize, s: &PoolStarvation, idx: &Index, style: &Style) -> String {
    let mut out = String::new();
    let k = s.workers.len();
    let _ = writeln!(
        out,
        "{} ({k} thread{}, confidence: exact)",
        style.bold(&format!("Deadlock #{n}: pool starvation")),
        if k == 1 { "" } else { "s" },
    );
    let max = s.pool.max_workers.map(|m| m.to_string()).unwrap_or_else(|| "?".into());
    let _ = writeln!(
        out,
        "  {} of {} wait on futures that only its workers can run: {k} of max_workers {max} started, {} task{} queued",
        capitalize(&s.workers_phrase()),
        pool_label(&s.pool),
        s.pool.queued.len(),
        if s.pool.queued.len() == 1 { "" } else { "s" },
    );
    for (&t, w) in s.workers.iter().zip(&s.waits) {
        let _ = writeln!(
            out,
            "  {} waits for {}",
            capitalize(&idx.name(t)),
            task_label(w, &s.pool, idx)
        );
        if let Some(f) = idx.wait_site(t) {
            let _ = writeln!(out, "      waiting in  {}", site_label(f));
        }
    }
    let _ = writeln!(
        out,
        "      evidence is exact — each worker's `_worker` frame names the executor, its `_WorkItem.run` frame the \
         future it runs; the queued futures are read from the executor's `_work_queue`"
    );
    for b in &s.behind {
        let _ = writeln!(
            out,
            "  Blocked behind it: {} (waits for {})",
            idx.name(ThreadId::new(s.pool.pid, b.tid)),
            task_label(b, &s.pool, idx)
        );
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `verdict.pool_starvations[]` (schema 4).
#[derive(Serialize)]
pub struct JsonPoolStarvation {
    pub pid: Pid,
    /// Address of the executor object.
    pub executor: String,
    /// `ThreadPoolExecutor` or the subclass's name.
    pub executor_type: String,
    pub executor_name: Option<String>,
    pub thread_name_prefix: Option<String>,
    pub max_workers: Option<u64>,
    /// TIDs of the pool's workers, sorted: all of them wait.
    pub workers: Vec<Tid>,
    /// What each worker waits for, parallel to `workers`.
    pub waits: Vec<JsonTaskWait>,
    /// Addresses of the futures in the executor's work queue, oldest first.
    pub queued: Vec<String>,
    /// Threads outside the pool waiting for one of its tasks.
    pub blocked_behind: Vec<JsonTaskWait>,
    /// One sentence, as the headline says it.
    pub text: String,
}

pub fn json(v: &Verdict) -> Vec<JsonPoolStarvation> {
    v.pool_starvations
        .iter()
        .map(|s| JsonPoolStarvation {
            pid: s.pool.pid,
            executor: hex(s.pool.address),
            executor_type: s.pool.kind.clone(),
            executor_name: s.pool.name.clone(),
            thread_name_prefix: s.pool.thread_name_prefix.clone(),
            max_workers: s.pool.max_workers,
            workers: s.workers.iter().map(|t| t.tid).collect(),
            waits: s.waits.iter().map(JsonTaskWait::new).collect(),
            queued: s.pool.queued.iter().map(|&f| hex(f)).collect(),
            blocked_behind: s.behind.iter().map(JsonTaskWait::new).collect(),
            text: headline_part(s),
        })
        .collect()
}
