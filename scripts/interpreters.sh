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
#
# Environment: LOCKDUMP_CACHE (default /var/cache/lockdump).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=lib/pyenv.sh
. "$here/lib/pyenv.sh"

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
    3.13t "$ft313"
