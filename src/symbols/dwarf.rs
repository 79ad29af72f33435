//! A debug file's DWARF, prepared once per run and shared by every thread
//! that needs it.
//!
//! - Sections are prepared through one process-wide slot per debug file
//!   (keyed by its [`FileId`]: device, inode, size, modification time; the
//!   same bytes, since [`super::file::map_file`] maps a file once): the
//!   prefetch thread ([`super::prefetch`]), started as soon as the target's
//!   maps are read, and the symbolizer share one preparation. Whoever comes
//!   first does it; the symbolizer waits for the prefetch thread's, never
//!   the other way.
//! - Bytes that are not a mapped file (a buffer handed to
//!   [`super::ElfModule::parse`]) are prepared for their module alone, and
//!   never cached: a build ID says which build a file claims to be, not
//!   that its bytes are intact, and a damaged copy must not stand in for
//!   the real file (nor outlive its buffer).
//! - Preparing is reading the sections ([`super::sections`], through the
//!   disk cache) and building the index of which unit covers which address
//!   (`.debug_aranges`, see [`super::units`]), so on the prefetch thread too.
//!
//! Whichever path prepared them, the bytes are the same, so the output is.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::file::{mapped_file, FileId};
use super::sections::{self, Origin};
use super::units::{Prepared, UnitIndex};

/// Where one debug file's preparation stands.
#[derive(Default)]
enum State {
    #[default]
    NotStarted,
    /// Thread `tid` is preparing it.
    Busy {
        tid: i32,
    },
    Done(Option<Arc<Prepared>>),
}

#[derive(Default)]
struct Slot {
    state: Mutex<State>,
    done: Condvar,
}

/// Process-wide slots: debug file -> its preparation.
type Registry = Mutex<HashMap<FileId, Arc<Slot>>>;

fn slot(file: FileId) -> Option<Arc<Slot>> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let mut map = REGISTRY.get_or_init(Default::default).lock().ok()?;
    Some(map.entry(file).or_default().clone())
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The prepared DWARF of the debug file `data` (the module itself or its
/// separate debug file) whose module has `build_id`. If another thread is
/// preparing the same file, it is given the caller's priority and waited
/// for: the prefetch thread runs under `SCHED_IDLE` ([`super::prefetch`]),
/// and at normal priority it would still wait behind every runnable thread
/// of a busy target while the caller runs raised over it
/// ([`crate::capture::priority::share_with`]; errors are ignored, the
/// thread may have finished).
pub fn prepared(build_id: Option<&[u8]>, data: &'static [u8]) -> Option<Arc<Prepared>> {
    let Some(file) = mapped_file(data) else {
        return prepare(None, data).map(Arc::new);
    };
    let origin = Some(Origin { build_id, file });
    let Some(slot) = slot(file) else {
        return prepare(origin, data).map(Arc::new);
    };
    let Ok(mut state) = slot.state.lock() else {
        return prepare(origin, data).map(Arc::new);
    };
    loop {
        match &mut *state {
            State::Done(p) => return p.clone(),
            State::Busy { tid } => {
                crate::capture::priority::share_with(*tid);
                state = match slot.done.wait(state) {
                    Ok(s) => s,
                    Err(_) => return prepare(origin, data).map(Arc::new),
                };
            }
            State::NotStarted => {
                *state = State::Busy { tid: gettid() };
                drop(state);
                return finish(&slot, origin, data);
            }
        }
    }
}

/// Prepare the file now unless some thread has started or finished it (for
/// the prefetch thread: it never waits, and never does work twice).
pub(crate) fn prefetch(build_id: Option<&[u8]>, data: &'static [u8]) {
    let Some(file) = mapped_file(data) else { return };
    let Some(slot) = slot(file) else { return };
    {
        let Ok(mut state) = slot.state.lock() else { return };
        if !matches!(*state, State::NotStarted) {
            return;
        }
        *state = State::Busy { tid: gettid() };
    }
    let _ = finish(&slot, Some(Origin { build_id, file }), data);
}

/// Prepare a file this thread marked busy, publish the result and wake the
/// waiters. Should preparing panic, the slot is reset (not left busy), so
/// a waiter prepares it itself instead of waiting forever.
fn finish(slot: &Slot, origin: Option<Origin>, data: &'static [u8]) -> Option<Arc<Prepared>> {
    struct Reset<'a>(&'a Slot, bool);
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            if !self.1 {
                if let Ok(mut s) = self.0.state.lock() {
                    *s = State::NotStarted;
                }
                self.0.done.notify_all();
            }
        }
    }
    let mut reset = Reset(slot, false);
    let p = prepare(origin, data).map(Arc::new);
    if let Ok(mut s) = slot.state.lock() {
        *s = State::Done(p.clone());
        reset.1 = true;
    }
    slot.done.notify_all();
    p
}

/// Read the sections and index their units.
fn prepare(origin: Option<Origin>, data: &'static [u8]) -> Option<Prepared> {
    let sections = sections::load(origin, data)?;
    let index = UnitIndex::new(&sections);
    Some(Prepared { sections, index })
}
