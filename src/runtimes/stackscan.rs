//! Inferring the holder of a lock that records no owner.
//!
//! Rust's std locks (and several other runtimes' locks) keep no owner field.
//! A thread that holds one keeps a pointer to it alive until it unlocks: the
//! guard (`MutexGuard { lock: &Mutex, .. }`) sits in a stack slot or in a
//! callee-saved register, which the callees it has called since spill into
//! their own frames. Scanning the other threads' live stacks (from their stack
//! pointer upward; the copied red zone below it is dead) and registers for
//! the lock's address therefore finds the holder in practice.
//!
//! It is evidence, not proof: a stale copy of the pointer in a dead slot, a
//! thread that merely references the lock, or a holder that keeps only a
//! derived pointer all mislead it. So an owner found this way is always
//! [`Confidence::Inferred`](super::Confidence::Inferred), and more than one
//! candidate means "unknown".

use super::ProcessView;
use crate::capture::Registers;
use crate::stacks::Stack;

/// Bytes of one thread's copied stack scanned at most (the capture bounds it too).
pub const MAX_SCAN_BYTES: usize = 8 << 20;

/// The registers a function must preserve across calls (x86_64 SysV psABI
/// 3.2.1), by name: where a caller's live pointers survive its callees.
pub fn callee_saved(r: &Registers) -> [(&'static str, u64); 6] {
    [
        ("rbx", r.rbx),
        ("rbp", r.rbp),
        ("r12", r.r12),
        ("r13", r.r13),
        ("r14", r.r14),
        ("r15", r.r15),
    ]
}

/// Memory copied from `addr` (8-byte aligned, see [`align_word`]) as
/// `(address, value)` words; a trailing partial word is dropped.
pub fn words(addr: u64, bytes: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    bytes.chunks_exact(8).enumerate().map(move |(n, chunk)| {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        (addr.wrapping_add(8 * n as u64), u64::from_le_bytes(w))
    })
}

/// The first 8-byte aligned address at or above `addr` (where pointer-sized
/// stack slots start); `None` at the top of the address space.
pub fn align_word(addr: u64) -> Option<u64> {
    addr.checked_add(7).map(|a| a & !7)
}

/// Where a pointer to the lock was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A stack slot at this address.
    Stack(u64),
    /// A callee-saved register of the stopped thread.
    Register(&'static str),
}

/// A pointer to the lock in another thread's live state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// Index into `snapshot.threads`.
    pub thread: usize,
    pub location: Location,
    /// The frame whose area holds the slot (index into that thread's stack), if frames are known.
    pub frame: Option<usize>,
    /// The pointer is to the `Arc` allocation that contains the lock, not to the lock itself.
    pub via_arc: bool,
}

impl Reference {
    /// Evidence in words: `stack slot 0x7ff0... in frame 3 (abba::worker)`.
    pub fn describe(&self, view: &ProcessView<'_>) -> String {
        let tid = view.snapshot.threads.get(self.thread).map_or(0, |t| t.tid.get());
        let what = if self.via_arc {
            "a pointer to the Arc holding the lock"
        } else {
            "a pointer to the lock"
        };
        let place = match self.location {
            Location::Stack(a) => format!("stack slot {a:#x}"),
            Location::Register(r) => format!("register {r}"),
        };
        let frame = self.frame.map(|k| {
            let name = view
                .stacks
                .get(self.thread)
                .and_then(|s| s.frames.get(k))
                .and_then(|f| f.function.as_deref())
                .unwrap_or("?");
            format!(" in frame #{k} ({name})")
        });
        format!("thread {tid} has {what} in its {place}{}", frame.unwrap_or_default())
    }
}

/// The frame whose area holds the stack slot `addr`. A frame's `cfa` is its
/// own SP (see [`crate::stacks::Frame::cfa`]), so a physical frame's locals
/// lie from its `cfa` up to its caller's: the owner is the last frame whose
/// `cfa` is at or below `addr`. Of an inlined group (one SP) that is the
/// physical function, listed last; synthesized tail-call frames own no stack.
/// `None` above the outermost frame's SP, where the area's end is unknown.
fn frame_of(stack: &Stack, addr: u64) -> Option<usize> {
    let mut owner = None;
    for (k, f) in stack.frames.iter().enumerate() {
        if f.cfa == 0 || f.how == Some("tailcall") {
            continue;
        }
        if f.cfa > addr {
            return owner;
        }
        owner = Some(k);
    }
    None
}

