# shellcheck shell=bash
# Finds the Debian archive URI this machine's apt already uses, so scripts can
# reach other suites of the same mirror without a host name in the repo.
# Sourced, never executed. Prints "URI<TAB>SIGNED_BY" (SIGNED_BY may be empty).

debian_mirror() {
    local codename
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || { echo "cannot read VERSION_CODENAME from /etc/os-release" >&2; return 1; }

    local files=() f
    for f in /etc/apt/sources.list.d/*.sources; do [[ -f $f ]] && files+=("$f"); done
    # deb822 stanzas: the first enabled one of type deb/deb-src whose Suites
    # contain exactly the release codename (not -security/-updates) is the
    # main archive.
    if [[ ${#files[@]} -gt 0 ]]; then
        awk -v want="$codename" '
            function reset() { types = ""; uris = ""; suites = ""; enabled = "yes"; signed = ""; key = "" }
            function check(   u) {
                if (enabled != "no" && uris != "" && (" " types " ") ~ / deb(-src)? / && (" " suites " ") ~ (" " want " ")) {
                    split(uris, u, " "); print u[1] "\t" signed; found = 1; exit 0
                }
                reset()
            }
            BEGIN { reset() }
            /^#/ { next }
            /^[ \t]*$/ { check(); next }
            /^[ \t]/ { if (key == "uris") uris = uris " " $0; next }
            {
                key = tolower(substr($0, 1, index($0, ":") - 1)); val = substr($0, index($0, ":") + 1)
                gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
                else if (key == "signed-by") signed = val
            }
            END { if (!found) check(); if (!found) exit 1 }
        ' "${files[@]}" && return 0
    fi

    # One-line format: "deb [opts] URI SUITE COMPONENTS...".
    files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [[ -f $f ]] && files+=("$f"); done
    if [[ ${#files[@]} -gt 0 ]]; then
        awk -v want="$codename" '
            $1 != "deb" && $1 != "deb-src" { next }
            {
                i = 2; signed = ""
                if ($i ~ /^\[/) {
                    while (i <= NF) {
                        if ($i ~ /signed-by=/) { signed = $i; sub(/.*signed-by=/, "", signed); sub(/\].*/, "", signed) }
                        if ($i ~ /\]$/) { i++; break }
                        i++
                    }
                }
                if ($(i + 1) == want) { print $i "\t" signed; found = 1; exit 0 }
            }
            END { if (!found) exit 1 }
        ' "${files[@]}" && return 0
    fi

    echo "no apt source for suite '$codename' found in /etc/apt/sources.list{,.d/}" >&2
    return 1
}
