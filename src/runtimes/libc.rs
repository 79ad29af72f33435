//! Which C library the target runs on, so that each library's layouts are
//! applied only to its own memory.
//!
//! glibc and musl lay out `pthread_mutex_t` and friends differently in the
//! same 40 bytes: read with the wrong layout, a musl errorcheck mutex looks
//! like a glibc one with a garbage `__owner`. So the analysis asks first.
//!
//! Evidence, strongest first, none of it needing symbols (static binaries
//! are often stripped):
//! 1. the loader or libc mapped into the process: `ld-musl-*.so.1` /
//!    `libc.musl-*` for musl, `libc.so.6` / `ld-linux*` for glibc;
//! 2. without one (a static executable), the thread descriptors that
//!    `fs_base` points to. Each library's descriptor has a shape the other's
//!    does not: musl's `struct pthread` (src/internal/pthread_impl.h, see
//!    [`super::musl::layout`]) starts with a self pointer and keeps the
//!    thread's TID at +0x30 and the circular thread list at +0x10/+0x18;
//!    glibc's starts with `tcbhead_t` (self pointers at +0 and +0x10, a random
//!    pointer guard at +0x30) and keeps the TID at +0x2d0. Every thread must
//!    agree, so a coincidence would have to repeat per thread.
//!
//! Anything else is "unknown", with the reason, and the report says so.

use serde::Serialize;

use super::glibc::layout::PthreadLayout;
use super::musl::layout as musl_layout;
use crate::capture::{Memory, RegisterSource, Snapshot};

/// A C library lockdump knows the layouts of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Libc {
    Glibc,
    Musl,
}

/// How the C library is linked into the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Linkage {
    /// A shared object mapped by the dynamic loader.
    Dynamic,
    /// Linked into the executable: no libc shared object is mapped.
    Static,
}

/// What lockdump concluded about the target's C library, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibcInfo {
    /// `None`: not identified (see `evidence` for why).
    pub name: Option<Libc>,
    /// `None` when not identified.
    pub linkage: Option<Linkage>,
    /// What the conclusion rests on, or why there is none.
    pub evidence: String,
}

impl LibcInfo {
    fn known(name: Libc, linkage: Linkage, evidence: String) -> Self {
        LibcInfo {
            name: Some(name),
            linkage: Some(linkage),
            evidence,
        }
    }
    fn unknown(evidence: String) -> Self {
        LibcInfo {
            name: None,
            linkage: None,
            evidence,
        }
    }
    /// `musl (static)`, `glibc (dynamic)`, `unknown`: for the report header.
    pub fn describe(&self) -> String {
        match (self.name, self.linkage) {
            (Some(n), Some(l)) => format!(
                "{} ({})",
                match n {
                    Libc::Glibc => "glibc",
                    Libc::Musl => "musl",
                },
                match l {
                    Linkage::Dynamic => "dynamic",
                    Linkage::Static => "static",
                }
            ),
            _ => "unknown".to_string(),
        }
    }
    /// For callers that analyze hand-built snapshots as glibc's (tests).
    pub fn glibc_assumed() -> Self {
        LibcInfo::unknown("assumed glibc".into())
    }
    pub fn is_musl(&self) -> bool {
        self.name == Some(Libc::Musl)
    }
}