/// The `Arc` header an `Arc<Lock>` puts before the lock (`ArcInner { strong, weak, data }`):
/// both counts small and non-zero.
fn looks_like_arc_inner(view: &ProcessView<'_>, inner: u64) -> bool {
    let strong = view.memory.read_u64(inner).unwrap_or(0);
    let weak = inner
        .checked_add(8)
        .and_then(|a| view.memory.read_u64(a).ok())
        .unwrap_or(0);
    (1..1 << 24).contains(&strong) && (1..1 << 24).contains(&weak)
}

/// Every reference to `lock` in thread `j`'s live stack and callee-saved registers.
pub fn references_in(view: &ProcessView<'_>, j: usize, lock: u64) -> Vec<Reference> {
    let Some(t) = view.snapshot.threads.get(j) else {
        return Vec::new();
    };
    let arc = lock.checked_sub(16).filter(|&a| looks_like_arc_inner(view, a));
    let empty = Stack::default();
    let stack = view.stacks.get(j).unwrap_or(&empty);
    let mut out = Vec::new();
    let mut check = |value: u64, location: Location, frame: Option<usize>| {
        if value == lock || (arc == Some(value) && value != 0) {
            out.push(Reference {
                thread: j,
                location,
                frame,
                via_arc: value != lock,
            });
        }
    };
    for (name, v) in callee_saved(&t.regs) {
        check(v, Location::Register(name), None);
    }
    let region = &t.stack;
    let sp = t.regs.rsp.max(region.start);
    let Some(start) = align_word(sp) else {
        return out;
    };
    let Some(off) = start.checked_sub(region.start) else {
        return out;
    };
    let bytes = region.bytes.get(off as usize..).unwrap_or(&[]);
    let bytes = &bytes[..bytes.len().min(MAX_SCAN_BYTES)];
    for (at, value) in words(start, bytes) {
        if value == lock || arc == Some(value) {
            check(value, Location::Stack(at), frame_of(stack, at));
        }
    }
    out
}

/// The result of looking for a lock's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inference {
    /// Exactly one thread (index) references the lock.
    One(usize, Vec<Reference>),
    /// Several threads do; listed by index.
    Several(Vec<usize>),
    None,
}

