//! The wait-for graph as a picture: Graphviz DOT (`--dot`) and a
//! self-contained HTML report with the graph as inline SVG (`--html FILE`),
//! drawn from the [`Report`]: its threads' waits and owners, its processes,
//! and the cycles of the verdict it carries.
//!
//! Nodes are threads (labelled with their name, host TID, namespace TID where
//! it differs, and Python name), the objects they wait for (labelled like the
//! text report: `mutex lock_b (0x…)`), and folded groups: at least
//! [`FOLD_MIN`] threads outside every cycle that wait for the same object and
//! hold nothing anyone waits for are one node with their count. Edges are
//! "waits for" (thread → object) and "held by" (object → owner). Every cycle's
//! threads, objects and edges are red, a circular wait through processes
//! too: its pipe, socket or child wait is an object in the waiting thread's
//! process, with an arrow on to the next thread of the cycle. Threads are grouped per process
//! (a `cluster` subgraph labelled with the PID and command).
//!
//! The SVG is laid out in-process by the `layout-rs` crate from the same DOT
//! text, so `--html` needs no Graphviz (nor anything else) on the machine it
//! runs on, which is what a static binary copied into a container has. See
//! docs/architecture.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::document::Report;
use super::json::Thread;
use super::labels::{kind_label, resource_label};
use super::style::clean;
use crate::graph::{resource_key, CycleWait, PeerKind, ResourceKey, ThreadId};
use crate::ids::{Pid, Tid};
use crate::runtimes::{Confidence, Resource, ResourceKind};

/// At least this many waiters of one object (outside cycles) become one node.
pub const FOLD_MIN: usize = 3;

const CYCLE: &str = "#cc0000";
const CYCLE_FILL: &str = "#ffe4e4";

/// A thread node, or a folded group of waiters.
struct ThreadNode {
    id: String,
    label: String,
    pid: Pid,
    in_cycle: bool,
}

struct ResourceNode {
    id: String,
    label: String,
    /// The cluster it is drawn in: its process, unless shared between processes.
    pid: Option<Pid>,
    in_cycle: bool,
}

struct Arrow {
    from: String,
    to: String,
    label: String,
    in_cycle: bool,
    dashed: bool,
}

/// The graph, ready to print.
struct Picture {
    title: String,
    processes: Vec<(Pid, String)>,
    threads: Vec<ThreadNode>,
    resources: Vec<ResourceNode>,
    arrows: Vec<Arrow>,
}

fn thread_id(ThreadId { pid, tid }: ThreadId) -> String {
    format!("t_{pid}_{tid}")
}

/// A thread's label: name, TIDs, Python name.
fn thread_label(t: &Thread) -> String {
    let mut s = format!("{}\nTID {}", clean(t.name), t.tid);
    if t.ns_tid != t.tid.get() {
        let _ = write!(s, " (ns TID {})", t.ns_tid);
    }
    if let Some(py) = t.python_name {
        let _ = write!(s, "\nPython \"{}\"", clean(py));
    }
    s
}

fn resource_text(r: &Resource) -> String {
    match &r.name {
        Some(n) => format!("{} {}\n{:#x}", kind_label(r.kind), clean(n), r.address),
        None => resource_label(r),
    }
}