/// The file name of a mapping's path, if it has one.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Identify the target's C library (see the module documentation).
pub fn detect(snapshot: &Snapshot, mem: &dyn Memory) -> LibcInfo {
    for m in &snapshot.maps {
        let f = file_name(&m.path);
        if f.starts_with("ld-musl-") || f.starts_with("libc.musl-") {
            return LibcInfo::known(Libc::Musl, Linkage::Dynamic, format!("{} is mapped", m.path));
        }
    }
    for m in &snapshot.maps {
        let f = file_name(&m.path);
        if f.starts_with("libc.so.6") || f.starts_with("ld-linux") {
            return LibcInfo::known(Libc::Glibc, Linkage::Dynamic, format!("{} is mapped", m.path));
        }
    }
    let with_fs: Vec<(u64, i32)> = snapshot
        .threads
        .iter()
        .filter(|t| t.register_source == RegisterSource::Ptrace && t.regs.fs_base != 0)
        .map(|t| (t.regs.fs_base, t.ns_tid))
        .collect();
    if with_fs.is_empty() {
        return LibcInfo::unknown(
            "no C library is mapped (static executable, or none) and no thread's registers were read (--no-stop), so the thread descriptors could not be checked".into(),
        );
    }
    let bases: Vec<u64> = with_fs.iter().map(|&(fs, _)| fs).collect();
    if with_fs
        .iter()
        .all(|&(fs, tid)| musl_layout::ThreadDescriptor::read(mem, fs).is_some_and(|d| d.matches(fs, tid, &bases)))
    {
        return LibcInfo::known(
            Libc::Musl,
            Linkage::Static,
            format!(
                "no libc shared object is mapped; each of the {} thread descriptors (fs_base) has musl's struct pthread shape: self pointer at +0, the thread's TID at {:#x}, thread-list links at {:#x}/{:#x} to other descriptors",
                with_fs.len(),
                musl_layout::PTHREAD_TID,
                musl_layout::PTHREAD_PREV,
                musl_layout::PTHREAD_NEXT
            ),
        );
    }
    let glibc_tid = PthreadLayout::GLIBC_2_36.tid;
    let glibc_shape = |fs: u64, tid: i32| {
        let self0 = mem.read_u64(fs).ok() == Some(fs);
        let self16 = fs.checked_add(16).and_then(|a| mem.read_u64(a).ok()) == Some(fs);
        let tid_ok = fs.checked_add(glibc_tid).and_then(|a| mem.read_u32(a).ok()) == Some(tid as u32);
        self0 && self16 && tid_ok
    };
    if with_fs.iter().all(|&(fs, tid)| glibc_shape(fs, tid)) {
        return LibcInfo::known(
            Libc::Glibc,
            Linkage::Static,
            format!(
                "no libc shared object is mapped; each of the {} thread descriptors (fs_base) has glibc's shape: tcbhead_t self pointers at +0 and +0x10, the thread's TID at {glibc_tid:#x}",
                with_fs.len()
            ),
        );
    }
    LibcInfo::unknown(
        "no C library is mapped and the thread descriptors match neither musl's nor glibc's struct pthread".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};
    use crate::runtimes::owners::testing::{snapshot, thread};

    fn lib_map(path: &str) -> crate::proc::MapEntry {
        let mut m = crate::runtimes::owners::testing::anon_map(0x1000, 0x2000, false, 7);
        m.path = path.into();
        m.deleted = false;
        m
    }

    /// A musl descriptor: self@0, prev@0x10, next@0x18, tid@0x30.
    fn musl_desc(fs: u64, prev: u64, next: u64, tid: u32) -> CopiedRegion {
        let mut b = vec![0u8; 0x40];
        b[0..8].copy_from_slice(&fs.to_le_bytes());
        b[0x10..0x18].copy_from_slice(&prev.to_le_bytes());
        b[0x18..0x20].copy_from_slice(&next.to_le_bytes());
        b[0x30..0x34].copy_from_slice(&tid.to_le_bytes());
        CopiedRegion { start: fs, bytes: b }
    }

    #[test]
    fn mappings_name_the_library() {
        let mem = BufferMemory::default();
        let musl = snapshot(1, vec![], vec![lib_map("/lib/ld-musl-x86_64.so.1")]);
        assert_eq!(detect(&musl, &mem).describe(), "musl (dynamic)");
        let glibc = snapshot(1, vec![], vec![lib_map("/usr/lib/x86_64-linux-gnu/libc.so.6")]);
        assert_eq!(detect(&glibc, &mem).describe(), "glibc (dynamic)");
    }

    #[test]
    fn static_musl_from_thread_descriptors() {
        let (a, b) = (0x10_0000u64, 0x20_0000u64);
        let mem = BufferMemory {
            regions: vec![musl_desc(a, b, b, 11), musl_desc(b, a, a, 12)],
        };
        let snap = snapshot(11, vec![thread(11, None, a), thread(12, None, b)], vec![]);
        let info = detect(&snap, &mem);
        assert_eq!(info.describe(), "musl (static)", "{}", info.evidence);
        // One descriptor with another thread's TID: not proven.
        let bad = BufferMemory {
            regions: vec![musl_desc(a, b, b, 11), musl_desc(b, a, a, 99)],
        };
        assert_eq!(detect(&snap, &bad).name, None);
        // A thread list pointing outside the snapshot's descriptors: not proven.
        let stray = BufferMemory {
            regions: vec![musl_desc(a, 0x999000, b, 11), musl_desc(b, a, a, 12)],
        };
        assert_eq!(detect(&snap, &stray).name, None);
        // --no-stop: no registers, no conclusion.
        let nostop = snapshot(11, vec![thread(11, None, 0)], vec![]);
        assert_eq!(detect(&nostop, &mem).describe(), "unknown");
    }

    #[test]
    fn static_glibc_from_thread_descriptors() {
        let fs = 0x10_0000u64;
        let mut b = vec![0u8; 0x300];
        b[0..8].copy_from_slice(&fs.to_le_bytes());
        b[16..24].copy_from_slice(&fs.to_le_bytes());
        b[0x30..0x38].copy_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
        b[0x2d0..0x2d4].copy_from_slice(&21u32.to_le_bytes());
        let mem = BufferMemory {
            regions: vec![CopiedRegion { start: fs, bytes: b }],
        };
        let snap = snapshot(21, vec![thread(21, None, fs)], vec![]);
        assert_eq!(detect(&snap, &mem).describe(), "glibc (static)");
    }
}
