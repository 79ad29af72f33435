//! One ELF image (executable, shared library or the vdso) with what lockdump
//! needs from it: load segments (for the bias), symbols, unwind tables, and
//! DWARF line/inline information from it or its separate debug file.
//!
//! Files are memory-mapped and the mapping is kept for the life of the process
//! (`'static`), so gimli and addr2line can borrow from it without copying. A
//! run loads tens of modules at most, each once (see [`super::ModuleCache`]);
//! files are mapped by [`super::file::map_file`], once each.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::OnceLock;

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

use super::file::Reader;
use super::tailcall::ModuleCallSites;
use super::units::LazyContext;

/// A PT_LOAD segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
}

/// An ELF symbol: link-time address, size (0 if unknown) and raw name.
#[derive(Debug, Clone, Copy)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
    pub name: &'static str,
}

/// Section bytes plus the section's link-time address.
#[derive(Debug, Clone, Copy)]
pub struct SectionData {
    pub addr: u64,
    pub data: &'static [u8],
}

pub struct ElfModule {
    /// The path the target mapped (for display), not the path lockdump opened.
    pub path: PathBuf,
    pub build_id: Option<Vec<u8>>,
    pub segments: Vec<Segment>,
    /// Sorted by address.
    symbols: Vec<Symbol>,
    /// The other names of addresses in `symbols` (`__GI___futex_abstimed_wait_cancelable64`
    /// beside `__futex_abstimed_wait_cancelable64`): DWARF call sites name
    /// their targets by any of them.
    aliases: Vec<Symbol>,
    /// All sections by name with address and size (for `.PyRuntime` and friends).
    sections: Vec<(String, u64, u64)>,
    pub eh_frame: Option<SectionData>,
    pub eh_frame_hdr: Option<SectionData>,
    pub debug_frame: Option<SectionData>,
    pub text_addr: u64,
    pub got_addr: u64,
    /// The file DWARF comes from (this one, or a separate debug file).
    pub debug_path: Option<PathBuf>,
    debug_data: Option<&'static [u8]>,
    dwarf: OnceLock<Option<LazyContext>>,
    /// `.debug_loc` and `.debug_loclists` (uncompressed), read on first use:
    /// only the search for live lock guards needs locals' locations.
    locations: OnceLock<(&'static [u8], &'static [u8])>,
    /// DWARF call sites, parsed per unit on demand (tail-call frames).
    pub(crate) call_sites: ModuleCallSites,
    /// The C and C++ global variables DWARF describes, indexed on first use
    /// (naming locks by their source path, see [`super::varnames`]).
    pub(crate) globals: OnceLock<Option<super::varnames::Globals>>,
    /// An executable (`ET_EXEC`, or a PIE with an interpreter), not a library.
    pub is_executable: bool,
}

fn leak(data: Cow<'static, [u8]>) -> &'static [u8] {
    match data {
        Cow::Borrowed(b) => b,
        Cow::Owned(v) => Box::leak(v.into_boxed_slice()),
    }
}

fn section(file: &object::File<'static>, name: &str) -> Option<SectionData> {
    let s = file.section_by_name(name)?;
    let data = s.uncompressed_data().ok()?;
    Some(SectionData {
        addr: s.address(),
        data: leak(data),
    })
}

/// A position-independent executable: `DF_1_PIE` in `DT_FLAGS_1` (a shared
/// library may have an interpreter too, as glibc's libc.so.6 does).
fn is_pie(file: &object::File<'static>) -> bool {
    const DT_FLAGS_1: u64 = 0x6fff_fffb;
    const DF_1_PIE: u64 = 0x0800_0000;
    let Some(data) = file.section_by_name(".dynamic").and_then(|s| s.data().ok()) else {
        return false;
    };
    if !file.is_64() || !file.is_little_endian() {
        return false;
    }
    data.chunks_exact(16).any(|e| {
        let tag = u64::from_le_bytes(e[0..8].try_into().unwrap_or_default());
        let val = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
        tag == DT_FLAGS_1 && val & DF_1_PIE != 0
    })
}

fn collect_symbols(file: &object::File<'static>, out: &mut Vec<Symbol>) {
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        if !sym.is_definition() || sym.address() == 0 {
            continue;
        }
        if !matches!(
            sym.kind(),
            SymbolKind::Text | SymbolKind::Data | SymbolKind::Unknown | SymbolKind::Tls
        ) {
            continue;
        }
        if sym.kind() == SymbolKind::Tls {
            continue; // TLS offsets are not addresses
        }
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() || name.starts_with('$') {
            continue;
        }
        out.push(Symbol {
            addr: sym.address(),
            size: sym.size(),
            name,
        });
    }
}

