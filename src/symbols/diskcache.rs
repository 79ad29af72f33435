//! On-disk cache of decompressed DWARF sections, one file per debug file.
//!
//! Inflating libc6-dbg's zlib-compressed sections costs tens of ms on every
//! run; mapping an uncompressed copy costs almost nothing. The cache holds,
//! for a build ID and debug file size and modification time, the compressed
//! sections lockdump reads ([`super::sections::LOADED`]), uncompressed. Only
//! files lockdump mapped from disk use it (see [`super::sections`]): bytes
//! handed over in a buffer have no file to be the same as. It lives in
//! `$XDG_CACHE_HOME/lockdump` (else `~/.cache/lockdump`); `--no-cache` or
//! `LOCKDUMP_NO_CACHE=1` turns it off.
//!
//! Nothing about it is ever fatal or changes output: an entry is used only
//! if its header names the same build ID, file size, modification time and sections with the
//! same uncompressed sizes, and the checksum over its data matches;
//! anything else (missing, truncated, corrupt, foreign-owned, unwritable)
//! means the sections are inflated as without a cache. Entries are written
//! to a temporary file and renamed into place, so readers never see a
//! partial one. The directory and its entries must belong to the user
//! running lockdump and not be writable by others (lockdump often runs as
//! root; a file planted by someone else is not read), and it is never
//! created inside a directory that belongs to someone else (root with a
//! user's `HOME` leaves no root-owned `~/.cache` behind). The total size is kept
//! under [`MAX_TOTAL`] by deleting the least recently used entries.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

const MAGIC: &[u8; 8] = b"LKDWARF\x02";
/// Largest total size of the cache's entries; older ones are deleted past it.
const MAX_TOTAL: u64 = 512 << 20;
/// Entries at most this large are written (a bound on what one file may claim).
const MAX_ENTRY: u64 = 4 << 30;
/// A temporary file older than this was left by a run that died mid-write.
const STALE_TMP: Duration = Duration::from_secs(3600);
const SUFFIX: &str = ".dwarf";

/// What an entry is for: the module's build ID and its debug file's size
/// and modification time (a file rewritten in place, keeping both build ID
/// and size, is not served the old file's sections).
pub struct Key<'a> {
    pub build_id: &'a [u8],
    pub file_size: u64,
    pub mtime_ns: i128,
}

static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Use `dir` as the cache directory, or no cache (`None`). Call before the
/// first inspection; later calls are ignored. Without a call the directory
/// comes from the environment (see [`default_dir`]).
pub fn configure(dir: Option<PathBuf>) {
    let _ = DIR.set(dir);
}

/// `$XDG_CACHE_HOME/lockdump`, else `$HOME/.cache/lockdump`; `None` when
/// `LOCKDUMP_NO_CACHE` is set (to anything but empty or `0`).
pub fn default_dir() -> Option<PathBuf> {
    if std::env::var_os("LOCKDUMP_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    let nonempty = |v: &str| std::env::var_os(v).filter(|p| !p.is_empty()).map(PathBuf::from);
    let base = nonempty("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("lockdump"))
}

fn dir() -> Option<&'static Path> {
    DIR.get_or_init(default_dir).as_deref()
}

/// The cached uncompressed sections for `key`, in the order of `wanted`
/// (index in `LOADED`, uncompressed size), or `None` on any mismatch.
pub fn load(key: &Key, wanted: &[(usize, u64)]) -> Option<Vec<&'static [u8]>> {
    load_from(dir()?, key, wanted)
}

/// Store `sections` (index in `LOADED`, bytes) for `key`. Errors are ignored.
pub fn store(key: &Key, sections: &[(usize, &[u8])]) {
    if let Some(d) = dir() {
        let _ = store_in(d, key, sections);
    }
}

fn entry_path(dir: &Path, key: &Key) -> PathBuf {
    let hex: String = key.build_id.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}-{}{SUFFIX}", key.file_size))
}

/// Only what this user made, and nobody else can change, is trusted.
fn trusted(meta: &fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    meta.uid() == euid && meta.mode() & 0o022 == 0
}

pub(crate) fn load_from(dir: &Path, key: &Key, wanted: &[(usize, u64)]) -> Option<Vec<&'static [u8]>> {
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && trusted(&m)) {
        return None;
    }
    let path = entry_path(dir, key);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !trusted(&meta) || meta.len() < MAGIC.len() as u64 {
        return None;
    }
    // SAFETY: a read-only private mapping of a file only this user can
    // write; entries are replaced by rename, never rewritten in place.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let sections = parse(&map, key, wanted)?;
    // Mark it used, for the size bound's least-recently-used order.
    let _ = file.set_modified(SystemTime::now());
    let data: &'static [u8] = Box::leak(Box::new(map));
    Some(
        sections
            .into_iter()
            .map(|(start, len)| &data[start..start + len])
            .collect(),
    )
}

