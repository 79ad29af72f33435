//! Reading a live fixture's machine code: which direct jumps and calls end
//! where, and where they go. Enough of x86-64 to prove that a compiler
//! turned a call into a tail call (`jmp`) or kept it a call.

use super::procfs::read_mem;

/// A direct branch instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// `jmp rel8` (`eb`) or `jmp rel32` (`e9`).
    Jmp,
    /// `call rel32` (`e8`).
    Call,
}

/// Every reading of the bytes before `end` as a direct branch that ends
/// exactly at `end`: (kind, target). Several readings may fit; callers check
/// the one they expect is among them.
pub fn branches_ending_at(pid: i32, end: u64) -> Vec<(Branch, u64)> {
    let bytes = read_mem(pid, end - 5, 5).unwrap_or_else(|e| panic!("cannot read code before {end:#x} in {pid}: {e}"));
    let mut out = Vec::new();
    if bytes[3] == 0xeb {
        out.push((Branch::Jmp, end.wrapping_add(bytes[4] as i8 as i64 as u64)));
    }
    let rel32 = i32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as i64 as u64;
    match bytes[0] {
        0xe9 => out.push((Branch::Jmp, end.wrapping_add(rel32))),
        0xe8 => out.push((Branch::Call, end.wrapping_add(rel32))),
        _ => {}
    }
    out
}

/// Whether the `len` bytes of code from `start` hold a direct branch of
/// `kind` to `target`.
pub fn has_branch(pid: i32, start: u64, len: u64, kind: Branch, target: u64) -> bool {
    (start + 2..=start + len).any(|end| branches_ending_at(pid, end).contains(&(kind, target)))
}
