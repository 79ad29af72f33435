//! The ELF core's notes: pure parsers over bytes, so that a damaged or
//! foreign note is an error value, never a panic (tested with handcrafted
//! bytes below).
//!
//! Layouts are the x86_64 Linux kernel's, as it writes them in
//! `fs/binfmt_elf.c` (`fill_note_info`) and gdb's `gcore` copies:
//! `struct elf_prstatus` and `struct elf_prpsinfo` from
//! `include/linux/elfcore.h` / `include/uapi/linux/elfcore.h`, the
//! register block `struct user_regs_struct` from
//! `arch/x86/include/asm/user_64.h`, NT_FILE's layout from
//! `fill_files_note` in `fs/binfmt_elf.c`.

use crate::capture::Registers;

/// `NT_PRSTATUS`: one per thread.
pub const NT_PRSTATUS: u32 = 1;
/// `NT_PRPSINFO`: the process (name, arguments, PIDs).
pub const NT_PRPSINFO: u32 = 3;
/// `NT_AUXV`: the auxiliary vector.
pub const NT_AUXV: u32 = 6;
/// `NT_SIGINFO` ("SIGI"): the signal that caused the dump.
pub const NT_SIGINFO: u32 = 0x5349_4749;
/// `NT_FILE` ("FILE"): the file-backed mappings.
pub const NT_FILE: u32 = 0x4649_4c45;
/// `NT_GNU_BUILD_ID` in an ELF file's "GNU" note.
pub const NT_GNU_BUILD_ID: u32 = 3;

/// One note: its owner name (without the NUL), type and descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    pub name: &'a [u8],
    pub kind: u32,
    pub desc: &'a [u8],
}

/// The notes of one PT_NOTE segment. Stops at the first note that does not
/// fit; `Err` carries the notes before it and how many bytes were left, so
/// a core cut inside its notes still yields the threads written before the cut.
pub fn parse_notes(data: &[u8]) -> Result<Vec<Note<'_>>, (Vec<Note<'_>>, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let align4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while at < data.len() {
        let Some(head) = data.get(at..at + 12) else {
            return Err((out, data.len() - at));
        };
        let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize;
        let (namesz, descsz, kind) = (u32_at(0), u32_at(4), u32_at(8) as u32);
        let name_start = at + 12;
        let desc_start = align4(namesz).and_then(|n| name_start.checked_add(n));
        let desc_end = desc_start.and_then(|d| d.checked_add(descsz));
        let (Some(desc_start), Some(desc_end)) = (desc_start, desc_end) else {
            return Err((out, data.len() - at));
        };
        if desc_end > data.len() {
            return Err((out, data.len() - at));
        }
        let mut name = &data[name_start..name_start + namesz];
        if let Some(nul) = name.iter().position(|&b| b == 0) {
            name = &name[..nul];
        }
        out.push(Note {
            name,
            kind,
            desc: &data[desc_start..desc_end],
        });
        at = align4(desc_end).unwrap_or(usize::MAX).min(data.len());
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// One thread's `NT_PRSTATUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrStatus {
    /// `pr_pid`: the thread's TID (in the PID namespace of the dumped process).
    pub tid: i32,
    /// `pr_cursig`: the signal the thread was handling (the dumping one's).
    pub cursig: i32,
    pub regs: Registers,
}

/// Offset of `pr_pid` in `struct elf_prstatus` on x86_64: `pr_info` (3
/// ints), `pr_cursig` (short, padded to 8), `pr_sigpend`, `pr_sighold`.
const PRSTATUS_PID: usize = 32;
/// Offset of `pr_reg`: after `pr_pid`, `pr_ppid`, `pr_pgrp`, `pr_sid` and
/// four `struct timeval`s (16 bytes each).
const PRSTATUS_REG: usize = 112;
/// `elf_gregset_t`: 27 registers in `struct user_regs_struct` order.
const USER_REGS: usize = 27;

pub fn prstatus(desc: &[u8]) -> Option<PrStatus> {
    let tid = u32_at(desc, PRSTATUS_PID)? as i32;
    let cursig = i32::from(u16::from_le_bytes(desc.get(12..14)?.try_into().ok()?) as i16);
    let reg = |i: usize| u64_at(desc, PRSTATUS_REG + 8 * i);
    // The whole register block must be there: a cut note is no thread.
    reg(USER_REGS - 1)?;
    let r = |i: usize| reg(i).unwrap_or(0);
    // struct user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax
    // rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs
    let regs = Registers {
        r15: r(0),
        r14: r(1),
        r13: r(2),
        r12: r(3),
        rbp: r(4),
        rbx: r(5),
        r11: r(6),
        r10: r(7),
        r9: r(8),
        r8: r(9),
        rax: r(10),
        rcx: r(11),
        rdx: r(12),
        rsi: r(13),
        rdi: r(14),
        orig_rax: r(15),
        rip: r(16),
        eflags: r(18),
        rsp: r(19),
        fs_base: r(21),
    };
    Some(PrStatus { tid, cursig, regs })
}

