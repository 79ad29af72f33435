//! DWARF lookups that parse only the units they need.
//!
//! addr2line's `Context` parses the header, abbreviations and root entry of
//! every unit when it is built: for libc6-dbg's 4126 units ~30 ms of CPU
//! and ~17 MB, to name the handful of functions a stack dump shows. A small
//! C target paid that on every run (44 ms end to end, where eu-stack took 21).
//!
//! `.debug_aranges` says which unit covers an address without parsing any
//! unit. So a [`LazyContext`] builds addr2line contexts over a copy of
//! `.debug_info` in which each run of units not needed yet is hidden behind
//! one DWARF 5 type unit header (`DW_UT_type`, DWARF 5 §7.5.1.3) spanning
//! exactly those bytes: addr2line skips type units without parsing them,
//! and every unit shown stays at its offset, so references into it, line
//! programs and ranges read the same.
//! The units needed are those covering the addresses of the stacks
//! ([`LazyContext::prepare`], called with all of them before symbolizing);
//! an address outside them later builds a context with its unit added
//! (each context is kept: frames already borrow from it). After
//! [`MAX_PARTIAL`] such contexts, or without `.debug_aranges`, the one full
//! context is built and used from then on, as before.
//!
//! Not masked (always parsed): units without an arange (addr2line finds
//! their ranges in the unit itself), 64-bit DWARF units, units of other
//! types than `DW_UT_compile`, and units too short to hold a type-unit
//! header. A reference from a parsed unit into a masked one (`DW_FORM_ref_addr`,
//! rare outside LTO) resolves to nothing: that frame is named from the ELF
//! symbol, as without DWARF. addr2line prefers a unit's `DW_AT_ranges` to
//! its aranges; an address that only the former covers (the two agree in
//! GCC's and rustc's output) is not found in a partial context.
//! `tests/dwarf_units.rs` checks every function of libc against the full
//! context.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use std::sync::Arc;

use super::file::Reader;
use super::sections::DwarfSections;

/// Sections ready for symbolization, and which unit covers which address.
pub struct Prepared {
    pub sections: DwarfSections,
    pub index: Option<UnitIndex>,
}

/// Contexts with some units masked built before the full one is.
const MAX_PARTIAL: usize = 8;

/// DWARF unit types (DWARF 5 §7.5.1, table 7.2).
const DW_UT_COMPILE: u8 = 0x01;
const DW_UT_TYPE: u8 = 0x02;
/// A 32-bit DWARF 5 type unit header: unit_length 4, version 2, unit_type
/// 1, address_size 1, debug_abbrev_offset 4, type_signature 8, type_offset 4.
const TYPE_HEADER: usize = 24;

/// One unit of `.debug_info`.
#[derive(Debug, Clone, Copy)]
struct Span {
    offset: usize,
    /// Bytes, the length field included.
    len: usize,
    /// Its header can be rewritten (see the module doc).
    maskable: bool,
}

/// Which units cover which addresses, from `.debug_aranges`.
#[derive(Debug)]
pub struct UnitIndex {
    units: Vec<Span>,
    /// (start, end, index in `units`), sorted by start.
    ranges: Vec<(u64, u64, usize)>,
    /// The longest range: how far back a range covering an address may start.
    longest: u64,
}

impl UnitIndex {
    /// `None` if the sections cannot be indexed (no `.debug_aranges`,
    /// malformed headers): then only the full context answers.
    pub fn new(sections: &DwarfSections) -> Option<UnitIndex> {
        let info = sections.get(gimli::SectionId::DebugInfo);
        let mut units = Vec::new();
        let mut at = 0usize;
        while at < info.len() {
            let len32 = u32::from_le_bytes(info.get(at..at + 4)?.try_into().ok()?);
            if len32 >= 0xffff_fff0 {
                // 64-bit DWARF (or reserved): not indexed; parse everything.
                return None;
            }
            let len = 4 + len32 as usize;
            let unit = info.get(at..at.checked_add(len)?)?;
            let version = u16::from_le_bytes(unit.get(4..6)?.try_into().ok()?);
            let compile = match version {
                2..=4 => true,
                5 => unit.get(6) == Some(&DW_UT_COMPILE),
                _ => false,
            };
            units.push(Span {
                offset: at,
                len,
                maskable: compile && len > TYPE_HEADER + 8,
            });
            at += len;
        }
        let endian = gimli::RunTimeEndian::Little;
        let aranges = gimli::DebugAranges::new(sections.get(gimli::SectionId::DebugAranges), endian);
        let mut ranges = Vec::new();
        let mut covered = vec![false; units.len()];
        let mut headers = aranges.headers();
        while let Ok(Some(h)) = headers.next() {
            let offset = h.debug_info_offset().0;
            let Ok(i) = units.binary_search_by_key(&offset, |u| u.offset) else {
                continue;
            };
            let mut entries = h.entries();
            while let Ok(Some(e)) = entries.next() {
                if e.length() != 0 {
                    let r = e.range();
                    ranges.push((r.begin, r.end, i));
                    covered[i] = true;
                }
            }
        }
        if ranges.is_empty() {
            return None;
        }
        // A unit with no arange finds its ranges in its own entries: keep it.
        for (u, c) in units.iter_mut().zip(covered) {
            u.maskable &= c;
        }
        ranges.sort_unstable();
        let longest = ranges.iter().map(|r| r.1.saturating_sub(r.0)).max().unwrap_or(0);
        Some(UnitIndex { units, ranges, longest })
    }

