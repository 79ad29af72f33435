//! The DWARF sections symbolization reads, decompressed, once per debug file.
//!
//! Distribution debug files (libc6-dbg's) compress their `.debug_*` sections
//! with zlib, and inflating libc's took most of a native run's CPU. So:
//!
//! - Sections are prepared through one process-wide slot per debug file
//!   (keyed by build ID and file size): the prefetch thread
//!   ([`super::prefetch`]), started as soon as the target's maps are read,
//!   and the symbolizer share one preparation. Whoever comes first does it;
//!   the symbolizer waits for the prefetch thread's, never the other way.
//! - Compressed sections come from the on-disk cache ([`super::diskcache`])
//!   when it holds them for this build ID, and are stored there otherwise.
//! - The addr2line context (which parses every unit's header and
//!   abbreviations) is built with the sections, so on the prefetch thread
//!   too, and handed to the first module that asks for it.
//!
//! Whichever path prepared them, the bytes are the same, so the output is.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use gimli::SectionId;
use object::{Object, ObjectSection};

use super::diskcache;
use super::elf::Reader;

/// The sections read for file:line and inlined frames. Location lists,
/// macros, name indexes, type units and CFI are not needed for those, and
/// are among the largest sections of distribution debug files.
pub(crate) const LOADED: [SectionId; 10] = [
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugAranges,
    SectionId::DebugInfo,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
];

/// The [`LOADED`] sections of one debug file, uncompressed (empty if absent).
pub struct DwarfSections {
    data: [&'static [u8]; LOADED.len()],
}

impl DwarfSections {
    pub fn get(&self, id: SectionId) -> &'static [u8] {
        LOADED
            .iter()
            .position(|&l| l == id)
            .map(|i| self.data[i])
            .unwrap_or(&[])
    }

    /// A gimli view of the sections (the unloaded ones empty).
    pub fn dwarf(&self) -> gimli::Dwarf<Reader> {
        let endian = gimli::RunTimeEndian::Little;
        let load = |id: SectionId| -> Result<Reader, std::convert::Infallible> {
            Ok(gimli::EndianSlice::new(self.get(id), endian))
        };
        match gimli::Dwarf::load(load) {
            Ok(d) => d,
            Err(e) => match e {}, // the loader never fails
        }
    }
}

/// Sections ready for symbolization, with an addr2line context built from
/// them that the first module to ask takes.
pub struct Prepared {
    pub sections: DwarfSections,
    context: Mutex<Option<addr2line::Context<Reader>>>,
}

impl Prepared {
    /// The context built with the sections if nobody took it yet, else a new one.
    pub fn take_context(&self) -> Option<addr2line::Context<Reader>> {
        let ready = self.context.lock().ok().and_then(|mut c| c.take());
        ready.or_else(|| addr2line::Context::from_dwarf(self.sections.dwarf()).ok())
    }
}

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

/// Process-wide slots: (build ID, debug file size) -> its preparation.
type Registry = Mutex<HashMap<(Vec<u8>, usize), Arc<Slot>>>;

