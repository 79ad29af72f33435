//! Process trees: a process and every process descended from it, as /proc
//! shows them now. `lockdump -p PID --tree` and `lockdump run` dump whole
//! trees, since a hung job is rarely one process (a test runner, its workers,
//! a server they talk to).

use std::collections::{BTreeMap, BTreeSet};

/// `root` and all its descendants, root first, then breadth first (parents
/// before their children). Processes that exit while /proc is read are left
/// out; one forked meanwhile may be missed (the caller's snapshot is of one
/// moment anyway).
pub fn members(root: i32) -> Vec<i32> {
    let parents = parent_map();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut seen = BTreeSet::from([root]);
    let mut i = 0;
    while i < out.len() {
        for &c in children.get(&out[i]).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(c) {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

/// The descendants of `root`, without `root` itself.
pub fn descendants(root: i32) -> Vec<i32> {
    members(root).into_iter().skip(1).collect()
}

/// PID -> parent PID for every process in /proc (threads are not listed
/// there: a child forked by any thread has the process as its parent).
/// Read with the procfs crate: a walk of /proc once per run, off the
/// capture path.
fn parent_map() -> BTreeMap<i32, i32> {
    let Ok(all) = procfs::process::all_processes() else {
        return BTreeMap::new();
    };
    all.filter_map(|p| {
        let p = p.ok()?;
        Some((p.pid, p.stat().ok()?.ppid))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_holds_its_root_and_children() {
        let me = std::process::id() as i32;
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = child.id() as i32;
        let m = members(me);
        assert_eq!(m[0], me);
        assert!(m.contains(&pid), "{m:?} lacks child {pid}");
        assert!(descendants(me).contains(&pid));
        assert!(!descendants(me).contains(&me));
        assert_eq!(members(pid), [pid]);
        let _ = child.kill();
        let _ = child.wait();
    }
}
