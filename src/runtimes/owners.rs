//! Turning raw lock evidence into [`Owner`]s and [`Resource`]s.
//!
//! Lock words record owners as TIDs in the target's PID namespace; the
//! wait-for graph needs host TIDs and PIDs, and must know when a TID names
//! nobody any more (the owner exited with the lock held). Objects in shared
//! mappings need an identity that is the same in every process mapping them.
//! Every runtime analyzer needs both, so they live here.

use std::path::Path;

use super::{Confidence, Hold, Known, Owner, ProcessView, Resource, ResourceKind, SymbolLookup, ThreadFindings};
use crate::capture::Snapshot;
use crate::ids::{Addr, Pid, Tid};

/// Looks up tasks outside the snapshot: which process a TID belongs to.
///
/// The real implementation reads `/proc`; tests substitute a table so that
/// "owner exited" and "owner is another process" can be exercised without
/// racing against real PIDs.
pub trait TaskTable {
    /// The thread-group ID (process) of task `tid`, if such a task exists now.
    fn tgid_of(&self, tid: Tid) -> Option<Pid>;
    /// The parent process of process `pid`, if known.
    fn parent_of(&self, _pid: Pid) -> Option<Pid> {
        None
    }
}

/// [`TaskTable`] of this host now, asked of the live target (`/proc/TID/status`:
/// works for any thread, not only group leaders).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcTaskTable;

impl TaskTable for ProcTaskTable {
    fn tgid_of(&self, tid: Tid) -> Option<Pid> {
        crate::live::thread_group_of(tid.get()).map(Pid)
    }
    fn parent_of(&self, pid: Pid) -> Option<Pid> {
        crate::live::parent_of(pid.get()).map(Pid)
    }
}

/// A [`TaskTable`] that knows no task outside the snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTasks;

impl TaskTable for NoTasks {
    fn tgid_of(&self, _tid: Tid) -> Option<Pid> {
        None
    }
}

/// The task table for `snapshot`'s process: /proc for a live process;
/// for a core file none (its PIDs name nothing on this machine now, and
/// every thread it had is in the snapshot).
pub fn task_table(snapshot: &Snapshot) -> &'static dyn TaskTable {
    match snapshot.source {
        crate::capture::Source::Live(_) => &ProcTaskTable,
        crate::capture::Source::Core(_) => &NoTasks,
    }
}

/// The target's TIDs are host TIDs: lockdump and the target share a PID
/// namespace, so a TID read from a lock word can be looked up in our `/proc`.
pub fn same_pid_namespace(snapshot: &Snapshot) -> bool {
    snapshot.ns_pid == snapshot.pid.get() && snapshot.threads.iter().all(|t| t.ns_tid == t.tid.get())
}

/// Resolve an owner TID read from the target (in the target's PID namespace).
///
/// - a thread of the snapshot: that thread;
/// - for a process-private object, anything else means the owner exited
///   (`dead`), unless the TID is a thread of this process created after the
///   snapshot;
/// - for a process-shared object, the owner may be another process: its PID
///   is looked up in `tasks`; no such task means the owner exited.
pub fn owner_from_tid(
    snapshot: &Snapshot,
    tasks: &dyn TaskTable,
    ns_tid: i32,
    process_shared: bool,
    confidence: Confidence,
    evidence: String,
) -> Owner {
    if ns_tid <= 0 {
        return Owner::unknown(evidence);
    }
    if let Some(host) = snapshot.host_tid(ns_tid) {
        return Owner::held_by(snapshot.pid, host, confidence, evidence);
    }
    if let (Some(core), true) = (snapshot.core(), process_shared) {
        // A core holds one process: the owner of a process-shared lock is
        // a thread of another core analyzed with it, or unknown (another
        // process sharing the lock, or one that exited).
        return match core.peer_process(ns_tid) {
            Some(pid) => Owner::held_by(
                Pid(pid),
                Tid(ns_tid),
                confidence,
                format!("{evidence}; thread {ns_tid} of process {pid} (from its core file)"),
            ),
            None => Owner::unknown(format!(
                "{evidence}; TID {ns_tid} is not a thread of this process: a thread of another process sharing the \
                 lock, or one that exited (a core file holds only its own process; give the others' cores too)"
            )),
        };
    }
    if !same_pid_namespace(snapshot) {
        // The TID is in a namespace our /proc does not show; we cannot tell
        // whether it names a live task.
        return Owner::unknown(format!(
            "{evidence}; TID {ns_tid} (in the target's PID namespace) is not a thread of this process"
        ));
    }
    // Same namespace (checked above): the TID the lock names is a host TID.
    let tid = Tid(ns_tid);
    match tasks.tgid_of(tid) {
        Some(tgid) if tgid == snapshot.pid => Owner::held_by(
            tgid,
            tid,
            confidence,
            format!("{evidence}; thread {ns_tid} started after the snapshot"),
        ),
        Some(tgid) if process_shared => Owner::held_by(
            tgid,
            tid,
            confidence,
            format!("{evidence}; thread {ns_tid} of process {tgid}"),
        ),
        other => Owner::exited(
            Some(tid),
            if process_shared { None } else { Some(snapshot.pid) },
            confidence,
            match other {
                // fork() copies the memory of every thread but only the
                // calling one: a lock another thread of the parent held is
                // copied locked, with that thread's TID as owner.
                Some(tgid) if tasks.parent_of(snapshot.pid) == Some(tgid) => format!(
                    "{evidence}; copied locked at fork() from PID {tgid} (the parent), where thread {ns_tid} held it: \
                     no thread of this process will release it"
                ),
                Some(tgid) => format!(
                    "{evidence}; thread {ns_tid} has exited (the TID now belongs to process {tgid}, which cannot own a process-private lock)"
                ),
                None => format!("{evidence}; thread {ns_tid} has exited"),
            },
        ),
    }
}

