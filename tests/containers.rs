//! Containers from both sides, without a container engine: the AB-BA
//! fixture runs in its own PID and mount namespace (`unshare --pid --fork
//! --mount --mount-proc`), optionally with another root filesystem (Debian
//! sid's, /opt/sid-root, from scripts/setup-sid-python.sh), and lockdump
//! looks at it from the host, and from inside its PID namespace as a debug
//! sidecar does (`kubectl debug --target`, `docker run --pid=container:`):
//! through `nsenter`, or as the static binary alone in an otherwise empty
//! root directory. Also: the static binary in an empty chroot, and an attach
//! refused for want of CAP_SYS_PTRACE.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{build_c, fixture::output_with_timeout, static_lockdump, Fixture, Variant, TIMEOUT};
use serde_json::Value;

const SID_ROOT: &str = "/opt/sid-root";

/// A fixture started in new PID and mount namespaces, with its host PID and
/// the host TID of every thread READY named (READY's TIDs are the namespace's).
struct Namespaced {
    fx: Fixture,
    host_pid: i32,
    /// READY name -> (host TID, namespace TID).
    tids: BTreeMap<String, (i32, i32)>,
    /// Removed on drop (a copy of the fixture inside another root).
    _copy: Option<TempDir>,
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(parent: &Path, stem: &str) -> TempDir {
        let p = parent.join(format!("{stem}.{}.{}", std::process::id(), unique()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `NSpid` of a thread: (host TID, TID in its innermost namespace).
fn ns_tid(pid: i32, tid: i32) -> i32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).expect("task status");
    let line = status.lines().find(|l| l.starts_with("NSpid:")).expect("NSpid line");
    line.split_whitespace().last().unwrap().parse().unwrap()
}

fn ns_inode(pid: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/pid")).expect("ns/pid").ino()
}

impl Namespaced {
    /// abba in `unshare --pid --fork --mount --mount-proc [--root=ROOT]`.
    fn start(root: Option<&str>) -> Namespaced {
        let exe = build_c("abba", Variant::Debug);
        let (copy, path_inside) = match root {
            None => (None, exe.clone()),
            Some(root) => {
                let dir = TempDir::new(&Path::new(root).join("tmp"), "lockdump-containers");
                std::fs::copy(&exe, dir.0.join("abba")).expect("copy the fixture into the root");
                let inside = Path::new("/").join(dir.0.strip_prefix(root).unwrap()).join("abba");
                (Some(dir), inside)
            }
        };
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount", "--mount-proc", "--kill-child"]);
        if let Some(root) = root {
            cmd.arg(format!("--root={root}"));
        }
        cmd.arg(&path_inside);
        let fx = Fixture::spawn(cmd);
        assert_eq!(fx.pid(), 1, "the fixture is PID 1 of its namespace: {:?}", fx.ready.raw);
        let unshare = fx.child_pid();
        let kids = children(unshare);
        assert_eq!(kids.len(), 1, "unshare --fork has one child: {kids:?}");
        let host_pid = kids[0];
        let mut by_ns = BTreeMap::new();
        for e in std::fs::read_dir(format!("/proc/{host_pid}/task")).unwrap().flatten() {
            let tid: i32 = e.file_name().to_str().unwrap().parse().unwrap();
            by_ns.insert(ns_tid(host_pid, tid), tid);
        }
        let tids: BTreeMap<String, (i32, i32)> = fx
            .ready
            .threads
            .iter()
            .map(|(name, &ns)| {
                let host = *by_ns
                    .get(&ns)
                    .unwrap_or_else(|| panic!("no host thread has ns TID {ns}: {by_ns:?}"));
                (name.clone(), (host, ns))
            })
            .collect();
        let host_tids: Vec<i32> = tids.values().map(|t| t.0).collect();
        fx.wait_blocked(&host_tids);
        Namespaced {
            fx,
            host_pid,
            tids,
            _copy: copy,
        }
    }

    fn host(&self, name: &str) -> i32 {
        self.tids[name].0
    }
    fn ns(&self, name: &str) -> i32 {
        self.tids[name].1
    }
}

fn json(out: &Output, what: &str) -> Value {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit code (1 = deadlock); stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: bad JSON: {e}"))
}

fn thread<'a>(doc: &'a Value, tid: i32) -> &'a Value {
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("no thread {tid}"))
}

