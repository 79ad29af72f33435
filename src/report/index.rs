//! Threads by (PID, TID): the one place the report's sections look up a
//! thread's name, stack and findings.

use std::collections::HashMap;

use super::style::{escape_name, quoted};
use crate::graph::ThreadId;
use crate::inspect::Inspection;
use crate::runtimes::Resource;
use crate::stacks::Frame;

/// Where to find a thread's name, stack and findings by (PID, TID).
pub struct Index<'a> {
    threads: HashMap<ThreadId, (&'a Inspection, usize)>,
}

impl<'a> Index<'a> {
    pub fn new(inspections: &'a [Inspection]) -> Self {
        let mut threads = HashMap::new();
        for ins in inspections {
            for (i, t) in ins.snapshot.threads.iter().enumerate() {
                threads.insert((ins.snapshot.pid, t.tid), (ins, i));
            }
        }
        Index { threads }
    }

    /// `Thread 1234 "t1"` (with the Python name when there is one).
    pub fn name(&self, id: ThreadId) -> String {
        match self.threads.get(&id) {
            Some((ins, i)) => {
                let t = &ins.snapshot.threads[*i];
                let py = ins.python_names[*i]
                    .as_deref()
                    .map(|n| format!(" (Python {})", quoted(n)))
                    .unwrap_or_default();
                let pid = if ins.snapshot.pid != id.0 || self.multi_process() {
                    format!(" of PID {}", id.0)
                } else {
                    String::new()
                };
                let ns = super::threads::ns_tid_note(t.tid, t.ns_tid);
                format!("thread {}{ns} {}{py}{pid}", id.1, quoted(&t.name))
            }
            None => format!("thread {} of PID {}", id.1, id.0),
        }
    }

    /// `Wife (27108)`: the Python name, else the thread's name, and its TID.
    pub fn short(&self, id: ThreadId) -> String {
        match self.threads.get(&id) {
            Some((ins, i)) => {
                let name = ins.python_names[*i]
                    .as_deref()
                    .unwrap_or(&ins.snapshot.threads[*i].name);
                format!("{} ({})", escape_name(name), id.1)
            }
            None => format!("thread {}", id.1),
        }
    }

    /// The thread's own name (not the Python one).
    pub fn plain_name(&self, id: ThreadId) -> String {
        self.threads
            .get(&id)
            .map(|(ins, i)| ins.snapshot.threads[*i].name.clone())
            .unwrap_or_default()
    }

    /// Holds no lock and waits for nothing with a known owner: may be
    /// folded with threads like it.
    pub fn holds_nothing_waits_for_no_owner(&self, id: ThreadId) -> bool {
        self.threads.get(&id).is_some_and(|(ins, i)| {
            let f = &ins.findings[*i];
            f.holds.is_empty() && f.wait.as_ref().map_or(true, |w| w.owner.tid.is_none())
        })
    }

    fn multi_process(&self) -> bool {
        let mut pids = self.threads.keys().map(|k| k.0);
        let first = pids.next();
        pids.any(|p| Some(p) != first)
    }

    pub(super) fn frames(&self, id: ThreadId) -> &'a [Frame] {
        self.threads
            .get(&id)
            .map(|(ins, i)| ins.stacks[*i].frames.as_slice())
            .unwrap_or(&[])
    }

    /// Where `id` waits (the frame that called the lock function).
    pub fn wait_site(&self, id: ThreadId) -> Option<&'a Frame> {
        let (ins, i) = self.threads.get(&id)?;
        let k = ins.findings[*i].wait.as_ref()?.site_frame?;
        ins.stacks[*i].frames.get(k)
    }

    /// Where `id` acquired `r`, when known.
    pub fn hold_site(&self, id: ThreadId, r: &Resource) -> Option<&'a Frame> {
        let (ins, i) = self.threads.get(&id)?;
        let h = ins.findings[*i]
            .holds
            .iter()
            .find(|h| h.resource.address == r.address && h.resource.pid == r.pid)?;
        ins.stacks[*i].frames.get(h.site_frame?)
    }
}
