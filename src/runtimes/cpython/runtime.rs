//! Finding `_PyRuntime` and choosing the layout for this interpreter.
//!
//! `_PyRuntime` is an exported data symbol of libpython / the python
//! executable (in `.dynsym`, so stripped builds keep it) and, since 3.11,
//! lives in its own `.PyRuntime` section. 3.13+ start it with
//! `_Py_DebugOffsets`, which also carries the exact version; before that the
//! version comes from the exported `Py_Version` constant (3.11+) or, failing
//! that, from the module's file name.

use super::layout::{self, DebugOffsets, Layout, Version};
use super::CpythonError;
use crate::capture::Memory;
use crate::runtimes::{ProcessView, SymbolLookup};

/// The runtime state of the target and the layout that describes it.
#[derive(Debug, Clone)]
pub struct FoundRuntime {
    pub address: u64,
    pub layout: Layout,
}

/// Locate `_PyRuntime` and build the layout. `Ok(None)`: not a CPython process.
pub fn find_runtime(view: &ProcessView) -> Result<Option<FoundRuntime>, CpythonError> {
    find_runtime_in(view.symbols, view.memory)
}

/// [`find_runtime`] from symbols and memory alone: also before the stop,
/// when no snapshot exists yet (see [`super::stopcopy`]).
pub fn find_runtime_in(symbols: &dyn SymbolLookup, memory: &dyn Memory) -> Result<Option<FoundRuntime>, CpythonError> {
    let address = symbols
        .symbol_address("_PyRuntime")
        .or_else(|| symbols.section(".PyRuntime").map(|(a, _)| a));
    let Some(address) = address else {
        return Ok(None);
    };
    let mut cookie = [0u8; 8];
    memory.read_exact(address, &mut cookie)?;
    let layout = if &cookie == layout::DEBUG_COOKIE {
        from_debug_offsets(memory, address)?
    } else {
        let version = version_without_cookie(symbols, memory, address)?;
        match version {
            (3, 11, _) => layout::layout_311(version),
            (3, 12, _) => layout::layout_312(version),
            (3, m, _) if m >= 13 => {
                return Err(CpythonError::BadDebugOffsets(format!(
                    "CPython {}.{} must start _PyRuntime with the xdebugpy cookie, found {:?}",
                    version.0,
                    version.1,
                    String::from_utf8_lossy(&cookie)
                )))
            }
            (a, b, c) => return Err(CpythonError::UnsupportedVersion(a, b, c)),
        }
    };
    Ok(Some(FoundRuntime { address, layout }))
}

/// Decode `PY_VERSION_HEX` (0xMMmmpp..).
pub fn version_from_hex(hex: u64) -> Version {
    (
        ((hex >> 24) & 0xff) as u8,
        ((hex >> 16) & 0xff) as u8,
        ((hex >> 8) & 0xff) as u8,
    )
}

fn from_debug_offsets(mem: &dyn Memory, address: u64) -> Result<Layout, CpythonError> {
    let version = version_from_hex(mem.read_u64(address + 8)?);
    if !layout::supported(version) {
        return Err(CpythonError::UnsupportedVersion(version.0, version.1, version.2));
    }
    let fields = layout::debug_offsets_fields(version.1)
        .ok_or(CpythonError::UnsupportedVersion(version.0, version.1, version.2))?;
    let raw = mem.read_vec(address, fields.len() * 8)?;
    let words: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let d =
        DebugOffsets::decode(fields, &words).ok_or_else(|| CpythonError::BadDebugOffsets("table too short".into()))?;
    layout::layout_from_debug_offsets(version, &d).map_err(CpythonError::BadDebugOffsets)
}

/// 3.11 / 3.12: `Py_Version` if it belongs to the same module as `_PyRuntime`,
/// else the module's file name (`libpython3.12.so.1.0`, `python3.11`).
fn version_without_cookie(
    symbols: &dyn SymbolLookup,
    memory: &dyn Memory,
    runtime: u64,
) -> Result<Version, CpythonError> {
    // `_PyRuntime` may sit in the anonymous part of the module's .bss,
    // past its file-backed mappings (pyenv's 3.8 and 3.9 builds): then the
    // module is the one whose code defines `Py_Initialize`.
    let module = symbols.module_at(runtime).or_else(|| {
        symbols
            .symbol_address("Py_Initialize")
            .and_then(|at| symbols.module_at(at))
    });
    if let Some(at) = symbols.symbol_address("Py_Version") {
        let same_module = module.is_none() || symbols.module_at(at) == module;
        if same_module {
            let v = version_from_hex(memory.read_u64(at)?);
            if v.0 == 3 && v.1 >= 11 {
                return Ok(v);
            }
        }
    }
    module
        .as_deref()
        .and_then(version_from_path)
        .ok_or_else(|| CpythonError::UnknownVersion(format!("no Py_Version symbol and module {module:?}")))
}

/// `.../libpython3.12.so.1.0` or `.../python3.11` -> (3, minor, 0).
pub fn version_from_path(path: &str) -> Option<Version> {
    let file = path.rsplit('/').next()?;
    let at = file.find("python3.")? + "python3.".len();
    let digits: String = file[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    let minor: u8 = digits.parse().ok()?;
    Some((3, minor, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_from_hex(0x030b07f0), (3, 11, 7));
        assert_eq!(version_from_hex(0x030d00f0), (3, 13, 0));
        assert_eq!(version_from_path("/usr/lib/libpython3.12.so.1.0"), Some((3, 12, 0)));
        assert_eq!(version_from_path("/usr/bin/python3.11"), Some((3, 11, 0)));
        assert_eq!(version_from_path("/usr/bin/python3"), None);
        assert_eq!(version_from_path("/x/python3.13t"), Some((3, 13, 0)));
    }
}
