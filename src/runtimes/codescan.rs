//! Inferring the holder of a lock in a `static` from the code threads run.
//!
//! A guard for a lock in a `static` (`static LOCK_A: Mutex<_>`) needs no
//! pointer at run time: optimized code addresses the lock RIP-relatively
//! wherever it touches it, so the holder's stack and registers may hold no
//! reference to it at all, while another thread's dead stack slot does (a
//! stale copy from formatting the address, say). [`super::stackscan`] then
//! finds no holder, or the wrong one.
//!
//! The code still tells. std's `Mutex::lock` and `RwLock::read`/`write` fast
//! paths are inlined `compare_exchange`s: a `lock cmpxchg` whose memory
//! operand is the lock's address, RIP-relative. A thread holding a static
//! lock acquired it in one of the functions still on its stack (the guard
//! lives in a frame that has not returned), so the functions on its stack
//! contain such an instruction; a thread whose functions never acquire the
//! lock cannot hold it.
//!
//! It is evidence, not proof: the function may have released the lock
//! already, or the lock may have been taken through a call that is not
//! inlined. So owners found this way are [`Confidence::Inferred`](super::Confidence::Inferred),
//! and more than one candidate means "unknown" (unless the stack scan picks
//! one of them).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::stacks::FrameRegs;

use super::ProcessView;

/// Longest function searched (bytes); longer ones are searched up to this.
pub const MAX_FUNCTION_BYTES: u64 = 512 * 1024;
/// Physical frames per thread whose functions are searched.
pub const MAX_FRAMES: usize = 64;

/// A function on a thread's stack that acquires the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquirer {
    /// Index into `snapshot.threads`.
    pub thread: usize,
    /// Index into that thread's stack (the physical frame).
    pub frame: usize,
    /// Address of the `lock cmpxchg` instruction.
    pub instruction: u64,
}

impl Acquirer {
    /// Evidence in words.
    pub fn describe(&self, view: &ProcessView<'_>) -> String {
        self.describe_doing(view, "takes the lock (lock cmpxchg on its address")
    }

    /// Evidence in words, with what the frame's code does at the instruction
    /// (`read-locked it (pthread_rwlock_*rdlock on its address`).
    pub fn describe_doing(&self, view: &ProcessView<'_>, doing: &str) -> String {
        let tid = view.snapshot.threads.get(self.thread).map_or(0, |t| t.tid.get());
        let name = view
            .stacks
            .get(self.thread)
            .and_then(|s| s.frames.get(self.frame))
            .and_then(|f| f.function.as_deref())
            .unwrap_or("?");
        format!(
            "thread {tid} is inside frame #{} ({name}), whose code {doing} at {:#x})",
            self.frame, self.instruction
        )
    }
}

/// A function's lock operations, register copies and stack spills.
type FunctionOps = (Vec<(u64, LockOp, Operand)>, Vec<(u64, u16, u16)>, Vec<(u64, u16, i64)>);

/// Finds the functions on threads' stacks that `lock cmpxchg` a given address.
/// Caches each function's targets, so many threads running the same code cost
/// one read.
pub struct CodeScanner<'v, 'a> {
    view: &'v ProcessView<'a>,
    /// Function start -> addresses its `lock cmpxchg`s target (with the instruction address).
    targets: RefCell<HashMap<u64, Vec<(u64, u64)>>>,
    /// Function start -> its lock operations ([`lock_ops`]).
    ops: RefCell<HashMap<u64, FunctionOps>>,
    /// Function start -> addresses its RIP-relative `lea`s load ([`rip_lea_targets`]).
    leas: RefCell<HashMap<u64, Vec<(u64, u64, u8)>>>,
}

impl<'v, 'a> CodeScanner<'v, 'a> {
    pub fn new(view: &'v ProcessView<'a>) -> Self {
        CodeScanner {
            view,
            targets: RefCell::new(HashMap::new()),
            ops: RefCell::new(HashMap::new()),
            leas: RefCell::new(HashMap::new()),
        }
    }

    /// Every thread (not in `exclude`) with a function on its stack that
    /// acquires `lock` RIP-relatively, with the innermost such frame.
    /// Only locks inside a loaded module (statics) are looked for.
    pub fn acquirers(&self, lock: u64, exclude: &[usize]) -> Vec<Acquirer> {
        self.innermost_frames(lock, exclude, &|start, _| {
            self.targets_of(start)
                .iter()
                .find(|(t, _)| *t == lock)
                .map(|&(_, at)| at)
        })
    }

