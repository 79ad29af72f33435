//! lockdump: why is this process stuck?
//!
//! Pipeline (see docs/architecture.md): a live process is captured into a
//! [`Snapshot`] while its threads are stopped ([`capture()`]), or a core file
//! is read into one ([`CoreFile`], [`inspect_core`]); [`analyze`] unwinds and
//! names its stacks and asks the runtimes what each thread waits on and
//! holds, giving an [`Inspection`]; [`verdict`] builds the wait-for graph
//! over every inspection and judges it ([`Verdict`]); [`report`] renders one
//! typed document of it as text, JSON, DOT or HTML.
//!
//! That is the library's API, with the command line ([`cli`]) and the
//! commands that drive the pipeline ([`watchdog`]: `lockdump run`; [`demo`]).
//! The stages' own modules are private. The integration tests drive some
//! internals directly (parsers under proptest, the in-process harness):
//! they reach them through [`test_support`], which is not API.

mod capture;
pub mod cli;
pub mod demo;
mod error;
mod graph;
mod ids;
mod inspect;
mod live;
mod memory;
mod printable;
mod proc;
pub mod report;
mod runtimes;
mod stacks;
mod symbols;
mod syscalls;
mod unwind;
mod watch;
pub mod watchdog;

// The stages, in pipeline order, and the types that pass between them.
pub use capture::corefile::CoreFile;
pub use capture::priority::raise as raise_priority;
pub use capture::stop::CaptureOptions;
pub use capture::{Snapshot, Source};
pub use error::{exit, InspectError};
pub use graph::{Verdict, VerdictKind};
pub use ids::{Addr, Pid, ThreadId, Tid};
pub use inspect::{analyze, capture, inspect, inspect_core, verdict, Inspection, Options};
pub use live::{tree, Live};
pub use symbols::diskcache::configure as configure_disk_cache;
pub use symbols::prefetch::hurry as hurry_prefetch;
pub use symbols::ModuleCache;
pub use watch::{confirm_cycles, watch};

/// Not API: the crate's internals, for the integration tests (tests/*.rs)
/// that drive them directly — the proptest fuzzers of the /proc, ELF, core,
/// unwind and graph code, and the in-process harness of tests/common that
/// captures and analyzes a fixture step by step. Moving those into unit
/// tests would move the fixture harness into the crate. Each module here
/// re-exports the public items of the crate module of the same name.
#[doc(hidden)]
pub mod test_support {
    pub mod capture {
        pub use crate::capture::*;
    }
    pub mod error {
        pub use crate::error::*;
    }
    pub mod graph {
        pub use crate::graph::*;
    }
    pub mod ids {
        pub use crate::ids::*;
    }
    pub mod inspect {
        pub use crate::inspect::*;
    }
    pub mod live {
        pub use crate::live::*;
    }
    pub mod memory {
        pub use crate::memory::*;
    }
    pub mod printable {
        pub use crate::printable::*;
    }
    pub mod proc {
        pub use crate::proc::*;
    }
    pub mod runtimes {
        pub use crate::runtimes::*;
    }
    pub mod stacks {
        pub use crate::stacks::*;
    }
    pub mod symbols {
        pub use crate::symbols::*;
    }
    pub mod syscalls {
        pub use crate::syscalls::*;
    }
    pub mod unwind {
        pub use crate::unwind::*;
    }
    pub mod watch {
        pub use crate::watch::*;
    }
}
