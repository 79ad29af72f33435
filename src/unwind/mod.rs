//! Stack unwinding: from a thread's registers to its chain of frames.
//!
//! DWARF call frame information (`.eh_frame` through its `.eh_frame_hdr`
//! binary-search table, else a scan of `.eh_frame`, else `.debug_frame`)
//! gives, for each pc, how to recover the caller's registers. All 17 DWARF
//! registers are tracked, so rules that restore a callee-saved register from a
//! frame further down work, and DWARF expressions (used by glibc's signal
//! trampoline `__restore_rt`) are evaluated. Where no CFI covers a pc, the
//! frame-pointer chain is followed instead.
//!
//! Between a caller and its callee, frames of functions that left the stack
//! by tail-calling (`jmp`) are put back from DWARF call-site information
//! (see [`crate::symbols::tailcall`]), marked `how: "tailcall"`.
//!
//! Unwinding is bounded: at most `max_frames`, and every step must move the
//! stack pointer up (except out of a signal frame), so corrupt or cyclic
//! stacks end with an error instead of a loop.

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EhFrame, EhFrameHdr, EhFrameOffset, EhHdrTable, Encoding, EvaluationResult,
    Format, FrameDescriptionEntry, Location, Pointer, Register, RegisterRule, UnwindContext, UnwindSection,
    UnwindTableRow, Value,
};

use std::collections::HashMap;
use std::sync::Arc;

use crate::capture::{Memory, RegisterSource, ThreadSnapshot};
use crate::stacks::{Frame, FrameContext, FrameRegs, Stack};
use crate::symbols::{file::Reader, tailcall::TailCalls, MappedModule, ProcessSymbols};

/// DWARF register number of the return address column on x86_64.
const RA: u16 = 16;
const RSP: u16 = 7;
const RBP: u16 = 6;
const NREGS: usize = 17;

/// Default frame limit; deeper stacks are marked truncated.
pub const MAX_FRAMES: usize = 512;

type Regs = [Option<u64>; NREGS];

/// Reusable unwinding state for one process (gimli's context allocates, and
/// thread pools share most return addresses, so symbolization is memoized).
pub struct Unwinder {
    ctx: Box<UnwindContext<usize>>,
    pub max_frames: usize,
    /// (pc, probe) -> logical frames. Valid for one process's modules only.
    symbolized: HashMap<(u64, u64), Vec<Frame>>,
    /// (caller return address, callee probe) -> tail-call frames between them.
    tail_calls: HashMap<(u64, u64), Vec<Frame>>,
    /// Name frames from DWARF too (inlined frames, file:line, tail calls), not
    /// only from ELF symbols. Loading DWARF is most of a run's cost, so the
    /// pipeline turns it off for stacks it will not print; see [`Self::set_dwarf`].
    dwarf: bool,
    /// Runtime probe address -> the CFI row covering it (`None`: no CFI).
    /// Finding a row means a binary search of `.eh_frame_hdr` and running the
    /// CIE's and FDE's programs up to the pc, and a pool's threads share a
    /// few pcs. Valid for one process's modules only, like `symbolized`.
    rows: HashMap<u64, Option<std::rc::Rc<CfiRow>>>,
}

/// A memoized CFI row and what is needed to apply it.
#[derive(Clone)]
struct CfiRow {
    row: UnwindTableRow<usize>,
    /// Which section the row's expressions point into.
    section: CfiSection,
    signal: bool,
    /// The FDE's range (link-time addresses): the function's code.
    function: (u64, u64),
}

#[derive(Clone, Copy)]
enum CfiSection {
    EhFrame,
    DebugFrame,
}

impl Default for Unwinder {
    fn default() -> Self {
        Unwinder {
            ctx: Box::new(UnwindContext::new()),
            max_frames: MAX_FRAMES,
            symbolized: HashMap::new(),
            tail_calls: HashMap::new(),
            dwarf: true,
            rows: HashMap::new(),
        }
    }
}

