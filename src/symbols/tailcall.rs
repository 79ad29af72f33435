//! Tail-call frames: functions that are on the logical call path of a thread
//! but have no frame on its stack, because they ended by jumping to the next
//! function instead of calling it (`sem_wait` → `__new_sem_wait_slow64`).
//!
//! Unwinding finds a caller frame (return address `R`) directly above a
//! callee frame (function entry `E`). The caller's DWARF describes the call
//! instruction before `R` as a call site (`DW_TAG_call_site`, DWARF 5, or
//! `DW_TAG_GNU_call_site`, DWARF 4) naming its target `T`. When `T` is not
//! `E`, the functions in between tail-called each other: each function's
//! call sites marked `DW_AT_call_tail_call` (`DW_AT_GNU_tail_call`) say where
//! it can jump. This module searches those jumps from `T` to `E` and returns
//! the tail call sites on the way, as gdb does for its "tail call frames"
//! (gdb's `call_site_find_chain`; the facts used here are from its
//! documentation and source, the code is lockdump's own):
//!
//! - Call site targets come from `DW_AT_call_origin` (GNU: `DW_AT_abstract_origin`):
//!   a function definition gives its entry address; a declaration gives a
//!   name, looked up in the ELF symbol tables (the caller's module first, then
//!   the others: this is how a call from `libpython` reaches `sem_wait` in
//!   libc); an abstract instance (`DW_AT_inline`) gives the entries of its
//!   out-of-line instances in the same unit. A `DW_AT_call_target` is used
//!   only when it is a constant address; computed (indirect) targets are unknown.
//! - Only functions that declare their call-site list complete
//!   (`DW_AT_call_all_calls`, `DW_AT_call_all_tail_calls` or the GNU forms)
//!   contribute tail calls to the search; the others end a path.
//! - Every path from `T` to `E` is explored (a site at most once per path).
//!   Several paths are intersected: only the common outermost part (the
//!   callers) and the common innermost part (the callees) are kept, as gdb
//!   shows them. If nothing is common, nothing is shown.
//! - Anything uncertain gives no frames at all: a target that cannot be
//!   resolved, a target that is not the entry of a function with DWARF, more
//!   than [`MAX_DEPTH`] jumps on a path or [`MAX_VISITS`] sites visited.
//!
//! A synthesized frame's pc is the tail call site's return pc (the address
//! after the `jmp`), like any caller frame's pc is a return address; it is
//! symbolized at pc - 1, so file:line is the tail call's line.
//!
//! Cost: call sites are parsed per DWARF unit, at most once per unit per run
//! (cached in the [`ElfModule`], so shared by every process that maps it), and
//! the search runs once per (caller return address, callee pc) pair per
//! process (memoized by the unwinder): thread pools share their stacks.

// gimli's DW_* constants keep the DWARF standard's spelling.
#![allow(non_upper_case_globals)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use gimli::constants::*;
use gimli::{AttributeValue, DebugInfoOffset, UnitOffset, UnitRef};

use super::file::Reader;
use super::{MappedModule, ProcessSymbols};

/// Most tail calls on one path from the call site's target to the callee.
pub const MAX_DEPTH: usize = 8;
/// Most tail call sites one search may visit.
pub const MAX_VISITS: usize = 512;
/// Most address ranges read for one function.
const MAX_RANGES: usize = 1024;

/// What a call site calls, as its DIE says (before resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The DIE named by `DW_AT_call_origin`, as an offset in `.debug_info`.
    Die(u64),
    /// A link-time address: a `DW_AT_call_target` that is a constant.
    Address(u64),
    /// A computed (indirect) target, or none given.
    Unknown,
}

/// A function definition's tail calls.
#[derive(Debug, Default)]
struct Function {
    /// The function says its call sites are all described, so a tail call
    /// not listed does not exist.
    complete: bool,
    /// Return pcs (link-time) of its tail call sites, in DIE order.
    tail_calls: Vec<u64>,
}

