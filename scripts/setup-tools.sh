#!/usr/bin/env bash
# Installs (idempotently) what lockdump's tests and benchmarks need besides
# the free-threaded interpreter (scripts/setup-free-threaded-python.sh):
#   - Debian: gdb, elfutils (eu-stack), build-essential, python3.11 (Debian's
#     own, stripped: one of the test targets), python3.11-venv, and musl-tools
#     (musl-gcc: the statically linked musl fixtures of tests/musl.rs),
#     graphviz (`dot`: tests/picture.rs renders `--dot` output), chromium
#     (headless: tests/picture.rs screenshots the `--html` report), and
#     redis-server / redis-tools (the real-service smoke suite, tests/smoke.rs:
#     redis-server as a child of the test on a random 127.0.0.1 port, loaded
#     by redis-benchmark), golang-go (the Go fixture of
#     tests/unsupported_runtimes.rs).
#   - rustup: the x86_64-unknown-linux-musl target when rustup can fetch it
#     (scripts/build-static.sh falls back to a static glibc build otherwise).
#   - PyPI, in a venv at $LOCKDUMP_CACHE/venv: py-spy and pystack, the tools
#     benchmarks compare against ($LOCKDUMP_CACHE/venv/bin/{py-spy,pystack}).
# It also checks, and fails loudly otherwise, that:
#   - python3.11-dbg / libpython3.11-dbg are NOT installed: tests use Debian's
#     python3.11 as the "no debug info" CPython case;
#   - the pyenv interpreters 3.11.7, 3.12.1, 3.13.0 shipped by the machine
#     image exist;
#   - py-spy and pystack can really read a live pyenv 3.12 process.
# libc6-dbg is deliberately not installed here: lockdump must work without
# glibc debug info, so nothing may depend on it (some images ship it anyway).
#
# Environment: LOCKDUMP_CACHE (default /var/cache/lockdump).
# Prints "py-spy PATH" and "pystack PATH" on stdout.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=lib/pyenv.sh
. "$here/lib/pyenv.sh"

# Pinned so benchmark numbers compare like with like across runs.
PY_SPY_VERSION=0.4.3
PYSTACK_VERSION=1.7.2

require_root

# --- Debian packages -------------------------------------------------------
apt_install_missing gdb elfutils build-essential python3.11 python3.11-venv musl-tools graphviz chromium redis-server redis-tools golang-go nodejs
command -v go >/dev/null || die "go missing after installing golang-go (tests/unsupported_runtimes.rs builds fixtures/go/go_abba.go)"
command -v redis-server >/dev/null || die "redis-server missing after installing redis-server (tests/smoke.rs runs it)"
command -v node >/dev/null || die "node missing after installing nodejs (tests/smoke.rs inspects node with worker_threads)"
command -v redis-benchmark >/dev/null || die "redis-benchmark missing after installing redis-tools (tests/smoke.rs loads redis with it)"
command -v dot >/dev/null || die "dot missing after installing graphviz (tests/picture.rs renders --dot output)"
command -v chromium >/dev/null || die "chromium missing after installing chromium (tests/picture.rs screenshots --html)"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    log "rustup target add x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl >&2 ||
        log "note: rustup could not add the musl target; scripts/build-static.sh builds a static glibc binary instead"
fi
command -v musl-gcc >/dev/null || die "musl-gcc missing after installing musl-tools (tests/musl.rs builds musl-gcc -static fixtures)"
command -v eu-stack >/dev/null || die "eu-stack missing after installing elfutils"

for p in python3.11-dbg libpython3.11-dbg; do
    if deb_installed "$p"; then
        die "$p is installed, but tests need Debian's python3.11 without debug info: apt-get remove $p"
    fi
done
# Belt and braces: the binary itself must carry no symbol table, and no
# separate debug file may be reachable through its build-id.
if readelf -S --wide /usr/bin/python3.11 | grep -q '\.symtab'; then
    die "/usr/bin/python3.11 has a .symtab; tests expect Debian's stripped build"