/// `NT_PRPSINFO`: the process as `ps` would show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrPsInfo {
    pub pid: i32,
    pub ppid: i32,
    /// `pr_fname`: the command name (at most 16 bytes).
    pub fname: String,
    /// `pr_psargs`: the start of the command line (at most 80 bytes, arguments
    /// joined by spaces by the kernel).
    pub psargs: String,
}

pub fn prpsinfo(desc: &[u8]) -> Option<PrPsInfo> {
    // x86_64 struct elf_prpsinfo: four chars, pad, pr_flag (8), pr_uid and
    // pr_gid (4 each), pr_pid@24, pr_ppid@28, pr_pgrp, pr_sid,
    // pr_fname[16]@40, pr_psargs[80]@56.
    Some(PrPsInfo {
        pid: u32_at(desc, 24)? as i32,
        ppid: u32_at(desc, 28)? as i32,
        fname: c_string(desc.get(40..56)?),
        psargs: c_string(desc.get(56..136.min(desc.len()))?).trim_end().to_string(),
    })
}

/// `NT_AUXV`: (type, value) pairs up to `AT_NULL`.
pub fn auxv(desc: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for pair in desc.chunks_exact(16) {
        let (k, v) = (u64_at(pair, 0).unwrap_or(0), u64_at(pair, 8).unwrap_or(0));
        if k == 0 {
            break;
        }
        out.push((k, v));
    }
    out
}

/// One `NT_FILE` entry: a file mapped at `start..end` from byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    pub start: u64,
    pub end: u64,
    /// In bytes (the note holds pages; multiplied by its page size here).
    pub offset: u64,
    pub path: String,
}

/// `NT_FILE`: `count`, `page_size`, `count` × {start, end, page offset},
/// then `count` NUL-terminated paths.
pub fn files(desc: &[u8]) -> Option<Vec<FileMapping>> {
    let count = usize::try_from(u64_at(desc, 0)?).ok()?;
    let page = u64_at(desc, 8)?;
    let table_end = count.checked_mul(24)?.checked_add(16)?;
    if table_end > desc.len() {
        return None;
    }
    // Every path ends in a NUL: a cut before one is no path.
    let names_area = &desc[table_end..];
    let terminated = names_area
        .iter()
        .rposition(|&b| b == 0)
        .map_or(&[][..], |l| &names_area[..l]);
    let mut names = terminated.split(|&b| b == 0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = 16 + 24 * i;
        let (start, end, pages) = (u64_at(desc, at)?, u64_at(desc, at + 8)?, u64_at(desc, at + 16)?);
        let path = String::from_utf8_lossy(names.next()?).into_owned();
        if end < start {
            return None;
        }
        out.push(FileMapping {
            start,
            end,
            offset: pages.checked_mul(page)?,
            path,
        });
    }
    Some(out)
}

/// `NT_SIGINFO`: the number of the signal that caused the dump (`si_signo`).
pub fn signo(desc: &[u8]) -> Option<i32> {
    u32_at(desc, 0).map(|s| s as i32)
}

