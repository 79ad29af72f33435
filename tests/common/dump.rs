//! Running `lockdump --json` on a fixture and parsing what it printed, with
//! the target kind as an axis: the same check runs against the live process
//! (`lockdump -p PID`) and against a core file of the same process (`gcore`
//! writes it; `lockdump --core FILE` reads it).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{run_lockdump, unique_path};

/// What lockdump is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// The running process: `lockdump -p PID`.
    Live,
    /// A core file of the running process, written by `gcore` (gdb stops it
    /// with ptrace, dumps it and lets it go on): `lockdump --core FILE`.
    Core,
}

impl TargetKind {
    /// Both kinds, live first.
    pub const BOTH: [TargetKind; 2] = [TargetKind::Live, TargetKind::Core];

    /// `live` or `core`, as the report's `source.kind` says it.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Live => "live",
            TargetKind::Core => "core",
        }
    }
}

/// One `lockdump --json` run: its output, the parsed JSON and its wall time.
pub struct Dump {
    pub kind: TargetKind,
    pub out: Output,
    pub json: Value,
    pub elapsed: Duration,
}

impl Dump {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
}

/// The PIDs of `verdict.stuck` whose every thread is asleep for good, sorted.
pub fn stuck_pids(doc: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = doc["verdict"]["stuck"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["whole_process"] == true)
                .filter_map(|s| s["pid"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// lockdump's stdout as JSON; panics saying `what` ran, its exit status,
/// stderr and stdout when it is not.
pub fn json_of(out: &Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: invalid JSON ({e}), exit {:?}, stderr:\n{}\nstdout:\n{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `lockdump ARGS` (which include `--json`), timed; its stdout must be JSON
/// (whatever the exit code: callers check that).
pub fn lockdump_json(args: &[&str], kind: TargetKind) -> Dump {
    let started = Instant::now();
    let out = run_lockdump(args);
    let elapsed = started.elapsed();
    let json = json_of(&out, &format!("lockdump {args:?}"));
    Dump {
        kind,
        out,
        json,
        elapsed,
    }
}

impl Dump {
    /// It examined the target and gave a verdict: exit 0 (no hang) or 1.
    pub fn expect_verdict(self) -> Dump {
        assert!(
            matches!(self.code(), Some(0) | Some(1)),
            "lockdump could not inspect ({:?}):\n{}",
            self.out.status,
            self.stderr()
        );
        self
    }
}

/// Dump the running processes `pids` as `kind` says: `lockdump --json -p
/// PID...` live, or `gcore` each and `lockdump --json --core FILE...`
/// (the cores are removed afterwards). `extra` arguments go last. The
/// report must be JSON and say which kind it read (`source.kind`); the
/// exit code is the caller's to check.
pub fn dump(kind: TargetKind, pids: &[i32], extra: &[&str]) -> Dump {
    let mut args: Vec<String> = vec!["--json".into()];
    let cores: Vec<Core> = match kind {
        TargetKind::Live => {
            for p in pids {
                args.extend(["-p".into(), p.to_string()]);
            }
            Vec::new()
        }
        TargetKind::Core => pids.iter().map(|&p| Core(gcore(p))).collect(),
    };
    for c in &cores {
        args.extend(["--core".into(), c.0.display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = lockdump_json(&args, kind);
    assert_eq!(
        d.json["source"]["kind"],
        kind.name(),
        "lockdump {args:?}: {}",
        d.json["source"]
    );
    d
}

/// A core file written for one [`dump`], removed when done.
struct Core(PathBuf);

impl Drop for Core {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `gcore -o PREFIX PID`: gdb attaches, writes PREFIX.PID, detaches. Returns
/// the core's path (in the scratch directory; the caller removes it if it
/// wants to).
pub fn gcore(pid: i32) -> PathBuf {
    let prefix = unique_path("gcore");
    let out = super::fixture::output_with_timeout(
        {
            let mut c = Command::new("gcore");
            c.arg("-o").arg(&prefix).arg(pid.to_string());
            c
        },
        // gdb reads every mapping of the process: more than one ordinary
        // wait on a loaded machine (it used to have no deadline at all).
        3 * super::TIMEOUT,
    );
    let core = PathBuf::from(format!("{}.{pid}", prefix.display()));
    assert!(
        out.status.success() && core.is_file(),
        "gcore {pid} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    core
}