/// One physical frame of a [`Walk`].
#[derive(Debug, Clone)]
pub struct PhysicalFrame {
    pub pc: u64,
    /// Where the frame is looked up: `pc - 1` for a return address (which
    /// points after the call), `pc` for the innermost frame and a signal
    /// trampoline.
    pub probe: u64,
    /// The frame's stack pointer (see [`Frame::cfa`]).
    pub sp: u64,
    /// How this frame's caller was found: `cfi`, `fp` or `signal`.
    pub how: &'static str,
    /// `pc` is a return address (every frame but the innermost and those
    /// interrupted by a signal).
    pub return_address: bool,
    /// Its registers, CFA and code range: made once here and shared by
    /// every frame naming gives it (the walk is kept through analysis, and
    /// a copy per stack would double the largest per-thread allocation).
    pub context: Arc<FrameContext>,
}

/// A thread's physical frames, innermost first, before naming.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    pub frames: Vec<PhysicalFrame>,
    /// Why walking stopped early (see [`Stack::error`]).
    pub error: Option<String>,
    /// Stopped at the frame limit.
    pub truncated: bool,
}

/// One step's outcome.
enum Step {
    /// The caller's registers; `signal` when this frame was a signal trampoline
    /// (the caller's pc is then the interrupted instruction, not a return address).
    Caller {
        regs: Regs,
        signal: bool,
        how: &'static str,
    },
    /// The outermost frame (the return address is undefined by CFI, e.g. `_start`, `clone3`).
    Outermost,
}

impl Unwinder {
    /// Whether frames are named from DWARF as well as ELF symbols (default on).
    /// Without DWARF a stack has no inlined or tail-call frames and no
    /// file:line; its physical frames, pcs and function names are the same.
    pub fn set_dwarf(&mut self, on: bool) {
        if self.dwarf != on {
            self.dwarf = on;
            self.symbolized.clear();
            self.tail_calls.clear();
        }
    }

    /// Unwind and symbolize one thread: [`Self::walk`], then [`Self::name`].
    pub fn unwind(&mut self, thread: &ThreadSnapshot, symbols: &ProcessSymbols, memory: &dyn Memory) -> Stack {
        let walk = self.walk(thread, symbols, memory);
        self.name(&walk, symbols)
    }

    /// Find one thread's physical frames (CFI, else frame pointers). Needs
    /// no DWARF, so every thread can be walked before any DWARF is parsed,
    /// and the units covering all their frames parsed together.
    pub fn walk(&mut self, thread: &ThreadSnapshot, symbols: &ProcessSymbols, memory: &dyn Memory) -> Walk {
        let mut walk = Walk::default();
        if thread.register_source == RegisterSource::None {
            walk.error = Some("thread was running; no registers without stopping it".into());
            return walk;
        }
        let r = &thread.regs;
        let mut regs: Regs = [None; NREGS];
        for (i, slot) in regs.iter_mut().enumerate() {
            *slot = r.dwarf(i as u16);
        }
        if thread.register_source == RegisterSource::ProcSyscall {
            // Only SP and PC are known in --no-stop mode.
            regs = [None; NREGS];
            regs[RSP as usize] = Some(r.rsp);
            regs[RA as usize] = Some(r.rip);
        }
        // The innermost pc is exact; callers' pcs are return addresses.
        let mut exact_pc = true;
        while walk.frames.len() < self.max_frames {
            let Some(pc) = regs[RA as usize].filter(|&pc| pc != 0) else {
                break;
            };
            let sp = regs[RSP as usize].unwrap_or(0);
            let probe = if exact_pc { pc } else { pc - 1 };
            let module = symbols.module_for(probe);
            let step = match module {
                Some(m) => self.step_cfi(m, probe, &regs, memory),
                None => Ok(None),
            };
            let (step, how) = match step {
                Ok(Some(s)) => (Ok(s), "cfi"),
                Ok(None) => (step_frame_pointer(&regs, memory), "fp"),
                Err(e) => (Err(e), "cfi"),
            };
            // A signal trampoline's FDE starts one byte early precisely so the
            // pc-1 probe finds it; its name is at pc itself.
            let frame_probe = match &step {
                Ok(Step::Caller { signal: true, .. }) => pc,
                _ => probe,
            };
            walk.frames.push(PhysicalFrame {
                pc,
                probe: frame_probe,
                sp,
                how: match &step {
                    Ok(Step::Caller { how, .. }) => how,
                    _ => how,
                },
                return_address: !exact_pc,
                context: Arc::new(FrameContext {
                    probe: frame_probe,
                    regs: FrameRegs::from(&regs),
                    cfa: match &step {
                        Ok(Step::Caller { regs: next, .. }) => next[RSP as usize],
                        _ => None,
                    },
                    function: module.and_then(|m| {
                        let row = self.rows.get(&probe)?.as_ref()?;
                        Some((row.function.0.wrapping_add(m.bias), row.function.1.wrapping_add(m.bias)))
                    }),
                }),
            });
            match step {
                Ok(Step::Outermost) => break,
                Ok(Step::Caller { regs: next, signal, .. }) => {
                    let next_sp = next[RSP as usize].unwrap_or(0);
                    let first = walk.frames.len() == 1;
                    if !signal && next_sp <= sp && !(first && next_sp == sp) {
                        walk.error = Some(format!("stack pointer did not advance at {pc:#x}: corrupt stack?"));
                        break;
                    }
                    exact_pc = signal;
                    regs = next;
                }
                Err(e) => {
                    walk.error = Some(e);
                    break;
                }
            }
        }
        walk.truncated = walk.frames.len() >= self.max_frames;
        walk
    }