/// The call-site facts of one DWARF unit, in link-time addresses.
#[derive(Debug, Default)]
pub(crate) struct UnitSites {
    /// Return pc of each call site -> what it calls.
    sites: HashMap<u64, Target>,
    /// Entry address -> function definition.
    functions: HashMap<u64, Function>,
    /// (start, end, entry) of each address range of each function definition, sorted.
    ranges: Vec<(u64, u64, u64)>,
    /// DIE offset of an abstract instance or declaration -> entries of the
    /// definitions that refer to it (`DW_AT_abstract_origin`, `DW_AT_specification`).
    instances: HashMap<u64, Vec<u64>>,
}

impl UnitSites {
    /// Entry of the innermost function definition whose ranges contain `addr`.
    fn function_containing(&self, addr: u64) -> Option<u64> {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        // Nested definitions (rare) overlap their parent: prefer the smallest range.
        self.ranges[..i]
            .iter()
            .rev()
            .take(64)
            .filter(|r| addr < r.1)
            .min_by_key(|r| r.1 - r.0)
            .map(|r| r.2)
    }
}

/// What a call-site target DIE resolves to.
#[derive(Debug, Clone)]
enum Resolved {
    /// Link-time entry addresses in this module (several: out-of-line copies).
    Entries(Vec<u64>),
    /// A declaration: the function's linkage name, to look up in symbol tables.
    Name(&'static str),
    Unknown,
}

/// Per-module cache of parsed call sites (lives in [`super::ElfModule`]).
#[derive(Default)]
pub struct ModuleCallSites {
    /// `.debug_info` offset of a unit -> its call sites (`None`: unparsable).
    units: Mutex<HashMap<u64, Option<Arc<UnitSites>>>>,
    /// Target DIE offset -> resolution.
    resolved: Mutex<HashMap<u64, Resolved>>,
    /// (start, end) of every unit in `.debug_info`, for references across units.
    unit_table: OnceLock<Vec<(u64, u64)>>,
}

type Dwarf = gimli::Dwarf<Reader>;

impl ModuleCallSites {
    /// The call sites of `unit`, parsed on first use.
    fn unit(&self, unit: UnitRef<'_, Reader>) -> Option<Arc<UnitSites>> {
        let key = unit.header.debug_info_offset()?.0 as u64;
        if let Some(u) = self.units.lock().ok()?.get(&key) {
            return u.clone();
        }
        let parsed = parse_unit(unit).ok().map(Arc::new);
        self.units.lock().ok()?.entry(key).or_insert(parsed).clone()
    }

    /// Resolve a call-site target DIE; `hint` is the unit it was referenced from.
    fn resolve(&self, hint: UnitRef<'_, Reader>, die: u64) -> Resolved {
        if let Some(r) = self.resolved.lock().ok().and_then(|m| m.get(&die).cloned()) {
            return r;
        }
        let r = self.resolve_uncached(hint, die).unwrap_or(Resolved::Unknown);
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(die, r.clone());
        }
        r
    }

    fn resolve_uncached(&self, hint: UnitRef<'_, Reader>, die: u64) -> Option<Resolved> {
        let global = DebugInfoOffset(usize::try_from(die).ok()?);
        let owned;
        let unit = if global.to_unit_offset(&hint.header).is_some() {
            hint
        } else {
            // DW_FORM_ref_addr into another unit of the same module.
            let header = self.unit_containing(hint.dwarf, die)?;
            owned = hint.dwarf.unit(header).ok()?;
            UnitRef::new(hint.dwarf, &owned)
        };
        let offset: UnitOffset = global.to_unit_offset(&unit.header)?;
        let entry = unit.entry(offset).ok()?;
        let sites = self.unit(unit)?;
        let instances = sites.instances.get(&die).filter(|v| !v.is_empty()).cloned();
        let declaration = entry.attr_value(DW_AT_declaration) == Some(AttributeValue::Flag(true))
            && entry.attr(DW_AT_specification).is_none();
        if declaration {
            if let Some(v) = instances {
                return Some(Resolved::Entries(v));
            }
            let name = entry
                .attr_value(DW_AT_linkage_name)
                .or_else(|| entry.attr_value(DW_AT_MIPS_linkage_name))
                .or_else(|| entry.attr_value(DW_AT_name))?;
            let name = unit.attr_string(name).ok()?;
            return std::str::from_utf8(name.slice()).ok().map(Resolved::Name);
        }
        if let Some((entry_pc, _)) = pc_ranges(unit, entry.attrs()) {
            return Some(Resolved::Entries(vec![entry_pc]));
        }
        // An abstract instance: the call went to one of its out-of-line copies.
        instances.map(Resolved::Entries)
    }

