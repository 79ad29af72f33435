//! Garbage in, error or "unknown" out: `inspect` over random memory must
//! never panic and must finish quickly, whatever the pointers say.

use std::time::{Duration, Instant};

use super::layout::{DEBUG_COOKIE, DEBUG_OFFSETS_313};
use crate::runtimes::{ProcessView, SymbolLookup};
use crate::target::memory::BufferMemory;
use crate::target::{CopiedRegion, RegisterSource, Registers, Snapshot, SyscallState, ThreadSnapshot};

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
            tid,
            name: format!("t{tid}"),
            state: 'S',
            wchan: String::new(),
            regs: Registers::default(),
            register_source: RegisterSource::None,
            syscall: Some(SyscallState {
                nr: 202,
                args: [BASE + ((r.next() % SIZE) & !3), 0x80 | ((r.next() % 2) * 9), 0, 0, 0, 0],
                restarted: false,
            }),
            pending_signal: None,
            stack: CopiedRegion::default(),
            ns_tid: tid,
        })
        .collect();
    Snapshot {
        pid: 4242,
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
    let table: &[(&str, u64)] = &[
        ("version", 0x030d_05f0),
        ("free_threaded", 0),
        ("runtime_state.size", 0x452b8),
        ("runtime_state.interpreters_head", 0x278),
        ("interpreter_state.size", 0x2f998),
        ("interpreter_state.next", 0x1c60),
        ("interpreter_state.threads_head", 0x1cb0),
        ("interpreter_state.imports_modules", 0x1de8),
        ("interpreter_state.ceval_gil", 0x10),
        ("interpreter_state.gil_runtime_state", 0x1e48),
        ("interpreter_state.gil_runtime_state_locked", 0x1e58),
        ("interpreter_state.gil_runtime_state_holder", 0x1e50),
        ("thread_state.size", 0x130),
        ("thread_state.next", 8),
        ("thread_state.current_frame", 0x48),
        ("thread_state.thread_id", 0x98),
        ("thread_state.native_thread_id", 0xa0),
        ("interpreter_frame.size", 0x50),
        ("interpreter_frame.previous", 8),
        ("interpreter_frame.executable", 0),
        ("interpreter_frame.instr_ptr", 0x38),
        ("interpreter_frame.localsplus", 0x48),
        ("interpreter_frame.owner", 0x46),
        ("code_object.size", 0xd0),
        ("code_object.filename", 0x70),
        ("code_object.name", 0x78),
        ("code_object.qualname", 0x80),
        ("code_object.linetable", 0x88),
        ("code_object.firstlineno", 0x44),
        ("code_object.argcount", 0x34),
        ("code_object.localsplusnames", 0x60),
        ("code_object.localspluskinds", 0x68),
        ("code_object.co_code_adaptive", 0xc8),
        ("pyobject.size", 16),
        ("pyobject.ob_type", 8),
        ("type_object.size", 0x1a0),
        ("type_object.tp_name", 0x18),
        ("type_object.tp_flags", 0xa8),
        ("tuple_object.ob_item", 0x18),
        ("tuple_object.ob_size", 0x10),
        ("dict_object.ma_keys", 0x20),
        ("dict_object.ma_values", 0x28),
        ("long_object.lv_tag", 0x10),
        ("long_object.ob_digit", 0x18),
        ("unicode_object.state", 0x20),
        ("unicode_object.length", 0x10),
        ("unicode_object.asciiobject_size", 0x28),
    ];
    // The interpreter head (runtime + 0x278) must stay a pointer: keep the
    // table to its first 73 words, which end before it.
    assert!(DEBUG_OFFSETS_313.len() * 8 < 0x278);
    for seed in 0..150u64 {
        let mut words = garbage(seed);
        words[0] = u64::from_le_bytes(*DEBUG_COOKIE);
        for (name, v) in table {
            let i = DEBUG_OFFSETS_313.iter().position(|f| f == name).unwrap();
            words[i] = *v;
        }
        run(words.clone(), seed, None);
        // And a table of pure garbage after the cookie.
        let mut bad = garbage(seed ^ 0xdead);
        bad[0] = words[0];
        bad[1] = 0x030d_00f0;
        run(bad, seed, None);
    }
}
