#!/usr/bin/env bash
# Builds a free-threaded ("t", --disable-gil) CPython from Debian's source
# package and caches it outside any checkout. lockdump must read the
# free-threaded runtime's locks and thread states, and neither Debian bookworm
# nor pyenv's images ship a free-threaded build, so we build one.
#
# Usage: scripts/setup-free-threaded-python.sh [--version 3.13|3.14] [--suite SUITE]
#   --version  CPython minor version (default 3.13).
#   --suite    Debian suite whose source package to use (default: trixie for
#              3.13, forky for 3.14: trixie has no python3.14).
# 3.14 is untested: forky and sid list a python3.14 source package, but the
# mirror this workplace reaches answered 404 for its files (2026-11-23), so
# --version 3.14 fails at the download step there.
# Environment: LOCKDUMP_CACHE (default /var/cache/lockdump).
# Result: $LOCKDUMP_CACHE/python<VER>t/bin/python<VER>t, printed on stdout
# (all progress goes to stderr). Idempotent: exits at once when that
# interpreter exists and runs with the GIL disabled.
#
# Why not Debian's own build recipe: trixie's build-dependencies are not
# installable on bookworm. We use Debian's patched upstream tree and a plain
# ./configure instead, with bookworm's -dev packages. Debug info is kept (-g,
# no strip) because lockdump's tests use this interpreter as the "has symbols"
# free-threaded case.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=lib/debian-mirror.sh
. "$here/lib/debian-mirror.sh"

version=3.13
suite=
while [[ $# -gt 0 ]]; do
    case $1 in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --suite) suite=${2:?--suite needs a value}; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 && !/shellcheck/ { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case $version in
3.13) suite=${suite:-trixie} ;;
3.14) suite=${suite:-forky} ;;
*) die "unsupported --version $version (3.13 or 3.14)" ;;
esac

prefix="$LOCKDUMP_CACHE/python${version}t"
python="$prefix/bin/python${version}t"

# The GIL can be forced back on by the environment; the check must see the
# build's own default.
is_free_threaded() {
    [[ -x $python ]] && env -u PYTHON_GIL "$python" -c 'import sys; assert not sys._is_gil_enabled()' 2>/dev/null
}

if is_free_threaded; then
    echo "$python"
    exit 0
fi

require_root
mkdir -p "$LOCKDUMP_CACHE"
# Serialise concurrent runs (several worktrees may call scripts/test at once).
exec 9>"$LOCKDUMP_CACHE/.python${version}t.lock"
log "waiting for lock $LOCKDUMP_CACHE/.python${version}t.lock"
flock 9
if is_free_threaded; then
    echo "$python"
    exit 0
fi

start=$SECONDS
# Build dependencies from bookworm. Optional modules we do not need
# (tkinter, dbm.gnu) are still built when their -dev package is present.
deps=(build-essential pkg-config dpkg-dev xz-utils
    libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev
    libreadline-dev libncurses-dev uuid-dev libgdbm-dev libgdbm-compat-dev libexpat1-dev)
[[ $version == 3.14 ]] && deps+=(libzstd-dev) # compression.zstd, new in 3.14
apt_install_missing "${deps[@]}"

work=$(mktemp -d "$LOCKDUMP_CACHE/.build-python${version}t.XXXXXX")
buildlog="$LOCKDUMP_CACHE/python${version}t-build.log"
: >"$buildlog"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
# Loud failure with the tail of the build log, which is where the reason is.
fail_with_log() {
    tail -n 60 "$buildlog" >&2 || true
    die "$1 (full log: $buildlog)"
}

# A private apt configuration holding only a deb-src entry for $suite: the
# system's sources, lists and caches stay on bookworm.
mirror_line=$(debian_mirror) || die "cannot derive the Debian mirror from /etc/apt (see message above)"
mirror=${mirror_line%%$'\t'*}
keyring=${mirror_line#*$'\t'}
# Signed-By may be an inline key block; only a keyring file path is reusable.
[[ $keyring == /* && -f $keyring ]] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $keyring ]] || die "no Debian archive keyring at $keyring (apt-get install debian-archive-keyring)"
aptdir="$work/apt"
mkdir -p "$aptdir/parts" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$aptdir/sources.list"
apt_opts=(
    -o "Dir::Etc::SourceList=$aptdir/sources.list"
    -o "Dir::Etc::SourceParts=$aptdir/parts"
    -o "Dir::State::Lists=$aptdir/lists"
    -o "Dir::Cache=$aptdir/cache"
    -o "APT::Sandbox::User=root"
)
log "fetching $suite source index"
apt-get "${apt_opts[@]}" update </dev/null >>"$buildlog" 2>&1 || fail_with_log "apt-get update for $suite deb-src failed"
srcver=$(apt-cache "${apt_opts[@]}" showsrc "python$version" 2>>"$buildlog" |
    awk '/^Version:/ { print $2 }' | sort -V | tail -n 1)
[[ -n $srcver ]] || fail_with_log "Debian suite $suite has no source package python$version"
log "downloading Debian source python$version=$srcver from $suite"
(cd "$work" && apt-get "${apt_opts[@]}" source --only-source "python$version=$srcver" </dev/null) >>"$buildlog" 2>&1 ||
    fail_with_log "apt-get source python$version=$srcver failed"
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "python$version-*" -print -quit)
[[ -n $srcdir && -x $srcdir/configure ]] || fail_with_log "no unpacked source tree with ./configure under $work"

# A half-finished earlier install would fail the check above; start clean.
rm -rf "$prefix"
cd "$srcdir"
log "configure (--disable-gil --enable-shared --prefix=$prefix)"
# The rpath lets bin/python find its libpython without LD_LIBRARY_PATH. It
# goes in LDFLAGS_NODIST too: Debian's makefile-bootstrap.diff links with
# LDFLAGS_NODIST where upstream uses LDFLAGS.
rpath="-Wl,-rpath,$prefix/lib"
./configure --disable-gil --enable-shared --prefix="$prefix" \
    --disable-test-modules --without-ensurepip \
    CFLAGS="-g -O2" LDFLAGS="$rpath" LDFLAGS_NODIST="$rpath" >>"$buildlog" 2>&1 ||
    fail_with_log "configure failed"
log "make -j2 (several minutes)"
make -j2 >>"$buildlog" 2>&1 || fail_with_log "make failed"
log "make install"
make install >>"$buildlog" 2>&1 || fail_with_log "make install failed"
printf '%s %s\n' "python$version" "$srcver" >"$prefix/DEBIAN_SOURCE_VERSION"

[[ -x $python ]] || fail_with_log "make install did not produce $python"
readelf -d "$python" | grep -Eq "R(UN)?PATH.*\[$prefix/lib\]" ||
    fail_with_log "$python lacks the rpath $prefix/lib: $(readelf -d "$python" | grep -E 'R(UN)?PATH' || echo none)"
env -u PYTHON_GIL "$python" -c 'import sys; assert not sys._is_gil_enabled(), "GIL is enabled"' ||
    fail_with_log "$python does not run free-threaded (see the error above)"
# Modules lockdump's fixtures and benchmarks may import; a missing one means a
# missing -dev package, which should fail here rather than in a test.
env -u PYTHON_GIL "$python" -c 'import ctypes, ssl, sqlite3, zlib, bz2, lzma, readline, decimal, threading' ||
    fail_with_log "$python lacks a standard module (a -dev package is missing?)"
log "built $python from Debian python$version $srcver ($suite) in $((SECONDS - start)) s"
echo "$python"
