//! Why threads would not stop: the words for a stop that timed out.
//!
//! A ptrace stop needs the thread to return towards user space. Two things
//! prevent that for good: uninterruptible sleep in the kernel (state `D`,
//! e.g. a hung NFS server: `wchan` names where) and a frozen cgroup (the
//! cgroup v1 freezer's `freezer.state` FROZEN/FREEZING, or cgroup v2's
//! `cgroup.events` "frozen 1" / `cgroup.freeze` 1: `docker pause`, systemd's
//! freeze, Kubernetes' checkpointing). The user needs to know which, and
//! that `--no-stop` reads the process without stopping it.

use crate::proc;

/// One line per thread that did not stop: `thread 12 state D (uninterruptible
/// sleep) in nfs_wait_bit_killable`. At most `max` threads; the rest counted.
pub fn describe_threads(pid: i32, tids: &[i32], max: usize) -> String {
    let mut parts: Vec<String> = tids
        .iter()
        .take(max)
        .map(|&tid| {
            let state = proc::task_stat(pid, tid).map(|s| s.state).unwrap_or('?');
            let what = match state {
                'D' => " (uninterruptible sleep)",
                'T' | 't' => " (stopped)",
                'R' => " (running)",
                'S' => " (sleeping)",
                _ => "",
            };
            let wchan = proc::wchan(pid, tid).ok().filter(|w| !w.is_empty() && w != "0");
            match wchan {
                Some(w) => format!("thread {tid} state {state}{what} in {w}"),
                None => format!("thread {tid} state {state}{what}"),
            }
        })
        .collect();
    if tids.len() > max {
        parts.push(format!("and {} more", tids.len() - max));
    }
    parts.join(", ")
}

/// The frozen cgroup `pid` is in, as a sentence with the way to thaw it,
/// or `None` when it is not frozen (or that cannot be read).
pub fn frozen_cgroup(pid: i32) -> Option<String> {
    // proc(7), /proc/PID/cgroup: "hierarchy-ID:controller-list:cgroup-path".
    let cgroups = procfs::process::Process::new(pid).ok()?.cgroups().ok()?;
    for g in &cgroups.0 {
        let (controllers, path) = (&g.controllers, g.pathname.trim_start_matches('/'));
        if controllers.iter().any(|c| c == "freezer") {
            let dir = format!("/sys/fs/cgroup/freezer/{path}");
            let state = std::fs::read_to_string(format!("{dir}/freezer.state")).unwrap_or_default();
            let state = state.trim();
            if state == "FROZEN" || state == "FREEZING" {
                return Some(format!(
                    "its cgroup {dir} is {state} (cgroup v1 freezer): thaw it with `echo THAWED > {dir}/freezer.state`"
                ));
            }
        } else if controllers.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let dir = format!("{root}/{path}");
                let events = std::fs::read_to_string(format!("{dir}/cgroup.events")).unwrap_or_default();
                if events.lines().any(|l| l.trim() == "frozen 1") {
                    return Some(format!(
                        "its cgroup {dir} is frozen (cgroup v2): thaw it with `echo 0 > {dir}/cgroup.freeze`"
                    ));
                }
            }
        }
    }
    None
}
