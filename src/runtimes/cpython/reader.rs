//! A page cache over the target's memory.
//!
//! Walking Python objects means thousands of tiny reads (a type pointer here,
//! a string length there), mostly on a few hundred pages: reading whole 4 KiB
//! pages once turns those into a few hundred `process_vm_readv` calls. The
//! cache also makes one inspection see each page at a single moment.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::capture::{Memory, MemoryError};

const PAGE: u64 = 0x1000;
/// At most this many pages (64 MiB) are kept; beyond that the cache starts over.
const MAX_PAGES: usize = 16 * 1024;

/// Read-through page cache over another [`Memory`].
pub struct CachedMemory<'a> {
    inner: &'a dyn Memory,
    /// Page number -> bytes, or `None` if the page could not be read whole.
    pages: RefCell<HashMap<u64, Option<Box<[u8]>>>>,
}

impl<'a> CachedMemory<'a> {
    pub fn new(inner: &'a dyn Memory) -> Self {
        CachedMemory {
            inner,
            pages: RefCell::new(HashMap::new()),
        }
    }

    /// Copy the part of `page` that overlaps `[addr, addr + buf.len())` into `buf`.
    /// Returns false if the page is unreadable as a whole.
    fn fill_from_page(&self, page: u64, addr: u64, buf: &mut [u8]) -> bool {
        let mut pages = self.pages.borrow_mut();
        if pages.len() >= MAX_PAGES {
            pages.clear();
        }
        let entry = pages.entry(page).or_insert_with(|| {
            let mut bytes = vec![0u8; PAGE as usize].into_boxed_slice();
            self.inner.read_exact(page * PAGE, &mut bytes).ok().map(|_| bytes)
        });
        let Some(bytes) = entry else { return false };
        let page_start = page * PAGE;
        let lo = addr.max(page_start);
        let hi = (addr + buf.len() as u64).min(page_start + PAGE);
        if lo >= hi {
            return true;
        }
        let src = &bytes[(lo - page_start) as usize..(hi - page_start) as usize];
        buf[(lo - addr) as usize..(hi - addr) as usize].copy_from_slice(src);
        true
    }
}

impl CachedMemory<'_> {
    /// Pages read so far (readable or not).
    pub fn pages_read(&self) -> usize {
        self.pages.borrow().len()
    }

    /// Every readable page read so far, as copied regions (runs of adjacent
    /// pages merged), sorted and disjoint.
    pub fn into_regions(self) -> Vec<crate::capture::CopiedRegion> {
        let mut pages: Vec<(u64, Box<[u8]>)> = self
            .pages
            .into_inner()
            .into_iter()
            .filter_map(|(n, b)| Some((n, b?)))
            .collect();
        pages.sort_unstable_by_key(|(n, _)| *n);
        let mut out: Vec<crate::capture::CopiedRegion> = Vec::new();
        for (n, bytes) in pages {
            match out.last_mut() {
                Some(r) if r.end() == n * PAGE => r.bytes.extend_from_slice(&bytes),
                _ => out.push(crate::capture::CopiedRegion {
                    start: n * PAGE,
                    bytes: bytes.into_vec(),
                }),
            }
        }
        out
    }
}

impl Memory for CachedMemory<'_> {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let err = MemoryError { addr, len: buf.len() };
        if buf.is_empty() {
            return Ok(());
        }
        let end = addr.checked_add(buf.len() as u64).ok_or(err)?;
        // Large reads bypass the cache (none are expected; keep it simple).
        if buf.len() > 4 * PAGE as usize {
            return self.inner.read_exact(addr, buf);
        }
        let first = addr / PAGE;
        let last = (end - 1) / PAGE;
        for page in first..=last {
            if !self.fill_from_page(page, addr, buf) {
                // A page may be unreadable as a whole yet the range readable
                // (e.g. a copied stack region overlaying an unmapped page):
                // fall back to an exact read.
                return self.inner.read_exact(addr, buf);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CopiedRegion;
    use crate::memory::BufferMemory;

    #[test]
    fn reads_across_pages_and_falls_back() {
        let base = 0x10_000u64;
        let bytes: Vec<u8> = (0..3 * PAGE as usize).map(|i| (i % 251) as u8).collect();
        let mem = BufferMemory {
            regions: vec![
                CopiedRegion {
                    start: base,
                    bytes: bytes.clone(),
                },
                // Half a page: not readable as a whole page, readable exactly.
                CopiedRegion {
                    start: 0x40_000,
                    bytes: vec![9; 0x800],
                },
            ],
        };
        let c = CachedMemory::new(&mem);
        let mut buf = [0u8; 32];
        c.read_exact(base + PAGE - 16, &mut buf).unwrap();
        assert_eq!(&buf[..], &bytes[PAGE as usize - 16..PAGE as usize + 16]);
        assert_eq!(c.read_u64(base + 8).unwrap(), mem.read_u64(base + 8).unwrap());
        assert_eq!(c.read_u8(0x40_010).unwrap(), 9);
        assert!(c.read_u8(0x50_000).is_err());
        assert!(c.read_u64(u64::MAX - 3).is_err());
    }
}
