//! Every version-specific number lockdump knows about CPython, as data.
//!
//! The walking code never hard-codes an offset: it asks a [`Layout`]. A layout
//! comes from one of two places:
//!
//! * 3.13 and later: the interpreter's own `_Py_DebugOffsets` table at the
//!   start of `_PyRuntime` (cookie `xdebugpy`). Every offset that table offers
//!   is taken from it; [`DEBUG_OFFSETS_313`] / [`DEBUG_OFFSETS_314`] only say
//!   where each field sits *inside* the table (the table's own shape changes
//!   between minor versions). The few offsets the table lacks are
//!   supplements, written relative to a field the table does give (an
//!   "anchor"), so they follow the free-threaded object header automatically.
//! * 3.11 and 3.12 (no debug offsets): complete per-version tables,
//!   [`layout_311`] and [`layout_312`].
//!
//! Sources: CPython's headers for each version, cited on each table
//! (`Include/internal/pycore_*.h`, `Include/cpython/*.h`,
//! `Modules/_threadmodule.c`, `Python/parking_lot.c`). The 3.11 / 3.12 / 3.13
//! numbers were cross-checked against the DWARF of pyenv's 3.11.7, 3.12.1 and
//! 3.13.0 builds with gdb (`ptype /o`).
//!
//! Opcode numbers and inline cache sizes, needed to read a frame's bytecode,
//! are tables generated from each interpreter (`opcode_tables.rs`, data
//! only, in the vocabulary of [`opcodes`]), picked by [`opcode_table`].

use std::collections::HashMap;

#[rustfmt::skip] // generated: scripts/gen-opcode-tables.sh
mod opcode_tables;
pub mod opcodes;

pub use opcodes::{Op, OpcodeTable, Role};

/// CPython version as (major, minor, micro).
pub type Version = (u8, u8, u8);

/// The table for a CPython version, if one was generated for it.
pub fn opcode_table(version: Version) -> Option<&'static OpcodeTable> {
    use opcode_tables::*;
    match (version.0, version.1) {
        (3, 11) => Some(&OPCODES_3_11),
        (3, 12) => Some(&OPCODES_3_12),
        (3, 13) => Some(&OPCODES_3_13),
        (3, 14) => Some(&OPCODES_3_14),
        (3, 15) => Some(&OPCODES_3_15),
        _ => None,
    }
}

/// Which minor versions have a layout here.
pub fn supported(version: Version) -> bool {
    version.0 == 3 && (11..=15).contains(&version.1)
}

/// Offsets of one CPython build, resolved for one process.
#[derive(Debug, Clone)]
pub struct Layout {
    pub version: Version,
    pub free_threaded: bool,
    pub runtime: RuntimeLayout,
    pub interp: InterpLayout,
    pub tstate: TstateLayout,
    pub frame: FrameLayout,
    pub code: CodeLayout,
    pub object: ObjectLayout,
    pub types: TypeLayout,
    pub tuple: TupleLayout,
    pub dict: DictLayout,
    pub instance_dict: InstanceDictLayout,
    pub unicode: UnicodeLayout,
    pub long: LongLayout,
    pub misc: MiscLayout,
    pub gil: GilLayout,
    pub lock: LockLayout,
    pub rlock: RLockLayout,
    pub parking: Option<ParkingLayout>,
    pub thread_handle: Option<ThreadHandleLayout>,
    /// Generator / coroutine objects (3.14+, from `_Py_DebugOffsets.gen_object`):
    /// what an asyncio task's coroutine is suspended in.
    pub generator: Option<GenLayout>,
    /// `PySetObject` (3.14+, from `_Py_DebugOffsets.set_object`): who awaits a
    /// task awaited by several (`task_awaited_by` is then a set).
    pub set: Option<SetLayout>,
}

/// `PySetObject` (Include/cpython/setobject.h): `table` points at `mask + 1`
/// entries of `{PyObject *key; Py_hash_t hash;}`; empty slots hold NULL, deleted
/// ones a dummy key.
#[derive(Debug, Clone, Copy)]
pub struct SetLayout {
    pub table: u64,
    pub mask: u64,
}

/// `PyGenObject` / `PyCoroObject` (Include/internal/pycore_interpframe_structs.h,
/// 3.14 and 3.15) and the frame-state numbers of that version
/// (Include/internal/pycore_frame.h `_framestate`).
#[derive(Debug, Clone, Copy)]
pub struct GenLayout {
    /// `gi_iframe`: the coroutine's own `_PyInterpreterFrame`, embedded.
    pub iframe: u64,
    /// `gi_frame_state` (int8).
    pub frame_state: u64,
    /// `FRAME_SUSPENDED_YIELD_FROM`: suspended in `await` on another object
    /// (3.14: -1; 3.15: 2).
    pub suspended_yield_from: i8,
    /// `FRAME_SUSPENDED_YIELD_FROM_LOCKED` (3.15 free-threaded transient state).
    pub suspended_yield_from_locked: Option<i8>,
    /// `FRAME_CLEARED` (3.14: 4; 3.15: 5).
    pub cleared: i8,
    /// The awaited object is `stackpointer[-awaited_slot]` of a frame suspended
    /// in `await` (`_PyGen_yf`: 3.14 `[-1]`, 3.15 `[-2]`).
    pub awaited_slot: u64,
}

/// `GenLayout` for 3.14+, from the table's `gen_object` fields.
fn gen_layout(minor: u8, d: &DebugOffsets) -> Option<GenLayout> {
    let iframe = d.off("gen_object.gi_iframe", 0x1000).ok()?;
    let frame_state = d.off("gen_object.gi_frame_state", 0x1000).ok()?;
    let (suspended_yield_from, suspended_yield_from_locked, cleared, awaited_slot) = match minor {
        14 => (-1, None, 4, 1),
        15 => (2, Some(3), 5, 2),
        _ => return None,
    };
    Some(GenLayout {
        iframe,
        frame_state,
        suspended_yield_from,
        suspended_yield_from_locked,
        cleared,
        awaited_slot,
    })
}

/// `_PyRuntimeState` (Include/internal/pycore_runtime.h).
#[derive(Debug, Clone)]
pub struct RuntimeLayout {
    /// `interpreters.head`: first `PyInterpreterState*`.
    pub interpreters_head: u64,
}

/// `PyInterpreterState` (Include/internal/pycore_interp.h).
#[derive(Debug, Clone)]
pub struct InterpLayout {
    pub next: u64,
    pub threads_head: u64,
    /// `sys.modules` (`modules` in 3.11, `imports.modules` since 3.12).
    pub modules: u64,
}

/// How a thread state reaches its innermost interpreter frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentFrame {
    /// 3.11 / 3.12: `tstate->cframe->current_frame`.
    ViaCFrame { cframe: u64, current_frame: u64 },
    /// 3.13+: `tstate->current_frame`.
    Direct(u64),
}

/// `PyThreadState` (Include/cpython/pystate.h).
#[derive(Debug, Clone)]
pub struct TstateLayout {
    pub next: u64,
    pub current_frame: CurrentFrame,
    /// `thread_id`: `pthread_self()` of the thread (what `threading.get_ident()` returns).
    pub thread_id: u64,
    /// `native_thread_id`: the kernel TID as the target's PID namespace sees it.
    pub native_thread_id: u64,
}

