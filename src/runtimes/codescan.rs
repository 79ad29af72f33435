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
        let tid = view.snapshot.threads.get(self.thread).map_or(0, |t| t.tid);
        let name = view
            .stacks
            .get(self.thread)
            .and_then(|s| s.frames.get(self.frame))
            .and_then(|f| f.function.as_deref())
            .unwrap_or("?");
        format!(
            "thread {tid} is inside frame #{} ({name}), whose code takes the lock (lock cmpxchg on its address at {:#x})",
            self.frame, self.instruction
        )
    }
}

/// Finds the functions on threads' stacks that `lock cmpxchg` a given address.
/// Caches each function's targets, so many threads running the same code cost
/// one read.
pub struct CodeScanner<'v, 'a> {
    view: &'v ProcessView<'a>,
    /// Function start -> addresses its `lock cmpxchg`s target (with the instruction address).
    targets: RefCell<HashMap<u64, Vec<(u64, u64)>>>,
}

impl<'v, 'a> CodeScanner<'v, 'a> {
    pub fn new(view: &'v ProcessView<'a>) -> Self {
        CodeScanner {
            view,
            targets: RefCell::new(HashMap::new()),
        }
    }

    /// Every thread (not in `exclude`) with a function on its stack that
    /// acquires `lock` RIP-relatively, with the innermost such frame.
    /// Only locks inside a loaded module (statics) are looked for.
    pub fn acquirers(&self, lock: u64, exclude: &[usize]) -> Vec<Acquirer> {
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
                let hit = self
                    .targets_of(start)
                    .iter()
                    .find(|(t, _)| *t == lock)
                    .map(|&(_, at)| at);
                if let Some(instruction) = hit {
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
    use crate::runtimes::frames::testing::stack;
    use crate::runtimes::owners::testing::{snapshot, thread, Symbols};
    use crate::target::memory::{BufferMemory, CopiedRegion};

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
}
