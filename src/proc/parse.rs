//! Pure parsers for the /proc text formats lockdump reads.
//!
//! Kept free of I/O so they can be unit-tested and fuzzed on arbitrary bytes:
//! every parser returns `None` (or skips a line) on malformed input, never panics.

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub shared: bool,
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    /// Path or pseudo-name (`[stack]`, `[vdso]`, `[heap]`); empty for anonymous maps.
    pub path: String,
    /// The file was deleted (or replaced) after it was mapped.
    pub deleted: bool,
}

impl MapEntry {
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
    /// The entry of `maps` (sorted by address, as /proc/PID/maps and a
    /// core's segments are) that contains `addr`: a binary search, since a
    /// process with 10,000 threads has 20,000 entries and this is asked for
    /// every thread.
    pub fn find(maps: &[MapEntry], addr: u64) -> Option<&MapEntry> {
        let i = maps.partition_point(|m| m.end <= addr);
        maps.get(i).filter(|m| m.contains(addr))
    }
    /// The path as a core's NT_FILE note names it (with the kernel's
    /// ` (deleted)` suffix for a deleted file).
    pub fn core_path(&self) -> String {
        if self.deleted {
            format!("{} (deleted)", self.path)
        } else {
            self.path.clone()
        }
    }
    /// A mapping of a real file (not anonymous, not a `[pseudo]` region).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// Parse one maps line: `start-end perms offset maj:min inode   path`.
pub fn parse_maps_line(line: &str) -> Option<MapEntry> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.as_bytes();
    let offset = hex(it.next()?)?;
    let dev = it.next()?;
    let inode = it.next()?.parse().ok()?;
    let rest = it.next().unwrap_or("").trim_start();
    let (start, end) = range.split_once('-')?;
    let (start, end) = (hex(start)?, hex(end)?);
    if perms.len() < 4 || end < start {
        return None;
    }
    let (maj, min) = dev.split_once(':')?;
    let (path, deleted) = match rest.strip_suffix(" (deleted)") {
        Some(p) => (p.to_string(), true),
        None => (rest.to_string(), false),
    };
    Some(MapEntry {
        start,
        end,
        readable: perms[0] == b'r',
        writable: perms[1] == b'w',
        executable: perms[2] == b'x',
        shared: perms[3] == b's',
        offset,
        dev_major: u32::from_str_radix(maj, 16).ok()?,
        dev_minor: u32::from_str_radix(min, 16).ok()?,
        inode,
        path,
        deleted,
    })
}

pub fn parse_maps(text: &str) -> Vec<MapEntry> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// The fields of `/proc/PID/status` lockdump needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    /// Single-letter state (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, `I`).
    pub state: char,
    pub tgid: i32,
    pub tracer_pid: i32,
    /// PIDs of this task in each nested PID namespace, outermost first.
    pub ns_pids: Vec<i32>,
    pub ns_tgids: Vec<i32>,
    pub uid: u32,
    /// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches`: how often
    /// the task left a CPU. A task seen off CPU twice with the same count
    /// did not run in between (`--no-stop`'s consistency check).
    pub ctxt_switches: Option<u64>,
    /// `PPid`: the parent process.
    pub ppid: i32,
    /// `SigCgt`: signals with a handler installed (bit N-1 for signal N).
    pub sig_cgt: u64,
}

pub fn parse_status(text: &str) -> Option<Status> {
    let mut st = Status {
        state: '?',
        ..Default::default()
    };
    let mut saw_state = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => st.name = value.to_string(),
            "State" => {
                st.state = value.chars().next()?;
                saw_state = true;
            }
            "Tgid" => st.tgid = value.parse().ok()?,
            "TracerPid" => st.tracer_pid = value.parse().ok()?,
            "PPid" => st.ppid = value.parse().ok()?,
            "SigCgt" => st.sig_cgt = u64::from_str_radix(value, 16).ok()?,
            "NSpid" => st.ns_pids = value.split_whitespace().filter_map(|v| v.parse().ok()).collect(),
            "NStgid" => st.ns_tgids = value.split_whitespace().filter_map(|v| v.parse().ok()).collect(),
            "Uid" => st.uid = value.split_whitespace().next()?.parse().ok()?,
            "voluntary_ctxt_switches" | "nonvoluntary_ctxt_switches" => {
                let n: u64 = value.parse().ok()?;
                st.ctxt_switches = Some(st.ctxt_switches.unwrap_or(0).wrapping_add(n));
            }
            _ => {}
        }
    }
    saw_state.then_some(st)
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of a
/// `/proc/PID/task/TID/status`: a thread that runs and sleeps again adds to
/// one of them, so an unchanged sum (with an unchanged `syscall` line, which
/// shows a thread that is running now) means it did not run in between.
pub fn parse_switches(text: &str) -> Option<u64> {
    let count = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some(count("voluntary_ctxt_switches")? + count("nonvoluntary_ctxt_switches")?)
}

/// The fields of `/proc/PID/stat` lockdump needs. The command name may
/// contain spaces and parentheses, so parsing starts after the last `)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The command name between the parentheses (same as `comm`).
    pub comm: String,
    pub state: char,
    /// The parent process (for a thread: its process's parent).
    pub ppid: i32,
    pub flags: u64,
    pub start_time: u64,
    /// `utime` + `stime`: CPU time used, in clock ticks (`--watch` tells a
    /// thread that ran from one that slept by it).
    pub cpu_ticks: u64,
}

/// `PF_KTHREAD` in the task flags: a kernel thread, which has no user space.
pub const PF_KTHREAD: u64 = 0x0020_0000;