/// The GNU build ID in the notes of an ELF image whose first bytes are
/// `image` (as a core holds the first page of each mapped ELF file): the
/// program headers and the note they point to must lie inside `image`.
pub fn elf_build_id(image: &[u8]) -> Option<Vec<u8>> {
    if image.get(..4)? != b"\x7fELF" || *image.get(4)? != 2 {
        return None;
    }
    let phoff = usize::try_from(u64_at(image, 32)?).ok()?;
    let phentsize = usize::from(u16::from_le_bytes(image.get(54..56)?.try_into().ok()?));
    let phnum = usize::from(u16::from_le_bytes(image.get(56..58)?.try_into().ok()?));
    if phentsize < 56 {
        return None;
    }
    for i in 0..phnum.min(256) {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(image, ph)? != 4 {
            continue; // not PT_NOTE
        }
        let off = usize::try_from(u64_at(image, ph + 8)?).ok()?;
        let size = usize::try_from(u64_at(image, ph + 32)?).ok()?;
        let Some(data) = image.get(off..off.checked_add(size)?) else {
            continue;
        };
        let notes = match parse_notes(data) {
            Ok(n) | Err((n, _)) => n,
        };
        if let Some(n) = notes.iter().find(|n| n.name == b"GNU" && n.kind == NT_GNU_BUILD_ID) {
            return Some(n.desc.to_vec());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name);
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn prstatus_bytes(tid: u32, regs: [u64; 27]) -> Vec<u8> {
        let mut d = vec![0u8; 336];
        d[12..14].copy_from_slice(&6u16.to_le_bytes());
        d[32..36].copy_from_slice(&tid.to_le_bytes());
        for (i, r) in regs.iter().enumerate() {
            d[112 + 8 * i..120 + 8 * i].copy_from_slice(&r.to_le_bytes());
        }
        d
    }

    #[test]
    fn notes_are_split_with_padding_and_a_cut_keeps_what_came_before() {
        let mut bytes = note(b"CORE", NT_PRSTATUS, &[1, 2, 3]);
        bytes.extend(note(b"LINUX", 0x202, &[9; 8]));
        let notes = parse_notes(&bytes).unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(
            (notes[0].name, notes[0].kind, notes[0].desc),
            (&b"CORE"[..], 1, &[1u8, 2, 3][..])
        );
        assert_eq!(
            (notes[1].name, notes[1].kind, notes[1].desc),
            (&b"LINUX"[..], 0x202, &[9u8; 8][..])
        );
        // Cut in the middle of the second note's descriptor.
        let cut = &bytes[..bytes.len() - 3];
        let (before, left) = parse_notes(cut).unwrap_err();
        assert_eq!(before.len(), 1);
        assert!(left > 0);
        // A descriptor size that overflows is an error, not a panic.
        let mut huge = note(b"CORE", 1, &[]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_notes(&huge).is_err());
    }

    #[test]
    fn prstatus_gives_tid_and_registers_in_user_regs_order() {
        let mut regs = [0u64; 27];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = 0x1000 + i as u64;
        }
        let p = prstatus(&prstatus_bytes(4242, regs)).unwrap();
        assert_eq!((p.tid, p.cursig), (4242, 6));
        assert_eq!((p.regs.r15, p.regs.rbp, p.regs.rax), (0x1000, 0x1004, 0x100a));
        assert_eq!((p.regs.rdi, p.regs.orig_rax, p.regs.rip), (0x100e, 0x100f, 0x1010));
        assert_eq!((p.regs.eflags, p.regs.rsp, p.regs.fs_base), (0x1012, 0x1013, 0x1015));
        // Cut inside the register block: no thread.
        assert_eq!(prstatus(&prstatus_bytes(1, regs)[..200]), None);
    }

    #[test]
    fn prpsinfo_reads_pid_name_and_arguments() {
        let mut d = vec![0u8; 136];
        d[24..28].copy_from_slice(&77u32.to_le_bytes());
        d[28..32].copy_from_slice(&1u32.to_le_bytes());
        d[40..44].copy_from_slice(b"abba");
        d[56..70].copy_from_slice(b"./abba --fast ");
        let p = prpsinfo(&d).unwrap();
        assert_eq!(
            p,
            PrPsInfo {
                pid: 77,
                ppid: 1,
                fname: "abba".into(),
                psargs: "./abba --fast".into()
            }
        );
        assert_eq!(prpsinfo(&d[..50]), None);
    }

    #[test]
    fn nt_file_lists_mappings_with_byte_offsets() {
        let mut d = Vec::new();
        for v in [2u64, 4096, 0x1000, 0x3000, 0, 0x5000, 0x6000, 2] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(b"/bin/a\0/lib/b.so\0");
        let f = files(&d).unwrap();
        assert_eq!(
            f,
            vec![
                FileMapping {
                    start: 0x1000,
                    end: 0x3000,
                    offset: 0,
                    path: "/bin/a".into()
                },
                FileMapping {
                    start: 0x5000,
                    end: 0x6000,
                    offset: 0x2000,
                    path: "/lib/b.so".into()
                },
            ]
        );
        // A count larger than the note: rejected.
        let mut bad = d.clone();
        bad[0..8].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert_eq!(files(&bad), None);
        // A missing path: rejected.
        assert_eq!(files(&d[..d.len() - 10]), None);
    }

    #[test]
    fn auxv_stops_at_at_null() {
        let mut d = Vec::new();
        for v in [33u64, 0x7fff0000, 9, 0x401000, 0, 0, 5, 5] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(auxv(&d), vec![(33, 0x7fff0000), (9, 0x401000)]);
    }

    #[test]
    fn build_id_from_an_elf_first_page() {
        let mut img = vec![0u8; 4096];
        img[..4].copy_from_slice(b"\x7fELF");
        img[4] = 2;
        img[32..40].copy_from_slice(&64u64.to_le_bytes());
        img[54..56].copy_from_slice(&56u16.to_le_bytes());
        img[56..58].copy_from_slice(&1u16.to_le_bytes());
        let n = note(b"GNU", NT_GNU_BUILD_ID, &[0xab; 20]);
        img[64..68].copy_from_slice(&4u32.to_le_bytes());
        img[72..80].copy_from_slice(&0x200u64.to_le_bytes());
        img[96..104].copy_from_slice(&(n.len() as u64).to_le_bytes());
        img[0x200..0x200 + n.len()].copy_from_slice(&n);
        assert_eq!(elf_build_id(&img), Some(vec![0xab; 20]));
        assert_eq!(elf_build_id(&img[..0x210]), None);
        assert_eq!(elf_build_id(b"not an elf"), None);
    }
}
