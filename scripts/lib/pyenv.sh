# shellcheck shell=bash
# Locates the pyenv CPython builds that the machine image ships. Sourced.
# Needs die() from common.sh.

# The exact builds tests cover: they carry symbols (pyenv builds unstripped),
# unlike Debian's python3.11.
# shellcheck disable=SC2034 # used by the scripts that source this file
PYENV_VERSIONS_REQUIRED="3.11.7 3.12.1 3.13.0"

# pyenv's root without relying on pyenv being on PATH (CI's environment may
# differ from an interactive shell's).
pyenv_root() {
    if [[ -n ${PYENV_ROOT:-} ]]; then
        printf '%s\n' "$PYENV_ROOT"
    elif command -v pyenv >/dev/null 2>&1; then
        pyenv root
    else
        printf '%s\n' "${HOME:-/root}/.pyenv"
    fi
}

# pyenv_python 3.12.1 -> /root/.pyenv/versions/3.12.1/bin/python3.12
pyenv_python() {
    local full=$1 minor path
    minor=${full%.*}
    path="$(pyenv_root)/versions/$full/bin/python$minor"
    [[ -x $path ]] || die "pyenv CPython $full missing: $path (the machine image ships it; otherwise: pyenv install $full)"
    printf '%s\n' "$path"
}