/// For a lock whose owner was *inferred* (Rust std, parking_lot: the lock
/// records none): the hold to list on that owner's thread, index and all,
/// with the evidence and who waits. Nothing for an exact or unknown owner
/// (an exact one is listed by the runtime that read it).
pub fn inferred_hold(
    view: &ProcessView<'_>,
    waiter: usize,
    owner: &Owner,
    resource: &Resource,
) -> Option<(usize, Hold)> {
    let Owner::Thread {
        thread,
        confidence: Known::Inferred,
        evidence,
        ..
    } = owner
    else {
        return None;
    };
    let j = view.snapshot.thread_index(thread.tid)?;
    Some((
        j,
        Hold {
            resource: resource.clone(),
            confidence: Confidence::Inferred,
            evidence: format!("{evidence} (thread {} waits for it)", view.snapshot.threads[waiter].tid),
            site_frame: None,
        },
    ))
}

/// A user-facing name for the object at `addr`: the data symbol covering it
/// (`lock_a`, or `forks+0x28` inside an array). Mangled Rust names
/// (`_ZN4abba6LOCK_A17h…E`, `_RNv…`) are demangled without the hash.
pub fn name_at(symbols: &dyn SymbolLookup, addr: u64) -> Option<String> {
    let (name, off) = symbols.symbol_at(addr)?;
    if name.is_empty() {
        return None;
    }
    let name = match rustc_demangle::try_demangle(&name) {
        Ok(d) if name.starts_with("_ZN") || name.starts_with("_R") => format!("{d:#}"),
        _ => name,
    };
    Some(if off == 0 { name } else { format!("{name}+{off:#x}") })
}

/// For an address in a `MAP_SHARED` file mapping (including shared anonymous
/// memory, which the kernel backs with a deleted `/dev/zero` or shmem file):
/// (device, inode, offset in the file). Two processes mapping the same object
/// get the same key at different addresses.
pub fn shared_key(snapshot: &Snapshot, addr: u64) -> Option<(u64, u64, u64)> {
    let m = snapshot.mapping(addr)?;
    if !m.shared || m.inode == 0 {
        return None;
    }
    let dev = (u64::from(m.dev_major) << 32) | u64::from(m.dev_minor);
    Some((dev, m.inode, m.offset.checked_add(addr - m.start)?))
}

/// The name of the object at `addr` in the viewed process: its source
/// path from DWARF when there is one (`forks[1].m`, `account_a->lock`),
/// else the data symbol covering it ([`name_at`]: `forks+0x28`).
pub fn object_name(view: &ProcessView<'_>, addr: u64) -> Option<String> {
    view.symbols
        .source_name(addr, view.memory, view.stacks)
        .or_else(|| name_at(view.symbols, addr))
}

/// A [`Resource`] for the object at `addr` in the viewed process.
pub fn resource_at(view: &ProcessView<'_>, kind: ResourceKind, addr: u64) -> Resource {
    resource_named(view, kind, addr, None)
}