    /// Name a walked stack's frames (memoized by address): inlined frames
    /// and file:line from DWARF if [`Self::set_dwarf`] is on, and the
    /// tail-call frames between a caller and its callee.
    pub fn name(&mut self, walk: &Walk, symbols: &ProcessSymbols) -> Stack {
        let mut stack = Stack {
            frames: Vec::with_capacity(walk.frames.len()),
            error: walk.error.clone(),
            truncated: walk.truncated,
        };
        // The previous (callee) physical frame: its symbolization probe and stack pointer.
        let mut callee: Option<(u64, u64)> = None;
        for p in &walk.frames {
            let dwarf = self.dwarf;
            let mut logical = self
                .symbolized
                .entry((p.pc, p.probe))
                .or_insert_with(|| symbols.symbolize_with(p.pc, p.probe, dwarf))
                .clone();
            let context = &p.context;
            for f in &mut logical {
                f.cfa = p.sp;
                f.context = Some(context.clone());
            }
            if let Some(f) = logical.last_mut() {
                f.how = Some(p.how);
            }
            // A return address: the callee below may have been reached through tail calls.
            if let (true, true, Some((callee_probe, callee_sp))) = (p.return_address, dwarf, callee) {
                let tail = self.tail_frames(symbols, p.pc, callee_probe);
                stack.frames.extend(tail.iter().cloned().map(|mut f| {
                    f.cfa = callee_sp;
                    f
                }));
            }
            callee = Some((p.probe, p.sp));
            stack.frames.extend(logical);
        }
        // Grown by doubling: without this the slack is about a third of the
        // named frames' memory (14 of the 115 MB heap peak at 10,000 threads).
        stack.frames.shrink_to_fit();
        stack
    }

    /// The tail-call frames between the caller frame returning to `caller_pc`
    /// and the callee frame at `callee_probe`, innermost first (memoized).
    fn tail_frames(&mut self, symbols: &ProcessSymbols, caller_pc: u64, callee_probe: u64) -> &[Frame] {
        if !self.tail_calls.contains_key(&(caller_pc, callee_probe)) {
            let mut frames = Vec::new();
            for pc in TailCalls::new(symbols).between(caller_pc, callee_probe) {
                let probe = pc.wrapping_sub(1);
                let mut logical = self
                    .symbolized
                    .entry((pc, probe))
                    .or_insert_with(|| symbols.symbolize(pc, probe))
                    .clone();
                if let Some(f) = logical.last_mut() {
                    f.how = Some("tailcall");
                }
                frames.extend(logical);
            }
            self.tail_calls.insert((caller_pc, callee_probe), frames);
        }
        &self.tail_calls[&(caller_pc, callee_probe)]
    }

