//! Which runtime's word counts for a Python thread: CPython's findings win
//! over the native ones (the native analysis sees only the futex under a
//! Python lock, CPython sees the lock), and the stack shown is the Python
//! one (merged with the native frames under `--native`).

use super::PythonProcess;
use crate::capture::Snapshot;
use crate::runtimes::{Hold, ThreadFindings, Wait};
use crate::stacks::{FrameKind, Stack};

fn union(mut a: Vec<Hold>, b: Vec<Hold>) -> Vec<Hold> {
    for h in b {
        if !a
            .iter()
            .any(|x| x.resource.address == h.resource.address && x.resource.kind == h.resource.kind)
        {
            a.push(h);
        }
    }
    a
}

/// `CPython 3.13.5 (free-threaded)`.
pub fn describe(py: &PythonProcess) -> String {
    let (a, b, c) = py.version;
    let ft = if py.free_threaded { " (free-threaded)" } else { "" };
    format!("CPython {a}.{b}.{c}{ft}")
}

/// Put Python stacks, names and findings in place. CPython's findings win over
/// the native ones: the native analysis only sees the futex under a Python
/// lock (a semaphore or a parked thread), CPython sees the lock.
pub fn apply(
    py: &PythonProcess,
    snapshot: &Snapshot,
    native: &[Stack],
    show_native: bool,
    stacks: &mut [Stack],
    findings: &mut [ThreadFindings],
    names: &mut [Option<String>],
) {
    for pt in &py.threads {
        let Some(i) = snapshot.thread_index(pt.tid) else {
            continue;
        };
        names[i] = pt.name.clone();
        let merged = super::merge_stacks(&native[i], pt);
        // Map native frame indices into the merged stack.
        let native_in_merged: Vec<usize> = merged
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == FrameKind::Native)
            .map(|(k, _)| k)
            .collect();
        let f = &mut findings[i];
        let py_f = &pt.findings;
        let native_site = |s: Option<usize>| s.and_then(|k| native_in_merged.get(k).copied());
        let py_site = |s: Option<usize>| s.and_then(|k| super::merged_index(&merged, k));
        let mut wait = match (&py_f.wait, f.wait.take()) {
            (Some(w), _) => Some(Wait {
                site_frame: py_site(w.site_frame),
                ..w.clone()
            }),
            // A native wait (a semaphore, a C extension's lock): its site
            // is the program's frame, not the interpreter's or the
            // standard library's code between them.
            (None, Some(w)) => Some(Wait {
                site_frame: native_site(w.site_frame).map(|k| super::program_site(&merged, k, &snapshot.exe)),
                ..w
            }),
            (None, None) => None,
        };
        let mut holds: Vec<Hold> = f
            .holds
            .drain(..)
            .map(|h| Hold {
                site_frame: native_site(h.site_frame),
                ..h
            })
            .collect();
        holds = union(
            py_f.holds
                .iter()
                .map(|h| Hold {
                    site_frame: py_site(h.site_frame),
                    ..h.clone()
                })
                .collect(),
            holds,
        );
        if py_f.blocked_in.is_some() {
            f.blocked_in = py_f.blocked_in.clone();
        }
        if show_native || pt.frames.is_empty() {
            stacks[i] = merged;
        } else {
            // Python frames only (as py-spy shows them); sites move to the
            // index of the same frame in the Python-only stack, or to the
            // innermost Python frame for a native site.
            let python_only: Vec<usize> = merged
                .frames
                .iter()
                .enumerate()
                .filter(|(_, f)| f.kind == FrameKind::Python)
                .map(|(k, _)| k)
                .collect();
            let remap = |s: Option<usize>| s.map(|k| python_only.iter().position(|&p| p >= k).unwrap_or(0));
            if let Some(w) = wait.as_mut() {
                w.site_frame = remap(w.site_frame);
            }
            for h in &mut holds {
                h.site_frame = remap(h.site_frame);
            }
            let mut frames: Vec<_> = python_only.iter().map(|&k| merged.frames[k].clone()).collect();
            frames.shrink_to_fit();
            stacks[i] = Stack {
                frames,
                error: pt.frame_error.clone().or(merged.error),
                truncated: merged.truncated,
            };
        }
        f.wait = wait;
        f.holds = holds;
    }
}

/// What is shown per thread (parallel to `snapshot.threads`).
pub struct Shown {
    /// The native stack, or for a Python thread its Python stack (merged
    /// with the native one under `--native`); `None` when no thread's
    /// differs from its native stack (not CPython): the caller keeps the
    /// native stacks rather than a copy (10,000 threads' frames are ~10 MB).
    pub stacks: Option<Vec<Stack>>,
    pub names: Vec<Option<String>>,
    /// Why a Python thread has no Python name.
    pub name_notes: Vec<Option<String>>,
    /// Why a thread's Python stack could not be read as of the stop.
    pub stack_notes: Vec<Option<String>>,
}

/// The stacks, names and notes to show, with CPython's findings put in
/// place over the native ones ([`apply`]) when the target runs CPython.
pub fn show(
    python: Option<&PythonProcess>,
    snapshot: &Snapshot,
    native: &[Stack],
    show_native: bool,
    findings: &mut [ThreadFindings],
) -> Shown {
    let mut stacks = None;
    let mut python_names = vec![None; snapshot.threads.len()];
    let mut python_name_notes = vec![None; snapshot.threads.len()];
    let mut python_stack_notes: Vec<Option<String>> = vec![None; snapshot.threads.len()];
    if let Some(py) = python {
        let stacks = stacks.insert(native.to_vec());
        apply(py, snapshot, native, show_native, stacks, findings, &mut python_names);
        for pt in &py.threads {
            if let Some(i) = snapshot.thread_index(pt.tid) {
                python_name_notes[i] = pt.name_note.clone();
                python_stack_notes[i] = pt.stack_note.clone();
            }
        }
        // A thread inside the eval loop with no Python frames to show: its
        // Python state was not there to read (the copy during the stop was
        // not made, and the thread ran on), never an empty stack shown as
        // complete.
        for (i, t) in snapshot.threads.iter().enumerate() {
            let in_eval = native[i].frames.iter().any(|f| {
                f.function
                    .as_deref()
                    .is_some_and(|n| n.starts_with("_PyEval_EvalFrame"))
            });
            let shown = py.threads.iter().any(|pt| pt.tid == t.tid && !pt.frames.is_empty());
            if in_eval && !shown && python_stack_notes[i].is_none() {
                python_stack_notes[i] = Some(super::stopcopy::not_reached(if snapshot.core().is_some() {
                    "the thread was in the eval loop, but its thread state had no Python frame in the core"
                } else if snapshot.runtime_copy.made {
                    "the thread was in the eval loop, but its thread state had no Python frame when copied"
                } else {
                    "the thread ended its request before it was read (Python state is read after the stop \
                         when it could not be copied during it)"
                }));
            }
        }
    }
    Shown {
        stacks,
        names: python_names,
        name_notes: python_name_notes,
        stack_notes: python_stack_notes,
    }
}
