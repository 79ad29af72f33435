#!/usr/bin/env bash
# Prints "LABEL PATH", one per line, for every Python interpreter lockdump's
# test suite must cover. The Rust tests run this script; a missing
# interpreter is an error (exit 1, message names the setup script), never a
# silently skipped test.
#
#   3.11         pyenv 3.11.7 (unstripped)
#   3.11-debian  Debian's /usr/bin/python3.11 (stripped, no -dbg package)
#   3.12         pyenv 3.12.1
#   3.13         pyenv 3.13.0
#   3.13t        free-threaded 3.13 built from Debian trixie's source,
#                $LOCKDUMP_CACHE/python3.13t/bin/python3.13t
#   3.14, 3.15   Debian sid's unmodified python3.14 / python3.15, run inside
#                the sid chroot (scripts/setup-sid-python.sh); the target's
#                files are reachable only through /proc/PID/root
#
# With --debug-builds, prints the Py_DEBUG builds instead (3.14d, 3.15d):
# the tests that must also hold on them (the seed two-lock case) ask for
# these separately.
#
# Environment: LOCKDUMP_CACHE (default /var/cache/lockdump).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=lib/pyenv.sh
. "$here/lib/pyenv.sh"

sid_root=${SID_ROOT:-/opt/sid-root}
checkout=$(cd "$here/.." && pwd)
[[ -d $sid_root$checkout/fixtures ]] ||
    die "$sid_root$checkout is not this checkout: run scripts/setup-sid-python.sh (as root)"
sid() {
    local exe=/opt/sid-python/bin/$1
    [[ -x $exe ]] || die "$exe missing: run scripts/setup-sid-python.sh (as root)"
    echo "$exe"
}

if [[ ${1:-} == --debug-builds ]]; then
    printf '%s %s\n' 3.14d "$(sid python3.14d)" 3.15d "$(sid python3.15d)"
    exit 0
fi

py311=$(pyenv_python 3.11.7)
py312=$(pyenv_python 3.12.1)
py313=$(pyenv_python 3.13.0)
debian311=/usr/bin/python3.11
[[ -x $debian311 ]] || die "$debian311 missing: run scripts/setup-tools.sh (as root)"
ft313="$LOCKDUMP_CACHE/python3.13t/bin/python3.13t"
[[ -x $ft313 ]] || die "$ft313 missing: run scripts/setup-free-threaded-python.sh (as root)"

printf '%s %s\n' \
    3.11 "$py311" \
    3.11-debian "$debian311" \
    3.12 "$py312" \
    3.13 "$py313" \
    3.13t "$ft313" \
    3.14 "$(sid python3.14)" \
    3.15 "$(sid python3.15)"
