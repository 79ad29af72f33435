//! The memory of a live process.

use crate::memory::{Memory, MemoryError};

/// The live memory of a process, read with `process_vm_readv`.
///
/// This syscall is read-only by construction and needs the same ptrace access
/// the attach already proved; the target need not be stopped.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pub pid: i32,
}

impl ProcessMemory {
    pub fn new(pid: i32) -> Self {
        ProcessMemory { pid }
    }
}

impl Memory for ProcessMemory {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let err = MemoryError { addr, len: buf.len() };
        if buf.is_empty() {
            return Ok(());
        }
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(err);
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` points into `buf`, which is valid for `buf.len()` bytes;
        // the remote range is only read by the kernel on the target's side.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n == buf.len() as isize {
            Ok(())
        } else {
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let value: u64 = 0x1122_3344_5566_7788;
        let mem = ProcessMemory::new(std::process::id() as i32);
        assert_eq!(mem.read_u64(&value as *const u64 as u64).unwrap(), value);
        let s = b"hello\0world";
        assert_eq!(mem.read_cstring(s.as_ptr() as u64, 100).unwrap(), "hello");
        assert!(mem.read_u64(0).is_err());
    }
}
