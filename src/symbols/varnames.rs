//! Source-path names for objects in a program's memory, from DWARF:
//! `forks[1].m`, `bank.accounts[3].lock`, `account_a->lock`.
//!
//! The ELF symbol covering a lock gives `forks+0x28`; the DWARF of the
//! global variable behind that symbol says which element and member the
//! offset is. Only what the named addresses need is read:
//!
//! - the index of a module's global variables ([`Globals`]) is built on the
//!   first lookup in that module, from the top level of each C or C++ unit
//!   (and C++ namespaces): tag, location and language only, no names, no
//!   line programs, at most [`MAX_INDEX_DIES`] entries per module;
//!   Shared libraries are indexed only when their DWARF is small
//!   ([`MAX_LIBRARY_INFO`]);
//! - a lookup reads the one variable covering the address and the types on
//!   the way down to the lock (names, member offsets, array bounds).
//!
//! A heap object is named through a global pointer of the executable when
//! that pointer's value is the start of an object of its pointee type which
//! contains the address: `account_a->lock`; failing that, through a pointer
//! local or parameter in scope in a frame of a thread of the process (the
//! executable's C and C++ frames, at most [`MAX_FRAMES`] of them, read as
//! [`super::guards`] reads guards), to a struct with the lock as a member:
//! `from->lock`. Nothing else is tried (no chains of
//! pointers, no containers, no guesses from sizes alone).
//!
//! The path stops where it would become ambiguous or implementation detail:
//! at a union (which member is meant is unknown), at a member with a name
//! reserved for the implementation (`__data` in glibc's `pthread_mutex_t`,
//! `_M_mutex` in libstdc++'s `std::mutex`), and at anything that is neither
//! a struct, a class nor an array. Rust units are left out (their lock
//! types are structs all the way down; they keep the ELF symbol's name).

// gimli's DW_* constants keep the DWARF standard's spelling.
#![allow(non_upper_case_globals)]

use gimli::constants::*;
use gimli::{AttributeValue, UnitOffset, UnitRef};

use super::file::Reader;
use super::units::LazyContext;
use super::MappedModule;
use crate::capture::Memory;

/// Most DIEs the index of one module visits (libc6-dbg's libc has ~1.4 M in all).
const MAX_INDEX_DIES: usize = 2_000_000;
/// The largest `.debug_info` of a shared library whose globals are indexed:
/// libc6-dbg's libc (~5 MB of it) takes 15-20 ms, more than the rest of a
/// small dump, so libraries that large keep the ELF symbol's names.
const MAX_LIBRARY_INFO: usize = 1 << 20;
/// Most steps down a path (members and array elements).
const MAX_DEPTH: usize = 32;
/// Most frames whose pointer locals are read (once per process).
const MAX_FRAMES: usize = 256;
/// Most global pointers read (once per process).
const MAX_POINTERS: usize = 4096;

/// A global variable at a fixed address.
#[derive(Debug, Clone, Copy)]
struct Var {
    /// Link-time address.
    addr: u64,
    /// `.debug_info` offset of its unit.
    unit: usize,
    /// Its DIE in that unit.
    die: UnitOffset,
}

/// The global variables of one module's C and C++ units, by address.
#[derive(Debug, Default)]
pub struct Globals {
    vars: Vec<Var>,
}

impl Globals {
    /// Index the top-level variables of every C/C++ unit.
    fn build(dwarf: &gimli::Dwarf<Reader>) -> Globals {
        let mut vars = Vec::new();
        let mut visited = 0usize;
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            let Some(unit_off) = header.debug_info_offset().map(|o| o.0) else {
                continue;
            };
            let Ok(abbrevs) = dwarf.abbreviations(&header) else {
                continue;
            };
            let Ok(mut tree) = header.entries_tree(&abbrevs, None) else {
                continue;
            };
            let Ok(root) = tree.root() else { continue };
            if !is_c_family(root.entry()) {
                continue;
            }
            let address_size = header.address_size();
            if index_scope(root, unit_off, address_size, &mut vars, &mut visited).is_err() || visited > MAX_INDEX_DIES {
                break;
            }
        }
        vars.sort_by_key(|v| v.addr);
        Globals { vars }
    }

    /// The variable whose address is the greatest at or below `svma`.
    fn candidate(&self, svma: u64) -> Option<Var> {
        let i = self.vars.partition_point(|v| v.addr <= svma);
        self.vars.get(i.checked_sub(1)?).copied()
    }
}