    /// The units whose aranges cover `svma`.
    fn units_at(&self, svma: u64) -> impl Iterator<Item = usize> + '_ {
        let end = self.ranges.partition_point(|r| r.0 <= svma);
        // Every range that starts at most `longest` before `svma` may cover it.
        self.ranges[..end]
            .iter()
            .rev()
            .take_while(move |r| svma - r.0 < self.longest)
            .filter(move |r| svma < r.1)
            .map(|r| r.2)
    }

    /// `info` with every maskable unit not in `shown` hidden: each run of
    /// such units becomes one type unit of the same total length. Only the
    /// units shown and the run headers are written; the rest of the buffer
    /// is never touched (a large zeroed allocation is mapped lazily), so a
    /// build costs the units it shows, not the size of `.debug_info`.
    fn masked(&self, info: &[u8], shown: &[bool]) -> Option<memmap2::MmapMut> {
        let mut out = memmap2::MmapMut::map_anon(info.len().max(1)).ok()?;
        let mut run: Option<(usize, u8)> = None; // (start, address size)
        let close = |out: &mut [u8], run: &mut Option<(usize, u8)>, end: usize| {
            if let Some((start, addr_size)) = run.take() {
                let h = &mut out[start..start + TYPE_HEADER];
                h[0..4].copy_from_slice(&((end - start - 4) as u32).to_le_bytes());
                h[4..6].copy_from_slice(&5u16.to_le_bytes());
                h[6] = DW_UT_TYPE;
                h[7] = addr_size;
                // debug_abbrev_offset 0 and type_signature 0 stay zero.
                h[20..24].copy_from_slice(&(TYPE_HEADER as u32).to_le_bytes()); // type_offset
            }
        };
        for (u, &show) in self.units.iter().zip(shown) {
            let end = u.offset + u.len;
            if u.maskable && !show {
                if run.is_none() {
                    let h = &info[u.offset..];
                    let addr_size = if u16::from_le_bytes([h[4], h[5]]) == 5 {
                        h[7]
                    } else {
                        h[10]
                    };
                    run = Some((u.offset, addr_size));
                }
                continue;
            }
            close(&mut out, &mut run, u.offset);
            out[u.offset..end].copy_from_slice(&info[u.offset..end]);
        }
        close(&mut out, &mut run, info.len());
        Some(out)
    }
}

/// A context over a masked copy of `.debug_info`, which it borrows.
struct Partial {
    /// Dropped before `info` (see `Drop`).
    context: std::mem::ManuallyDrop<addr2line::Context<Reader>>,
    /// An anonymous mapping: its bytes stay put however the Partial moves.
    /// Only held (the context reads it through the borrow).
    #[allow(dead_code)]
    info: memmap2::MmapMut,
}

impl Drop for Partial {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, before `info` (fields drop after this
        // body), which the context borrows.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.context) };
    }
}

#[derive(Default)]
struct State {
    /// Units the newest partial context shows.
    shown: Vec<bool>,
    /// Behind `Rc` so a context stays put when more are added and this
    /// vector moves them (references to it have been handed out).
    partial: Vec<Rc<Partial>>,
}

/// addr2line contexts over one debug file, built with the units asked for.
pub struct LazyContext {
    prepared: Arc<Prepared>,
    state: RefCell<State>,
    /// The context over every unit, once partial ones no longer serve
    /// (`None` inside: addr2line refused the sections).
    full: OnceCell<Option<addr2line::Context<Reader>>>,
    /// The unmasked sections, for units read on their own ([`Self::unit_at`]).
    dwarf: gimli::Dwarf<Reader>,
    /// Units read by [`Self::unit_at`], by `.debug_info` offset; behind
    /// `Rc` and only ever added, so references to them stay valid.
    units: RefCell<std::collections::HashMap<usize, Rc<gimli::Unit<Reader>>>>,
}

