//! Splicing Python frames into a native stack.
//!
//! Since 3.11 one `_PyEval_EvalFrameDefault` call runs several Python frames
//! (Python-to-Python calls do not recurse in C). [`PythonThread::eval_call`]
//! says which eval call runs each Python frame, counting from the innermost;
//! the k-th native `_PyEval_EvalFrameDefault` frame (innermost first) is that
//! call. Its Python frames go right above it, innermost first, so the merged
//! stack reads like the program: Python callers under the C they called.

use super::PythonThread;
use crate::stacks::{Frame, Stack};

/// Native function that runs Python frames.
const EVAL_FUNCTION: &str = "_PyEval_EvalFrameDefault";

/// `Frame::how` of Python frames that could not be placed (no eval frame was
/// symbolized in the native stack) and were put on top instead.
pub const UNPLACED: &str = "python-unplaced";

fn is_eval(f: &Frame) -> bool {
    !f.inlined && f.function_is(EVAL_FUNCTION)
}

/// Insert each thread's Python frames into its native stack at the
/// interpreter's eval frames. Without native symbols (no eval frame found),
/// the Python frames go on top, marked with `how = "python-unplaced"`.
pub fn merge_stacks(native: &Stack, python: &PythonThread) -> Stack {
    if python.frames.is_empty() {
        return native.clone();
    }
    let call_of = |i: usize| python.eval_call.get(i).copied().unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(native.frames.len() + python.frames.len());
    if !native.frames.iter().any(is_eval) {
        out.extend(python.frames.iter().cloned().map(|mut f| {
            f.how = Some(UNPLACED);
            f
        }));
        out.extend(native.frames.iter().cloned());
        return Stack {
            frames: out,
            error: native.error.clone(),
            truncated: native.truncated,
        };
    }
    let mut next = 0usize;
    let mut call = 0usize;
    for f in &native.frames {
        if is_eval(f) {
            while next < python.frames.len() && call_of(next) <= call {
                out.push(python.frames[next].clone());
                next += 1;
            }
            call += 1;
        }
        out.push(f.clone());
    }
    // Python frames of eval calls the native unwind did not reach (it stopped
    // early): keep them, outermost last.
    out.extend(python.frames[next..].iter().cloned());
    Stack {
        frames: out,
        error: native.error.clone(),
        truncated: native.truncated,
    }
}

/// The frame that matters for a native wait of a Python thread (issue 16.1):
/// from `site` (the first frame outside the C library), outward past the
/// interpreter's own code — native frames of the interpreter executable
/// `exe`, libpython and its extension modules (`_multiprocessing`'s
/// semaphore acquire) — and past Python frames of the standard library's
/// synchronization modules (`SemLock.__enter__` of
/// multiprocessing/synchronize.py, threading.py, queue.py,
/// concurrent/futures), to the program's own frame. `site` itself when every
/// frame outward is internal.
pub fn program_site(merged: &Stack, site: usize, exe: &std::path::Path) -> usize {
    merged
        .frames
        .iter()
        .enumerate()
        .skip(site)
        .find(|(_, f)| !is_interpreter_internal(f, exe))
        .map_or(site, |(k, _)| k)
}

fn is_interpreter_internal(f: &Frame, exe: &std::path::Path) -> bool {
    if f.kind == crate::stacks::FrameKind::Python {
        // threading.py, queue.py (and the other files naming searches
        // last), multiprocessing and concurrent.futures.
        return f.file.as_deref().is_some_and(|file| {
            super::naming::is_sync_library(file)
                || file.contains("/multiprocessing/")
                || file.contains("/concurrent/futures/")
        });
    }
    if crate::runtimes::frames::is_runtime_internal(f) {
        return true;
    }
    // Modules are named by file name: `python3.13`, `libpython3.13.so.1.0`,
    // `_multiprocessing.cpython-313-x86_64-linux-gnu.so`.
    f.module.as_deref().is_some_and(|m| {
        let name = m.rsplit('/').next().unwrap_or(m);
        exe.file_name().is_some_and(|e| e == name) || name.starts_with("libpython") || name.contains(".cpython-")
    })
}

/// Index in a merged stack of the `python_index`-th Python frame (to map a
/// `Wait::site_frame` from [`PythonThread::frames`] into the merged stack).
pub fn merged_index(merged: &Stack, python_index: usize) -> Option<usize> {
    merged
        .frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == crate::stacks::FrameKind::Python)
        .nth(python_index)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Tid;
    use crate::runtimes::ThreadFindings;
    use crate::stacks::FrameKind;

    fn native(name: &str) -> Frame {
        let mut f = Frame::native(0x1000, 0x2000);
        f.function = Some(name.into());
        f
    }
    fn py(name: &str) -> Frame {
        Frame {
            pc: 0,
            kind: FrameKind::Python,
            function: Some(name.into()),
            offset: None,
            module: None,
            file: Some("x.py".into()),
            line: Some(1),
            inlined: false,
            how: Some("python"),
            cfa: 0,
            context: None,
        }
    }
    fn thread(frames: Vec<Frame>, eval_call: Vec<usize>) -> PythonThread {
        PythonThread {
            tid: Tid(1),
            name: None,
            frames,
            eval_call,
            findings: ThreadFindings::default(),
            holds_gil: false,
            ident: 0,
            frame_error: None,
            name_note: None,
            stack_note: None,
        }
    }
    fn names(s: &Stack) -> Vec<String> {
        s.frames
            .iter()
            .map(|f| f.function.as_deref().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn frames_go_above_their_eval_call() {
        let n = Stack {
            frames: vec![
                native("futex_wait"),
                native("lock_PyThread_acquire_lock"),
                native(EVAL_FUNCTION),
                native("method_vectorcall"),
                native(EVAL_FUNCTION),
                native("main"),
            ],
            ..Default::default()
        };
        let p = thread(vec![py("inner"), py("middle"), py("outer")], vec![0, 0, 1]);
        let m = merge_stacks(&n, &p);
        assert_eq!(
            names(&m),
            [
                "futex_wait",
                "lock_PyThread_acquire_lock",
                "inner",
                "middle",
                EVAL_FUNCTION,
                "method_vectorcall",
                "outer",
                EVAL_FUNCTION,
                "main"
            ]
        );
        assert_eq!(merged_index(&m, 0), Some(2));
        assert_eq!(merged_index(&m, 2), Some(6));
        assert_eq!(merged_index(&m, 3), None);
    }

    #[test]
    fn unsymbolized_stacks_get_python_on_top() {
        let n = Stack {
            frames: vec![native("??"), native("??")],
            ..Default::default()
        };
        let p = thread(vec![py("a"), py("b")], vec![0, 0]);
        let m = merge_stacks(&n, &p);
        assert_eq!(names(&m), ["a", "b", "??", "??"]);
        assert!(m.frames[..2].iter().all(|f| f.how == Some(UNPLACED)));
    }

    #[test]
    fn short_native_stacks_keep_all_python_frames() {
        let n = Stack {
            frames: vec![native("futex_wait"), native(EVAL_FUNCTION)],
            truncated: true,
            ..Default::default()
        };
        let p = thread(vec![py("a"), py("b"), py("c")], vec![0, 1, 2]);
        let m = merge_stacks(&n, &p);
        assert_eq!(names(&m), ["futex_wait", "a", EVAL_FUNCTION, "b", "c"]);
        assert!(m.truncated);
    }
}
