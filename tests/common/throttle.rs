//! A CPU throttle for one fixture: its threads get a few milliseconds of CPU
//! per 100 ms, shared with a spinner that uses them up. After a dump lets
//! the fixture go, its threads then wait (runnable, in the kernel) for a CPU
//! before they re-enter the call the stop interrupted; the next dump, run
//! right away, finds them there. That is what a loaded machine does to a
//! target dumped twice in a row, made likely instead of rare.
//!
//! cgroup v1's `cpu` controller (`cpu.cfs_quota_us`) or v2's `cpu.max`;
//! with neither, the test fails and says so (it is never skipped).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// CPU the throttled group gets per period (µs), and the period.
const QUOTA_US: u64 = 1_000;
const PERIOD_US: u64 = 100_000;

pub struct Throttle {
    dir: PathBuf,
    /// Where the fixture goes back to (the controller's root group).
    root: PathBuf,
    pid: i32,
    spinner: Child,
}

impl Throttle {
    /// Throttle every thread of `pid` (needs root).
    pub fn new(pid: i32) -> Throttle {
        let (root, v2) = if Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
            (PathBuf::from("/sys/fs/cgroup/cpu"), false)
        } else if fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok_and(|c| c.contains("cpu")) {
            // Children get the controller only if the root passes it down.
            let _ = fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
            (PathBuf::from("/sys/fs/cgroup"), true)
        } else {
            panic!(
                "this test needs the cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max) to throttle its \
                 fixture; mount it (or run on a host that has it)"
            );
        };
        let dir = root.join(format!("lockdump-throttle-{}-{pid}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let set = |file: &str, value: String| set_in(&dir, file, value);
        if v2 {
            set("cpu.max", format!("{QUOTA_US} {PERIOD_US}"));
        } else {
            set("cpu.cfs_period_us", PERIOD_US.to_string());
            set("cpu.cfs_quota_us", QUOTA_US.to_string());
        }
        let spinner = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn the spinner");
        let t = Throttle {
            dir,
            root,
            pid,
            spinner,
        };
        set_in(&t.dir, "cgroup.procs", t.spinner.id().to_string());
        set_in(&t.dir, "cgroup.procs", pid.to_string());
        t
    }
}

fn set_in(dir: &Path, file: &str, value: String) {
    fs::write(dir.join(file), &value).unwrap_or_else(|e| panic!("{}/{file} = {value}: {e}", dir.display()))
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let _ = self.spinner.kill();
        let _ = self.spinner.wait();
        // Back to the root group (if it still runs), so the group can go.
        let _ = fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}