    /// Every thread (not in `exclude`) with a function on its stack whose
    /// code, before the point that frame resumes at, passes the address of
    /// `lock` (RIP-relative, a static) as the first argument of a call to a
    /// function whose name `callee` accepts: `lea lock(%rip), %rdi` then
    /// `call f` (through the PLT or directly), how optimized code calls
    /// `pthread_rwlock_rdlock(&lock)`. With the innermost such frame.
    pub fn callers_with(&self, lock: u64, exclude: &[usize], callee: &dyn Fn(&str) -> bool) -> Vec<Acquirer> {
        let calls = |at: u64| {
            // `lea` is 7 bytes; a `call rel32` right after it.
            let Ok(code) = self.view.memory.read_vec(at + 7, 5) else {
                return false;
            };
            if code[0] != 0xE8 {
                return false;
            }
            let rel = i32::from_le_bytes([code[1], code[2], code[3], code[4]]);
            let target = (at + 12).wrapping_add(rel as i64 as u64);
            let target = plt_target(self.view, target).unwrap_or(target);
            self.view
                .symbols
                .symbol_at(target)
                .is_some_and(|(name, off)| off == 0 && callee(&name))
        };
        self.innermost_frames(lock, exclude, &|start, pc| {
            self.leas_of(start)
                .iter()
                .find(|&&(t, at, reg)| t == lock && at < pc && reg == RDI && calls(at))
                .map(|&(_, at, _)| at)
        })
    }

    /// For every thread not in `exclude`, the innermost physical frame whose
    /// function (by its start and the frame's pc) `hit` finds an instruction
    /// in. Only locks inside a loaded module (statics) are looked for.
    fn innermost_frames(&self, lock: u64, exclude: &[usize], hit: &dyn Fn(u64, u64) -> Option<u64>) -> Vec<Acquirer> {
        if self.view.symbols.module_at(lock).is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (j, stack) in self.view.stacks.iter().enumerate() {
            if exclude.contains(&j) || j >= self.view.snapshot.threads.len() {
                continue;
            }
            let physical = stack
                .frames
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.inlined && f.pc != 0)
                .take(MAX_FRAMES);
            for (k, f) in physical {
                let Some(start) = f.offset.and_then(|o| f.pc.checked_sub(o)) else {
                    continue;
                };
                if let Some(instruction) = hit(start, f.pc) {
                    out.push(Acquirer {
                        thread: j,
                        frame: k,
                        instruction,
                    });
                    break;
                }
            }
        }
        out
    }

    /// The RIP-relative `lea` targets of the function starting at `start` (cached).
    fn leas_of(&self, start: u64) -> Vec<(u64, u64, u8)> {
        if let Some(t) = self.leas.borrow().get(&start) {
            return t.clone();
        }
        let found = function_len(self.view, start)
            .and_then(|len| self.view.memory.read_vec(start, len as usize).ok())
            .map(|code| rip_lea_targets(&code, start))
            .unwrap_or_default();
        self.leas.borrow_mut().insert(start, found.clone());
        found
    }

    /// The `lock cmpxchg` targets of the function starting at `start` (cached).
    fn targets_of(&self, start: u64) -> Vec<(u64, u64)> {
        if let Some(t) = self.targets.borrow().get(&start) {
            return t.clone();
        }
        let found = function_len(self.view, start)
            .and_then(|len| self.view.memory.read_vec(start, len as usize).ok())
            .map(|code| locked_cmpxchg_targets(&code, start))
            .unwrap_or_default();
        self.targets.borrow_mut().insert(start, found.clone());
        found
    }
}

/// A memory operand: RIP-relative (its target) or a base register (DWARF
/// number) plus a displacement, without an index register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Rip(u64),
    Base { reg: u16, disp: i64 },
}

impl Operand {
    /// The address it designates in a frame whose registers are `regs`, if they are known.
    pub fn resolve(self, regs: &FrameRegs) -> Option<u64> {
        match self {
            Operand::Rip(t) => Some(t),
            Operand::Base { reg, disp } => regs.get(reg as usize).map(|v| v.wrapping_add(disp as u64)),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Operand::Rip(t) => format!("{t:#x}"),
            Operand::Base { reg, disp } => {
                let r = DWARF_NAMES.get(reg as usize).copied().unwrap_or("?");
                match disp {
                    0 => format!("[{r}]"),
                    d if d < 0 => format!("[{r}-{:#x}]", -d),
                    d => format!("[{r}+{d:#x}]"),
                }
            }
        }
    }
}

const DWARF_NAMES: [&str; 17] = [
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
];

/// What a locked instruction does to a std lock word: `lock cmpxchg` takes
/// it (std's `Mutex::lock`, `RwLock::read`/`write` fast paths); `xchg`
/// (Mutex unlock: `swap(0)`), `lock xadd` and `lock add`/`sub` with an
/// immediate (RwLock unlocks: `fetch_sub`) release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOp {
    Acquire,
    Release,
}

/// x86 register encoding (0..15: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15) to DWARF numbers.
const ENC_TO_DWARF: [u16; 16] = [0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];

