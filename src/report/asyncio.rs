//! asyncio in the reports: await cycles (the deadlock section and
//! `verdict.await_cycles`), and each process's loops and tasks (the text
//! report after the threads, `processes[].asyncio` in JSON; schema 5).

use std::fmt::Write;

use serde::Serialize;

use super::labels::{confidence_label, hex, resource_label, site_label};
use super::style::{clean, Style};
use crate::graph::awaits::{AwaitCycle, AwaitEdge, AwaitVia, Member};
use crate::graph::Verdict;
use crate::ids::{Addr, Pid, Tid};
use crate::runtimes::cpython::asyncio::{AsyncioState, Awaits, Task};

/// `task "audit-task" (0x7f...)` or `thread 1234 "worker"`.
fn member_label(m: &Member) -> String {
    match m {
        Member::Task { name, address, .. } => format!("task {:?} ({address:#x})", clean(name)),
        Member::Thread { tid, name, .. } => format!("thread {tid} {:?}", clean(name)),
    }
}

fn via_label(e: &AwaitEdge) -> String {
    match &e.via {
        AwaitVia::TaskDone => "awaits the completion of".into(),
        AwaitVia::Lock { lock, name } => match name {
            Some(n) => format!("waits for asyncio.Lock {} ({lock:#x}), held by", clean(n)),
            None => format!("waits for asyncio.Lock {lock:#x}, held by"),
        },
        AwaitVia::Executor => "awaits the result of a work item run by".into(),
        AwaitVia::TaskResult => "waits (Future.result) for the result of".into(),
        AwaitVia::Resource {
            resource_kind,
            address,
            name,
        } => {
            let r = crate::runtimes::Resource {
                kind: *resource_kind,
                address: *address,
                pid: Pid(0),
                name: name.clone(),
                shared_key: None,
            };
            format!("waits for {}, held by", resource_label(&r))
        }
    }
}

/// The headline's words for the await cycles.
pub fn headline_part(v: &Verdict) -> Option<String> {
    let n = v.await_cycles.len();
    if n == 0 {
        return None;
    }
    let cycles: Vec<String> = v
        .await_cycles
        .iter()
        .map(|c| {
            let mut names: Vec<String> = c.members.iter().map(|m| clean(m.name())).collect();
            names.push(clean(c.members[0].name()));
            names.join(" → ")
        })
        .collect();
    Some(format!(
        "{n} asyncio await cycle{}: {}",
        if n == 1 { "" } else { "s" },
        cycles.join("; ")
    ))
}

/// One await cycle, numbered after the lock cycles and starved pools.
pub fn section(n: usize, c: &AwaitCycle, style: &Style) -> String {
    let mut out = String::new();
    let tasks = c.members.iter().filter(|m| matches!(m, Member::Task { .. })).count();
    let threads = c.members.len() - tasks;
    let mut size = format!("{tasks} task{}", if tasks == 1 { "" } else { "s" });
    if threads > 0 {
        let _ = write!(size, ", {threads} thread{}", if threads == 1 { "" } else { "s" });
    }
    let _ = writeln!(
        out,
        "{} ({size}, confidence: {})",
        style.bold(&format!("Deadlock #{n}: asyncio await cycle")),
        confidence_label(c.confidence)
    );
    let k = c.members.len();
    for (i, (m, e)) in c.members.iter().zip(&c.edges).enumerate() {
        let next = &c.members[(i + 1) % k];
        let thread = match m {
            Member::Task { tid: Some(tid), .. } => format!(" [loop thread {tid}]"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}{thread} {} {}",
            capitalize(&member_label(m)),
            via_label(e),
            member_label(next)
        );
        let _ = writeln!(
            out,
            "      evidence is {} — {}",
            confidence_label(e.confidence),
            clean(&e.evidence)
        );
    }
    if let Some(t) = &c.breaks_by_timeout {
        let _ = writeln!(out, "  A timeout will end it: {}", clean(t));
    }
    if !c.behind.is_empty() {
        let names: Vec<String> = c.behind.iter().map(member_label).collect();
        let _ = writeln!(out, "  Blocked behind it: {}", names.join(", "));
    }
    out
}

