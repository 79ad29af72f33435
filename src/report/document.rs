//! The report as one typed document (issue 24): built once, by
//! [`Report::build`], from the inspections, the verdict (with what
//! `--watch` saw) and where and when the capture was made. `--json` is
//! `serde_json` of it, so the JSON schema (docs/json-schema.md, checked
//! against this type by `tests/json_schema.rs`) and the type cannot drift
//! apart. The text report's verdict and thread sections, and the DOT/HTML
//! picture, read the threads (names, stacks, waits with their timeouts,
//! holds) and processes from it, and the verdict it carries; the text's
//! process headers and footers and asyncio's task lists still read the
//! inspections.
//!
//! Each part keeps its own module's type (`json::Thread`,
//! `verdict::JsonVerdict`, `pools::JsonPoolStarvation`, ...); this file
//! only puts them together in the document's order. Data the text report
//! needs and the JSON does not carry is in fields marked `#[serde(skip)]`.

use serde::Serialize;

use super::json::{self, Process, Thread};
use super::verdict::{JsonDeadlock, JsonVerdict};
use super::Context;
use crate::graph::Verdict;
use crate::ids::Pid;
use crate::inspect::Inspection;
use crate::live::identity::{rfc3339, Host};
use crate::watch::Watched;

/// The whole report, as `--json` writes it (schema [`json::SCHEMA_VERSION`]).
#[derive(Serialize)]
pub struct Report<'a> {
    pub schema_version: u32,
    pub lockdump_version: &'static str,
    /// The first inspected PID.
    pub pid: Option<Pid>,
    pub pids: Vec<Pid>,
    /// Total time the targets were stopped, µs.
    pub pause_us: u64,
    pub verdict: JsonVerdict,
    /// The lock cycles, in the verdict's order.
    pub deadlocks: Vec<JsonDeadlock>,
    pub processes: Vec<Process<'a>>,
    /// Every thread of every process, in process order then thread order.
    pub threads: Vec<Thread<'a>>,
    /// Schema 5: a live process or core files.
    pub source: Source,
    /// Schema 4: what `--watch` saw (null without it).
    pub watch: Option<&'a Watched>,
    /// Added within schema 3: where and when the report was made.
    pub host: &'a Host,
    pub captured_at: String,
    /// The verdict the document was built from: the text report's
    /// sections walk its cycles, chains and hangs (with their resources)
    /// through the report's threads.
    #[serde(skip)]
    pub graph: &'a Verdict,
}

/// `source` (schema 5): `{"kind": "live"}`, or for `--core`
/// `{"kind": "core", "cores": [...]}`, one per core in the order given.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Live,
    Core { cores: Vec<CoreSource> },
}

/// One core file of `source.cores`.
#[derive(Serialize)]
pub struct CoreSource {
    pub file: String,
    /// The PID the dumped process had.
    pub pid: Pid,
    /// The signal that caused the dump.
    pub signal: Option<i32>,
    /// RFC 3339, when the core was written.
    pub written_at: Option<String>,
    /// The report's lines about what the core could not give.
    pub notes: Vec<String>,
}

impl<'a> Report<'a> {
    /// The one place the report is assembled from the pipeline's types.
    pub fn build(inspections: &'a [Inspection], verdict: &'a Verdict, ctx: &'a Context) -> Report<'a> {
        let threads: Vec<Thread<'a>> = inspections.iter().flat_map(|i| json::threads(i, verdict)).collect();
        let deadlocks = super::verdict::json_deadlocks(&super::index::Index::new(&threads), verdict);
        Report {
            schema_version: json::SCHEMA_VERSION,
            lockdump_version: env!("CARGO_PKG_VERSION"),
            pid: inspections.first().map(|i| i.snapshot.pid),
            pids: inspections.iter().map(|i| i.snapshot.pid).collect(),
            pause_us: inspections.iter().map(|i| i.snapshot.pause.as_micros() as u64).sum(),
            verdict: super::verdict::json_verdict(verdict),
            deadlocks,
            processes: inspections
                .iter()
                .map(|i| json::process(i, ctx.process(i.snapshot.pid)))
                .collect(),
            threads,
            source: Source::of(inspections),
            watch: verdict.watch.as_ref(),
            host: &ctx.host,
            captured_at: rfc3339(ctx.captured_at),
            graph: verdict,
        }
    }

    /// The JSON document (pretty, newline-terminated).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    /// The threads of process `pid`, in the snapshot's order.
    pub fn threads_of(&self, pid: Pid) -> impl Iterator<Item = &Thread<'a>> {
        self.threads.iter().filter(move |t| t.pid == pid)
    }

    /// The process `pid`.
    pub fn process(&self, pid: Pid) -> Option<&Process<'a>> {
        self.processes.iter().find(|p| p.pid == pid)
    }
}

impl Source {
    fn of(inspections: &[Inspection]) -> Source {
        let cores: Vec<CoreSource> = inspections
            .iter()
            .filter_map(|i| i.snapshot.core().map(|c| (i, c)))
            .map(|(ins, core)| CoreSource {
                file: core.path.display().to_string(),
                pid: ins.snapshot.pid,
                signal: core.signal,
                written_at: core.written.map(rfc3339),
                notes: super::core_lines(core).into_iter().skip(1).collect(),
            })
            .collect();
        if cores.is_empty() {
            Source::Live
        } else {
            Source::Core { cores }
        }
    }
}
