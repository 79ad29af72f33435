//! The DWARF sections symbolization reads, decompressed, from one debug file.
//!
//! Distribution debug files (libc6-dbg's) compress their `.debug_*` sections
//! with zlib, and inflating libc's took most of a native run's CPU. So
//! compressed sections come from the on-disk cache ([`super::diskcache`])
//! when it holds them for this build ID and file, and are stored there
//! otherwise; only a mapped file ([`Origin`]) is cached. Who loads them, and
//! how often, is [`super::dwarf`]'s business: this module only reads bytes.

use std::borrow::Cow;

use gimli::SectionId;
use object::{Object, ObjectSection};

use super::diskcache;
use super::file::{FileId, Reader};

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

/// Where prepared sections may be shared and cached: a file lockdump mapped.
#[derive(Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub build_id: Option<&'a [u8]>,
    pub file: FileId,
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

fn leak(data: Cow<'static, [u8]>) -> &'static [u8] {
    match data {
        Cow::Borrowed(b) => b,
        Cow::Owned(v) => Box::leak(v.into_boxed_slice()),
    }
}

/// The [`LOADED`] sections of the ELF file `data`. Uncompressed sections are
/// borrowed from the mapped file; compressed ones come from the disk cache,
/// else are inflated (and then stored there, if they come from a file:
/// `origin`).
pub(crate) fn load(origin: Option<Origin>, data: &'static [u8]) -> Option<DwarfSections> {
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
    Some(DwarfSections { data: out })
}
