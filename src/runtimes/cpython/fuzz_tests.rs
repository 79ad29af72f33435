//! Garbage in, error or "unknown" out: `inspect` over random memory must
//! never panic and must finish quickly, whatever the pointers say.

use crate::ids::{Pid, Tid};
use std::time::{Duration, Instant};

use super::layout::{DEBUG_COOKIE, DEBUG_OFFSETS_313, PYENV_3130_DEBUG_OFFSETS};
use crate::capture::{CopiedRegion, RegisterSource, Registers, Snapshot, SyscallState, ThreadSnapshot};
use crate::memory::BufferMemory;
use crate::runtimes::{ProcessView, SymbolLookup};

const BASE: u64 = 0x10_0000;
const SIZE: u64 = 256 * 1024;

struct FakeSymbols {
    runtime: u64,
    py_version: Option<u64>,
}

impl SymbolLookup for FakeSymbols {
    fn symbol_address(&self, name: &str) -> Option<u64> {
        match name {
            "_PyRuntime" => Some(self.runtime),
            "Py_Version" => self.py_version,
            _ => None,
        }
    }
    fn symbol_at(&self, _addr: u64) -> Option<(String, u64)> {
        None
    }
    fn section(&self, _name: &str) -> Option<(u64, u64)> {
        None
    }
    fn module_at(&self, _addr: u64) -> Option<String> {
        None
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Memory whose words are mostly pointers back into itself, small integers
/// (which collide with the fake TIDs 1..8) and noise.
fn garbage(seed: u64) -> Vec<u64> {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..SIZE / 8)
        .map(|_| match r.next() % 8 {
            0..=4 => BASE + ((r.next() % SIZE) & !7),
            5 => BASE + (r.next() % SIZE),
            6 => r.next() % 16,
            _ => r.next(),
        })
        .collect()
}

fn snapshot(seed: u64) -> Snapshot {
    let mut r = Rng(seed | 1);
    let threads = (1..=8)
        .map(|tid| ThreadSnapshot {
            tid: Tid(tid),
            name: format!("t{tid}"),
            state: 'S',
            wchan: String::new(),
            regs: Registers::default(),
            register_source: RegisterSource::None,
            syscall: Some(SyscallState {
                nr: 202,
                args: [BASE + ((r.next() % SIZE) & !3), 0x80 | ((r.next() % 2) * 9), 0, 0, 0, 0],
                restarted: false,
                entering: false,
            }),
            pending_signal: None,
            left_running: None,
            stack: CopiedRegion::default(),
            ns_tid: tid,
            switches: None,
        })
        .collect();
    Snapshot {
        pid: Pid(4242),
        source: crate::capture::Source::live(4242, 4242),
        leader_exited: false,
        tracer: None,
        ns_pid: 4242,
        exe: "/nonexistent".into(),
        cmdline: Vec::new(),
        threads,
        maps: Vec::new(),
        auxv: Vec::new(),
        pause: Duration::ZERO,
        capture_time: Duration::ZERO,
        no_stop: true,
        wait_memory: Vec::new(),
        runtime_copy: Default::default(),
        copies_released: false,
    }
}

fn memory(words: &[u64]) -> BufferMemory {
    BufferMemory {
        regions: vec![CopiedRegion {
            start: BASE,
            bytes: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        }],
    }
}

fn run(words: Vec<u64>, seed: u64, py_version: Option<u64>) {
    let mem = memory(&words);
    let snap = snapshot(seed);
    let syms = FakeSymbols {
        runtime: BASE,
        py_version,
    };
    let view = ProcessView {
        snapshot: &snap,
        stacks: &[],
        memory: &mem,
        calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
        symbols: &syms,
    };
    let start = Instant::now();
    let _ = super::inspect(&view);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "seed {seed} took {:?}",
        start.elapsed()
    );
}

/// 3.11 and 3.12 tables over garbage.
#[test]
fn garbage_with_static_tables() {
    for seed in 0..150u64 {
        for version in [0x030b_07f0u64, 0x030c_01f0] {
            let mut words = garbage(seed);
            let last = words.len() - 1;
            words[last] = version;
            run(words, seed, Some(BASE + 8 * last as u64));
        }
    }
}

/// A plausible 3.13 debug-offsets table followed by garbage, and a garbage table.
#[test]
fn garbage_with_debug_offsets() {
    let version = ("version", 0x030d_05f0);
    let table: Vec<(&str, u64)> = std::iter::once(version)
        .chain(PYENV_3130_DEBUG_OFFSETS.iter().copied())
        .collect();
    // The interpreter head (runtime + 0x278) must stay a pointer: keep the
    // table to its first 73 words, which end before it.
    assert!(DEBUG_OFFSETS_313.len() * 8 < 0x278);
    for seed in 0..150u64 {
        let mut words = garbage(seed);
        words[0] = u64::from_le_bytes(*DEBUG_COOKIE);
        for &(name, v) in &table {
            let i = DEBUG_OFFSETS_313.iter().position(|f| *f == name).unwrap();
            words[i] = v;
        }
        run(words.clone(), seed, None);
        // And a table of pure garbage after the cookie.
        let mut bad = garbage(seed ^ 0xdead);
        bad[0] = words[0];
        bad[1] = 0x030d_00f0;
        run(bad, seed, None);
    }
}