fn build(report: &Report, title: &str) -> Picture {
    let verdict = report.graph;
    // What the cycles are made of.
    let mut cycle_threads: BTreeSet<ThreadId> = BTreeSet::new();
    let mut cycle_resources: BTreeSet<ResourceKey> = BTreeSet::new();
    let mut cycle_arrows: BTreeSet<(ThreadId, ResourceKey, ThreadId)> = BTreeSet::new();
    for d in &verdict.deadlocks {
        for e in &d.edges {
            cycle_threads.insert(e.from);
            cycle_threads.insert(e.to);
            let k = resource_key(&e.resource);
            cycle_resources.insert(k);
            cycle_arrows.insert((e.from, k, e.to));
        }
    }
    // A circular wait through processes: its threads, and its locks' arrows.
    for c in &verdict.process_cycles {
        let n = c.threads.len();
        for (k, (&t, w)) in c.threads.iter().zip(&c.waits).enumerate() {
            cycle_threads.insert(t);
            if let CycleWait::Lock { resource, .. } = w {
                let key = resource_key(resource);
                cycle_resources.insert(key);
                cycle_arrows.insert((t, key, c.threads[(k + 1) % n]));
            }
        }
    }

    // Every wait on an object (not a plain blocking syscall), by object.
    struct Waiter<'a> {
        id: ThreadId,
        thread: &'a Thread<'a>,
    }
    let mut waits: BTreeMap<ResourceKey, (Resource, Vec<Waiter>)> = BTreeMap::new();
    // Object -> its owner, with confidence, or the TID of an exited owner.
    let mut owners: BTreeMap<ResourceKey, (Option<ThreadId>, Confidence, Option<Tid>)> = BTreeMap::new();
    for t in &report.threads {
        let Some(w) = &t.blocked_on else { continue };
        if w.resource.kind == ResourceKind::Syscall {
            continue;
        }
        let k = resource_key(&w.resource);
        waits
            .entry(k)
            .or_insert_with(|| (w.resource.clone(), Vec::new()))
            .1
            .push(Waiter {
                id: ThreadId::new(t.pid, t.tid),
                thread: t,
            });
        if let (Some(tid), Some(pid)) = (w.owner_tid, w.owner_pid) {
            if w.owner_exited {
                owners.entry(k).or_insert((None, w.confidence, Some(tid)));
            } else {
                owners
                    .entry(k)
                    .or_insert((Some(ThreadId::new(pid, tid)), w.confidence, None));
            }
        }
    }
    let owner_threads: BTreeSet<ThreadId> = owners.values().filter_map(|o| o.0).collect();

    let mut pic = Picture {
        title: title.to_string(),
        processes: report
            .processes
            .iter()
            .map(|p| {
                let cmd = p.cmdline.first().cloned().unwrap_or_else(|| p.exe.clone());
                let cmd = cmd.rsplit('/').next().unwrap_or("").to_string();
                (p.pid, format!("PID {} {}", p.pid, clean(&cmd)))
            })
            .collect(),
        threads: Vec::new(),
        resources: Vec::new(),
        arrows: Vec::new(),
    };
    let mut shown: BTreeSet<ThreadId> = BTreeSet::new();
    let locate = |id: ThreadId| report.threads_of(id.pid).find(|t| t.tid == id.tid);
    let mut show = |pic: &mut Picture, id: ThreadId| {
        if !shown.insert(id) {
            return;
        }
        let label = match locate(id) {
            Some(t) => thread_label(t),
            None => format!("TID {} of PID {}\n(not inspected)", id.tid, id.pid),
        };
        pic.threads.push(ThreadNode {
            id: thread_id(id),
            label,
            pid: id.pid,
            in_cycle: cycle_threads.contains(&id),
        });
    };

    for (n, (k, (r, waiters))) in waits.iter().enumerate() {
        let rid = format!("r_{n}");
        let in_cycle = cycle_resources.contains(k);
        pic.resources.push(ResourceNode {
            id: rid.clone(),
            label: resource_text(r),
            pid: r.shared_key.is_none().then_some(r.pid),
            in_cycle,
        });
        let (fold, single): (Vec<&Waiter>, Vec<&Waiter>) = waiters
            .iter()
            .partition(|w| !cycle_threads.contains(&w.id) && !owner_threads.contains(&w.id));
        let fold_pid = fold.first().map(|w| w.id.pid);
        let foldable = fold.len() >= FOLD_MIN && fold.iter().all(|w| Some(w.id.pid) == fold_pid);
        let singles: Vec<&Waiter> = if foldable { single } else { waiters.iter().collect() };
        for w in singles {
            show(&mut pic, w.id);
            let mut label = "waits for".to_string();
            let owner = owners.get(k).and_then(|o| o.0);
            let arrow_in_cycle = owner.is_some_and(|o| cycle_arrows.contains(&(w.id, *k, o)));
            if arrow_in_cycle {
                label.push_str(" (cycle)");
            }
            pic.arrows.push(Arrow {
                from: thread_id(w.id),
                to: rid.clone(),
                label,
                in_cycle: arrow_in_cycle,
                dashed: false,
            });
        }
        if foldable {
            let gid = format!("g_{n}");
            let mut tids: Vec<String> = fold.iter().take(6).map(|w| w.id.tid.to_string()).collect();
            if fold.len() > 6 {
                tids.push("…".into());
            }
            let names: BTreeSet<&str> = fold.iter().map(|w| w.thread.name).collect();
            let mut shown_names: Vec<String> = names.iter().take(4).map(|n| clean(n)).collect();
            if names.len() > 4 {
                shown_names.push("…".into());
            }
            pic.threads.push(ThreadNode {
                id: gid.clone(),
                label: format!(
                    "{} threads: {}\nTIDs {}",
                    fold.len(),
                    shown_names.join(", "),
                    tids.join(", ")
                ),
                pid: fold_pid.unwrap_or(r.pid),
                in_cycle: false,
            });
            pic.arrows.push(Arrow {
                from: gid,
                to: rid.clone(),
                label: format!("{} wait for", fold.len()),
                in_cycle: false,
                dashed: false,
            });
        }
        match owners.get(k) {
            Some((Some(owner), confidence, _)) => {
                show(&mut pic, *owner);
                let in_cycle = in_cycle && cycle_threads.contains(owner);
                pic.arrows.push(Arrow {
                    from: rid.clone(),
                    to: thread_id(*owner),
                    label: match confidence {
                        Confidence::Inferred => "held by (inferred)".into(),
                        _ => "held by".into(),
                    },
                    in_cycle,
                    dashed: *confidence != Confidence::Exact,
                });
            }
            Some((None, _, Some(dead))) => {
                let did = format!("x_{n}");
                pic.threads.push(ThreadNode {
                    id: did.clone(),
                    label: format!("TID {dead}\n(exited)"),
                    pid: r.pid,
                    in_cycle: false,
                });
                pic.arrows.push(Arrow {
                    from: rid.clone(),
                    to: did,
                    label: "held by (exited: orphaned)".into(),
                    in_cycle: false,
                    dashed: true,
                });
            }
            _ => {}
        }
    }
    // The steps of a circular wait through processes that are not locks:
    // the thread → what it waits on (in its process) → the next thread,
    // through whose process alone the wait can end.
    for (c, cycle) in verdict.process_cycles.iter().enumerate() {
        let n = cycle.threads.len();
        for (k, (&t, w)) in cycle.threads.iter().zip(&cycle.waits).enumerate() {
            let CycleWait::Process {
                waits_on,
                pid,
                ended_by,
            } = w
            else {
                continue;
            };
            let next = cycle.threads[(k + 1) % n];
            show(&mut pic, t);
            show(&mut pic, next);
            let id = format!("p_{c}_{k}");
            let can = match ended_by {
                PeerKind::Writers => "write to it",
                PeerKind::Readers => "read from it",
                PeerKind::SocketPeers => "send on it",
                PeerKind::Children => "end it, by exiting",
            };
            pic.resources.push(ResourceNode {
                id: id.clone(),
                label: format!("{}\nonly PID {pid} can {can}", clean(waits_on)),
                pid: Some(t.pid),
                in_cycle: true,
            });
            pic.arrows.push(Arrow {
                from: thread_id(t),
                to: id.clone(),
                label: "waits on (cycle)".into(),
                in_cycle: true,
                dashed: false,
            });
            pic.arrows.push(Arrow {
                from: id,
                to: thread_id(next),
                label: format!("PID {pid} acts through"),
                in_cycle: true,
                dashed: false,
            });
        }
    }
    pic
}

