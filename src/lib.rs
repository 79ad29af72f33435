//! lockdump: why is this process stuck?
//!
//! Pipeline (see docs/architecture.md): [`target`] captures a [`target::Snapshot`]
//! while the threads are stopped; [`unwind`] and [`symbols`] turn it into
//! [`stacks::Stack`]s; [`runtimes`] say what each thread waits on and holds;
//! [`graph`] finds the cycles; [`report`] prints text or JSON.

pub mod error;
pub mod graph;
pub mod proc;
pub mod runtimes;
pub mod stacks;
pub mod target;