/// Decode a ModRM memory operand at `code[0..]` (`rex`: the REX prefix or 0);
/// the operand and the bytes it takes (ModRM, SIB, displacement). `end_of`
/// is called with that length to turn a RIP-relative displacement into an
/// address (it is relative to the end of the instruction).
fn memory_operand(code: &[u8], rex: u8, tail: usize, at: u64) -> Option<(Operand, usize)> {
    let modrm = *code.first()?;
    let (md, rm) = (modrm >> 6, modrm & 7);
    if md == 3 {
        return None;
    }
    let rex_b = u16::from(rex & 1) << 3;
    let mut len = 1usize;
    let base = if rm == 4 {
        let sib = *code.get(1)?;
        len += 1;
        let index = ((sib >> 3) & 7) | ((rex >> 1) & 1) << 3;
        if index != 4 || sib & 7 == 5 && md == 0 {
            return None; // an index register, or no base: not a plain pointer
        }
        Some(ENC_TO_DWARF[usize::from(sib & 7) | rex_b as usize])
    } else if rm == 5 && md == 0 {
        None
    } else {
        Some(ENC_TO_DWARF[usize::from(rm) | rex_b as usize])
    };
    let disp_len = match (md, base) {
        (0, None) | (2, _) => 4,
        (1, _) => 1,
        _ => 0,
    };
    let d = code.get(len..len + disp_len)?;
    let disp: i64 = match disp_len {
        1 => i64::from(d[0] as i8),
        4 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
        _ => 0,
    };
    len += disp_len;
    Some(match base {
        Some(reg) => (Operand::Base { reg, disp }, len),
        None => {
            let end = at.wrapping_add((len + tail) as u64);
            (Operand::Rip(end.wrapping_add(disp as u64)), len)
        }
    })
}

/// Every locked read-modify-write on memory in `code` (loaded at `base`)
/// that takes or releases a std lock word, as (instruction address, op,
/// operand). Decoded from every byte offset, like [`locked_cmpxchg_targets`]:
/// a false match inside another instruction counts only if its operand
/// designates exactly the lock.
pub fn lock_ops(code: &[u8], base: u64) -> Vec<(u64, LockOp, Operand)> {
    let mut out = Vec::new();
    for i in 0..code.len() {
        let at = base.wrapping_add(i as u64);
        let mut p = i;
        let locked = code[p] == 0xF0;
        if locked {
            p += 1;
        }
        let rex = match code.get(p) {
            Some(&r) if (0x40..=0x4F).contains(&r) => {
                p += 1;
                r
            }
            _ => 0,
        };
        let (op, opcode_len, imm) = match (code.get(p), code.get(p + 1)) {
            // parking_lot's RawMutex (a byte): `compare_exchange(0, LOCKED)`
            // takes it, `compare_exchange(LOCKED, 0)` releases it; only the
            // expected value (`%al`, set just before) tells them apart.
            (Some(0x0F), Some(0xB0)) if locked => match expected_constant(&code[..i]) {
                Some(0) => (LockOp::Acquire, 2, 0),
                Some(_) => (LockOp::Release, 2, 0),
                None => continue,
            },
            // A 64-bit word from a non-zero constant (parking_lot's RawRwLock
            // write unlock, `compare_exchange(WRITER_BIT, 0)`) releases; std's
            // locks are 32-bit words and never released by a cmpxchg.
            (Some(0x0F), Some(0xB1))
                if locked && rex & 8 != 0 && matches!(expected_constant(&code[..i]), Some(v) if v != 0) =>
            {
                (LockOp::Release, 2, 0)
            }
            (Some(0x0F), Some(0xB1)) if locked => (LockOp::Acquire, 2, 0),
            (Some(0x0F), Some(0xC1)) if locked => (LockOp::Release, 2, 0),
            (Some(0x87), _) => (LockOp::Release, 1, 0),
            // lock add/sub m32, imm32 / imm8 (`/0`, `/5`)
            (Some(0x81), Some(&m)) if locked && matches!((m >> 3) & 7, 0 | 5) => (LockOp::Release, 1, 4),
            (Some(0x83), Some(&m)) if locked && matches!((m >> 3) & 7, 0 | 5) => (LockOp::Release, 1, 1),
            _ => continue,
        };
        let modrm_at = p + opcode_len;
        let Some((operand, _)) = memory_operand(
            code.get(modrm_at..).unwrap_or(&[]),
            rex,
            imm,
            base.wrapping_add(modrm_at as u64),
        ) else {
            continue;
        };
        out.push((at, op, operand));
    }
    out
}

