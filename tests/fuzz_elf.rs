//! Property tests (fuzzing on stable) for ELF, DWARF and CFI parsing: real
//! binaries (a shared library and an executable built with -g from
//! fixtures/reliability/) with bytes flipped in one region (a section such
//! as .eh_frame, .eh_frame_hdr, .debug_info, .symtab; the ELF, program or
//! section headers; anywhere), or truncated, are parsed with
//! `ElfModule::parse`, then symbolized and unwound through. Any outcome but
//! a panic or a hang is fine: an error, fewer symbols, "??".
//!
//! CI: 256 cases per property; long: `PROPTEST_CASES=100000 cargo test --release --test fuzz_elf`.

// MappedModule (lockdump's type) holds an Arc<ElfModule>, which is not Sync.
#![allow(clippy::arc_with_non_send_sync)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use lockdump::test_support::capture::{CopiedRegion, RegisterSource, Registers, ThreadSnapshot};
use lockdump::test_support::ids::Tid;
use lockdump::test_support::memory::BufferMemory;
use lockdump::test_support::symbols::{ElfModule, MappedModule, ProcessSymbols};
use lockdump::test_support::unwind::Unwinder;
use object::{Object, ObjectSection, ObjectSymbol};
use proptest::prelude::*;

const LOAD_BASE: u64 = 0x5000_0000_0000;
const STACK_BASE: u64 = 0x7e00_0000_0000;

/// Regions a mutation may target.
const REGIONS: [&str; 14] = [
    ".eh_frame",
    ".eh_frame_hdr",
    ".debug_info",
    ".debug_abbrev",
    ".debug_line",
    ".debug_str",
    ".debug_aranges",
    ".debug_rnglists",
    ".symtab",
    ".strtab",
    ".dynsym",
    "elf header",
    "headers",
    "anywhere",
];

struct Base {
    bytes: Vec<u8>,
    /// (name, file offset, size) of every section with file contents.
    sections: Vec<(String, usize, usize)>,
    /// Link-time addresses of the functions.
    functions: Vec<u64>,
}

fn bases() -> &'static [Base; 2] {
    static B: OnceLock<[Base; 2]> = OnceLock::new();
    B.get_or_init(|| {
        [
            base(common::reliability::shared_lib("corruptlib")),
            base(common::reliability::fixture("busy")),
        ]
    })
}

fn base(path: PathBuf) -> Base {
    let bytes = std::fs::read(&path).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let sections = file
        .sections()
        .filter_map(|s| {
            let (o, n) = s.file_range()?;
            Some((s.name().ok()?.to_string(), o as usize, n as usize))
        })
        .collect::<Vec<_>>();
    let functions = file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
        .map(|s| s.address())
        .collect::<Vec<_>>();
    assert!(!functions.is_empty() && sections.iter().any(|s| s.0 == ".debug_info"));
    Base {
        bytes,
        sections,
        functions,
    }
}

/// The file range a region name denotes in `b`.
fn region(b: &Base, name: &str) -> (usize, usize) {
    let len = b.bytes.len();
    match name {
        "elf header" => (0, 64),
        // Program headers follow the ELF header; section headers sit at e_shoff.
        "headers" => {
            let shoff = u64::from_le_bytes(b.bytes[0x28..0x30].try_into().unwrap()) as usize;
            if shoff < len && shoff % 2 == 0 {
                (shoff, len - shoff)
            } else {
                (0, 64 + 56 * 16)
            }
        }
        "anywhere" => (0, len),
        s => b
            .sections
            .iter()
            .find(|(n, _, _)| n == s)
            .map(|&(_, o, n)| (o, n))
            .unwrap_or((0, len)),
    }
}

#[derive(Debug, Clone)]
struct Mutation {
    which: bool,
    region: usize,
    flips: Vec<(usize, u8)>,
    /// Also cut the file at this fraction (per mille) of its length.
    truncate: Option<u16>,
    /// Stack words for the unwind pass (noise or addresses in the module).
    stack: Vec<(bool, u64)>,
    pcs: Vec<u64>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<bool>(),
        0..REGIONS.len(),
        prop::collection::vec((any::<usize>(), 1u8..=255), 1..32),
        prop::option::weighted(0.1, 0u16..1000),
        prop::collection::vec((any::<bool>(), any::<u64>()), 0..256),
        prop::collection::vec(any::<u64>(), 1..16),
    )
        .prop_map(|(which, region, flips, truncate, stack, pcs)| Mutation {
            which,
            region,
            flips,
            truncate,
            stack,
            pcs,
        })
}

