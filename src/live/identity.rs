//! Where a report comes from, for comparing reports of many hosts and pods:
//! the host (name, boot ID), when it was captured (RFC 3339), and per process
//! its PID namespace and the container its cgroup names.
//!
//! Everything here is read from /proc and /proc/sys; nothing needs NSS or a
//! network lookup (the host name is the kernel's UTS name, as `hostname`
//! prints it: inside a pod or container, the pod's or container's name).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The machine lockdump ran on, and when it captured.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// The UTS host name (`/proc/sys/kernel/hostname`).
    pub name: Option<String>,
    /// `/proc/sys/kernel/random/boot_id`: differs after every reboot, and
    /// between hosts (PIDs are only comparable within one boot).
    pub boot_id: Option<String>,
}

impl Host {
    pub fn read() -> Host {
        let nonempty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Host {
            // procfs 0.17 has no reader for the UTS host name
            // (procfs::sys::kernel reads version, ostype, pid_max, ... but
            // not hostname): read by hand.
            name: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .and_then(nonempty),
            boot_id: procfs::sys::kernel::random::boot_id().ok().and_then(nonempty),
        }
    }
}

/// A container, as the process's cgroup path names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// The container ID (64 hex digits for Docker, containerd, CRI-O, Podman).
    pub id: String,
    /// `docker`, `containerd`, `cri-o`, `podman`, `lxc`, or null when the
    /// path does not say (cgroup v1 `kubepods/.../<id>`).
    pub runtime: Option<&'static str>,
    /// The Kubernetes pod UID when the cgroup is under `kubepods`.
    pub pod_uid: Option<String>,
    /// The cgroup path it was read from.
    pub cgroup: String,
}

/// Per-process identity.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessIdentity {
    pub pid: i32,
    /// Inode of `/proc/PID/ns/pid` (as `ls -Li` or `lsns` show it).
    pub pid_ns: Option<u64>,
    /// The PID namespace is not lockdump's own.
    pub other_pid_ns: bool,
    pub container: Option<Container>,
}