impl LazyContext {
    pub fn new(prepared: Arc<Prepared>) -> LazyContext {
        let shown = prepared.index.as_ref().map_or(0, |i| i.units.len());
        LazyContext {
            dwarf: prepared.sections.dwarf(),
            units: RefCell::default(),
            full: OnceCell::new(),
            prepared,
            state: RefCell::new(State {
                shown: vec![false; shown],
                ..State::default()
            }),
        }
    }

    /// The unit index, while partial contexts still serve.
    fn index(&self) -> Option<&UnitIndex> {
        self.prepared.index.as_ref().filter(|_| self.full.get().is_none())
    }

    /// Make the next context show the units covering every address in
    /// `svmas` (link-time addresses), so that lookups of them need no other.
    pub fn prepare(&self, svmas: impl IntoIterator<Item = u64>) {
        let Some(index) = self.index() else { return };
        let mut state = self.state.borrow_mut();
        let mut wanted = state.shown.clone();
        for a in svmas {
            for u in index.units_at(a) {
                wanted[u] = true;
            }
        }
        if wanted != state.shown || state.partial.is_empty() {
            let _ = self.build(&mut state, wanted);
        }
    }

    /// A context that answers for `svma` as the full one would.
    pub fn at(&self, svma: u64) -> Option<&addr2line::Context<Reader>> {
        if let Some(index) = self.index() {
            let mut state = self.state.borrow_mut();
            let mut wanted: Option<Vec<bool>> = None;
            for u in index.units_at(svma) {
                if !state.shown[u] {
                    wanted.get_or_insert_with(|| state.shown.clone())[u] = true;
                }
            }
            let ready = match wanted {
                Some(w) => self.build(&mut state, w),
                None if state.partial.is_empty() => {
                    let w = state.shown.clone();
                    self.build(&mut state, w)
                }
                None => true,
            };
            if let Some(p) = state.partial.last().filter(|_| ready) {
                let ctx: *const addr2line::Context<Reader> = &*p.context;
                // SAFETY: the context is in an Rc that `self` keeps until it
                // drops (contexts are only ever added, never replaced).
                return Some(unsafe { &*ctx });
            }
        }
        self.full
            .get_or_init(|| addr2line::Context::from_dwarf(self.prepared.sections.dwarf()).ok())
            .as_ref()
    }

