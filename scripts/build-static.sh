#!/usr/bin/env bash
# Builds the statically linked lockdump (profile `dist`: LTO, DWARF stripped)
# and prints its path on stdout. README "Install" and tests/containers.rs use it.
#
#   musl:  cargo build --profile dist --target x86_64-unknown-linux-musl
#          (when rustup has, or can add, the target)
#   glibc: RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist
#          --target x86_64-unknown-linux-gnu (otherwise; lockdump calls
#          nothing that needs NSS or dlopen, so glibc's static caveats do not apply)
#
# Either way it fails unless `file` calls the result statically linked.
# Usage: scripts/build-static.sh [musl|glibc]   (default: musl if possible)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=lib/common.sh
. "$root/scripts/lib/common.sh"

want=${1:-auto}
if [[ $want == auto ]]; then
    want=glibc
    if command -v rustup >/dev/null; then
        if rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
            rustup target add x86_64-unknown-linux-musl >&2; then
            want=musl
        fi
    fi
fi
case $want in
musl)
    target=x86_64-unknown-linux-musl
    log "cargo build --profile dist --target $target"
    cargo build --profile dist --target "$target" >&2
    ;;
glibc)
    target=x86_64-unknown-linux-gnu
    log "RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --target $target"
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile dist --target "$target" >&2
    ;;
*) die "usage: $0 [musl|glibc]" ;;
esac
bin=$root/target/$target/dist/lockdump
kind=$(file -b "$bin")
[[ $kind == *"statically linked"* || $kind == *"static-pie linked"* ]] || die "$bin is not statically linked: $kind"
log "$bin: $kind ($(stat -c %s "$bin") bytes)"
echo "$bin"
