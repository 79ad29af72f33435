//! Output: the human report and the versioned JSON document.

pub mod json;
pub mod style;
pub mod threads;
pub mod verdict;

use std::fmt::Write;

use crate::graph::Verdict;
use crate::inspect::Inspection;
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
    if s.leader_exited {
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

/// The footer: how long the target was paused and how long analysis took.
pub fn process_footer(ins: &Inspection) -> String {
    let s = &ins.snapshot;
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

/// The whole text report: verdict first, then every thread's stack.
pub fn render_text(inspections: &[Inspection], verdict: &Verdict, style: &Style) -> String {
    let mut out = String::new();
    out.push_str(&verdict::text(inspections, verdict, style));
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
        let _ = writeln!(out, "{}\n", process_header(ins, style));
        out.push_str(&threads::all_threads(ins, style));
    }
    for ins in inspections {
        let _ = writeln!(out, "{}", style.dim(&process_footer(ins)));
    }
    out
}

/// The whole JSON document (one line, newline-terminated).
pub fn render_json(inspections: &[Inspection], verdict: &Verdict) -> String {
    let doc = serde_json::json!({
        "schema_version": json::SCHEMA_VERSION,
        "lockdump_version": env!("CARGO_PKG_VERSION"),
        "pid": inspections.first().map(|i| i.snapshot.pid),
        "pids": inspections.iter().map(|i| i.snapshot.pid).collect::<Vec<_>>(),
        "pause_us": inspections.iter().map(|i| i.snapshot.pause.as_micros() as u64).sum::<u64>(),
        "verdict": verdict::json_verdict(verdict),
        "deadlocks": verdict::json_deadlocks(inspections, verdict),
        "processes": inspections.iter().map(json::process).collect::<Vec<_>>(),
        "threads": inspections.iter().flat_map(|i| json::threads(i, verdict)).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