/// `_PyInterpreterFrame` (Include/internal/pycore_frame.h; 3.14:
/// pycore_interpframe_structs.h).
#[derive(Debug, Clone)]
pub struct FrameLayout {
    /// `f_code` (3.11/3.12) or `f_executable` (3.13+).
    pub executable: u64,
    pub previous: u64,
    pub globals: u64,
    /// `prev_instr` (3.11/3.12) or `instr_ptr` (3.13+): both point at the
    /// instruction being executed while the frame is suspended in a call.
    pub instr: u64,
    /// `stacktop` (int, index into `localsplus`; -1 when not saved), 3.11-3.13.
    pub stacktop: Option<u64>,
    /// `stackpointer` (pointer past the top of the stack), 3.14+.
    pub stackpointer: Option<u64>,
    pub owner: u64,
    /// `is_entry` (3.11 only): first frame of a `_PyEval_EvalFrameDefault` call.
    pub is_entry: Option<u64>,
    pub localsplus: u64,
    /// `tlbc_index` (3.14 free-threaded): which thread-local bytecode copy `instr` points into.
    pub tlbc_index: Option<u64>,
    /// Owner value of the shim frame pushed on every entry into the eval loop
    /// (3.12+; `FRAME_OWNED_BY_CSTACK` in 3.12/3.13, `FRAME_OWNED_BY_INTERPRETER`
    /// in 3.14/3.15, 3 in all of them). Not a Python function.
    pub owner_cstack: Option<u8>,
    /// Low bits of a `_PyStackRef` that are tags, not address (3.14+; 0 before).
    pub stackref_tag_mask: u64,
}

/// `PyCodeObject` (Include/cpython/code.h).
#[derive(Debug, Clone)]
pub struct CodeLayout {
    pub names: u64,
    pub exceptiontable: u64,
    pub stacksize: u64,
    pub firstlineno: u64,
    pub nlocalsplus: u64,
    pub localsplusnames: u64,
    pub localspluskinds: u64,
    pub filename: u64,
    pub name: u64,
    pub qualname: u64,
    pub linetable: u64,
    pub code_adaptive: u64,
    /// `co_tlbc` (3.14 free-threaded): `_PyCodeArray { Py_ssize_t size; char *entries[]; }`.
    pub tlbc: Option<u64>,
}

/// `co_localspluskinds` bits (Include/internal/pycore_code.h, 3.11-3.14).
pub const CO_FAST_CELL: u8 = 0x40;
pub const CO_FAST_FREE: u8 = 0x80;

/// `PyObject` / `PyVarObject` (Include/object.h).
#[derive(Debug, Clone)]
pub struct ObjectLayout {
    /// `sizeof(PyObject)`: 16, or 32 with the free-threaded header
    /// (`ob_tid`, `ob_flags`, `ob_mutex`, `ob_gc_bits`, `ob_ref_local`, `ob_ref_shared`).
    pub header: u64,
    pub ob_type: u64,
    /// `PyVarObject.ob_size`.
    pub ob_size: u64,
}

/// `PyTypeObject` / `PyHeapTypeObject` (Include/cpython/object.h).
#[derive(Debug, Clone)]
pub struct TypeLayout {
    pub tp_name: u64,
    pub tp_basicsize: u64,
    pub tp_flags: u64,
    /// `PyHeapTypeObject.ht_cached_keys`: the shared keys of instances' split dicts.
    pub ht_cached_keys: u64,
    /// `Py_TPFLAGS_MANAGED_DICT` (1 << 4 in 3.11-3.14).
    pub flag_managed_dict: u64,
    /// `Py_TPFLAGS_INLINE_VALUES` (1 << 2, 3.13+).
    pub flag_inline_values: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct TupleLayout {
    pub ob_size: u64,
    pub ob_item: u64,
}

/// `PyDictObject`, `PyDictKeysObject`, `PyDictValues` (Include/cpython/dictobject.h,
/// Include/internal/pycore_dict.h).
#[derive(Debug, Clone)]
pub struct DictLayout {
    pub ma_used: u64,
    pub ma_keys: u64,
    pub ma_values: u64,
    pub dk_log2_size: u64,
    pub dk_log2_index_bytes: u64,
    pub dk_kind: u64,
    pub dk_nentries: u64,
    pub dk_indices: u64,
    /// `DICT_KEYS_GENERAL` entries are `{hash, key, value}`; unicode/split are `{key, value}`.
    pub general_entry_size: u64,
    pub unicode_entry_size: u64,
    /// Offset of `values[]` inside `PyDictValues` (0 before 3.13; 8 after the
    /// `capacity/size/embedded/valid` bytes were added).
    pub values_array: u64,
    /// Offset of `valid` in `PyDictValues` (3.13+).
    pub values_valid: Option<u64>,
}

/// `DICT_KEYS_GENERAL` (Include/internal/pycore_dict.h, 3.11-3.14).
pub const DICT_KEYS_GENERAL: u8 = 0;

/// Where an instance keeps its attributes when its type has a managed dict
/// (Include/internal/pycore_object.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceDictLayout {
    /// 3.11: `PyDictValues*` at obj-32 and `PyObject *dict` at obj-24.
    Split311 { values: i64, dict: i64 },
    /// 3.12: `PyDictOrValues` at obj-24: a dict pointer, or values pointer - 1 (low bit set).
    Tagged312 { dict_or_values: i64 },
    /// 3.13+: dict pointer at `MANAGED_DICT_OFFSET`; inline values at obj + tp_basicsize.
    Inline313 { dict: i64 },
}

/// `PyASCIIObject` / `PyCompactUnicodeObject` (Include/cpython/unicodeobject.h).
#[derive(Debug, Clone)]
pub struct UnicodeLayout {
    pub length: u64,
    pub state: u64,
    /// `sizeof(PyASCIIObject)`: data of compact ASCII strings starts here.
    pub ascii_size: u64,
    /// `sizeof(PyCompactUnicodeObject)`: data of other compact strings starts here.
    pub compact_size: u64,
}

/// Bit positions inside `PyASCIIObject.state`. Two encodings exist: the
/// bitfield one (`interned:2, kind:3, compact:1, ascii:1`) and, in some
/// free-threaded builds, a whole byte for `interned` first. They are told
/// apart per string: with the bitfield, `kind` >= 1 makes the low byte >= 4;
/// with the byte, the low byte is <= 3.
#[derive(Debug, Clone, Copy)]
pub struct UnicodeStateBits {
    pub kind_shift: u32,
    pub compact_bit: u32,
    pub ascii_bit: u32,
}
pub const UNICODE_STATE_BITFIELD: UnicodeStateBits = UnicodeStateBits {
    kind_shift: 2,
    compact_bit: 5,
    ascii_bit: 6,
};
pub const UNICODE_STATE_BYTE_INTERNED: UnicodeStateBits = UnicodeStateBits {
    kind_shift: 8,
    compact_bit: 11,
    ascii_bit: 12,
};

/// `PyLongObject` (Include/cpython/longintrepr.h); digits are 30 bits in a u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongLayout {
    /// 3.11: `ob_size` is the signed digit count.
    SignedSize { ob_size: u64, digits: u64 },
    /// 3.12+: `lv_tag` = ndigits << 3 | sign bits (0 positive, 1 zero, 2 negative).
    Tagged { lv_tag: u64, digits: u64 },
}

/// Small objects whose fields lockdump reads.
#[derive(Debug, Clone)]
pub struct MiscLayout {
    /// `PyModuleObject.md_dict` (Include/internal/pycore_moduleobject.h).
    pub module_dict: u64,
    /// `PyCFunctionObject.m_ml`, `m_self` (Include/cpython/methodobject.h).
    pub cfunc_ml: u64,
    pub cfunc_self: u64,
    /// `PyMethodObject.im_func`, `im_self` (Include/cpython/classobject.h).
    pub method_func: u64,
    pub method_self: u64,
    /// `PyMethodDescrObject.d_method` (Include/descrobject.h): after `d_type, d_name, d_qualname`.
    pub descr_method: u64,
    /// `PyFunctionObject.func_qualname` (Include/cpython/funcobject.h): after
    /// `func_globals, func_builtins, func_name`.
    pub function_qualname: u64,
    /// `PyFunctionObject.func_closure` (tuple of cells): after `func_code,
    /// func_defaults, func_kwdefaults` (COMMON_FIELDS, 3.11-3.15).
    pub function_closure: u64,
    /// `PyCellObject.ob_ref` (Include/cpython/cellobject.h).
    pub cell_ref: u64,
    /// `PyBytesObject.ob_sval` (Include/cpython/bytesobject.h).
    pub bytes_sval: u64,
}

