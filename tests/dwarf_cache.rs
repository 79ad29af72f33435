//! The on-disk cache of decompressed debug sections (src/symbols/diskcache.rs)
//! never changes what lockdump prints: a run that fills the cache, a run that
//! reads it, a run with `--no-cache`, runs over a damaged cache and runs with
//! an unusable cache directory all print the same stacks, file:line and
//! inlined frames, whether the DWARF was prepared on the background thread
//! during capture or by the symbolizer afterwards.
//!
//! Needs libc6-dbg: its compressed `.debug_*` sections are what gets cached.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{c_fixture, fixture::output_with_timeout, unique_path, Fixture, Variant, TIMEOUT};
use serde_json::Value;

/// `lockdump -p PID --json` with the cache in `xdg/lockdump` (or none).
fn dump(pid: i32, xdg: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockdump"));
    cmd.args(["-p", &pid.to_string(), "--json"])
        .args(extra)
        .env("XDG_CACHE_HOME", xdg)
        .env_remove("LOCKDUMP_NO_CACHE");
    output_with_timeout(cmd, TIMEOUT)
}

/// The report without what legitimately differs between runs (timings).
fn report(out: &Output) -> Value {
    // threads_idle is stuck (main joins a worker nobody can wake): exit 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "lockdump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut doc: Value = serde_json::from_slice(&out.stdout).expect("lockdump printed JSON");
    // Timings, and the moment of the capture, differ from run to run.
    let timings = ["pause_us", "capture_us", "analysis_us", "captured_at"];
    if let Some(o) = doc.as_object_mut() {
        timings.iter().for_each(|k| drop(o.remove(*k)));
    }
    for p in doc["processes"].as_array_mut().expect("processes[]") {
        let o = p.as_object_mut().expect("a process object");
        timings.iter().for_each(|k| drop(o.remove(*k)));
    }
    doc
}

fn entries(xdg: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(xdg.join("lockdump"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "dwarf"));
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The build ID (hex) of the libc that process `pid` maps.
fn libc_build_id(pid: i32) -> String {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    let path = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libc.so.6"))
        .expect("the fixture maps libc.so.6");
    let data = lockdump::test_support::symbols::file::map_file(Path::new(path)).expect("map libc");
    let module = lockdump::test_support::symbols::ElfModule::parse(path.into(), data, |_, _| None).expect("parse libc");
    let id = module.build_id.expect("libc has a build ID");
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The printed stacks name libc functions with file:line from libc6-dbg.
fn assert_has_libc_lines(doc: &Value) {
    let has = doc["threads"].as_array().expect("threads[]").iter().any(|t| {
        t["frames"].as_array().is_some_and(|fs| {
            fs.iter()
                .any(|f| f["module"] == "libc.so.6" && f["file"].as_str().is_some_and(|s| s.contains("nptl/")))
        })
    });
    assert!(
        has,
        "no libc frame has a file:line; is libc6-dbg installed? (apt-get install libc6-dbg)"
    );
}

#[test]
fn cached_uncached_and_damaged_caches_print_the_same() {
    // Enough threads (lockdump::test_support::inspect::PREFETCH_MIN_THREADS) that the DWARF
    // is prepared on the background thread during capture: that path and
    // the symbolizer's own must agree too.
    let workers = lockdump::test_support::inspect::PREFETCH_MIN_THREADS.to_string();
    let fx = Fixture::spawn_blocked(c_fixture("threads_idle", Variant::Debug, &[&workers]));
    let xdg = unique_path("xdg-cache");
    std::fs::create_dir_all(&xdg).unwrap();

    let reference = report(&dump(fx.pid(), &xdg, &["--no-cache"]));
    assert_has_libc_lines(&reference);
    assert!(entries(&xdg).is_empty(), "--no-cache wrote to the cache");

    let filling = report(&dump(fx.pid(), &xdg, &[]));
    let stored = entries(&xdg);
    assert!(
        !stored.is_empty(),
        "no cache entry written for libc's compressed sections (is libc6-dbg installed?)"
    );
    let cached = report(&dump(fx.pid(), &xdg, &[]));
    assert_eq!(
        filling, reference,
        "the run that filled the cache printed something else"
    );
    assert_eq!(cached, reference, "the run that read the cache printed something else");

    // Damage every entry in turn: a flipped byte in the data, a truncation,
    // garbage. Each is ignored (same output). libc's, whose DWARF names the
    // printed frames, is also replaced by a good entry (others, such as the
    // dynamic loader's, are prepared by the background thread only if it gets
    // to them before lockdump exits).
    let libc = format!("{}-", libc_build_id(fx.pid()));
    assert!(
        stored.iter().any(|e| file_name(e).starts_with(&libc)),
        "no cache entry for libc (build ID {libc}) in {stored:?}"
    );
    for entry in &stored {
        let good = std::fs::read(entry).unwrap();
        let mut flipped = good.clone();
        let at = good.len() * 2 / 3;
        flipped[at] ^= 0x40;
        let damages: [(&str, Vec<u8>); 4] = [
            ("flipped byte", flipped),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("header only", good[..64.min(good.len())].to_vec()),
            ("garbage", vec![0xa5; 4096]),
        ];
        for (what, bytes) in damages {
            std::fs::write(entry, &bytes).unwrap();
            let out = report(&dump(fx.pid(), &xdg, &[]));
            assert_eq!(
                out,
                reference,
                "{what} cache entry {} changed the output",
                entry.display()
            );
            if file_name(entry).starts_with(&libc) {
                assert!(
                    std::fs::read(entry).unwrap() == good,
                    "{what} entry {} was not replaced by a good one",
                    entry.display()
                );
            }
        }
    }
    std::fs::remove_dir_all(&xdg).unwrap();
}

#[test]
fn unusable_cache_directories_are_not_fatal() {
    let fx = Fixture::spawn_blocked(c_fixture("threads_idle", Variant::Debug, &["4"]));
    let scratch = unique_path("xdg-unusable");
    std::fs::create_dir_all(&scratch).unwrap();
    let reference = report(&dump(fx.pid(), &scratch, &["--no-cache"]));

    // XDG_CACHE_HOME is a regular file: the directory cannot be created.
    let file = scratch.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    assert_eq!(report(&dump(fx.pid(), &file, &[])), reference);

    // A cache directory others may write to is neither read nor written.
    let shared = scratch.join("shared");
    std::fs::create_dir_all(shared.join("lockdump")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shared.join("lockdump"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(report(&dump(fx.pid(), &shared, &[])), reference);
    assert!(
        entries(&shared).is_empty(),
        "wrote into a world-writable cache directory"
    );

    // LOCKDUMP_NO_CACHE turns it off like --no-cache.
    let off = scratch.join("off");
    std::fs::create_dir_all(&off).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockdump"));
    cmd.args(["-p", &fx.pid().to_string(), "--json"])
        .env("XDG_CACHE_HOME", &off)
        .env("LOCKDUMP_NO_CACHE", "1");
    assert_eq!(report(&output_with_timeout(cmd, TIMEOUT)), reference);
    assert!(!off.join("lockdump").exists(), "LOCKDUMP_NO_CACHE=1 created the cache");
    std::fs::remove_dir_all(&scratch).unwrap();
}