    /// One step with CFI; `Ok(None)` when no FDE covers `probe`.
    fn step_cfi(
        &mut self,
        m: &MappedModule,
        probe: u64,
        regs: &Regs,
        mem: &dyn Memory,
    ) -> Result<Option<Step>, String> {
        let found = match self.rows.get(&probe) {
            Some(r) => r.clone(),
            None => {
                let r = self.find_row(m, probe).map(std::rc::Rc::new);
                self.rows.insert(probe, r.clone());
                r
            }
        };
        let Some(r) = found else { return Ok(None) };
        let endian = gimli::RunTimeEndian::Little;
        let module = &m.module;
        match r.section {
            CfiSection::EhFrame => {
                let eh = module.eh_frame.ok_or("CFI row without .eh_frame")?;
                apply_row(&r.row, &EhFrame::new(eh.data, endian), regs, mem, r.signal).map(Some)
            }
            CfiSection::DebugFrame => {
                let df = module.debug_frame.ok_or("CFI row without .debug_frame")?;
                let mut debug_frame = DebugFrame::new(df.data, endian);
                debug_frame.set_address_size(8);
                apply_row(&r.row, &debug_frame, regs, mem, r.signal).map(Some)
            }
        }
    }

    /// The CFI row covering `probe` (`.eh_frame`, else `.debug_frame`), if any.
    fn find_row(&mut self, m: &MappedModule, probe: u64) -> Option<CfiRow> {
        let module = &m.module;
        let svma = probe.wrapping_sub(m.bias);
        let endian = gimli::RunTimeEndian::Little;
        if let Some(eh) = module.eh_frame {
            let mut bases = BaseAddresses::default()
                .set_eh_frame(eh.addr)
                .set_text(module.text_addr);
            bases = bases.set_got(module.got_addr);
            let eh_frame = EhFrame::new(eh.data, endian);
            let mut found = None;
            let hdr = module.eh_frame_hdr.filter(|h| hdr_table_is_searchable(h.data));
            if let Some(hdr) = hdr {
                bases = bases.set_eh_frame_hdr(hdr.addr);
                if let Ok(parsed) = EhFrameHdr::new(hdr.data, endian).parse(&bases, 8) {
                    if let Some(table) = parsed.table() {
                        found = fde_via_hdr_table(&table, parsed.eh_frame_ptr(), &eh_frame, &bases, svma);
                    }
                }
            }
            if found.is_none() && hdr.is_none() {
                found = eh_frame.fde_for_address(&bases, svma, EhFrame::cie_from_offset).ok();
            }
            if let Some(fde) = found {
                if let Ok(row) = fde.unwind_info_for_address(&eh_frame, &bases, &mut self.ctx, svma) {
                    return Some(CfiRow {
                        row: row.clone(),
                        section: CfiSection::EhFrame,
                        signal: fde.is_signal_trampoline(),
                        function: (fde.initial_address(), fde.end_address()),
                    });
                }
            }
        }
        if let Some(df) = module.debug_frame {
            let bases = BaseAddresses::default();
            let mut debug_frame = DebugFrame::new(df.data, endian);
            debug_frame.set_address_size(8);
            if let Ok(fde) = debug_frame.fde_for_address(&bases, svma, DebugFrame::cie_from_offset) {
                if let Ok(row) = fde.unwind_info_for_address(&debug_frame, &bases, &mut self.ctx, svma) {
                    return Some(CfiRow {
                        row: row.clone(),
                        section: CfiSection::DebugFrame,
                        signal: fde.is_signal_trampoline(),
                        function: (fde.initial_address(), fde.end_address()),
                    });
                }
            }
        }
        None
    }
}

/// Whether gimli may binary-search this `.eh_frame_hdr` table. gimli 0.34's
/// `EhHdrTable::lookup` multiplies the (untrusted) FDE count by the row size
/// unchecked, which panics in builds with overflow checks when the count is
/// corrupt (found by tests/fuzz_elf.rs). Accept the layout every linker
/// emits: version 1, a 4-byte `eh_frame_ptr`, a `udata4` count and 4-byte
/// table entries, with the count's rows inside the section. Anything else
/// is searched by a linear scan of `.eh_frame` instead.
fn hdr_table_is_searchable(hdr: &[u8]) -> bool {
    const UDATA4: u8 = 0x03;
    const SDATA4: u8 = 0x0b;
    let four_bytes = |enc: u8| matches!(enc & 0x0f, UDATA4 | SDATA4);
    if hdr.len() < 12 {
        return false;
    }
    let (version, ptr_enc, count_enc, table_enc) = (hdr[0], hdr[1], hdr[2], hdr[3]);
    let count = u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
    version == 1
        && four_bytes(ptr_enc)
        && count_enc == UDATA4
        && four_bytes(table_enc)
        && count.checked_mul(8).is_some_and(|rows| rows <= hdr.len() - 12)
}

