//! Output: the human report and the versioned JSON document.

pub mod asyncio;
pub mod document;
pub mod index;
pub mod json;
pub mod labels;
pub mod picture;
pub mod pools;
pub mod style;
pub mod thread_section;
pub mod threads;
pub mod verdict;
pub mod watch;

use std::fmt::Write;

use crate::graph::Verdict;
use crate::ids::{Pid, Tid};
use crate::inspect::Inspection;
use crate::live::identity::{rfc3339, Host, ProcessIdentity};
use document::Report;
use style::{clean, Style};

/// The process line that opens a process's section.
pub fn process_header(ins: &Inspection, style: &Style) -> String {
    let s = &ins.snapshot;
    let cmd = if s.cmdline.is_empty() {
        s.exe.display().to_string()
    } else {
        s.cmdline.join(" ")
    };
    let mut line = format!(
        "Process {} ({}) — {} threads",
        style.bold(&s.pid.to_string()),
        clean(&truncate(&cmd, 120)),
        s.threads.len()
    );
    if let Some(v) = &ins.python_version {
        let _ = write!(line, " — {v}");
    }
    // Named whenever identified: which library's layouts the lock analysis used.
    if ins.libc.name.is_some() {
        let _ = write!(line, " — libc: {}", ins.libc.describe());
    }
    if let Some(core) = s.core() {
        for l in core_lines(core) {
            let _ = write!(line, "\n  {}", clean(&l));
        }
    }
    if s.leader_exited && s.core().is_none() {
        let _ = write!(
            line,
            "\n  main thread {} has exited (pthread_exit); the other threads live on and are shown",
            s.pid
        );
    }
    if let Some(tr) = &s.tracer {
        let _ = write!(
            line,
            "\n  traced by PID {} ({}): read without ptrace (--no-stop); its threads in state t are stopped by that tracer",
            tr.pid,
            clean(&tr.name)
        );
    }
    line
}

/// What the header says about a core file: which file, when and why it
/// was written, and everything that keeps it from being read in full
/// (truncation, files missing or of another build, memory left out).
pub fn core_lines(core: &crate::capture::corefile::CoreFile) -> Vec<String> {
    use crate::capture::corefile::FileCheck;
    let mut out = vec![format!(
        "from core file {}{}{}: a dead process, read as it was when dumped (no thread names, scheduler \
         states or wait channels)",
        core.path.display(),
        core.written
            .map(|t| format!(", written {}", rfc3339(t)))
            .unwrap_or_default(),
        core.signal
            .filter(|&s| s > 0)
            .map(|s| format!(" on signal {s}"))
            .unwrap_or_default()
    )];
    out.extend(core.notes.iter().cloned());
    let mut paths: Vec<&str> = core.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    for p in paths {
        // Not files to look for: shared memory (/dev/zero, SysV), memfds.
        let name = p.strip_prefix('/').unwrap_or(p);
        if name.starts_with("dev/") || name.starts_with("SYSV") || name.starts_with("memfd:") {
            continue;
        }
        match core.check_file(p) {
            FileCheck::Missing(why) => out.push(format!(
                "mapped file {p}: {why} (under --sysroot {}): its frames are unnamed and the pages the core left \
                 out unread",
                core.sysroot.display()
            )),
            FileCheck::Differs { core: c, file } => out.push(format!(
                "mapped file {p}: {} is another build (build ID {file}, the core's {c}): not used, its frames are \
                 unnamed",
                core.local_path(p).display()
            )),
            FileCheck::Matches | FileCheck::Unchecked => {}
        }
    }
    out
}