    /// The header of the unit whose DIEs include `.debug_info` offset `die`.
    fn unit_containing(&self, dwarf: &Dwarf, die: u64) -> Option<gimli::UnitHeader<Reader>> {
        let table = self.unit_table.get_or_init(|| {
            let mut table = Vec::new();
            let mut headers = dwarf.units();
            while let Ok(Some(h)) = headers.next() {
                if let Some(o) = h.debug_info_offset() {
                    let start = o.0 as u64;
                    table.push((start, start + h.length_including_self() as u64));
                }
            }
            table
        });
        let i = table.partition_point(|u| u.0 <= die).checked_sub(1)?;
        let (start, end) = table[i];
        if die >= end {
            return None;
        }
        dwarf
            .debug_info
            .header_from_offset(DebugInfoOffset(usize::try_from(start).ok()?))
            .ok()
    }
}

/// Read every subprogram and call site DIE of a unit (other DIEs are skipped
/// without decoding). Bounded by the unit's size: each DIE consumes input.
fn parse_unit(unit: UnitRef<'_, Reader>) -> gimli::Result<UnitSites> {
    let mut out = UnitSites::default();
    let mut entries = unit.entries_raw(None)?;
    let mut attrs = Vec::new();
    // Enclosing subprograms: (depth, entry if it is a definition).
    let mut scopes: Vec<(isize, Option<u64>)> = Vec::new();
    while !entries.is_empty() {
        let depth = entries.next_depth();
        let Some(abbrev) = entries.read_abbreviation()? else {
            continue;
        };
        while scopes.last().is_some_and(|s| s.0 >= depth) {
            scopes.pop();
        }
        match abbrev.tag() {
            DW_TAG_subprogram => {
                entries.read_attributes(abbrev.attributes(), &mut attrs)?;
                let entry = add_function(unit, &attrs, &mut out);
                if abbrev.has_children() {
                    scopes.push((depth, entry));
                }
            }
            DW_TAG_call_site | DW_TAG_GNU_call_site => {
                entries.read_attributes(abbrev.attributes(), &mut attrs)?;
                // The call belongs to the nearest enclosing subprogram, through
                // any inlined subroutines and lexical blocks.
                add_site(unit, &attrs, scopes.last().and_then(|s| s.1), &mut out);
            }
            _ => entries.skip_attributes(abbrev.attributes())?,
        }
    }
    out.ranges.sort_unstable();
    for v in out.instances.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    Ok(out)
}

/// Record a subprogram DIE; returns its entry if it is a definition.
fn add_function(unit: UnitRef<'_, Reader>, attrs: &[gimli::Attribute<Reader>], out: &mut UnitSites) -> Option<u64> {
    let mut complete = false;
    let mut origin = None;
    for a in attrs {
        match a.name() {
            DW_AT_call_all_calls
            | DW_AT_call_all_tail_calls
            | DW_AT_GNU_all_call_sites
            | DW_AT_GNU_all_tail_call_sites => {
                complete |= a.value() == AttributeValue::Flag(true);
            }
            DW_AT_abstract_origin | DW_AT_specification => origin = die_offset(unit, a.value()),
            _ => {}
        }
    }
    let (entry, spans) = pc_ranges(unit, attrs)?;
    for (start, end) in spans {
        out.ranges.push((start, end, entry));
    }
    out.functions.entry(entry).or_default().complete |= complete;
    if let Some(o) = origin {
        out.instances.entry(o).or_default().push(entry);
    }
    Some(entry)
}

