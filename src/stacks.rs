//! Unwound, symbolized stacks: what the report prints for each thread.

use std::sync::Arc;

use serde::Serialize;

/// Where a frame comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// A machine frame found by unwinding.
    Native,
    /// A Python function executing in an interpreter frame.
    Python,
}

/// One logical frame. A physical native frame whose pc lies in inlined code
/// expands to several logical frames: the inlined ones first (`inlined: true`),
/// then the function they were inlined into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Program counter (for callers, the return address); 0 for Python frames.
    pub pc: u64,
    pub kind: FrameKind,
    /// Demangled function name, when any symbol covers the pc.
    pub function: Option<Arc<str>>,
    /// Offset of pc from the start of `function`'s symbol.
    pub offset: Option<u64>,
    /// File name of the module (`libc.so.6`), or the Python file for Python frames.
    pub module: Option<Arc<str>>,
    pub file: Option<Arc<str>>,
    pub line: Option<u32>,
    pub inlined: bool,
    /// How the unwinder found this frame's caller: `cfi`, `fp`, `signal` (a
    /// signal-handler trampoline frame), `tailcall` (a frame synthesized from
    /// DWARF call sites where a function tail-called), or `python`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<&'static str>,
    /// This frame's own stack pointer, not its CFA despite the name: for the
    /// innermost frame rsp at the stop; for a caller rsp once its call
    /// returns, which is its callee's CFA. A physical frame's locals and
    /// spill slots therefore lie from its `cfa` up to the next physical
    /// frame's `cfa` (pi_park bounds the lock function's frame so). Inlined
    /// frames share their physical frame's value; tail-call frames
    /// synthesized between a caller and its callee take the callee's.
    /// 0 for Python frames.
    #[serde(skip)]
    pub cfa: u64,
    /// What the unwinder knew of this physical frame (shared by its inlined
    /// frames): the registers it recovered, the CFA and the function's extent.
    /// `None` for Python and synthesized frames.
    #[serde(skip)]
    pub context: Option<Arc<FrameContext>>,
}

/// A physical frame's machine state as unwinding recovered it, for readers
/// of the frame's locals ([`crate::symbols::guards`]) and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameContext {
    /// Where DWARF describes the frame: `pc - 1` for a return address, else `pc`.
    pub probe: u64,
    /// DWARF register numbers 0..=16: every register in the innermost frame;
    /// in callers only those CFI recovers (callee-saved ones, rsp).
    pub regs: FrameRegs,
    /// The canonical frame address (the caller's stack pointer), if known.
    pub cfa: Option<u64>,
    /// The function's code `[start, end)` as its CFI (FDE) covers it, if any.
    pub function: Option<(u64, u64)>,
}

/// A frame's registers by DWARF number (0..=16), each known or not: a bit
/// per register beside the values, 144 bytes where `[Option<u64>; 17]` is
/// 272 (every physical frame of every thread keeps one until the report:
/// ~10 MB at 10,000 threads).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameRegs {
    known: u32,
    values: [u64; 17],
}

impl FrameRegs {
    /// Register `n`, if known (and `n` is one of the 17).
    pub fn get(&self, n: usize) -> Option<u64> {
        (n < 17 && self.known & (1 << n) != 0).then(|| self.values[n])
    }
}

impl From<&[Option<u64>; 17]> for FrameRegs {
    fn from(regs: &[Option<u64>; 17]) -> Self {
        let mut out = FrameRegs::default();
        for (n, v) in regs.iter().enumerate() {
            if let Some(v) = v {
                out.known |= 1 << n;
                out.values[n] = *v;
            }
        }
        out
    }
}

impl std::fmt::Debug for FrameRegs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries((0..17).filter_map(|n| Some((n, self.get(n)?))))
            .finish()
    }
}

impl Frame {
    pub fn native(pc: u64, cfa: u64) -> Self {
        Frame {
            pc,
            kind: FrameKind::Native,
            function: None,
            offset: None,
            module: None,
            file: None,
            line: None,
            inlined: false,
            how: None,
            cfa,
            context: None,
        }
    }
    pub fn function_is(&self, name: &str) -> bool {
        self.function.as_deref() == Some(name)
    }
}

/// A thread's stack after unwinding and symbolization.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stack {
    pub frames: Vec<Frame>,
    /// Why unwinding stopped early, when it did (corrupt stack, unreadable memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unwinding stopped at the frame limit.
    pub truncated: bool,
}

#[cfg(test)]
mod frame_regs_tests {
    use super::FrameRegs;

    #[test]
    fn known_registers_round_trip() {
        let mut regs = [None; 17];
        regs[0] = Some(0);
        regs[7] = Some(0x7fff_0000);
        regs[16] = Some(u64::MAX);
        let r = FrameRegs::from(&regs);
        for (n, want) in regs.iter().enumerate() {
            assert_eq!(r.get(n), *want, "register {n}");
        }
        assert_eq!(r.get(17), None);
        assert_eq!(r.get(usize::MAX), None);
        assert_eq!(format!("{r:?}"), "{0: 0, 7: 2147418112, 16: 18446744073709551615}");
    }
}
