//! Read-only access to a target's memory: the [`Memory`] trait, and the
//! copies a snapshot carries.
//!
//! Everything after capture reads the target through [`Memory`]: the live
//! process (`crate::live::ProcessMemory`, via `process_vm_readv`, which never
//! writes and never stops the target) or a core file, overlaid with the stack
//! bytes copied while the threads were stopped ([`SnapshotMemory`]), so
//! unwinding sees the stacks as they were at the moment of the snapshot.

use std::fmt;

/// A failed read: the address range is not mapped or not readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryError {
    pub addr: u64,
    pub len: usize,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {} bytes at {:#x}", self.len, self.addr)
    }
}

impl std::error::Error for MemoryError {}

/// Upper bound on any single string read from the target (thread names,
/// Python identifiers, file names). Longer strings are truncated.
pub const MAX_STRING: usize = 4096;

/// Read-only view of a target address space.
///
/// Implementors only need [`Memory::read_exact`]; the typed helpers decode
/// little-endian x86_64 values.
pub trait Memory {
    /// Fill `buf` with the bytes at `addr`; fails unless every byte is readable.
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    fn read_u8(&self, addr: u64) -> Result<u8, MemoryError> {
        let mut b = [0u8; 1];
        self.read_exact(addr, &mut b)?;
        Ok(b[0])
    }
    fn read_u16(&self, addr: u64) -> Result<u16, MemoryError> {
        let mut b = [0u8; 2];
        self.read_exact(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn read_u32(&self, addr: u64) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read_exact(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_i32(&self, addr: u64) -> Result<i32, MemoryError> {
        self.read_u32(addr).map(|v| v as i32)
    }
    fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read_exact(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn read_i64(&self, addr: u64) -> Result<i64, MemoryError> {
        self.read_u64(addr).map(|v| v as i64)
    }
    /// Read `len` bytes (bounded by the caller) into a new vector.
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemoryError> {
        let mut v = vec![0u8; len];
        self.read_exact(addr, &mut v)?;
        Ok(v)
    }
    /// Read a NUL-terminated string of at most `max` bytes (lossy UTF-8).
    /// Reads in small chunks so a string near the end of a mapping still works.
    fn read_cstring(&self, addr: u64, max: usize) -> Result<String, MemoryError> {
        let max = max.min(MAX_STRING);
        let mut out = Vec::new();
        let mut chunk = [0u8; 64];
        while out.len() < max {
            let want = chunk.len().min(max - out.len());
            let at = addr + out.len() as u64;
            // Do not cross a page boundary in one read: the next page may be unmapped.
            let to_page_end = (0x1000 - (at & 0xfff)) as usize;
            let n = want.min(to_page_end);
            self.read_exact(at, &mut chunk[..n])?;
            if let Some(nul) = chunk[..n].iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

impl<M: Memory + ?Sized> Memory for &M {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read_exact(addr, buf)
    }
}

/// A contiguous block of target memory copied at snapshot time.
#[derive(Debug, Clone, Default)]
pub struct CopiedRegion {
    pub start: u64,
    pub bytes: Vec<u8>,
}

impl CopiedRegion {
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
    /// The bytes for `[addr, addr+len)` if wholly inside this region.
    pub fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let off = addr.checked_sub(self.start)? as usize;
        let end = off.checked_add(len)?;
        self.bytes.get(off..end)
    }
}

/// Memory as seen at snapshot time: copied regions (thread stacks) first,
/// then the live process for everything else.
pub struct SnapshotMemory<'a, M: Memory> {
    /// Sorted by start address, disjoint (stacks, wait words and runtime
    /// copies are cut to never overlap).
    regions: Vec<&'a CopiedRegion>,
    live: M,
}

impl<'a, M: Memory> SnapshotMemory<'a, M> {
    pub fn new(mut regions: Vec<&'a CopiedRegion>, live: M) -> Self {
        regions.retain(|r| !r.bytes.is_empty());
        regions.sort_by_key(|r| r.start);
        SnapshotMemory { regions, live }
    }
}

impl<M: Memory> Memory for SnapshotMemory<'_, M> {
    /// Copied bytes wherever a copied region has them, live memory for the
    /// gaps: a read that spans a stack copy and a runtime copy (CPython's
    /// frames next to a C stack) is assembled from both, all of one instant.
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let i = self.regions.partition_point(|r| r.end() <= addr);
        if let Some(s) = self.regions.get(i).and_then(|r| r.slice(addr, buf.len())) {
            buf.copy_from_slice(s);
            return Ok(());
        }
        let end = addr
            .checked_add(buf.len() as u64)
            .ok_or(MemoryError { addr, len: buf.len() })?;
        if self.regions.get(i).is_none_or(|r| r.start >= end) {
            return self.live.read_exact(addr, buf);
        }
        let mut at = addr;
        let mut k = i;
        while at < end {
            let off = (at - addr) as usize;
            match self.regions.get(k) {
                Some(r) if r.start <= at => {
                    let upto = r.end().min(end);
                    let n = (upto - at) as usize;
                    let src = r.slice(at, n).ok_or(MemoryError { addr, len: buf.len() })?;
                    buf[off..off + n].copy_from_slice(src);
                    at = upto;
                    k += 1;
                }
                next => {
                    let upto = next.map_or(end, |r| r.start.min(end));
                    let n = (upto - at) as usize;
                    self.live
                        .read_exact(at, &mut buf[off..off + n])
                        .map_err(|_| MemoryError { addr, len: buf.len() })?;
                    at = upto;
                }
            }
        }
        Ok(())
    }
}

/// A memory image held in a byte vector at a fixed base; used by tests and
/// fuzzers to run walkers over arbitrary bytes.
#[derive(Debug, Clone, Default)]
pub struct BufferMemory {
    pub regions: Vec<CopiedRegion>,
}

impl Memory for BufferMemory {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for r in &self.regions {
            if let Some(s) = r.slice(addr, buf.len()) {
                buf.copy_from_slice(s);
                return Ok(());
            }
        }
        Err(MemoryError { addr, len: buf.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_prefers_copies() {
        let copy = CopiedRegion {
            start: 0x1000,
            bytes: vec![7; 16],
        };
        let base = BufferMemory {
            regions: vec![CopiedRegion {
                start: 0x1000,
                bytes: vec![1; 64],
            }],
        };
        let m = SnapshotMemory::new(vec![&copy], base);
        assert_eq!(m.read_u8(0x1004).unwrap(), 7);
        assert_eq!(m.read_u8(0x1020).unwrap(), 1);
        assert!(m.read_u8(0x2000).is_err());
        // A read across the copy's end takes the copied part from the copy.
        let mut buf = [0u8; 32];
        m.read_exact(0x1000, &mut buf).unwrap();
        assert_eq!(&buf[..16], &[7; 16]);
        assert_eq!(&buf[16..], &[1; 16]);
        let second = CopiedRegion {
            start: 0x1018,
            bytes: vec![5; 4],
        };
        let m = SnapshotMemory::new(vec![&second, &copy], m.live);
        m.read_exact(0x100c, &mut buf[..16]).unwrap();
        assert_eq!(&buf[..16], &[7, 7, 7, 7, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5, 5]);
    }
}