/// Record a call site DIE under its return pc.
fn add_site(
    unit: UnitRef<'_, Reader>,
    attrs: &[gimli::Attribute<Reader>],
    enclosing: Option<u64>,
    out: &mut UnitSites,
) {
    let (mut return_pc, mut low_pc, mut tail) = (None, None, false);
    let (mut call_target, mut origin) = (None, None);
    for a in attrs {
        match a.name() {
            DW_AT_call_return_pc => return_pc = unit.attr_address(a.value()).ok().flatten(),
            DW_AT_low_pc => low_pc = unit.attr_address(a.value()).ok().flatten(),
            DW_AT_call_tail_call | DW_AT_GNU_tail_call => tail |= a.value() == AttributeValue::Flag(true),
            DW_AT_call_target | DW_AT_GNU_call_site_target => call_target = Some(a.value()),
            // DW_AT_abstract_origin is what GCC 4.5 wrote in DW_TAG_GNU_call_site.
            DW_AT_call_origin => origin = Some(a.value()),
            DW_AT_abstract_origin => origin = origin.or(Some(a.value())),
            _ => {}
        }
    }
    // DW_TAG_GNU_call_site keeps its return address in DW_AT_low_pc.
    let Some(pc) = return_pc.or(low_pc) else { return };
    let target = match (call_target, origin) {
        (Some(t), _) => constant_target(unit, t),
        (None, Some(o)) => die_offset(unit, o).map_or(Target::Unknown, Target::Die),
        (None, None) => Target::Unknown,
    };
    out.sites.insert(pc, target);
    if tail {
        if let Some(f) = enclosing {
            out.functions.entry(f).or_default().tail_calls.push(pc);
        }
    }
}

/// A `DW_AT_call_target` expression that is a single constant address.
fn constant_target(unit: UnitRef<'_, Reader>, value: AttributeValue<Reader>) -> Target {
    let mut bytes = match value {
        AttributeValue::Exprloc(e) => e.0,
        AttributeValue::Block(b) => b,
        _ => return Target::Unknown,
    };
    let op = gimli::Operation::parse(&mut bytes, unit.encoding());
    if !bytes.is_empty() {
        return Target::Unknown;
    }
    match op {
        Ok(gimli::Operation::Address { address }) => Target::Address(address),
        Ok(gimli::Operation::AddressIndex { index }) => unit.address(index).map_or(Target::Unknown, Target::Address),
        _ => Target::Unknown,
    }
}

/// A DIE reference as a `.debug_info` offset.
fn die_offset(unit: UnitRef<'_, Reader>, value: AttributeValue<Reader>) -> Option<u64> {
    match value {
        AttributeValue::UnitRef(o) => o.to_debug_info_offset(&unit.header).map(|d| d.0 as u64),
        AttributeValue::DebugInfoRef(d) => Some(d.0 as u64),
        _ => None,
    }
}

/// A function definition's entry address and address ranges (link-time).
///
/// The entry is `DW_AT_entry_pc`, else `DW_AT_low_pc`, else the start of the
/// first listed range: GCC lists a split function's hot part, where it is
/// entered, before its `.cold` part (which may lie at a lower address).
fn pc_ranges(unit: UnitRef<'_, Reader>, attrs: &[gimli::Attribute<Reader>]) -> Option<(u64, Vec<(u64, u64)>)> {
    let (mut low, mut high, mut ranges, mut entry) = (None, None, None, None);
    for a in attrs {
        match a.name() {
            DW_AT_low_pc => low = unit.attr_address(a.value()).ok().flatten(),
            DW_AT_high_pc => high = Some(a.value()),
            DW_AT_ranges => ranges = Some(a.value()),
            DW_AT_entry_pc => entry = Some(a.value()),
            _ => {}
        }
    }
    let mut spans = Vec::new();
    if let Some(low) = low {
        let end = match high {
            Some(AttributeValue::Udata(n)) => low.checked_add(n),
            Some(v) => unit.attr_address(v).ok().flatten(),
            None => None,
        };
        if let Some(end) = end.filter(|&e| e > low) {
            spans.push((low, end));
        }
    } else if let Some(Ok(Some(mut iter))) = ranges.map(|r| unit.attr_ranges(r)) {
        while let Ok(Some(r)) = iter.next() {
            if r.end > r.begin {
                spans.push((r.begin, r.end));
            }
            if spans.len() >= MAX_RANGES {
                break;
            }
        }
    }
    let base = low.or_else(|| spans.first().map(|s| s.0))?;
    let entry = match entry {
        // DWARF 5: a constant entry pc is an offset from the base address.
        Some(AttributeValue::Udata(off)) => base.checked_add(off)?,
        Some(v) => unit.attr_address(v).ok().flatten().unwrap_or(base),
        None => base,
    };
    Some((entry, spans))
}

