//! Everything lockdump knows about CPython: find the interpreter in a target
//! process, walk its threads and Python frames, name each Python thread, and
//! say what each Python thread waits on and holds (Lock, RLock, `with`
//! blocks, Condition / Semaphore / Event / Barrier / Queue / Thread.join waits,
//! interpreter shutdown, the GIL).
//!
//! Works without DWARF: the runtime is found through the `_PyRuntime` symbol
//! (`.dynsym`) or the `.PyRuntime` section; layouts come from the
//! interpreter's own `_Py_DebugOffsets` (3.13+) or from the per-version
//! tables in [`layout`] (3.11, 3.12), the one file with version numbers.
//!
//! | interpreter | how it is checked |
//! | --- | --- |
//! | 3.11.7, 3.12.1, 3.13.0 (pyenv) | live fixtures (tests/cpython.rs), gdb |
//! | 3.11.2 (Debian, stripped, static libpython) | live fixtures |
//! | 3.13.5t (free-threaded) | live fixtures, DWARF comparison |
//! | 3.14.10 / 3.15.2 (Debian sid, stripped, DWARF in libpython3.X-dbg) and their Py_DEBUG builds | live fixtures (tests/python.rs, tests/cpython.rs), DWARF comparison (tests/cpython_layouts.rs) |
//! | 3.14t / 3.15t (free-threaded) | memory images from the real 3.14/3.15 offsets plus the documented free-threaded differences (no such interpreter can be installed here) |
//!
//! Module map: [`runtime`] finds `_PyRuntime` and picks a layout; [`frames`]
//! walks interpreters, thread states and frames; [`objects`] decodes Python
//! objects; [`naming`] names threads and lock objects; [`gil`] reads the GIL;
//! [`holds`] finds open `with` blocks; [`acquires`] replays explicit
//! `acquire()`/`release()` calls from the frames' bytecode; [`locks`] turns all that into waits and holds; [`merge`] splices Python
//! frames into native stacks; [`reader`] caches target pages.

pub mod acquires;
pub mod asyncio;
pub mod frames;
pub mod gil;
pub mod holds;
pub mod layout;
pub mod locks;
pub mod loopfutures;
pub mod merge;
pub mod naming;
pub mod objects;
pub mod pools;
pub mod precedence;
pub mod reader;
pub mod runtime;
pub mod semlocks;
pub mod signals;
pub mod stopcopy;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod synthetic_tests;

use serde::Serialize;
use thiserror::Error;

use crate::capture::MemoryError;
use crate::ids::Tid;
use crate::runtimes::{ProcessView, ThreadFindings};

pub use merge::{merge_stacks, merged_index, program_site};

/// Why a CPython process could not be inspected.
#[derive(Debug, Error)]
pub enum CpythonError {
    #[error("{}", unsupported(*.0, *.1, *.2))]
    UnsupportedVersion(u8, u8, u8),
    #[error("cannot tell the CPython version: {0}")]
    UnknownVersion(String),
    #[error("CPython debug offsets unusable: {0}")]
    BadDebugOffsets(String),
    #[error("reading CPython state: {0}")]
    Memory(#[from] MemoryError),
    #[error("CPython state looks corrupt: {0}")]
    Corrupt(String),
}

/// Why a version is refused, naming it: older ones lack the structures
/// lockdump reads; newer ones have a `_Py_DebugOffsets` shape it does not know.
fn unsupported(major: u8, minor: u8, micro: u8) -> String {
    let known = "the versions lockdump reads (3.11 to 3.15)";
    if (major, minor) < (3, 11) {
        // The patch level is not printed: before 3.11 there is no
        // `Py_Version`, only the file name (`libpython3.10.so`) tells the
        // version, and it has no patch level. Nor does it matter here.
        let _ = micro;
        format!(
            "CPython {major}.{minor} is older than {known}: its interpreter state has another shape; \
             the native stacks and locks are still shown (a Python 3.11+ interpreter gives Python stacks)"
        )
    } else {
        format!(
            "CPython {major}.{minor}.{micro} is newer than {known}: the layout of its _Py_DebugOffsets is not known \
             (a newer lockdump may read it)"
        )
    }
}

/// A CPython process as lockdump sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PythonProcess {
    pub version: (u8, u8, u8),
    pub free_threaded: bool,
    pub threads: Vec<PythonThread>,
    /// `None` for free-threaded builds running without a GIL.
    pub gil: Option<GilState>,
    /// Address of `_PyRuntime` in the target.
    pub runtime_address: u64,
    /// The SIGINT handler is CPython's own `signal.default_int_handler`
    /// (`Some(true)`), or lockdump could not tell (`None`).
    pub sigint_default: Option<bool>,
    /// Thread pools (ThreadPoolExecutor) with live workers, and who waits for their tasks.
    pub pools: Vec<crate::runtimes::TaskPool>,
    /// asyncio event loops and their tasks ([`asyncio`]); `None` when there are none.
    pub asyncio: Option<asyncio::AsyncioState>,
}

/// One Python thread (one `PyThreadState` whose OS thread is in the snapshot).
#[derive(Debug, Clone, Serialize)]
pub struct PythonThread {
    /// Host TID.
    pub tid: Tid,
    /// `threading.Thread.name`, from `threading._active[ident]._name`.
    pub name: Option<String>,
    /// Innermost first; kind Python: function = `co_qualname`, file = `co_filename`, line.
    pub frames: Vec<crate::stacks::Frame>,
    /// For each entry of `frames`, which `_PyEval_EvalFrameDefault` call runs
    /// it, counting from the innermost call (0). Used by [`merge_stacks`].
    pub eval_call: Vec<usize>,
    /// Wait and holds at the Python level; `site_frame` indexes `frames`.
    pub findings: ThreadFindings,
    pub holds_gil: bool,
    /// `threading.get_ident()` of the thread (`pthread_self()`).
    pub ident: u64,
    /// Why the frame walk stopped early, if it did.
    pub frame_error: Option<String>,
    /// Why there is no Python name (`name` is `None`), when there is a reason.
    pub name_note: Option<String>,
    /// Set when the thread's Python stack could not be read as of the stop
    /// (`frames` is then empty and says nothing): "Python stack not read: ...".
    pub stack_note: Option<String>,
}

/// The GIL of the main interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GilState {
    /// Host TID of the holder; exact while `locked`.
    pub holder_tid: Option<Tid>,
    pub locked: bool,
    /// Host TIDs of threads sleeping in `take_gil`.
    pub waiters: Vec<Tid>,
}

/// Inspect a process. `Ok(None)`: not a CPython process (no `_PyRuntime`).
pub fn inspect(view: &ProcessView) -> Result<Option<PythonProcess>, CpythonError> {
    let Some(found) = runtime::find_runtime(view)? else {
        return Ok(None);
    };
    let cached = reader::CachedMemory::new(view.memory);
    let obj = objects::Objects::new(&cached, &found.layout);
    let walker = frames::Walker::new(&obj);
    let mut p = locks::analyze(view, &walker, found.address)?;
    p.sigint_default = signals::sigint_is_default(view, &walker, found.address).then_some(true);
    Ok(Some(p))
}