/// What a task awaits, in words.
pub fn awaits_label(t: &Task, state: &AsyncioState) -> String {
    let name_of = |a: Addr| {
        state
            .task(a)
            .map(|k| format!("task {:?} ({a:#x})", clean(&k.name)))
            .unwrap_or_else(|| format!("{a:#x}"))
    };
    match &t.awaits {
        Awaits::Task { task } => format!("awaits {}", name_of(*task)),
        Awaits::Future {
            future,
            type_name,
            chained_from,
        } => {
            let all: Vec<String> = state
                .tasks()
                .filter(|k| k.awaited_by.contains(&t.address))
                .map(|k| format!("{:?}", clean(&k.name)))
                .collect();
            let mut children: Vec<String> = all.iter().take(5).cloned().collect();
            if all.len() > 5 {
                children.push(format!("… {} more", all.len() - 5));
            }
            if let Some(cf) = chained_from {
                format!(
                    "awaits {} {future:#x}, the result of concurrent future {cf:#x}",
                    clean(type_name)
                )
            } else if children.is_empty() {
                format!("awaits {} {future:#x}", clean(type_name))
            } else {
                format!(
                    "awaits {} {future:#x} over task{} {}",
                    clean(type_name),
                    if all.len() == 1 { "" } else { "s" },
                    children.join(", ")
                )
            }
        }
        Awaits::Primitive {
            primitive,
            address,
            name,
            how,
        } => format!(
            "waits in {how} on {} {}({address:#x})",
            primitive.type_name(),
            name.as_deref().map(|n| format!("{} ", clean(n))).unwrap_or_default()
        ),
        Awaits::Sleep { seconds: Some(s) } => format!("sleeps (asyncio.sleep({s} s))"),
        Awaits::Sleep { seconds: None } => "sleeps (asyncio.sleep)".into(),
        Awaits::NotSuspended { why } => format!("not suspended: {}", clean(why)),
        Awaits::Other { what } => format!("awaits {}", clean(what)),
    }
}

