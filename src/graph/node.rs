//! The vertices of the wait-for graph: everything that can wait, and
//! everything that can be waited for.
//!
//! One enum for all of them, so that one graph holds every kind of "waits
//! for" (a lock's owner, an awaited task, the process at the other end of
//! a pipe) and a cycle can pass through any mix of them. Which arcs a
//! verdict follows is the verdict's rule ([`super::Via`]), not a property
//! of the nodes.

use serde::Serialize;

use crate::ids::{Addr, Pid, ThreadId};

/// An asyncio task: its process and the address of its `Task` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TaskId {
    pub pid: Pid,
    pub address: Addr,
}

/// A vertex of the wait-for graph.
///
/// Ordered tasks first, then threads, then processes: every cycle is
/// reported from its least node, so a cycle with a task in it starts at a
/// task (by address), one of threads at its lowest (PID, TID), and one
/// through processes at a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Task(TaskId),
    Thread(ThreadId),
    /// A process as a whole: what a reader of a pipe (or of a connected
    /// socket) waits for when only that process holds the other end, and
    /// what a parent in `waitpid` waits for. It acts only through its
    /// threads, any one of which could end such a wait
    /// ([`super::Via::Member`]).
    Process(Pid),
}

impl Node {
    pub fn thread(self) -> Option<ThreadId> {
        match self {
            Node::Thread(t) => Some(t),
            _ => None,
        }
    }

    pub fn task(self) -> Option<TaskId> {
        match self {
            Node::Task(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_process(self) -> bool {
        matches!(self, Node::Process(_))
    }
}