/// A DOT double-quoted string: quotes and backslashes escaped, newlines as `\n`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn node_attrs(label: &str, shape: &str, in_cycle: bool) -> String {
    if in_cycle {
        format!(
            "[label={}, shape={shape}, color=\"{CYCLE}\", penwidth=3, style=filled, fillcolor=\"{CYCLE_FILL}\", fontcolor=\"{CYCLE}\"]",
            quote(label)
        )
    } else {
        format!("[label={}, shape={shape}]", quote(label))
    }
}

impl Picture {
    fn dot(&self, clusters: bool) -> String {
        let mut out = String::new();
        out.push_str("digraph lockdump {\n");
        let _ = writeln!(out, "  label={};", quote(&self.title));
        out.push_str("  labelloc=t;\n  fontsize=16;\n");
        out.push_str("  node [fontname=\"Helvetica\", fontsize=12];\n");
        out.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
        let mut placed: BTreeSet<&str> = BTreeSet::new();
        for (pid, label) in &self.processes {
            let threads: Vec<&ThreadNode> = self.threads.iter().filter(|t| t.pid == *pid).collect();
            let resources: Vec<&ResourceNode> = self.resources.iter().filter(|r| r.pid == Some(*pid)).collect();
            if threads.is_empty() && resources.is_empty() {
                continue;
            }
            let indent = if clusters {
                let _ = writeln!(out, "  subgraph cluster_p{pid} {{");
                let _ = writeln!(out, "    label={};", quote(label));
                "    "
            } else {
                "  "
            };
            for t in threads {
                let _ = writeln!(out, "{indent}{} {};", t.id, node_attrs(&t.label, "box", t.in_cycle));
                placed.insert(&t.id);
            }
            for r in resources {
                let _ = writeln!(out, "{indent}{} {};", r.id, node_attrs(&r.label, "ellipse", r.in_cycle));
                placed.insert(&r.id);
            }
            if clusters {
                out.push_str("  }\n");
            }
        }
        for t in self.threads.iter().filter(|t| !placed.contains(t.id.as_str())) {
            let _ = writeln!(out, "  {} {};", t.id, node_attrs(&t.label, "box", t.in_cycle));
        }
        for r in self.resources.iter().filter(|r| !placed.contains(r.id.as_str())) {
            let _ = writeln!(out, "  {} {};", r.id, node_attrs(&r.label, "ellipse", r.in_cycle));
        }
        for a in &self.arrows {
            let mut attrs = format!("label={}", quote(&a.label));
            if a.in_cycle {
                let _ = write!(attrs, ", color=\"{CYCLE}\", fontcolor=\"{CYCLE}\", penwidth=3");
            }
            if a.dashed {
                attrs.push_str(", style=dashed");
            }
            let _ = writeln!(out, "  {} -> {} [{attrs}];", a.from, a.to);
        }
        out.push_str("}\n");
        out
    }
}

