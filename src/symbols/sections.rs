//! The DWARF sections symbolization reads, decompressed, once per debug file.
//!
//! Distribution debug files (libc6-dbg's) compress their `.debug_*` sections
//! with zlib, and inflating libc's took most of a native run's CPU. So:
//!
//! - Sections are prepared through one process-wide slot per debug file
//!   (keyed by its [`FileId`]: device, inode, size, modification time; the
//!   same bytes, since [`super::elf::map_file`] maps a file once): the prefetch thread
//!   ([`super::prefetch`]), started as soon as the target's maps are read,
//!   and the symbolizer share one preparation. Whoever comes first does it;
//!   the symbolizer waits for the prefetch thread's, never the other way.
//! - Compressed sections come from the on-disk cache ([`super::diskcache`])
//!   when it holds them for this build ID and file, and are stored there otherwise.
//! - Bytes that are not a mapped file (a buffer handed to
//!   [`super::ElfModule::parse`]) are prepared for their module alone, and
//!   never cached: a build ID says which build a file claims to be, not
//!   that its bytes are intact, and a damaged copy must not stand in for
//!   the real file (nor outlive its buffer).
//! - The index of which unit covers which address (`.debug_aranges`, see
//!   [`super::units`]) is built with the sections, so on the prefetch thread too.
//!
//! Whichever path prepared them, the bytes are the same, so the output is.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use gimli::SectionId;
use object::{Object, ObjectSection};

use super::diskcache;
use super::elf::{mapped_file, FileId, Reader};
use super::units::UnitIndex;

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

/// Sections ready for symbolization, and which unit covers which address.
pub struct Prepared {
    pub sections: DwarfSections,
    pub index: Option<UnitIndex>,
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

/// Process-wide slots: debug file -> its preparation.
type Registry = Mutex<HashMap<FileId, Arc<Slot>>>;

fn slot(file: FileId) -> Option<Arc<Slot>> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let mut map = REGISTRY.get_or_init(Default::default).lock().ok()?;
    Some(map.entry(file).or_default().clone())
}

/// Where prepared sections may be shared and cached: a file lockdump mapped.
#[derive(Clone, Copy)]
struct Origin<'a> {
    build_id: Option<&'a [u8]>,
    file: FileId,
}

impl Origin<'_> {
    fn cache_key(&self) -> Option<diskcache::Key<'_>> {
        Some(diskcache::Key {
            build_id: self.build_id.filter(|id| !id.is_empty())?,
            file_size: self.file.size,
            mtime_ns: self.file.mtime_ns,
        })
    }
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
                super::prefetch::boost(*tid);
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

fn leak(data: Cow<'static, [u8]>) -> &'static [u8] {
    match data {
        Cow::Borrowed(b) => b,
        Cow::Owned(v) => Box::leak(v.into_boxed_slice()),
    }
}

/// Uncompressed sections are borrowed from the mapped file; compressed ones
/// come from the disk cache, else are inflated (and then stored there, if
/// they come from a file: `origin`).
fn prepare(origin: Option<Origin>, data: &'static [u8]) -> Option<Prepared> {
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
    let cache_key = origin.as_ref().and_then(Origin::cache_key);
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
    let index = UnitIndex::new(&sections);
    Some(Prepared { sections, index })
}
