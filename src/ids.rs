//! Identities that cross the pipeline's stages: a process ([`Pid`]), a
//! thread within the host ([`Tid`]), both together ([`ThreadId`]), and an
//! address in a process's memory ([`Addr`]).
//!
//! All three numbers used to be bare integers, so a PID could stand where a
//! TID was meant (a `(pid, tid)` pair's `.0` and `.1`, a `pid` argument
//! given a thread's TID) and an address where a count or a size was meant,
//! and it all still compiled. As gimli does with its offsets, each is a
//! newtype: the compiler now tells them apart, and converting is a visible
//! `Pid(n)` / `.get()` at the edge where a raw number enters or leaves a
//! stage (a syscall, a /proc file, a memory read).
//!
//! They print and serialize exactly as the integers they replaced, so the
//! text and JSON reports, a versioned interface, do not change.

use std::fmt;

use serde::{Serialize, Serializer};

/// A process, as the host numbers it (not the PID inside a PID namespace).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Pid(pub i32);

/// A thread, as the host numbers it (not the TID inside a PID namespace).
/// A process's main thread has the process's number, but as a `Tid`: the
/// conversion `Tid(pid.get())` says that this is meant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Tid(pub i32);

/// An address in one process's address space. Which process is not part of
/// the value: the type that holds an `Addr` says (a `Resource`'s `pid`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Addr(pub u64);

macro_rules! number {
    ($name:ident, $raw:ty) => {
        impl $name {
            /// The raw number, for a syscall, a /proc path or arithmetic.
            #[inline]
            pub const fn get(self) -> $raw {
                self.0
            }
        }

        impl From<$raw> for $name {
            #[inline]
            fn from(n: $raw) -> Self {
                $name(n)
            }
        }

        impl From<$name> for $raw {
            #[inline]
            fn from(n: $name) -> Self {
                n.0
            }
        }

        /// The bare number, as the integer it replaced printed.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        /// The bare number too: a `{:?}` in a message or a test's failure
        /// reads as it did before the newtype.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

number!(Pid, i32);
number!(Tid, i32);
number!(Addr, u64);

/// `{:#x}`, the way the report writes addresses (`0x7f3a...`).
impl fmt::LowerHex for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A thread: host PID of its process, host TID. Ordered by PID, then TID
/// (the field order), which is the order of the report's threads and the
/// start of every cycle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ThreadId {
    pub pid: Pid,
    pub tid: Tid,
}

impl ThreadId {
    pub const fn new(pid: Pid, tid: Tid) -> Self {
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