/// `struct _gil_runtime_state` (Include/internal/pycore_gil.h) and where it lives.
#[derive(Debug, Clone)]
pub struct GilLayout {
    pub place: GilPlace,
    /// `enabled` (free-threaded builds only; 0 = the GIL is off).
    pub enabled: Option<u64>,
    pub last_holder: u64,
    pub locked: u64,
    /// `cond`: the condvar GIL waiters sleep on (a 48-byte `pthread_cond_t`).
    pub cond: u64,
    /// `mutex`: the mutex protecting the state (a 40-byte `pthread_mutex_t`).
    pub mutex: u64,
    /// `switch_cond` (FORCE_SWITCHING): the dropping thread waits here for a taker.
    pub switch_cond: u64,
}
pub const PTHREAD_COND_SIZE: u64 = 48;
pub const PTHREAD_MUTEX_SIZE: u64 = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilPlace {
    /// 3.11: embedded in `_PyRuntime` at this offset (`ceval.gil`).
    Runtime(u64),
    /// 3.12+: `PyInterpreterState.ceval.gil` is a pointer at this offset.
    InterpPointer(u64),
}

/// `_thread.lock` (Modules/_threadmodule.c `lockobject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockLayout {
    /// 3.11-3.13.0: `{PyThread_type_lock lock_lock; PyObject *in_weakreflist;
    /// char locked}`: `lock_lock` is a heap `sem_t*` waiters sleep on;
    /// `locked` is 1 while held. No owner is recorded.
    Semaphore { lock_lock: u64, locked: u64 },
    /// 3.13.1+: an embedded `PyMutex` (one byte: bit 0 locked, bit 1 has parked
    /// waiters). Waiters park in the parking lot. No owner is recorded.
    Mutex { mutex: u64 },
}

/// `_thread.RLock` (Modules/_threadmodule.c `rlockobject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RLockLayout {
    /// 3.11-3.13: `{lock_lock (sem_t*); rlock_owner (pthread ident); rlock_count}`.
    Semaphore { lock_lock: u64, owner: u64, count: u64 },
    /// 3.14+: `_PyRecursiveMutex {PyMutex mutex; unsigned long long thread; size_t level}`
    /// (Include/internal/pycore_lock.h).
    Recursive { mutex: u64, owner: u64, count: u64 },
}

/// `struct wait_entry` of Python/parking_lot.c (3.13+):
/// `{void *park_arg; uintptr_t addr; _PySemaphore sema; ...}`. A parked thread
/// sleeps on `sema` (a `sem_t` first on Linux), so the address it waits for
/// is `sema_to_addr` bytes before the futex it sleeps on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkingLayout {
    pub sema_to_addr: u64,
}

/// `_thread._ThreadHandle` (Modules/_threadmodule.c, 3.13 and 3.14):
/// `PyThreadHandleObject {PyObject_HEAD; ThreadHandle *handle}` and, in the
/// `ThreadHandle`, two list nodes, ident, os_handle, has_os_handle, state,
/// `PyMutex mutex` (56), then `PyEvent thread_is_exiting` (57): what joiners
/// and interpreter shutdown park on. Verified with DWARF on 3.13.0 / 3.13.5t.
/// `threading.Thread` keeps the handle object in `_handle` (3.13) or
/// `_os_thread_handle` (3.14, Lib/threading.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadHandleLayout {
    pub thread_attr: &'static str,
    pub handle: u64,
    pub exiting_event: u64,
}

/// `PyMutex` bits (Include/cpython/lock.h, 3.13+).
pub const PYMUTEX_LOCKED: u8 = 1;

/// The objects the thread-pool analysis reads
/// ([`super::super::cpython::pools`]). None of them is in
/// `_Py_DebugOffsets`; every field follows the object header directly, so
/// each offset is "header + n" and holds for the free-threaded header too.
/// Sources: Modules/_queuemodule.c, Include/cpython/setobject.h,
/// Include/cpython/weakrefobject.h, Include/cpython/listobject.h. Checked
/// with gdb `ptype /o`: `simplequeueobject` / `RingBuf` against the DWARF of
/// pyenv's 3.11.7, 3.12.1, 3.13.0, the free-threaded 3.13.5t and Debian
/// sid's 3.14 / 3.15 (python3.X-dbg); `PySetObject` and `PyWeakReference`
/// against sid's 3.14 / 3.15; all of them by the pool fixtures
/// (tests/python.rs) on every interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolObjectsLayout {
    /// `PyWeakReference.wr_object` (Include/cpython/weakrefobject.h).
    pub weakref_object: u64,
    /// `PySetObject.used`: the number of members (Include/cpython/setobject.h).
    pub set_used: u64,
    /// `PyListObject`: `ob_size` (`PyVarObject`) and `ob_item` (Include/cpython/listobject.h).
    pub list_size: u64,
    pub list_items: u64,
    /// `queue.SimpleQueue`, the executor's `_work_queue`.
    pub simple_queue: SimpleQueueLayout,
}

/// `collections.deque` (Modules/_collectionsmodule.c, 3.11-3.15): a
/// `PyVarObject` header, then `leftblock, rightblock, leftindex,
/// rightindex`; a block is `{leftlink; PyObject *data[64]; rightlink}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DequeLayout {
    pub size: u64,
    pub leftblock: u64,
    pub leftindex: u64,
    /// `BLOCKLEN`.
    pub block_len: u64,
    /// Offset of `data` and of `rightlink` in a block.
    pub block_data: u64,
    pub block_right: u64,
}

/// [`DequeLayout`] for an object header of `h` bytes.
pub fn deque_layout(h: u64) -> DequeLayout {
    DequeLayout {
        size: h,
        leftblock: h + 8,
        leftindex: h + 24,
        block_len: 64,
        block_data: 8,
        block_right: 8 + 64 * 8,
    }
}

/// `simplequeueobject` (Modules/_queuemodule.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleQueueLayout {
    /// 3.11, 3.12: `{PyThread_type_lock lock; int locked; PyObject *lst;
    /// Py_ssize_t lst_pos; ...}`: the queued items are `lst[lst_pos:]`.
    List { lst: u64, lst_pos: u64 },
    /// 3.13+: `{bool has_threads_waiting; RingBuf buf; ...}` with
    /// `RingBuf {put_idx, get_idx, items, items_cap, num_items}`: the items
    /// are `items[(get_idx + i) % items_cap]` for `i < num_items`.
    Ring {
        get_idx: u64,
        items: u64,
        items_cap: u64,
        num_items: u64,
    },
}

/// [`PoolObjectsLayout`] for a version and an object header of `h` bytes.
pub fn pool_objects(version: Version, h: u64) -> PoolObjectsLayout {
    let simple_queue = if version.1 <= 12 {
        SimpleQueueLayout::List {
            lst: h + 16,
            lst_pos: h + 24,
        }
    } else {
        let buf = h + 8;
        SimpleQueueLayout::Ring {
            get_idx: buf + 8,
            items: buf + 16,
            items_cap: buf + 24,
            num_items: buf + 32,
        }
    };
    PoolObjectsLayout {
        weakref_object: h,
        set_used: h + 8,
        list_size: h,
        list_items: h + 8,
        simple_queue,
    }
}

// ---------------------------------------------------------------------------
// 3.11 and 3.12: complete tables.
// ---------------------------------------------------------------------------