/// The wait-for graph as Graphviz DOT (`--dot`).
pub fn render_dot(report: &Report, headline: &str) -> String {
    build(report, headline).dot(true)
}

/// The graph as an SVG document laid out in-process (layout-rs), or `None`
/// when there is nothing to draw (no thread waits for an object).
pub fn render_svg(report: &Report, headline: &str) -> Option<String> {
    let pic = build(report, headline);
    if pic.threads.is_empty() && pic.resources.is_empty() {
        return None;
    }
    // layout-rs flattens clusters and ignores the graph label: no clusters,
    // and the headline goes into the HTML around the picture.
    let dot = pic.dot(false);
    let mut parser = layout::gv::DotParser::new(&dot);
    let graph = parser.process().ok()?;
    let mut builder = layout::gv::GraphBuilder::new();
    builder.visit_graph(&graph);
    let mut visual = builder.get();
    let mut svg = layout::backends::svg::SVGWriter::new();
    visual.do_it(false, false, false, &mut svg);
    let doc = svg.finalize();
    // Inline SVG in HTML takes no XML declaration.
    let start = doc.find("<svg")?;
    Some(doc[start..].to_string())
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// One self-contained HTML file (`--html FILE`): the verdict, the graph as
/// inline SVG and the text report. No script, no external resource.
pub fn render_html(report: &Report, headline: &str, facts: &[(String, String)], text_report: &str) -> String {
    let svg = render_svg(report, headline);
    let deadlock = !report.graph.deadlocks.is_empty();
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>lockdump: {}</title>", html_escape(headline));
    out.push_str(
        "<style>\nbody { font-family: sans-serif; margin: 1.5em; color: #222; }\n\
         h1 { font-size: 1.4em; }\nh1.deadlock { color: #cc0000; }\n\
         table.facts td { padding: 0 1em 0 0; }\n\
         .graph { border: 1px solid #ccc; padding: 0.5em; overflow: auto; }\n\
         pre { font-size: 12px; background: #f6f6f6; padding: 1em; overflow: auto; }\n</style>\n</head>\n<body>\n",
    );
    let _ = writeln!(
        out,
        "<h1 class=\"{}\">{}</h1>",
        if deadlock { "deadlock" } else { "verdict" },
        html_escape(headline)
    );
    out.push_str("<table class=\"facts\">\n");
    for (k, v) in facts {
        let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", html_escape(k), html_escape(v));
    }
    out.push_str("</table>\n<h2>Wait-for graph</h2>\n<div class=\"graph\">\n");
    match svg {
        Some(svg) => out.push_str(&svg),
        None => out.push_str("<p>No thread waits for a lock or another thread: nothing to draw.</p>"),
    }
    out.push_str("\n</div>\n<h2>Report</h2>\n<pre>");
    out.push_str(&html_escape(text_report));
    out.push_str("</pre>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_dot_and_html_well_formed() {
        assert_eq!(quote("a\"b\\c\nd\u{7}"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(
            html_escape("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
