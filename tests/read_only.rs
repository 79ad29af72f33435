//! lockdump never writes the target: not its memory, not its registers.
//!
//! Two checks: a behavioral one (the writable memory and the syscall state
//! of a quiescent target are identical before and after 100 dumps) and a
//! source scan (no API that can write a tracee exists anywhere in src/).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use common::reliability::*;

/// FNV-1a over a region's bytes: a cheap fingerprint, enough to notice any change.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Fingerprint of every readable and writable mapping of `pid` (data, bss,
/// heap, thread stacks, anonymous memory), read through /proc/PID/mem.
/// Regions the kernel refuses to read are recorded as such.
fn writable_memory(pid: i32) -> BTreeMap<String, Option<u64>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut out = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 16];
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, perms) = (f.next().unwrap(), f.next().unwrap());
        if !perms.starts_with("rw") {
            continue;
        }
        let (s, e) = range.split_once('-').unwrap();
        let (start, end) = (u64::from_str_radix(s, 16).unwrap(), u64::from_str_radix(e, 16).unwrap());
        let mut h = Some(0xcbf2_9ce4_8422_2325u64);
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            match mem.read_exact_at(&mut buf[..n], at) {
                Ok(()) => h = h.map(|h| fnv1a(&buf[..n], h)),
                Err(_) => {
                    h = None;
                    break;
                }
            }
            at += n as u64;
        }
        out.insert(line.to_string(), h);
    }
    out
}

/// /proc/TID/syscall of every thread: syscall number, the six argument
/// registers, SP and PC. A register write would show here.
fn syscall_state(pid: i32) -> BTreeMap<i32, String> {
    tids(pid)
        .into_iter()
        .map(|t| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/syscall")).unwrap();
            (t, s)
        })
        .collect()
}

fn diff(a: &BTreeMap<String, Option<u64>>, b: &BTreeMap<String, Option<u64>>) -> Vec<String> {
    let mut d: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v:?} -> {:?}", b.get(k)))
        .collect();
    d.extend(
        b.keys()
            .filter(|k| !a.contains_key(*k))
            .map(|k| format!("new mapping {k}")),
    );
    d
}

#[test]
fn memory_and_registers_identical_after_100_dumps() {
    let mut cmd = Command::new(fixture("quiet"));
    // With rseq registered the kernel itself rewrites each thread's rseq
    // area (cpu_id, mm_cid) when a resumed thread lands on another CPU;
    // that is the kernel's write, not lockdump's, so switch rseq off.
    cmd.env("GLIBC_TUNABLES", "glibc.pthread.rseq=0");
    let (t, pid) = Target::start(cmd, None);
    wait_all_blocked(pid, 4);

    let before = writable_memory(pid);
    let regs_before = syscall_state(pid);
    assert!(
        before.values().filter(|v| v.is_some()).count() >= 5,
        "too few regions: {before:?}"
    );
    // The target really is quiescent: unchanged without lockdump.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        diff(&before, &writable_memory(pid)),
        Vec::<String>::new(),
        "changes without lockdump"
    );

    let modes: [&[&str]; 3] = [&[], &["--json"], &["--no-stop"]];
    for run in 0..100 {
        let mut args = vec!["-p".to_string(), pid.to_string()];
        args.extend(modes[run % 3].iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run_bounded(&args, TIMEOUT);
        r.assert_ok(&format!("dump {run}"));
        assert_eq!(
            diff(&before, &writable_memory(pid)),
            Vec::<String>::new(),
            "dump {run} changed memory"
        );
        assert_eq!(syscall_state(pid), regs_before, "dump {run} changed registers");
    }

    // The fingerprint does notice a change: the fixture's SIGUSR1 handler
    // increments one global (and uses the stack).
    kill(pid, libc::SIGUSR1);
    wait_for("the handler's write shows in the fingerprint", || {
        !diff(&before, &writable_memory(pid)).is_empty()
    });
    drop(t);
}

/// What may never appear in lockdump's source: every way to write a tracee.
const FORBIDDEN: [(&str, &str); 15] = [
    ("PTRACE_POKE", "writes tracee memory or USER area"),
    ("POKEDATA", "writes tracee memory"),
    ("POKETEXT", "writes tracee memory"),
    ("POKEUSER", "writes tracee registers"),
    ("ptrace::write", "nix's PTRACE_POKEDATA/POKEUSER wrappers"),
    ("SETREGS", "writes tracee registers"),
    ("setregs", "nix's PTRACE_SETREGS wrapper"),
    ("SETFPREGS", "writes tracee FP registers"),
    ("setfpregs", "nix's PTRACE_SETFPREGS wrapper"),
    ("SETREGSET", "writes a tracee register set"),
    ("setregset", "nix's PTRACE_SETREGSET wrapper"),
    ("SETSIGINFO", "rewrites a tracee's pending signal"),
    ("process_vm_writev", "writes another process's memory"),
    ("PROCESS_VM_WRITEV", "the syscall number of process_vm_writev"),
    ("/mem", "/proc/PID/mem is writable; reads go through process_vm_readv"),
];

/// The one line allowed to name a writing call: src/syscalls.rs's name
/// table entry, so that a *target* thread sitting in process_vm_writev is
/// named in the report. The number it defines is itself forbidden anywhere
/// else (`PROCESS_VM_WRITEV` above), so nothing can call it through the table.
const NAME_TABLE_ENTRY: &str = r#"PROCESS_VM_WRITEV = SYS_process_vm_writev "process_vm_writev";"#;

fn scan(text: &str) -> Vec<(usize, &'static str, &'static str)> {
    let mut hits = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim() == NAME_TABLE_ENTRY {
            continue;
        }
        for (token, why) in FORBIDDEN {
            if line.contains(token) {
                hits.push((n + 1, token, why));
            }
        }
    }
    hits
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn source_has_no_way_to_write_a_tracee() {
    // The scanner itself works.
    assert_eq!(scan("let _ = nix::sys::ptrace::setregs(pid, r);").len(), 1);
    assert_eq!(scan("libc::process_vm_writev(pid, a, 1, b, 1, 0)").len(), 1);
    assert_eq!(scan("File::create(format!(\"/proc/{pid}/mem\"))").len(), 1);
    assert_eq!(scan(NAME_TABLE_ENTRY).len(), 0);
    assert_eq!(scan("libc::syscall(nr::PROCESS_VM_WRITEV, pid)").len(), 1);

    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (line, token, why) in scan(&text) {
            found.push(format!("{}:{line}: {token} ({why})", f.display()));
        }
    }
    assert!(
        found.is_empty(),
        "lockdump must never write its target:\n{}",
        found.join("\n")
    );
}