/// Look for the holder of `lock` among all threads except those in `exclude`
/// (the waiter, and threads waiting on the same lock: their references are their own wait).
/// Direct pointers count before pointers to an enclosing `Arc`.
pub fn infer_holder(view: &ProcessView<'_>, lock: u64, exclude: &[usize]) -> Inference {
    let mut direct: Vec<(usize, Vec<Reference>)> = Vec::new();
    let mut arc: Vec<(usize, Vec<Reference>)> = Vec::new();
    for j in 0..view.snapshot.threads.len() {
        if exclude.contains(&j) {
            continue;
        }
        let refs = references_in(view, j, lock);
        let (d, a): (Vec<Reference>, Vec<Reference>) = refs.into_iter().partition(|r| !r.via_arc);
        if !d.is_empty() {
            direct.push((j, d));
        } else if !a.is_empty() {
            arc.push((j, a));
        }
    }
    let pick = |mut v: Vec<(usize, Vec<Reference>)>| match v.len() {
        0 => Inference::None,
        1 => {
            let (j, r) = v.remove(0);
            Inference::One(j, r)
        }
        _ => Inference::Several(v.into_iter().map(|(j, _)| j).collect()),
    };
    match pick(direct) {
        Inference::None => pick(arc),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{BufferMemory, CopiedRegion};
    use crate::runtimes::frames::testing::stack;
    use crate::runtimes::owners::testing::{snapshot, thread, Symbols};

    fn stack_bytes(start: u64, words: &[u64]) -> CopiedRegion {
        CopiedRegion {
            start,
            bytes: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        }
    }

    #[test]
    fn words_are_aligned_and_addressed() {
        assert_eq!(align_word(0x7000_0001), Some(0x7000_0008));
        assert_eq!(align_word(0x7000_0008), Some(0x7000_0008));
        assert_eq!(align_word(u64::MAX - 3), None);
        let mut bytes: Vec<u8> = [0x11u64, 0x22].iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.extend([0xff; 5]);
        let got: Vec<(u64, u64)> = words(0x7000_0008, &bytes).collect();
        assert_eq!(got, [(0x7000_0008, 0x11), (0x7000_0010, 0x22)]);
    }

    #[test]
    fn finds_the_one_thread_with_a_live_pointer() {
        let lock = 0x5000u64;
        let mut t1 = thread(1, None, 0);
        let mut t2 = thread(2, None, 0);
        let mut t3 = thread(3, None, 0);
        // t1 (the waiter) references the lock; t2 only below its SP (dead); t3 above SP.
        t1.stack = stack_bytes(0x7000_0000, &[lock, 0, 0]);
        t1.regs.rsp = 0x7000_0000;
        t2.stack = stack_bytes(0x7100_0000, &[lock, 0, 0, 0]);
        t2.regs.rsp = 0x7100_0008;
        t3.stack = stack_bytes(0x7000_0080, &[0; 20].iter().copied().chain([lock]).collect::<Vec<_>>());
        t3.regs.rsp = 0x7000_0080;
        let snap = snapshot(9, vec![t1, t2, t3], vec![]);
        let stacks = vec![
            Default::default(),
            Default::default(),
            stack(&[
                ("syscall", "libc.so.6"),
                ("std::sys::x", ""),
                ("abba::worker", "/tmp/a"),
            ]),
        ];
        let mem = BufferMemory::default();
        let syms = Symbols::default();
        let view = ProcessView {
            snapshot: &snap,
            stacks: &stacks,
            memory: &mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
            symbols: &syms,
        };
        match infer_holder(&view, lock, &[0]) {
            Inference::One(j, refs) => {
                assert_eq!(j, 2);
                assert_eq!(refs.len(), 1);
                assert_eq!(refs[0].location, Location::Stack(0x7000_0120));
                // Frame SPs are 0x7000_0100, 0x7000_0200, ...: the slot is in frame 0's area.
                assert_eq!(refs[0].frame, Some(0));
                assert!(refs[0]
                    .describe(&view)
                    .starts_with("thread 3 has a pointer to the lock in its stack slot"));
            }
            other => panic!("{other:?}"),
        }
        // Including the waiter makes it ambiguous.
        assert_eq!(infer_holder(&view, lock, &[]), Inference::Several(vec![0, 2]));
    }

    #[test]
    fn a_slot_belongs_to_the_frame_whose_sp_is_just_below_it() {
        // SPs: #0 0x100; #1 (inlined) and #2 0x200; #3 (tail call) 0x200; #4 0x300.
        let mut s = stack(&[("leaf", ""), ("inl", ""), ("phys", ""), ("tail", ""), ("outer", "")]);
        for (f, sp) in s.frames.iter_mut().zip([0x100u64, 0x200, 0x200, 0x200, 0x300]) {
            f.cfa = sp;
        }
        s.frames[1].inlined = true;
        s.frames[3].how = Some("tailcall");
        assert_eq!(frame_of(&s, 0x0f8), None);
        assert_eq!(frame_of(&s, 0x100), Some(0));
        assert_eq!(frame_of(&s, 0x1f8), Some(0));
        assert_eq!(frame_of(&s, 0x200), Some(2));
        assert_eq!(frame_of(&s, 0x2f8), Some(2));
        // Above the outermost frame's SP its area's end is unknown.
        assert_eq!(frame_of(&s, 0x300), None);
    }

    #[test]
    fn registers_and_arc_pointers() {
        let lock = 0x5010u64;
        let mut t1 = thread(1, None, 0);
        t1.regs.r13 = lock - 16;
        let snap = snapshot(9, vec![t1], vec![]);
        // ArcInner { strong: 2, weak: 1 } right before the lock.
        let mem = BufferMemory {
            regions: vec![stack_bytes(0x5000, &[2, 1, 0])],
        };
        let syms = Symbols::default();
        let view = ProcessView {
            snapshot: &snap,
            stacks: &[],
            memory: &mem,
            calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
            symbols: &syms,
        };
        match infer_holder(&view, lock, &[]) {
            Inference::One(0, refs) => {
                assert!(refs[0].via_arc);
                assert_eq!(refs[0].location, Location::Register("r13"));
            }
            other => panic!("{other:?}"),
        }
        // Without a plausible Arc header, the same register value means nothing.
        let mem2 = BufferMemory::default();
        let view2 = ProcessView { memory: &mem2, ..view };
        assert_eq!(infer_holder(&view2, lock, &[]), Inference::None);
    }
}