fn slot(build_id: &[u8], len: usize) -> Option<Arc<Slot>> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let mut map = REGISTRY.get_or_init(Default::default).lock().ok()?;
    Some(map.entry((build_id.to_vec(), len)).or_default().clone())
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The prepared DWARF of the debug file `data` (the module itself or its
/// separate debug file) whose module has `build_id`. If another thread is
/// preparing the same file, it is given normal priority back (see
/// [`prefetch`]) and waited for.
pub fn prepared(build_id: Option<&[u8]>, data: &'static [u8]) -> Option<Arc<Prepared>> {
    let Some(slot) = build_id.filter(|id| !id.is_empty()).and_then(|id| slot(id, data.len())) else {
        return prepare(None, data).map(Arc::new);
    };
    let Ok(mut state) = slot.state.lock() else {
        return prepare(build_id, data).map(Arc::new);
    };
    loop {
        match &mut *state {
            State::Done(p) => return p.clone(),
            State::Busy { tid } => {
                super::prefetch::boost(*tid);
                state = match slot.done.wait(state) {
                    Ok(s) => s,
                    Err(_) => return prepare(build_id, data).map(Arc::new),
                };
            }
            State::NotStarted => {
                *state = State::Busy { tid: gettid() };
                drop(state);
                return finish(&slot, build_id, data);
            }
        }
    }
}

/// Prepare the file now unless some thread has started or finished it (for
/// the prefetch thread: it never waits, and never does work twice).
pub(crate) fn prefetch(build_id: &[u8], data: &'static [u8]) {
    let Some(slot) = slot(build_id, data.len()) else { return };
    {
        let Ok(mut state) = slot.state.lock() else { return };
        if !matches!(*state, State::NotStarted) {
            return;
        }
        *state = State::Busy { tid: gettid() };
    }
    let _ = finish(&slot, Some(build_id), data);
}

/// Prepare a file this thread marked busy, publish the result and wake the
/// waiters. Should preparing panic, the slot is reset (not left busy), so
/// a waiter prepares it itself instead of waiting forever.
fn finish(slot: &Slot, build_id: Option<&[u8]>, data: &'static [u8]) -> Option<Arc<Prepared>> {
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
    let p = prepare(build_id, data).map(Arc::new);
    if let Ok(mut s) = slot.state.lock() {
        *s = State::Done(p.clone());
        reset.1 = true;
    }
    slot.done.notify_all();
    p
}

fn leak(data: Cow<'static, [u8]>) -> &'static [u8] {
    match data {
        Cow::Borrowed(b) => b,
        Cow::Owned(v) => Box::leak(v.into_boxed_slice()),
    }
}

/// Uncompressed sections are borrowed from the mapped file; compressed ones
/// come from the disk cache, else are inflated (and then stored there).
fn prepare(build_id: Option<&[u8]>, data: &'static [u8]) -> Option<Prepared> {
    let file = object::File::parse(data).ok()?;
    let mut out: [&'static [u8]; LOADED.len()] = [&[]; LOADED.len()];
    // (index in LOADED, uncompressed size) of the compressed sections.
    let mut compressed: Vec<(usize, u64)> = Vec::new();
    for (i, id) in LOADED.iter().enumerate() {
        let Some(s) = file.section_by_name(id.name()) else {
            continue;
        };
        match s.compressed_file_range() {
            Ok(r) if r.format != object::CompressionFormat::None => compressed.push((i, r.uncompressed_size)),
            // Not compressed: the file's own bytes (an unreadable section stays empty, as before).
            _ => out[i] = leak(s.uncompressed_data().unwrap_or(Cow::Borrowed(&[]))),
        }
    }
    let cache_key = build_id.map(|id| diskcache::Key {
        build_id: id,
        file_size: data.len() as u64,
    });
    let cached = match (&cache_key, compressed.is_empty()) {
        (Some(key), false) => diskcache::load(key, &compressed),
        _ => None,
    };
    if let Some(sections) = cached {
        for (&(i, _), bytes) in compressed.iter().zip(sections) {
            out[i] = bytes;
        }
    } else if !compressed.is_empty() {
        let mut inflated = Vec::with_capacity(compressed.len());
        for &(i, _) in &compressed {
            let bytes = file
                .section_by_name(LOADED[i].name())
                .and_then(|s| s.uncompressed_data().ok())
                .unwrap_or(Cow::Borrowed(&[]));
            out[i] = leak(bytes);
            inflated.push((i, out[i]));
        }
        // Only a complete set is worth keeping: a section that failed to
        // inflate (empty) would be cached as if it were empty.
        let complete = inflated
            .iter()
            .zip(&compressed)
            .all(|(&(_, b), &(_, size))| b.len() as u64 == size);
        if let (Some(key), true) = (&cache_key, complete) {
            diskcache::store(key, &inflated);
        }
    }
    let sections = DwarfSections { data: out };
    let context = addr2line::Context::from_dwarf(sections.dwarf()).ok();
    Some(Prepared {
        sections,
        context: Mutex::new(context),
    })
}
