#!/usr/bin/env python3
"""Print the opcode table lockdump needs for the running CPython, as Rust.

lockdump reads a frame's *in-memory* bytecode (`co_code_adaptive`), which the
specializing interpreter has rewritten: specialized and instrumented opcodes
stand in for the ones the compiler emitted, and every instruction is followed
by its inline cache units. To walk it, lockdump needs, for each opcode byte,
the base instruction it stands for (its role) and how many cache units follow.
This script derives both from the interpreter's own `dis`/`opcode` modules:

  dis._all_opname          every opcode byte's name (base and specialized)
  dis.deoptmap             specialized name -> base name
  opcode._inline_cache_entries   cache units per base instruction

Run it with each interpreter (scripts/gen-opcode-tables.sh writes
src/runtimes/cpython/layout/opcode_tables.rs); tests/opcode_tables.rs checks
that the committed tables equal what every tested interpreter prints.
"""
import dis
import opcode
import sys

# Base instruction -> the role lockdump's bytecode scan gives it
# (src/runtimes/cpython/layout/opcodes.rs, `Role`).
ROLES = {
    "LOAD_GLOBAL": "Global",
    "LOAD_NAME": "Name",
    "LOAD_FAST": "Fast",
    "LOAD_FAST_CHECK": "Fast",
    "LOAD_FAST_AND_CLEAR": "Fast",
    "LOAD_FAST_BORROW": "Fast",
    "LOAD_FAST_LOAD_FAST": "FastPair",
    "LOAD_FAST_BORROW_LOAD_FAST_BORROW": "FastPair",
    "LOAD_DEREF": "Deref",
    "LOAD_ATTR": "Attr",
    "LOAD_METHOD": "Method",
    "CALL": "Call",
    "CALL_KW": "Call",
    "EXTENDED_ARG": "ExtendedArg",
    # The original instruction lives in the monitoring data, not the code.
    "INSTRUMENTED_LINE": "Opaque",
    "INSTRUMENTED_INSTRUCTION": "Opaque",
}


def cache_entries(name):
    entries = opcode._inline_cache_entries
    if hasattr(entries, "keys"):  # 3.13+: name -> count (a frozendict in 3.15)
        return entries.get(name, 0)
    op = dis._all_opmap.get(name)  # 3.11, 3.12: list indexed by opcode
    return entries[op] if op is not None and op < len(entries) else 0


def base_name(name):
    """The compiler's instruction an in-memory opcode stands for."""
    if name == "ENTER_EXECUTOR":  # replaces a JUMP_BACKWARD (3.13+)
        return "JUMP_BACKWARD"
    name = dis.deoptmap.get(name, name)
    if name.startswith("INSTRUMENTED_") and name not in ROLES:
        plain = name[len("INSTRUMENTED_"):]
        if plain in dis._all_opmap:
            return plain
    return name


def main():
    major, minor = sys.version_info[:2]
    ft = "t" if not getattr(sys, "_is_gil_enabled", lambda: True)() else ""
    ops = []
    for op in range(256):
        name = dis._all_opname[op] if op < len(dis._all_opname) else "<%d>" % op
        if name.startswith("<"):
            ops.append(("Invalid", 0))
            continue
        base = base_name(name)
        ops.append((ROLES.get(base, "Other"), cache_entries(base)))
    ident = "OPCODES_%d_%d" % (major, minor)
    print("/// CPython %d.%d (generated from %s%s by scripts/gen-opcodes.py)." % (
        major, minor, sys.version.split()[0], ft))
    print("pub static %s: OpcodeTable = OpcodeTable {" % ident)
    print("    version: (%d, %d)," % (major, minor))
    # LOAD_ATTR's name index: the whole oparg in 3.11, oparg >> 1 from 3.12
    # (the low bit flags a method load). LOAD_GLOBAL's is oparg >> 1 in all.
    print("    attr_shift: %d," % (0 if (major, minor) <= (3, 11) else 1))
    print("    ops: [")
    for i in range(0, 256, 8):
        row = ", ".join("op(%s, %d)" % o for o in ops[i:i + 8])
        print("        %s, // %d" % (row, i))
    print("    ],")
    print("};")


main()
