//! Symbolization: which module, function, file and line an address belongs to.
//!
//! [`ModuleCache`] loads each ELF file once per run (keyed by device, inode,
//! size and mtime of the opened file, so a binary shared by several inspected
//! processes is parsed once). [`ProcessSymbols`] places the cached modules at
//! their load addresses in one process and answers lookups.
//!
//! Files are opened through the target's view of the file system
//! (`/proc/PID/root/...`) so targets in containers resolve, and through
//! `/proc/PID/map_files/...` when the mapped file was deleted or replaced.

pub mod debuginfo;
pub mod demangle;
pub mod diskcache;
pub mod dwarf;
pub mod elf;
pub mod file;
pub mod guards;
pub mod prefetch;
pub mod sections;
pub mod tailcall;
pub mod units;
pub mod varnames;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::capture::{Memory, Snapshot};
use crate::proc::MapEntry;
use crate::stacks::Frame;
pub use elf::ElfModule;
use file::map_file;

/// Identity of an opened file: the same bytes whatever path reached them.
type FileKey = (u64, u64, u64, i64);

/// ELF modules loaded so far in this run.
#[derive(Default)]
pub struct ModuleCache {
    modules: Mutex<HashMap<FileKey, Option<Arc<ElfModule>>>>,
}

impl ModuleCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Load (or reuse) the module in `file`, displayed as `shown`.
    fn load(&self, file: &Path, shown: &Path, root: &Path) -> Option<Arc<ElfModule>> {
        let meta = std::fs::metadata(file).ok()?;
        let key = (meta.dev(), meta.ino(), meta.size(), meta.mtime());
        if let Some(m) = self.modules.lock().ok()?.get(&key) {
            return m.clone();
        }
        let module = map_file(file).ok().and_then(|data| {
            ElfModule::parse(shown.to_path_buf(), data, |id, link| {
                debuginfo::find_debug_file(root, shown, id, link)
            })
            .ok()
            .map(Arc::new)
        });
        self.modules.lock().ok()?.insert(key, module.clone());
        module
    }
}

/// A module placed in one process's address space.
pub struct MappedModule {
    /// Lowest and highest address of the module's mappings.
    pub start: u64,
    pub end: u64,
    /// Runtime address = link-time address + bias.
    pub bias: u64,
    pub module: Arc<ElfModule>,
    /// Short name for display (`libc.so.6`, `[vdso]`).
    pub name: String,
}

impl MappedModule {
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// All modules of one process.
pub struct ProcessSymbols {
    modules: Vec<MappedModule>,
    /// The pointers that name heap objects, read on the first heap lock to
    /// name (one snapshot's: a ProcessSymbols is loaded per snapshot).
    heap_roots: std::sync::OnceLock<Vec<varnames::Root>>,
    /// Whether locks are named from DWARF ([`SymbolLookup::source_name`]);
    /// off while a Python process's stacks are named from ELF symbols only.
    dwarf_names: std::sync::atomic::AtomicBool,
}

impl ProcessSymbols {
    /// Place every file-backed mapping (and the vdso) of the snapshot.
    pub fn load(snapshot: &Snapshot, cache: &ModuleCache) -> Self {
        let mut symbols = match &snapshot.source {
            crate::capture::Source::Live(live) => Self::load_maps(*live, &snapshot.maps, cache),
            crate::capture::Source::Core(core) => Self::load_core(core, &snapshot.maps, cache),
        };
        if let Some(vdso) = load_vdso(snapshot) {
            symbols.modules.push(vdso);
            symbols.modules.sort_by_key(|m| m.start);
        }
        symbols
    }