/// Validate an entry; the (offset, length) of each wanted section in it.
fn parse(data: &[u8], key: &Key, wanted: &[(usize, u64)]) -> Option<Vec<(usize, usize)>> {
    let mut r = Cursor { data, pos: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let id_len = r.u32()? as usize;
    if r.take(id_len)? != key.build_id || r.u64()? != key.file_size || r.i128()? != key.mtime_ns {
        return None;
    }
    let count = r.u32()? as usize;
    if count != wanted.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for &(index, size) in wanted {
        let (i, offset, len) = (r.u32()? as usize, r.u64()?, r.u64()?);
        let end = offset.checked_add(len)?;
        if i != index || len != size || end > data.len() as u64 {
            return None;
        }
        out.push((offset as usize, len as usize));
    }
    let sum = r.u64()?;
    if checksum(out.iter().map(|&(o, l)| &data[o..o + l])) != sum {
        return None;
    }
    Some(out)
}

fn store_in(dir: &Path, key: &Key, sections: &[(usize, &[u8])]) -> std::io::Result<()> {
    let total: u64 = sections.iter().map(|(_, b)| b.len() as u64).sum();
    if total > MAX_ENTRY {
        return Ok(());
    }
    make_dir(dir)?;
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && trusted(&m)) {
        return Ok(());
    }
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(key.build_id.len() as u32).to_le_bytes());
    header.extend_from_slice(key.build_id);
    header.extend_from_slice(&key.file_size.to_le_bytes());
    header.extend_from_slice(&key.mtime_ns.to_le_bytes());
    header.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    let header_len = header.len() + sections.len() * 20 + 8;
    let mut offset = align8(header_len as u64);
    for (i, bytes) in sections {
        header.extend_from_slice(&(*i as u32).to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        offset = align8(offset + bytes.len() as u64);
    }
    header.extend_from_slice(&checksum(sections.iter().map(|(_, b)| *b)).to_le_bytes());

    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".tmp-{}-{nanos}", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        write_padded(&mut f, &header)?;
        for (_, bytes) in sections {
            write_padded(&mut f, bytes)?;
        }
        f.flush()?;
        fs::rename(&tmp, entry_path(dir, key))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    prune(dir);
    written
}

/// Create the cache directory (and `~/.cache` if missing), but never inside
/// a directory that belongs to someone else: root running lockdump with a
/// user's `HOME` must not leave a root-owned `~/.cache` behind.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let refused = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not our directory");
    // SAFETY: geteuid has no preconditions.
    let mine = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == unsafe { libc::geteuid() });
    let parent = dir.parent().ok_or_else(refused)?;
    if !parent.exists() {
        let grandparent = parent.parent().ok_or_else(refused)?;
        if !mine(grandparent) {
            return Err(refused());
        }
        fs::DirBuilder::new().mode(0o700).create(parent)?;
    }
    if !mine(parent) {
        return Err(refused());
    }
    fs::DirBuilder::new().mode(0o700).create(dir)
}

fn align8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

fn write_padded(f: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    f.write_all(bytes)?;
    let pad = (align8(bytes.len() as u64) - bytes.len() as u64) as usize;
    f.write_all(&[0u8; 8][..pad])
}

