//! DWARF lookups that parse only the units they need (src/symbols/units.rs)
//! answer exactly as addr2line's full context does: same frames (inlined
//! ones included), names, files and lines, at every function of libc (with
//! libc6-dbg, 4126 units) and of a C fixture built with inlining, whether
//! the units were prepared together or added one lookup at a time.

#![allow(clippy::arc_with_non_send_sync)]

use std::path::{Path, PathBuf};

use lockdump::test_support::symbols::{debuginfo, dwarf, ElfModule};
use object::{Object, ObjectSymbol};

/// (function raw name, file, line) of every frame addr2line gives at `svma`.
type Frames = Vec<(Option<String>, Option<String>, Option<u32>)>;

fn frames(ctx: &addr2line::Context<lockdump::test_support::symbols::file::Reader>, svma: u64) -> Frames {
    let mut out = Vec::new();
    if let Ok(mut it) = ctx.find_frames(svma).skip_all_loads() {
        while let Ok(Some(f)) = it.next() {
            out.push((
                f.function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok())
                    .map(|n| n.to_string()),
                f.location.as_ref().and_then(|l| l.file).map(str::to_string),
                f.location.as_ref().and_then(|l| l.line),
            ));
        }
    }
    out
}

/// The module at `path` with its DWARF (its own, or the separate debug
/// file), and the addresses to look up: every function symbol's start,
/// and a few bytes in.
fn load(path: &Path) -> (ElfModule, Vec<u64>) {
    let data =
        lockdump::test_support::symbols::file::map_file(path).unwrap_or_else(|e| panic!("map {}: {e}", path.display()));
    let module = ElfModule::parse(path.to_path_buf(), data, |id, link| {
        debuginfo::find_debug_file(Path::new("/"), path, id, link)
    })
    .expect("parse");
    assert!(
        module.has_debug_info(),
        "{} has no DWARF: is libc6-dbg installed? (apt-get install libc6-dbg)",
        path.display()
    );
    let file = object::File::parse(data).expect("parse");
    let mut addrs: Vec<u64> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
        .flat_map(|s| {
            [
                s.address(),
                s.address() + s.size().min(7) / 2,
                s.address() + s.size().saturating_sub(1),
            ]
        })
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    (module, addrs)
}

/// A context over all units of the module's debug file, as addr2line builds it.
fn full_context(module: &ElfModule, path: &Path) -> addr2line::Context<lockdump::test_support::symbols::file::Reader> {
    let debug = match &module.debug_path {
        Some(p) if p != path => PathBuf::from("/").join(p.strip_prefix("/").unwrap_or(p)),
        _ => path.to_path_buf(),
    };
    let data = lockdump::test_support::symbols::file::map_file(&debug).expect("map debug file");
    let prepared = dwarf::prepared(module.build_id.as_deref(), data).expect("prepare");
    addr2line::Context::from_dwarf(prepared.sections.dwarf()).expect("context")
}

/// Returns how many addresses have inlined frames.
fn compare(path: &Path, min_named: usize) -> usize {
    let (together, addrs) = load(path);
    let full = full_context(&together, path);
    // All at once: one context showing every unit the addresses need.
    together.prepare_dwarf(addrs.iter().copied());
    let (mut named, mut inlined) = (0, 0);
    for &a in &addrs {
        let want = frames(&full, a);
        named += usize::from(want.iter().any(|f| f.2.is_some()));
        inlined += usize::from(want.len() > 1);
        let got = frames(together.dwarf_at(a).expect("a context"), a);
        assert_eq!(got, want, "{} at {a:#x}", path.display());
    }
    assert!(
        named >= min_named,
        "only {named} addresses have a line in {}",
        path.display()
    );
    // One at a time, from a fresh module: each new unit adds a context
    // (then the full one answers); every answer is the same.
    let (one_by_one, _) = load(path);
    let step = (addrs.len() / 40).max(1);
    for &a in addrs.iter().step_by(step) {
        let got = frames(one_by_one.dwarf_at(a).expect("a context"), a);
        assert_eq!(got, frames(&full, a), "{} at {a:#x}, one at a time", path.display());
    }
    inlined
}

#[test]
fn libc_lookups_match_the_full_context() {
    let inlined = compare(Path::new("/lib/x86_64-linux-gnu/libc.so.6"), 1000);
    assert!(inlined > 100, "only {inlined} libc addresses in inlined code");
}

#[test]
fn inlined_frames_of_a_fixture_match_the_full_context() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/c/nested_calls.c");
    assert!(src.exists(), "{} is missing", src.display());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dwarf_units_nested_calls");
    let status = std::process::Command::new("cc")
        .args(["-O2", "-g", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run cc (apt-get install gcc)");
    assert!(status.success(), "compiling {}", src.display());
    let inlined = compare(&out, 3);
    assert!(inlined >= 1, "no address of {} in inlined code", out.display());
}
