//! Property tests (fuzzing on stable) for the /proc parsers: any input,
//! random or almost-valid, gives a value or `None`, never a panic, and what
//! they return is consistent with the input.
//!
//! CI runs proptest's default 256 cases per property; a long run:
//! `PROPTEST_CASES=100000 cargo test --release --lib proc::fuzz`.
//! Failing inputs are saved under proptest-regressions/ and replayed first.
//! (A unit test since issue 24 item 6: as tests/fuzz_proc.rs it needed the
//! parsers public.)

use super::parse::{parse_auxv, parse_maps, parse_maps_line, parse_stat, parse_status, parse_syscall};
use proptest::prelude::*;

/// Apply byte-level edits (insert, delete, replace) to a valid line, at
/// positions chosen by the strategy: near-misses are what real parsers fail on.
fn mutate(valid: String, edits: Vec<(usize, u8, u8)>) -> String {
    let mut b = valid.into_bytes();
    for (pos, op, byte) in edits {
        let at = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
        match op % 3 {
            0 => b.insert(at, byte),
            1 if at < b.len() => {
                b.remove(at);
            }
            _ if at < b.len() => b[at] = byte,
            _ => b.push(byte),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            any::<u8>(),
            prop_oneof![any::<u8>(), Just(b' '), Just(b'-'), Just(b':'), Just(b')'), Just(b'\n')],
        ),
        0..6,
    )
}

fn maps_line() -> impl Strategy<Value = String> {
    (
        any::<u64>(),
        any::<u64>(),
        "[r-][w-][x-][ps]",
        any::<u64>(),
        0u32..0x1000,
        0u32..0x100000,
        any::<u64>(),
        prop_oneof![
            Just(String::new()),
            Just("[stack]".to_string()),
            "/[a-z/ ]{0,30}",
            "/[a-z]{1,10} \\(deleted\\)",
        ],
    )
        .prop_map(|(s, e, perms, off, maj, min, ino, path)| {
            format!("{s:x}-{e:x} {perms} {off:08x} {maj:02x}:{min:02x} {ino}    {path}")
        })
}

fn status_text() -> impl Strategy<Value = String> {
    (
        ".{0,20}",
        "[RSDTtZXI]",
        any::<i32>(),
        any::<i32>(),
        prop::collection::vec(any::<i32>(), 0..4),
        any::<u32>(),
    )
        .prop_map(|(name, state, tgid, tracer, ns, uid)| {
            let ns: Vec<String> = ns.iter().map(i32::to_string).collect();
            format!(
                "Name:\t{name}\nState:\t{state} (x)\nTgid:\t{tgid}\nTracerPid:\t{tracer}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nNSpid:\t{}\nNStgid:\t{}\n",
                ns.join("\t"),
                ns.join("\t")
            )
        })
}

fn stat_text() -> impl Strategy<Value = String> {
    (
        any::<i32>(),
        ".{0,16}",
        "[RSDTtZXI]",
        prop::collection::vec(any::<i64>(), 0..45),
    )
        .prop_map(|(pid, comm, state, rest)| {
            let rest: Vec<String> = rest.iter().map(i64::to_string).collect();
            format!("{pid} ({comm}) {state} {}\n", rest.join(" "))
        })
}

fn syscall_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("running".to_string()),
        (any::<i64>(), prop::collection::vec(any::<u64>(), 0..10)).prop_map(|(nr, args)| {
            let a: Vec<String> = args.iter().map(|v| format!("{v:#x}")).collect();
            format!("{nr} {}\n", a.join(" "))
        }),
    ]
}

proptest! {
    #[test]
    fn maps_line_any_input(s in any::<String>()) {
        let _ = parse_maps_line(&s);
    }

    #[test]
    fn maps_line_near_valid(line in maps_line(), e in edits()) {
        let s = mutate(line, e);
        if let Some(m) = parse_maps_line(&s) {
            prop_assert!(m.start <= m.end);
            prop_assert!(!m.deleted || !m.path.ends_with(" (deleted)"));
        }
    }

    #[test]
    fn maps_text_any_lines(lines in prop::collection::vec(prop_oneof![maps_line(), any::<String>()], 0..20)) {
        let text = lines.join("\n");
        let maps = parse_maps(&text);
        prop_assert!(maps.len() <= lines.len().max(text.lines().count()));
    }

    #[test]
    fn status_any_input(s in any::<String>()) {
        let _ = parse_status(&s);
    }

    #[test]
    fn status_near_valid(text in status_text(), e in edits()) {
        let s = mutate(text, e);
        if let Some(st) = parse_status(&s) {
            prop_assert!(st.ns_pids.len() <= s.len());
        }
    }

    #[test]
    fn stat_any_input(s in any::<String>()) {
        let _ = parse_stat(&s);
    }

    #[test]
    fn stat_near_valid(text in stat_text(), e in edits()) {
        let _ = parse_stat(&mutate(text, e));
    }

    #[test]
    fn syscall_any_input(s in any::<String>()) {
        let _ = parse_syscall(&s);
    }

    #[test]
    fn syscall_near_valid(text in syscall_text(), e in edits()) {
        let _ = parse_syscall(&mutate(text, e));
    }

    #[test]
    fn auxv_any_bytes(b in prop::collection::vec(any::<u8>(), 0..1024)) {
        let v = parse_auxv(&b);
        prop_assert!(v.len() <= b.len() / 16);
        prop_assert!(v.iter().all(|(k, _)| *k != 0));
    }
}