fn is_c_family(root: &gimli::DebuggingInformationEntry<Reader>) -> bool {
    let Some(AttributeValue::Language(lang)) = root.attr_value(DW_AT_language) else {
        return false;
    };
    matches!(
        lang,
        DW_LANG_C89
            | DW_LANG_C
            | DW_LANG_C99
            | DW_LANG_C11
            | DW_LANG_C17
            | DW_LANG_C_plus_plus
            | DW_LANG_C_plus_plus_03
            | DW_LANG_C_plus_plus_11
            | DW_LANG_C_plus_plus_14
            | DW_LANG_C_plus_plus_17
            | DW_LANG_C_plus_plus_20
    )
}

/// Add the variables with a static address among `node`'s children (and
/// in nested namespaces) to `out`.
fn index_scope(
    node: gimli::EntriesTreeNode<'_, '_, Reader>,
    unit: usize,
    address_size: u8,
    out: &mut Vec<Var>,
    visited: &mut usize,
) -> gimli::Result<()> {
    let mut children = node.children();
    while let Some(child) = children.next()? {
        *visited += 1;
        if *visited > MAX_INDEX_DIES {
            return Ok(());
        }
        let entry = child.entry();
        match entry.tag() {
            DW_TAG_namespace => index_scope(child, unit, address_size, out, visited)?,
            DW_TAG_variable => {
                if let Some(AttributeValue::Exprloc(e)) = entry.attr_value(DW_AT_location) {
                    if let Some(addr) = static_address(e.0.slice(), address_size) {
                        out.push(Var {
                            addr,
                            unit,
                            die: entry.offset(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The address of a location that is exactly `DW_OP_addr A`.
fn static_address(expr: &[u8], address_size: u8) -> Option<u64> {
    match (expr.first(), address_size) {
        (Some(&0x03), 8) if expr.len() == 9 => Some(u64::from_le_bytes(expr[1..9].try_into().ok()?)),
        (Some(&0x03), 4) if expr.len() == 5 => Some(u64::from(u32::from_le_bytes(expr[1..5].try_into().ok()?))),
        _ => None,
    }
}

/// The module's index of globals, built on first use.
fn globals(m: &MappedModule) -> Option<(&LazyContext, &Globals)> {
    if !m.module.has_debug_info() {
        return None;
    }
    let lazy = m.module.lazy_context()?;
    let g = m
        .module
        .globals
        .get_or_init(|| {
            let dwarf = lazy.dwarf();
            let small = gimli::Section::reader(&dwarf.debug_info).len() <= MAX_LIBRARY_INFO;
            (m.module.is_executable || small).then(|| Globals::build(dwarf))
        })
        .as_ref()?;
    Some((lazy, g))
}

/// The source path of the object at runtime address `addr` inside a global
/// variable of module `m`: `forks[1].m`, `bank.accounts[3].lock`.
pub fn global_path(m: &MappedModule, addr: u64) -> Option<String> {
    let (lazy, g) = globals(m)?;
    let svma = addr.wrapping_sub(m.bias);
    let var = g.candidate(svma)?;
    let unit = lazy.unit_at_offset(var.unit)?;
    let (name, ty) = var_name_and_type(&unit, var.die)?;
    let types = Types { unit };
    let off = svma - var.addr;
    if off >= types.size(ty)? {
        return None;
    }
    Some(types.path(name, ty, off))
}

/// A pointer that can name heap objects: a global of an executable, or a
/// local of one of its frames, whose type points to a struct, class or union.
#[derive(Debug, Clone)]
pub struct Root {
    /// The pointer's value.
    value: u64,
    /// Size of what it points to.
    size: u64,
    /// The variable's name.
    name: String,
    /// Index of its module in the process's modules.
    module: usize,
    /// `.debug_info` offset of its unit, and the pointee type in it.
    unit: usize,
    pointee: UnitOffset,
    /// A frame's local: names only through a member (`acct->lock`, never `*m`).
    local: bool,
}

/// Every pointer that may name a heap object of this process, read once
/// (the first heap lock to name pays for all): the executables' pointer
/// globals (at most [`MAX_POINTERS`] read), then the pointer locals in
/// scope in the executables' C/C++ frames of `stacks` (threads in order,
/// innermost frame first, at most [`MAX_FRAMES`] frames read). Globals come
/// first: a lock reachable both ways is named through the global.
pub fn heap_roots(modules: &[MappedModule], stacks: &[crate::stacks::Stack], mem: &dyn Memory) -> Vec<Root> {
    let mut roots = Vec::new();
    let mut reads = 0usize;
    for (index, m) in modules.iter().enumerate() {
        if !m.module.is_executable {
            continue;
        }
        let Some((lazy, g)) = globals(m) else { continue };
        for var in &g.vars {
            let Some(unit) = lazy.unit_at_offset(var.unit) else {
                continue;
            };
            let types = Types { unit };
            let Some(pointee) = var_type(&unit, var.die).and_then(|t| types.pointee(t)) else {
                continue;
            };
            let Some(size) = types.size(pointee) else { continue };
            if reads >= MAX_POINTERS {
                break;
            }
            reads += 1;
            let Ok(value) = mem.read_u64(var.addr.wrapping_add(m.bias)) else {
                continue;
            };
            let Some((name, _)) = var_name_and_type(&unit, var.die) else {
                continue;
            };
            if value != 0 {
                roots.push(Root {
                    value,
                    size,
                    name,
                    module: index,
                    unit: var.unit,
                    pointee,
                    local: false,
                });
            }
        }
    }
    local_roots(modules, stacks, mem, &mut roots);
    roots
}

/// The source path of a heap object at `addr` through one of `roots`:
/// `account_a->lock`, `*lockp` (a global pointer to the lock itself),
/// `acct->lock` (a frame's local).
pub fn heap_path(modules: &[MappedModule], roots: &[Root], addr: u64) -> Option<String> {
    for r in roots {
        if addr < r.value || addr - r.value >= r.size {
            continue;
        }
        let Some(lazy) = modules.get(r.module).and_then(|m| m.module.lazy_context()) else {
            continue;
        };
        let Some(unit) = lazy.unit_at_offset(r.unit) else {
            continue;
        };
        let rest = Types { unit }.path(String::new(), r.pointee, addr - r.value);
        // A local pointer to the lock itself (`pthread_mutex_t *m`) says
        // nothing the address does not; a global's name does.
        if r.local && !rest.starts_with('.') {
            continue;
        }
        return Some(through_pointer(&r.name, rest));
    }
    None
}

/// `name->member` for the path `rest` inside what pointer `name` points
/// to: `*name` for the pointee itself, `(*name)+0x8` past its start.
fn through_pointer(name: &str, rest: String) -> String {
    match rest.strip_prefix('.') {
        Some(member) => format!("{name}->{member}"),
        None if rest.is_empty() => format!("*{name}"),
        None => format!("(*{name}){rest}"),
    }
}

/// Add the pointer locals and parameters in scope in the frames of
/// `stacks` that are the executables' C or C++ code (a library's locals
/// are its implementation: glibc's `mutex` parameter in
/// pthread_mutex_lock), at most [`MAX_FRAMES`] frames with DWARF.
fn local_roots(modules: &[MappedModule], stacks: &[crate::stacks::Stack], mem: &dyn Memory, out: &mut Vec<Root>) {
    let module_for = |addr: u64| modules.iter().position(|m| m.contains(addr));
    let mut frames = 0usize;
    let mut last: Option<*const crate::stacks::FrameContext> = None;
    for stack in stacks {
        for f in &stack.frames {
            // Inlined frames share their physical frame's context: read it once.
            let Some(ctx) = &f.context else { continue };
            if last == Some(std::sync::Arc::as_ptr(ctx)) {
                continue;
            }
            last = Some(std::sync::Arc::as_ptr(ctx));
            let Some(index) = module_for(ctx.probe) else { continue };
            let m = &modules[index];
            if !m.module.is_executable || !m.module.has_debug_info() {
                continue;
            }
            frames += 1;
            if frames > MAX_FRAMES {
                return;
            }
            let svma = ctx.probe.wrapping_sub(m.bias);
            let Some(unit) = m.module.dwarf_unit_at(svma) else {
                continue;
            };
            let Some(unit_off) = unit.header.debug_info_offset().map(|o| o.0) else {
                continue;
            };
            let c_family = unit
                .entries_tree(None)
                .ok()
                .and_then(|mut t| t.root().ok().map(|r| is_c_family(r.entry())));
            if c_family != Some(true) {
                continue;
            }
            let Some(locals) = super::guards::locals_at(unit, svma) else {
                continue;
            };
            let lists = m.module.location_lists();
            let types = Types { unit };
            for local in &locals {
                let Some(pointee) = local.ty.and_then(|t| types.pointee(t)) else {
                    continue;
                };
                let Some(size) = types.size(pointee) else { continue };
                let Some((value, _)) = super::guards::read_pointer(&unit, &lists, local, svma, m.bias, ctx, mem) else {
                    continue;
                };
                if value != 0 {
                    out.push(Root {
                        value,
                        size,
                        name: local.name.clone(),
                        module: index,
                        unit: unit_off,
                        pointee,
                        local: true,
                    });
                }
            }
        }
    }
}

fn attr_str(unit: &UnitRef<'_, Reader>, v: AttributeValue<Reader>) -> Option<String> {
    let s = unit.attr_string(v).ok()?;
    Some(String::from_utf8_lossy(&s).into_owned())
}

/// A variable's type, through `DW_AT_specification` (C++ definitions of declared members).
fn var_type(unit: &UnitRef<'_, Reader>, die: UnitOffset) -> Option<UnitOffset> {
    let e = unit.entry(die).ok()?;
    if let Some(AttributeValue::UnitRef(t)) = e.attr_value(DW_AT_type) {
        return Some(t);
    }
    let Some(AttributeValue::UnitRef(spec)) = e.attr_value(DW_AT_specification) else {
        return None;
    };
    match unit.entry(spec).ok()?.attr_value(DW_AT_type) {
        Some(AttributeValue::UnitRef(t)) => Some(t),
        _ => None,
    }
}

/// A variable's name as the source writes it (demangled linkage name for
/// C++ namespaces and class members: `Bank::registry`), and its type.
fn var_name_and_type(unit: &UnitRef<'_, Reader>, die: UnitOffset) -> Option<(String, UnitOffset)> {
    let ty = var_type(unit, die)?;
    let mut e = unit.entry(die).ok()?;
    if e.attr_value(DW_AT_name).is_none() && e.attr_value(DW_AT_linkage_name).is_none() {
        if let Some(AttributeValue::UnitRef(spec)) = e.attr_value(DW_AT_specification) {
            e = unit.entry(spec).ok()?;
        }
    }
    let linkage = e
        .attr_value(DW_AT_linkage_name)
        .or_else(|| e.attr_value(DW_AT_MIPS_linkage_name))
        .and_then(|v| attr_str(unit, v));
    let name = match linkage {
        Some(l) => super::demangle::demangle(&l),
        None => attr_str(unit, e.attr_value(DW_AT_name)?)?,
    };
    Some((name, ty))
}

/// Reading types of one unit.
struct Types<'u> {
    unit: UnitRef<'u, Reader>,
}

impl Types<'_> {
    /// `ty` without typedefs and qualifiers.
    fn strip(&self, mut ty: UnitOffset) -> Option<(UnitOffset, gimli::DebuggingInformationEntry<Reader>)> {
        for _ in 0..MAX_DEPTH {
            let e = self.unit.entry(ty).ok()?;
            match e.tag() {
                DW_TAG_typedef | DW_TAG_const_type | DW_TAG_volatile_type | DW_TAG_atomic_type
                | DW_TAG_restrict_type => match e.attr_value(DW_AT_type) {
                    Some(AttributeValue::UnitRef(t)) => ty = t,
                    _ => return None,
                },
                _ => return Some((ty, e)),
            }
        }
        None
    }

    /// The type a pointer type points to (a struct, class or union, or a
    /// typedef of one: what a lock can be a member of or be).
    fn pointee(&self, ty: UnitOffset) -> Option<UnitOffset> {
        let (_, e) = self.strip(ty)?;
        if e.tag() != DW_TAG_pointer_type {
            return None;
        }
        let Some(AttributeValue::UnitRef(t)) = e.attr_value(DW_AT_type) else {
            return None;
        };
        let (_, target) = self.strip(t)?;
        matches!(
            target.tag(),
            DW_TAG_structure_type | DW_TAG_class_type | DW_TAG_union_type
        )
        .then_some(t)
    }

    /// Size in bytes of an object of type `ty`.
    fn size(&self, ty: UnitOffset) -> Option<u64> {
        let (_, e) = self.strip(ty)?;
        if let Some(s) = e.attr_value(DW_AT_byte_size).and_then(|v| v.udata_value()) {
            return Some(s);
        }
        match e.tag() {
            DW_TAG_array_type => {
                let (elem, dims) = self.array(&e)?;
                dims.iter().try_fold(self.size(elem)?, |a, &d| a.checked_mul(d?))
            }
            DW_TAG_pointer_type | DW_TAG_reference_type => Some(u64::from(self.unit.encoding().address_size)),
            _ => None,
        }
    }

    /// An array type's element type and the count of each dimension (`None`: unknown bound).
    fn array(&self, e: &gimli::DebuggingInformationEntry<Reader>) -> Option<(UnitOffset, Vec<Option<u64>>)> {
        let Some(AttributeValue::UnitRef(elem)) = e.attr_value(DW_AT_type) else {
            return None;
        };
        let mut dims = Vec::new();
        let mut tree = self.unit.entries_tree(Some(e.offset())).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Ok(Some(c)) = children.next() {
            let c = c.entry();
            if c.tag() != DW_TAG_subrange_type {
                continue;
            }
            let count = c.attr_value(DW_AT_count).and_then(|v| v.udata_value()).or_else(|| {
                let upper = c.attr_value(DW_AT_upper_bound).and_then(|v| v.udata_value())?;
                let lower = c
                    .attr_value(DW_AT_lower_bound)
                    .and_then(|v| v.udata_value())
                    .unwrap_or(0);
                upper.checked_add(1)?.checked_sub(lower)
            });
            dims.push(count);
        }
        if dims.is_empty() {
            dims.push(None);
        }
        Some((elem, dims))
    }

    /// `prefix` followed by the members and elements of `ty` leading to byte
    /// `off` in it, as far as they are unambiguous and the program's own;
    /// an offset left over (not at the start of the last part) is written `+0x…`.
    fn path(&self, prefix: String, mut ty: UnitOffset, mut off: u64) -> String {
        let mut out = prefix;
        for _ in 0..MAX_DEPTH {
            let Some((_, e)) = self.strip(ty) else { break };
            let step = match e.tag() {
                DW_TAG_structure_type | DW_TAG_class_type => self.member_at(&e, off),
                DW_TAG_array_type => self.element_at(&e, off),
                _ => None,
            };
            let Some((part, next, rest)) = step else { break };
            out.push_str(&part);
            ty = next;
            off = rest;
        }
        if off != 0 {
            out.push_str(&format!("+{off:#x}"));
        }
        out
    }

    /// The member of a struct or class covering byte `off`: (`.name` or ""
    /// for an anonymous member or a base class, its type, offset in it).
    fn member_at(&self, e: &gimli::DebuggingInformationEntry<Reader>, off: u64) -> Option<(String, UnitOffset, u64)> {
        let mut tree = self.unit.entries_tree(Some(e.offset())).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Ok(Some(c)) = children.next() {
            let c = c.entry();
            if !matches!(c.tag(), DW_TAG_member | DW_TAG_inheritance) {
                continue;
            }
            // Static members (a declaration, no offset) are not in the object.
            if c.attr_value(DW_AT_declaration).is_some() || c.attr_value(DW_AT_bit_size).is_some() {
                continue;
            }
            let Some(start) = c.attr_value(DW_AT_data_member_location).and_then(|v| v.udata_value()) else {
                continue;
            };
            let Some(AttributeValue::UnitRef(mty)) = c.attr_value(DW_AT_type) else {
                continue;
            };
            let Some(size) = self.size(mty) else { continue };
            if !(start <= off && off < start.saturating_add(size)) {
                continue;
            }
            if c.tag() == DW_TAG_inheritance {
                return Some((String::new(), mty, off - start));
            }
            let name = c.attr_value(DW_AT_name).and_then(|v| attr_str(&self.unit, v));
            return match name {
                Some(n) if reserved(&n) => None,
                Some(n) => Some((format!(".{n}"), mty, off - start)),
                None => Some((String::new(), mty, off - start)),
            };
        }
        None
    }

    /// The element of an array covering byte `off`: (`[i]` or `[i][j]`, element type, offset in it).
    fn element_at(&self, e: &gimli::DebuggingInformationEntry<Reader>, off: u64) -> Option<(String, UnitOffset, u64)> {
        let (elem, dims) = self.array(e)?;
        let elem_size = self.size(elem).filter(|&s| s > 0)?;
        let mut index = off / elem_size;
        let rest = off % elem_size;
        // Row-major: the last dimension varies fastest.
        let mut parts = vec![0u64; dims.len()];
        for i in (1..dims.len()).rev() {
            let d = dims[i].filter(|&d| d > 0)?;
            parts[i] = index % d;
            index /= d;
        }
        if dims[0].is_some_and(|d| index >= d) {
            return None;
        }
        parts[0] = index;
        let text: String = parts.iter().map(|p| format!("[{p}]")).collect();
        Some((text, elem, rest))
    }
}

/// A name C and C++ reserve for the implementation (`__data`, `_M_mutex`):
/// the inside of a library type, not part of the program's path.
fn reserved(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0] == b'_' && (b[1] == b'_' || b[1].is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_the_implementations() {
        assert!(reserved("__data"));
        assert!(reserved("_M_mutex"));
        assert!(!reserved("_lock"));
        assert!(!reserved("lock"));
        assert!(!reserved("_"));
    }

    #[test]
    fn only_a_bare_address_is_static() {
        let mut e = vec![0x03];
        e.extend(0x4010u64.to_le_bytes());
        assert_eq!(static_address(&e, 8), Some(0x4010));
        e.push(0x23); // DW_OP_plus_uconst: not a plain address
        assert_eq!(static_address(&e, 8), None);
        assert_eq!(static_address(&[0x91, 0x10], 8), None);
    }
}