/// The AB-BA cycle as lockdump names it with TIDs `t1`/`t2`, the fixture's
/// lock addresses, exact owners.
fn check_cycle(doc: &Value, t1: i32, t2: i32, lock_a: u64, lock_b: u64) {
    let d = &doc["deadlocks"];
    assert_eq!(d.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(d[0]["threads"], serde_json::json!([t1.min(t2), t1.max(t2)]));
    assert_eq!(d[0]["confidence"], "exact");
    let (first_waits, second_waits) = if t1 < t2 { (lock_b, lock_a) } else { (lock_a, lock_b) };
    assert_eq!(
        d[0]["resources"],
        serde_json::json!([format!("{first_waits:#x}"), format!("{second_waits:#x}")])
    );
    assert_eq!(thread(doc, t1)["blocked_on"]["owner_tid"], t2);
    assert_eq!(thread(doc, t2)["blocked_on"]["owner_tid"], t1);
    assert_eq!(thread(doc, t1)["blocked_on"]["name"], "lock_b");
}

#[test]
fn target_in_its_own_namespaces_seen_from_the_host() {
    let ns = Namespaced::start(None);
    let pid = ns.host_pid.to_string();
    let out = output_with_timeout(
        {
            let mut c = Command::new(env!("CARGO_BIN_EXE_lockdump"));
            c.args(["--json", "-p", &pid]);
            c
        },
        TIMEOUT,
    );
    let doc = json(&out, "host view");
    check_cycle(
        &doc,
        ns.host("t1"),
        ns.host("t2"),
        ns.fx.lock("lock_a"),
        ns.fx.lock("lock_b"),
    );
    for name in ["main", "t1", "t2"] {
        let t = thread(&doc, ns.host(name));
        assert_eq!(
            (t["tid"].as_i64(), t["ns_tid"].as_i64()),
            (Some(ns.host(name) as i64), Some(ns.ns(name) as i64))
        );
        assert_ne!(ns.host(name), ns.ns(name));
    }
    let p = &doc["processes"][0];
    assert_eq!(p["ns_pid"], 1);
    assert_eq!(p["pid_ns"], ns_inode(&pid));
    assert_ne!(p["pid_ns"], ns_inode("self"));
    assert_eq!(p["container"], Value::Null, "no container runtime's cgroup here");
    assert_eq!(
        doc["host"]["boot_id"],
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim()
    );

    // The text report shows both TIDs wherever a thread is named.
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockdump"));
    c.args(["--color", "never", "-p", &pid]);
    let out = output_with_timeout(c, TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (h1, n1, h2, n2) = (ns.host("t1"), ns.ns("t1"), ns.host("t2"), ns.ns("t2"));
    let expect = [
        format!("  Thread {h1} (ns TID {n1}) \"t1\" waits for mutex lock_b ({:#x}), held by thread {h2} (ns TID {n2}) \"t2\"", ns.fx.lock("lock_b")),
        format!("  own PID namespace (pid:[{}]): PID 1 there; threads show host TID (ns TID)", ns_inode(&pid)),
        format!("Thread {h2} (ns TID {n2}) \"t2\" state S, in futex("),
    ];
    for e in expect {
        assert!(
            text.lines().any(|l| l.starts_with(&e)),
            "no line starting with {e:?} in:\n{text}"
        );
    }
}

#[test]
fn target_in_another_root_filesystem_seen_from_the_host() {
    let ns = Namespaced::start(Some(SID_ROOT));
    // Its files are sid's: the C library lockdump reads is sid's libc,
    // reachable only through /proc/PID/root.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", ns.host_pid)).unwrap();
    let libc = maps.lines().find(|l| l.contains("libc.so.6")).expect("libc mapped");
    let libc_path = libc.split_whitespace().last().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/root", ns.host_pid)).unwrap(),
        Path::new(SID_ROOT)
    );
    // /proc/PID/maps names files as the reader sees them: from the host,
    // the mapped libc is the one under sid's root.
    assert!(libc_path.starts_with(&format!("{SID_ROOT}/")), "{libc}");

    let mut c = Command::new(env!("CARGO_BIN_EXE_lockdump"));
    c.args(["--json", "-p", &ns.host_pid.to_string()]);
    let doc = json(&output_with_timeout(c, TIMEOUT), "sid root, host view");
    check_cycle(
        &doc,
        ns.host("t1"),
        ns.host("t2"),
        ns.fx.lock("lock_a"),
        ns.fx.lock("lock_b"),
    );
    assert_eq!(doc["processes"][0]["libc"]["name"], "glibc");
    // sid's glibc (2.43): main's pthread_join is still a wait for t1 (issue
    // 16.3), found through the joined thread's tid field, not a bare futex.
    let join = &thread(&doc, ns.host("main"))["blocked_on"];
    assert_eq!(
        (&join["kind"], &join["name"], &join["owner_tid"], &join["confidence"]),
        (
            &Value::from("thread"),
            &Value::from("t1"),
            &Value::from(ns.host("t1")),
            &Value::from("exact")
        ),
        "{join}"
    );
    // Symbolized from sid's copy of the fixture (/proc/PID/root): the wait site has a line.
    let site = &thread(&doc, ns.host("t1"))["blocked_on"]["site"];
    assert_eq!(site["function"], "t1_main", "{site}");
}

/// A directory holding only `/lockdump` (the static binary) and an empty
/// `/proc`, as a debug container image with nothing but lockdump.
fn lone_root() -> TempDir {
    let dir = TempDir::new(&common::scratch_dir(), "lone-root");
    std::fs::copy(static_lockdump(), dir.0.join("lockdump")).expect("copy the static lockdump");
    std::fs::create_dir(dir.0.join("proc")).unwrap();
    let entries: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(entries, ["lockdump", "proc"], "nothing else in the root");
    dir
}

#[test]
fn sidecar_in_the_targets_pid_namespace_with_only_the_static_binary() {
    // `kubectl debug -it POD --image=IMAGE --target=CONTAINER -- lockdump -p 1`:
    // the debug container joins the target's PID namespace but has its own
    // root filesystem and its own /proc mount.
    let ns = Namespaced::start(Some(SID_ROOT));
    let root = lone_root();
    let mut c = Command::new("nsenter");
    c.args(["--target", &ns.host_pid.to_string(), "--pid", "--"]);
    c.args(["unshare", "--mount", "--mount-proc"]);
    c.arg(format!("--root={}", root.0.display()));
    c.args(["/lockdump", "--json", "-p", "1"]);
    let doc = json(&output_with_timeout(c, TIMEOUT), "sidecar");
    // Inside, every TID is the namespace's, and lockdump is in the target's PID namespace.
    check_cycle(
        &doc,
        ns.ns("t1"),
        ns.ns("t2"),
        ns.fx.lock("lock_a"),
        ns.fx.lock("lock_b"),
    );
    assert_eq!(doc["pids"], serde_json::json!([1]));
    for name in ["main", "t1", "t2"] {
        let t = thread(&doc, ns.ns(name));
        assert_eq!(t["tid"], t["ns_tid"]);
    }
    assert_eq!(doc["processes"][0]["pid_ns"], ns_inode(&ns.host_pid.to_string()));
}

#[test]
fn sidecar_sharing_the_targets_mount_namespace() {
    // `docker exec` / `nsenter -t PID -p -m`: the target's /proc, the host's binary path.
    let ns = Namespaced::start(None);
    let mut c = Command::new("nsenter");
    c.args(["--target", &ns.host_pid.to_string(), "--pid", "--mount", "--"]);
    c.arg(env!("CARGO_BIN_EXE_lockdump"));
    c.args(["--color", "never", "-p", "1"]);
    let out = output_with_timeout(c, TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (n1, n2) = (ns.ns("t1"), ns.ns("t2"));
    let line = format!(
        "  Thread {n1} \"t1\" waits for mutex lock_b ({:#x}), held by thread {n2} \"t2\"",
        ns.fx.lock("lock_b")
    );
    assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    assert!(
        !text.contains("ns TID"),
        "inside its namespace the TIDs are the same:\n{text}"
    );
}

#[test]
fn static_binary_alone_in_a_chroot_finds_the_host_deadlock() {
    let fx = Fixture::spawn_blocked(common::c_fixture("abba", Variant::Debug, &[]));
    let root = lone_root();
    let mut c = Command::new("unshare");
    c.args(["--mount", "--mount-proc"]);
    c.arg(format!("--root={}", root.0.display()));
    c.args(["/lockdump", "--json", "-p", &fx.pid().to_string()]);
    let doc = json(&output_with_timeout(c, TIMEOUT), "static in chroot");
    check_cycle(&doc, fx.tid("t1"), fx.tid("t2"), fx.lock("lock_a"), fx.lock("lock_b"));
    assert_eq!(thread(&doc, fx.tid("t1"))["blocked_on"]["site"]["function"], "t1_main");
}

#[test]
fn missing_cap_sys_ptrace_names_the_container_way_out() {
    let fx = Fixture::spawn_blocked(common::c_fixture("abba", Variant::Debug, &[]));
    // Root without CAP_SYS_PTRACE (as in `docker run` without --cap-add):
    // the target (root, every capability) is out of reach.
    let mut c = Command::new("setpriv");
    c.args(["--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "--"]);
    c.arg(env!("CARGO_BIN_EXE_lockdump"));
    c.args(["-p", &fx.pid().to_string()]);
    let out = output_with_timeout(c, TIMEOUT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "absent".into());
    assert_eq!(
        err.trim_end(),
        format!(
            "lockdump: permission denied attaching to PID {}: run lockdump as the process owner or as root (it needs CAP_SYS_PTRACE); \
/proc/sys/kernel/yama/ptrace_scope is {scope} (lockdump lacks CAP_SYS_PTRACE, as a container's processes do by default, even as root; \
in a container, give lockdump CAP_SYS_PTRACE: `docker run --cap-add SYS_PTRACE --pid=container:NAME ...`, `kubectl debug --profile=general ...`; \
outside one, run it as the process owner or with sudo)",
            fx.pid()
        )
    );
}