impl ElfModule {
    /// Parse the ELF in `data`. `path` is the name shown to users; `debug`
    /// locates a separate debug file (given the build ID and debuglink).
    pub fn parse(
        path: PathBuf,
        data: &'static [u8],
        find_debug: impl FnOnce(Option<&[u8]>, Option<(&[u8], u32)>) -> Option<(PathBuf, &'static [u8])>,
    ) -> Result<ElfModule, object::Error> {
        let file = object::File::parse(data)?;
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        let segments = file
            .segments()
            .map(|s| Segment {
                vaddr: s.address(),
                memsz: s.size(),
                offset: s.file_range().0,
            })
            .collect();
        let sections = file
            .sections()
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.address(), s.size())))
            .collect();
        let mut symbols = Vec::new();
        collect_symbols(&file, &mut symbols);
        let has_dwarf = file.section_by_name(".debug_info").is_some();
        let is_executable = file.kind() == object::ObjectKind::Executable || is_pie(&file);
        let (debug_path, debug_data) = if has_dwarf {
            (Some(path.clone()), Some(data))
        } else {
            let link = file.gnu_debuglink().ok().flatten();
            match find_debug(build_id.as_deref(), link) {
                Some((p, d)) => (Some(p), Some(d)),
                None => (None, None),
            }
        };
        let mut debug_frame = section(&file, ".debug_frame");
        if let Some(d) = debug_data.filter(|_| !has_dwarf) {
            if let Ok(dfile) = object::File::parse(d) {
                collect_symbols(&dfile, &mut symbols);
                if debug_frame.is_none() {
                    debug_frame = section(&dfile, ".debug_frame");
                }
            }
        }
        // One name per address. Aliases are common in libc (`pthread_mutex_lock`,
        // `__pthread_mutex_lock`, `___pthread_mutex_lock`): show the one a user
        // would write, i.e. sized first, then fewest leading underscores, then shortest.
        let rank = |s: &Symbol| {
            (
                s.size == 0,
                s.name.len() - s.name.trim_start_matches('_').len(),
                s.name.len(),
            )
        };
        symbols.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| rank(a).cmp(&rank(b))));
        let mut aliases = Vec::new();
        let mut kept: Vec<Symbol> = Vec::with_capacity(symbols.len());
        for s in symbols {
            match kept.last() {
                Some(k) if k.addr == s.addr => {
                    if k.name != s.name {
                        aliases.push(s);
                    }
                }
                _ => kept.push(s),
            }
        }
        let symbols = kept;
        Ok(ElfModule {
            path,
            build_id,
            segments,
            symbols,
            aliases,
            sections,
            eh_frame: section(&file, ".eh_frame"),
            eh_frame_hdr: section(&file, ".eh_frame_hdr"),
            debug_frame,
            text_addr: file.section_by_name(".text").map(|s| s.address()).unwrap_or(0),
            got_addr: file.section_by_name(".got").map(|s| s.address()).unwrap_or(0),
            debug_path,
            debug_data,
            dwarf: OnceLock::new(),
            locations: OnceLock::new(),
            call_sites: Default::default(),
            globals: OnceLock::new(),
            is_executable,
        })
    }

    /// The symbol covering link-time address `addr`, and the offset into it.
    pub fn symbol_for(&self, addr: u64) -> Option<(&Symbol, u64)> {
        let i = self.symbols.partition_point(|s| s.addr <= addr);
        let sym = self.symbols.get(i.checked_sub(1)?)?;
        let off = addr - sym.addr;
        if sym.size != 0 && off >= sym.size {
            // Past the end of a sized symbol: a gap (padding, a local stub).
            return None;
        }
        if sym.size == 0 && off > 0x10000 {
            return None;
        }
        Some((sym, off))
    }

    /// Whether any symbol's (mangled) name contains `part`.
    pub fn has_symbol_containing(&self, part: &str) -> bool {
        self.symbols.iter().any(|s| s.name.contains(part))
    }

    /// Link-time address of the first symbol whose name starts with `prefix`.
    pub fn symbol_with_prefix(&self, prefix: &str) -> Option<u64> {
        self.symbols.iter().find(|s| s.name.starts_with(prefix)).map(|s| s.addr)
    }

    /// Link-time address of a symbol by exact name.
    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        self.symbols.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// Link-time address of a function by any of its names, ignoring an ELF
    /// symbol version (`sem_wait@@GLIBC_2.34` answers `sem_wait`).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        let unversioned = |s: &&Symbol| s.name.split('@').next() == Some(name);
        self.symbols
            .iter()
            .find(unversioned)
            .or_else(|| self.aliases.iter().find(unversioned))
            .map(|s| s.addr)
    }

    pub fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.sections
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, a, s)| (*a, *s))
    }

    pub fn has_debug_info(&self) -> bool {
        self.debug_data.is_some()
    }

    fn lazy_dwarf(&self) -> Option<&LazyContext> {
        self.dwarf
            .get_or_init(|| {
                let prepared = super::dwarf::prepared(self.build_id.as_deref(), self.debug_data?)?;
                Some(LazyContext::new(prepared))
            })
            .as_ref()
    }

    /// The module's DWARF (sections prepared, units parsed on demand).
    pub(crate) fn lazy_context(&self) -> Option<&LazyContext> {
        self.lazy_dwarf()
    }

    /// The location lists of the debug file (empty sections if it has none).
    pub(crate) fn location_lists(&self) -> gimli::LocationLists<Reader> {
        let (loc, loclists) = *self.locations.get_or_init(|| {
            let Some(data) = self.debug_data else { return (&[], &[]) };
            let Ok(file) = object::File::parse(data) else {
                return (&[], &[]);
            };
            let read = |name: &str| -> &'static [u8] {
                use object::{Object, ObjectSection};
                match file.section_by_name(name).and_then(|s| s.uncompressed_data().ok()) {
                    Some(std::borrow::Cow::Borrowed(b)) => b,
                    // Compressed: inflated once per module and kept for the run, like the mapped file.
                    Some(std::borrow::Cow::Owned(v)) => Box::leak(v.into_boxed_slice()),
                    None => &[],
                }
            };
            (read(".debug_loc"), read(".debug_loclists"))
        });
        let endian = gimli::RunTimeEndian::Little;
        gimli::LocationLists::new(
            gimli::DebugLoc::new(loc, endian),
            gimli::DebugLocLists::new(loclists, endian),
        )
    }

    /// DWARF for file:line and inlined frames at link-time address `svma`,
    /// parsed on first use (sections prepared ahead by [`super::prefetch`],
    /// see [`super::dwarf`]; units parsed as needed, see [`super::units`]).
    pub fn dwarf_at(&self, svma: u64) -> Option<&addr2line::Context<Reader>> {
        self.lazy_dwarf()?.at(svma)
    }

    /// The DWARF unit covering link-time address `svma`, read by itself
    /// (for call sites, which need no line or inline lookup).
    pub(crate) fn dwarf_unit_at(&self, svma: u64) -> Option<gimli::UnitRef<'_, Reader>> {
        self.lazy_dwarf()?.unit_at(svma)
    }

    /// Parse together the DWARF units covering `svmas` (link-time
    /// addresses), which are about to be looked up.
    pub fn prepare_dwarf(&self, svmas: impl IntoIterator<Item = u64>) {
        if let Some(d) = self.lazy_dwarf() {
            d.prepare(svmas);
        }
    }

    /// The load bias for this module given the target's mappings of it:
    /// `runtime address = link-time address + bias`.
    ///
    /// Matches each mapping's file offset to a PT_LOAD segment's page-aligned
    /// offset instead of assuming the first mapping is the first segment:
    /// rust-lld lays out segments so that assumption is wrong.
    pub fn load_bias(&self, mappings: &[(u64, u64)]) -> Option<u64> {
        const PAGE: u64 = 0x1000;
        for &(start, offset) in mappings {
            for seg in &self.segments {
                if seg.offset & !(PAGE - 1) == offset {
                    return Some(start.wrapping_sub(seg.vaddr & !(PAGE - 1)));
                }
            }
        }
        None
    }
}
