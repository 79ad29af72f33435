//! lockdump: why is this process stuck?
//!
//! Pipeline (see docs/architecture.md): [`capture`] takes a [`capture::Snapshot`]
//! while the threads are stopped; [`unwind`] and [`symbols`] turn it into
//! [`stacks::Stack`]s; [`runtimes`] say what each thread waits on and holds;
//! [`graph`] finds the cycles; [`report`] prints text or JSON.

pub mod capture;
pub mod cli;
pub mod demo;
pub mod error;
pub mod graph;
pub mod ids;
pub mod inspect;
pub mod live;
pub mod memory;
pub mod printable;
pub mod proc;
pub mod report;
pub mod runtimes;
pub mod stacks;
pub mod symbols;
pub mod syscalls;
pub mod unwind;
pub mod watch;
pub mod watchdog;
