#!/usr/bin/env bash
# doc_blocks.sh SRC_DIR BUILD_DIR DOC.md - compiles every ```c block of
# DOC.md against the built library, runs it, and compares what it prints
# on standard output with the ```text block that must follow it, so the
# examples of a document cannot rot. Every ```c block is a whole program
# (with main); other blocks (```python, ```sh, ...) are left alone.
# Exit status: 0 when every program compiled, exited 0 and printed its
# text block exactly; 1 otherwise (each failure is described); 2 on usage.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SRC_DIR BUILD_DIR DOC.md" >&2; exit 2; }
src=$1 build=$2 doc=$3
[ -r "$doc" ] || doc=$src/$doc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Split the document: block N's program into N.c, its expected output into
# N.txt, and the line it starts on into N.line.
awk -v dir="$tmp" '
    /^```/ && !inside {
        inside = 1
        lang = substr($0, 4)
        if (lang == "c") { n++; out = dir "/" n ".c"; print NR > (dir "/" n ".line"); want_text = 1 }
        else if (lang == "text" && want_text) { out = dir "/" n ".txt"; want_text = 0; printf "" > out }
        else { out = ""; if (want_text) { print n > (dir "/" n ".notext"); want_text = 0 } }
        next
    }
    /^```/ && inside { inside = 0; if (out) close(out); out = ""; next }
    inside && out { print > out }
    END { if (want_text) print n > (dir "/" n ".notext") }
' "$doc"

lib=$(find "$build" -maxdepth 1 -name libstackless.a | head -n 1)
boost=$(grep -m1 '^SL_BOOST_CONTEXT:' "$build/CMakeCache.txt" | cut -d= -f2)
san=()
grep -q 'SL_SANITIZE:STRING=address' "$build/CMakeCache.txt" && san=(-fsanitize=address,undefined)
grep -q 'SL_SANITIZE:STRING=thread' "$build/CMakeCache.txt" && san=(-fsanitize=thread)

n=0 failed=0
for prog in $(ls "$tmp"/*.c 2>/dev/null | sort -V); do
    i=$(basename "$prog" .c)
    line=$(cat "$tmp/$i.line")
    n=$((n + 1))
    what="${doc##*/}:$line"
    if [ -e "$tmp/$i.notext" ] || [ ! -e "$tmp/$i.txt" ]; then
        echo "$what: the C block is not followed by a \`\`\`text block with its output"
        failed=$((failed + 1))
        continue
    fi
    if ! cc -std=c11 -Wall -Wextra -Werror -I"$src/include" "$prog" "$lib" "$boost" \
            -lpthread -lm "${san[@]}" -o "$tmp/$i" 2>"$tmp/$i.cc"; then
        echo "$what: does not compile:"
        cat "$tmp/$i.cc"
        failed=$((failed + 1))
        continue
    fi
    rc=0
    timeout 60 "$tmp/$i" >"$tmp/$i.out" 2>"$tmp/$i.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "$what: exited with status $rc; stderr:"
        cat "$tmp/$i.err"
        failed=$((failed + 1))
    elif ! diff -u "$tmp/$i.txt" "$tmp/$i.out" >"$tmp/$i.diff"; then
        echo "$what: printed something else than its text block (- doc, + program):"
        cat "$tmp/$i.diff"
        failed=$((failed + 1))
    fi
done
[ "$n" -gt 0 ] || { echo "${doc##*/}: no \`\`\`c block"; exit 1; }
if [ "$failed" -gt 0 ]; then
    echo "${doc##*/}: $failed of $n programs failed"
    exit 1
fi
echo "${doc##*/}: $n programs compiled, ran and printed their text blocks"