/// The constant a `cmpxchg` starting right after `before` compares with:
/// the last write of an immediate to `%al`/`%eax`/`%rax` (`mov $imm,%al`,
/// `mov $imm,%eax`, `mov $imm,%rax`, `xor %eax,%eax`) in the few bytes
/// before it, or `None` (the expected value comes from elsewhere).
pub fn expected_constant(before: &[u8]) -> Option<u64> {
    let window = &before[before.len().saturating_sub(12)..];
    let mut found: Option<(usize, u64)> = None;
    for k in 0..window.len() {
        let rest = &window[k..];
        let hit = match rest {
            [0xB0, v] => Some(u64::from(*v)),
            [0x31 | 0x33, 0xC0] => Some(0),
            [0xB8, a, b, c, d] => Some(u64::from(u32::from_le_bytes([*a, *b, *c, *d]))),
            [0x48, 0xC7, 0xC0, a, b, c, d] => Some(i32::from_le_bytes([*a, *b, *c, *d]) as i64 as u64),
            _ => None,
        };
        // Only an instruction that ends where the next one starts: the
        // pattern must reach the end of the window, or be followed by one
        // more short register instruction (2 bytes: `mov $1,%cl`, `xor %ecx,%ecx`).
        let len = match rest.first() {
            Some(0xB0) => 2,
            Some(0x31 | 0x33) => 2,
            Some(0xB8) => 5,
            _ => 7,
        };
        if let Some(v) = hit.filter(|_| rest.len() == len) {
            found = Some((k, v));
        } else if rest.len() == len + 2 {
            let head = &rest[..len];
            let tail = &rest[len..];
            let short_reg_op = matches!(tail, [0xB1..=0xB7, _] | [0x31 | 0x33, 0xC9..=0xFF]);
            let v = match head {
                [0xB0, v] => Some(u64::from(*v)),
                [0x31 | 0x33, 0xC0] => Some(0),
                [0xB8, a, b, c, d] => Some(u64::from(u32::from_le_bytes([*a, *b, *c, *d]))),
                _ => None,
            };
            if let (Some(v), true) = (v, short_reg_op) {
                found = Some((k, v));
            }
        }
    }
    found.map(|(_, v)| v)
}

/// Every 64-bit register-to-register `mov` in `code` (loaded at `base`), as
/// (instruction address, source, destination) in DWARF numbers: `REX.W 89 /r`
/// and `REX.W 8B /r` with a register operand (ModRM mod = 11).
pub fn register_copies(code: &[u8], base: u64) -> Vec<(u64, u16, u16)> {
    let mut out = Vec::new();
    for i in 0..code.len().saturating_sub(2) {
        let (rex, op, modrm) = (code[i], code[i + 1], code[i + 2]);
        if rex & 0xF8 != 0x48 || !matches!(op, 0x89 | 0x8B) || modrm >> 6 != 3 {
            continue;
        }
        let reg = usize::from((modrm >> 3) & 7) | usize::from(rex & 4) << 1;
        let rm = usize::from(modrm & 7) | usize::from(rex & 1) << 3;
        let (src, dst) = if op == 0x89 { (reg, rm) } else { (rm, reg) };
        out.push((base.wrapping_add(i as u64), ENC_TO_DWARF[src], ENC_TO_DWARF[dst]));
    }
    out
}

/// Every 64-bit store of a register to the stack (`REX.W 89 /r` with a
/// `disp(%rsp)` operand): (instruction address, register, displacement).
pub fn stack_spills(code: &[u8], base: u64) -> Vec<(u64, u16, i64)> {
    let mut out = Vec::new();
    for i in 0..code.len().saturating_sub(3) {
        let (rex, op) = (code[i], code[i + 1]);
        if rex & 0xFA != 0x48 || op != 0x89 {
            continue; // REX.W, no REX.X / REX.B (the base is rsp itself)
        }
        let Some((Operand::Base { reg: 7, disp }, _)) = memory_operand(&code[i + 2..], rex, 0, 0) else {
            continue;
        };
        let src = usize::from((code[i + 2] >> 3) & 7) | usize::from(rex & 4) << 1;
        out.push((base.wrapping_add(i as u64), ENC_TO_DWARF[src], disp));
    }
    out
}

/// Where a thread's frame took a lock and has not released it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeHold {
    /// Index into that thread's stack (the physical frame).
    pub frame: usize,
    /// The `lock cmpxchg` that took it.
    pub instruction: u64,
    pub operand: Operand,
    /// Acquisitions of the lock not released before the frame's resume point.
    pub count: usize,
    /// Of those, the RIP-relative ones (a `static` lock named in the code itself).
    pub rip_relative: usize,
}