/// [`resource_at`] with the name a runtime already knows (a Python
/// variable's), looking one up only when it knows none.
pub fn resource_named(view: &ProcessView<'_>, kind: ResourceKind, addr: u64, name: Option<String>) -> Resource {
    Resource {
        kind,
        address: Addr(addr),
        pid: view.snapshot.pid,
        name: name.or_else(|| object_name(view, addr)),
        shared_key: shared_key(view.snapshot, addr),
    }
}

/// File name of a module path (`/usr/lib/x86_64-linux-gnu/libc.so.6` → `libc.so.6`).
pub fn module_file_name(path: &str) -> &str {
    Path::new(path).file_name().and_then(|s| s.to_str()).unwrap_or(path)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Hand-built snapshots and symbol tables for analyzer unit tests.

    use super::*;
    use crate::capture::{CopiedRegion, RegisterSource, Registers, SyscallState, ThreadSnapshot};
    use crate::proc::MapEntry;
    use std::collections::HashMap;

    /// A symbol table given as (name, address, size) triples.
    #[derive(Default)]
    pub struct Symbols(pub Vec<(String, u64, u64)>);

    impl SymbolLookup for Symbols {
        fn symbol_address(&self, name: &str) -> Option<u64> {
            self.0.iter().find(|s| s.0 == name).map(|s| s.1)
        }
        fn symbol_with_prefix(&self, prefix: &str) -> Option<u64> {
            self.0.iter().find(|s| s.0.starts_with(prefix)).map(|s| s.1)
        }
        fn symbol_at(&self, addr: u64) -> Option<(String, u64)> {
            self.0
                .iter()
                .find(|s| s.1 <= addr && addr < s.1 + s.2.max(1))
                .map(|s| (s.0.clone(), addr - s.1))
        }
        fn section(&self, _name: &str) -> Option<(u64, u64)> {
            None
        }
        fn module_at(&self, _addr: u64) -> Option<String> {
            None
        }
    }

    /// A task table given as TID → TGID.
    #[derive(Default)]
    pub struct Tasks(pub HashMap<i32, i32>);

    impl TaskTable for Tasks {
        fn tgid_of(&self, tid: Tid) -> Option<Pid> {
            self.0.get(&tid.get()).copied().map(Pid)
        }
    }

    pub fn thread(tid: i32, syscall: Option<SyscallState>, fs_base: u64) -> ThreadSnapshot {
        ThreadSnapshot {
            tid: Tid(tid),
            name: format!("t{tid}"),
            state: 'S',
            wchan: "futex_do_wait".into(),
            regs: Registers {
                fs_base,
                ..Default::default()
            },
            register_source: if fs_base != 0 {
                RegisterSource::Ptrace
            } else {
                RegisterSource::None
            },
            syscall,
            pending_signal: None,
            left_running: None,
            stack: CopiedRegion::default(),
            ns_tid: tid,
            switches: None,
        }
    }

    pub fn futex(addr: u64, op: u64, val: u64) -> Option<SyscallState> {
        Some(SyscallState {
            nr: 202,
            args: [addr, op, val, 0, 0, u32::MAX as u64],
            restarted: false,
            entering: false,
        })
    }

    /// A live snapshot of `pid` with `threads` and `maps` (capture's own).
    pub use crate::capture::testing::snapshot;

    pub fn anon_map(start: u64, end: u64, shared: bool, inode: u64) -> MapEntry {
        MapEntry {
            start,
            end,
            readable: true,
            writable: true,
            executable: false,
            shared,
            offset: 0,
            dev_major: 0,
            dev_minor: 1,
            inode,
            path: if inode != 0 { "/dev/zero".into() } else { String::new() },
            deleted: inode != 0,
        }
    }
}

/// What other threads' waits say each thread holds: a wait whose owner is a
/// live thread of this process, exact or inferred, makes that thread a
/// holder (joins excepted: a joined thread holds nothing). Shared by the
/// libc analyzers (glibc, musl), which add what else they know.
pub fn holds_from_waits(snap: &Snapshot, out: &[ThreadFindings]) -> Vec<(usize, Hold)> {
    let mut holds = Vec::new();
    for (i, f) in out.iter().enumerate() {
        let Some(w) = &f.wait else { continue };
        let kind = w.resource.kind;
        if !kind.has_owner() || kind == ResourceKind::Thread {
            continue;
        }
        let Some(owner) = w.owner.thread().filter(|o| o.pid == snap.pid) else {
            continue;
        };
        let Some(j) = snap.thread_index(owner.tid) else {
            continue;
        };
        holds.push((
            j,
            Hold {
                resource: w.resource.clone(),
                confidence: w.owner.confidence(),
                evidence: format!("{} (thread {} waits for it)", w.owner.evidence(), snap.threads[i].tid),
                site_frame: None,
            },
        ));
    }
    holds
}