/// CPython 3.11 (verified on 3.11.7 with DWARF and on Debian's stripped 3.11.2).
/// Sources: Include/internal/pycore_runtime.h, pycore_interp.h,
/// Include/cpython/pystate.h (`_PyCFrame`), Include/internal/pycore_frame.h,
/// Include/cpython/code.h, Include/cpython/dictobject.h,
/// Include/internal/pycore_dict.h, Include/internal/pycore_object.h,
/// Include/cpython/unicodeobject.h, Include/cpython/longintrepr.h,
/// Include/internal/pycore_gil.h, Modules/_threadmodule.c.
pub fn layout_311(version: Version) -> Layout {
    Layout {
        version,
        free_threaded: false,
        runtime: RuntimeLayout {
            interpreters_head: 0x28,
        },
        interp: InterpLayout {
            next: 0x0,
            threads_head: 0x10,
            modules: 0x378,
        },
        tstate: TstateLayout {
            next: 0x8,
            current_frame: CurrentFrame::ViaCFrame {
                cframe: 0x38,
                current_frame: 0x8,
            },
            thread_id: 0x98,
            native_thread_id: 0xa0,
        },
        frame: FrameLayout {
            executable: 0x20,
            previous: 0x30,
            globals: 0x8,
            instr: 0x38,
            stacktop: Some(0x40),
            stackpointer: None,
            owner: 0x45,
            is_entry: Some(0x44),
            localsplus: 0x48,
            tlbc_index: None,
            owner_cstack: None,
            stackref_tag_mask: 0,
        },
        code: CodeLayout {
            names: 0x20,
            exceptiontable: 0x28,
            stacksize: 0x44,
            firstlineno: 0x48,
            nlocalsplus: 0x4c,
            localsplusnames: 0x60,
            localspluskinds: 0x68,
            filename: 0x70,
            name: 0x78,
            qualname: 0x80,
            linetable: 0x88,
            code_adaptive: 0xb8,
            tlbc: None,
        },
        object: gil_object_header(),
        types: TypeLayout {
            tp_name: 0x18,
            tp_basicsize: 0x20,
            tp_flags: 0xa8,
            ht_cached_keys: 0x368,
            flag_managed_dict: 1 << 4,
            flag_inline_values: None,
        },
        tuple: TupleLayout {
            ob_size: 0x10,
            ob_item: 0x18,
        },
        dict: DictLayout {
            values_array: 0,
            values_valid: None,
            ..dict_common(0x10, 0x20, 0x28)
        },
        instance_dict: InstanceDictLayout::Split311 { values: -32, dict: -24 },
        // 3.11 still has `wstr` and `wstr_length` (sizes 0x30 / 0x48).
        unicode: UnicodeLayout {
            length: 0x10,
            state: 0x20,
            ascii_size: 0x30,
            compact_size: 0x48,
        },
        long: LongLayout::SignedSize {
            ob_size: 0x10,
            digits: 0x18,
        },
        misc: misc_for_header(16),
        gil: GilLayout {
            place: GilPlace::Runtime(0x168),
            ..gil_fields(0)
        },
        lock: LockLayout::Semaphore {
            lock_lock: 0x10,
            locked: 0x20,
        },
        rlock: RLockLayout::Semaphore {
            lock_lock: 0x10,
            owner: 0x18,
            count: 0x20,
        },
        parking: None,
        thread_handle: None,
        generator: None,
        set: None,
    }
}

/// CPython 3.12 (verified on 3.12.1 with DWARF). Sources as for 3.11; the frame
/// now starts with `f_code`, the interpreter owns its GIL (`ceval.gil` pointer)
/// and the eval loop pushes a `FRAME_OWNED_BY_CSTACK` shim frame per entry.
pub fn layout_312(version: Version) -> Layout {
    Layout {
        version,
        free_threaded: false,
        runtime: RuntimeLayout {
            interpreters_head: 0x28,
        },
        interp: InterpLayout {
            next: 0x0,
            threads_head: 0x48,
            modules: 0x3b0,
        },
        tstate: TstateLayout {
            next: 0x8,
            current_frame: CurrentFrame::ViaCFrame {
                cframe: 0x38,
                current_frame: 0x0,
            },
            thread_id: 0x88,
            native_thread_id: 0x90,
        },
        frame: FrameLayout {
            executable: 0x0,
            previous: 0x8,
            globals: 0x18,
            instr: 0x38,
            stacktop: Some(0x40),
            stackpointer: None,
            owner: 0x46,
            is_entry: None,
            localsplus: 0x48,
            tlbc_index: None,
            owner_cstack: Some(3),
            stackref_tag_mask: 0,
        },
        code: CodeLayout {
            names: 0x20,
            exceptiontable: 0x28,
            stacksize: 0x40,
            firstlineno: 0x44,
            nlocalsplus: 0x48,
            localsplusnames: 0x60,
            localspluskinds: 0x68,
            filename: 0x70,
            name: 0x78,
            qualname: 0x80,
            linetable: 0x88,
            code_adaptive: 0xc0,
            tlbc: None,
        },
        object: gil_object_header(),
        types: TypeLayout {
            tp_name: 0x18,
            tp_basicsize: 0x20,
            tp_flags: 0xa8,
            ht_cached_keys: 0x370,
            flag_managed_dict: 1 << 4,
            flag_inline_values: None,
        },
        tuple: TupleLayout {
            ob_size: 0x10,
            ob_item: 0x18,
        },
        dict: DictLayout {
            values_array: 0,
            values_valid: None,
            ..dict_common(0x10, 0x20, 0x28)
        },
        instance_dict: InstanceDictLayout::Tagged312 { dict_or_values: -24 },
        unicode: UnicodeLayout {
            length: 0x10,
            state: 0x20,
            ascii_size: 0x28,
            compact_size: 0x38,
        },
        long: LongLayout::Tagged {
            lv_tag: 0x10,
            digits: 0x18,
        },
        misc: misc_for_header(16),
        gil: GilLayout {
            place: GilPlace::InterpPointer(0x180),
            ..gil_fields(0)
        },
        lock: LockLayout::Semaphore {
            lock_lock: 0x10,
            locked: 0x20,
        },
        rlock: RLockLayout::Semaphore {
            lock_lock: 0x10,
            owner: 0x18,
            count: 0x20,
        },
        parking: None,
        thread_handle: None,
        generator: None,
        set: None,
    }
}

fn gil_object_header() -> ObjectLayout {
    ObjectLayout {
        header: 16,
        ob_type: 8,
        ob_size: 16,
    }
}

/// Dict keys layout shared by 3.11-3.14 (Include/internal/pycore_dict.h
/// `struct _dictkeysobject`: refcnt@0, log2_size@8, log2_index_bytes@9,
/// kind@10, version@12, usable@16, nentries@24, indices@32; the
/// free-threaded `dk_mutex` byte fits in the padding at 11).
fn dict_common(ma_used: u64, ma_keys: u64, ma_values: u64) -> DictLayout {
    DictLayout {
        ma_used,
        ma_keys,
        ma_values,
        dk_log2_size: 8,
        dk_log2_index_bytes: 9,
        dk_kind: 10,
        dk_nentries: 24,
        dk_indices: 32,
        general_entry_size: 24,
        unicode_entry_size: 16,
        values_array: 8,
        values_valid: Some(3),
    }
}

/// Fields that follow `PyObject_HEAD` directly, for a header of `h` bytes.
fn misc_for_header(h: u64) -> MiscLayout {
    MiscLayout {
        module_dict: h,
        cfunc_ml: h,
        cfunc_self: h + 8,
        method_func: h,
        method_self: h + 8,
        descr_method: h + 24,
        function_qualname: h + 24,
        function_closure: h + 56,
        cell_ref: h,
        // PyBytesObject: VAR_HEAD (h + 8), ob_shash (8), then ob_sval.
        bytes_sval: h + 16,
    }
}