/// Delete stale temporary files, and the least recently used entries while
/// the entries take more than [`MAX_TOTAL`].
fn prune(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let mut kept: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for e in entries.flatten().take(10_000) {
        let (Ok(meta), name) = (e.metadata(), e.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy();
        let modified = meta.modified().unwrap_or(now);
        if name.starts_with(".tmp-") {
            if now.duration_since(modified).is_ok_and(|age| age > STALE_TMP) {
                let _ = fs::remove_file(e.path());
            }
        } else if name.ends_with(SUFFIX) && meta.is_file() {
            kept.push((modified, meta.len(), e.path()));
        }
    }
    let mut total: u64 = kept.iter().map(|(_, len, _)| len).sum();
    kept.sort();
    for (_, len, path) in kept {
        if total <= MAX_TOTAL {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

/// A 64-bit checksum of the concatenated parts: four independent
/// multiply-rotate lanes over 8-byte words, fast enough to run over every
/// entry on every use (~1 ms for libc's 9 MB). It detects damage, not
/// forgery (entries are trusted by ownership, see [`trusted`]).
fn checksum<'a>(parts: impl Iterator<Item = &'a [u8]>) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes = [K, K.rotate_left(16), K.rotate_left(32), K.rotate_left(48)];
    let mut total = 0u64;
    for part in parts {
        total = total.wrapping_add(part.len() as u64);
        let mut chunks = part.chunks_exact(32);
        for c in &mut chunks {
            for (l, w) in lanes.iter_mut().zip(c.chunks_exact(8)) {
                let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
                *l = (*l ^ w).wrapping_mul(K).rotate_left(31);
            }
        }
        let mut tail = [0u8; 32];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        for (l, w) in lanes.iter_mut().zip(tail.chunks_exact(8)) {
            let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
            *l = (*l ^ w ^ rest.len() as u64).wrapping_mul(K).rotate_left(31);
        }
    }
    lanes
        .iter()
        .fold(total.wrapping_mul(K), |h, &l| (h ^ l).wrapping_mul(K).rotate_left(27))
}

/// Bounds-checked reads of a header.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `<tmp>/lockdump-diskcache-NAME-PID/lockdump`, its parent created (and
    /// owned by the user running the test, as a cache's parent must be).
    fn tempdir(name: &str) -> PathBuf {
        let base = std::env::temp_dir().join(format!("lockdump-diskcache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        base.join("lockdump")
    }

    fn remove(dir: &Path) {
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    const ID: &[u8] = &[0x93, 0xac, 0x61, 0xec];

    fn key() -> Key<'static> {
        Key {
            build_id: ID,
            file_size: 4166896,
            mtime_ns: 1_700_000_000_123_456_789,
        }
    }

    #[test]
    fn stored_sections_come_back() {
        let dir = tempdir("roundtrip");
        let a: Vec<u8> = (0..100_003u32).map(|i| (i * 7) as u8).collect();
        let b = b"line table".to_vec();
        store_in(&dir, &key(), &[(3, &a), (4, &b)]).unwrap();
        let wanted = [(3, a.len() as u64), (4, b.len() as u64)];
        let got = load_from(&dir, &key(), &wanted).expect("entry");
        assert_eq!(got, vec![&a[..], &b[..]]);
        // Another build ID, file size, modification time or section set is a miss.
        let other = Key {
            build_id: &[1, 2, 3],
            ..key()
        };
        assert!(load_from(&dir, &other, &wanted).is_none());
        let resized = Key { file_size: 1, ..key() };
        assert!(load_from(&dir, &resized, &wanted).is_none());
        let rewritten = Key {
            mtime_ns: key().mtime_ns + 1,
            ..key()
        };
        assert!(load_from(&dir, &rewritten, &wanted).is_none());
        assert!(load_from(&dir, &key(), &[(3, a.len() as u64)]).is_none());
        assert!(load_from(&dir, &key(), &[(3, a.len() as u64), (4, 9)]).is_none());
        remove(&dir);
    }

    #[test]
    fn damaged_entries_are_ignored() {
        let dir = tempdir("damaged");
        let a: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        store_in(&dir, &key(), &[(3, &a)]).unwrap();
        let path = entry_path(&dir, &key());
        let good = fs::read(&path).unwrap();
        let wanted = [(3, a.len() as u64)];
        // Every truncation, and a flipped bit anywhere, is refused.
        for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(load_from(&dir, &key(), &wanted).is_none(), "truncated to {cut}");
        }
        for at in [0, 9, 14, 30, 50, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(load_from(&dir, &key(), &wanted).is_none(), "bit flipped at {at}");
        }
        fs::write(&path, &good).unwrap();
        // Not group-writable whatever the umask (that alone is refused).
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(load_from(&dir, &key(), &wanted).unwrap(), vec![&a[..]]);
        remove(&dir);
    }

    #[test]
    fn unusable_directories_are_not_fatal() {
        // A path under a regular file cannot be created.
        let dir = tempdir("notadir");
        fs::write(&dir, b"x").unwrap();
        let sub = dir.join("lockdump");
        assert!(store_in(&sub, &key(), &[(3, b"abc")]).is_err());
        assert!(load_from(&sub, &key(), &[(3, 3)]).is_none());
        remove(&dir);
        // Nothing is created inside a directory that belongs to someone else.
        let dir = tempdir("foreign");
        let parent = dir.parent().unwrap().to_path_buf();
        let path = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; 65534 is `nobody`.
        let chowned = unsafe { libc::chown(path.as_ptr(), 65534, 65534) } == 0;
        let foreign = if chowned { parent.clone() } else { PathBuf::from("/") };
        let cache = foreign
            .join(format!("lockdump-diskcache-foreign-{}", std::process::id()))
            .join("lockdump");
        assert!(store_in(&cache, &key(), &[(3, b"abc")]).is_err());
        assert!(!cache.parent().unwrap().exists(), "created {}", cache.display());
        remove(&dir);
        // A directory others can write to is neither read nor written.
        let dir = tempdir("shared");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        store_in(&dir, &key(), &[(3, b"abc")]).unwrap();
        assert!(!entry_path(&dir, &key()).exists());
        assert!(load_from(&dir, &key(), &[(3, 3)]).is_none());
        remove(&dir);
    }

    #[test]
    fn checksum_sees_order_and_content() {
        let h = |parts: &[&[u8]]| checksum(parts.iter().copied());
        assert_ne!(h(&[b"abc"]), h(&[b"abd"]));
        assert_ne!(h(&[&[0u8; 40]]), h(&[&[0u8; 41]]));
        assert_eq!(h(&[b"same"]), h(&[b"same"]));
    }
}
