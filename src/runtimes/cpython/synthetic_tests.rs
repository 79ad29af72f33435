//! Hand-built free-threaded 3.14t and 3.15t address spaces. No free-threaded
//! 3.14 or 3.15 interpreter can be installed here (docs/limits.md), so these
//! images take the real GIL builds' offsets (Debian sid's python3.14 3.14.10
//! and python3.15 3.15.2, whose DWARF tests/cpython_layouts.rs checks) and
//! apply the differences the sources document for `Py_GIL_DISABLED`: the
//! 32-byte object header (`ob_tid`, `ob_flags`, `ob_mutex`, `ob_gc_bits`,
//! `ob_ref_local`, `ob_ref_shared`: every object field moves by 16), the
//! frame's `tlbc_index` before `return_offset`, and the code object's
//! `co_tlbc`. They exercise what only free-threaded builds have: tagged
//! `_PyStackRef`s, thread-local bytecode, a disabled GIL, PyMutex locks found
//! through a parked `wait_entry`, and a `with` block kept as `__exit__`
//! descriptor + lock. The entry shim and the base frame have owner 3
//! (`FRAME_OWNED_BY_INTERPRETER`), as in the real 3.14 and 3.15.

use crate::ids::Tid;

use super::layout::{DEBUG_COOKIE, DEBUG_OFFSETS_314, DEBUG_OFFSETS_315};
use crate::capture::{CopiedRegion, RegisterSource, Registers, SyscallState, ThreadSnapshot};
use crate::memory::BufferMemory;
use crate::runtimes::{Confidence, ProcessView, ResourceKind, SymbolLookup};

const BASE: u64 = 0x7000_0000;

/// A bump allocator over one memory region.
struct Image {
    bytes: Vec<u8>,
}