/// `_gil_runtime_state` fields relative to the struct, for a struct whose
/// `interval` starts at `base` (8 when the free-threaded `int enabled` comes
/// first): interval, last_holder, locked (int + 4 pad), switch_number, cond
/// (48), mutex (40), switch_cond (48), switch_mutex (40).
fn gil_fields(base: u64) -> GilLayout {
    GilLayout {
        place: GilPlace::Runtime(0),
        enabled: None,
        last_holder: base + 8,
        locked: base + 16,
        cond: base + 32,
        mutex: base + 80,
        switch_cond: base + 120,
    }
}

// ---------------------------------------------------------------------------
// 3.13+: the interpreter's own `_Py_DebugOffsets`.
// ---------------------------------------------------------------------------

/// The `_Py_DebugOffsets` cookie at the start of `_PyRuntime` (3.13+).
pub const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";

/// Field order of `_Py_DebugOffsets` in 3.13 (Include/internal/pycore_runtime.h,
/// 3.13.0): every entry is one `uint64_t`; the cookie counts as one word.
pub const DEBUG_OFFSETS_313: &[&str] = &[
    "cookie",
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size",
    "gc.collecting",
];

/// Field order of `_Py_DebugOffsets` in 3.14 (Include/internal/pycore_debug_offsets.h
/// of the 3.14 release branch: adds `threads_main`, `code_object_generation`,
/// `tlbc_generation`, frame `stackpointer` / `tlbc_index`, `co_tlbc`, the set,
/// generator and llist tables and the PEP 768 debugger-support block).
/// Checked against the DWARF of Debian sid's python3.14 3.14.10 (see
/// [`DEBUG_OFFSETS_315`]).
pub const DEBUG_OFFSETS_314: &[&str] = &[
    "cookie",
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.threads_main",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "interpreter_state.code_object_generation",
    "interpreter_state.tlbc_generation",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "interpreter_frame.stackpointer",
    "interpreter_frame.tlbc_index",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "code_object.co_tlbc",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "set_object.size",
    "set_object.used",
    "set_object.table",
    "set_object.mask",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "gc.size",
    "gc.collecting",
    "gen_object.size",
    "gen_object.gi_name",
    "gen_object.gi_iframe",
    "gen_object.gi_frame_state",
    "llist_node.next",
    "llist_node.prev",
    "debugger_support.eval_breaker",
    "debugger_support.remote_debugger_support",
    "debugger_support.remote_debugging_enabled",
    "debugger_support.debugger_pending_call",
    "debugger_support.debugger_script_path",
    "debugger_support.debugger_script_path_size",
];

/// Field order of `_Py_DebugOffsets` in 3.15 (Include/internal/pycore_debug_offsets.h
/// of 3.15): the thread state gains `base_frame`, the profiling fields,
/// `holds_gil`, `gil_requested` and the exception state; the type object
/// table gains `tp_basicsize` / `tp_dictoffset`, a heap-type table gives
/// `ht_cached_keys`, the unicode table `compactunicodeobject_size`, and the
/// GC table grows. Checked against the DWARF of Debian sid's python3.15 3.15.2
/// (`ptype /o struct _Py_DebugOffsets`; tests/cpython_layouts.rs compares it
/// with every installed 3.15 build's DWARF).
pub const DEBUG_OFFSETS_315: &[&str] = &[
    "cookie",
    "version",
    "free_threaded",
    "runtime_state.size",
    "runtime_state.finalizing",
    "runtime_state.interpreters_head",
    "interpreter_state.size",
    "interpreter_state.id",
    "interpreter_state.next",
    "interpreter_state.threads_head",
    "interpreter_state.threads_main",
    "interpreter_state.gc",
    "interpreter_state.imports_modules",
    "interpreter_state.sysdict",
    "interpreter_state.builtins",
    "interpreter_state.ceval_gil",
    "interpreter_state.gil_runtime_state",
    "interpreter_state.gil_runtime_state_enabled",
    "interpreter_state.gil_runtime_state_locked",
    "interpreter_state.gil_runtime_state_holder",
    "interpreter_state.code_object_generation",
    "interpreter_state.tlbc_generation",
    "thread_state.size",
    "thread_state.prev",
    "thread_state.next",
    "thread_state.interp",
    "thread_state.current_frame",
    "thread_state.base_frame",
    "thread_state.last_profiled_frame",
    "thread_state.last_profiled_frame_seq",
    "thread_state.thread_id",
    "thread_state.native_thread_id",
    "thread_state.datastack_chunk",
    "thread_state.status",
    "thread_state.holds_gil",
    "thread_state.gil_requested",
    "thread_state.current_exception",
    "thread_state.exc_state",
    "err_stackitem.exc_value",
    "interpreter_frame.size",
    "interpreter_frame.previous",
    "interpreter_frame.executable",
    "interpreter_frame.instr_ptr",
    "interpreter_frame.localsplus",
    "interpreter_frame.owner",
    "interpreter_frame.stackpointer",
    "interpreter_frame.tlbc_index",
    "code_object.size",
    "code_object.filename",
    "code_object.name",
    "code_object.qualname",
    "code_object.linetable",
    "code_object.firstlineno",
    "code_object.argcount",
    "code_object.localsplusnames",
    "code_object.localspluskinds",
    "code_object.co_code_adaptive",
    "code_object.co_tlbc",
    "pyobject.size",
    "pyobject.ob_type",
    "type_object.size",
    "type_object.tp_name",
    "type_object.tp_repr",
    "type_object.tp_flags",
    "type_object.tp_basicsize",
    "type_object.tp_dictoffset",
    "heap_type_object.size",
    "heap_type_object.ht_cached_keys",
    "tuple_object.size",
    "tuple_object.ob_item",
    "tuple_object.ob_size",
    "list_object.size",
    "list_object.ob_item",
    "list_object.ob_size",
    "set_object.size",
    "set_object.used",
    "set_object.table",
    "set_object.mask",
    "dict_object.size",
    "dict_object.ma_keys",
    "dict_object.ma_values",
    "float_object.size",
    "float_object.ob_fval",
    "long_object.size",
    "long_object.lv_tag",
    "long_object.ob_digit",
    "bytes_object.size",
    "bytes_object.ob_size",
    "bytes_object.ob_sval",
    "unicode_object.size",
    "unicode_object.state",
    "unicode_object.length",
    "unicode_object.asciiobject_size",
    "unicode_object.compactunicodeobject_size",
    "gc.size",
    "gc.collecting",
    "gc.frame",
    "gc.generation_stats_size",
    "gc.generation_stats",
    "gen_object.size",
    "gen_object.gi_name",
    "gen_object.gi_iframe",
    "gen_object.gi_frame_state",
    "llist_node.next",
    "llist_node.prev",
    "debugger_support.eval_breaker",
    "debugger_support.remote_debugger_support",
    "debugger_support.remote_debugging_enabled",
    "debugger_support.debugger_pending_call",
    "debugger_support.debugger_script_path",
    "debugger_support.debugger_script_path_size",
];

/// The field list describing `_Py_DebugOffsets` for a minor version.
pub fn debug_offsets_fields(minor: u8) -> Option<&'static [&'static str]> {
    match minor {
        13 => Some(DEBUG_OFFSETS_313),
        14 => Some(DEBUG_OFFSETS_314),
        15 => Some(DEBUG_OFFSETS_315),
        _ => None,
    }
}

/// `_Py_DebugOffsets` decoded into name -> value.
#[derive(Debug, Clone)]
pub struct DebugOffsets {
    values: HashMap<&'static str, u64>,
}