/// The footer: how long the target was paused and how long analysis took.
pub fn process_footer(ins: &Inspection) -> String {
    let s = &ins.snapshot;
    if s.core().is_some() {
        return format!(
            "PID {} (core file): read in {:.2} ms, analyzed in {:.2} ms.",
            s.pid,
            ms(s.capture_time),
            ms(ins.analysis_time)
        );
    }
    if s.no_stop {
        return format!(
            "PID {}: never stopped (--no-stop): stacks may be partial. Captured in {:.2} ms, analyzed in {:.2} ms.",
            s.pid,
            ms(s.capture_time),
            ms(ins.analysis_time)
        );
    }
    let left = s.threads.iter().filter(|t| t.left_running.is_some()).count();
    format!(
        "PID {}: target paused {:.3} ms ({} threads{}); capture {:.2} ms, analysis {:.2} ms.",
        s.pid,
        ms(s.pause),
        s.threads.len(),
        if left > 0 {
            format!(", {left} left running: a stop would interrupt their calls")
        } else {
            String::new()
        },
        ms(s.capture_time),
        ms(ins.analysis_time)
    )
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Where and when a report was made: the host, the capture time, and each
/// process's PID namespace and container (see `identity`).
#[derive(Debug, Clone)]
pub struct Context {
    pub captured_at: std::time::SystemTime,
    pub host: Host,
    pub processes: Vec<ProcessIdentity>,
}

impl Context {
    /// Read now, for the processes of `inspections`.
    pub fn read(inspections: &[Inspection], captured_at: std::time::SystemTime) -> Context {
        Context {
            captured_at,
            host: Host::read(),
            processes: inspections
                .iter()
                // A core's PID names no process here (or an unrelated one).
                .filter_map(|i| i.snapshot.live().map(|l| ProcessIdentity::read(l.pid)))
                .collect(),
        }
    }

    fn process(&self, pid: Pid) -> Option<&ProcessIdentity> {
        self.processes.iter().find(|p| p.pid == pid.get())
    }
}

/// The line under a process header for a process in another PID namespace
/// or in a container; `None` for a process beside lockdump.
pub fn namespace_line(ins: &Inspection, ctx: &Context) -> Option<String> {
    let id = ctx.process(ins.snapshot.pid)?;
    let mut parts = Vec::new();
    if let Some(c) = &id.container {
        let mut s = format!("container {}", c.id.get(..12).unwrap_or(&c.id));
        if let Some(rt) = c.runtime {
            let _ = write!(s, " ({rt})");
        }
        if let Some(pod) = &c.pod_uid {
            let _ = write!(s, ", pod {pod}");
        }
        parts.push(s);
    }
    if id.other_pid_ns {
        parts.push(format!(
            "own PID namespace (pid:[{}]): PID {} there; threads show host TID (ns TID)",
            id.pid_ns.unwrap_or(0),
            ins.snapshot.ns_pid
        ));
    }
    (!parts.is_empty()).then(|| format!("  {}", parts.join("; ")))
}

/// The whole text report: verdict first, then every thread's stack.
pub fn render_text(inspections: &[Inspection], verdict: &Verdict, style: &Style) -> String {
    render_text_with(
        inspections,
        verdict,
        style,
        &Context::read(inspections, std::time::SystemTime::now()),
    )
}

/// [`render_text`] with the identity read at capture time.
pub fn render_text_with(inspections: &[Inspection], verdict: &Verdict, style: &Style, ctx: &Context) -> String {
    text(&Report::build(inspections, verdict, ctx), inspections, style, ctx)
}

/// The text report of `report`: its verdict and its threads; the process
/// headers and footers, and asyncio's tasks, still from `inspections` (the
/// ones it was built from).
pub fn text(report: &Report, inspections: &[Inspection], style: &Style, ctx: &Context) -> String {
    let mut out = String::new();
    out.push_str(&verdict::text(
        &report.threads,
        report.processes.len(),
        report.graph,
        style,
    ));
    for ins in inspections {
        // A C library that could not be identified: say which layouts were assumed.
        if ins.libc.name.is_none() {
            let _ = writeln!(
                out,
                "{}",
                style.yellow(&format!(
                    "PID {}: libc: unknown ({}); glibc's layouts were assumed for lock analysis",
                    ins.snapshot.pid,
                    clean(&ins.libc.evidence)
                ))
            );
        }
    }
    for ins in inspections {
        let pid = ins.snapshot.pid;
        let _ = writeln!(out, "{}", process_header(ins, style));
        if let Some(line) = namespace_line(ins, ctx) {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
        out.push_str(&thread_section::all_threads(report, pid, style));
        if let Some(a) = &ins.asyncio {
            let blocked = |tid: Tid| {
                let t = report.threads_of(pid).find(|t| t.tid == tid)?;
                t.blocked_on.as_ref().map(|w| labels::resource_label(&w.resource))
            };
            out.push_str(&asyncio::tasks_section(pid, a, &blocked, style));
            out.push('\n');
        }
    }
    for ins in inspections {
        let _ = writeln!(out, "{}", style.dim(&process_footer(ins)));
    }
    out
}

/// The self-contained HTML report (`--html`) of `report`: headline, facts
/// (host, time, processes, exit code), the graph as SVG, the uncolored
/// text report.
pub fn html(report: &Report, inspections: &[Inspection], ctx: &Context, exit_code: i32) -> String {
    let headline = verdict::headline(report.graph, &Style::plain());
    let text = text(report, inspections, &Style::plain(), ctx);
    let mut facts = vec![
        ("exit code".to_string(), exit_code.to_string()),
        ("captured at".to_string(), report.captured_at.clone()),
        (
            "host".to_string(),
            format!(
                "{} (boot {})",
                report.host.name.as_deref().unwrap_or("?"),
                report.host.boot_id.as_deref().unwrap_or("?")
            ),
        ),
        ("lockdump".to_string(), report.lockdump_version.to_string()),
    ];
    for ins in inspections {
        facts.push((
            format!("PID {}", ins.snapshot.pid),
            process_header(ins, &Style::plain()),
        ));
        if let Some(line) = namespace_line(ins, ctx) {
            facts.push((format!("PID {} runs in", ins.snapshot.pid), line.trim().to_string()));
        }
    }
    picture::render_html(report, &headline, &facts, &text)
}

/// The wait-for graph of `report` as Graphviz DOT (`--dot`).
pub fn dot(report: &Report) -> String {
    picture::render_dot(report, &verdict::headline(report.graph, &Style::plain()))
}

/// The whole JSON document (pretty, newline-terminated).
pub fn render_json(inspections: &[Inspection], verdict: &Verdict) -> String {
    render_json_with(
        inspections,
        verdict,
        &Context::read(inspections, std::time::SystemTime::now()),
    )
}

/// [`render_json`] with the identity read at capture time: the
/// [`Report`], serialized.
pub fn render_json_with(inspections: &[Inspection], verdict: &Verdict, ctx: &Context) -> String {
    Report::build(inspections, verdict, ctx).to_json()
}
