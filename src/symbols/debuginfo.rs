//! Finding separate debug information for a module, as gdb does:
//! `/usr/lib/debug/.build-id/xx/rest.debug` first, then `.gnu_debuglink`
//! next to the binary, in its `.debug/` folder and under `/usr/lib/debug`.
//! Each path is tried inside the target's root (`/proc/PID/root`, for
//! containers) and then on the host.

use std::path::{Path, PathBuf};

use super::file::map_file;
use crate::proc::join_under;

const DEBUG_DIR: &str = "/usr/lib/debug";

/// Locate and map the debug file for a module.
///
/// `root` is the target's root directory (`/proc/PID/root`); `binary` is the
/// module's path as the target sees it.
pub fn find_debug_file(
    root: &Path,
    binary: &Path,
    build_id: Option<&[u8]>,
    debuglink: Option<(&[u8], u32)>,
) -> Option<(PathBuf, &'static [u8])> {
    let roots = [root, Path::new("/")];
    if let Some(id) = build_id.filter(|id| id.len() >= 2) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let rel = format!("{DEBUG_DIR}/.build-id/{}/{}.debug", &hex[..2], &hex[2..]);
        for r in roots {
            let p = join_under(r, Path::new(&rel));
            if let Ok(data) = map_file(&p) {
                if has_dwarf_or_symtab(data) {
                    return Some((PathBuf::from(&rel), data));
                }
            }
        }
    }
    let (name, crc) = debuglink?;
    let name = std::str::from_utf8(name).ok()?;
    let dir = binary.parent().unwrap_or(Path::new("/"));
    let candidates = [
        dir.join(name),
        dir.join(".debug").join(name),
        Path::new(DEBUG_DIR)
            .join(dir.strip_prefix("/").unwrap_or(dir))
            .join(name),
    ];
    for c in &candidates {
        if c == binary {
            continue;
        }
        for r in roots {
            let p = join_under(r, c);
            if let Ok(data) = map_file(&p) {
                if crc32(data) == crc && has_dwarf_or_symtab(data) {
                    return Some((c.clone(), data));
                }
            }
        }
    }
    None
}

fn has_dwarf_or_symtab(data: &[u8]) -> bool {
    use object::Object;
    object::File::parse(data)
        .map(|f| f.section_by_name(".debug_info").is_some() || f.section_by_name(".symtab").is_some())
        .unwrap_or(false)
}

/// The CRC-32 (IEEE 802.3, reflected) that `.gnu_debuglink` records.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        t
    });
    !data
        .iter()
        .fold(!0u32, |c, &b| table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn join_stays_under_root() {
        assert_eq!(
            join_under(Path::new("/srv/image"), Path::new("/usr/lib/x")),
            PathBuf::from("/srv/image/usr/lib/x")
        );
    }
}