/// A unit's call sites, located by an address in its module.
struct Located<'a> {
    module: &'a MappedModule,
    unit: UnitRef<'a, Reader>,
    sites: Arc<UnitSites>,
}

/// Tail-call search in one process.
pub struct TailCalls<'a> {
    symbols: &'a ProcessSymbols,
}

/// Why a search gave up (no frames are shown then).
struct GiveUp;

/// The tail call sites between a caller and a callee: `sites` from the
/// caller's side (outermost) to the callee's side; only the first `callers`
/// and the last `callees` are certain.
struct Chain {
    sites: Vec<u64>,
    callers: usize,
    callees: usize,
}

impl Chain {
    /// Merge another path: keep only the common outer and inner parts.
    /// `false` when nothing is common any more (ambiguous).
    fn intersect(&mut self, path: &[u64]) -> bool {
        let n = path.len();
        let common = |a: &mut usize, same: &dyn Fn(usize) -> bool| {
            *a = (*a).min(n);
            if let Some(i) = (0..*a).find(|&i| !same(i)) {
                *a = i;
            }
        };
        let sites = &self.sites;
        common(&mut self.callers, &|i| sites[i] == path[i]);
        let len = sites.len();
        common(&mut self.callees, &|i| sites[len - 1 - i] == path[n - 1 - i]);
        self.callers > 0 || self.callees > 0
    }

    /// The return pcs of the frames to show, innermost first.
    fn shown(&self) -> Vec<u64> {
        let n = self.sites.len();
        if self.callees >= n {
            return self.sites.iter().rev().copied().collect();
        }
        let callers = self.callers.min(n - self.callees);
        let mut out: Vec<u64> = self.sites[n - self.callees..].iter().rev().copied().collect();
        out.extend(self.sites[..callers].iter().rev());
        out
    }
}

/// Depth-first search state for one (caller, callee) pair.
struct Search<'s, 'a> {
    calls: &'s TailCalls<'a>,
    /// Runtime entry of the callee frame's function.
    callee: u64,
    /// Runtime return pcs of the tail call sites on the current path, outermost first.
    path: Vec<u64>,
    visits: usize,
    result: Option<Chain>,
}

impl Search<'_, '_> {
    /// From a call site (the caller's, or a tail call on the path), try every target.
    fn visit(&mut self, at: &Located<'_>, site: Target) -> Result<(), GiveUp> {
        let targets = self.calls.targets(at, site).ok_or(GiveUp)?;
        if targets.contains(&self.callee) {
            return self.candidate();
        }
        for t in targets {
            let l = self.calls.locate(t).ok_or(GiveUp)?;
            let bias = l.module.bias;
            // The target must be the entry of a function the DWARF describes.
            let f = l.sites.functions.get(&t.wrapping_sub(bias)).ok_or(GiveUp)?;
            if !f.complete {
                continue;
            }
            for &ret in &f.tail_calls {
                let pc = ret.wrapping_add(bias);
                if self.path.contains(&pc) {
                    continue;
                }
                if self.path.len() >= MAX_DEPTH {
                    return Err(GiveUp);
                }
                self.visits += 1;
                if self.visits > MAX_VISITS {
                    return Err(GiveUp);
                }
                let next = *l.sites.sites.get(&ret).ok_or(GiveUp)?;
                self.path.push(pc);
                self.visit(&l, next)?;
                self.path.pop();
            }
        }
        Ok(())
    }

