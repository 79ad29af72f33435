# shellcheck shell=bash
# Helpers shared by the setup scripts: timestamped logging, loud failure and
# an apt installer that only touches the network when something is missing.
# Sourced, never executed.

# Where machine-wide artifacts live (built interpreters, tool venv). Outside
# any checkout so fresh clones (CI) reuse them.
LOCKDUMP_CACHE="${LOCKDUMP_CACHE:-/var/cache/lockdump}"
export LOCKDUMP_CACHE

# Progress goes to stderr so a script's stdout can carry its result (a path).
log() { printf '[%s] %s: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${0##*/}" "$*" >&2; }

die() {
    printf '[%s] %s: ERROR: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${0##*/}" "$*" >&2
    exit 1
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (installs Debian packages and writes $LOCKDUMP_CACHE)"
}

# True when the Debian package (exact name, optionally :arch) is installed.
deb_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# apt-get update at most once per process, and only when an install needs it.
_LOCKDUMP_APT_UPDATED=0
apt_update_once() {
    [[ $_LOCKDUMP_APT_UPDATED -eq 1 ]] && return 0
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 || die "apt-get update failed"
    _LOCKDUMP_APT_UPDATED=1
}

# Install only the packages not yet installed; no-op (and no network) when
# everything is present.
apt_install_missing() {
    local missing=() p
    for p in "$@"; do
        deb_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing Debian packages: ${missing[*]}"
    # Try the existing lists first: an update is only needed on a fresh image
    # (no lists) or when the lists are stale (install fails), retried below.
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt_update_once
    local install=(apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}")
    if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" </dev/null >&2; then
        [[ $_LOCKDUMP_APT_UPDATED -eq 1 ]] && die "apt-get install ${missing[*]} failed"
        apt_update_once
        DEBIAN_FRONTEND=noninteractive "${install[@]}" </dev/null >&2 || die "apt-get install ${missing[*]} failed"
    fi
}
