//! Every CPython layout entry lockdump uses, checked against the DWARF of
//! the real interpreters it is built for: pyenv's 3.13.0, the free-threaded
//! 3.13t, and Debian sid's unmodified 3.14 and 3.15 with their Py_DEBUG
//! builds (scripts/setup-sid-python.sh).
//!
//! For each interpreter the test reads `_Py_DebugOffsets` from the initial
//! contents of the `.PyRuntime` section of the file that holds it (no process
//! runs), builds the layout exactly as a live inspection does, and asks gdb,
//! on the same file's DWARF, for the offset of the struct member each entry
//! stands for. Entries the table gives and entries lockdump supplements are
//! checked alike, and so is the shape of the table itself: the field list
//! lockdump decodes it with must be the member order of `struct
//! _Py_DebugOffsets` in that build.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use lockdump::test_support::runtimes::cpython::layout::{
    self, CurrentFrame, DebugOffsets, GilPlace, InstanceDictLayout, Layout, LockLayout, LongLayout, RLockLayout,
};
use lockdump::test_support::runtimes::cpython::runtime::version_from_hex;
use object::{Object, ObjectSection};

/// Where an interpreter's code and DWARF live.
struct Build {
    label: String,
    /// The ELF whose `.PyRuntime` section holds `_Py_DebugOffsets`.
    runtime_file: PathBuf,
    /// The ELF with the DWARF describing it (the file itself, or its
    /// separate debug file found by build ID).
    dwarf_file: PathBuf,
}