    /// The current path reaches the callee.
    fn candidate(&mut self) -> Result<(), GiveUp> {
        match &mut self.result {
            None => {
                let n = self.path.len();
                self.result = Some(Chain {
                    sites: self.path.clone(),
                    callers: n,
                    callees: n,
                });
                Ok(())
            }
            Some(chain) => {
                if chain.intersect(&self.path) {
                    Ok(())
                } else {
                    Err(GiveUp)
                }
            }
        }
    }
}

impl<'a> TailCalls<'a> {
    pub fn new(symbols: &'a ProcessSymbols) -> Self {
        TailCalls { symbols }
    }

    /// Return pcs of the tail-call frames between a caller frame whose
    /// return address is `caller_ret` and the callee frame that contains
    /// `callee_probe`, innermost first; empty when there are none or they
    /// cannot be determined with certainty.
    pub fn between(&self, caller_ret: u64, callee_probe: u64) -> Vec<u64> {
        self.find(caller_ret, callee_probe).unwrap_or_default()
    }

    fn find(&self, caller_ret: u64, callee_probe: u64) -> Option<Vec<u64>> {
        let callee = self.function_entry(callee_probe)?;
        let caller = self.locate(caller_ret.checked_sub(1)?)?;
        let site = *caller.sites.sites.get(&caller_ret.wrapping_sub(caller.module.bias))?;
        let mut search = Search {
            calls: self,
            callee,
            path: Vec::new(),
            visits: 0,
            result: None,
        };
        search.visit(&caller, site).ok()?;
        Some(search.result?.shown())
    }

