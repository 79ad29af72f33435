//! An ELF core file as a target: its threads (NT_PRSTATUS), process
//! (NT_PRPSINFO), auxiliary vector, mapped files (NT_FILE) and memory.
//!
//! Memory comes from the core's PT_LOAD segments. A segment's bytes past its
//! `p_filesz` were left out by the dumper (the kernel's default
//! `coredump_filter` omits file-backed pages the process never wrote); for
//! those the mapped file named in NT_FILE is read at the right offset,
//! under `--sysroot`. Nothing else is invented: memory in neither is a
//! [`MemoryError`], and each such miss inside the dumped address space is
//! counted ([`CoreFile::missing`]) so the report can say that memory a
//! verdict needed was not in the core.

pub mod notes;
pub mod snapshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::capture::{Memory, MemoryError};
use notes::{FileMapping, PrPsInfo, PrStatus};

const ET_CORE: u16 = 4;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `e_phnum` value meaning "the count is in section header 0's `sh_info`".
const PN_XNUM: u16 = 0xffff;

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    /// `p_filesz` as the header says.
    filesz: u64,
    /// Bytes of it actually in the file (less than `filesz` if the core was cut).
    present: u64,
    flags: u32,
}

/// Where a file-backed mapping's bytes are read from, and whether the
/// file there is the one the process had mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// Its build ID matches the one in the core's copy of its first page.
    Matches,
    /// No build ID to compare (not in the core, or not an ELF file).
    Unchecked,
    /// The file is not there.
    Missing(String),
    /// A different build of the file: its pages and symbols would be wrong.
    Differs { core: String, file: String },
}

/// How the core's memory could not be read in full.
#[derive(Debug, Clone, Default)]
pub struct MissingReads {
    /// Reads inside the dumped address space that found neither core bytes
    /// nor a file to read them from.
    pub count: usize,
    /// The first few: (address, length, mapping).
    pub examples: Vec<(u64, usize, String)>,
}

/// The core's bytes: the file mapped, or (tests, fuzzers) a buffer.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An opened core file.
pub struct CoreFile {
    pub path: PathBuf,
    data: Bytes,
    segments: Vec<Segment>,
    /// Every thread, in note order (the first is the one that dumped, for a
    /// kernel core).
    pub threads: Vec<PrStatus>,
    pub process: Option<PrPsInfo>,
    pub auxv: Vec<(u64, u64)>,
    pub files: Vec<FileMapping>,
    /// NT_SIGINFO's signal, else the first thread's `pr_cursig`.
    pub signal: Option<i32>,
    /// Where files named in NT_FILE are looked up (`/` by default).
    pub sysroot: PathBuf,
    /// `--exe`: the executable to use instead of the path NT_FILE gives.
    pub exe_override: Option<PathBuf>,
    /// The executable's path as NT_FILE names it (the mapping holding AT_ENTRY).
    pub exe_path: Option<String>,
    /// Problems found while reading the file: each one line for the report.
    pub notes: Vec<String>,
    /// The core file's modification time: when it was written.
    pub written: Option<std::time::SystemTime>,
    /// The threads of the other cores analyzed with this one, as (TID,
    /// PID): the owners a process-shared lock may name (`--core A --core B`).
    peers: Vec<(i32, i32)>,
    opened: Mutex<HashMap<String, Option<Arc<memmap2::Mmap>>>>,
    checks: Mutex<HashMap<String, FileCheck>>,
    missing: Mutex<MissingReads>,
}

impl std::fmt::Debug for CoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn machine_name(m: u16) -> String {
    match m {
        3 => "i386".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "s390".into(),
        40 => "ARM".into(),
        183 => "aarch64".into(),
        243 => "RISC-V".into(),
        258 => "LoongArch".into(),
        other => format!("machine {other}"),
    }
}

fn type_name(t: u16) -> &'static str {
    match t {
        0 => "NONE",
        1 => "REL (an object file)",
        2 => "EXEC (an executable)",
        3 => "DYN (a shared library or PIE executable)",
        _ => "unknown",
    }
}