    /// Place every file-backed mapping of `maps` (of the process whose
    /// files are reached through thread `mm_tid`), without the vdso: what
    /// can be known before a snapshot exists (the files are parsed once per
    /// run through `cache`, so a later [`ProcessSymbols::load`] reuses them).
    pub fn load_maps(live: crate::live::Live, maps: &[crate::proc::MapEntry], cache: &ModuleCache) -> Self {
        let root = live.root_dir();
        let mut modules = Vec::new();
        for (first, maps) in file_groups(maps) {
            let shown = PathBuf::from(&first.path);
            let Some(module) = open_mapped(live, &root, first, &maps, |file| cache.load(file, &shown, &root)) else {
                continue;
            };
            modules.extend(place(module, &maps, &shown));
        }
        modules.sort_by_key(|m| m.start);
        ProcessSymbols {
            modules,
            heap_roots: Default::default(),
            dwarf_names: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Place the files a core's mappings name, as found under its sysroot
    /// (the executable possibly replaced by `--exe`). A file that is missing
    /// or a different build than the one mapped (build IDs differ) is left
    /// out: its frames stay unnamed rather than named wrongly (the report
    /// lists it, from [`crate::capture::corefile::CoreFile::check_file`]).
    pub fn load_core(core: &crate::capture::corefile::CoreFile, maps: &[MapEntry], cache: &ModuleCache) -> Self {
        use crate::capture::corefile::FileCheck;
        let mut modules = Vec::new();
        for (first, maps) in file_groups(maps) {
            let named = first.core_path();
            if matches!(
                core.check_file(&named),
                FileCheck::Missing(_) | FileCheck::Differs { .. }
            ) {
                continue;
            }
            let shown = PathBuf::from(&first.path);
            let local = core.local_path(&named);
            let Some(module) = cache.load(&local, &shown, &core.sysroot) else {
                continue;
            };
            modules.extend(place(module, &maps, &shown));
        }
        modules.sort_by_key(|m| m.start);
        ProcessSymbols {
            modules,
            heap_roots: Default::default(),
            dwarf_names: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Modules placed by the caller instead of found in a snapshot's maps:
    /// for fuzzers and tests that unwind and symbolize through synthetic or
    /// deliberately corrupted modules.
    pub fn from_modules(mut modules: Vec<MappedModule>) -> Self {
        modules.sort_by_key(|m| m.start);
        ProcessSymbols {
            modules,
            heap_roots: Default::default(),
            dwarf_names: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Name locks from DWARF (on by default), or from ELF symbols only.
    pub fn set_dwarf_names(&self, on: bool) {
        self.dwarf_names.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn modules(&self) -> &[MappedModule] {
        &self.modules
    }

    pub fn module_for(&self, addr: u64) -> Option<&MappedModule> {
        let i = self.modules.partition_point(|m| m.start <= addr);
        // Modules may nest oddly (a gap in one filled by another); search back a little.
        self.modules[..i].iter().rev().take(4).find(|m| m.contains(addr))
    }

    /// The logical frames at `pc`. `probe` is the address to look up: `pc`
    /// for the innermost frame and after a signal frame, `pc - 1` for return
    /// addresses (which point after the call, possibly into the next line or
    /// function). Inlined frames come first, then the containing function.
    pub fn symbolize(&self, pc: u64, probe: u64) -> Vec<Frame> {
        self.symbolize_with(pc, probe, true)
    }

    /// Before symbolizing the frames at `probes` (runtime addresses): parse
    /// the DWARF units covering them together, not one by one as they come
    /// (see [`units`]).
    pub fn prepare_dwarf(&self, probes: &[u64]) {
        let mut by_module: Vec<(&MappedModule, Vec<u64>)> = Vec::new();
        for &p in probes {
            let Some(m) = self.module_for(p) else { continue };
            let svma = p.wrapping_sub(m.bias);
            match by_module.iter_mut().find(|(k, _)| std::ptr::eq(*k, m)) {
                Some((_, v)) => v.push(svma),
                None => by_module.push((m, vec![svma])),
            }
        }
        for (m, svmas) in by_module {
            if m.module.has_debug_info() {
                m.module.prepare_dwarf(svmas);
            }
        }
    }

    /// [`Self::symbolize`], from ELF symbols only when `dwarf` is false (one
    /// frame, no file:line), which never loads the module's DWARF.
    pub fn symbolize_with(&self, pc: u64, probe: u64, dwarf: bool) -> Vec<Frame> {
        let mut base = Frame::native(pc, 0);
        let Some(m) = self.module_for(probe) else {
            return vec![base];
        };
        base.module = Some(m.name.as_str().into());
        let svma = probe.wrapping_sub(m.bias);
        let sym = m.module.symbol_for(svma);
        if let Some((s, off)) = sym {
            base.function = Some(demangle::demangle(s.name).into());
            base.offset = Some(off + (pc - probe));
        }
        let ctx = if dwarf { m.module.dwarf_at(svma) } else { None };
        let Some(ctx) = ctx else { return vec![base] };
        let mut out = Vec::new();
        if let Ok(mut iter) = ctx.find_frames(svma).skip_all_loads() {
            while let Ok(Some(f)) = iter.next() {
                let mut fr = base.clone();
                if let Some(name) = f.function.as_ref().and_then(|n| n.raw_name().ok()) {
                    fr.function = Some(demangle::demangle(&name).into());
                }
                if let Some(loc) = f.location {
                    fr.file = loc.file.map(Into::into);
                    fr.line = loc.line;
                }
                out.push(fr);
                if out.len() > 64 {
                    break;
                }
            }
        }
        if out.is_empty() {
            return vec![base];
        }
        let last = out.len() - 1;
        for (i, f) in out.iter_mut().enumerate() {
            f.inlined = i < last;
            if f.inlined {
                f.offset = None;
            }
        }
        // The outermost DWARF frame is the real function: keep the ELF offset.
        if let (Some(last), Some((s, _))) = (out.last_mut(), sym) {
            if last.function.is_none() {
                last.function = Some(demangle::demangle(s.name).into());
            }
        }
        out
    }
}

/// Symbol and section lookups over every module mapped in the target.
/// Addresses are runtime (relocated) addresses in the target.
pub trait SymbolLookup {
    /// Address of the first symbol with this exact ELF name (`lock_a`,
    /// `_PyRuntime`) in any module, searching `.dynsym` then `.symtab`.
    fn symbol_address(&self, name: &str) -> Option<u64>;
    /// The symbol covering `addr` (function or data object) and the offset into it.
    fn symbol_at(&self, addr: u64) -> Option<(String, u64)>;
    /// Address and size of a named ELF section (`.PyRuntime`) in any module.
    fn section(&self, name: &str) -> Option<(u64, u64)>;
    /// Path of the module mapped at `addr`, if any.
    fn module_at(&self, addr: u64) -> Option<String>;
    /// Address of the first symbol whose (mangled) ELF name starts with
    /// `prefix` (a Rust static named without its hash: `_ZN…HASHTABLE17h`).
    fn symbol_with_prefix(&self, _prefix: &str) -> Option<u64> {
        None
    }
    /// The path of a module with a symbol whose (mangled) name contains `part`.
    fn has_symbol_containing(&self, _part: &str) -> Option<String> {
        None
    }
    /// The object at `addr` as the program's source names it, from DWARF:
    /// `forks[1].m` in a global array, `account_a->lock` on the heap through
    /// a global pointer or a pointer local of a frame in `stacks` (see
    /// [`varnames`]); `None` without
    /// DWARF or when nothing names it that way.
    fn source_name(
        &self,
        _addr: u64,
        _memory: &dyn crate::capture::Memory,
        _stacks: &[crate::stacks::Stack],
    ) -> Option<String> {
        None
    }
    /// The std lock guards live in a frame, from its DWARF locals; `None`
    /// when no DWARF describes the frame's locals (see [`guards`]).
    fn live_guards(
        &self,
        _ctx: &crate::stacks::FrameContext,
        _memory: &dyn crate::capture::Memory,
    ) -> Option<Vec<guards::LiveGuard>> {
        None
    }
}

impl SymbolLookup for ProcessSymbols {
    fn symbol_address(&self, name: &str) -> Option<u64> {
        self.modules
            .iter()
            .find_map(|m| m.module.symbol_address(name).map(|a| a.wrapping_add(m.bias)))
    }
    fn symbol_at(&self, addr: u64) -> Option<(String, u64)> {
        let m = self.module_for(addr)?;
        let (s, off) = m.module.symbol_for(addr.wrapping_sub(m.bias))?;
        Some((demangle::demangle(s.name), off))
    }
    fn section(&self, name: &str) -> Option<(u64, u64)> {
        self.modules
            .iter()
            .find_map(|m| m.module.section(name).map(|(a, s)| (a.wrapping_add(m.bias), s)))
    }
    fn module_at(&self, addr: u64) -> Option<String> {
        self.module_for(addr).map(|m| m.module.path.display().to_string())
    }
    fn symbol_with_prefix(&self, prefix: &str) -> Option<u64> {
        self.modules
            .iter()
            .find_map(|m| m.module.symbol_with_prefix(prefix).map(|a| a.wrapping_add(m.bias)))
    }
    fn has_symbol_containing(&self, part: &str) -> Option<String> {
        self.modules
            .iter()
            .find(|m| m.module.has_symbol_containing(part))
            .map(|m| m.module.path.display().to_string())
    }
    fn source_name(&self, addr: u64, memory: &dyn Memory, stacks: &[crate::stacks::Stack]) -> Option<String> {
        if !self.dwarf_names.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        match self.module_for(addr) {
            Some(m) => varnames::global_path(m, addr),
            None => {
                let roots = self
                    .heap_roots
                    .get_or_init(|| varnames::heap_roots(&self.modules, stacks, memory));
                varnames::heap_path(&self.modules, roots, addr)
            }
        }
    }
    fn live_guards(
        &self,
        ctx: &crate::stacks::FrameContext,
        memory: &dyn crate::capture::Memory,
    ) -> Option<Vec<guards::LiveGuard>> {
        guards::live_guards(self.module_for(ctx.probe)?, ctx, memory)
    }
}

fn short_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The file-backed mappings of a process, grouped by file (first mapping first).
pub(crate) fn file_groups(all: &[MapEntry]) -> Vec<(&MapEntry, Vec<&MapEntry>)> {
    let mut groups: Vec<(&MapEntry, Vec<&MapEntry>)> = Vec::new();
    for m in all {
        if !m.is_file() {
            continue;
        }
        match groups.iter_mut().find(|(first, _)| {
            first.inode == m.inode && first.dev_major == m.dev_major && first.dev_minor == m.dev_minor
        }) {
            Some((_, maps)) => maps.push(m),
            None => groups.push((m, vec![m])),
        }
    }
    groups
}

/// Open the file behind a mapping with `open`, preferring the target's own
/// path (inside its mount namespace) when it is still the same inode, else
/// the kernel's handle on the mapped inode (`map_files`, works for deleted files).
pub(crate) fn open_mapped<T>(
    live: crate::live::Live,
    root: &Path,
    first: &MapEntry,
    maps: &[&MapEntry],
    mut open: impl FnMut(&Path) -> Option<T>,
) -> Option<T> {
    let shown = Path::new(&first.path);
    let in_root = crate::proc::join_under(root, shown);
    if !first.deleted {
        if let Ok(meta) = std::fs::metadata(&in_root) {
            if meta.ino() == first.inode {
                if let Some(m) = open(&in_root) {
                    return Some(m);
                }
            }
        }
    }
    for m in maps {
        let p = live.mapped_file(m.start, m.end);
        if let Some(module) = open(&p) {
            return Some(module);
        }
    }
    // Last resort: the path on the host (no /proc access to the target's
    // root), but only if it is still the mapped file. map_files needs
    // CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE), so an unprivileged user
    // inspecting a process whose binary was replaced on disk ends up here:
    // the new file's symbols at the old file's addresses would be wrong
    // names shown as facts. No symbols is the honest answer.
    let same_inode = std::fs::metadata(shown).is_ok_and(|meta| meta.ino() == first.inode);
    if first.deleted || !same_inode {
        return None;
    }
    open(shown)
}

/// The vdso has no file: read its image from the target's memory.
fn load_vdso(snapshot: &Snapshot) -> Option<MappedModule> {
    let base = snapshot.vdso_base()?;
    let map = snapshot.mapping(base)?;
    let len = (map.end - map.start).min(1 << 20) as usize;
    let bytes = snapshot.memory().read_vec(map.start, len).ok()?;
    let data: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let module = ElfModule::parse(PathBuf::from("[vdso]"), data, |_, _| None).ok()?;
    let bias = module.load_bias(&[(map.start, 0)])?;
    Some(MappedModule {
        start: map.start,
        end: map.end,
        bias,
        module: Arc::new(module),
        name: "[vdso]".into(),
    })
}

/// Where the module's memory ends: past its last file-backed mapping when
/// the segment that mapping belongs to goes on in memory. The zero-filled
/// tail of a writable segment (`.bss` past the last page that holds file
/// bytes) is an anonymous mapping /proc/PID/maps does not name after the
/// file, so without this a `static` mutex that the linker happened to place
/// there had no module, hence no symbol and no name (which statics land
/// there moves with every change to the executable's size).
fn loaded_end(module: &ElfModule, bias: u64, mapped_end: u64) -> u64 {
    const PAGE: u64 = 0x1000;
    module
        .segments
        .iter()
        .filter_map(|s| {
            let start = bias.checked_add(s.vaddr)?;
            let end = start.checked_add(s.memsz)?.checked_add(PAGE - 1)? & !(PAGE - 1);
            // Only the segment the last mapping is part of, and only onward.
            (start < mapped_end && mapped_end < end).then_some(end)
        })
        .max()
        .unwrap_or(mapped_end)
}

/// A loaded file placed where its mappings are (`maps`, one file's): its
/// extent and load bias; `None` when no mapping matches a PT_LOAD segment.
fn place(module: std::sync::Arc<ElfModule>, maps: &[&MapEntry], shown: &std::path::Path) -> Option<MappedModule> {
    let offsets: Vec<(u64, u64)> = maps.iter().map(|m| (m.start, m.offset)).collect();
    let bias = module.load_bias(&offsets)?;
    let mapped_end = maps.iter().map(|m| m.end).max().unwrap_or(0);
    Some(MappedModule {
        start: maps.iter().map(|m| m.start).min().unwrap_or(0),
        end: loaded_end(&module, bias, mapped_end),
        bias,
        name: short_name(shown),
        module,
    })
}
