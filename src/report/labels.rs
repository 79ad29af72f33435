//! The words every part of the report names things with: kinds of lock,
//! resources, confidences, wait sites, addresses.
//!
//! A leaf of `report/`: the sections (threads, pools, asyncio, watch, the
//! picture) and the verdict that assembles them all use it, and it uses
//! none of them.

use super::style::clean;
use crate::ids::Addr;
use crate::runtimes::{Confidence, Resource, ResourceKind};
use crate::stacks::Frame;

/// An address as the JSON gives it: `0x5638dbdb2060`.
pub fn hex(v: Addr) -> String {
    format!("{v:#x}")
}

/// `mutex`, `Python Lock`, ... as a user says it.
pub fn kind_label(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Mutex => "mutex",
        ResourceKind::RecursiveMutex => "recursive mutex",
        ResourceKind::ErrorCheckMutex => "error-checking mutex",
        ResourceKind::AdaptiveMutex => "adaptive mutex",
        ResourceKind::RobustMutex => "robust mutex",
        ResourceKind::PiMutex => "priority-inheritance mutex",
        ResourceKind::RwLock => "rwlock",
        ResourceKind::Thread => "thread exit (join)",
        ResourceKind::RustMutex => "Rust Mutex",
        ResourceKind::RustRwLock => "Rust RwLock",
        ResourceKind::ParkingLotMutex => "parking_lot Mutex",
        ResourceKind::ParkingLotRwLock => "parking_lot RwLock",
        ResourceKind::CondVar => "condition variable",
        ResourceKind::Semaphore => "semaphore",
        ResourceKind::Barrier => "barrier",
        ResourceKind::Futex => "futex",
        ResourceKind::LibcLock => "glibc internal lock",
        ResourceKind::PyLock => "Python Lock",
        ResourceKind::PyRLock => "Python RLock",
        ResourceKind::PyCondition => "Python Condition",
        ResourceKind::PySemaphore => "Python Semaphore",
        ResourceKind::PyEvent => "Python Event",
        ResourceKind::PyQueue => "Python Queue",
        ResourceKind::PyMpLock => "multiprocessing lock",
        ResourceKind::PyFuture => "Python future",
        ResourceKind::Gil => "GIL",
        ResourceKind::Syscall => "system call",
    }
}

/// `mutex lock_b (0x5638dbdb2060)`.
pub fn resource_label(r: &Resource) -> String {
    match &r.name {
        // The GIL is named "GIL": "GIL GIL" said it twice (issue 23).
        Some(n) if n == kind_label(r.kind) => format!("{} ({:#x})", clean(n), r.address),
        Some(n) => format!("{} {} ({:#x})", kind_label(r.kind), clean(n), r.address),
        None => format!("{} {:#x}", kind_label(r.kind), r.address),
    }
}

pub fn confidence_label(c: Confidence) -> &'static str {
    match c {
        Confidence::Exact => "exact",
        Confidence::Inferred => "inferred",
        Confidence::Unknown => "unknown",
    }
}

pub fn site_label(f: &Frame) -> String {
    let func = f.function.as_deref().map(clean).unwrap_or_else(|| "??".into());
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{func} ({}:{line})", clean(short_path(file))),
        _ => format!("{func} ({})", f.module.as_deref().map(clean).unwrap_or_default()),
    }
}

fn short_path(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}