impl ProcessIdentity {
    pub fn read(pid: i32) -> ProcessIdentity {
        use procfs::process::Process;
        let process = Process::new(pid).ok();
        // The inode of ns/pid (procfs stats each entry of the ns directory).
        let ns = |p: Option<&Process>| {
            let all = p?.namespaces().ok()?;
            all.0.get(std::ffi::OsStr::new("pid")).map(|n| n.identifier)
        };
        let pid_ns = ns(process.as_ref());
        let own = ns(Process::myself().ok().as_ref());
        ProcessIdentity {
            pid,
            pid_ns,
            other_pid_ns: pid_ns.is_some() && own.is_some() && pid_ns != own,
            container: process.and_then(|p| p.cgroups().ok()).and_then(|g| container_in(&g.0)),
        }
    }
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container a `/proc/PID/cgroup` file names, if any. Recognized
/// (cgroup v2 `0::PATH` or any v1 line): a path component that is, or ends
/// in, a 64-hex-digit ID, with the runtime from its prefix
/// (`docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`,
/// `libpod-ID.scope`, `/docker/ID`), and `lxc.payload.NAME` / `lxc/NAME`.
/// The pod UID comes from a `pod<UID>` component (`kubepods-…-pod<UID>.slice`
/// with `_` for `-` under systemd). A process in its own cgroup namespace
/// sees `0::/` and no ID: then `None`.
pub fn container_of(cgroup_file: &str) -> Option<Container> {
    use procfs::FromBufRead;
    let groups = procfs::ProcessCGroups::from_buf_read(cgroup_file.as_bytes()).ok()?;
    container_in(&groups.0)
}

/// [`container_of`] for the lines procfs read from `/proc/PID/cgroup`.
fn container_in(groups: &[procfs::ProcessCGroup]) -> Option<Container> {
    // Prefer the unified (v2) line `0::PATH`; else the first v1 line that names one.
    let unified = |g: &&procfs::ProcessCGroup| g.hierarchy == 0 && g.controllers.is_empty();
    let lines = groups
        .iter()
        .filter(unified)
        .chain(groups.iter().filter(|g| !unified(g)));
    lines.into_iter().find_map(|g| container_in_path(&g.pathname))
}

fn container_in_path(path: &str) -> Option<Container> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let pod_uid = parts.iter().find_map(|p| {
        let p = p.strip_suffix(".slice").unwrap_or(p);
        let i = p.rfind("pod")?;
        let uid = &p[i + 3..];
        (uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_'))
            .then(|| uid.replace('_', "-"))
    });
    let kube = parts.iter().any(|p| p.starts_with("kubepods"));
    for (i, part) in parts.iter().enumerate().rev() {
        let p = part.strip_suffix(".scope").unwrap_or(part);
        let known = [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
        ];
        for (prefix, runtime) in known {
            if let Some(id) = p.strip_prefix(prefix).filter(|id| is_hex_id(id)) {
                return Some(Container {
                    id: id.to_string(),
                    runtime: Some(runtime),
                    pod_uid,
                    cgroup: path.to_string(),
                });
            }
        }
        if is_hex_id(p) {
            let parent = if i > 0 { parts[i - 1] } else { "" };
            let runtime = match parent {
                "docker" => Some("docker"),
                "libpod_parent" => Some("podman"),
                _ if kube => None,
                _ => None,
            };
            return Some(Container {
                id: p.to_string(),
                runtime,
                pod_uid,
                cgroup: path.to_string(),
            });
        }
        if let Some(name) = p.strip_prefix("lxc.payload.") {
            return Some(Container {
                id: name.to_string(),
                runtime: Some("lxc"),
                pod_uid,
                cgroup: path.to_string(),
            });
        }
        if i > 0 && parts[i - 1] == "lxc" && i == 1 {
            return Some(Container {
                id: p.to_string(),
                runtime: Some("lxc"),
                pod_uid,
                cgroup: path.to_string(),
            });
        }
    }
    None
}

/// `t` as RFC 3339 in UTC with microseconds: `2026-05-01T08:09:10.123456Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// (year, month, day) of the day `days` after 1970-01-01, in the proleptic
/// Gregorian calendar: count 400-year eras (146097 days each) from
/// 0000-03-01, so that the leap day is the last day of a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_of_known_instants() {
        let at = |s: u64, us: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        // `date -u -d @951782400` = 2000-02-29 00:00:00 (a leap day of a century leap year).
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(at(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        // 2100 is not a leap year: 2100-02-28 is followed by 2100-03-01.
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(1_780_000_000, 123_456), "2026-05-28T20:26:40.123456Z");
    }

    const ID: &str = "3f4a1b2c3d4e5f60718293a4b5c6d7e83f4a1b2c3d4e5f60718293a4b5c6d7e8";

    #[test]
    fn container_ids_from_cgroup_paths() {
        let c = container_of(&format!("0::/system.slice/docker-{ID}.scope\n")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime, c.pod_uid), (ID, Some("docker"), None));
        let c = container_of(&format!("12:pids:/docker/{ID}\n11:cpu:/docker/{ID}\n")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some("docker")));
        let c = container_of(&format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5d3f1a2b_6c7d_4e8f_9a0b_1c2d3e4f5a6b.slice/cri-containerd-{ID}.scope\n"
        ))
        .unwrap();
        assert_eq!(
            (c.id.as_str(), c.runtime, c.pod_uid.as_deref()),
            (ID, Some("containerd"), Some("5d3f1a2b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"))
        );
        let c = container_of(&format!(
            "4:memory:/kubepods/besteffort/pod5d3f1a2b-6c7d-4e8f-9a0b-1c2d3e4f5a6b/{ID}\n"
        ))
        .unwrap();
        assert_eq!(
            (c.id.as_str(), c.runtime, c.pod_uid.as_deref()),
            (ID, None, Some("5d3f1a2b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"))
        );
        let c = container_of(&format!("0::/machine.slice/libpod-{ID}.scope/container\n")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some("podman")));
        let c = container_of(&format!("0::/kubepods.slice/crio-{ID}.scope\n")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some("cri-o")));
        let c = container_of("0::/lxc.payload.web1/system.slice\n").unwrap();
        assert_eq!((c.id.as_str(), c.runtime), ("web1", Some("lxc")));
        // Not containers: a login session, the root, a cgroup namespace's view.
        assert_eq!(container_of("0::/user.slice/user-0.slice/session-3.scope\n"), None);
        assert_eq!(container_of("0::/\n"), None);
        assert_eq!(container_of("0::/init.scope\n"), None);
    }
}