/// Add `holds` to the threads' findings, one entry per resource, keeping the
/// strongest evidence for each.
pub fn merge_holds(out: &mut [ThreadFindings], holds: Vec<(usize, Hold)>) {
    for (j, h) in holds {
        let list = &mut out[j].holds;
        match list.iter_mut().find(|x| {
            x.resource.address == h.resource.address && x.resource.pid == h.resource.pid
                    // The same object mapped into two processes.
                    || x.resource.shared_key.is_some() && x.resource.shared_key == h.resource.shared_key
        }) {
            Some(existing) if h.confidence < existing.confidence => *existing = h,
            Some(_) => {}
            None => list.push(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn owners_in_process_exited_and_shared() {
        let snap = snapshot(100, vec![thread(100, None, 0), thread(101, None, 0)], vec![]);
        let mut tasks = Tasks::default();
        tasks.0.insert(555, 500); // a thread of another process
        tasks.0.insert(102, 100); // created after the snapshot

        let o = owner_from_tid(&snap, &tasks, 101, false, Confidence::Exact, "__owner = 101".into());
        assert_eq!(
            (
                o.tid().map(Tid::get),
                o.pid().map(Pid::get),
                o.is_exited(),
                o.confidence()
            ),
            (Some(101), Some(100), false, Confidence::Exact)
        );

        let late = owner_from_tid(&snap, &tasks, 102, false, Confidence::Exact, "x".into());
        assert!(!late.is_exited());

        let gone = owner_from_tid(&snap, &tasks, 777, false, Confidence::Exact, "__owner = 777".into());
        assert!(gone.is_exited());
        assert_eq!(gone.tid().map(Tid::get), Some(777));
        assert!(gone.evidence().contains("exited"), "{}", gone.evidence());

        // A private lock cannot be owned by another process: a reused TID is still "exited".
        let reused = owner_from_tid(&snap, &tasks, 555, false, Confidence::Exact, "x".into());
        assert!(reused.is_exited());

        let other = owner_from_tid(&snap, &tasks, 555, true, Confidence::Exact, "x".into());
        assert_eq!(
            (other.tid().map(Tid::get), other.pid().map(Pid::get), other.is_exited()),
            (Some(555), Some(500), false)
        );

        assert_eq!(
            owner_from_tid(&snap, &tasks, 0, false, Confidence::Exact, "x".into()).confidence(),
            Confidence::Unknown
        );
    }

    #[test]
    fn other_namespace_is_not_resolved_through_our_proc() {
        let mut t = thread(4000, None, 0);
        t.ns_tid = 7;
        let mut snap = snapshot(4000, vec![t], vec![]);
        snap.ns_pid = 7;
        let o = owner_from_tid(&snap, &NoTasks, 7, false, Confidence::Exact, "x".into());
        assert_eq!(o.tid().map(Tid::get), Some(4000));
        let far = owner_from_tid(&snap, &NoTasks, 9, false, Confidence::Exact, "x".into());
        assert!(!far.is_exited());
        assert_eq!(far.confidence(), Confidence::Unknown);
    }

    #[test]
    fn shared_keys_and_names() {
        let snap = snapshot(
            1,
            vec![],
            vec![anon_map(0x1000, 0x2000, false, 0), anon_map(0x7000, 0x9000, true, 42)],
        );
        assert_eq!(shared_key(&snap, 0x1800), None);
        assert_eq!(shared_key(&snap, 0x7010), Some((1, 42, 0x10)));
        let syms = Symbols(vec![("forks".into(), 0x1000, 200), ("lock_a".into(), 0x1100, 40)]);
        assert_eq!(name_at(&syms, 0x1028).as_deref(), Some("forks+0x28"));
        assert_eq!(name_at(&syms, 0x1100).as_deref(), Some("lock_a"));
        assert_eq!(name_at(&syms, 0x5000), None);
        let rust = Symbols(vec![("_ZN4abba6LOCK_A17h0123456789abcdefE".into(), 0x3000, 8)]);
        assert_eq!(name_at(&rust, 0x3000).as_deref(), Some("abba::LOCK_A"));
    }
}