/// The loops and tasks of one process, for the text report. Tasks whose
/// coroutine stack and wait are the same are folded into one entry.
///
/// `blocked(tid)`: what the loop's thread waits for, if it is blocked in a
/// wait (a lock) rather than in the loop's own wait for events: then none of
/// the loop's tasks can run until that wait ends, and the section says so.
pub fn tasks_section(pid: Pid, state: &AsyncioState, blocked: &dyn Fn(Tid) -> Option<String>, style: &Style) -> String {
    let mut out = String::new();
    if let Some(why) = &state.not_examined {
        let _ = writeln!(out, "{} {}", style.yellow("asyncio:"), clean(why));
    }
    let groups = state
        .threads
        .iter()
        .map(|t| {
            let head = match t.loop_address {
                Some(l) => format!(
                    "Event loop {} ({l:#x}) in thread {}",
                    t.loop_type.as_deref().map(clean).unwrap_or_else(|| "?".into()),
                    t.tid
                ),
                None => format!("Thread {} (no loop running)", t.tid),
            };
            let blocked = t.loop_address.and_then(|_| blocked(t.tid));
            let running = t.running_coroutine.as_deref();
            (head, &t.tasks, t.running_task, t.list_note.as_deref(), blocked, running)
        })
        .chain((!state.orphan_tasks.is_empty()).then(|| {
            (
                format!("Tasks of threads that exited (PID {pid})"),
                &state.orphan_tasks,
                None,
                None,
                None,
                None,
            )
        }));
    for (head, tasks, running, note, blocked, coroutine) in groups {
        if state.not_examined.is_some() && tasks.is_empty() {
            // Before 3.14: the loop and what it runs, not its tasks.
            let _ = writeln!(
                out,
                "{}: its tasks were not read; {}",
                style.bold(&head),
                match coroutine {
                    Some(c) => format!("it is running the coroutine {}", clean(c)),
                    None => "it is waiting for events (no coroutine running)".to_string(),
                }
            );
            if let Some(b) = blocked {
                let _ = writeln!(
                    out,
                    "  {} its thread waits for {b}: none of its tasks can run until that wait ends",
                    style.red("The loop is blocked:")
                );
            }
            continue;
        }
        let _ = writeln!(
            out,
            "{}: {} pending task{}{}",
            style.bold(&head),
            tasks.len(),
            if tasks.len() == 1 { "" } else { "s" },
            running
                .and_then(|r| state.task(r))
                .map(|r| format!(", running {:?}", clean(&r.name)))
                .unwrap_or_default()
        );
        if let Some(n) = note {
            let _ = writeln!(
                out,
                "    {}",
                style.yellow(&format!("(task list incomplete: {})", clean(n)))
            );
        }
        if let Some(b) = blocked {
            let _ = writeln!(
                out,
                "  {} its thread waits for {b}: none of its {} task{} can run until that wait ends",
                style.red("The loop is blocked:"),
                tasks.len(),
                if tasks.len() == 1 { "" } else { "s" }
            );
        }
        // Fold tasks with the same stack and the same kind of wait.
        let mut folded: Vec<(String, Vec<&Task>)> = Vec::new();
        for t in tasks.iter() {
            let key = fold_key(t);
            match folded.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) if folded_ok(t, running) => v.push(t),
                _ => folded.push((key, vec![t])),
            }
        }
        for (_, group) in folded {
            let t = group[0];
            if group.len() == 1 {
                let doing = if running == Some(t.address) {
                    "is running: its step executes on the loop's thread".to_string()
                } else {
                    awaits_label(t, state)
                };
                let _ = writeln!(out, "  Task {:?} ({:#x}) {doing}", clean(&t.name), t.address);
            } else {
                let names: Vec<String> = group.iter().take(4).map(|k| format!("{:?}", clean(&k.name))).collect();
                let more = if group.len() > 4 {
                    format!(", … {} more", group.len() - 4)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "  {} tasks ({}{more}) {}",
                    group.len(),
                    names.join(", "),
                    awaits_label(t, state)
                );
            }
            for h in &t.holds {
                let _ = writeln!(
                    out,
                    "      holds asyncio.Lock {}({:#x}) ({})",
                    h.name.as_deref().map(|n| format!("{} ", clean(n))).unwrap_or_default(),
                    h.lock,
                    confidence_label(h.confidence)
                );
            }
            for f in &t.frames {
                let _ = writeln!(out, "      {}", site_label(f));
            }
            if let Some(n) = &t.chain_note {
                let _ = writeln!(
                    out,
                    "      {}",
                    style.yellow(&format!("(coroutine stack cut short: {})", clean(n)))
                );
            }
        }
    }
    out
}

/// Tasks fold when their coroutine stacks (function, file, line) and the
/// kind of their wait agree; a task that holds a lock or is awaited by
/// others stays on its own line.
fn fold_key(t: &Task) -> String {
    let frames: Vec<String> = t
        .frames
        .iter()
        .map(|f| format!("{:?}:{:?}:{:?}", f.function, f.file, f.line))
        .collect();
    let wait = match &t.awaits {
        Awaits::Primitive { address, .. } => format!("p{address:#x}"),
        Awaits::Task { .. } | Awaits::Future { .. } => format!("t{:#x}", t.address),
        other => format!("{other:?}"),
    };
    format!("{}|{wait}", frames.join(";"))
}

fn folded_ok(t: &Task, running: Option<Addr>) -> bool {
    t.holds.is_empty() && t.chain_note.is_none() && running != Some(t.address)
}

// ---------------------------------------------------------------------------
// JSON (schema 5)
// ---------------------------------------------------------------------------

#[derive(Serialize)]
pub struct JsonMember {
    /// `task` or `thread`.
    pub kind: &'static str,
    pub pid: Pid,
    /// For a task: its loop's thread, if known.
    pub tid: Option<Tid>,
    /// For a task: its address; null for a thread.
    pub address: Option<String>,
    pub name: String,
}

fn json_member(m: &Member) -> JsonMember {
    match m {
        Member::Task {
            pid,
            tid,
            address,
            name,
        } => JsonMember {
            kind: "task",
            pid: *pid,
            tid: *tid,
            address: Some(hex(*address)),
            name: name.clone(),
        },
        Member::Thread { pid, tid, name } => JsonMember {
            kind: "thread",
            pid: *pid,
            tid: Some(*tid),
            address: None,
            name: name.clone(),
        },
    }
}

