//! Live lock guards in a frame, from its DWARF locals.
//!
//! Rust's std `Mutex` and `RwLock` record no owner; what proves that a
//! thread holds one is a guard value in one of its frames: a local whose type
//! is `MutexGuard`, `RwLockReadGuard` or `RwLockWriteGuard`, whose pointer
//! field (`lock`, `inner_lock` for a read guard) points to the lock. This
//! module finds such locals in the DWARF scopes (subprogram, inlined
//! subroutines, lexical blocks) that cover a frame's pc, evaluates their
//! locations (an expression or the location-list entry covering the pc)
//! with the registers and CFA the unwinder recovered for that frame, and
//! reads the pointer field from the frame's memory or register.
//!
//! A local is in scope only inside its lexical block, which starts after the
//! `let` that initializes it: a guard about to be created (the thread is in
//! the `lock()` call that will return it) is not in scope yet. A location
//! that needs a register the unwinder could not recover (a caller-saved one
//! in a caller frame) or an entry value gives nothing: the local is skipped,
//! never guessed.

// gimli's DW_* constants keep the DWARF standard's spelling.
#![allow(non_upper_case_globals)]

use gimli::constants::*;
use gimli::{AttributeValue, EvaluationResult, Location, UnitOffset, UnitRef, Value};

use super::file::Reader;
use super::MappedModule;
use crate::capture::Memory;
use crate::stacks::FrameContext;

/// Most DIEs visited for one frame (a unit's tree is walked down the scopes covering the pc).
const MAX_DIES: usize = 200_000;
/// Most steps of one location expression.
const MAX_STEPS: usize = 1000;

/// Which guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    Mutex,
    RwRead,
    RwWrite,
}

impl GuardKind {
    pub fn type_name(self) -> &'static str {
        match self {
            GuardKind::Mutex => "MutexGuard",
            GuardKind::RwRead => "RwLockReadGuard",
            GuardKind::RwWrite => "RwLockWriteGuard",
        }
    }
}

/// A guard local that is live at the frame's pc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGuard {
    pub kind: GuardKind,
    /// The value of its pointer field: the lock (for a read guard, the lock's state word).
    pub lock: u64,
    /// The local's name in the source.
    pub variable: String,
    /// A `lock_api` guard (the `parking_lot` crate's locks): `lock` is the
    /// address of the raw lock inside the `lock_api::Mutex`/`RwLock` (the
    /// parking key), not of the object the guard points to.
    pub lock_api: bool,
    /// Where its pointer was read: `register rbx`, `stack 0x7ffd...`.
    pub place: String,
}

/// The guards live in the frame described by `ctx`, in module `m`.
/// `None`: the module has no DWARF locals for this pc (stripped, or built
/// with line tables only), so nothing can be said from DWARF.
pub fn live_guards(m: &MappedModule, ctx: &FrameContext, mem: &dyn Memory) -> Option<Vec<LiveGuard>> {
    let svma = ctx.probe.wrapping_sub(m.bias);
    let unit = m.module.dwarf_unit_at(svma)?;
    let lists = m.module.location_lists();
    let locals = locals_at(unit, svma)?;
    let mut out = Vec::new();
    for local in locals {
        let Some(kind) = local.kind else { continue };
        let Some((lock, place)) = read_pointer(&unit, &lists, &local, svma, m.bias, ctx, mem) else {
            continue;
        };
        if lock != 0 {
            out.push(LiveGuard {
                kind,
                lock: lock.wrapping_add(local.adjust),
                lock_api: local.lock_api,
                variable: local.name,
                place,
            });
        }
    }
    Some(out)
}

/// A local in scope at the pc.
pub(super) struct Local {
    pub(super) name: String,
    /// Its type, if DWARF gives one.
    pub(super) ty: Option<UnitOffset>,
    /// The guard kind and the byte offset of its pointer field, if its type is a guard.
    kind: Option<GuardKind>,
    field: u64,
    /// Added to the pointer read: the `raw` field's offset in a `lock_api` lock.
    adjust: u64,
    lock_api: bool,
    location: Option<AttributeValue<Reader>>,
    /// `DW_AT_frame_base` of the subprogram it belongs to.
    frame_base: Option<AttributeValue<Reader>>,
}

