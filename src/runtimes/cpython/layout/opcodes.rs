//! Per-version opcode tables: how to walk a frame's in-memory bytecode.
//!
//! The specializing interpreter (3.11+) rewrites `co_code_adaptive` in place:
//! specialized (`LOAD_ATTR_METHOD_NO_DICT`) and instrumented
//! (`INSTRUMENTED_CALL`) opcodes replace the compiler's, and each
//! instruction is followed by a fixed number of inline cache code units. An
//! [`OpcodeTable`] gives, for every opcode byte of one minor version, the
//! base instruction's [`Role`] and its cache size. The tables are generated
//! from each interpreter's own `dis`/`opcode` modules
//! (scripts/gen-opcodes.py) and checked against every tested interpreter
//! (tests/opcode_tables.rs): 3.11 to 3.15. A newer version has no table,
//! so bytecode evidence is simply not used there.
//!
//! This module is the tables' vocabulary and nothing else: the generated
//! tables (`opcode_tables.rs`, data only) are written in it, and the code
//! that picks one ([`super::opcode_table`]) sits above both.

/// What an instruction means to the acquire()/release() scan; everything the
/// scan does not follow is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `LOAD_GLOBAL`: name index `oparg >> 1` (3.11+).
    Global,
    /// `LOAD_NAME` (module-level code): name index `oparg`.
    Name,
    /// `LOAD_FAST` and its checked/borrowed forms: local slot `oparg`.
    Fast,
    /// `LOAD_FAST_LOAD_FAST` (3.13+): slots `oparg >> 4`, then `oparg & 15`.
    FastPair,
    /// `LOAD_DEREF`: the cell in local slot `oparg` (3.11+ numbering).
    Deref,
    /// `LOAD_ATTR`: name index `oparg >> attr_shift`.
    Attr,
    /// `LOAD_METHOD` (3.11): name index `oparg`.
    Method,
    /// `CALL`, `CALL_KW`: completes the call its operands set up.
    Call,
    /// `EXTENDED_ARG`: high bits of the next oparg.
    ExtendedArg,
    /// The real instruction lives in the monitoring data
    /// (`INSTRUMENTED_LINE`, `INSTRUMENTED_INSTRUCTION`): the scan stops.
    Opaque,
    /// Not an opcode of this version: the bytes are not what we think.
    Invalid,
    Other,
}

/// One opcode byte: its base instruction's role and inline cache units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub role: Role,
    pub caches: u8,
}

/// Shorthand the generated tables use.
pub const fn op(role: Role, caches: u8) -> Op {
    Op { role, caches }
}

/// Every opcode byte of one minor version.
#[derive(Debug)]
pub struct OpcodeTable {
    pub version: (u8, u8),
    /// `LOAD_ATTR`'s name index is `oparg >> attr_shift` (0 in 3.11, 1 after).
    pub attr_shift: u32,
    pub ops: [Op; 256],
}