impl CoreFile {
    /// Open and parse `path`. `Err` is the one line to print (exit 2): the
    /// file is not an x86_64 ELF core, or holds no thread.
    pub fn open(path: &Path, sysroot: &Path, exe: Option<&Path>) -> Result<CoreFile, String> {
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open core file {shown}: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read core file {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!(
                "{shown}: not a regular file; give a core file written by gcore or the kernel"
            ));
        }
        if meta.len() == 0 {
            return Err(format!(
                "{shown}: an empty file, not an ELF file; give a core file written by gcore or the kernel"
            ));
        }
        // SAFETY: read-only private mapping; a file truncated by someone
        // else while mapped would fault, which a core being analyzed is not.
        let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map core file {shown}: {e}"))?;
        Self::parse(path, Bytes::Mapped(data), meta.modified().ok(), sysroot, exe)
    }

    /// A core held in memory, named `path` in messages: for tests and
    /// fuzzers, which mutate cores without writing them out.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>, sysroot: &Path, exe: Option<&Path>) -> Result<CoreFile, String> {
        Self::parse(path, Bytes::Owned(bytes), None, sysroot, exe)
    }

    fn parse(
        path: &Path,
        data: Bytes,
        written: Option<std::time::SystemTime>,
        sysroot: &Path,
        exe: Option<&Path>,
    ) -> Result<CoreFile, String> {
        let shown = path.display();
        let d: &[u8] = &data;
        if d.len() < 64 || &d[..4] != b"\x7fELF" {
            return Err(format!(
                "{shown}: not an ELF file; give a core file written by gcore or the kernel"
            ));
        }
        if d[4] != 2 || d[5] != 1 {
            return Err(format!(
                "{shown}: a 32-bit or big-endian ELF file; lockdump reads x86_64 core files"
            ));
        }
        let e_type = u16_at(d, 16).unwrap_or(0);
        let machine = u16_at(d, 18).unwrap_or(0);
        if e_type != ET_CORE {
            return Err(format!(
                "{shown}: not an ELF core file (ELF type {}); give a core written by gcore or the kernel",
                type_name(e_type)
            ));
        }
        if machine != EM_X86_64 {
            return Err(format!(
                "{shown}: a core file from another architecture ({}); lockdump reads x86_64 cores: \
                 analyze it on a machine of that architecture",
                machine_name(machine)
            ));
        }
        let mut notes_out: Vec<String> = Vec::new();
        let phoff = u64_at(d, 32).unwrap_or(0) as usize;
        let phentsize = usize::from(u16_at(d, 54).unwrap_or(0));
        let mut phnum = usize::from(u16_at(d, 56).unwrap_or(0));
        if phnum == usize::from(PN_XNUM) {
            // More than 65534 segments: the count is in section 0's sh_info.
            let shoff = u64_at(d, 40).unwrap_or(0) as usize;
            phnum = shoff.checked_add(44).and_then(|o| u32_at(d, o)).unwrap_or(0) as usize;
        }
        if phentsize < 56 || phnum == 0 {
            return Err(format!(
                "{shown}: an ELF core without program headers; the file is damaged"
            ));
        }
        let mut segments = Vec::new();
        let mut threads = Vec::new();
        let mut process = None;
        let mut auxv = Vec::new();
        let mut files = Vec::new();
        let mut signal = None;
        let mut cut_loads = 0u64;
        for i in 0..phnum {
            let Some(ph) = phoff.checked_add(i * phentsize).filter(|&p| p + 56 <= d.len()) else {
                notes_out.push(format!(
                    "the core file is truncated: program header {i} of {phnum} is missing"
                ));
                break;
            };
            let (p_type, flags) = (u32_at(d, ph).unwrap_or(0), u32_at(d, ph + 4).unwrap_or(0));
            let offset = u64_at(d, ph + 8).unwrap_or(0);
            let vaddr = u64_at(d, ph + 16).unwrap_or(0);
            let filesz = u64_at(d, ph + 32).unwrap_or(0);
            let memsz = u64_at(d, ph + 40).unwrap_or(0);
            let len = d.len() as u64;
            let present = if offset >= len { 0 } else { filesz.min(len - offset) };
            match p_type {
                PT_LOAD => {
                    if present < filesz {
                        cut_loads += filesz - present;
                    }
                    segments.push(Segment {
                        vaddr,
                        memsz,
                        offset,
                        filesz,
                        present,
                        flags,
                    });
                }
                PT_NOTE => {
                    let bytes = &d[offset.min(len) as usize..(offset.min(len) + present) as usize];
                    let parsed = match notes::parse_notes(bytes) {
                        Ok(n) => n,
                        Err((n, left)) => {
                            notes_out.push(format!(
                                "the core file is truncated or damaged inside its notes ({left} bytes unread): \
                                 threads and mappings after the cut are missing"
                            ));
                            n
                        }
                    };
                    if present < filesz && notes_out.is_empty() {
                        notes_out.push("the core file is truncated inside its notes".into());
                    }
                    for n in parsed.iter().filter(|n| n.name == b"CORE") {
                        match n.kind {
                            notes::NT_PRSTATUS => match notes::prstatus(n.desc) {
                                Some(p) => threads.push(p),
                                None => notes_out.push("a thread's NT_PRSTATUS note is cut short: skipped".into()),
                            },
                            notes::NT_PRPSINFO => process = notes::prpsinfo(n.desc),
                            notes::NT_AUXV => auxv = notes::auxv(n.desc),
                            notes::NT_FILE => match notes::files(n.desc) {
                                Some(f) => files = f,
                                None => notes_out.push(
                                    "the core's NT_FILE note is damaged: file-backed pages it left out cannot be read"
                                        .into(),
                                ),
                            },
                            notes::NT_SIGINFO => signal = notes::signo(n.desc),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if cut_loads > 0 {
            notes_out.push(format!(
                "the core file is truncated: {} of its memory are missing (the file is {} bytes); \
                 reads there fail, and the report counts them under what was not examined",
                human_bytes(cut_loads),
                d.len()
            ));
        }
        if threads.is_empty() {
            return Err(format!(
                "{shown}: an ELF core file with no thread in its notes (no readable NT_PRSTATUS); \
                 the file is truncated or damaged: nothing to examine"
            ));
        }
        if signal.is_none() {
            signal = threads.first().map(|t| t.cursig).filter(|&s| s > 0);
        }
        segments.sort_by_key(|s| s.vaddr);
        files.sort_by_key(|f: &FileMapping| f.start);
        let entry = auxv.iter().find(|(k, _)| *k == 9).map(|(_, v)| *v); // AT_ENTRY
        let exe_path = entry
            .and_then(|e| files.iter().find(|f| f.start <= e && e < f.end))
            .or_else(|| files.first())
            .map(|f| f.path.clone());
        let exe_override = exe.map(Path::to_path_buf);
        if let Some(x) = &exe_override {
            if !x.is_file() {
                notes_out.push(format!(
                    "--exe {}: no such file; the executable's frames are unnamed and its left-out pages unread",
                    x.display()
                ));
            }
        }
        Ok(CoreFile {
            path: path.to_path_buf(),
            data,
            segments,
            threads,
            process,
            auxv,
            files,
            signal,
            sysroot: sysroot.to_path_buf(),
            exe_override,
            exe_path,
            notes: notes_out,
            written,
            peers: Vec::new(),
            opened: Mutex::new(HashMap::new()),
            checks: Mutex::new(HashMap::new()),
            missing: Mutex::new(MissingReads::default()),
        })
    }

    /// The PID the dumped process had (NT_PRPSINFO, else its first thread's TID).
    pub fn pid(&self) -> i32 {
        self.process
            .as_ref()
            .map(|p| p.pid)
            .filter(|&p| p > 0)
            .unwrap_or_else(|| self.threads.first().map_or(0, |t| t.tid))
    }

    /// Name the threads of the other cores analyzed together with this one.
    pub fn set_peers(&mut self, peers: Vec<(i32, i32)>) {
        self.peers = peers;
    }

    /// The process (among the other cores analyzed) that thread `tid` was in.
    pub fn peer_process(&self, tid: i32) -> Option<i32> {
        self.peers.iter().find(|(t, _)| *t == tid).map(|(_, p)| *p)
    }

    /// The PT_LOAD segments as (start, end, readable, writable, executable).
    pub fn loads(&self) -> impl Iterator<Item = (u64, u64, bool, bool, bool)> + '_ {
        self.segments.iter().map(|s| {
            (
                s.vaddr,
                s.vaddr.saturating_add(s.memsz),
                s.flags & 4 != 0,
                s.flags & 2 != 0,
                s.flags & 1 != 0,
            )
        })
    }

    /// Where the file NT_FILE names `path` is read from: `--exe` for the
    /// executable, else `path` under the sysroot.
    pub fn local_path(&self, path: &str) -> PathBuf {
        if let (Some(x), Some(p)) = (&self.exe_override, &self.exe_path) {
            if p == path {
                return x.clone();
            }
        }
        crate::proc::join_under(&self.sysroot, Path::new(path))
    }

    /// Whether the file at [`Self::local_path`] is the one the process
    /// mapped: its build ID against the one in the core's copy of the
    /// file's first page (the kernel keeps ELF headers by default,
    /// `coredump_filter` bit 4). Memoized per path.
    pub fn check_file(&self, path: &str) -> FileCheck {
        if let Some(c) = self.checks.lock().ok().and_then(|m| m.get(path).cloned()) {
            return c;
        }
        let local = self.local_path(path);
        let check = if path.ends_with(" (deleted)") || !local.is_file() {
            FileCheck::Missing(format!("{} not found", local.display()))
        } else {
            let head = self
                .files
                .iter()
                .find(|f| f.path == path && f.offset == 0)
                .and_then(|f| {
                    let len = (f.end - f.start).min(4096) as usize;
                    let mut buf = vec![0u8; len];
                    self.read_dumped(f.start, &mut buf).then_some(buf)
                });
            match head.and_then(|h| notes::elf_build_id(&h)) {
                None => FileCheck::Unchecked,
                Some(core_id) => match self
                    .map(path)
                    .and_then(|m| notes::elf_build_id(&m[..m.len().min(1 << 16)]))
                {
                    Some(file_id) if file_id == core_id => FileCheck::Matches,
                    Some(file_id) => FileCheck::Differs {
                        core: hex(&core_id),
                        file: hex(&file_id),
                    },
                    None => FileCheck::Unchecked,
                },
            }
        };
        if let Ok(mut m) = self.checks.lock() {
            m.insert(path.to_string(), check.clone());
        }
        check
    }

    /// The mapped file's bytes, mapped once.
    fn map(&self, path: &str) -> Option<Arc<memmap2::Mmap>> {
        let mut opened = self.opened.lock().ok()?;
        if let Some(m) = opened.get(path) {
            return m.clone();
        }
        let local = self.local_path(path);
        let m = std::fs::File::open(&local)
            .ok()
            // SAFETY: read-only private mapping of a file we only read.
            .and_then(|f| unsafe { memmap2::Mmap::map(&f) }.ok())
            .map(Arc::new);
        opened.insert(path.to_string(), m.clone());
        m
    }

    /// Fill `buf` from the core's own bytes only (no mapped files).
    fn read_dumped(&self, addr: u64, buf: &mut [u8]) -> bool {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr + done as u64;
            let Some(s) = self.segment(at) else { return false };
            let rel = at - s.vaddr;
            if rel >= s.present {
                return false;
            }
            let n = ((s.present - rel) as usize).min(buf.len() - done);
            let from = (s.offset + rel) as usize;
            buf[done..done + n].copy_from_slice(&self.data[from..from + n]);
            done += n;
        }
        true
    }

    fn segment(&self, addr: u64) -> Option<&Segment> {
        let i = self
            .segments
            .partition_point(|s| s.vaddr.saturating_add(s.memsz) <= addr);
        self.segments.get(i).filter(|s| s.vaddr <= addr)
    }

    fn file_mapping(&self, addr: u64) -> Option<&FileMapping> {
        let i = self.files.partition_point(|f| f.end <= addr);
        self.files.get(i).filter(|f| f.start <= addr)
    }

    /// Reads of memory the core left out and no file could supply.
    pub fn missing(&self) -> MissingReads {
        self.missing.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn record_missing(&self, addr: u64, len: usize) {
        let mapping = self
            .file_mapping(addr)
            .map(|f| f.path.clone())
            .unwrap_or_else(|| "anonymous memory".into());
        if let Ok(mut m) = self.missing.lock() {
            m.count += 1;
            if m.examples.len() < 3 && !m.examples.iter().any(|e| e.2 == mapping) {
                m.examples.push((addr, len, mapping));
            }
        }
    }

    /// Bytes at `at` (up to `want`) from the file NT_FILE maps there, if it
    /// is present and the same build as the mapped one.
    fn read_from_file(&self, at: u64, out: &mut [u8]) -> Option<usize> {
        let f = self.file_mapping(at)?;
        if matches!(
            self.check_file(&f.path),
            FileCheck::Missing(_) | FileCheck::Differs { .. }
        ) {
            return None;
        }
        let m = self.map(&f.path)?;
        let off = usize::try_from(f.offset.checked_add(at - f.start)?).ok()?;
        let n = out.len().min((f.end - at) as usize);
        let src = m.get(off..off.checked_add(n)?)?;
        out[..n].copy_from_slice(src);
        Some(n)
    }
}

impl CoreFile {
    /// The bytes from `addr` up to the first one the core cannot supply (at
    /// most `len`), without counting that one as missing: for copies whose
    /// extent is a bound, not a need (a thread's stack above SP).
    pub fn read_prefix(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let at = addr + done as u64;
            let n = ((0x1000 - (at & 0xfff)) as usize).min(len - done);
            if self.read(at, &mut out[done..done + n], false).is_err() {
                break;
            }
            done += n;
        }
        out.truncate(done);
        out
    }

    fn read(&self, addr: u64, buf: &mut [u8], record: bool) -> Result<(), MemoryError> {
        let err = MemoryError { addr, len: buf.len() };
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(err);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr + done as u64;
            let seg = self.segment(at);
            if let Some(s) = seg {
                let rel = at - s.vaddr;
                if rel < s.present {
                    let n = ((s.present - rel) as usize).min(buf.len() - done);
                    let from = (s.offset + rel) as usize;
                    buf[done..done + n].copy_from_slice(&self.data[from..from + n]);
                    done += n;
                    continue;
                }
                if rel < s.filesz {
                    // Dumped, but cut off the end of a truncated core: the
                    // file's pages may not be what the process had.
                    if record {
                        self.record_missing(at, buf.len() - done);
                    }
                    return Err(err);
                }
            }
            // Left out by the dumper (or never a segment): the mapped file.
            let limit = seg.map_or(buf.len() - done, |s| {
                ((s.vaddr.saturating_add(s.memsz) - at) as usize).min(buf.len() - done)
            });
            match self.read_from_file(at, &mut buf[done..done + limit]) {
                Some(n) if n > 0 => done += n,
                _ => {
                    if seg.is_some() && record {
                        self.record_missing(at, buf.len() - done);
                    }
                    return Err(err);
                }
            }
        }
        Ok(())
    }
}

impl Memory for CoreFile {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.read(addr, buf, true)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&5u32.to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(b"CORE\0\0\0\0");
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// A core with one thread (TID 7), a segment whose first page is in the
    /// core and whose second the dumper left to `mapped`, and an anonymous
    /// segment with no bytes at all.
    fn tiny_core(dir: &Path, mapped: &Path, machine: u16) -> PathBuf {
        let mut prstatus = vec![0u8; 336];
        prstatus[32..36].copy_from_slice(&7u32.to_le_bytes());
        let mut file = Vec::new();
        for v in [1u64, 0x1000, 0x10000, 0x12000, 0] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(mapped.to_str().unwrap().as_bytes());
        file.push(0);
        let mut notes = note(notes::NT_PRSTATUS, &prstatus);
        notes.extend(note(notes::NT_FILE, &file));
        let phoff = 64u64;
        let data = phoff + 3 * 56;
        let load_data = data + notes.len() as u64;
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
        out[18..20].copy_from_slice(&machine.to_le_bytes());
        out[32..40].copy_from_slice(&phoff.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&3u16.to_le_bytes());
        let ph = |kind: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&kind.to_le_bytes());
            p[4..8].copy_from_slice(&6u32.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            p
        };
        out.extend(ph(PT_NOTE, data, 0, notes.len() as u64, 0));
        out.extend(ph(PT_LOAD, load_data, 0x10000, 0x1000, 0x2000));
        out.extend(ph(PT_LOAD, load_data + 0x1000, 0x20000, 0, 0x1000));
        out.extend(notes);
        out.extend(vec![0xaa; 0x1000]);
        let path = dir.join(format!("core.{machine}"));
        std::fs::write(&path, out).unwrap();
        path
    }

    #[test]
    fn memory_comes_from_the_core_then_the_mapped_file_and_nothing_is_invented() {
        let dir = std::env::temp_dir().join(format!("lockdump-corefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mapped = dir.join("mapped");
        let mut bytes = vec![0x11u8; 0x1000];
        bytes.extend(vec![0xbb; 0x1000]);
        std::fs::write(&mapped, bytes).unwrap();
        let core = CoreFile::open(&tiny_core(&dir, &mapped, EM_X86_64), Path::new("/"), None).unwrap();
        assert_eq!(core.threads.iter().map(|t| t.tid).collect::<Vec<_>>(), vec![7]);
        assert!(core.notes.is_empty(), "{:?}", core.notes);
        // Across the end of the dumped page: core bytes, then the file's.
        let mut buf = [0u8; 16];
        core.read_exact(0x10ff8, &mut buf).unwrap();
        assert_eq!(
            buf,
            [0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb]
        );
        // Anonymous memory the core left out: an error, counted.
        assert_eq!(core.read_u64(0x20010), Err(MemoryError { addr: 0x20010, len: 8 }));
        // Outside every segment: an error, not counted (it is no memory).
        assert!(core.read_u64(0x30000).is_err());
        let missing = core.missing();
        assert_eq!(missing.count, 1);
        assert_eq!(missing.examples, vec![(0x20010, 8, "anonymous memory".to_string())]);
        // Stack-style copies stop quietly where the core ends.
        assert_eq!(core.read_prefix(0x11ff0, 0x100).len(), 0x10);
        assert_eq!(core.missing().count, 1);
        // Another architecture: one line naming it.
        let err = CoreFile::open(&tiny_core(&dir, &mapped, 183), Path::new("/"), None).unwrap_err();
        assert!(err.contains("another architecture (aarch64)"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