/// The FDE covering `svma`, found through the `.eh_frame_hdr` search table.
///
/// Does what gimli's `EhHdrTable::fde_for_address` does, except that the
/// table entry is turned into an `.eh_frame` offset with a checked
/// subtraction: gimli 0.34 computes `entry - eh_frame_ptr` unchecked
/// (`EhHdrTable::pointer_to_offset`), which panics in builds with overflow
/// checks when a corrupt table entry points below `.eh_frame` (found by
/// tests/fuzz_elf.rs: one flipped bit in a library's `.eh_frame_hdr`).
fn fde_via_hdr_table(
    table: &EhHdrTable<'_, Reader>,
    eh_frame_ptr: Pointer,
    eh_frame: &EhFrame<Reader>,
    bases: &BaseAddresses,
    svma: u64,
) -> Option<FrameDescriptionEntry<Reader>> {
    let (Pointer::Direct(entry), Pointer::Direct(start)) = (table.lookup(svma, bases).ok()?, eh_frame_ptr) else {
        return None;
    };
    let offset = usize::try_from(entry.checked_sub(start)?).ok()?;
    let fde = eh_frame
        .fde_from_offset(bases, EhFrameOffset(offset), EhFrame::cie_from_offset)
        .ok()?;
    fde.contains(svma).then_some(fde)
}

/// Compute the caller's registers from a CFI row.
fn apply_row<S: UnwindSection<Reader>>(
    row: &UnwindTableRow<usize>,
    section: &S,
    regs: &Regs,
    mem: &dyn Memory,
    signal: bool,
) -> Result<Step, String> {
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let base = reg(regs, *register).ok_or_else(|| format!("CFA needs unknown register {}", register.0))?;
            base.wrapping_add(*offset as u64)
        }
        CfaRule::Expression(e) => {
            let expr = e.get(section).map_err(|e| e.to_string())?;
            eval(expr.0, regs, mem, None)?.address()?
        }
    };
    let mut next: Regs = [None; NREGS];
    for n in 0..NREGS as u16 {
        let rule = row.register(Register(n));
        let value = match rule {
            // Unspecified: callee-saved registers keep their value; the rest
            // are unknown in the caller (except SP, which is the CFA).
            None => match n {
                3 | 6 | 12..=15 => reg(regs, Register(n)),
                _ => None,
            },
            Some(RegisterRule::SameValue) => reg(regs, Register(n)),
            Some(RegisterRule::Undefined) => {
                if n == RA {
                    return Ok(Step::Outermost);
                }
                None
            }
            Some(RegisterRule::Offset(o)) => mem.read_u64(cfa.wrapping_add(o as u64)).ok(),
            Some(RegisterRule::ValOffset(o)) => Some(cfa.wrapping_add(o as u64)),
            Some(RegisterRule::Register(r)) => reg(regs, r),
            Some(RegisterRule::Expression(e)) => {
                let expr = e.get(section).map_err(|e| e.to_string())?;
                let addr = eval(expr.0, regs, mem, Some(cfa))?.address()?;
                mem.read_u64(addr).ok()
            }
            Some(RegisterRule::ValExpression(e)) => {
                let expr = e.get(section).map_err(|e| e.to_string())?;
                Some(eval(expr.0, regs, mem, Some(cfa))?.value())
            }
            Some(RegisterRule::Constant(c)) => Some(c),
            Some(_) => None,
        };
        next[n as usize] = value;
    }
    if row.register(Register(RA)).is_none() {
        return Ok(Step::Outermost);
    }
    if next[RA as usize].is_none() {
        return Err(format!("cannot read the return address at CFA {cfa:#x}"));
    }
    // The CFA is by definition the caller's stack pointer on x86_64, unless a
    // rule (the signal frame's) restores RSP explicitly.
    if row.register(Register(RSP)).is_none() {
        next[RSP as usize] = Some(cfa);
    }
    Ok(Step::Caller {
        regs: next,
        signal,
        how: if signal { "signal" } else { "cfi" },
    })
}