impl Image {
    fn alloc(&mut self, size: usize) -> u64 {
        let at = (self.bytes.len() + 15) & !15;
        self.bytes.resize(at + size, 0);
        BASE + at as u64
    }
    fn w64(&mut self, addr: u64, v: u64) {
        let o = (addr - BASE) as usize;
        self.bytes[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn w32(&mut self, addr: u64, v: u32) {
        let o = (addr - BASE) as usize;
        self.bytes[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn w8(&mut self, addr: u64, v: u8) {
        self.bytes[(addr - BASE) as usize] = v;
    }
    fn put(&mut self, addr: u64, data: &[u8]) {
        let o = (addr - BASE) as usize;
        self.bytes[o..o + data.len()].copy_from_slice(data);
    }
    fn cstr(&mut self, s: &str) -> u64 {
        let a = self.alloc(s.len() + 1);
        self.put(a, s.as_bytes());
        a
    }
}

// Offsets of this synthetic free-threaded 3.14 build (header 32 bytes).
const H: u64 = 32;
const OB_TYPE: u64 = 24;
const TP_NAME: u64 = 0x28;
const TP_FLAGS: u64 = 0xb8;
const CODE_FILENAME: u64 = 0x80;
const CODE_NAME: u64 = 0x88;
const CODE_QUALNAME: u64 = 0x90;
const CODE_LINETABLE: u64 = 0x98;
const CODE_ARGCOUNT: u64 = 0x44;
const CODE_FIRSTLINENO: u64 = 0x54;
const CODE_LPNAMES: u64 = 0x70;
const CODE_LPKINDS: u64 = 0x78;
const CODE_TLBC: u64 = 0xd8;
const CODE_ADAPTIVE: u64 = 0xe0;
const F_PREVIOUS: u64 = 8;
const F_INSTR: u64 = 0x38;
const F_SP: u64 = 0x40;
const F_TLBC: u64 = 0x48;
const F_OWNER: u64 = 0x4e;
const F_LOCALS: u64 = 0x50;

struct Types {
    str_: u64,
    bytes: u64,
    tuple: u64,
    code: u64,
    lock: u64,
    descr: u64,
}

fn object(img: &mut Image, ty: u64, size: usize) -> u64 {
    let o = img.alloc(size.max(H as usize + 8));
    img.w64(o + OB_TYPE, ty);
    o
}

fn type_object(img: &mut Image, name: &str) -> u64 {
    let n = img.cstr(name);
    let t = img.alloc(0x1b0);
    img.w64(t + TP_NAME, n);
    t
}

fn str_object(img: &mut Image, t: &Types, s: &str) -> u64 {
    // PyASCIIObject: header, length @32, hash @40, state @48; data @56.
    let o = object(img, t.str_, 56 + s.len() + 1);
    img.w64(o + 32, s.len() as u64);
    img.w32(o + 48, 1 << 2 | 1 << 5 | 1 << 6); // kind 1, compact, ascii
    img.put(o + 56, s.as_bytes());
    o
}

fn bytes_object(img: &mut Image, t: &Types, data: &[u8]) -> u64 {
    let o = object(img, t.bytes, 48 + data.len() + 1);
    img.w64(o + 32, data.len() as u64);
    img.put(o + 48, data);
    o
}

/// 3.14+: `ob_size` at 32, the cached `ob_hash` at 40, `ob_item` at 48.
fn tuple_object(img: &mut Image, t: &Types, items: &[u64]) -> u64 {
    let o = object(img, t.tuple, 48 + 8 * items.len());
    img.w64(o + 32, items.len() as u64);
    img.w64(o + 40, u64::MAX);
    for (i, v) in items.iter().enumerate() {
        img.w64(o + 48 + 8 * i as u64, *v);
    }
    o
}

struct FakeSymbols(u64);
impl SymbolLookup for FakeSymbols {
    fn symbol_address(&self, name: &str) -> Option<u64> {
        (name == "_PyRuntime").then_some(self.0)
    }
    fn symbol_at(&self, _: u64) -> Option<(String, u64)> {
        None
    }
    fn section(&self, _: &str) -> Option<(u64, u64)> {
        None
    }
    fn module_at(&self, _: u64) -> Option<String> {
        None
    }
}

#[test]
fn free_threaded_314_walk_wait_and_hold() {
    free_threaded_walk_wait_and_hold(14, DEBUG_OFFSETS_314, &[]);
}

/// 3.15's table also gives `tp_basicsize`, the heap type's `ht_cached_keys`
/// and `sizeof(PyCompactUnicodeObject)` (3.15.2 GIL values + 16).
#[test]
fn free_threaded_315_walk_wait_and_hold() {
    free_threaded_walk_wait_and_hold(
        15,
        DEBUG_OFFSETS_315,
        &[
            ("type_object.tp_basicsize", 0x30),
            ("heap_type_object.size", 0x3c0),
            ("heap_type_object.ht_cached_keys", 0x388),
            ("unicode_object.compactunicodeobject_size", 72),
        ],
    );
}

fn free_threaded_walk_wait_and_hold(minor: u8, shape: &'static [&'static str], extra: &[(&str, u64)]) {
    let mut img = Image { bytes: Vec::new() };
    // _PyRuntime first: the debug table, interpreters.head at 0x400.
    let runtime = img.alloc(0x1000);
    let mut table = vec![0u64; shape.len()];
    let version = 0x0300_00f0 | (minor as u64) << 16;
    let fields: &[(&str, u64)] = &[
        ("version", version),
        ("free_threaded", 1),
        ("runtime_state.size", 0x1000),
        ("runtime_state.interpreters_head", 0x400),
        ("interpreter_state.size", 0x1000),
        ("interpreter_state.next", 0x10),
        ("interpreter_state.threads_head", 0x20),
        ("interpreter_state.imports_modules", 0x30),
        ("interpreter_state.ceval_gil", 0x40),
        ("interpreter_state.gil_runtime_state", 0x100),
        ("interpreter_state.gil_runtime_state_enabled", 0),
        ("interpreter_state.gil_runtime_state_locked", 0x118),
        ("interpreter_state.gil_runtime_state_holder", 0x110),
        ("thread_state.size", 0x200),
        ("thread_state.next", 8),
        ("thread_state.current_frame", 0x48),
        ("thread_state.thread_id", 0x98),
        ("thread_state.native_thread_id", 0xa0),
        ("interpreter_frame.size", 0x58),
        ("interpreter_frame.previous", F_PREVIOUS),
        ("interpreter_frame.executable", 0),
        ("interpreter_frame.instr_ptr", F_INSTR),
        ("interpreter_frame.localsplus", F_LOCALS),
        ("interpreter_frame.owner", F_OWNER),
        ("interpreter_frame.stackpointer", F_SP),
        ("interpreter_frame.tlbc_index", F_TLBC),
        ("code_object.size", 0xe8),
        ("code_object.filename", CODE_FILENAME),
        ("code_object.name", CODE_NAME),
        ("code_object.qualname", CODE_QUALNAME),
        ("code_object.linetable", CODE_LINETABLE),
        ("code_object.firstlineno", CODE_FIRSTLINENO),
        ("code_object.argcount", CODE_ARGCOUNT),
        ("code_object.localsplusnames", CODE_LPNAMES),
        ("code_object.localspluskinds", CODE_LPKINDS),
        ("code_object.co_code_adaptive", CODE_ADAPTIVE),
        ("code_object.co_tlbc", CODE_TLBC),
        ("pyobject.size", H),
        ("pyobject.ob_type", OB_TYPE),
        ("type_object.size", 0x1b0),
        ("type_object.tp_name", TP_NAME),
        ("type_object.tp_flags", TP_FLAGS),
        ("tuple_object.ob_item", 48),
        ("tuple_object.ob_size", 32),
        ("dict_object.ma_keys", 0x30),
        ("dict_object.ma_values", 0x38),
        ("long_object.lv_tag", 0x20),
        ("long_object.ob_digit", 0x28),
        ("unicode_object.state", 48),
        ("unicode_object.length", 32),
        ("unicode_object.asciiobject_size", 56),
    ];
    for (name, v) in fields.iter().chain(extra) {
        let i = shape.iter().position(|f| f == name).unwrap();
        table[i] = *v;
    }
    table[0] = u64::from_le_bytes(*DEBUG_COOKIE);
    for (i, w) in table.iter().enumerate() {
        img.w64(runtime + 8 * i as u64, *w);
    }

    let t = Types {
        str_: type_object(&mut img, "str"),
        bytes: type_object(&mut img, "bytes"),
        tuple: type_object(&mut img, "tuple"),
        code: type_object(&mut img, "code"),
        lock: type_object(&mut img, "_thread.lock"),
        descr: type_object(&mut img, "method_descriptor"),
    };

    // Interpreter with one thread; its GIL is disabled (enabled == 0).
    let interp = img.alloc(0x1000);
    img.w64(runtime + 0x400, interp);
    img.w64(interp + 0x40, interp + 0x100);
    let tstate = img.alloc(0x200);
    img.w64(interp + 0x20, tstate);
    img.w64(tstate + 0x98, 0x7f00_1234_5600);
    img.w64(tstate + 0xa0, 77);

    // Code of `worker` (app.py, def at line 10): units 0..8 are line 12;
    // the exception handler covering units 2..6 keeps 2 stack slots.
    let code = object(&mut img, t.code, CODE_ADAPTIVE as usize + 16);
    img.w64(code + 32, 8); // ob_size: 8 code units
    let s = str_object(&mut img, &t, "/x/app.py");
    img.w64(code + CODE_FILENAME, s);
    let s = str_object(&mut img, &t, "worker");
    img.w64(code + CODE_NAME, s);
    img.w64(code + CODE_QUALNAME, s);
    let lt = bytes_object(&mut img, &t, &[0x80 | 13 << 3 | 7, 4]);
    img.w64(code + CODE_LINETABLE, lt);
    let et = bytes_object(&mut img, &t, &[0x80 | 2, 4, 20, 4]);
    img.w64(code + CODE_ARGCOUNT - 0x0c, et);
    img.w32(code + CODE_FIRSTLINENO, 10);
    img.w32(code + CODE_FIRSTLINENO - 4, 4); // co_stacksize
    img.w32(code + CODE_FIRSTLINENO + 4, 1); // co_nlocalsplus
    let n = str_object(&mut img, &t, "lock_b");
    let names = tuple_object(&mut img, &t, &[n]);
    img.w64(code + CODE_LPNAMES, names);
    let kinds = bytes_object(&mut img, &t, &[0x20]);
    img.w64(code + CODE_LPKINDS, kinds);
    // Thread-local bytecode: entry 1 is this thread's copy.
    let tlbc_copy = img.alloc(16);
    let array = img.alloc(24);
    img.w64(array, 2);
    img.w64(array + 8, code + CODE_ADAPTIVE);
    img.w64(array + 16, tlbc_copy);
    img.w64(code + CODE_TLBC, array);

    // The locks: lock_a held by the `with` block, lock_b parked on.
    let lock_a = object(&mut img, t.lock, 48);
    let lock_b = object(&mut img, t.lock, 48);
    img.w8(lock_a + H, 1);
    img.w8(lock_b + H, 3);
    let exit_name = img.cstr("__exit__");
    let method_def = img.alloc(32);
    img.w64(method_def, exit_name);
    let exit_descr = object(&mut img, t.descr, 0x48);
    img.w64(exit_descr + H + 24, method_def);

    // Frames: worker (tagged executable, tlbc 1), the eval loop's entry
    // shim, the base frame: both FRAME_OWNED_BY_INTERPRETER.
    let base_frame = img.alloc(0x58);
    img.w8(base_frame + F_OWNER, 3);
    let shim = img.alloc(0x58);
    img.w8(shim + F_OWNER, 3);
    img.w64(shim + F_PREVIOUS, base_frame);
    // Stack: `with lock_a:` (exit, lock_a) below the handler depth 2, then
    // `with lock_b:` whose __enter__ is running (exit, lock_b): not held.
    let frame = img.alloc(0x58 + 8 * 6);
    img.w64(frame, code | 1);
    img.w64(frame + F_PREVIOUS, shim);
    img.w64(frame + F_INSTR, tlbc_copy + 2 * 3);
    img.w32(frame + F_TLBC, 1);
    img.w64(frame + F_LOCALS, lock_b | 1);
    img.w64(frame + F_LOCALS + 8, exit_descr | 1);
    img.w64(frame + F_LOCALS + 16, lock_a);
    img.w64(frame + F_LOCALS + 24, exit_descr | 1);
    img.w64(frame + F_LOCALS + 32, lock_b);
    img.w64(frame + F_SP, frame + F_LOCALS + 40);
    img.w64(tstate + 0x48, frame);

    // The waiter's wait_entry (on its stack): addr = &lock_b's PyMutex, then the semaphore.
    let entry = img.alloc(72);
    img.w64(entry + 8, lock_b + H);
    let futex = entry + 16;

    let mem = BufferMemory {
        regions: vec![CopiedRegion {
            start: BASE,
            bytes: img.bytes,
        }],
    };
    let mut snap = crate::capture::testing::snapshot(
        500,
        vec![ThreadSnapshot {
            tid: Tid(77),
            name: "worker".into(),
            state: 'S',
            wchan: "futex_do_wait".into(),
            regs: Registers::default(),
            register_source: RegisterSource::None,
            syscall: Some(SyscallState {
                nr: 202,
                args: [futex, 0x189, 0, 0, 0, u32::MAX as u64],
                restarted: false,
                entering: false,
            }),
            pending_signal: None,
            left_running: None,
            stack: CopiedRegion::default(),
            ns_tid: 77,
            switches: None,
        }],
        Vec::new(),
    );
    snap.exe = "/x/python3.14t".into();
    let view = ProcessView {
        snapshot: &snap,
        stacks: &[],
        memory: &mem,
        calls: &crate::runtimes::syscalls::decode_all(&snap, &mem),
        symbols: &FakeSymbols(runtime),
    };
    let p = super::inspect(&view).unwrap().unwrap();
    assert_eq!(p.version, (3, minor, 0));
    assert!(p.free_threaded);
    assert!(p.gil.is_none(), "GIL disabled");
    assert_eq!(p.threads.len(), 1);
    let th = &p.threads[0];
    assert_eq!(th.tid.get(), 77);
    assert_eq!(th.ident, 0x7f00_1234_5600);
    assert_eq!(th.frames.len(), 1, "shim and base frames are not Python frames");
    let f = &th.frames[0];
    assert_eq!(f.function.as_deref(), Some("worker"));
    assert_eq!(f.file.as_deref(), Some("/x/app.py"));
    assert_eq!(f.line, Some(12));
    let w = th.findings.wait.as_ref().expect("parked on lock_b");
    assert_eq!(w.resource.kind, ResourceKind::PyLock);
    assert_eq!(w.resource.address.get(), lock_b);
    assert_eq!(w.resource.name.as_deref(), Some("lock_b"));
    assert_eq!(w.owner.confidence(), Confidence::Unknown);
    let holds: Vec<_> = th
        .findings
        .holds
        .iter()
        .map(|h| (h.resource.kind, h.resource.address.get(), h.confidence))
        .collect();
    assert_eq!(holds, [(ResourceKind::PyLock, lock_a, Confidence::Exact)]);
}