fi
build_id=$(readelf -n /usr/bin/python3.11 | awk '/Build ID:/ { print $3; exit }')
if [[ -n $build_id && -e /usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug ]]; then
    die "debug info for /usr/bin/python3.11 is installed (build-id $build_id); remove the -dbg package providing it"
fi
if deb_installed libc6-dbg; then
    log "note: libc6-dbg is installed (not by this script); lockdump must not rely on it"
fi

# --- pyenv interpreters ----------------------------------------------------
for v in $PYENV_VERSIONS_REQUIRED; do
    pyenv_python "$v" >/dev/null # dies with a message when missing
done

# --- py-spy and pystack ----------------------------------------------------
venv="$LOCKDUMP_CACHE/venv"
installed_versions() {
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.metadata as m
print(m.version("py-spy"), m.version("pystack"))
PY
}
if [[ $(installed_versions || true) != "$PY_SPY_VERSION $PYSTACK_VERSION" ]]; then
    mkdir -p "$LOCKDUMP_CACHE"
    if [[ ! -x $venv/bin/python ]]; then
        log "creating venv $venv (Debian python3.11)"
        /usr/bin/python3.11 -m venv "$venv" || die "python3.11 -m venv $venv failed"
    fi
    log "pip install py-spy==$PY_SPY_VERSION pystack==$PYSTACK_VERSION"
    "$venv/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        "py-spy==$PY_SPY_VERSION" "pystack==$PYSTACK_VERSION" </dev/null >&2 ||
        die "pip install of py-spy/pystack into $venv failed"
    [[ $(installed_versions || true) == "$PY_SPY_VERSION $PYSTACK_VERSION" ]] ||
        die "py-spy/pystack versions in $venv are not $PY_SPY_VERSION/$PYSTACK_VERSION after install"
fi
[[ -x $venv/bin/py-spy && -x $venv/bin/pystack ]] || die "$venv/bin/py-spy or pystack missing"

# --- smoke test: both tools read a live, sleeping pyenv 3.12 process -------
py312=$(pyenv_python 3.12.1)
tmp=$(mktemp -d)
target_pid=
cleanup() {
    if [[ -n $target_pid ]]; then
        kill -KILL "$target_pid" 2>/dev/null || true
        wait "$target_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cat >"$tmp/sleeper.py" <<'PY'
import time

def lockdump_smoke_sleeper():
    print("READY", flush=True)
    time.sleep(600)

lockdump_smoke_sleeper()
PY
"$py312" "$tmp/sleeper.py" >"$tmp/out" 2>&1 </dev/null &
target_pid=$!
for _ in $(seq 600); do # 60 s, generous for a loaded machine
    grep -q READY "$tmp/out" && break
    kill -0 "$target_pid" 2>/dev/null || die "smoke-test target exited early: $(cat "$tmp/out")"
    sleep 0.1
done
grep -q READY "$tmp/out" || die "smoke-test target did not print READY within 60 s"

timeout 60 "$venv/bin/py-spy" dump --pid "$target_pid" >"$tmp/py-spy.txt" 2>&1 ||
    die "py-spy dump --pid $target_pid failed: $(cat "$tmp/py-spy.txt")"
grep -q lockdump_smoke_sleeper "$tmp/py-spy.txt" ||
    die "py-spy output lacks the sleeping function: $(cat "$tmp/py-spy.txt")"
timeout 60 "$venv/bin/pystack" remote "$target_pid" >"$tmp/pystack.txt" 2>&1 ||
    die "pystack remote $target_pid failed: $(cat "$tmp/pystack.txt")"
grep -q lockdump_smoke_sleeper "$tmp/pystack.txt" ||
    die "pystack output lacks the sleeping function: $(cat "$tmp/pystack.txt")"
log "py-spy $PY_SPY_VERSION and pystack $PYSTACK_VERSION read a live Python 3.12 process"

echo "py-spy $venv/bin/py-spy"
echo "pystack $venv/bin/pystack"
