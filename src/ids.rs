//! The identity of a thread across processes: its process's PID and its
//! own TID, both as the host sees them.
//!
//! A bare `(i32, i32)` let a PID stand where a TID was meant (`.0` or `.1`
//! picked the wrong one and still compiled); [`ThreadId`] names both.

use std::fmt;

use serde::{Serialize, Serializer};

/// A thread: host PID of its process, host TID. Ordered by PID, then TID
/// (the field order), which is the order of the report's threads and the
/// start of every cycle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ThreadId {
    pub pid: i32,
    pub tid: i32,
}

impl ThreadId {
    pub const fn new(pid: i32, tid: i32) -> Self {
        ThreadId { pid, tid }
    }
}

/// `(pid, tid)`, as the pair it replaced printed.
impl fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.pid, self.tid)
    }
}

/// `[pid, tid]`: the JSON document writes a thread so (docs/json-schema.md).
impl Serialize for ThreadId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.pid, self.tid).serialize(s)
    }
}
