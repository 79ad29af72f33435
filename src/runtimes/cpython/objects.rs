//! Reading Python objects out of a target's memory: type names, `str`, `int`,
//! tuples, `bytes`, dicts and instance attributes.
//!
//! Everything is bounded and validated: an object whose type is not what the
//! caller expects, a length out of range, or an unreadable address gives an
//! error, never a panic or an unbounded loop.

use std::cell::RefCell;
use std::collections::HashMap;

use super::layout::{InstanceDictLayout, Layout, LongLayout, UnicodeStateBits, DICT_KEYS_GENERAL};
use super::layout::{UNICODE_STATE_BITFIELD, UNICODE_STATE_BYTE_INTERNED};
use super::CpythonError;
use crate::capture::Memory;

/// Longest string decoded (code points); longer ones are truncated.
pub const MAX_STR_CHARS: u64 = 4096;
/// Largest tuple read (co_localsplusnames, co_names).
pub const MAX_TUPLE: u64 = 1 << 16;
/// Largest dict walked (module globals, `sys.modules`, `threading._active`).
pub const MAX_DICT_ENTRIES: u64 = 1 << 17;
/// Largest `bytes` read (line tables, exception tables).
pub const MAX_BYTES: u64 = 1 << 20;

type Result<T> = std::result::Result<T, CpythonError>;

/// Object reader for one target and one layout.
pub struct Objects<'a> {
    pub mem: &'a dyn Memory,
    pub layout: &'a Layout,
    type_names: RefCell<HashMap<u64, Option<String>>>,
    strings: RefCell<HashMap<u64, Option<String>>>,
}

fn corrupt(what: impl Into<String>) -> CpythonError {
    CpythonError::Corrupt(what.into())
}

impl<'a> Objects<'a> {
    pub fn new(mem: &'a dyn Memory, layout: &'a Layout) -> Self {
        Objects {
            mem,
            layout,
            type_names: RefCell::new(HashMap::new()),
            strings: RefCell::new(HashMap::new()),
        }
    }

    pub fn u64(&self, addr: u64) -> Result<u64> {
        Ok(self.mem.read_u64(addr)?)
    }

    /// Read a pointer at `base + off` where `off` may be negative (pre-header fields).
    pub fn ptr_at(&self, base: u64, off: i64) -> Result<u64> {
        let addr = base
            .checked_add_signed(off)
            .ok_or_else(|| corrupt(format!("address overflow at {base:#x}{off:+}")))?;
        self.u64(addr)
    }

    /// Whether `addr` could be an object pointer at all (cheap pre-check).
    pub fn plausible(addr: u64) -> bool {
        addr >= 0x1000 && addr % 8 == 0 && addr < (1 << 56)
    }

    pub fn type_of(&self, obj: u64) -> Result<u64> {
        if !Self::plausible(obj) {
            return Err(corrupt(format!("{obj:#x} is not an object pointer")));
        }
        let t = self.u64(obj + self.layout.object.ob_type)?;
        if !Self::plausible(t) {
            return Err(corrupt(format!("object {obj:#x} has type pointer {t:#x}")));
        }
        Ok(t)
    }