impl DebugOffsets {
    /// Decode `words` (the raw table, one u64 per field) with `fields`.
    pub fn decode(fields: &'static [&'static str], words: &[u64]) -> Option<Self> {
        if words.len() < fields.len() {
            return None;
        }
        Some(DebugOffsets {
            values: fields.iter().copied().zip(words.iter().copied()).collect(),
        })
    }

    pub fn get(&self, name: &str) -> Result<u64, String> {
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| format!("_Py_DebugOffsets has no field {name}"))
    }

    /// A field that must be a small offset inside a structure of `limit` bytes.
    fn off(&self, name: &str, limit: u64) -> Result<u64, String> {
        let v = self.get(name)?;
        if v >= limit {
            return Err(format!(
                "_Py_DebugOffsets.{name} = {v:#x} is implausible (limit {limit:#x})"
            ));
        }
        Ok(v)
    }
}

/// Build a layout for 3.13+ from the interpreter's debug offsets plus the
/// supplements below. Fails (instead of guessing) when a value is implausible.
pub fn layout_from_debug_offsets(version: Version, d: &DebugOffsets) -> Result<Layout, String> {
    let minor = version.1;
    let free_threaded = d.get("free_threaded")? != 0;
    // Sanity checks that catch a mis-described table early.
    let header = d.get("pyobject.size")?;
    let ob_type = d.get("pyobject.ob_type")?;
    let expected_header = if free_threaded { 32 } else { 16 };
    if header != expected_header || ob_type + 8 != header {
        return Err(format!(
            "_Py_DebugOffsets: PyObject size {header} / ob_type {ob_type} do not match a {} build",
            if free_threaded { "free-threaded" } else { "GIL" }
        ));
    }
    // Include/cpython/tupleobject.h: 3.14 caches the hash (`Py_hash_t ob_hash`)
    // between the var-object header and `ob_item`.
    let tuple_item = d.off("tuple_object.ob_item", 0x100)?;
    let expected_item = if minor >= 14 { header + 16 } else { header + 8 };
    if tuple_item != expected_item {
        return Err(format!(
            "_Py_DebugOffsets: tuple ob_item {tuple_item:#x} is implausible (expected {expected_item:#x} for 3.{minor})"
        ));
    }
    let interp_size = d.get("interpreter_state.size")?;
    let tstate_size = d.get("thread_state.size")?;
    let frame_size = d.get("interpreter_frame.size")?;
    let code_size = d.get("code_object.size")?;
    let type_size = d.get("type_object.size")?;
    if !(0x100..0x1_000_000).contains(&interp_size)
        || !(0x80..0x10_000).contains(&tstate_size)
        || !(0x40..0x100).contains(&frame_size)
        || !(0x80..0x400).contains(&code_size)
        || !(0x100..0x800).contains(&type_size)
    {
        return Err(format!(
            "_Py_DebugOffsets: implausible struct sizes (interp {interp_size:#x}, tstate {tstate_size:#x}, \
             frame {frame_size:#x}, code {code_size:#x}, type {type_size:#x})"
        ));
    }

    let previous = d.off("interpreter_frame.previous", frame_size)?;
    let instr = d.off("interpreter_frame.instr_ptr", frame_size)?;
    let argcount = d.off("code_object.argcount", code_size)?;
    let firstlineno = d.off("code_object.firstlineno", code_size)?;
    let tp_flags = d.off("type_object.tp_flags", type_size)?;
    let tp_name = d.off("type_object.tp_name", type_size)?;
    let ma_keys = d.off("dict_object.ma_keys", 0x100)?;
    let unicode_state = d.off("unicode_object.state", 0x100)?;
    let ascii_size = d.off("unicode_object.asciiobject_size", 0x100)?;
    let gil_struct = d.off("interpreter_state.gil_runtime_state", interp_size)?;
    let gil_locked = d.off("interpreter_state.gil_runtime_state_locked", interp_size)?;
    let gil_holder = d.off("interpreter_state.gil_runtime_state_holder", interp_size)?;
    if gil_locked < gil_struct || gil_holder < gil_struct {
        return Err("_Py_DebugOffsets: GIL fields lie before the GIL state".into());
    }
    let locked = gil_locked - gil_struct;

    // Frame: the frame struct has no object header, so supplements are fixed
    // per minor version (Include/internal/pycore_frame.h 3.13:
    // f_globals@0x18, stacktop@0x40; pycore_interpframe_structs.h 3.14/3.15:
    // f_globals@0x18, stackpointer from the table).
    //
    // The shim frame `_PyEval_EvalFrameDefault` pushes on entry has owner 3 in
    // every version: FRAME_OWNED_BY_CSTACK in 3.12/3.13 (Python/ceval.c
    // `entry_frame.owner`), FRAME_OWNED_BY_INTERPRETER in 3.14 and 3.15
    // (`entry.frame.owner`; 3.14's FRAME_OWNED_BY_CSTACK = 4 is assigned
    // nowhere, and 3.15 drops it). 3.15's per-thread `base_frame` at the
    // bottom of every chain has the same owner.
    let (stacktop, stackpointer, tlbc_index, tag_mask) = match minor {
        13 => (Some(instr + 8), None, None, 0u64),
        _ => {
            let tlbc = d.get("interpreter_frame.tlbc_index")?;
            (
                None,
                Some(d.off("interpreter_frame.stackpointer", frame_size)?),
                (free_threaded && tlbc != 0).then_some(tlbc),
                // Include/internal/pycore_stackref.h: Py_TAG_BITS (the deferred /
                // refcount tag); two bits are masked so later tag schemes stay safe.
                0x3u64,
            )
        }
    };
    let owner_cstack = Some(3u8);
    let co_tlbc = if minor >= 14 && free_threaded {
        Some(d.off("code_object.co_tlbc", code_size)?)
    } else {
        None
    };

    Ok(Layout {
        version,
        free_threaded,
        runtime: RuntimeLayout {
            interpreters_head: d.off("runtime_state.interpreters_head", d.get("runtime_state.size")?)?,
        },
        interp: InterpLayout {
            next: d.off("interpreter_state.next", interp_size)?,
            threads_head: d.off("interpreter_state.threads_head", interp_size)?,
            modules: d.off("interpreter_state.imports_modules", interp_size)?,
        },
        tstate: TstateLayout {
            next: d.off("thread_state.next", tstate_size)?,
            current_frame: CurrentFrame::Direct(d.off("thread_state.current_frame", tstate_size)?),
            thread_id: d.off("thread_state.thread_id", tstate_size)?,
            native_thread_id: d.off("thread_state.native_thread_id", tstate_size)?,
        },
        frame: FrameLayout {
            executable: d.off("interpreter_frame.executable", frame_size)?,
            previous,
            // f_executable, previous, f_funcobj, then f_globals (3.13 and 3.14).
            globals: previous + 0x10,
            instr,
            stacktop,
            stackpointer,
            owner: d.off("interpreter_frame.owner", frame_size)?,
            is_entry: None,
            localsplus: d.off("interpreter_frame.localsplus", frame_size)?,
            tlbc_index,
            owner_cstack,
            stackref_tag_mask: tag_mask,
        },
        // PyCodeObject field order (Include/cpython/code.h 3.13/3.14):
        // co_consts, co_names, co_exceptiontable (pointers), co_flags,
        // co_argcount, co_posonlyargcount, co_kwonlyargcount, co_stacksize,
        // co_firstlineno, co_nlocalsplus (ints). Anchored on argcount / firstlineno.
        code: CodeLayout {
            names: argcount - 0x14,
            exceptiontable: argcount - 0x0c,
            stacksize: firstlineno - 4,
            firstlineno,
            nlocalsplus: firstlineno + 4,
            localsplusnames: d.off("code_object.localsplusnames", code_size)?,
            localspluskinds: d.off("code_object.localspluskinds", code_size)?,
            filename: d.off("code_object.filename", code_size)?,
            name: d.off("code_object.name", code_size)?,
            qualname: d.off("code_object.qualname", code_size)?,
            linetable: d.off("code_object.linetable", code_size)?,
            code_adaptive: d.off("code_object.co_code_adaptive", code_size + 8)?,
            tlbc: co_tlbc,
        },
        object: ObjectLayout {
            header,
            ob_type,
            ob_size: d.off("tuple_object.ob_size", 0x100)?,
        },
        // PyTypeObject (Include/cpython/object.h): tp_basicsize follows tp_name.
        // PyHeapTypeObject: after the PyTypeObject come as_async (4 pointers),
        // as_number (36), as_mapping (3), as_sequence (10), as_buffer (2),
        // ht_name, ht_slots, ht_qualname, then ht_cached_keys: +0x1d0.
        // 3.15's table gives tp_basicsize and ht_cached_keys itself.
        types: TypeLayout {
            tp_name,
            tp_basicsize: match d.get("type_object.tp_basicsize") {
                Ok(_) => d.off("type_object.tp_basicsize", type_size)?,
                Err(_) => tp_name + 8,
            },
            tp_flags,
            ht_cached_keys: match d.get("heap_type_object.ht_cached_keys") {
                Ok(_) => d.off("heap_type_object.ht_cached_keys", d.get("heap_type_object.size")?)?,
                Err(_) => type_size + 0x1d0,
            },
            flag_managed_dict: 1 << 4,
            flag_inline_values: Some(1 << 2),
        },
        tuple: TupleLayout {
            ob_size: d.off("tuple_object.ob_size", 0x100)?,
            ob_item: tuple_item,
        },
        // PyDictObject: ma_used, ma_version_tag / _ma_watcher_tag, ma_keys, ma_values.
        dict: dict_common(ma_keys - 16, ma_keys, d.off("dict_object.ma_values", 0x100)?),
        // Include/internal/pycore_object.h: MANAGED_DICT_OFFSET is -1 word in
        // free-threaded builds (no PyGC_Head pre-header), -3 words otherwise.
        instance_dict: InstanceDictLayout::Inline313 {
            dict: if free_threaded { -8 } else { -24 },
        },
        unicode: UnicodeLayout {
            length: d.off("unicode_object.length", 0x100)?,
            state: unicode_state,
            ascii_size,
            // PyCompactUnicodeObject adds utf8_length and utf8 (3.15's table says so).
            compact_size: match d.get("unicode_object.compactunicodeobject_size") {
                Ok(_) => d.off("unicode_object.compactunicodeobject_size", 0x100)?,
                Err(_) => ascii_size + 16,
            },
        },
        long: LongLayout::Tagged {
            lv_tag: d.off("long_object.lv_tag", 0x100)?,
            digits: d.off("long_object.ob_digit", 0x100)?,
        },
        misc: misc_for_header(header),
        gil: GilLayout {
            place: GilPlace::InterpPointer(d.off("interpreter_state.ceval_gil", interp_size)?),
            enabled: free_threaded.then(|| d.get("interpreter_state.gil_runtime_state_enabled").unwrap_or(0)),
            last_holder: gil_holder - gil_struct,
            locked,
            // locked (int) + pad, switch_number, then cond, mutex, switch_cond.
            cond: locked + 16,
            mutex: locked + 16 + PTHREAD_COND_SIZE,
            switch_cond: locked + 16 + PTHREAD_COND_SIZE + PTHREAD_MUTEX_SIZE,
        },
        // Modules/_threadmodule.c: 3.13.0 still wraps a PyThread_type_lock;
        // gh-117721 ("use PyMutex in _thread.lock", backported to 3.13.1)
        // embeds a PyMutex right after the header. RLock keeps its
        // PyThread_type_lock through 3.13 and becomes a _PyRecursiveMutex in 3.14.
        lock: if minor == 13 && version.2 == 0 {
            LockLayout::Semaphore {
                lock_lock: header,
                locked: header + 16,
            }
        } else {
            LockLayout::Mutex { mutex: header }
        },
        rlock: if minor == 13 {
            RLockLayout::Semaphore {
                lock_lock: header,
                owner: header + 8,
                count: header + 16,
            }
        } else {
            RLockLayout::Recursive {
                mutex: header,
                owner: header + 8,
                count: header + 16,
            }
        },
        parking: Some(ParkingLayout { sema_to_addr: 8 }),
        thread_handle: Some(ThreadHandleLayout {
            thread_attr: if minor == 13 { "_handle" } else { "_os_thread_handle" },
            handle: header,
            exiting_event: 57,
        }),
        generator: gen_layout(minor, d),
        set: match (d.off("set_object.table", 0x100), d.off("set_object.mask", 0x100)) {
            (Ok(table), Ok(mask)) => Some(SetLayout { table, mask }),
            _ => None,
        },
    })
}

