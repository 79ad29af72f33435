//! Threads by (PID, TID): the one place the report's sections look up a
//! thread's name, stack, wait and holds. It indexes the report's threads
//! (`threads[]` of the [`Report`](super::document::Report)), not the
//! pipeline's types.

use std::collections::HashMap;

use super::json::Thread;
use super::style::{escape_name, quoted};
use crate::graph::ThreadId;
use crate::runtimes::Resource;
use crate::stacks::Frame;

/// Where to find a thread's name, stack and findings by (PID, TID).
pub struct Index<'a> {
    threads: HashMap<ThreadId, &'a Thread<'a>>,
    /// The threads are of more than one process: names say their PID.
    multi_process: bool,
}

impl<'a> Index<'a> {
    pub fn new(threads: &'a [Thread<'a>]) -> Self {
        let map: HashMap<ThreadId, &Thread> = threads.iter().map(|t| (ThreadId::new(t.pid, t.tid), t)).collect();
        let mut pids = threads.iter().map(|t| t.pid);
        let first = pids.next();
        Index {
            multi_process: pids.any(|p| Some(p) != first),
            threads: map,
        }
    }

    /// The thread `id`, if it was inspected.
    pub fn thread(&self, id: ThreadId) -> Option<&'a Thread<'a>> {
        self.threads.get(&id).copied()
    }

    /// `Thread 1234 "t1"` (with the Python name when there is one).
    pub fn name(&self, id: ThreadId) -> String {
        match self.threads.get(&id) {
            Some(t) => {
                let py = t
                    .python_name
                    .map(|n| format!(" (Python {})", quoted(n)))
                    .unwrap_or_default();
                let pid = if self.multi_process {
                    format!(" of PID {}", id.pid)
                } else {
                    String::new()
                };
                let ns = super::threads::ns_tid_note(t.tid, t.ns_tid);
                format!("thread {}{ns} {}{py}{pid}", id.tid, quoted(t.name))
            }
            None => format!("thread {} of PID {}", id.tid, id.pid),
        }
    }

    /// `Wife (27108)`: the Python name, else the thread's name, and its TID.
    pub fn short(&self, id: ThreadId) -> String {
        match self.threads.get(&id) {
            Some(t) => format!("{} ({})", escape_name(t.python_name.unwrap_or(t.name)), id.tid),
            None => format!("thread {}", id.tid),
        }
    }

    /// The thread's own name (not the Python one).
    pub fn plain_name(&self, id: ThreadId) -> String {
        self.threads.get(&id).map(|t| t.name.to_string()).unwrap_or_default()
    }

    /// Holds no lock and waits for nothing with a known owner: may be
    /// folded with threads like it.
    pub fn holds_nothing_waits_for_no_owner(&self, id: ThreadId) -> bool {
        self.threads
            .get(&id)
            .is_some_and(|t| t.holds.is_empty() && t.blocked_on.as_ref().map_or(true, |w| w.owner_tid.is_none()))
    }

    pub(super) fn frames(&self, id: ThreadId) -> &'a [Frame] {
        self.threads.get(&id).map(|t| t.frames).unwrap_or(&[])
    }

    /// Where `id` waits (the frame that called the lock function).
    pub fn wait_site(&self, id: ThreadId) -> Option<&'a Frame> {
        let t = self.threads.get(&id)?;
        t.frames.get(t.blocked_on.as_ref()?.site_frame?)
    }

    /// Where `id` acquired `r`, when known.
    pub fn hold_site(&self, id: ThreadId, r: &Resource) -> Option<&'a Frame> {
        let t = self.threads.get(&id)?;
        let h = t
            .holds
            .iter()
            .find(|h| h.resource.address == r.address && h.resource.pid == r.pid)?;
        t.frames.get(h.site_frame?)
    }
}