    /// The DWARF unit (and its call sites) covering runtime address `addr`.
    fn locate(&self, addr: u64) -> Option<Located<'a>> {
        let module = self.symbols.module_for(addr)?;
        let unit = module.module.dwarf_unit_at(addr.wrapping_sub(module.bias))?;
        let sites = module.module.call_sites.unit(unit)?;
        Some(Located { module, unit, sites })
    }

    /// Runtime entry of the function containing `probe`: its DWARF
    /// definition's, else its ELF symbol's start.
    fn function_entry(&self, probe: u64) -> Option<u64> {
        if let Some(l) = self.locate(probe) {
            if let Some(e) = l.sites.function_containing(probe.wrapping_sub(l.module.bias)) {
                return Some(e.wrapping_add(l.module.bias));
            }
        }
        let m = self.symbols.module_for(probe)?;
        let (sym, _) = m.module.symbol_for(probe.wrapping_sub(m.bias))?;
        Some(sym.addr.wrapping_add(m.bias))
    }

    /// Runtime addresses a call site may call; `None` when unknown.
    fn targets(&self, at: &Located<'_>, site: Target) -> Option<Vec<u64>> {
        let bias = at.module.bias;
        match site {
            Target::Address(a) => Some(vec![a.wrapping_add(bias)]),
            Target::Die(die) => match at.module.module.call_sites.resolve(at.unit, die) {
                Resolved::Entries(v) => Some(v.iter().map(|e| e.wrapping_add(bias)).collect()),
                Resolved::Name(name) => self.function_named(name, at.module).map(|a| vec![a]),
                Resolved::Unknown => None,
            },
            Target::Unknown => None,
        }
    }

    /// A function's runtime address by name: in `first`'s module, else in
    /// the first other module that defines it.
    fn function_named(&self, name: &str, first: &MappedModule) -> Option<u64> {
        let at = |m: &MappedModule| m.module.address_of(name).map(|a| a.wrapping_add(m.bias));
        at(first).or_else(|| {
            self.symbols
                .modules()
                .iter()
                .filter(|m| !std::ptr::eq(*m, first))
                .find_map(at)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(paths: &[&[u64]]) -> Option<Vec<u64>> {
        let mut c: Option<Chain> = None;
        for p in paths {
            match &mut c {
                None => {
                    c = Some(Chain {
                        sites: p.to_vec(),
                        callers: p.len(),
                        callees: p.len(),
                    })
                }
                Some(ch) => {
                    if !ch.intersect(p) {
                        return None;
                    }
                }
            }
        }
        c.map(|c| c.shown())
    }

    #[test]
    fn one_path_is_shown_whole_innermost_first() {
        assert_eq!(chain(&[&[1, 2, 3]]), Some(vec![3, 2, 1]));
        assert_eq!(chain(&[&[]]), Some(vec![]));
    }

    #[test]
    fn paths_keep_common_ends_only() {
        // Same first and last tail call, different middle: the middle is dropped.
        assert_eq!(chain(&[&[1, 2, 3], &[1, 9, 3]]), Some(vec![3, 1]));
        // Common outer part only.
        assert_eq!(chain(&[&[1, 2], &[1, 5]]), Some(vec![1]));
        // Common inner part only.
        assert_eq!(chain(&[&[1, 2], &[7, 2]]), Some(vec![2]));
        // Nothing in common: ambiguous.
        assert_eq!(chain(&[&[1, 2], &[3, 4]]), None);
        // A direct call and a tail-call path are ambiguous too.
        assert_eq!(chain(&[&[], &[3]]), None);
    }

    #[test]
    fn function_containing_prefers_the_innermost_range() {
        let u = UnitSites {
            ranges: vec![(0x100, 0x200, 0x100), (0x140, 0x150, 0x140), (0x300, 0x310, 0x2f0)],
            ..Default::default()
        };
        assert_eq!(u.function_containing(0x120), Some(0x100));
        assert_eq!(u.function_containing(0x145), Some(0x140));
        assert_eq!(u.function_containing(0x150), Some(0x100));
        assert_eq!(u.function_containing(0x305), Some(0x2f0));
        assert_eq!(u.function_containing(0x250), None);
        assert_eq!(u.function_containing(0x10), None);
    }

    /// The tail_calls fixture compiled `cc -g -O2` (as the integration tests
    /// build it), read without running it.
    fn fixture_binary() -> &'static [u8] {
        static BIN: OnceLock<&'static [u8]> = OnceLock::new();
        BIN.get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/c");
            let out = std::env::temp_dir().join(format!("lockdump-tailcall-unit-{}", std::process::id()));
            let status = std::process::Command::new("cc")
                .args(["-g", "-O2", "-pthread", "-o"])
                .arg(&out)
                .arg(dir.join("tail_calls.c"))
                .status()
                .expect("cc must be installed (a C toolchain: gcc/cc) to build fixtures/c/tail_calls.c");
            assert!(status.success(), "cc failed to build fixtures/c/tail_calls.c");
            let data = std::fs::read(&out).expect("read the built fixture");
            let _ = std::fs::remove_file(&out);
            Box::leak(data.into_boxed_slice())
        })
    }

    fn load_dwarf(data: &'static [u8]) -> Option<Dwarf> {
        use object::{Object, ObjectSection};
        let file = object::File::parse(data).ok()?;
        let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
            let bytes: &'static [u8] = match file.section_by_name(id.name()).and_then(|s| s.uncompressed_data().ok()) {
                Some(std::borrow::Cow::Borrowed(b)) => b,
                Some(std::borrow::Cow::Owned(v)) => Box::leak(v.into_boxed_slice()),
                None => &[],
            };
            Ok(gimli::EndianSlice::new(bytes, gimli::RunTimeEndian::Little))
        });
        dwarf.ok()
    }

    fn symbol(data: &[u8], name: &str) -> u64 {
        use object::{Object, ObjectSymbol};
        let file = object::File::parse(data).unwrap();
        let found = file.symbols().find(|s| s.name() == Ok(name));
        found.unwrap_or_else(|| panic!("no symbol {name}")).address()
    }

    /// Parse every unit and resolve every call-site target (bounded: the
    /// fixture has a handful of units); returns the sites of the unit that
    /// defines `entry`, with resolved targets of its function's tail calls.
    fn tail_targets(dwarf: &Dwarf, cache: &ModuleCallSites, entry: u64) -> Option<(bool, Vec<Resolved>)> {
        let mut found = None;
        let mut headers = dwarf.units();
        while let Ok(Some(h)) = headers.next() {
            let Ok(unit) = dwarf.unit(h) else { continue };
            let unit = UnitRef::new(dwarf, &unit);
            let Some(sites) = cache.unit(unit) else { continue };
            for target in sites.sites.values() {
                if let Target::Die(d) = target {
                    let _ = cache.resolve(unit, *d);
                }
            }
            if let Some(f) = sites.functions.get(&entry) {
                let targets = f
                    .tail_calls
                    .iter()
                    .map(|pc| match sites.sites[pc] {
                        Target::Die(d) => cache.resolve(unit, d),
                        Target::Address(a) => Resolved::Entries(vec![a]),
                        Target::Unknown => Resolved::Unknown,
                    })
                    .collect();
                found = Some((f.complete, targets));
            }
        }
        found
    }

    #[test]
    fn reads_tail_calls_of_the_fixture() {
        let data = fixture_binary();
        let dwarf = load_dwarf(data).expect("fixture DWARF");
        let cache = ModuleCallSites::default();
        let entries = |v: &[Resolved]| -> Vec<Option<Vec<u64>>> {
            v.iter()
                .map(|r| match r {
                    Resolved::Entries(e) => Some(e.clone()),
                    _ => None,
                })
                .collect()
        };
        let (complete, b) = tail_targets(&dwarf, &cache, symbol(data, "tail_b")).expect("tail_b is a function");
        assert!(complete, "GCC marks -O2 functions DW_AT_call_all_calls");
        assert_eq!(entries(&b), [Some(vec![symbol(data, "tail_c")])]);
        let (_, d) = tail_targets(&dwarf, &cache, symbol(data, "tail_d")).unwrap();
        assert!(
            matches!(d.as_slice(), [Resolved::Name("pthread_mutex_lock")]),
            "a declaration resolves to its name: {d:?}"
        );
        let (_, y) = tail_targets(&dwarf, &cache, symbol(data, "amb_y")).unwrap();
        let mut y = entries(&y);
        y.sort();
        let mut want = vec![Some(vec![symbol(data, "amb_p")]), Some(vec![symbol(data, "amb_q")])];
        want.sort();
        assert_eq!(y, want, "amb_y jumps to amb_p and amb_q");
        // tail_a calls tail_b: a call, not a tail call.
        let (_, a) = tail_targets(&dwarf, &cache, symbol(data, "tail_a")).unwrap();
        assert!(a
            .iter()
            .all(|r| !matches!(r, Resolved::Entries(e) if e == &[symbol(data, "tail_b")])));
    }

    /// Corrupt DWARF never panics: bytes of `.debug_info` and `.debug_abbrev`
    /// overwritten with pseudo-random values, then every unit parsed and every
    /// target resolved.
    #[test]
    fn garbage_dwarf_does_not_panic() {
        use object::{Object, ObjectSection};
        let data = fixture_binary();
        let file = object::File::parse(data).unwrap();
        let ranges: Vec<(usize, usize)> = [".debug_info", ".debug_abbrev", ".debug_addr", ".debug_rnglists"]
            .iter()
            .filter_map(|n| file.section_by_name(n)?.file_range())
            .map(|(o, l)| (o as usize, l as usize))
            .filter(|r| r.1 > 0)
            .collect();
        assert!(ranges.len() >= 2, "fixture has .debug_info and .debug_abbrev");
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..40 {
            let mut bytes = data.to_vec();
            for _ in 0..(1 + round % 16) {
                let (off, len) = ranges[(next() as usize) % ranges.len()];
                bytes[off + (next() as usize) % len] = next() as u8;
            }
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if let Some(dwarf) = load_dwarf(bytes) {
                let cache = ModuleCallSites::default();
                let _ = tail_targets(&dwarf, &cache, symbol(data, "tail_b"));
            }
        }
    }
}
