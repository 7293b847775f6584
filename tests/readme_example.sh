#!/usr/bin/env bash
# readme_example.sh SRC_DIR BUILD_DIR - compiles the first C program of
# README.md against the built library and checks what it prints, so the
# README's example cannot rot.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```c/{f=1;next} /^```/{if(f) exit} f' "$src/README.md" >"$tmp/first.c"
[ -s "$tmp/first.c" ] || { echo "no C block in README.md"; exit 1; }
lib=$(find "$build" -maxdepth 1 -name libstackless.a | head -n 1)
boost=$(grep -m1 '^SL_BOOST_CONTEXT:' "$build/CMakeCache.txt" | cut -d= -f2)
cc -std=c11 -Wall -Wextra -Werror -I"$src/include" "$tmp/first.c" "$lib" "$boost" \
    -lpthread -o "$tmp/first" $(grep -q 'SL_SANITIZE:STRING=address' "$build/CMakeCache.txt" &&
        echo -fsanitize=address,undefined)
out=$("$tmp/first")
expected=$'got 1\ngot 2\ngot 3\nSL_EDEADLOCK'
if [ "$out" != "$expected" ]; then
    printf 'README example printed:\n%s\nexpected:\n%s\n' "$out" "$expected"
    exit 1
fi
echo "README example: compiled and printed what the README says"