// ---------------------------------------------------------------------------
// 3.14+: the `_asyncio` module's own debug offsets.
// ---------------------------------------------------------------------------

/// The ELF section holding `_Py_AsyncioModuleDebugOffsets` (3.14: in the
/// `_asyncio` extension module, symbol `_AsyncioDebug`; 3.15: wherever
/// `_asyncio` is linked, symbol `_Py_AsyncioDebug`). The symbols are local
/// and stripped from release builds; the section name is the stable handle
/// (CPython's own `Python/remote_debug.h` looks it up by name too).
pub const ASYNCIO_DEBUG_SECTION: &str = ".AsyncioDebug";

/// Field order of `_Py_AsyncioModuleDebugOffsets` (Modules/_asynciomodule.c,
/// identical in 3.14 and 3.15): 13 `uint64_t`. Decoded from Debian sid's
/// 3.14.10 and 3.15.2 (`objdump -s -j .AsyncioDebug`, checked with
/// `ptype /o TaskObj` in their DWARF).
pub const ASYNCIO_DEBUG_FIELDS: &[&str] = &[
    "asyncio_task_object.size",
    "asyncio_task_object.task_name",
    "asyncio_task_object.task_awaited_by",
    "asyncio_task_object.task_is_task",
    "asyncio_task_object.task_awaited_by_is_set",
    "asyncio_task_object.task_coro",
    "asyncio_task_object.task_node",
    "asyncio_interpreter_state.size",
    "asyncio_interpreter_state.asyncio_tasks_head",
    "asyncio_thread_state.size",
    "asyncio_thread_state.asyncio_running_loop",
    "asyncio_thread_state.asyncio_running_task",
    "asyncio_thread_state.asyncio_tasks_head",
];

/// Where asyncio keeps its tasks and what a task holds (3.14+).
#[derive(Debug, Clone, Copy)]
pub struct AsyncioLayout {
    /// `TaskObj.task_name`: a `str`, or an `int` N for the default name `Task-N`.
    pub task_name: u64,
    /// `fut_awaited_by`: NULL, the one awaiter, or a set of them.
    pub awaited_by: u64,
    pub is_task: u64,
    pub awaited_by_is_set: u64,
    pub task_coro: u64,
    /// `task_node`: the task's link in its thread's (or the interpreter's) task list.
    pub task_node: u64,
    /// `task_fut_waiter`: the future the task is suspended on. Supplement:
    /// the field right before `task_coro` (TaskObj in Modules/_asynciomodule.c, 3.14 and 3.15).
    pub task_fut_waiter: u64,
    /// `fut_state` (0 pending, 1 cancelled, 2 finished). Supplement: the
    /// field right after `fut_awaited_by` (FutureObj_HEAD, 3.14 and 3.15).
    pub fut_state: u64,
    /// `PyInterpreterState.asyncio_tasks_head`: tasks of threads that exited.
    pub interp_tasks_head: u64,
    /// `_PyThreadStateImpl.asyncio_running_loop` / `asyncio_running_task` /
    /// `asyncio_tasks_head` (relative to the thread state).
    pub tstate_running_loop: u64,
    pub tstate_running_task: u64,
    pub tstate_tasks_head: u64,
    /// `futureiterobject.future` (`await fut` suspends on this iterator): right after the object header.
    pub future_iter_future: u64,
    /// `fut_callback0` and `fut_callbacks` (a list of `(callback, context)`
    /// tuples). Supplements: FutureObj_HEAD starts `fut_loop, fut_callback0,
    /// fut_context0, fut_callbacks` right after the object header (3.14, 3.15).
    pub fut_callback0: u64,
    pub fut_callbacks: u64,
}