impl<'v, 'a> CodeScanner<'v, 'a> {
    /// For each caller frame of thread `j` (innermost first): the
    /// acquisitions of `lock` its function executed before the point the
    /// frame resumes at and did not release since, by address order.
    ///
    /// The resume point is the return address, or where the jump right
    /// after it leads (a lock's slow path is a cold block, `call
    /// lock_contended; jmp back`, placed after the rest of the function).
    /// Operands are resolved with the registers the unwinder recovered for
    /// the frame: RIP-relative ones always, a base register only if it is
    /// callee-saved (its value at the call is still the value it has).
    /// An acquisition after the resume point ("about to lock") never counts.
    pub fn holds_in(&self, j: usize, lock: u64) -> Vec<CodeHold> {
        let Some(stack) = self.view.stacks.get(j) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, f) in stack
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.inlined)
            .take(MAX_FRAMES)
        {
            let Some(ctx) = f.context.as_deref() else { continue };
            if ctx.probe == f.pc {
                continue; // the innermost frame (a system call) or a signal frame: not at a call
            }
            let Some((start, end)) = ctx.function.filter(|(s, e)| s < e && e - s <= MAX_FUNCTION_BYTES) else {
                continue;
            };
            let (ops, copies, spills) = self.ops_of(start, end);
            let resume = self.resume_point(f.pc, start, end);
            // A base register the frame no longer has (a caller-saved argument
            // register) is resolved through a callee-saved register it was
            // copied to (`mov %rdi,%rbx`) or from, before the operation.
            let resolve = |at: u64, operand: Operand| -> Option<u64> {
                if let Some(v) = operand.resolve(&ctx.regs) {
                    return Some(v);
                }
                let Operand::Base { reg, disp } = operand else {
                    return None;
                };
                copies
                    .iter()
                    .filter(|(c, _, _)| *c < at)
                    .filter_map(|&(_, src, dst)| match (src == reg, dst == reg) {
                        (true, false) => Some(dst),
                        (false, true) => Some(src),
                        _ => None,
                    })
                    .filter(|&other| matches!(other, 3 | 6 | 12..=15))
                    .find_map(|other| Operand::Base { reg: other, disp }.resolve(&ctx.regs))
                    .filter(|&v| v == lock)
                    .or_else(|| {
                        // Or spilled to the frame's stack (`mov %rdi,0x10(%rsp)`), read at the frame's SP.
                        spills
                            .iter()
                            .filter(|(c, r, _)| *r == reg && c.abs_diff(at) < 64)
                            .filter_map(|&(_, _, slot)| {
                                let a = f.cfa.checked_add_signed(slot)?;
                                self.view.memory.read_u64(a).ok()
                            })
                            .map(|v| v.wrapping_add(disp as u64))
                            .find(|&v| v == lock)
                    })
            };
            let mut held: Vec<(u64, Operand)> = Vec::new();
            for &(at, op, operand) in ops.iter().filter(|(at, _, _)| *at < resume) {
                if resolve(at, operand) != Some(lock) {
                    continue;
                }
                match op {
                    LockOp::Acquire => held.push((at, operand)),
                    LockOp::Release => held.clear(),
                }
            }
            if let Some(&(instruction, operand)) = held.first() {
                out.push(CodeHold {
                    frame: k,
                    instruction,
                    operand,
                    count: held.len(),
                    rip_relative: held.iter().filter(|(_, o)| matches!(o, Operand::Rip(_))).count(),
                });
            }
        }
        out
    }

    fn ops_of(&self, start: u64, end: u64) -> FunctionOps {
        if let Some(o) = self.ops.borrow().get(&start) {
            return o.clone();
        }
        let found = self
            .view
            .memory
            .read_vec(start, (end - start) as usize)
            .map(|code| {
                (
                    lock_ops(&code, start),
                    register_copies(&code, start),
                    stack_spills(&code, start),
                )
            })
            .unwrap_or_default();
        self.ops.borrow_mut().insert(start, found.clone());
        found
    }

    /// `pc`, or the target of an unconditional jump (`jmp rel8`/`rel32`) at `pc` inside the function.
    fn resume_point(&self, pc: u64, start: u64, end: u64) -> u64 {
        let Ok(code) = self.view.memory.read_vec(pc, 5) else {
            return pc;
        };
        let target = match code.as_slice() {
            [0xEB, d, ..] => pc.wrapping_add(2).wrapping_add(*d as i8 as i64 as u64),
            [0xE9, a, b, c, d] => pc
                .wrapping_add(5)
                .wrapping_add(i32::from_le_bytes([*a, *b, *c, *d]) as i64 as u64),
            _ => return pc,
        };
        if (start..end).contains(&target) {
            target
        } else {
            pc
        }
    }
}

