#!/usr/bin/env bash
# doc_symbols.sh - checks that every public symbol of the API header is
# documented: each function, each SL_E* error code and each public typedef
# must appear in at least one DOCS_DIR/*.md file, in a heading or inside an
# inline code span (`...`). Mentions inside fenced code blocks do not count.
#
# Usage: doc_symbols.sh DOCS_DIR HEADER...
#   e.g. bash tests/doc_symbols.sh docs include/stackless.h include/stackless_sync.h
# (the headers are read as one: the error table may be in any of them)
#
# What is extracted from HEADER (after stripping comments):
#   functions    every sl_[a-z_]+ directly followed by '(' (internal sl__
#                names excluded)
#   error codes  NAME for every X(NAME, ...) line of SL_ERRNO_MAP
#   typedefs     the name every `typedef` declares (struct, plain, or
#                function pointer)
#
# Exit status: 0 all documented ("doc symbols: N checked, all documented");
# 1 some missing (each printed on its own line); 2 usage or parse error.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 DOCS_DIR HEADER..." >&2
    exit 2
fi
docs_dir=$1
shift
headers=("$@")
header="${headers[*]}"
if [ ! -d "$docs_dir" ]; then
    echo "doc symbols: no such directory: $docs_dir" >&2
    exit 2
fi
for h in "${headers[@]}"; do
    if [ ! -r "$h" ]; then
        echo "doc symbols: cannot read header: $h" >&2
        exit 2
    fi
done
shopt -s nullglob
docs=("$docs_dir"/*.md)
shopt -u nullglob
if [ ${#docs[@]} -eq 0 ]; then
    echo "doc symbols: no *.md files in $docs_dir" >&2
    exit 2
fi

export LC_ALL=C

# The header without comments: block comments (across lines) become one
# space, then // comments are cut at the end of their line.
code=$(cat "${headers[@]}" | sed -z 's:/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/: :g' |
       sed 's://.*$::')

# ---- functions: sl_name( in declarations ----------------------------------
functions=$(printf '%s\n' "$code" |
            grep -oE '(^|[^A-Za-z0-9_])sl_[a-z_]+[[:space:]]*\(' |
            sed -E 's/^[^s]*//; s/[[:space:]]*\($//' |
            grep -v '^sl__' | sort -u || true)

# ---- error codes: the X(NAME, value, "message") rows of SL_ERRNO_MAP -------
codes=$(printf '%s\n' "$code" | awk '
    /^[[:space:]]*#[[:space:]]*define[[:space:]]+SL_ERRNO_MAP[[:space:]]*\(/ {
        inside = 1
    }
    inside {
        line = $0
        while (match(line, /X\([[:space:]]*[A-Z0-9_]+[[:space:]]*,/)) {
            name = substr(line, RSTART + 2, RLENGTH - 3)
            gsub(/[[:space:]]/, "", name)
            print name
            line = substr(line, RSTART + RLENGTH)
        }
        if ($0 !~ /\\[[:space:]]*$/)
            inside = 0
    }' | sort -u)

# ---- typedefs: the declared name of every typedef statement ----------------
# Flatten, drop struct/union/enum bodies (innermost first, so nested ones go
# too; an extern "C" { ... } block is not a body and stays), then split into
# statements.
flat=$(printf '%s\n' "$code" | grep -v '^[[:space:]]*#' | tr '\n' ' ')
body='(struct|union|enum)([[:space:]]+[A-Za-z_][A-Za-z0-9_]*)?[[:space:]]*\{[^{}]*\}'
while :; do
    new=$(printf '%s' "$flat" | sed -E "s/$body/\\1\\2 /g")
    [ "$new" = "$flat" ] && break
    flat=$new
done
typedefs=$(printf '%s' "$flat" | tr ';' '\n' |
           grep -E '(^|[^A-Za-z0-9_])typedef[[:space:]]' |
           sed -E -e 's/.*(^|[^A-Za-z0-9_])typedef[[:space:]]+//' \
                  -e 's/\([[:space:]]*\*[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\).*/ \1/' \
                  -e 's/\[[^]]*\][[:space:]]*$//' \
                  -e 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*$/\1/' |
           grep -E '^sl_[A-Za-z0-9_]+$' | sort -u || true)

for kind in functions codes typedefs; do
    if [ -z "${!kind}" ]; then
        echo "doc symbols: found no $kind in $header (parse error?)" >&2
        exit 2
    fi
done

# ---- what the docs document: heading lines and inline code spans ----------
# Kept in a file: grep -q on a pipe would make the writer die of SIGPIPE,
# which pipefail reports as a failure.
documented=$(mktemp)
trap 'rm -f "$documented"' EXIT
awk '
    /^[[:space:]]*(```|~~~)/ { fenced = !fenced; next }
    fenced { next }
    /^#+[[:space:]]/ { print }
    {
        line = $0
        while (match(line, /`[^`]+`/)) {
            print substr(line, RSTART + 1, RLENGTH - 2)
            line = substr(line, RSTART + RLENGTH)
        }
    }' "${docs[@]}" >"$documented"

checked=0
missing=0
check() { # kind symbol
    checked=$((checked + 1))
    if ! grep -qE "(^|[^A-Za-z0-9_])$2([^A-Za-z0-9_]|\$)" "$documented"; then
        echo "doc symbols: missing $1: $2"
        missing=$((missing + 1))
    fi
}
for s in $functions; do check function "$s"; done
for s in $codes; do check "error code" "$s"; done
for s in $typedefs; do check typedef "$s"; done

if [ $missing -gt 0 ]; then
    echo "doc symbols: $missing of $checked not documented in $docs_dir/*.md (need a heading or \`code span\`)"
    exit 1
fi
echo "doc symbols: $checked checked, all documented"