#[derive(Serialize)]
pub struct JsonAwaitEdge {
    /// `task_done`, `lock`, `executor`, `task_result` or `resource`.
    pub via: &'static str,
    /// For `lock` (an asyncio.Lock) and `resource` (what a thread waits for):
    /// its address, name and (`resource`) kind.
    pub address: Option<String>,
    pub name: Option<String>,
    pub resource_kind: Option<crate::runtimes::ResourceKind>,
    pub confidence: crate::runtimes::Confidence,
    pub evidence: String,
}

#[derive(Serialize)]
pub struct JsonAwaitCycle {
    pub members: Vec<JsonMember>,
    pub edges: Vec<JsonAwaitEdge>,
    pub confidence: crate::runtimes::Confidence,
    pub behind: Vec<JsonMember>,
    pub breaks_by_timeout: Option<String>,
}

/// `verdict.await_cycles[]` (schema 5).
pub fn json_cycles(v: &Verdict) -> Vec<JsonAwaitCycle> {
    v.await_cycles
        .iter()
        .map(|c| JsonAwaitCycle {
            members: c.members.iter().map(json_member).collect(),
            edges: c
                .edges
                .iter()
                .map(|e| {
                    let (via, address, name, resource_kind) = match &e.via {
                        AwaitVia::TaskDone => ("task_done", None, None, None),
                        AwaitVia::Lock { lock, name } => ("lock", Some(hex(*lock)), name.clone(), None),
                        AwaitVia::Executor => ("executor", None, None, None),
                        AwaitVia::TaskResult => ("task_result", None, None, None),
                        AwaitVia::Resource {
                            resource_kind,
                            address,
                            name,
                        } => ("resource", Some(hex(*address)), name.clone(), Some(*resource_kind)),
                    };
                    JsonAwaitEdge {
                        via,
                        address,
                        name,
                        resource_kind,
                        confidence: e.confidence,
                        evidence: e.evidence.clone(),
                    }
                })
                .collect(),
            confidence: c.confidence,
            behind: c.behind.iter().map(json_member).collect(),
            breaks_by_timeout: c.breaks_by_timeout.clone(),
        })
        .collect()
}

#[derive(Serialize)]
pub struct JsonAsyncio {
    pub threads: Vec<JsonLoopThread>,
    pub orphan_tasks: Vec<JsonTask>,
    pub not_examined: Option<String>,
}

#[derive(Serialize)]
pub struct JsonLoopThread {
    pub tid: Tid,
    pub loop_address: Option<String>,
    pub loop_type: Option<String>,
    pub running_task: Option<String>,
    /// The coroutine being stepped: `main (app.py:35)`, or null while the loop waits.
    pub running_coroutine: Option<String>,
    pub tasks: Vec<JsonTask>,
    pub list_note: Option<String>,
}

#[derive(Serialize)]
pub struct JsonTask {
    pub address: String,
    pub name: String,
    /// Innermost first: `{function, file, line}`.
    pub frames: Vec<JsonTaskFrame>,
    /// `{kind: task|future|primitive|sleep|not_suspended|other, ...}` with
    /// addresses as hex strings.
    pub awaits: JsonAwaits,
    /// Addresses of the tasks and futures that await this task.
    pub awaited_by: Vec<String>,
    pub holds: Vec<JsonTaskHold>,
    pub timeout: Option<String>,
    pub chain_note: Option<String>,
}

#[derive(Serialize)]
pub struct JsonTaskFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

#[derive(Serialize)]
pub struct JsonTaskHold {
    pub lock: String,
    pub name: Option<String>,
    pub confidence: crate::runtimes::Confidence,
    pub evidence: String,
}

/// `awaits` of a task: what its innermost coroutine is suspended on,
/// tagged by `kind`, with addresses as hex strings.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JsonAwaits {
    Task {
        task: String,
    },
    Future {
        future: String,
        #[serde(rename = "type")]
        type_name: String,
        chained_from: Option<String>,
    },
    Primitive {
        primitive: crate::runtimes::cpython::asyncio::Primitive,
        address: String,
        name: Option<String>,
        how: String,
    },
    Sleep {
        seconds: Option<f64>,
    },
    NotSuspended {
        why: String,
    },
    Other {
        what: String,
    },
}

