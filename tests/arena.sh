#!/usr/bin/env bash
# arena.sh - runs examples/arena and checks its last line.
#
#   arena.sh ARENA CHECKSUM ARGS...   exit status 0, the invariants, and
#                                     checksum=CHECKSUM exactly (the world is
#                                     deterministic for a seed, whatever the
#                                     number of workers)
#   arena.sh ARENA --snapshot ARGS... --snapshot writes a P6 PPM of the
#                                     size --image asks for (default 512)
# Invariants: alive + died == spawned == actors + born, messages > 0.
set -euo pipefail
arena=$1 want=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=("$@")
[ "$want" = --snapshot ] && args+=(--snapshot "$tmp/world.ppm")
rc=0
"$arena" --quiet "${args[@]}" >"$tmp/out" || rc=$?
cat "$tmp/out"
[ "$rc" -eq 0 ] || { echo "arena exited with status $rc"; exit 1; }
line=$(tail -n 1 "$tmp/out")
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $line"; }
actors=$(field actors) alive=$(field alive) died=$(field died)
spawned=$(field spawned) born=$(field born) msgs=$(field messages)
for v in actors alive died spawned born msgs; do
    [ -n "${!v}" ] || { echo "no $v= in the last line"; exit 1; }
done
[ $((alive + died)) -eq "$spawned" ] || { echo "alive $alive + died $died != spawned $spawned"; exit 1; }
[ $((actors + born)) -eq "$spawned" ] || { echo "actors $actors + born $born != spawned $spawned"; exit 1; }
[ "$msgs" -gt 0 ] || { echo "no messages were sent"; exit 1; }
if [ "$want" = --snapshot ]; then
    px=512
    for ((i = 0; i < ${#args[@]}; i++)); do
        [ "${args[$i]}" = --image ] && px=${args[$((i + 1))]}
    done
    header=$(head -c 20 "$tmp/world.ppm" | head -n 3 | tr '\n' ' ')
    [ "$header" = "P6 $px $px 255 " ] || { echo "PPM header is '$header', want 'P6 $px $px 255 '"; exit 1; }
    size=$(stat -c %s "$tmp/world.ppm")
    want_size=$(( ${#header} + px * px * 3 ))
    [ "$size" -eq "$want_size" ] || { echo "PPM is $size bytes, want $want_size"; exit 1; }
    # Some pixels are lit: the picture shows the actors.
    lit=$(tail -c $((px * px * 3)) "$tmp/world.ppm" | tr -d '\000' | wc -c)
    [ "$lit" -gt 0 ] || { echo "the picture is black"; exit 1; }
    echo "arena snapshot: ${px}x$px P6, $size bytes, $lit non-zero bytes"
else
    got=$(field checksum)
    [ "$got" = "$want" ] || { echo "checksum $got, want $want"; exit 1; }
    echo "arena: checksum $got as expected; alive $alive + died $died = spawned $spawned"
fi