/// Parse, symbolize and unwind through the mutated file. The bytes are
/// leaked for `ElfModule`'s `'static` borrow and reclaimed once every
/// borrower (module, symbols, frames) is gone, so long runs do not grow.
fn exercise(b: &Base, m: &Mutation) {
    let mut bytes = b.bytes.clone();
    let (off, len) = region(b, REGIONS[m.region]);
    for &(at, x) in &m.flips {
        if len > 0 {
            let i = off + at % len;
            if let Some(byte) = bytes.get_mut(i) {
                *byte ^= x;
            }
        }
    }
    if let Some(t) = m.truncate {
        bytes.truncate(bytes.len() * t as usize / 1000);
    }
    let raw: *mut [u8] = Box::into_raw(bytes.into_boxed_slice());
    // SAFETY: `raw` stays allocated until the end of this function, after
    // everything that borrows from `data` has been dropped.
    let data: &'static [u8] = unsafe { &*raw };
    {
        if let Ok(module) = ElfModule::parse(PathBuf::from("fuzz.so"), data, |_, _| None) {
            let bias = module.load_bias(&[(LOAD_BASE, 0)]).unwrap_or(LOAD_BASE);
            let span = module
                .segments
                .iter()
                .map(|s| s.vaddr.saturating_add(s.memsz))
                .max()
                .unwrap_or(0x1000)
                .clamp(0x1000, 1 << 32);
            let symbols = ProcessSymbols::from_modules(vec![MappedModule {
                start: LOAD_BASE,
                end: LOAD_BASE + span,
                bias,
                module: Arc::new(module),
                name: "fuzz.so".into(),
            }]);
            let in_module = |v: u64| LOAD_BASE + v % span;
            // Symbolize every real function (start and inside) and random pcs.
            for &f in &b.functions {
                let pc = f.wrapping_add(bias);
                let _ = symbols.symbolize(pc, pc);
                let _ = symbols.symbolize(pc.wrapping_add(5), pc.wrapping_add(4));
            }
            for &p in &m.pcs {
                let pc = in_module(p).max(1);
                let _ = symbols.symbolize(pc, pc - 1);
            }
            // Unwind from inside each function over a stack of noise and
            // return addresses into the module.
            let words: Vec<u8> = m
                .stack
                .iter()
                .flat_map(|&(code, v)| if code { in_module(v) } else { v }.to_le_bytes())
                .collect();
            let memory = BufferMemory {
                regions: vec![CopiedRegion {
                    start: STACK_BASE,
                    bytes: words,
                }],
            };
            let mut unwinder = Unwinder::default();
            unwinder.max_frames = 64;
            for (i, &f) in b.functions.iter().enumerate() {
                let regs = Registers {
                    rip: f.wrapping_add(bias).wrapping_add(m.pcs[i % m.pcs.len()] % 32),
                    rsp: STACK_BASE + 8 * (m.pcs[0] % 16),
                    rbp: STACK_BASE + 8 * (m.pcs[i % m.pcs.len()] % 64),
                    ..Default::default()
                };
                let t = ThreadSnapshot {
                    tid: Tid(1),
                    name: String::new(),
                    state: 'S',
                    wchan: String::new(),
                    regs,
                    register_source: RegisterSource::Ptrace,
                    syscall: None,
                    pending_signal: None,
                    left_running: None,
                    stack: CopiedRegion::default(),
                    ns_tid: 1,
                    switches: None,
                };
                let stack = unwinder.unwind(&t, &symbols, &memory);
                assert!(stack.frames.iter().filter(|fr| !fr.inlined).count() <= 64);
            }
        }
    }
    // SAFETY: allocated by Box::into_raw above; no borrow of it is alive.
    unsafe { drop(Box::from_raw(raw)) };
}

proptest! {
    #[test]
    fn corrupt_elf_dwarf_and_cfi_never_panic(m in mutation()) {
        let b = &bases()[m.which as usize];
        exercise(b, &m);
    }
}

#[test]
fn pristine_files_parse_and_symbolize() {
    // A damaged copy with the same build ID and size symbolized first must
    // not stand in for the real file afterwards (it once did: DWARF was
    // shared process-wide by build ID, so this failed whenever a mutation
    // of the property above ran first, and read the freed copy).
    for b in bases() {
        let (off, len) = region(b, ".debug_line");
        exercise(
            b,
            &Mutation {
                which: false,
                region: REGIONS.iter().position(|&r| r == ".debug_line").unwrap(),
                flips: (0..len.min(4096)).step_by(7).map(|i| (i, 0xff)).collect(),
                truncate: None,
                stack: Vec::new(),
                pcs: vec![off as u64],
            },
        );
    }
    // The baseline the mutations start from works, so the property above
    // really exercises the deep paths (not just "parse failed").
    for b in bases() {
        let data: &'static [u8] = Box::leak(b.bytes.clone().into_boxed_slice());
        let module = ElfModule::parse(PathBuf::from("pristine"), data, |_, _| None).unwrap();
        assert!(module.eh_frame.is_some() && module.eh_frame_hdr.is_some() && module.has_debug_info());
        let bias = module.load_bias(&[(LOAD_BASE, 0)]).unwrap();
        let symbols = ProcessSymbols::from_modules(vec![MappedModule {
            start: LOAD_BASE,
            end: LOAD_BASE + (1 << 24),
            bias,
            module: Arc::new(module),
            name: "pristine".into(),
        }]);
        // Every function gets a name; the fixture's own (not the C runtime's
        // start-up code) also a source line.
        let mut with_line = 0;
        for &f in &b.functions {
            let frames = symbols.symbolize(f + bias, f + bias);
            let last = frames.last().unwrap();
            assert!(last.function.is_some(), "no name at {f:#x}");
            with_line += usize::from(last.line.is_some());
        }
        assert!(with_line >= 1, "no function has a source line");
    }
}
