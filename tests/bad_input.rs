//! Hostile and corrupt targets: lying stacks, binaries deleted or replaced on
//! disk, corrupt DWARF/CFI/symbol tables in a mapped library, a CPython
//! interpreter with scribbled thread and frame lists, and target-supplied
//! strings full of terminal escapes. lockdump must finish in bounded time,
//! print what it could, mark what it could not, exit 0/1/2 consistently and
//! never panic, never show another file's symbols, and never let the target
//! write to the user's terminal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::reliability::*;
use serde_json::Value;

/// A hostile target must not make lockdump slow either.
const BOUNDED: Duration = Duration::from_secs(10);

fn threads(doc: &Value) -> &Vec<Value> {
    doc["threads"].as_array().expect("threads array")
}

fn thread_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    threads(doc)
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no thread named {name:?} in {doc}"))
}

fn functions(t: &Value) -> Vec<String> {
    t["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("??").to_string())
        .collect()
}

/// Not stopped, not traced, alive: for fixtures that do not count progress.
fn assert_left_running(t: &mut Target, context: &str) {
    t.assert_alive();
    for h in health(t.pid) {
        assert!(
            !matches!(h.state, 'T' | 't'),
            "{context}: thread {} in state {}",
            h.tid,
            h.state
        );
        assert_eq!(h.tracer, 0, "{context}: thread {} still traced", h.tid);
        assert_eq!(
            (h.sig_pnd | h.shd_pnd) & STRAY_SIGNALS,
            0,
            "{context}: stray signal pending"
        );
    }
}

#[test]
fn lying_stacks_end_with_a_marked_error_not_a_hang() {
    let (mut t, pid) = Target::start(Command::new(fixture("smash")), None);
    wait_all_blocked(pid, 6);
    let r = run_bounded(&["-p", &pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("smash --json");
    let doc = r.json();

    // Two fake frames pointing at each other: the walk stops where the
    // frame pointer goes back down, and says so.
    let cycle = thread_named(&doc, "fp-cycle");
    let f = functions(cycle);
    assert_eq!(f[0], "hostile_block_no_cfi", "{cycle}");
    assert!(f.len() <= 4, "cycle followed too far: {f:?}");
    assert!(
        cycle["unwind_error"]
            .as_str()
            .unwrap_or("")
            .contains("below the stack pointer"),
        "{cycle}"
    );

    // A well-formed 4000-deep chain: cut at the frame limit and marked truncated.
    let deep = thread_named(&doc, "deep-chain");
    assert_eq!(deep["frames"].as_array().unwrap().len(), 512, "default --max-frames");
    assert_eq!(deep["truncated"], true);

    // Own return address overwritten: the garbage pc is shown, then the walk stops.
    let garbage = thread_named(&doc, "garbage-ra");
    let f = functions(garbage);
    assert!(f.contains(&"smash_own_frame".to_string()), "{f:?}");
    assert!(
        garbage["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|fr| fr["pc"] == 0xdeadbeef_u64),
        "{garbage}"
    );
    assert!(garbage["unwind_error"].is_string(), "{garbage}");

    // Stack pointer into random heap bytes, or into nothing at all.
    for name in ["wild-sp", "unmapped-sp"] {
        let th = thread_named(&doc, name);
        let f = functions(th);
        assert_eq!(f[0], "hostile_block_no_cfi", "{name}: {th}");
        assert!(f.len() <= 512);
        assert!(
            th["unwind_error"].is_string() || th["truncated"] == true,
            "{name}: {th}"
        );
    }

    // Without stopping (only SP and PC from /proc, stacks read live).
    let r = run_bounded(&["-p", &pid.to_string(), "--json", "--no-stop"], BOUNDED);
    r.assert_ok("smash --no-stop");
    assert_eq!(threads(&r.json()).len(), 6);

    // The frame limit is the user's to choose.
    let r = run_bounded(&["-p", &pid.to_string(), "--json", "--max-frames", "40"], BOUNDED);
    r.assert_ok("--max-frames 40");
    let deep = thread_named(&r.json(), "deep-chain").clone();
    assert_eq!(deep["frames"].as_array().unwrap().len(), 40);
    assert_eq!(deep["truncated"], true);

    // The text report marks every stopped walk, and the target survives
    // repeated dumps (its threads would crash if resumed wrongly: their
    // stacks are garbage).
    for run in 0..10 {
        let r = run_bounded(&["-p", &pid.to_string()], BOUNDED);
        r.assert_ok(&format!("smash text run {run}"));
        assert!(r.stdout.contains("(unwinding stopped: "), "{}", r.stdout);
        assert!(r.stdout.contains("... (more frames not shown: --max-frames)"));
        assert_left_running(&mut t, &format!("smash run {run}"));
    }
    assert_eq!(tids(pid).len(), 6);
}

/// Copy a fixture to `dir/name` (a private inode the test may delete or replace).
fn private_copy(exe: &Path, dir: &TempDir, name: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::copy(exe, &p).expect("copy fixture");
    p
}

fn all_functions(doc: &Value) -> Vec<String> {
    threads(doc).iter().flat_map(functions).collect()
}

#[test]
fn deleted_binary_still_symbolizes_through_map_files() {
    let dir = TempDir::new("bi-deleted");
    let exe = private_copy(&fixture("busy"), &dir, "busy-deleted");
    let mut t = Target::counting(&exe, &dir, &["3", "20"]);
    std::fs::remove_file(&exe).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", t.pid)).unwrap();
    assert!(maps.contains("busy-deleted (deleted)"), "{maps}");
    let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("deleted binary");
    let doc = r.json();
    let workers = threads(&doc)
        .iter()
        .filter(|th| functions(th).contains(&"busy_worker".to_string()))
        .count();
    assert_eq!(workers, 3, "{}", r.stdout);
    assert!(all_functions(&doc).contains(&"main".to_string()));
    assert_unharmed(&mut t, "deleted binary", 0);
}

/// Replace `path` (mapped by a running process) with `other`'s bytes, the way
/// package managers do: write a new file, rename it over the old name.
fn replace_by_rename(path: &Path, other: &Path) {
    let tmp = path.with_extension("new");
    std::fs::copy(other, &tmp).expect("copy replacement");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// Every frame in module `module` names a symbol of `original` (or nothing),
/// and no frame anywhere cites the replacement's source file.
fn assert_only_original_symbols(doc: &Value, module: &str, original: &Path, replacement_src: &str) {
    use object::{Object, ObjectSymbol};
    let bytes = std::fs::read(original).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let names: std::collections::HashSet<String> = file
        .symbols()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    for th in threads(doc) {
        for f in th["frames"].as_array().unwrap() {
            let file = f["file"].as_str().unwrap_or("");
            assert!(!file.ends_with(replacement_src), "frame from the replacement file: {f}");
            // Inlined frames carry DWARF names (not in the symbol table);
            // the file check above covers them.
            if f["module"] == module && f["inlined"] != true {
                if let Some(name) = f["function"].as_str() {
                    assert!(names.contains(name), "{name} is not a symbol of the mapped file: {f}");
                }
            }
        }
    }
}

#[test]
fn replaced_binary_never_shows_the_new_files_symbols() {
    let dir = TempDir::new("bi-replaced");
    let exe = private_copy(&fixture("busy"), &dir, "busy-replaced");
    let mut t = Target::counting(&exe, &dir, &["3", "20"]);
    replace_by_rename(&exe, &fixture("churn"));
    let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("replaced binary");
    let doc = r.json();
    assert_only_original_symbols(&doc, "busy-replaced", &fixture("busy"), "churn.c");
    let f = all_functions(&doc);
    assert_eq!(f.iter().filter(|n| *n == "busy_worker").count(), 3, "{f:?}");
    assert_unharmed(&mut t, "replaced binary", 0);
}

#[test]
fn replaced_binary_as_unprivileged_user_shows_no_wrong_symbols() {
    // Without CAP_SYS_ADMIN /proc/PID/map_files cannot be opened, so the
    // mapped inode is out of reach: lockdump must then show no symbols for
    // the module rather than the replacement file's.
    let dir = TempDir::new("bi-replaced-user");
    open_up(dir.path());
    let exe = private_copy(&fixture("busy"), &dir, "busy-replaced");
    let counters = dir.path().join("counters");
    let mut cmd = as_test_user(&exe);
    cmd.arg(&counters).args(["3", "20"]);
    let (mut t, _) = Target::start(cmd, Some(counters));
    replace_by_rename(&exe, &fixture("churn"));
    let mut c = as_test_user(&lockdump_bin());
    c.args(["-p", &t.pid.to_string(), "--json"]);
    let out = c.output().expect("setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("internal error"), "{stderr}");
    if ptrace_scope().is_none_or(|s| s == 0) {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let doc: Value = serde_json::from_str(&stdout).expect("JSON");
        assert_only_original_symbols(&doc, "busy-replaced", &fixture("busy"), "churn.c");
        let f = all_functions(&doc);
        // libc still resolves: the process's other modules are unaffected.
        assert!(f.iter().any(|n| n.contains("nanosleep")), "{f:?}");
    }
    assert_unharmed(&mut t, "replaced binary (unprivileged)", 0);
}

/// Start dlhost with a private copy of the test library (optionally
/// corrupted by `damage` before loading).
fn dlhost_with(dir: &TempDir, damage: impl FnOnce(&mut Vec<u8>)) -> (Target, PathBuf) {
    let lib = dir.path().join("libcorrupt.so");
    let mut bytes = std::fs::read(shared_lib("corruptlib")).unwrap();
    damage(&mut bytes);
    std::fs::write(&lib, &bytes).unwrap();
    let mut cmd = Command::new(fixture("dlhost"));
    cmd.arg(&lib);
    let (t, _) = Target::start(cmd, None);
    wait_all_blocked(t.pid, 2);
    (t, lib)
}

#[test]
fn library_replaced_by_garbage_after_loading_still_symbolizes() {
    let dir = TempDir::new("bi-lib-garbage");
    let (mut t, lib) = dlhost_with(&dir, |_| {});
    let garbage = dir.path().join("garbage");
    let mut rng = Rng::new("garbage library");
    let junk: Vec<u8> = (0..20000).map(|_| rng.next() as u8).collect();
    std::fs::write(&garbage, junk).unwrap();
    std::fs::rename(&garbage, &lib).unwrap();
    let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("garbage library");
    let doc = r.json();
    let f = functions(thread_named(&doc, "in-lib"));
    assert!(f.contains(&"corruptlib_block".to_string()), "{f:?}");
    assert_left_running(&mut t, "garbage library");
}

/// Sections of an ELF file by name: (file offset, size).
fn section_ranges(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    use object::{Object, ObjectSection};
    let f = object::File::parse(bytes).expect("parse test library");
    f.sections()
        .filter_map(|s| {
            let (off, size) = s.file_range()?;
            Some((s.name().ok()?.to_string(), off as usize, size as usize))
        })
        .collect()
}

/// The section header table's file range (the loader never reads it).
fn section_headers(bytes: &[u8]) -> (usize, usize) {
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let shentsize = u16::from_le_bytes(bytes[0x3a..0x3c].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(bytes[0x3c..0x3e].try_into().unwrap()) as usize;
    (shoff, shentsize * shnum)
}

#[test]
fn corrupt_dwarf_cfi_and_symbols_in_a_mapped_library() {
    // Each variant corrupts parts of the file that the dynamic loader does
    // not read (so the library still loads and runs) but lockdump does.
    let variants: [&[&str]; 9] = [
        &[".debug_info"],
        &[".debug_abbrev"],
        &[".debug_line", ".debug_line_str"],
        &[".debug_str", ".debug_aranges", ".debug_rnglists"],
        &[".eh_frame"],
        &[".eh_frame_hdr"],
        &[".symtab", ".strtab"],
        &[
            ".debug_info",
            ".debug_abbrev",
            ".debug_line",
            ".debug_str",
            ".eh_frame",
            ".eh_frame_hdr",
            ".symtab",
        ],
        &["section headers"],
    ];
    let pristine = std::fs::read(shared_lib("corruptlib")).unwrap();
    let names: Vec<String> = section_ranges(&pristine).into_iter().map(|s| s.0).collect();
    for want in [".debug_info", ".eh_frame", ".eh_frame_hdr", ".symtab"] {
        assert!(names.iter().any(|n| n == want), "test library has no {want}: {names:?}");
    }
    let mut rng = Rng::new("corrupt library");
    for (i, sections) in variants.iter().enumerate() {
        for round in 0..3 {
            let dir = TempDir::new("bi-lib-corrupt");
            let seed = rng.next();
            let (mut t, _) = dlhost_with(&dir, |bytes| {
                let mut x = seed | 1;
                let ranges: Vec<(usize, usize)> = if sections == &["section headers"] {
                    vec![section_headers(bytes)]
                } else {
                    section_ranges(bytes)
                        .into_iter()
                        .filter(|(n, _, _)| sections.contains(&n.as_str()))
                        .map(|(_, o, s)| (o, s))
                        .collect()
                };
                for (off, size) in ranges {
                    // Round 0: every byte random; later rounds: one byte in 16 flipped.
                    for b in &mut bytes[off..off + size] {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if round == 0 || x % 16 == 0 {
                            *b ^= (x >> 8) as u8 | 1;
                        }
                    }
                }
            });
            let ctx = format!("variant {i} {sections:?} round {round}");
            let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], BOUNDED);
            r.assert_ok(&ctx);
            let doc = r.json();
            let in_lib = thread_named(&doc, "in-lib");
            assert!(!in_lib["frames"].as_array().unwrap().is_empty(), "{ctx}: {in_lib}");
            // Damage to the library's own CFI or line table does not touch
            // the names: the frame in it is reached through libc's CFI.
            let names_intact = sections
                .iter()
                .all(|s| matches!(*s, ".eh_frame" | ".eh_frame_hdr" | ".debug_line" | ".debug_line_str"));
            if names_intact {
                assert!(
                    functions(in_lib).contains(&"corruptlib_block".to_string()),
                    "{ctx}: {in_lib}"
                );
            }
            // The text report too (it renders names and paths from the bad file).
            let r = run_bounded(&["-p", &t.pid.to_string()], BOUNDED);
            r.assert_ok(&ctx);
            assert_left_running(&mut t, &ctx);
        }
    }
}

fn python312() -> PathBuf {
    let root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".pyenv"));
    let py = root.join("versions/3.12.1/bin/python3.12");
    assert!(
        py.exists(),
        "{} not found: install CPython 3.12.1 with `pyenv install 3.12.1`",
        py.display()
    );
    py
}

#[test]
fn python_with_scribbled_thread_and_frame_lists() {
    let mut cmd = Command::new(python312());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/reliability/scribble.py"));
    let (mut t, pid) = Target::start(cmd, None);
    wait_all_blocked(pid, 3);
    for args in [vec!["--json"], vec![], vec!["--native"]] {
        let mut a = vec!["-p".to_string(), pid.to_string()];
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let r = run_bounded(&a, BOUNDED);
        let ctx = format!("scribbled python {args:?}");
        r.assert_no_panic(&ctx);
        match r.code() {
            Some(0) | Some(1) => assert!(!r.stdout.is_empty(), "{ctx}: empty report"),
            Some(2) => r.assert_error(&ctx, ""),
            other => panic!("{ctx}: exit {other:?}: {r:?}"),
        }
        if args == ["--json"] {
            assert_eq!(threads(&r.json()).len(), 3, "{ctx}");
        }
        assert_left_running(&mut t, &ctx);
    }
}

#[test]
fn terminal_escapes_in_target_strings_are_neutralized() {
    let mut cmd = Command::new(fixture("evilname"));
    cmd.arg("normal").arg("\x1b[2Jcleared");
    let (mut t, pid) = Target::start(cmd, None);
    let r = run_bounded(&["-p", &pid.to_string(), "--color", "never"], BOUNDED);
    r.assert_ok("escapes (text)");
    for c in r.stdout.chars() {
        assert!(
            !c.is_control() || c == '\n',
            "raw control character {c:?} in the text report:\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.contains("\"\\x1b[31mevil\""), "{}", r.stdout);
    assert!(r.stdout.contains("\"\\x07\\x08\\x0d\\x7f\""), "{}", r.stdout);
    assert!(
        r.stdout.contains("\\x1b[2Jcleared"),
        "command line in the header: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\"caf\u{fffd}\""),
        "invalid UTF-8 shown lossily: {}",
        r.stdout
    );

    // JSON: escaped by the JSON encoder, exact after decoding.
    let r = run_bounded(&["-p", &pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("escapes (json)");
    assert!(
        !r.stdout.bytes().any(|b| b < 0x20 && b != b'\n'),
        "raw control byte in JSON"
    );
    assert!(r.stdout.contains(r#""name": "\u001b[31mevil""#), "{}", r.stdout);
    let doc = r.json();
    let names: Vec<&str> = threads(&doc).iter().filter_map(|t| t["name"].as_str()).collect();
    for want in ["\x1b[31mevil", "\x07\x08\r\x7f", "caf\u{fffd}"] {
        assert!(names.contains(&want), "{want:?} not in {names:?}");
    }
    assert!(doc["processes"][0]["cmdline"][2] == "\x1b[2Jcleared");
    let tid_of = |name: &str| {
        threads(&doc)
            .iter()
            .find(|th| th["name"] == name)
            .and_then(|th| th["tid"].as_i64())
            .unwrap_or_else(|| panic!("no thread {name:?}"))
    };

    // Quotes and backslashes in a name are escaped inside its quotes
    // (issue 16.8): each thread's own header with --all-threads...
    // (Not wait_all_blocked: caf\xe9 makes /proc/.../status invalid UTF-8.)
    let in_pause = || {
        tids(pid)
            .iter()
            .filter(|t| {
                std::fs::read(format!("/proc/{pid}/task/{t}/syscall"))
                    .is_ok_and(|s| s.starts_with(format!("{} ", libc::SYS_pause).as_bytes()))
            })
            .count()
    };
    wait_for("all 5 threads in pause()", || in_pause() == 5);
    let r = run_bounded(&["-p", &pid.to_string(), "--color", "never", "--all-threads"], BOUNDED);
    r.assert_ok("escapes (--all-threads)");
    for (name, shown) in [
        ("a\"b\\c", r#""a\"b\\c""#),
        ("\x1b[31mevil", r#""\x1b[31mevil""#),
        ("\x07\x08\r\x7f", r#""\x07\x08\x0d\x7f""#),
    ] {
        let header = format!("Thread {} {shown} state S, in pause [", tid_of(name));
        assert_eq!(
            r.stdout.lines().filter(|l| l.starts_with(&header)).count(),
            1,
            "{header:?} in:\n{}",
            r.stdout
        );
    }
    // ...and the folded entry of the four named threads (same stack, same call).
    let mut tids: Vec<i64> = ["\x1b[31mevil", "\x07\x08\r\x7f", "caf\u{fffd}", "a\"b\\c"]
        .iter()
        .map(|n| tid_of(n))
        .collect();
    tids.sort_unstable();
    let r = run_bounded(&["-p", &pid.to_string(), "--color", "never"], BOUNDED);
    r.assert_ok("escapes (folded)");
    let names = concat!(
        r#""\x1b[31mevil", "\x07\x08\x0d\x7f", "caf"#,
        '\u{fffd}',
        r#"", "a\"b\\c""#
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("4 threads "))
        .unwrap_or_else(|| panic!("no folded entry:\n{}", r.stdout));
    // Four TIDs: one range when consecutive, else listed.
    let listed = if tids[3] - tids[0] == 3 {
        format!("{}–{}", tids[0], tids[3])
    } else {
        let mut parts: Vec<String> = Vec::new();
        let mut k = 0;
        while k < 4 {
            let mut e = k;
            while e + 1 < 4 && tids[e + 1] == tids[e] + 1 {
                e += 1;
            }
            if e - k >= 2 {
                parts.push(format!("{}–{}", tids[k], tids[e]));
            } else {
                parts.extend(tids[k..=e].iter().map(|t| t.to_string()));
            }
            k = e + 1;
        }
        parts.join(", ")
    };
    assert!(
        line.starts_with(&format!("4 threads {names} (TIDs {listed}) state S, in pause")),
        "{line}"
    );

    // Colors: --color always paints (only lockdump's own SGR codes, the
    // names stay escaped); --color never does not.
    let r = run_bounded(&["-p", &pid.to_string(), "--color", "always"], BOUNDED);
    r.assert_ok("escapes (color)");
    assert!(
        r.stdout.contains("\x1b[1;31mFound") || r.stdout.contains("\x1b[1m"),
        "{}",
        r.stdout
    );
    for (k, _) in r.stdout.match_indices('\x1b') {
        let code: String = r.stdout[k + 1..].chars().take_while(|c| *c != 'm').collect();
        assert!(
            ["[0", "[1", "[2", "[1;31", "[32", "[33", "[36"].contains(&code.as_str()),
            "foreign escape {code:?} in the colored report"
        );
    }
    assert_left_running(&mut t, "escapes");
}

/// `lockdump --color auto` (the default) on a terminal: colored, unless
/// NO_COLOR is set (https://no-color.org). Run on a pseudo-terminal, so the
/// NO_COLOR case would fail if it were ignored.
#[test]
fn no_color_is_respected_on_a_terminal() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut cmd = Command::new(fixture("evilname"));
    cmd.arg("normal");
    let (mut t, pid) = Target::start(cmd, None);
    let on_a_tty = |no_color: Option<&str>| -> String {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty fills two descriptors we then own.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both were just opened and are owned by nothing else.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut c = Command::new(lockdump_bin());
        c.args(["-p", &pid.to_string(), "--color", "auto"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(slave));
        c.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let mut child = c.spawn().expect("spawn lockdump");
        drop(c); // our copy of the slave: EOF (EIO) once lockdump exits
        let mut out = Vec::new();
        let mut f = std::fs::File::from(master);
        let mut buf = [0u8; 65536];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // EIO: the terminal hung up (lockdump exited).
                Err(_) => break,
            }
        }
        let st = child.wait().expect("wait lockdump");
        assert_eq!(st.code(), Some(0), "lockdump on a tty: {st:?}");
        String::from_utf8_lossy(&out).into_owned()
    };
    let colored = on_a_tty(None);
    assert!(colored.contains("\x1b[32mNo deadlock found.\x1b[0m"), "{colored}");
    let plain = on_a_tty(Some("1"));
    assert!(plain.starts_with("No deadlock found."), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR=1 still colored:\n{plain}");
    assert_left_running(&mut t, "no color");
}

#[test]
fn process_named_with_invalid_utf8_is_inspected() {
    // The main thread's name is the process name in /proc/PID/status and
    // stat; it is bytes, not necessarily UTF-8 (a binary named in Latin-1
    // gets such a name too).
    let mut cmd = Command::new(fixture("evilname"));
    cmd.arg("bad-main");
    let (mut t, pid) = Target::start(cmd, None);
    let r = run_bounded(&["-p", &pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("invalid UTF-8 process name");
    let doc = r.json();
    assert_eq!(threads(&doc).len(), 5);
    let main = threads(&doc).iter().find(|th| th["tid"] == pid).expect("main thread");
    assert_eq!(main["name"], "\u{fffd}\u{fffd}-main");
    assert_left_running(&mut t, "invalid UTF-8 process name");
}

#[test]
fn library_at_a_non_utf8_path_is_inspected() {
    // File names are bytes; /proc/PID/maps shows them as they are.
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new("bi-latin1");
    let lib = dir.path().join(std::ffi::OsStr::from_bytes(b"lib-caf\xe9.so"));
    std::fs::copy(shared_lib("corruptlib"), &lib).unwrap();
    let mut cmd = Command::new(fixture("dlhost"));
    cmd.arg(&lib);
    let (mut t, _) = Target::start(cmd, None);
    wait_all_blocked(t.pid, 2);
    let r = run_bounded(&["-p", &t.pid.to_string(), "--json"], BOUNDED);
    r.assert_ok("non-UTF-8 library path");
    let doc = r.json();
    let in_lib = thread_named(&doc, "in-lib");
    assert!(functions(in_lib).contains(&"corruptlib_block".to_string()), "{in_lib}");
    assert_left_running(&mut t, "non-UTF-8 library path");
}

/// Usage errors are one line that says what to do, exit 2 (issue 12.9): a
/// CI log shows the whole message, and nothing else (no usage block).
#[test]
fn usage_errors_are_one_line_with_a_hint() {
    let cases: [(&[&str], &str); 5] = [
        (&["--bogus"], "lockdump: unexpected argument '--bogus' found (usage: lockdump [OPTIONS] --pid <PID>; `lockdump --help` lists every option)"),
        (&["-p", "abc"], "lockdump: invalid value 'abc' for '--pid <PID>': invalid digit found in string (`lockdump --help` lists every option)"),
        (&[], "lockdump: the following required arguments were not provided: --pid <PID> (usage: lockdump [OPTIONS] --pid <PID>; `lockdump --help` lists every option)"),
        (&["-p", "1", "demo"], "lockdump: the subcommand 'demo' cannot be used with '--pid <PID>' (usage: lockdump [OPTIONS] --pid <PID>; `lockdump --help` lists every option)"),
        (&["--color", "purple", "-p", "1"], "lockdump: invalid value 'purple' for '--color <COLOR>' [possible values: auto, always, never] (`lockdump --help` lists every option)"),
    ];
    for (args, want) in cases {
        let out = Command::new(lockdump_bin()).args(args).output().expect("run lockdump");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: stdout {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), format!("{want}\n"), "{args:?}");
    }
    // --help still prints the help, on stdout, exit 0.
    let out = Command::new(lockdump_bin())
        .arg("--help")
        .output()
        .expect("run lockdump");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: lockdump"));
}
