#!/usr/bin/env bash
# Installs Debian sid's unmodified CPython 3.14 and 3.15 (GIL builds, their
# Py_DEBUG builds python3.14d / python3.15d, and libpython3.X-dbg's DWARF)
# with the shared tool ../shared/tools/sid-python.sh, into a sid chroot that
# shares the host's PID namespace (see that script's header). Then makes this
# checkout visible inside the chroot at the same absolute path, so a test can
# hand a sid interpreter the path of a fixture exactly as it does for the
# host's interpreters, and mounts /proc there (python -m asyncio pstree and
# os.getpid-based tools need it).
#
# Prints the chroot root on stdout. Fails loudly when the shared tool is
# missing or fails: the Python suite must run on these interpreters.
#
# Env: SID_ROOT (/opt/sid-root), SID_CACHE (/var/cache/sid-python), as for
# the shared tool.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib/common.sh
. "$root/scripts/lib/common.sh"
require_root

tool="$root/../shared/tools/sid-python.sh"
[[ -f $tool ]] || die "$tool is missing: the sid interpreters (3.14, 3.15) come from ../shared beside the checkout"
apt_install_missing debootstrap debian-archive-keyring
bash "$tool" 3.14 3.15 >/dev/null || die "$tool failed: see its log above"

sid_root=${SID_ROOT:-/opt/sid-root}
# The checkout at the same path inside the chroot: fixtures are run from
# there, and write their progress files into the tests' scratch directory
# (target/tmp) under it.
mirror="$sid_root$root"
# A mount left from an earlier checkout at the same path (deleted and cloned
# again) shows the old, deleted directory: replace it.
if mountpoint -q "$mirror" && [[ ! -d $mirror/fixtures ]]; then
    umount -l "$mirror" || die "cannot unmount the stale $mirror"
fi
if ! mountpoint -q "$mirror"; then
    mkdir -p "$mirror"
    mount --bind "$root" "$mirror" || die "cannot bind-mount $root at $mirror"
fi
mountpoint -q "$sid_root/proc" || mount -t proc proc "$sid_root/proc" || die "cannot mount /proc in $sid_root"
for v in 3.14 3.15; do
    for exe in "python$v" "python${v}d"; do
        [[ -x /opt/sid-python/bin/$exe ]] || die "/opt/sid-python/bin/$exe missing after $tool"
    done
done
echo "$sid_root"