    /// `tp_name` of a type object (cached per type).
    pub fn type_name_of_type(&self, ty: u64) -> Option<String> {
        if let Some(n) = self.type_names.borrow().get(&ty) {
            return n.clone();
        }
        let name = self
            .u64(ty + self.layout.types.tp_name)
            .ok()
            .filter(|p| Self::plausible_cstr(*p))
            .and_then(|p| self.mem.read_cstring(p, 256).ok())
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()));
        self.type_names.borrow_mut().insert(ty, name.clone());
        name
    }

    fn plausible_cstr(p: u64) -> bool {
        (0x1000..(1 << 56)).contains(&p)
    }

    /// `type(obj).__name__` as CPython prints it (`_thread.lock`, `str`), if readable.
    pub fn type_name(&self, obj: u64) -> Option<String> {
        let t = self.type_of(obj).ok()?;
        self.type_name_of_type(t)
    }

    pub fn is_type(&self, obj: u64, name: &str) -> bool {
        self.type_name(obj).as_deref() == Some(name)
    }

    /// Decode a `str` object (compact ASCII, compact UCS1/2/4, or legacy ready).
    pub fn str(&self, obj: u64) -> Result<String> {
        if let Some(s) = self.strings.borrow().get(&obj) {
            return s.clone().ok_or_else(|| corrupt(format!("{obj:#x} is not a str")));
        }
        let r = self.str_uncached(obj);
        self.strings.borrow_mut().insert(obj, r.as_ref().ok().cloned());
        r
    }

    fn str_uncached(&self, obj: u64) -> Result<String> {
        if !self.is_type(obj, "str") {
            return Err(corrupt(format!("{obj:#x} is not a str")));
        }
        let u = &self.layout.unicode;
        let length = self.mem.read_i64(obj + u.length)?;
        if length < 0 {
            return Err(corrupt(format!("str {obj:#x} has length {length}")));
        }
        let state = self.mem.read_u32(obj + u.state)?;
        let bits = unicode_state_bits(state);
        let kind = (state >> bits.kind_shift) & 7;
        let compact = (state >> bits.compact_bit) & 1 == 1;
        let ascii = (state >> bits.ascii_bit) & 1 == 1;
        let width: u64 = match kind {
            1 => 1,
            2 => 2,
            4 => 4,
            _ => return Err(corrupt(format!("str {obj:#x} has kind {kind}"))),
        };
        let data = if compact {
            obj + if ascii { u.ascii_size } else { u.compact_size }
        } else {
            // Legacy (non-compact) string: `data.any` follows the compact part.
            self.u64(obj + u.compact_size)?
        };
        let n = (length as u64).min(MAX_STR_CHARS);
        let raw = self.mem.read_vec(data, (n * width) as usize)?;
        let s = match width {
            1 => raw.iter().map(|&b| b as char).collect(),
            2 => raw
                .chunks_exact(2)
                .map(|c| char::from_u32(u16::from_le_bytes([c[0], c[1]]) as u32).unwrap_or('\u{fffd}'))
                .collect(),
            _ => raw
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}'))
                .collect(),
        };
        Ok(s)
    }

    /// Decode an `int` that fits 128 bits.
    pub fn int(&self, obj: u64) -> Result<i128> {
        if !self.is_type(obj, "int") && !self.is_type(obj, "bool") {
            return Err(corrupt(format!("{obj:#x} is not an int")));
        }
        let (ndigits, negative, digits) = match self.layout.long {
            LongLayout::SignedSize { ob_size, digits } => {
                let size = self.mem.read_i64(obj + ob_size)?;
                (size.unsigned_abs(), size < 0, digits)
            }
            LongLayout::Tagged { lv_tag, digits } => {
                let tag = self.u64(obj + lv_tag)?;
                (tag >> 3, tag & 3 == 2, digits)
            }
        };
        if ndigits > 4 {
            return Err(corrupt(format!("int {obj:#x} has {ndigits} digits")));
        }
        let mut v: i128 = 0;
        for i in (0..ndigits).rev() {
            let d = self.mem.read_u32(obj + digits + 4 * i)? & 0x3fff_ffff;
            v = (v << 30) | d as i128;
        }
        Ok(if negative { -v } else { v })
    }

    /// Items of a tuple (at most [`MAX_TUPLE`]).
    /// A `float`'s value (`PyFloatObject.ob_fval`, right after the header), or an `int`'s.
    pub fn number(&self, obj: u64) -> Option<f64> {
        match self.type_name(obj)?.as_str() {
            "float" => {
                let bits = self.u64(obj + self.layout.object.header).ok()?;
                Some(f64::from_bits(bits))
            }
            "int" => self.int(obj).ok().map(|v| v as f64),
            _ => None,
        }
    }

    pub fn tuple(&self, obj: u64) -> Result<Vec<u64>> {
        if !self.is_type(obj, "tuple") {
            return Err(corrupt(format!("{obj:#x} is not a tuple")));
        }
        let n = self.mem.read_i64(obj + self.layout.tuple.ob_size)?;
        if !(0..=MAX_TUPLE as i64).contains(&n) {
            return Err(corrupt(format!("tuple {obj:#x} has size {n}")));
        }
        let raw = self.mem.read_vec(obj + self.layout.tuple.ob_item, n as usize * 8)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    /// Contents of a `bytes` object (at most `max` bytes).
    pub fn bytes(&self, obj: u64, max: u64) -> Result<Vec<u8>> {
        if !self.is_type(obj, "bytes") {
            return Err(corrupt(format!("{obj:#x} is not bytes")));
        }
        let n = self.mem.read_i64(obj + self.layout.object.ob_size)?;
        if n < 0 || n as u64 > max.min(MAX_BYTES) {
            return Err(corrupt(format!("bytes {obj:#x} has size {n}")));
        }
        Ok(self.mem.read_vec(obj + self.layout.misc.bytes_sval, n as usize)?)
    }

    /// (key, value) pairs of a dict, in insertion order, skipping deleted slots.
    pub fn dict_items(&self, dict: u64) -> Result<Vec<(u64, u64)>> {
        if !self.is_type(dict, "dict") {
            return Err(corrupt(format!("{dict:#x} is not a dict")));
        }
        let d = &self.layout.dict;
        let keys = self.u64(dict + d.ma_keys)?;
        let values = self.u64(dict + d.ma_values)?;
        let values = (values != 0).then_some(values);
        self.keys_items(keys, values)
    }

    /// Entries of a `PyDictKeysObject`, with values from a split `PyDictValues` when given.
    fn keys_items(&self, keys: u64, values: Option<u64>) -> Result<Vec<(u64, u64)>> {
        let d = &self.layout.dict;
        if !Self::plausible(keys) {
            return Err(corrupt(format!("dict keys pointer {keys:#x}")));
        }
        let log2_size = self.mem.read_u8(keys + d.dk_log2_size)? as u32;
        let log2_index_bytes = self.mem.read_u8(keys + d.dk_log2_index_bytes)? as u32;
        let kind = self.mem.read_u8(keys + d.dk_kind)?;
        let nentries = self.mem.read_i64(keys + d.dk_nentries)?;
        if log2_size > 30 || log2_index_bytes > 33 || log2_index_bytes < log2_size {
            return Err(corrupt(format!(
                "dict keys {keys:#x}: log2 sizes {log2_size}/{log2_index_bytes}"
            )));
        }
        if nentries < 0 || nentries as u64 > (1u64 << log2_size) || nentries as u64 > MAX_DICT_ENTRIES {
            return Err(corrupt(format!("dict keys {keys:#x}: {nentries} entries")));
        }
        let n = nentries as u64;
        let entries = keys + d.dk_indices + (1u64 << log2_index_bytes);
        let general = kind == DICT_KEYS_GENERAL;
        let esize = if general {
            d.general_entry_size
        } else {
            d.unicode_entry_size
        };
        let raw = self.mem.read_vec(entries, (n * esize) as usize)?;
        let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        let split_values = match values {
            Some(v) if n > 0 => Some(self.mem.read_vec(v + d.values_array, (n * 8) as usize)?),
            _ => None,
        };
        let mut out = Vec::with_capacity(n as usize);
        for (i, e) in raw.chunks_exact(esize as usize).enumerate() {
            let (key, value) = if general {
                (word(e, 8), word(e, 16))
            } else {
                let v = match &split_values {
                    Some(sv) => word(sv, i * 8),
                    None => word(e, 8),
                };
                (word(e, 0), v)
            };
            if key != 0 && value != 0 {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// `dict[key]` for a string key.
    pub fn dict_get_str(&self, dict: u64, key: &str) -> Result<Option<u64>> {
        for (k, v) in self.dict_items(dict)? {
            if self.str(k).map(|s| s == key).unwrap_or(false) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The attributes stored in an instance's managed dict or inline values
    /// (Python classes since 3.11), as (name, value) pairs. Empty for objects
    /// without a managed dict.
    pub fn instance_attrs(&self, obj: u64) -> Result<Vec<(String, u64)>> {
        let ty = self.type_of(obj)?;
        let t = &self.layout.types;
        let flags = self.u64(ty + t.tp_flags)?;
        if flags & t.flag_managed_dict == 0 {
            return Ok(Vec::new());
        }
        let cached_keys = || self.u64(ty + t.ht_cached_keys);
        let items = match self.layout.instance_dict {
            InstanceDictLayout::Split311 { values, dict } => {
                let dict = self.ptr_at(obj, dict)?;
                if dict != 0 {
                    self.dict_items(dict)?
                } else {
                    let values = self.ptr_at(obj, values)?;
                    if values == 0 {
                        Vec::new()
                    } else {
                        self.keys_items(cached_keys()?, Some(values))?
                    }
                }
            }
            InstanceDictLayout::Tagged312 { dict_or_values } => {
                let dorv = self.ptr_at(obj, dict_or_values)?;
                if dorv & 1 == 1 {
                    self.keys_items(cached_keys()?, Some(dorv.wrapping_add(1)))?
                } else if dorv != 0 {
                    self.dict_items(dorv)?
                } else {
                    Vec::new()
                }
            }
            InstanceDictLayout::Inline313 { dict } => {
                let dict = self.ptr_at(obj, dict)?;
                let inline = t.flag_inline_values.map(|f| flags & f != 0).unwrap_or(false);
                if dict != 0 {
                    self.dict_items(dict)?
                } else if inline {
                    let basicsize = self.mem.read_i64(ty + t.tp_basicsize)?;
                    if !(16..0x10000).contains(&basicsize) {
                        return Err(corrupt(format!("type {ty:#x} has basicsize {basicsize}")));
                    }
                    let values = obj + basicsize as u64;
                    let valid = match self.layout.dict.values_valid {
                        Some(off) => self.mem.read_u8(values + off)? != 0,
                        None => true,
                    };
                    if valid {
                        self.keys_items(cached_keys()?, Some(values))?
                    } else {
                        Vec::new()
                    }
                } else {
                    Vec::new()
                }
            }
        };
        Ok(items
            .into_iter()
            .filter_map(|(k, v)| Some((self.str(k).ok()?, v)))
            .collect())
    }

    /// One attribute of an instance or a module, by name.
    pub fn attr(&self, obj: u64, name: &str) -> Option<u64> {
        if let Some(dict) = self.module_dict(obj) {
            return self.dict_get_str(dict, name).ok()?;
        }
        self.instance_attrs(obj)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// A module object's `__dict__` (`None` if `obj` is not a module).
    pub fn module_dict(&self, obj: u64) -> Option<u64> {
        if !self.is_type(obj, "module") {
            return None;
        }
        let dict = self.u64(obj + self.layout.misc.module_dict).ok()?;
        self.is_type(dict, "dict").then_some(dict)
    }
}

/// Which `PyASCIIObject.state` encoding a state word uses (see [`UnicodeStateBits`]).
fn unicode_state_bits(state: u32) -> UnicodeStateBits {
    if state & 0xff <= 3 {
        UNICODE_STATE_BYTE_INTERNED
    } else {
        UNICODE_STATE_BITFIELD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_encodings_are_told_apart() {
        // Compact ASCII, interned=1, bitfield: 1 | kind 1 << 2 | compact << 5 | ascii << 6.
        let b = unicode_state_bits(1 | 1 << 2 | 1 << 5 | 1 << 6);
        assert_eq!(b.kind_shift, 2);
        // Same string with a whole interned byte.
        let b = unicode_state_bits(1 | 1 << 8 | 1 << 11 | 1 << 12);
        assert_eq!(b.kind_shift, 8);
    }
}