fn json_awaits(a: &Awaits) -> JsonAwaits {
    match a {
        Awaits::Task { task } => JsonAwaits::Task { task: hex(*task) },
        Awaits::Future {
            future,
            type_name,
            chained_from,
        } => JsonAwaits::Future {
            future: hex(*future),
            type_name: type_name.clone(),
            chained_from: chained_from.map(hex),
        },
        Awaits::Primitive {
            primitive,
            address,
            name,
            how,
        } => JsonAwaits::Primitive {
            primitive: *primitive,
            address: hex(*address),
            name: name.clone(),
            how: how.clone(),
        },
        Awaits::Sleep { seconds } => JsonAwaits::Sleep { seconds: *seconds },
        Awaits::NotSuspended { why } => JsonAwaits::NotSuspended { why: why.clone() },
        Awaits::Other { what } => JsonAwaits::Other { what: what.clone() },
    }
}

fn json_task(t: &Task) -> JsonTask {
    JsonTask {
        address: hex(t.address),
        name: t.name.clone(),
        frames: t
            .frames
            .iter()
            .map(|f| JsonTaskFrame {
                function: f.function.as_deref().map(str::to_string),
                file: f.file.as_deref().map(str::to_string),
                line: f.line,
            })
            .collect(),
        awaits: json_awaits(&t.awaits),
        awaited_by: t.awaited_by.iter().map(|&a| hex(a)).collect(),
        holds: t
            .holds
            .iter()
            .map(|h| JsonTaskHold {
                lock: hex(h.lock),
                name: h.name.clone(),
                confidence: h.confidence,
                evidence: h.evidence.clone(),
            })
            .collect(),
        timeout: t.timeout.clone(),
        chain_note: t.chain_note.clone(),
    }
}

/// `processes[].asyncio` (schema 5): `null` when the process runs no event loop.
pub fn json_process(state: Option<&AsyncioState>) -> Option<JsonAsyncio> {
    let s = state?;
    Some(JsonAsyncio {
        threads: s
            .threads
            .iter()
            .map(|t| JsonLoopThread {
                tid: t.tid,
                loop_address: t.loop_address.map(hex),
                loop_type: t.loop_type.clone(),
                running_task: t.running_task.map(hex),
                running_coroutine: t.running_coroutine.clone(),
                tasks: t.tasks.iter().map(json_task).collect(),
                list_note: t.list_note.clone(),
            })
            .collect(),
        orphan_tasks: s.orphan_tasks.iter().map(json_task).collect(),
        not_examined: s.not_examined.clone(),
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtimes::cpython::asyncio::Primitive;

    /// `awaits` keeps the shape schema 5 published (docs/json-schema.md,
    /// "asyncio"): the tag `kind` first, addresses in hex, `type` for a future.
    #[test]
    fn awaits_serialize_as_published() {
        let cases = [
            (Awaits::Task { task: Addr(0x10) }, r#"{"kind":"task","task":"0x10"}"#),
            (
                Awaits::Future {
                    future: Addr(0x20),
                    type_name: "_GatheringFuture".into(),
                    chained_from: Some(Addr(0x30)),
                },
                r#"{"kind":"future","future":"0x20","type":"_GatheringFuture","chained_from":"0x30"}"#,
            ),
            (
                Awaits::Primitive {
                    primitive: Primitive::Lock,
                    address: Addr(0x40),
                    name: None,
                    how: "Lock.acquire".into(),
                },
                r#"{"kind":"primitive","primitive":"lock","address":"0x40","name":null,"how":"Lock.acquire"}"#,
            ),
            (
                Awaits::Sleep { seconds: Some(1.5) },
                r#"{"kind":"sleep","seconds":1.5}"#,
            ),
            (Awaits::Sleep { seconds: None }, r#"{"kind":"sleep","seconds":null}"#),
            (
                Awaits::NotSuspended { why: "running".into() },
                r#"{"kind":"not_suspended","why":"running"}"#,
            ),
            (Awaits::Other { what: "x".into() }, r#"{"kind":"other","what":"x"}"#),
        ];
        for (a, want) in cases {
            assert_eq!(serde_json::to_string(&json_awaits(&a)).unwrap(), want);
        }
    }
}