pub fn parse_stat(text: &str) -> Option<Stat> {
    let close = text.rfind(')')?;
    let open = text.find('(')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest = &text[close + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state(0) ppid(1) pgrp(2) session(3) tty(4) tpgid(5) flags(6) ... starttime(19)
    Some(Stat {
        comm,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        flags: fields.get(6)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
        cpu_ticks: fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
    })
}

/// The first field of `/proc/PID/task/TID/schedstat`: nanoseconds the task
/// has spent on a CPU. Finer than `stat`'s clock ticks (10 ms), which a
/// 20–50 ms sampling interval needs to see whether a thread ran at all.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `/proc/PID/task/TID/syscall`: what the thread is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallLine {
    /// Inside syscall `nr` with these arguments, stack pointer and pc.
    InSyscall {
        nr: i64,
        args: [u64; 6],
        sp: u64,
        pc: u64,
    },
    /// Blocked, but not in a syscall (e.g. a page fault): `-1 sp pc`.
    Blocked {
        sp: u64,
        pc: u64,
    },
    Running,
}

fn hex0x(s: &str) -> Option<u64> {
    hex(s.strip_prefix("0x").unwrap_or(s))
}

pub fn parse_syscall(text: &str) -> Option<SyscallLine> {
    let text = text.trim();
    if text == "running" {
        return Some(SyscallLine::Running);
    }
    let f: Vec<&str> = text.split_whitespace().collect();
    let nr: i64 = f.first()?.parse().ok()?;
    if nr == -1 && f.len() == 3 {
        return Some(SyscallLine::Blocked {
            sp: hex0x(f[1])?,
            pc: hex0x(f[2])?,
        });
    }
    if f.len() != 9 {
        return None;
    }
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = hex0x(f[1 + i])?;
    }
    Some(SyscallLine::InSyscall {
        nr,
        args,
        sp: hex0x(f[7])?,
        pc: hex0x(f[8])?,
    })
}

/// Parse `/proc/PID/auxv` (pairs of native-endian u64) into (type, value).
pub fn parse_auxv(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for pair in bytes.chunks_exact(16) {
        let k = u64::from_ne_bytes(pair[..8].try_into().unwrap());
        let v = u64::from_ne_bytes(pair[8..].try_into().unwrap());
        if k == 0 {
            break;
        }
        out.push((k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_switches() {
        let text =
            "Name:\tep_wait\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(parse_switches(text), Some(9));
        assert_eq!(parse_switches("voluntary_ctxt_switches:\t7\n"), None);
    }

    #[test]
    fn maps_lines() {
        let m = parse_maps_line(
            "7f1c2a000000-7f1c2a022000 r-xp 00028000 fe:01 1837      /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .unwrap();
        assert_eq!(
            (m.start, m.end, m.offset, m.inode),
            (0x7f1c2a000000, 0x7f1c2a022000, 0x28000, 1837)
        );
        assert!(m.executable && m.readable && !m.writable && !m.shared && m.is_file());
        assert_eq!(m.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        let d = parse_maps_line("55d0a0000000-55d0a0001000 r--p 00000000 fe:01 99 /tmp/a b (deleted)").unwrap();
        assert!(d.deleted);
        assert_eq!(d.path, "/tmp/a b");
        let anon = parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ").unwrap();
        assert!(!anon.is_file());
        let stack =
            parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]").unwrap();
        assert_eq!(stack.path, "[stack]");
        assert!(parse_maps_line("garbage").is_none());
        assert!(parse_maps_line("2000-1000 r-xp 0 0:0 0").is_none());
    }

    #[test]
    fn status_fields() {
        let s = parse_status("Name:\tpy thr\nState:\tS (sleeping)\nTgid:\t42\nTracerPid:\t7\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t42\t1\n").unwrap();
        assert_eq!(s.name, "py thr");
        assert_eq!((s.state, s.tgid, s.tracer_pid, s.uid), ('S', 42, 7, 1000));
        assert_eq!(s.ns_pids, vec![42, 1]);
        assert_eq!(s.ctxt_switches, None);
        let s =
            parse_status("State:\tt (tracing stop)\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n")
                .unwrap();
        assert_eq!((s.state, s.ctxt_switches), ('t', Some(15)));
        assert!(parse_status("nothing").is_none());
    }

    #[test]
    fn stat_with_odd_comm() {
        let s = parse_stat("12 (a) b) S 1 12 12 0 -1 4194560 1 0 0 0 7 5 0 0 20 0 1 0 5555 0 0").unwrap();
        assert_eq!((s.state, s.flags, s.start_time, s.cpu_ticks), ('S', 4194560, 5555, 12));
        assert_eq!(parse_schedstat("95187780 612448765 360\n"), Some(95187780));
        assert_eq!(s.comm, "a) b");
        assert!(parse_stat("1 (x").is_none());
    }

    #[test]
    fn syscall_lines() {
        assert_eq!(parse_syscall("running\n"), Some(SyscallLine::Running));
        assert_eq!(
            parse_syscall("202 0x5638dbdb2060 0x80 0x2 0x0 0x0 0x0 0x7ffc1000 0x7f00aa\n"),
            Some(SyscallLine::InSyscall {
                nr: 202,
                args: [0x5638dbdb2060, 0x80, 2, 0, 0, 0],
                sp: 0x7ffc1000,
                pc: 0x7f00aa
            })
        );
        assert_eq!(
            parse_syscall("-1 0x10 0x20"),
            Some(SyscallLine::Blocked { sp: 0x10, pc: 0x20 })
        );
        assert_eq!(parse_syscall("202 0x1"), None);
    }

    #[test]
    fn auxv_pairs() {
        let mut b = Vec::new();
        for v in [33u64, 0x7fff0000, 6, 4096, 0, 0] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&b), vec![(33, 0x7fff0000), (6, 4096)]);
    }
}