struct Walk<'u> {
    unit: UnitRef<'u, Reader>,
    svma: u64,
    visited: usize,
    locals: Vec<Local>,
    /// A scope covering the pc has at least one local with a location: the
    /// DWARF describes locals here (not a line-tables-only build).
    described: bool,
}

impl<'u> Walk<'u> {
    fn covers(&self, entry: &gimli::DebuggingInformationEntry<Reader>) -> bool {
        let Ok(mut ranges) = self.unit.die_ranges(entry) else {
            return false;
        };
        while let Ok(Some(r)) = ranges.next() {
            if r.begin <= self.svma && self.svma < r.end {
                return true;
            }
        }
        false
    }

    fn scope(
        &mut self,
        node: gimli::EntriesTreeNode<'_, '_, Reader>,
        frame_base: Option<AttributeValue<Reader>>,
        in_fn: bool,
    ) -> gimli::Result<()> {
        let mut children = node.children();
        while let Some(child) = children.next()? {
            self.visited += 1;
            if self.visited > MAX_DIES {
                return Ok(());
            }
            let entry = child.entry();
            match entry.tag() {
                DW_TAG_namespace | DW_TAG_structure_type | DW_TAG_enumeration_type | DW_TAG_union_type => {
                    // Rust nests functions in namespaces and impl blocks.
                    self.scope(child, frame_base, in_fn)?;
                }
                DW_TAG_subprogram if self.covers(entry) => {
                    let fb = entry.attr_value(DW_AT_frame_base);
                    self.scope(child, fb, true)?;
                }
                DW_TAG_inlined_subroutine | DW_TAG_lexical_block if self.covers(entry) => {
                    self.scope(child, frame_base, in_fn)?;
                }
                DW_TAG_variable | DW_TAG_formal_parameter if in_fn => {
                    let location = entry.attr_value(DW_AT_location);
                    if location.is_some() {
                        self.described = true;
                    }
                    let (name, ty) = self.name_and_type(entry);
                    let (kind, field, adjust) = ty
                        .and_then(|t| self.guard_type(t))
                        .map_or((None, 0, None), |(k, f, a)| (Some(k), f, a));
                    self.locals.push(Local {
                        name: name.unwrap_or_else(|| "?".into()),
                        ty,
                        kind,
                        field,
                        adjust: adjust.unwrap_or(0),
                        lock_api: adjust.is_some(),
                        location,
                        frame_base,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The name and type of a local, following `DW_AT_abstract_origin` (inlined copies keep them there).
    fn name_and_type(&self, entry: &gimli::DebuggingInformationEntry<Reader>) -> (Option<String>, Option<UnitOffset>) {
        let mut name = entry
            .attr_value(DW_AT_name)
            .and_then(|v| self.unit.attr_string(v).ok())
            .map(|s| String::from_utf8_lossy(&s).into_owned());
        let mut ty = match entry.attr_value(DW_AT_type) {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            _ => None,
        };
        if let Some(AttributeValue::UnitRef(origin)) = entry.attr_value(DW_AT_abstract_origin) {
            if let Ok(o) = self.unit.entry(origin) {
                if name.is_none() {
                    name = o
                        .attr_value(DW_AT_name)
                        .and_then(|v| self.unit.attr_string(v).ok())
                        .map(|s| String::from_utf8_lossy(&s).into_owned());
                }
                if ty.is_none() {
                    if let Some(AttributeValue::UnitRef(t)) = o.attr_value(DW_AT_type) {
                        ty = Some(t);
                    }
                }
            }
        }
        (name, ty)
    }

    /// For a guard type: its kind, the offset of its pointer to the lock, and
    /// for a `lock_api` guard (parking_lot's `MutexGuard<RawMutex, T>`,
    /// `RwLock{Read,Write}Guard<RawRwLock, T>`: lock_api-0.4 src/mutex.rs,
    /// src/rwlock.rs) the offset of the `raw` lock inside the object its
    /// pointer (`mutex`, `rwlock`) points to: `lock_api::Mutex` is not
    /// `repr(C)`, and rustc places `raw` (one byte for parking_lot's
    /// `RawMutex`) after a wider `T`, so the offset comes from the DWARF.
    fn guard_type(&self, ty: UnitOffset) -> Option<(GuardKind, u64, Option<u64>)> {
        let e = self.unit.entry(ty).ok()?;
        if e.tag() != DW_TAG_structure_type {
            return None;
        }
        let name = self.unit.attr_string(e.attr_value(DW_AT_name)?).ok()?;
        let name = String::from_utf8_lossy(&name);
        let (kind, std_field, api_field) = if name.starts_with("MutexGuard<") {
            (GuardKind::Mutex, "lock", "mutex")
        } else if name.starts_with("RwLockWriteGuard<") {
            (GuardKind::RwWrite, "lock", "rwlock")
        } else if name.starts_with("RwLockReadGuard<") {
            (GuardKind::RwRead, "inner_lock", "rwlock")
        } else {
            return None;
        };
        if let Some((offset, _)) = self.member(ty, std_field) {
            return Some((kind, offset, None));
        }
        // lock_api: `mutex: &'a Mutex<R, T>` -> the pointee's `raw` member.
        let (offset, field_ty) = self.member(ty, api_field)?;
        let pointer = self.unit.entry(field_ty?).ok()?;
        if pointer.tag() != DW_TAG_pointer_type && pointer.tag() != DW_TAG_reference_type {
            return None;
        }
        let Some(AttributeValue::UnitRef(target)) = pointer.attr_value(DW_AT_type) else {
            return None;
        };
        let (raw, _) = self.member(target, "raw")?;
        Some((kind, offset, Some(raw)))
    }

    /// The byte offset and type of the member `field` of the structure at `ty`.
    fn member(&self, ty: UnitOffset, field: &str) -> Option<(u64, Option<UnitOffset>)> {
        let mut tree = self.unit.entries_tree(Some(ty)).ok()?;
        let root = tree.root().ok()?;
        let mut members = root.children();
        while let Ok(Some(m)) = members.next() {
            let m = m.entry();
            if m.tag() != DW_TAG_member {
                continue;
            }
            let Some(n) = m.attr_value(DW_AT_name).and_then(|v| self.unit.attr_string(v).ok()) else {
                continue;
            };
            if &*n == field.as_bytes() {
                let offset = m.attr_value(DW_AT_data_member_location)?.udata_value()?;
                let ty = match m.attr_value(DW_AT_type) {
                    Some(AttributeValue::UnitRef(t)) => Some(t),
                    _ => None,
                };
                return Some((offset, ty));
            }
        }
        None
    }
}

/// The locals in scope at link-time address `svma` in `unit`; `None` when
/// the DWARF describes no locals there (see [`live_guards`]).
pub(super) fn locals_at<'u>(unit: UnitRef<'u, Reader>, svma: u64) -> Option<Vec<Local>> {
    let mut tree = unit.entries_tree(None).ok()?;
    let root = tree.root().ok()?;
    let mut walk = Walk {
        unit,
        svma,
        visited: 0,
        locals: Vec::new(),
        described: false,
    };
    walk.scope(root, None, false).ok()?;
    walk.described.then_some(walk.locals)
}

/// A pointer-sized value of a local (at byte `local.field` of it: for a
/// guard its pointer field, for a pointer local 0, its value), read where
/// the local's location says at the frame's pc; with where it was read.
pub(super) fn read_pointer(
    unit: &UnitRef<'_, Reader>,
    lists: &gimli::LocationLists<Reader>,
    local: &Local,
    svma: u64,
    bias: u64,
    ctx: &FrameContext,
    mem: &dyn Memory,
) -> Option<(u64, String)> {
    let expr = match local.location? {
        AttributeValue::Exprloc(e) => e,
        v => {
            let offset = match v {
                AttributeValue::LocationListsRef(o) => o,
                AttributeValue::DebugLocListsIndex(i) => {
                    lists.get_offset(unit.encoding(), unit.loclists_base, i).ok()?
                }
                _ => return None,
            };
            let mut list = lists
                .locations(
                    offset,
                    unit.encoding(),
                    unit.low_pc,
                    &unit.dwarf.debug_addr,
                    unit.addr_base,
                )
                .ok()?;
            let mut found = None;
            while let Ok(Some(entry)) = list.next() {
                if entry.range.begin <= svma && svma < entry.range.end {
                    found = Some(entry.data);
                    break;
                }
            }
            found?
        }
    };
    let frame_base = match local.frame_base {
        Some(AttributeValue::Exprloc(fb)) => match evaluate(unit, fb, None, bias, ctx, mem)?.as_slice() {
            [p] => match p.location {
                Location::Register { register } => ctx.regs.get(register.0 as usize),
                Location::Address { address } => Some(address),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    let pieces = evaluate(unit, expr, frame_base, bias, ctx, mem)?;
    // Find the piece holding the pointer field (8 bytes at `local.field`).
    let mut at = 0u64;
    for p in &pieces {
        let size = p.size_in_bits.map(|b| b / 8);
        let end = size.map_or(u64::MAX, |s| at + s);
        if at <= local.field && local.field + 8 <= end {
            let within = local.field - at;
            return match p.location {
                Location::Address { address } => {
                    let a = address.checked_add(within)?;
                    Some((mem.read_u64(a).ok()?, format!("stack {a:#x}")))
                }
                Location::Register { register } if within == 0 => {
                    let v = ctx.regs.get(register.0 as usize)?;
                    Some((v, format!("register {}", register_name(register.0))))
                }
                Location::Value { value } if within == 0 => Some((value.to_u64(u64::MAX).ok()?, "a value".into())),
                _ => None,
            };
        }
        at = end;
        if size.is_none() {
            break;
        }
    }
    None
}

fn register_name(n: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip",
    ];
    NAMES.get(n as usize).copied().unwrap_or("?")
}

/// Evaluate a location expression with the frame's registers, CFA and memory.
fn evaluate(
    unit: &UnitRef<'_, Reader>,
    expr: gimli::Expression<Reader>,
    frame_base: Option<u64>,
    bias: u64,
    ctx: &FrameContext,
    mem: &dyn Memory,
) -> Option<Vec<gimli::Piece<Reader>>> {
    let mut eval = expr.evaluation(unit.encoding());
    let mut state = eval.evaluate().ok()?;
    for _ in 0..MAX_STEPS {
        state = match state {
            EvaluationResult::Complete => return Some(eval.result()),
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let bytes = mem.read_vec(address, size as usize).ok()?;
                let mut w = [0u8; 8];
                w[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
                eval.resume_with_memory(Value::Generic(u64::from_le_bytes(w))).ok()?
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = ctx.regs.get(register.0 as usize)?;
                eval.resume_with_register(Value::Generic(v)).ok()?
            }
            EvaluationResult::RequiresFrameBase => eval.resume_with_frame_base(frame_base?).ok()?,
            EvaluationResult::RequiresCallFrameCfa => eval.resume_with_call_frame_cfa(ctx.cfa?).ok()?,
            EvaluationResult::RequiresRelocatedAddress(a) => {
                eval.resume_with_relocated_address(a.wrapping_add(bias)).ok()?
            }
            EvaluationResult::RequiresIndexedAddress { index, relocate } => {
                let a = unit.address(index).ok()?;
                eval.resume_with_indexed_address(if relocate { a.wrapping_add(bias) } else { a })
                    .ok()?
            }
            // Entry values, TLS, other units' DIEs: not known for a stopped frame.
            _ => return None,
        };
    }
    None
}