/// The sid wrappers run `/usr/bin/pythonX` inside the chroot.
fn real_binary(path: &Path) -> PathBuf {
    let sid_root = std::env::var("SID_ROOT").unwrap_or_else(|_| "/opt/sid-root".into());
    match path.strip_prefix("/opt/sid-python/bin") {
        Ok(name) => Path::new(&sid_root).join("usr/bin").join(name),
        Err(_) => std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

fn has_section(path: &Path, name: &str) -> bool {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = object::File::parse(&*data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.section_by_name(name).is_some()
}

fn build_of(label: &str, interpreter: &Path) -> Build {
    let exe = real_binary(interpreter);
    let runtime_file = if has_section(&exe, ".PyRuntime") {
        exe.clone()
    } else {
        // Shared-library builds (pyenv, 3.13t): libpython next to the prefix.
        let prefix = exe.parent().and_then(Path::parent).expect("prefix");
        std::fs::read_dir(prefix.join("lib"))
            .unwrap_or_else(|e| panic!("{}: {e}", prefix.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().contains(".so.1.0") && has_section(p, ".PyRuntime"))
            .unwrap_or_else(|| panic!("{label}: no file with a .PyRuntime section for {}", exe.display()))
    };
    let dwarf_file = if has_section(&runtime_file, ".debug_info") {
        runtime_file.clone()
    } else {
        let data = std::fs::read(&runtime_file).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let id = file.build_id().unwrap().expect("a build ID");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        // The debug file lives in the filesystem the binary came from.
        let root = runtime_file
            .to_string_lossy()
            .split("/usr/")
            .next()
            .map(PathBuf::from)
            .unwrap_or_default();
        let debug = root.join(format!("usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
        assert!(
            debug.exists(),
            "{label}: no DWARF for {} (expected {}; scripts/setup-sid-python.sh installs libpython3.X-dbg)",
            runtime_file.display(),
            debug.display()
        );
        debug
    };
    Build {
        label: label.to_string(),
        runtime_file,
        dwarf_file,
    }
}

/// Evaluate each expression with gdb on `file` (integers only).
fn gdb_values(file: &Path, exprs: &[String]) -> Vec<Result<u64, String>> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx"]);
    for e in exprs {
        cmd.arg("-ex").arg(format!("output (long)({e})"));
        cmd.arg("-ex").arg("echo \\n");
    }
    cmd.arg(file);
    let out = cmd
        .output()
        .expect("gdb must be installed (scripts/setup-tools.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut errors = stderr
        .lines()
        .filter(|l| !l.starts_with("readelf:") && !l.trim().is_empty());
    let mut lines = stdout.lines();
    exprs
        .iter()
        .map(|_| {
            let line = lines.next().unwrap_or("").trim();
            if line.is_empty() {
                Err(errors.next().unwrap_or("no output").to_string())
            } else {
                line.parse::<i64>()
                    .map(|v| v as u64)
                    .map_err(|e| format!("{line:?}: {e}"))
            }
        })
        .collect()
}

/// The member order of `struct _Py_DebugOffsets` in this build's DWARF, as
/// `section.field` names (the anonymous-struct members of 3.15's
/// `err_stackitem` named after their struct).
fn debug_offsets_shape(file: &Path) -> Vec<String> {
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "ptype /o struct _Py_DebugOffsets"])
        .arg(file)
        .output()
        .expect("gdb");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = Vec::new();
    let mut section: Option<String> = None;
    let mut pending: Vec<String> = Vec::new();
    for line in text.lines().skip(1) {
        let code = line.split("*/").last().unwrap_or("").trim();
        if let Some(rest) = code.strip_prefix("struct ") {
            if rest.ends_with('{') {
                let name = rest.trim_end_matches('{').trim().trim_start_matches('_');
                section = Some(name.to_string());
                pending.clear();
                continue;
            }
        }
        if code.starts_with('}') && code.ends_with(';') {
            // `} name;` closes a nested struct; an anonymous one is named here.
            let name = code.trim_start_matches('}').trim_end_matches(';').trim();
            if section.as_deref() == Some("") {
                fields.extend(pending.drain(..).map(|f| format!("{name}.{f}")));
            }
            section = None;
            continue;
        }
        let Some(decl) = code.strip_suffix(';') else { continue };
        let name = decl
            .rsplit(|c: char| c == ' ' || c == '*')
            .next()
            .unwrap_or("")
            .split('[')
            .next()
            .unwrap_or("");
        if name.is_empty() {
            continue;
        }
        match &section {
            Some(s) if s.is_empty() => pending.push(name.to_string()),
            Some(s) => fields.push(format!("{s}.{name}")),
            None => fields.push(name.to_string()),
        }
    }
    fields
}

/// Decode the table the way `runtime::find_runtime` does.
fn layout_of(b: &Build) -> Layout {
    let data = std::fs::read(&b.runtime_file).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let bytes = file.section_by_name(".PyRuntime").unwrap().data().unwrap();
    assert_eq!(&bytes[..8], layout::DEBUG_COOKIE, "{}", b.label);
    let version = version_from_hex(u64::from_le_bytes(bytes[8..16].try_into().unwrap()));
    let shape = layout::debug_offsets_fields(version.1).unwrap_or_else(|| panic!("{}: no table shape", b.label));
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .take(shape.len())
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let d = DebugOffsets::decode(shape, &words).unwrap();
    layout::layout_from_debug_offsets(version, &d).unwrap_or_else(|e| panic!("{}: {e}", b.label))
}

/// (what, lockdump's value, the gdb expression for the truth).
fn entries(l: &Layout) -> Vec<(&'static str, u64, String)> {
    let off = |ty: &str, member: &str| format!("&(({ty}*)0)->{member}");
    let frame = "struct _PyInterpreterFrame";
    let minor = l.version.1;
    let mut e: Vec<(&'static str, u64, String)> = vec![
        (
            "runtime.interpreters_head",
            l.runtime.interpreters_head,
            off("struct pyruntimestate", "interpreters.head"),
        ),
        ("interp.next", l.interp.next, off("PyInterpreterState", "next")),
        (
            "interp.threads_head",
            l.interp.threads_head,
            off("PyInterpreterState", "threads.head"),
        ),
        (
            "interp.modules",
            l.interp.modules,
            off("PyInterpreterState", "imports.modules"),
        ),
        ("tstate.next", l.tstate.next, off("PyThreadState", "next")),
        (
            "tstate.thread_id",
            l.tstate.thread_id,
            off("PyThreadState", "thread_id"),
        ),
        (
            "tstate.native_thread_id",
            l.tstate.native_thread_id,
            off("PyThreadState", "native_thread_id"),
        ),
        ("frame.executable", l.frame.executable, off(frame, "f_executable")),
        ("frame.previous", l.frame.previous, off(frame, "previous")),
        ("frame.globals", l.frame.globals, off(frame, "f_globals")),
        ("frame.instr", l.frame.instr, off(frame, "instr_ptr")),
        ("frame.owner", l.frame.owner, off(frame, "owner")),
        ("frame.localsplus", l.frame.localsplus, off(frame, "localsplus")),
        ("code.names", l.code.names, off("PyCodeObject", "co_names")),
        (
            "code.exceptiontable",
            l.code.exceptiontable,
            off("PyCodeObject", "co_exceptiontable"),
        ),
        ("code.stacksize", l.code.stacksize, off("PyCodeObject", "co_stacksize")),
        (
            "code.firstlineno",
            l.code.firstlineno,
            off("PyCodeObject", "co_firstlineno"),
        ),
        (
            "code.nlocalsplus",
            l.code.nlocalsplus,
            off("PyCodeObject", "co_nlocalsplus"),
        ),
        (
            "code.localsplusnames",
            l.code.localsplusnames,
            off("PyCodeObject", "co_localsplusnames"),
        ),
        (
            "code.localspluskinds",
            l.code.localspluskinds,
            off("PyCodeObject", "co_localspluskinds"),
        ),
        ("code.filename", l.code.filename, off("PyCodeObject", "co_filename")),
        ("code.name", l.code.name, off("PyCodeObject", "co_name")),
        ("code.qualname", l.code.qualname, off("PyCodeObject", "co_qualname")),
        ("code.linetable", l.code.linetable, off("PyCodeObject", "co_linetable")),
        (
            "code.code_adaptive",
            l.code.code_adaptive,
            off("PyCodeObject", "co_code_adaptive"),
        ),
        ("object.header", l.object.header, "sizeof(PyObject)".into()),
        ("object.ob_type", l.object.ob_type, off("PyObject", "ob_type")),
        ("object.ob_size", l.object.ob_size, off("PyVarObject", "ob_size")),
        ("types.tp_name", l.types.tp_name, off("PyTypeObject", "tp_name")),
        (
            "types.tp_basicsize",
            l.types.tp_basicsize,
            off("PyTypeObject", "tp_basicsize"),
        ),
        ("types.tp_flags", l.types.tp_flags, off("PyTypeObject", "tp_flags")),
        (
            "types.ht_cached_keys",
            l.types.ht_cached_keys,
            off("PyHeapTypeObject", "ht_cached_keys"),
        ),
        (
            "tuple.ob_size",
            l.tuple.ob_size,
            off("PyTupleObject", "ob_base.ob_size"),
        ),
        ("tuple.ob_item", l.tuple.ob_item, off("PyTupleObject", "ob_item")),
        ("dict.ma_used", l.dict.ma_used, off("PyDictObject", "ma_used")),
        ("dict.ma_keys", l.dict.ma_keys, off("PyDictObject", "ma_keys")),
        ("dict.ma_values", l.dict.ma_values, off("PyDictObject", "ma_values")),
        (
            "dict.dk_log2_size",
            l.dict.dk_log2_size,
            off("struct _dictkeysobject", "dk_log2_size"),
        ),
        (
            "dict.dk_log2_index_bytes",
            l.dict.dk_log2_index_bytes,
            off("struct _dictkeysobject", "dk_log2_index_bytes"),
        ),
        ("dict.dk_kind", l.dict.dk_kind, off("struct _dictkeysobject", "dk_kind")),
        (
            "dict.dk_nentries",
            l.dict.dk_nentries,
            off("struct _dictkeysobject", "dk_nentries"),
        ),
        (
            "dict.dk_indices",
            l.dict.dk_indices,
            off("struct _dictkeysobject", "dk_indices"),
        ),
        (
            "dict.general_entry_size",
            l.dict.general_entry_size,
            "sizeof(PyDictKeyEntry)".into(),
        ),
        (
            "dict.unicode_entry_size",
            l.dict.unicode_entry_size,
            "sizeof(PyDictUnicodeEntry)".into(),
        ),
        (
            "dict.values_array",
            l.dict.values_array,
            off("struct _dictvalues", "values"),
        ),
        ("unicode.length", l.unicode.length, off("PyASCIIObject", "length")),
        ("unicode.state", l.unicode.state, off("PyASCIIObject", "state")),
        (
            "unicode.ascii_size",
            l.unicode.ascii_size,
            "sizeof(PyASCIIObject)".into(),
        ),
        (
            "unicode.compact_size",
            l.unicode.compact_size,
            "sizeof(PyCompactUnicodeObject)".into(),
        ),
        ("misc.module_dict", l.misc.module_dict, off("PyModuleObject", "md_dict")),
        ("misc.cfunc_ml", l.misc.cfunc_ml, off("PyCFunctionObject", "m_ml")),
        ("misc.cfunc_self", l.misc.cfunc_self, off("PyCFunctionObject", "m_self")),
        ("misc.method_func", l.misc.method_func, off("PyMethodObject", "im_func")),
        ("misc.method_self", l.misc.method_self, off("PyMethodObject", "im_self")),
        (
            "misc.descr_method",
            l.misc.descr_method,
            off("PyMethodDescrObject", "d_method"),
        ),
        (
            "misc.function_qualname",
            l.misc.function_qualname,
            off("PyFunctionObject", "func_qualname"),
        ),
        ("misc.cell_ref", l.misc.cell_ref, off("PyCellObject", "ob_ref")),
        ("misc.bytes_sval", l.misc.bytes_sval, off("PyBytesObject", "ob_sval")),
        (
            "gil.last_holder",
            l.gil.last_holder,
            off("struct _gil_runtime_state", "last_holder"),
        ),
        ("gil.locked", l.gil.locked, off("struct _gil_runtime_state", "locked")),
        ("gil.cond", l.gil.cond, off("struct _gil_runtime_state", "cond")),
        ("gil.mutex", l.gil.mutex, off("struct _gil_runtime_state", "mutex")),
        (
            "gil.switch_cond",
            l.gil.switch_cond,
            off("struct _gil_runtime_state", "switch_cond"),
        ),
    ];
    match l.tstate.current_frame {
        CurrentFrame::Direct(o) => e.push(("tstate.current_frame", o, off("PyThreadState", "current_frame"))),
        CurrentFrame::ViaCFrame { .. } => panic!("3.13+ read tstate->current_frame directly"),
    }
    match l.gil.place {
        GilPlace::InterpPointer(o) => e.push(("gil.place", o, off("PyInterpreterState", "ceval.gil"))),
        GilPlace::Runtime(_) => panic!("3.12+ keep the GIL behind the interpreter"),
    }
    if let Some(o) = l.gil.enabled {
        e.push(("gil.enabled", o, off("struct _gil_runtime_state", "enabled")));
    }
    if let Some(o) = l.frame.stacktop {
        e.push(("frame.stacktop", o, off(frame, "stacktop")));
    }
    if let Some(o) = l.frame.stackpointer {
        e.push(("frame.stackpointer", o, off(frame, "stackpointer")));
    }
    if let Some(o) = l.frame.tlbc_index {
        e.push(("frame.tlbc_index", o, off(frame, "tlbc_index")));
    }
    if let Some(o) = l.code.tlbc {
        e.push(("code.tlbc", o, off("PyCodeObject", "co_tlbc")));
    }
    if let Some(o) = l.dict.values_valid {
        e.push(("dict.values_valid", o, off("struct _dictvalues", "valid")));
    }
    // The entry shim's owner value: FRAME_OWNED_BY_CSTACK until 3.13,
    // FRAME_OWNED_BY_INTERPRETER from 3.14 (Python/ceval.c).
    let shim = if minor >= 14 {
        "FRAME_OWNED_BY_INTERPRETER"
    } else {
        "FRAME_OWNED_BY_CSTACK"
    };
    e.push((
        "frame.owner_cstack",
        l.frame.owner_cstack.expect("3.12+") as u64,
        shim.into(),
    ));
    match l.long {
        LongLayout::Tagged { lv_tag, digits } => {
            e.push(("long.lv_tag", lv_tag, off("PyLongObject", "long_value.lv_tag")));
            e.push(("long.digits", digits, off("PyLongObject", "long_value.ob_digit")));
        }
        LongLayout::SignedSize { .. } => panic!("3.12+ tag their ints"),
    }
    match l.instance_dict {
        // MANAGED_DICT_OFFSET: the dict pointer sits before the object, in
        // the PyObject pre-header (Include/internal/pycore_object.h).
        InstanceDictLayout::Inline313 { dict } => e.push((
            "instance_dict.dict",
            dict as u64,
            if l.free_threaded {
                "-(long)sizeof(PyObject *)".into()
            } else {
                "-3 * (long)sizeof(PyObject *)".into()
            },
        )),
        other => panic!("3.13+ use inline values, not {other:?}"),
    }
    match l.lock {
        LockLayout::Mutex { mutex } => e.push(("lock.mutex", mutex, off("lockobject", "lock"))),
        LockLayout::Semaphore { lock_lock, locked } => {
            e.push(("lock.lock_lock", lock_lock, off("lockobject", "lock_lock")));
            e.push(("lock.locked", locked, off("lockobject", "locked")));
        }
    }
    match l.rlock {
        RLockLayout::Recursive { mutex, owner, count } => {
            e.push(("rlock.mutex", mutex, off("rlockobject", "lock.mutex")));
            e.push(("rlock.owner", owner, off("rlockobject", "lock.thread")));
            e.push(("rlock.count", count, off("rlockobject", "lock.level")));
        }
        RLockLayout::Semaphore {
            lock_lock,
            owner,
            count,
        } => {
            e.push(("rlock.lock_lock", lock_lock, off("rlockobject", "rlock_lock")));
            e.push(("rlock.owner", owner, off("rlockobject", "rlock_owner")));
            e.push(("rlock.count", count, off("rlockobject", "rlock_count")));
        }
    }
    if let Some(p) = l.parking {
        e.push((
            "parking.sema_to_addr",
            p.sema_to_addr,
            "(long)&((struct wait_entry*)0)->sema - (long)&((struct wait_entry*)0)->addr".into(),
        ));
    }
    if let Some(h) = l.thread_handle {
        e.push(("thread_handle.handle", h.handle, off("PyThreadHandleObject", "handle")));
        e.push((
            "thread_handle.exiting_event",
            h.exiting_event,
            off("ThreadHandle", "thread_is_exiting"),
        ));
    }
    e
}

fn check(label: &str, interpreter: &Path) {
    let b = build_of(label, interpreter);
    let l = layout_of(&b);

    let shape = debug_offsets_shape(&b.dwarf_file);
    let ours: Vec<&str> = layout::debug_offsets_fields(l.version.1).unwrap().to_vec();
    assert_eq!(
        ours,
        shape.iter().map(String::as_str).collect::<Vec<_>>(),
        "{label}: lockdump's _Py_DebugOffsets field list for 3.{} is not the member order of {}",
        l.version.1,
        b.dwarf_file.display()
    );

    let entries = entries(&l);
    let exprs: Vec<String> = entries.iter().map(|(_, _, x)| x.clone()).collect();
    let truth = gdb_values(&b.dwarf_file, &exprs);
    let wrong: Vec<String> = entries
        .iter()
        .zip(&truth)
        .filter_map(|((what, ours, expr), t)| match t {
            Ok(v) if v == ours => None,
            Ok(v) => Some(format!("{what}: lockdump {ours:#x}, DWARF {v:#x} ({expr})")),
            Err(e) => Some(format!("{what}: gdb could not evaluate {expr}: {e}")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{label} ({}): {} of {} layout entries disagree with the DWARF:\n{}",
        b.dwarf_file.display(),
        wrong.len(),
        entries.len(),
        wrong.join("\n")
    );
}

fn interpreter(label: &str) -> PathBuf {
    common::python_interpreters()
        .iter()
        .chain(common::python::python_debug_builds())
        .find(|i| i.label == label)
        .unwrap_or_else(|| panic!("scripts/interpreters.sh lists no {label}"))
        .path
        .clone()
}

#[test]
fn layout_313_matches_dwarf() {
    check("3.13", &interpreter("3.13"));
}

#[test]
fn layout_313t_matches_dwarf() {
    check("3.13t", &interpreter("3.13t"));
}

#[test]
fn layout_314_matches_dwarf() {
    check("3.14", &interpreter("3.14"));
}

#[test]
fn layout_315_matches_dwarf() {
    check("3.15", &interpreter("3.15"));
}

#[test]
fn layout_314d_matches_dwarf() {
    check("3.14d", &interpreter("3.14d"));
}

#[test]
fn layout_315d_matches_dwarf() {
    check("3.15d", &interpreter("3.15d"));
}
