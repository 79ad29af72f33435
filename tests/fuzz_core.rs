//! Property tests (fuzzing on stable) for core files: a real core (gcore of
//! fixtures/c/long_sleep.c) with bytes changed in one region (the ELF
//! header, the program headers, the notes, the memory, anywhere) or cut
//! short is opened with `CoreFile::from_bytes`, analyzed through the whole
//! pipeline and rendered. Any outcome but a panic or a hang is fine: a
//! one-line error, fewer threads, unnamed frames, memory reported missing.
//!
//! CI: 64 cases; long: `PROPTEST_CASES=10000 cargo test --release --test fuzz_core`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use common::{c_fixture, unique_path, Fixture, Variant};
use lockdump::test_support::capture::corefile::CoreFile;
use lockdump::test_support::inspect::{self, Options};
use lockdump::test_support::symbols::ModuleCache;
use proptest::prelude::*;

struct Base {
    bytes: Vec<u8>,
    /// (offset, size) of the program header table and of the notes.
    headers: (usize, usize),
    notes: (usize, usize),
}

fn base() -> &'static Base {
    static B: OnceLock<Base> = OnceLock::new();
    B.get_or_init(|| {
        let fx = Fixture::spawn_blocked(c_fixture("long_sleep", Variant::Debug, &[]));
        let prefix = unique_path("fuzz-core");
        let out = Command::new("gcore")
            .arg("-o")
            .arg(&prefix)
            .arg(fx.pid().to_string())
            .output()
            .expect("gcore (gdb; scripts/setup-tools.sh installs it)");
        let core = PathBuf::from(format!("{}.{}", prefix.display(), fx.pid()));
        assert!(out.status.success(), "gcore: {}", String::from_utf8_lossy(&out.stderr));
        drop(fx);
        let bytes = std::fs::read(&core).unwrap();
        let _ = std::fs::remove_file(&core);
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
        let phoff = u64_at(32);
        let phnum = u16::from_le_bytes(bytes[56..58].try_into().unwrap()) as usize;
        let note = (0..phnum)
            .map(|i| phoff + 56 * i)
            .find(|&ph| bytes[ph..ph + 4] == 4u32.to_le_bytes())
            .map(|ph| (u64_at(ph + 8), u64_at(ph + 32)))
            .expect("PT_NOTE");
        Base {
            headers: (phoff, 56 * phnum),
            notes: note,
            bytes,
        }
    })
}

#[derive(Debug, Clone)]
struct Mutation {
    /// 0 ELF header, 1 program headers, 2 notes, 3 anywhere, 4 cut short.
    region: u8,
    /// Positions (fractions of the region) and new values.
    edits: Vec<(f64, u8)>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (0u8..5, prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..12))
        .prop_map(|(region, edits)| Mutation { region, edits })
}

fn apply(b: &Base, m: &Mutation) -> Vec<u8> {
    let mut bytes = b.bytes.clone();
    let (start, len) = match m.region {
        0 => (0, 64),
        1 => b.headers,
        2 => b.notes,
        _ => (0, bytes.len()),
    };
    if m.region == 4 {
        let cut = (m.edits[0].0 * bytes.len() as f64) as usize;
        bytes.truncate(cut);
        return bytes;
    }
    for &(at, value) in &m.edits {
        let i = start + ((at * len as f64) as usize).min(len.saturating_sub(1));
        if let Some(byte) = bytes.get_mut(i) {
            *byte = value;
        }
    }
    bytes
}

fn exercise(bytes: Vec<u8>) {
    let core = match CoreFile::from_bytes(Path::new("fuzzed.core"), bytes, Path::new("/"), None) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.contains('\n'), "errors are one line: {e}");
            return;
        }
    };
    let opts = Options {
        capture: Default::default(),
        max_frames: lockdump::test_support::unwind::MAX_FRAMES,
        python: true,
        native: false,
    };
    let cache = ModuleCache::new();
    let mut inspections = vec![inspect::inspect_core(Arc::new(core), &opts, &cache)];
    let verdict = inspect::verdict(&mut inspections);
    let _ = lockdump::report::render_json(&inspections, &verdict);
    let _ = lockdump::report::render_text(&inspections, &verdict, &lockdump::report::style::Style::plain());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]
    #[test]
    fn damaged_cores_never_panic(m in mutation()) {
        exercise(apply(base(), &m));
    }
}

#[test]
fn the_pristine_core_gives_both_threads_and_no_hang() {
    let b = base();
    let core = CoreFile::from_bytes(Path::new("pristine.core"), b.bytes.clone(), Path::new("/"), None).unwrap();
    assert_eq!(core.threads.len(), 2);
    let opts = Options {
        capture: Default::default(),
        max_frames: lockdump::test_support::unwind::MAX_FRAMES,
        python: true,
        native: false,
    };
    let mut inspections = vec![inspect::inspect_core(Arc::new(core), &opts, &ModuleCache::new())];
    let verdict = inspect::verdict(&mut inspections);
    assert_eq!(verdict.kind(), lockdump::VerdictKind::NoHangFound, "{verdict:?}");
    let text = lockdump::report::render_text(&inspections, &verdict, &lockdump::report::style::Style::plain());
    assert!(text.contains("sleeper_main"), "{text}");
}