    /// The unit covering `svma` by itself, read from the unmasked sections
    /// and kept (what DWARF call sites are read from, see
    /// [`super::tailcall`]: they need no context, nor every unit parsed).
    pub fn unit_at(&self, svma: u64) -> Option<gimli::UnitRef<'_, Reader>> {
        let by_arange = (self.prepared.index.as_ref()).and_then(|i| Some(i.units[i.units_at(svma).next()?].offset));
        let offset = match by_arange {
            Some(o) => o,
            // No index, or no arange covers it (a unit without aranges,
            // which no context hides): a context finds the unit.
            None => {
                let found = self.at(svma)?.find_dwarf_and_unit(svma).skip_all_loads()?;
                found.header.debug_info_offset()?.0
            }
        };
        self.unit_at_offset(offset)
    }

    /// The sections of every unit, unmasked (for walks over all units, such
    /// as the index of global variables in [`super::varnames`]).
    pub fn dwarf(&self) -> &gimli::Dwarf<Reader> {
        &self.dwarf
    }

    /// The unit at `.debug_info` offset `offset`, read by itself and kept.
    pub fn unit_at_offset(&self, offset: usize) -> Option<gimli::UnitRef<'_, Reader>> {
        let mut units = self.units.borrow_mut();
        let unit: *const gimli::Unit<Reader> = match units.entry(offset) {
            std::collections::hash_map::Entry::Occupied(e) => Rc::as_ptr(e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let header = self
                    .dwarf
                    .debug_info
                    .header_from_offset(gimli::DebugInfoOffset(offset))
                    .ok()?;
                Rc::as_ptr(e.insert(Rc::new(self.dwarf.unit(header).ok()?)))
            }
        };
        // SAFETY: in an Rc the map keeps, never removed or replaced, until `self` drops.
        Some(gimli::UnitRef::new(&self.dwarf, unsafe { &*unit }))
    }

    /// Add a context showing `shown`; false past [`MAX_PARTIAL`] contexts or
    /// if addr2line refuses the sections (the full context answers then).
    fn build(&self, state: &mut State, shown: Vec<bool>) -> bool {
        let Some(index) = &self.prepared.index else {
            return false;
        };
        if state.partial.len() >= MAX_PARTIAL {
            return false;
        }
        let sections = &self.prepared.sections;
        let Some(info) = index.masked(sections.get(gimli::SectionId::DebugInfo), &shown) else {
            return false;
        };
        // SAFETY: the mapping lives, unmoved and unwritten, until the Partial
        // holding this context drops, after the context (see Partial's Drop).
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(info.as_ptr(), info.len()) };
        let mut dwarf = sections.dwarf();
        dwarf.debug_info = gimli::DebugInfo::new(bytes, gimli::RunTimeEndian::Little);
        match addr2line::Context::from_dwarf(dwarf) {
            Ok(context) => {
                state.partial.push(Rc::new(Partial {
                    context: std::mem::ManuallyDrop::new(context),
                    info,
                }));
                state.shown = shown;
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DWARF 4 compile unit of `len` bytes in all (header, then filler).
    fn unit4(len: usize, fill: u8) -> Vec<u8> {
        let mut u = vec![fill; len];
        u[0..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
        u[4..6].copy_from_slice(&4u16.to_le_bytes());
        u[6..10].copy_from_slice(&0u32.to_le_bytes());
        u[10] = 8;
        u
    }

    #[test]
    fn hidden_runs_become_one_type_unit_each_and_shown_units_keep_their_bytes() {
        let lens = [40usize, 64, 48, 100, 56];
        let mut info = Vec::new();
        let mut units = Vec::new();
        for (i, &len) in lens.iter().enumerate() {
            units.push(Span {
                offset: info.len(),
                len,
                maskable: true,
            });
            info.extend(unit4(len, 0xa0 + i as u8));
        }
        let index = UnitIndex {
            units,
            ranges: Vec::new(),
            longest: 0,
        };
        // Show units 0 and 3: units 1+2 are one hidden run, unit 4 another.
        let out = index.masked(&info, &[true, false, false, true, false]).unwrap();
        let headers: Vec<(usize, gimli::UnitType<usize>)> = {
            let d = gimli::DebugInfo::new(&out[..], gimli::RunTimeEndian::Little);
            let mut it = d.units();
            let mut v = Vec::new();
            while let Some(h) = it.next().unwrap() {
                v.push((h.debug_info_offset().unwrap().0, h.type_()));
            }
            v
        };
        let (a, b, c) = (40, 40 + 64 + 48, 40 + 64 + 48 + 100);
        assert_eq!(headers.len(), 4, "{headers:?}");
        assert_eq!((headers[0].0, headers[1].0, headers[2].0, headers[3].0), (0, a, b, c));
        assert!(matches!(headers[0].1, gimli::UnitType::Compilation));
        assert!(matches!(headers[1].1, gimli::UnitType::Type { .. }));
        assert!(matches!(headers[2].1, gimli::UnitType::Compilation));
        assert!(matches!(headers[3].1, gimli::UnitType::Type { .. }));
        assert_eq!(&out[0..a], &info[0..a]);
        assert_eq!(&out[b..c], &info[b..c]);
        // Nothing of a hidden unit is copied past the run header.
        assert!(out[a + TYPE_HEADER..b].iter().all(|&x| x == 0));
    }

    #[test]
    fn an_address_finds_every_unit_whose_range_covers_it() {
        let span = |offset| Span {
            offset,
            len: 64,
            maskable: true,
        };
        let mut ranges = vec![(0x1000, 0x9000, 0), (0x2000, 0x2100, 1), (0x9000, 0x9100, 2)];
        ranges.extend((0..40).map(|i| (0x3000 + i * 0x10, 0x3008 + i * 0x10, 1)));
        ranges.sort_unstable();
        let index = UnitIndex {
            units: vec![span(0), span(64), span(128)],
            longest: 0x8000,
            ranges,
        };
        let at = |a| {
            let mut v: Vec<usize> = index.units_at(a).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(at(0x2050), vec![0, 1]);
        // 40 short ranges start between unit 0's start and this address.
        assert_eq!(at(0x3400), vec![0]);
        assert_eq!(at(0x9000), vec![2]);
        assert_eq!(at(0x0fff), Vec::<usize>::new());
        assert_eq!(at(0x9100), Vec::<usize>::new());
    }
}
