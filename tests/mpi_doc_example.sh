#!/usr/bin/env bash
# mpi_doc_example.sh DOC.md MPIRUN -- CC-ARGS... - compiles the first ```c
# block of DOC.md (a whole program using libstackless_mpi) with cc and
# CC-ARGS (the libraries and include flags), runs it under MPIRUN with 3
# ranks, and compares what it prints with the ```text block after it.
# Exit status: 0 when it compiled, ran and printed that; 1 otherwise.
set -euo pipefail
[ $# -ge 3 ] && [ "$3" = -- ] || { echo "usage: $0 DOC.md MPIRUN -- CC-ARGS..." >&2; exit 2; }
doc=$1 mpirun=$2
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
    /^```c$/ && !done { out = dir "/prog.c"; next }
    /^```text$/ && out == "" && have && !done { out = dir "/want.txt"; printf "" > out; next }
    /^```/ && out != "" { close(out); if (out ~ /want/) done = 1; else have = 1; out = ""; next }
    out != "" { print > out }
' "$doc"
[ -s "$tmp/prog.c" ] && [ -e "$tmp/want.txt" ] ||
    { echo "$doc: no C block followed by a text block"; exit 1; }
cc -std=gnu11 -Wall -Wextra -Werror "$tmp/prog.c" -o "$tmp/prog" "$@" ||
    { echo "$doc: the example does not compile"; exit 1; }
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 60 \
    "$mpirun" --oversubscribe -np 3 "$tmp/prog" >"$tmp/out.txt" ||
    { echo "$doc: the example failed under $mpirun"; exit 1; }
if ! diff -u "$tmp/want.txt" "$tmp/out.txt"; then
    echo "$doc: the example printed something else"
    exit 1
fi
echo "$doc: the example compiled, ran on 3 ranks and printed its text block"
