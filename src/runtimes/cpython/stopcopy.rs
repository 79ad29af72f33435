//! Python state as of the stop (issue 22).
//!
//! The CPython analysis runs after the threads are let go. A request thread
//! of a busy server lives a few milliseconds: read afterwards, its thread
//! state is gone or somewhere else, and the report showed an eval loop with
//! no Python frames and no Python name. So what the Python walk needs is
//! read *during* the stop:
//!
//! - before the stop, `_PyRuntime` and the layout are found from the mapped
//!   files (ELF symbols / the `.PyRuntime` section; the files are parsed once
//!   per run, so analysis reuses them) and the debug offsets (static data);
//! - during the stop, the same walker the analysis uses runs over a page
//!   cache of the live (stopped) process: interpreters, every thread state,
//!   each frame chain with its code objects (names, line tables), each
//!   frame's locals and value stack, `threading._active` and `_limbo` with
//!   each thread's name, the GIL. Every page it touched is kept;
//! - after the stop, the analysis reads through [`crate::capture::Snapshot::memory`],
//!   which serves those pages from the copy: it sees the instant of the stop
//!   wherever the walk went, and live memory only beyond (objects named for
//!   locks, bytecode replayed for explicit `acquire()`s).
//!
//! Bounded: at most [`MAX_PAGES`] pages and [`MAX_TIME`] of added pause;
//! threads not reached are reported as not read ("Python stack not read"),
//! never as empty stacks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::frames::Walker;
use super::layout::Layout;
use super::objects::Objects;
use super::reader::CachedMemory;
use super::{gil, naming, runtime};
use crate::capture::{Memory, RuntimeCopy, ThreadSnapshot};
use crate::ids::Tid;
use crate::live::Live;
use crate::proc::MapEntry;
use crate::symbols::{ModuleCache, ProcessSymbols};

/// Most pages (4 KiB) copied during the stop: 32 MiB.
pub const MAX_PAGES: usize = 8192;
/// Most time the copy may add to the pause. A guard against pathological
/// state, not the working bound: on an idle 2-CPU machine the copy costs
/// ~30 µs per Python thread (bench/README), but a time bound is hit by
/// machine load as much as by the target (with 20 ms, threads of a 7-thread
/// target went unread while the suite ran beside a 2000-thread benchmark).
pub const MAX_TIME: Duration = Duration::from_millis(250);
/// Most bytes of one frame's locals and value stack touched.
const MAX_FRAME_SLOTS_BYTES: usize = 64 * 1024;

/// What is found before the stop.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub runtime: u64,
    pub layout: Layout,
}

/// Find `_PyRuntime` and its layout from the mapped files and static data,
/// before anything is stopped. `None`: not CPython, or not understood (the
/// analysis after the stop then reads live and says why where it must).
pub fn prepare(live: Live, maps: &[MapEntry], cache: &ModuleCache) -> Option<Prepared> {
    let symbols = ProcessSymbols::load_maps(live, maps, cache);
    let memory = live.memory();
    let found = runtime::find_runtime_in(&symbols, &memory).ok()??;
    Some(Prepared {
        runtime: found.address,
        layout: found.layout,
    })
}

/// The sentence for a thread the copy did not reach.
pub fn not_reached(why: &str) -> String {
    format!("Python stack not read: {why}")
}

/// Copy, while every thread is stopped, the memory the Python walk reads.
pub fn copy(prep: &Prepared, live: Live, threads: &[ThreadSnapshot]) -> RuntimeCopy {
    let started = Instant::now();
    let memory = live.memory();
    let cached = CachedMemory::new(&memory);
    let ns_to_host: HashMap<i32, Tid> = threads.iter().map(|t| (t.ns_tid, t.tid)).collect();
    let mut complete = Vec::new();
    let mut incomplete = None;
    {
        let obj = Objects::new(&cached, &prep.layout);
        let walker = Walker::new(&obj);
        let over = |cached: &CachedMemory| {
            if cached.pages_read() >= MAX_PAGES {
                Some(format!(
                    "lockdump copies at most {} MiB of Python state during the stop, and reached that bound before \
                     this thread",
                    MAX_PAGES * 4 / 1024
                ))
            } else if started.elapsed() >= MAX_TIME {
                Some(format!(
                    "lockdump lets copying Python state lengthen the stop by at most {} ms, and reached that bound \
                     before this thread",
                    MAX_TIME.as_millis()
                ))
            } else {
                None
            }
        };
        'all: for interp in walker.interpreters(prep.runtime).unwrap_or_default() {
            let _ = gil::read(&walker, prep.runtime, interp);
            for tstate in walker.thread_states(interp).unwrap_or_default() {
                if let Some(why) = over(&cached) {
                    incomplete = Some(why);
                    break 'all;
                }
                let Ok(state) = walker.thread(interp, tstate) else {
                    continue;
                };
                for f in &state.frames {
                    let slots = (f.code.nlocalsplus as usize + f.code.stacksize as usize) * 8;
                    let mut buf = vec![0u8; slots.min(MAX_FRAME_SLOTS_BYTES)];
                    let _ = cached.read_exact(f.localsplus, &mut buf);
                }
                // Its threading.Thread and name, through the `self` of its
                // bootstrap frame: the name as of the stop even when the
                // registry is caught mid-change and the thread has ended by
                // the time the analysis runs (seen on 3.13t under load).
                let _ = naming::name_from_bootstrap(&walker, &state);
                if let Some(&host) = ns_to_host.get(&state.native_id) {
                    complete.push(host);
                }
            }
            // Thread names (threading._active, _limbo: a few pages per
            // thread), within the same bound; past it they are read after
            // the stop, like everything else not copied.
            if let Some(why) = over(&cached) {
                incomplete.get_or_insert(why);
                break;
            }
            let _ = naming::threading_active(&walker, interp);
            let _ = naming::threading_limbo(&walker, interp);
        }
    }
    RuntimeCopy {
        made: true,
        regions: cached.into_regions(),
        complete_tids: complete,
        incomplete,
        took: started.elapsed(),
    }
}