/// Decode the `.AsyncioDebug` words; fails (instead of guessing) when a
/// value is implausible, so a foreign table never sends the walk astray.
pub fn asyncio_layout(words: &[u64], layout: &Layout) -> Result<AsyncioLayout, String> {
    if words.len() < ASYNCIO_DEBUG_FIELDS.len() {
        return Err(format!(
            "{ASYNCIO_DEBUG_SECTION} holds {} words, expected {}",
            words.len(),
            ASYNCIO_DEBUG_FIELDS.len()
        ));
    }
    let w = |i: usize| words[i];
    let within = |i: usize, limit: u64| -> Result<u64, String> {
        let v = w(i);
        if v == 0 || v >= limit || v % 8 != 0 && !matches!(i, 3 | 4) {
            return Err(format!(
                "{ASYNCIO_DEBUG_SECTION}: {} = {v:#x} is implausible (limit {limit:#x})",
                ASYNCIO_DEBUG_FIELDS[i]
            ));
        }
        Ok(v)
    };
    let task_size = w(0);
    let interp_size = w(7);
    let tstate_size = w(9);
    if !(0x70..0x400).contains(&task_size)
        || !(0x1000..0x100000).contains(&interp_size)
        || !(0x100..0x4000).contains(&tstate_size)
    {
        return Err(format!(
            "{ASYNCIO_DEBUG_SECTION}: implausible sizes (task {task_size:#x}, interpreter {interp_size:#x}, thread state {tstate_size:#x})"
        ));
    }
    let task_coro = within(5, task_size)?;
    let awaited_by = within(2, task_size)?;
    let task_node = within(6, task_size - 8)?;
    Ok(AsyncioLayout {
        task_name: within(1, task_size)?,
        awaited_by,
        is_task: within(3, task_size)?,
        awaited_by_is_set: within(4, task_size)?,
        task_coro,
        task_node,
        task_fut_waiter: task_coro - 8,
        fut_state: awaited_by + 8,
        interp_tasks_head: within(8, interp_size - 8)?,
        tstate_running_loop: within(10, tstate_size)?,
        tstate_running_task: within(11, tstate_size)?,
        tstate_tasks_head: within(12, tstate_size - 8)?,
        future_iter_future: layout.object.header,
        fut_callback0: layout.object.header + 8,
        fut_callbacks: layout.object.header + 24,
    })
}

/// The fields lockdump uses from pyenv 3.13.0's `_Py_DebugOffsets` (all but
/// `version`), as its `.PyRuntime` section holds them: test data shared by the
/// decoding and fuzz tests.
#[cfg(test)]
pub(crate) const PYENV_3130_DEBUG_OFFSETS: &[(&str, u64)] = &[
    ("free_threaded", 0),
    ("runtime_state.size", 0x452b8),
    ("runtime_state.interpreters_head", 0x278),
    ("interpreter_state.size", 0x2f998),
    ("interpreter_state.next", 0x1c60),
    ("interpreter_state.threads_head", 0x1cb0),
    ("interpreter_state.imports_modules", 0x1de8),
    ("interpreter_state.ceval_gil", 0x10),
    ("interpreter_state.gil_runtime_state", 0x1e48),
    ("interpreter_state.gil_runtime_state_locked", 0x1e58),
    ("interpreter_state.gil_runtime_state_holder", 0x1e50),
    ("thread_state.size", 0x130),
    ("thread_state.next", 8),
    ("thread_state.current_frame", 0x48),
    ("thread_state.thread_id", 0x98),
    ("thread_state.native_thread_id", 0xa0),
    ("interpreter_frame.size", 0x50),
    ("interpreter_frame.previous", 8),
    ("interpreter_frame.executable", 0),
    ("interpreter_frame.instr_ptr", 0x38),
    ("interpreter_frame.localsplus", 0x48),
    ("interpreter_frame.owner", 0x46),
    ("code_object.size", 0xd0),
    ("code_object.filename", 0x70),
    ("code_object.name", 0x78),
    ("code_object.qualname", 0x80),
    ("code_object.linetable", 0x88),
    ("code_object.firstlineno", 0x44),
    ("code_object.argcount", 0x34),
    ("code_object.localsplusnames", 0x60),
    ("code_object.localspluskinds", 0x68),
    ("code_object.co_code_adaptive", 0xc8),
    ("pyobject.size", 16),
    ("pyobject.ob_type", 8),
    ("type_object.size", 0x1a0),
    ("type_object.tp_name", 0x18),
    ("type_object.tp_flags", 0xa8),
    ("tuple_object.ob_item", 0x18),
    ("tuple_object.ob_size", 0x10),
    ("dict_object.ma_keys", 0x20),
    ("dict_object.ma_values", 0x28),
    ("long_object.lv_tag", 0x10),
    ("long_object.ob_digit", 0x18),
    ("unicode_object.state", 0x20),
    ("unicode_object.length", 0x10),
    ("unicode_object.asciiobject_size", 0x28),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields lockdump uses from pyenv 3.13.0's table (the initial
    /// contents of its `.PyRuntime` section), decoded into the layout its
    /// DWARF describes; unused fields left 0. The integration tests check the
    /// same against the real files.
    #[test]
    fn decodes_313_table() {
        let mut words = vec![0u64; DEBUG_OFFSETS_313.len()];
        let set = |w: &mut Vec<u64>, name: &str, v: u64| {
            let i = DEBUG_OFFSETS_313.iter().position(|f| *f == name).unwrap();
            w[i] = v;
        };
        set(&mut words, "version", 0x030d00f0);
        for &(name, v) in PYENV_3130_DEBUG_OFFSETS {
            set(&mut words, name, v);
        }
        let d = DebugOffsets::decode(DEBUG_OFFSETS_313, &words).unwrap();
        let l = layout_from_debug_offsets((3, 13, 0), &d).unwrap();
        // Supplements agree with the DWARF of 3.13.0 (see the module docs).
        assert_eq!(l.code.stacksize, 0x40);
        assert_eq!(l.code.nlocalsplus, 0x48);
        assert_eq!(l.code.names, 0x20);
        assert_eq!(l.code.exceptiontable, 0x28);
        assert_eq!(l.frame.globals, 0x18);
        assert_eq!(l.frame.stacktop, Some(0x40));
        assert_eq!(l.types.ht_cached_keys, 0x370);
        assert_eq!(l.types.tp_basicsize, 0x20);
        assert_eq!(l.dict.ma_used, 0x10);
        assert_eq!(l.unicode.compact_size, 0x38);
        assert_eq!(
            (l.gil.last_holder, l.gil.locked, l.gil.cond, l.gil.mutex),
            (8, 16, 32, 80)
        );
        assert_eq!(
            l.lock,
            LockLayout::Semaphore {
                lock_lock: 16,
                locked: 32
            }
        );

        // A garbage table is refused, not used.
        let mut bad = words.clone();
        set(&mut bad, "pyobject.size", 0xdead);
        let d = DebugOffsets::decode(DEBUG_OFFSETS_313, &bad).unwrap();
        assert!(layout_from_debug_offsets((3, 13, 0), &d).is_err());
        assert!(DebugOffsets::decode(DEBUG_OFFSETS_313, &words[..10]).is_none());
    }
}
