//! The pipeline for one process: capture, then (with the target running
//! again) unwind, symbolize and analyze. The CLI calls this; so do tests.

use std::time::{Duration, Instant};

use crate::error::InspectError;
use crate::runtimes::ThreadFindings;
use crate::stacks::Stack;
use crate::symbols::{ModuleCache, ProcessSymbols};
use crate::target::capture::{capture, CaptureOptions};
use crate::target::Snapshot;
use crate::unwind::Unwinder;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub capture: CaptureOptions,
    pub max_frames: usize,
    /// Look for a Python interpreter and merge Python frames.
    pub python: bool,
    /// Show native frames of Python threads too.
    pub native: bool,
}

/// Everything known about one process after analysis.
pub struct Inspection {
    pub snapshot: Snapshot,
    /// Parallel to `snapshot.threads`.
    pub stacks: Vec<Stack>,
    /// Parallel to `snapshot.threads`.
    pub findings: Vec<ThreadFindings>,
    /// Python thread names by thread index, when the target is CPython.
    pub python_names: Vec<Option<String>>,
    /// `3.13.0t`-style description of the interpreter, if any.
    pub python_version: Option<String>,
    /// Wall time of analysis after capture.
    pub analysis_time: Duration,
}

pub fn inspect(pid: i32, opts: &Options, cache: &ModuleCache) -> Result<Inspection, InspectError> {
    let snapshot = capture(pid, &opts.capture)?;
    let started = Instant::now();
    let symbols = ProcessSymbols::load(&snapshot, cache);
    let memory = snapshot.memory();
    let mut unwinder = Unwinder::default();
    unwinder.max_frames = opts.max_frames.max(1);
    let stacks: Vec<Stack> = snapshot
        .threads
        .iter()
        .map(|t| unwinder.unwind(t, &symbols, &memory))
        .collect();
    let findings = vec![ThreadFindings::default(); snapshot.threads.len()];
    let python_names = vec![None; snapshot.threads.len()];
    Ok(Inspection {
        analysis_time: started.elapsed(),
        snapshot,
        stacks,
        findings,
        python_names,
        python_version: None,
    })
}
