//! A [`Snapshot`] from a core file: the same plain data a live capture
//! produces, so every later stage runs unchanged.
//!
//! What a core does not hold is left unknown, never invented: thread names
//! (a core has no per-thread `comm`), scheduler state and wait channel
//! (`'?'` and empty). Registers are complete (NT_PRSTATUS holds the whole
//! `user_regs_struct`), so the system call each thread sat in is decoded
//! from `orig_rax`/`rax` exactly as a ptrace capture does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::CoreFile;
use crate::capture::stop::{find_entering_calls, stack_range, syscall_from_regs};
use crate::capture::{CopiedRegion, RegisterSource, RuntimeCopy, Snapshot, Source, ThreadSnapshot};
use crate::ids::{Pid, Tid};
use crate::proc::MapEntry;

/// The mappings as a core describes them: one per PT_LOAD segment, named by
/// the NT_FILE entry that covers it; NT_FILE entries without a segment are
/// added (their pages can only come from the file). A core has no inodes:
/// each path gets a made-up one (a hash, never 0), the same in every core,
/// so that mappings of one file group together as in /proc/PID/maps.
/// Sharing is unknown except for shared memory (a deleted `/dev/zero` or
/// SysV segment), whose device number is made its start address: two
/// cores' objects are one (the same `shared_key`) only where both
/// processes map it at the same address, as after fork(), never merely
/// because every shared anonymous mapping is called /dev/zero.
pub fn maps(core: &CoreFile) -> Vec<MapEntry> {
    let inode = |p: &str| path_id(p);
    let vdso = core
        .auxv
        .iter()
        .find(|(k, _)| *k == crate::proc::AT_SYSINFO_EHDR)
        .map(|(_, v)| *v);
    let entry = |start: u64, end: u64, r: bool, w: bool, x: bool| {
        let mut m = MapEntry {
            start,
            end,
            readable: r,
            writable: w,
            executable: x,
            shared: false,
            offset: 0,
            dev_major: 0,
            dev_minor: 0,
            inode: 0,
            path: String::new(),
            deleted: false,
        };
        let i = core.files.partition_point(|f| f.end <= start);
        if let Some(f) = core.files.get(i).filter(|f| f.start <= start) {
            let (path, deleted) = match f.path.strip_suffix(" (deleted)") {
                Some(p) => (p.to_string(), true),
                None => (f.path.clone(), false),
            };
            m.offset = f.offset.saturating_add(start - f.start);
            m.inode = inode(&f.path);
            // Shared anonymous memory is a deleted shmem file named /dev/zero.
            m.shared = deleted && (path == "/dev/zero" || path.starts_with("/SYSV"));
            if m.shared {
                (m.dev_major, m.dev_minor) = ((f.start >> 32) as u32, f.start as u32);
            }
            m.path = path;
            m.deleted = deleted;
        } else if vdso == Some(start) {
            m.path = "[vdso]".into();
        }
        m
    };
    let mut out: Vec<MapEntry> = core.loads().map(|(s, e, r, w, x)| entry(s, e, r, w, x)).collect();
    for f in &core.files {
        if !out.iter().any(|m| m.start < f.end && f.start < m.end) {
            out.push(entry(f.start, f.end, true, false, false));
        }
    }
    out.sort_by_key(|m| m.start);
    out
}

/// A stable stand-in for a path's inode: FNV-1a, never 0.
fn path_id(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// The snapshot of `core`: every thread of NT_PRSTATUS, with up to
/// `stack_bytes` of its stack above SP kept as the live capture keeps it
/// (stack scans read those copies).
pub fn snapshot(core: Arc<CoreFile>, stack_bytes: usize) -> Snapshot {
    let started = Instant::now();
    let maps = maps(&core);
    let pid = core.pid();
    let mut threads: Vec<ThreadSnapshot> = core
        .threads
        .iter()
        .map(|p| {
            let stack = stack_range(p.regs.rsp, &maps, stack_bytes)
                // As much as the core has from SP up (a truncated core may
                // hold only part of it).
                .map(|(start, end)| CopiedRegion {
                    start,
                    bytes: core.read_prefix(start, (end - start) as usize),
                })
                .unwrap_or_default();
            ThreadSnapshot {
                tid: Tid(p.tid),
                name: String::new(),
                state: '?',
                wchan: String::new(),
                regs: p.regs,
                register_source: RegisterSource::Ptrace,
                syscall: syscall_from_regs(&p.regs),
                pending_signal: None,
                left_running: None,
                stack,
                ns_tid: p.tid,
                switches: None,
            }
        })
        .collect();
    // The code at each PC is in the core (or in its files, build ID checked).
    find_entering_calls(&mut threads, core.as_ref());
    let exe = core
        .exe_override
        .clone()
        .or_else(|| core.exe_path.as_ref().map(Into::into))
        .unwrap_or_default();
    let cmdline = core
        .process
        .as_ref()
        .map(|p| p.psargs.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Snapshot {
        pid: Pid(pid),
        leader_exited: !threads.iter().any(|t| t.tid.get() == pid),
        tracer: None,
        ns_pid: pid,
        exe,
        cmdline,
        threads,
        maps,
        auxv: core.auxv.clone(),
        pause: Duration::ZERO,
        capture_time: started.elapsed(),
        no_stop: false,
        wait_memory: Vec::new(),
        runtime_copy: RuntimeCopy::default(),
        copies_released: false,
        source: Source::Core(core),
    }
}
