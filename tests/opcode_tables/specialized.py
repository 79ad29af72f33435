"""Print, as JSON, real specialized bytecode for tests/opcode_tables.rs.

Runs functions that call acquire()/release() in the shapes lockdump follows
(globals, locals, attribute chains, closures, methods, arguments) until the
interpreter has specialized them, then prints each function's in-memory
bytecode (`_co_code_adaptive`: specialized opcodes, filled inline caches),
its compiler bytecode (`co_code`: base opcodes, zeroed caches), `co_names`,
and the acquire()/release() calls the source makes, in order.
"""
import json
import sys
import threading

lock_g = threading.Lock()


class Holder:
    def __init__(self, inner=None):
        self._lock = threading.Lock()
        self.inner = inner


def plain_global():
    lock_g.acquire()
    lock_g.release()


def local_and_args(lock, timeout):
    lock.acquire(True, timeout)
    lock.release()


def attributes(h):
    h._lock.acquire()
    h.inner._lock.acquire(blocking=True)
    h.inner._lock.release()
    h._lock.release()


def closure():
    cell_lock = threading.Lock()

    def inner():
        cell_lock.acquire()
        cell_lock.release()

    return inner


# (function, expected calls as (kind, expression text))
CASES = [
    (plain_global, [("acquire", "lock_g"), ("release", "lock_g")]),
    (local_and_args, [("acquire", "lock"), ("release", "lock")]),
    (
        attributes,
        [
            ("acquire", "h._lock"),
            ("acquire", "h.inner._lock"),
            ("release", "h.inner._lock"),
            ("release", "h._lock"),
        ],
    ),
]

h = Holder(Holder())
inner = closure()
CASES.append((inner, [("acquire", "cell_lock"), ("release", "cell_lock")]))
for _ in range(3000):
    plain_global()
    local_and_args(lock_g, 1.0)
    attributes(h)
    inner()

out = []
for fn, calls in CASES:
    code = fn.__code__
    out.append(
        {
            "function": code.co_qualname,
            "adaptive": code._co_code_adaptive.hex(),
            "code": code.co_code.hex(),
            "names": list(code.co_names),
            "localsplus": list(code.co_varnames + code.co_cellvars + code.co_freevars),
            "calls": calls,
        }
    )
print(json.dumps({"version": list(sys.version_info[:2]), "functions": out}))