/// Length of the function symbol that starts at `start`: the symbol lookup
/// has no sizes, so find where it stops answering "this symbol, offset n"
/// (exponential, then binary search; bounded by [`MAX_FUNCTION_BYTES`]).
fn function_len(view: &ProcessView<'_>, start: u64) -> Option<u64> {
    let (name, off) = view.symbols.symbol_at(start)?;
    if off != 0 {
        return None;
    }
    let inside = |n: u64| {
        start
            .checked_add(n)
            .and_then(|a| view.symbols.symbol_at(a))
            .is_some_and(|(m, o)| o == n && m == name)
    };
    // `inside(lo)` holds and `inside(hi)` does not (or hi is the cap).
    let mut lo = 0u64;
    let mut hi = 64u64;
    while hi < MAX_FUNCTION_BYTES && inside(hi) {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    if hi >= MAX_FUNCTION_BYTES {
        if inside(MAX_FUNCTION_BYTES - 1) {
            return Some(MAX_FUNCTION_BYTES);
        }
        hi = MAX_FUNCTION_BYTES - 1;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if inside(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo + 1)
}

/// Every `lock cmpxchg r, [rip+disp32]` in `code` (loaded at `base`), as
/// (target address, instruction address). Encoding (Intel SDM, CMPXCHG):
/// `F0` (LOCK), an optional REX prefix `40`-`4F`, `0F B1`, a ModRM byte with
/// mod = 00 and r/m = 101 (RIP-relative), then the 32-bit displacement,
/// relative to the end of the instruction (which ends with the displacement).
/// Decoding from every byte offset may find a false match inside another
/// instruction, but only one whose target is exactly the lock counts.
pub fn locked_cmpxchg_targets(code: &[u8], base: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= code.len() {
        if code[i] != 0xF0 {
            i += 1;
            continue;
        }
        let rex = usize::from((0x40..=0x4F).contains(&code[i + 1]));
        let op = i + 1 + rex;
        let (Some(&[0x0F, 0xB1, modrm]), Some(disp)) = (
            code.get(op..op + 3).and_then(|s| <&[u8; 3]>::try_from(s).ok()),
            code.get(op + 3..op + 7).and_then(|s| <[u8; 4]>::try_from(s).ok()),
        ) else {
            i += 1;
            continue;
        };
        if modrm & 0xC7 != 0x05 {
            i += 1;
            continue;
        }
        let end = base.wrapping_add((op + 7) as u64);
        let target = end.wrapping_add(i32::from_le_bytes(disp) as i64 as u64);
        out.push((target, base.wrapping_add(i as u64)));
        i = op + 7;
    }
    out
}

/// The register number (x86 encoding, REX.R included) of `%rdi`.
const RDI: u8 = 7;

/// Where a PLT stub jumps: `[endbr64] [bnd] jmp *disp32(%rip)` reads the
/// target from its GOT slot (resolved once the call has run).
fn plt_target(view: &ProcessView<'_>, stub: u64) -> Option<u64> {
    let code = view.memory.read_vec(stub, 16).ok()?;
    let mut i = 0;
    if code[..4] == [0xF3, 0x0F, 0x1E, 0xFA] {
        i = 4;
    }
    if code[i] == 0xF2 {
        i += 1;
    }
    if code[i..i + 2] != [0xFF, 0x25] {
        return None;
    }
    let disp = i32::from_le_bytes(code[i + 2..i + 6].try_into().ok()?);
    let slot = (stub + i as u64 + 6).wrapping_add(disp as i64 as u64);
    view.memory.read_u64(slot).ok()
}

/// Every `lea disp32(%rip), %r64` in `code` (loaded at `base`), as (target
/// address, instruction address, destination register). Encoding (Intel
/// SDM, LEA): a REX.W prefix `48`-`4F` with W set, `8D`, a ModRM byte with
/// mod = 00 and r/m = 101 (RIP-relative; reg the destination, REX.R its high
/// bit), then the 32-bit displacement, relative to the end of the
/// instruction. As with [`locked_cmpxchg_targets`], a false match inside
/// another instruction only counts if its target is exactly the lock.
pub fn rip_lea_targets(code: &[u8], base: u64) -> Vec<(u64, u64, u8)> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 7 <= code.len() {
        let rex = code[i];
        if !(0x48..=0x4F).contains(&rex) || code[i + 1] != 0x8D || code[i + 2] & 0xC7 != 0x05 {
            i += 1;
            continue;
        }
        let disp = i32::from_le_bytes([code[i + 3], code[i + 4], code[i + 5], code[i + 6]]);
        let end = base.wrapping_add((i + 7) as u64);
        let reg = ((code[i + 2] >> 3) & 7) | ((rex & 0x04) << 1);
        out.push((end.wrapping_add(disp as i64 as u64), base.wrapping_add(i as u64), reg));
        i += 7;
    }
    out
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::runtimes::owners::testing::Symbols;
    use crate::runtimes::SymbolLookup;

    /// `lock cmpxchg %ecx, disp(%rip)` at `at` targeting `target`.
    pub fn cmpxchg(at: u64, target: u64, rex: Option<u8>) -> Vec<u8> {
        let mut v = vec![0xF0];
        v.extend(rex);
        v.extend([0x0F, 0xB1, 0x0D]);
        let end = at + v.len() as u64 + 4;
        v.extend(((target as i64 - end as i64) as i32).to_le_bytes());
        v
    }

    /// A symbol table whose addresses in `[module.0, module.1)` belong to a module.
    pub struct InModule(pub Symbols, pub (u64, u64));

    impl SymbolLookup for InModule {
        fn symbol_address(&self, n: &str) -> Option<u64> {
            self.0.symbol_address(n)
        }
        fn symbol_at(&self, a: u64) -> Option<(String, u64)> {
            self.0.symbol_at(a)
        }
        fn section(&self, n: &str) -> Option<(u64, u64)> {
            self.0.section(n)
        }
        fn module_at(&self, a: u64) -> Option<String> {
            (self.1 .0..self.1 .1).contains(&a).then(|| "/t".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{cmpxchg, InModule};
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};
    use crate::runtimes::frames::testing::stack;
    use crate::runtimes::owners::testing::{snapshot, thread, Symbols};

    #[test]
    fn decodes_rip_relative_lock_cmpxchg() {
        // objdump of rust_abba: `28a06: f0 0f b1 0d 62 83 04 00  lock cmpxchg %ecx,0x48362(%rip) # 70d70`.
        let code = [0x90, 0xF0, 0x0F, 0xB1, 0x0D, 0x62, 0x83, 0x04, 0x00, 0xC3];
        assert_eq!(locked_cmpxchg_targets(&code, 0x28a05), vec![(0x70d70, 0x28a06)]);
        // With a REX prefix (r9d as the source register) and a negative displacement.
        let mut code = vec![0x90; 4];
        code.extend(cmpxchg(0x1004, 0x800, Some(0x44)));
        code.extend([0xC3; 4]);
        assert_eq!(locked_cmpxchg_targets(&code, 0x1000), vec![(0x800, 0x1004)]);
        // Not RIP-relative ([rdi]: modrm 0x0F), an `xchg` (the unlock), and a truncated tail.
        assert!(locked_cmpxchg_targets(&[0xF0, 0x0F, 0xB1, 0x0F, 0, 0, 0, 0], 0).is_empty());
        assert!(locked_cmpxchg_targets(&[0x87, 0x05, 0, 0, 0, 0, 0, 0], 0).is_empty());
        assert!(locked_cmpxchg_targets(&[0xF0, 0x0F, 0xB1, 0x05, 0], 0).is_empty());
    }

    #[test]
    fn finds_the_threads_whose_functions_take_the_lock() {
        const LOCK: u64 = 0x9000;
        const OTHER: u64 = 0x9008;
        // Three functions: `worker` (0x1000, 0x100 bytes) takes LOCK and OTHER,
        // `idle` (0x2000) takes OTHER only, `main` (0x3000) takes nothing.
        let mut text = vec![0x90u8; 0x3000];
        let place = |text: &mut Vec<u8>, at: u64, bytes: Vec<u8>| {
            let o = (at - 0x1000) as usize;
            text[o..o + bytes.len()].copy_from_slice(&bytes);
        };
        place(&mut text, 0x1010, cmpxchg(0x1010, LOCK, None));
        place(&mut text, 0x1040, cmpxchg(0x1040, OTHER, Some(0x48)));
        place(&mut text, 0x2010, cmpxchg(0x2010, OTHER, None));
        let mem = BufferMemory {
            regions: vec![CopiedRegion {
                start: 0x1000,
                bytes: text,
            }],
        };
        let syms = Symbols(vec![
            ("worker".into(), 0x1000, 0x100),
            ("idle".into(), 0x2000, 0x100),
            ("main".into(), 0x3000, 0x100),
            ("LOCK".into(), LOCK, 8),
        ]);
        let frames = |fs: &[(&str, u64, u64)]| {
            let mut s = stack(&fs.iter().map(|(n, _, _)| (*n, "/t")).collect::<Vec<_>>());
            for (f, (_, pc, start)) in s.frames.iter_mut().zip(fs) {
                f.pc = *pc;
                f.offset = Some(pc - start);
            }
            s
        };
        let stacks = vec![
            frames(&[("main", 0x3050, 0x3000)]),
            frames(&[("idle", 0x2080, 0x2000), ("main", 0x3020, 0x3000)]),
            frames(&[("worker", 0x1080, 0x1000), ("main", 0x3020, 0x3000)]),
        ];
        let snap = snapshot(
            5,
            vec![thread(1, None, 0), thread(2, None, 0), thread(3, None, 0)],
            vec![],
        );
        let syms = InModule(syms, (0x1000, 0xa000));
        let view = ProcessView {
            snapshot: &snap,
            stacks: &stacks,
            memory: &mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
            symbols: &syms,
        };
        assert_eq!(function_len(&view, 0x1000), Some(0x100));
        let scan = CodeScanner::new(&view);
        let a = scan.acquirers(LOCK, &[]);
        assert_eq!(
            a,
            vec![Acquirer {
                thread: 2,
                frame: 0,
                instruction: 0x1010
            }]
        );
        assert!(a[0].describe(&view).starts_with("thread 3 is inside frame #0 (worker)"));
        let both: Vec<usize> = scan.acquirers(OTHER, &[]).iter().map(|a| a.thread).collect();
        assert_eq!(both, vec![1, 2]);
        assert!(scan.acquirers(OTHER, &[1, 2]).is_empty());
        // A lock outside every module (heap) is not looked for.
        assert!(scan.acquirers(0x7000_0000, &[]).is_empty());
    }

    #[test]
    fn decodes_lock_operations_and_their_operands() {
        // lock cmpxchg %ecx,0x10(%rbx); lock cmpxchg %edx,(%r14) (REX.B);
        // xchg %eax,0x48362(%rip); lock xadd %eax,0x8(%r12) (SIB, REX.B);
        // lock cmpxchg with an index register (skipped).
        let code = [
            0xF0, 0x0F, 0xB1, 0x4B, 0x10, // 0x100
            0xF0, 0x41, 0x0F, 0xB1, 0x16, // 0x105
            0x87, 0x05, 0x62, 0x83, 0x04, 0x00, // 0x10a
            0xF0, 0x41, 0x0F, 0xC1, 0x44, 0x24, 0x08, // 0x110
            0xF0, 0x0F, 0xB1, 0x0C, 0x8B, // 0x117: [rbx+rcx*4]
        ];
        let ops = lock_ops(&code, 0x100);
        assert_eq!(
            ops,
            vec![
                (0x100, LockOp::Acquire, Operand::Base { reg: 3, disp: 0x10 }),
                (0x105, LockOp::Acquire, Operand::Base { reg: 14, disp: 0 }),
                (0x10a, LockOp::Release, Operand::Rip(0x110 + 0x48362)),
                (0x110, LockOp::Release, Operand::Base { reg: 12, disp: 8 }),
            ]
        );
        let mut regs = [None; 17];
        regs[3] = Some(0x9000);
        let regs = FrameRegs::from(&regs);
        assert_eq!(ops[0].2.resolve(&regs), Some(0x9010));
        assert_eq!(ops[1].2.resolve(&regs), None);
        assert_eq!(ops[0].2.describe(), "[rbx+0x10]");
    }

    #[test]
    fn parking_lot_byte_cmpxchg_takes_or_releases_by_its_expected_constant() {
        // As rustc 1.95 compiles parking_lot's RawMutex::lock and unlock on a static:
        // mov $1,%cl; xor %eax,%eax; lock cmpxchg %cl,X(%rip)   (take: 0 -> 1)
        // xor %ecx,%ecx; mov $1,%al; lock cmpxchg %cl,X(%rip)   (release: 1 -> 0)
        // mov $8,%eax; lock cmpxchg %rcx,(%rbx) (REX.W)        (RwLock write unlock)
        // lock cmpxchg %cl,(%rbx) with %al loaded from memory    (unknown: skipped)
        let code = [
            0xB1, 0x01, 0x31, 0xC0, 0xF0, 0x0F, 0xB0, 0x0D, 0x00, 0x10, 0x00, 0x00, // 0x100
            0x31, 0xC9, 0xB0, 0x01, 0xF0, 0x0F, 0xB0, 0x0D, 0xF4, 0x0F, 0x00, 0x00, // 0x10c
            0xB8, 0x08, 0x00, 0x00, 0x00, 0xF0, 0x48, 0x0F, 0xB1, 0x0B, // 0x118
            0x8A, 0x03, 0xF0, 0x0F, 0xB0, 0x0B, // 0x122
        ];
        let ops = lock_ops(&code, 0x100);
        assert_eq!(
            ops,
            vec![
                (0x104, LockOp::Acquire, Operand::Rip(0x10c + 0x1000)),
                (0x110, LockOp::Release, Operand::Rip(0x118 + 0xff4)),
                (0x11d, LockOp::Release, Operand::Base { reg: 3, disp: 0 }),
            ]
        );
        assert_eq!(expected_constant(&[0x31, 0xC9, 0xB0, 0x01]), Some(1));
        assert_eq!(expected_constant(&[0xB1, 0x01, 0x31, 0xC0]), Some(0));
        assert_eq!(expected_constant(&[0x8A, 0x03]), None);
    }
}
