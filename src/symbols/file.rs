//! The bytes every part of symbolization reads: files mapped once for the
//! life of the process, and the reader type gimli and addr2line parse them with.
//!
//! A leaf: the ELF, DWARF and prefetch modules all use it, and it uses none
//! of them. A file opened twice (by the prefetch thread and the symbolizer)
//! is mapped once, and its [`FileId`] names it to the DWARF preparation it
//! shares (see [`super::dwarf`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// How DWARF and CFI are read: borrowed from a mapped file (or a leaked
/// buffer), so nothing is copied.
pub type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// Which file, in which version, a mapping holds: a file replaced or
/// rewritten since has another inode, size or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Every file [`map_file`] mapped: by identity, and by the mapping's address.
#[derive(Default)]
struct Mappings {
    by_id: HashMap<FileId, &'static [u8]>,
    by_addr: HashMap<usize, FileId>,
}

fn mappings() -> &'static Mutex<Mappings> {
    static M: OnceLock<Mutex<Mappings>> = OnceLock::new();
    M.get_or_init(Default::default)
}

/// Map a file read-only and keep it mapped for the life of the process; a
/// file already mapped (same [`FileId`]) gives the same bytes back.
pub fn map_file(path: &Path) -> std::io::Result<&'static [u8]> {
    let file = File::open(path)?;
    let id = FileId::of(&file.metadata()?);
    let mut known = mappings().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&data) = known.by_id.get(&id) {
        return Ok(data);
    }
    // SAFETY: read-only private mapping. If the file is truncated underneath
    // us reads could fault; lockdump only maps installed binaries and debug
    // files, and a `(deleted)` binary is read through /proc/PID/map_files,
    // which pins the inode.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let data: &'static [u8] = Box::leak(Box::new(map));
    if !data.is_empty() {
        known.by_id.insert(id, data);
        known.by_addr.insert(data.as_ptr() as usize, id);
    }
    Ok(data)
}

/// The file `data` is the whole mapping of, if [`map_file`] mapped it.
/// Bytes from anywhere else (a buffer, the vdso's image) have no identity:
/// two buffers with the same build ID may still differ.
pub fn mapped_file(data: &[u8]) -> Option<FileId> {
    let known = mappings().lock().unwrap_or_else(|e| e.into_inner());
    let id = *known.by_addr.get(&(data.as_ptr() as usize))?;
    (id.size == data.len() as u64).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_mapped_once_and_only_its_mapping_has_an_identity() {
        let dir = std::env::temp_dir().join(format!("lockdump-elf-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::write(&a, b"same bytes").unwrap();
        std::fs::write(&b, b"same bytes").unwrap();
        let first = map_file(&a).unwrap();
        let again = map_file(&a).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "mapped twice");
        let id = mapped_file(first).expect("a mapped file has an identity");
        // Another file with equal contents is another file.
        let other = map_file(&b).unwrap();
        assert_ne!(mapped_file(other), Some(id));
        // A copy, or part of the mapping, is not the file.
        let copy = first.to_vec();
        assert_eq!(mapped_file(&copy), None);
        assert_eq!(mapped_file(&first[..4]), None);
        // Rewritten in place (same size, later mtime): a new mapping.
        std::fs::write(&a, b"SAME BYTES").unwrap();
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let rewritten = map_file(&a).unwrap();
        assert_eq!(rewritten, b"SAME BYTES");
        assert_ne!(mapped_file(rewritten), Some(id));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
