#!/usr/bin/env bash
# hackysack.sh - the main job in one command: installs what is missing,
# builds a Release tree (build/), runs the hackysack game with tasklets and
# with one pthread per player at their default sizes, and prints both result
# lines and the comparison. Extra arguments go to both runs (e.g.
# --players 1000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --parallel 2 --target hackysack >/dev/null
hs=build/examples/hackysack/hackysack

echo "== tasklets: $hs --mode tasklet $*"
t=$("$hs" --mode tasklet "$@" | tail -n 1)
echo "$t"
echo "== pthreads: $hs --mode pthread $*"
p=$("$hs" --mode pthread "$@" | tail -n 1) || {
    echo "pthread run failed (see above)"; exit 1; }
echo "$p"

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
awk -v tk="$(field "$t" kicks_per_sec)" -v pk="$(field "$p" kicks_per_sec)" \
    -v tp="$(field "$t" players)" -v pp="$(field "$p" players)" 'BEGIN {
    printf "== %s tasklets: %.0f kicks/s; %s threads: %.0f kicks/s; tasklets are %.1fx faster per kick\n",
        tp, tk, pp, pk, tk / pk
}'
