//! Property tests (fuzzing on stable) for the unwinder: arbitrary registers
//! over arbitrary stack bytes, unwound with the real modules (and their
//! real CFI) of this test process. Every run must end, within the frame
//! limit, without panicking.
//!
//! Stacks are not only random noise: words are drawn from noise, pointers
//! back into the same stack (fake frame-pointer chains, cycles included)
//! and return addresses into real code, so CFI rules and the frame-pointer
//! fallback are both exercised several frames deep.
//!
//! CI: 256 cases per property; long: `PROPTEST_CASES=100000 cargo test --release --test fuzz_unwind`.

use std::path::PathBuf;
use std::time::Duration;

use lockdump::test_support::capture::{CopiedRegion, RegisterSource, Registers, Snapshot, ThreadSnapshot};
use lockdump::test_support::ids::{Pid, Tid};
use lockdump::test_support::memory::BufferMemory;
use lockdump::test_support::proc::parse::{parse_auxv, parse_maps};
use lockdump::test_support::symbols::{ModuleCache, ProcessSymbols};
use lockdump::test_support::unwind::{Unwinder, MAX_FRAMES};
use proptest::prelude::*;

/// Where the fake stack lives (not mapped in this process, so the unwinder
/// can only read it through the BufferMemory).
const STACK_BASE: u64 = 0x7e00_0000_0000;

struct Fixture {
    symbols: ProcessSymbols,
    /// Ranges of executable file-backed mappings of this process.
    code: Vec<(u64, u64)>,
}

/// The real modules of this test process, loaded once per test thread
/// (addr2line contexts are not Sync).
fn fixture() -> &'static Fixture {
    thread_local! {
        static F: &'static Fixture = Box::leak(Box::new(load()));
    }
    F.with(|f| *f)
}

fn load() -> Fixture {
    let maps = parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
    let auxv = parse_auxv(&std::fs::read("/proc/self/auxv").unwrap());
    let code = maps
        .iter()
        .filter(|m| m.executable && m.is_file())
        .map(|m| (m.start, m.end))
        .collect::<Vec<_>>();
    let snapshot = Snapshot {
        pid: Pid(std::process::id() as i32),
        source: lockdump::Source::live(std::process::id() as i32, std::process::id() as i32),
        leader_exited: false,
        tracer: None,
        ns_pid: std::process::id() as i32,
        exe: PathBuf::from("/proc/self/exe"),
        cmdline: vec![],
        threads: vec![],
        maps,
        auxv,
        pause: Duration::ZERO,
        capture_time: Duration::ZERO,
        no_stop: false,
        wait_memory: vec![],
        runtime_copy: Default::default(),
        copies_released: false,
    };
    let cache = ModuleCache::new();
    let symbols = ProcessSymbols::load(&snapshot, &cache);
    assert!(
        symbols.modules().len() >= 3,
        "expected the test binary, libc and the vdso"
    );
    assert!(code.len() >= 2);
    Fixture { symbols, code }
}

/// An address inside real code (`pick` chooses mapping and offset).
fn code_addr(f: &Fixture, pick: u64) -> u64 {
    let (s, e) = f.code[(pick as usize) % f.code.len()];
    s + (pick >> 16) % (e - s)
}

#[derive(Debug, Clone)]
enum Word {
    Noise(u64),
    /// A pointer into the fake stack, as a word index.
    StackPtr(u16),
    /// A return address into real code.
    Code(u64),
    Zero,
}

fn word() -> impl Strategy<Value = Word> {
    prop_oneof![
        3 => any::<u64>().prop_map(Word::Noise),
        3 => any::<u16>().prop_map(Word::StackPtr),
        3 => any::<u64>().prop_map(Word::Code),
        1 => Just(Word::Zero),
    ]
}

fn resolve(f: &Fixture, w: &Word, words: usize) -> u64 {
    match *w {
        Word::Noise(v) => v,
        Word::StackPtr(i) => STACK_BASE + 8 * (u64::from(i) % words.max(1) as u64),
        Word::Code(p) => code_addr(f, p),
        Word::Zero => 0,
    }
}

#[derive(Debug, Clone)]
struct Case {
    stack: Vec<Word>,
    rip: Word,
    rsp: Word,
    rbp: Word,
    others: [u64; 14],
    proc_syscall: bool,
    max_frames: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(word(), 0..2048),
        prop_oneof![4 => any::<u64>().prop_map(Word::Code), 1 => any::<u64>().prop_map(Word::Noise)],
        prop_oneof![4 => any::<u16>().prop_map(Word::StackPtr), 1 => any::<u64>().prop_map(Word::Noise)],
        word(),
        any::<[u64; 14]>(),
        any::<bool>(),
        prop_oneof![Just(MAX_FRAMES), 1usize..64],
    )
        .prop_map(|(stack, rip, rsp, rbp, others, proc_syscall, max_frames)| Case {
            stack,
            rip,
            rsp,
            rbp,
            others,
            proc_syscall,
            max_frames,
        })
}

fn thread(regs: Registers, source: RegisterSource) -> ThreadSnapshot {
    ThreadSnapshot {
        tid: Tid(1),
        name: "fuzz".into(),
        state: 'S',
        wchan: String::new(),
        regs,
        register_source: source,
        syscall: None,
        pending_signal: None,
        left_running: None,
        stack: CopiedRegion::default(),
        ns_tid: 1,
        switches: None,
    }
}

proptest! {
    #[test]
    fn unwinding_arbitrary_stacks_ends_within_the_limit(c in case()) {
        let f = fixture();
        let n = c.stack.len();
        let bytes: Vec<u8> = c.stack.iter().flat_map(|w| resolve(f, w, n).to_le_bytes()).collect();
        let memory = BufferMemory { regions: vec![CopiedRegion { start: STACK_BASE, bytes }] };
        let o = c.others;
        let regs = Registers {
            rax: o[0], rbx: o[1], rcx: o[2], rdx: o[3], rsi: o[4], rdi: o[5],
            r8: o[6], r9: o[7], r10: o[8], r11: o[9], r12: o[10], r13: o[11], r14: o[12], r15: o[13],
            rbp: resolve(f, &c.rbp, n),
            rsp: resolve(f, &c.rsp, n),
            rip: resolve(f, &c.rip, n),
            orig_rax: u64::MAX,
            eflags: 0x246,
            fs_base: 0,
        };
        let source = if c.proc_syscall { RegisterSource::ProcSyscall } else { RegisterSource::Ptrace };
        let mut unwinder = Unwinder::default();
        unwinder.max_frames = c.max_frames;
        let stack = unwinder.unwind(&thread(regs, source), &f.symbols, &memory);
        // Physical frames are bounded by max_frames; each may expand into at
        // most 65 logical (inlined) frames.
        let physical = stack.frames.iter().filter(|fr| !fr.inlined).count();
        prop_assert!(physical <= c.max_frames, "{} physical frames > {}", physical, c.max_frames);
        prop_assert!(stack.frames.len() <= c.max_frames * 65);
        if stack.truncated {
            prop_assert_eq!(physical, c.max_frames);
        }
    }

    #[test]
    fn symbolizing_arbitrary_addresses(addrs in prop::collection::vec(any::<u64>(), 1..32), near in prop::collection::vec(any::<u64>(), 1..32)) {
        let f = fixture();
        for a in addrs.into_iter().chain(near.into_iter().map(|p| code_addr(f, p))) {
            let frames = f.symbols.symbolize(a, a.saturating_sub(1));
            prop_assert!(!frames.is_empty() && frames.len() <= 66);
            prop_assert!(frames.iter().all(|fr| fr.pc == a));
        }
    }
}