fn reg(regs: &Regs, r: Register) -> Option<u64> {
    regs.get(r.0 as usize).copied().flatten()
}

/// The outcome of a DWARF expression: a memory location or a value.
enum EvalResult {
    Address(u64),
    Value(u64),
}

impl EvalResult {
    fn address(self) -> Result<u64, String> {
        match self {
            EvalResult::Address(a) | EvalResult::Value(a) => Ok(a),
        }
    }
    fn value(self) -> u64 {
        match self {
            EvalResult::Address(a) | EvalResult::Value(a) => a,
        }
    }
}

/// Evaluate a CFI DWARF expression; `initial` is pushed first (the CFA, for
/// register rules). Bounded by gimli's own iteration limit and ours.
fn eval(bytecode: Reader, regs: &Regs, mem: &dyn Memory, initial: Option<u64>) -> Result<EvalResult, String> {
    let encoding = Encoding {
        format: Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut e = gimli::Evaluation::new(bytecode, encoding);
    if let Some(v) = initial {
        e.set_initial_value(v);
    }
    let mut res = e.evaluate().map_err(|e| e.to_string())?;
    for _ in 0..1000 {
        res = match res {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let v = match size {
                    1 => mem.read_u8(address).map(u64::from),
                    2 => mem.read_u16(address).map(u64::from),
                    4 => mem.read_u32(address).map(u64::from),
                    _ => mem.read_u64(address),
                }
                .map_err(|e| e.to_string())?;
                e.resume_with_memory(Value::Generic(v)).map_err(|e| e.to_string())?
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = reg(regs, register).ok_or("expression needs an unknown register")?;
                e.resume_with_register(Value::Generic(v)).map_err(|e| e.to_string())?
            }
            _ => return Err("unsupported DWARF expression in CFI".into()),
        };
    }
    let pieces = e.result();
    match pieces.first().map(|p| &p.location) {
        Some(Location::Address { address }) => Ok(EvalResult::Address(*address)),
        Some(Location::Value { value }) => Ok(EvalResult::Value(value.to_u64(!0).map_err(|e| e.to_string())?)),
        _ => Err("DWARF expression has no usable result".into()),
    }
}

/// Without CFI: assume a standard frame (`push rbp; mov rbp, rsp`), so the
/// caller's pc is at rbp+8 and its rbp at rbp.
fn step_frame_pointer(regs: &Regs, mem: &dyn Memory) -> Result<Step, String> {
    let rbp = reg(regs, Register(RBP))
        .filter(|&b| b != 0 && b % 8 == 0)
        .ok_or("no CFI and no frame pointer")?;
    let sp = reg(regs, Register(RSP)).unwrap_or(0);
    if rbp < sp {
        return Err(format!("no CFI and frame pointer {rbp:#x} is below the stack pointer"));
    }
    let ra = mem.read_u64(rbp + 8).map_err(|e| format!("frame-pointer walk: {e}"))?;
    let caller_rbp = mem.read_u64(rbp).map_err(|e| format!("frame-pointer walk: {e}"))?;
    if ra == 0 {
        return Ok(Step::Outermost);
    }
    let mut next: Regs = [None; NREGS];
    next[RA as usize] = Some(ra);
    next[RSP as usize] = Some(rbp + 16);
    next[RBP as usize] = Some(caller_rbp);
    Ok(Step::Caller {
        regs: next,
        signal: false,
        how: "fp",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eh_frame_hdr_tables_are_checked_before_searching() {
        // version 1, pcrel|sdata4 pointer, udata4 count, datarel|sdata4 table: what linkers emit.
        let mut hdr = vec![1, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 2, 0, 0, 0];
        hdr.extend_from_slice(&[0; 16]);
        assert!(hdr_table_is_searchable(&hdr));
        hdr[8] = 3; // three rows claimed, two present
        assert!(!hdr_table_is_searchable(&hdr));
        hdr[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(!hdr_table_is_searchable(&hdr));
        hdr[8] = 2;
        hdr[9..12].fill(0);
        hdr[3] = 0x3c; // 8-byte entries: not the layout gimli is trusted with
        assert!(!hdr_table_is_searchable(&hdr));
        assert!(!hdr_table_is_searchable(&hdr[..11]));
    }
}
