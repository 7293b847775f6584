#!/usr/bin/env bash
# rounds.sh - issue 15's comparisons again and again on a shared machine:
# each round runs hackysack at 10,000, 100,000 and 1,000,000 players with
# fixed stacks, copy stacks and Go back to back, skynet on 1 and 2 workers
# the same way, bench_spawn, bench_channel and the 1,000 x 100,000
# tasklets-vs-pthreads pair; then prints, per comparison, the fastest run
# of the rounds and the load average range they ran at. The fastest of
# several interleaved runs is what a loaded machine distorts least.
#
# usage: bench/rounds.sh [BUILD_DIR] [ROUNDS]
#   BUILD_DIR  a Release build with the examples and bench/run.sh's Go
#              programs in BUILD_DIR/go/bin (run.sh builds them); default
#              build-bench beside bench/
#   ROUNDS     default 5
# Raw lines (key=value, with load=) stay in BUILD_DIR/bench-rounds.txt.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$ROOT/build-bench}" && pwd) || exit 1
ROUNDS=${2:-5}
HS=$B/examples/hackysack/hackysack SKY=$B/examples/skynet/skynet GO=$B/go/bin
for exe in "$HS" "$SKY" "$GO/hackysack" "$GO/skynet" "$B/bench/bench_spawn" "$B/bench/bench_channel"; do
    [ -x "$exe" ] || { echo "rounds.sh: $exe is missing (build, then bench/run.sh builds the Go programs)" >&2; exit 1; }
done
RAW=$B/bench-rounds.txt
: >"$RAW"

# run KEY CMD...: one line "KEY load=L <the command's last line>"
run() {
    local key=$1 load
    shift
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "$key load=$load $("$@" 2>/dev/null | tail -n 1)" >>"$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
    echo "rounds.sh: round $r of $ROUNDS" >&2
    for n in 10000 100000 1000000; do
        run "hs-$n-fixed" "$HS" --players "$n" --kicks 1000000 --stack fixed
        run "hs-$n-copy" "$HS" --players "$n" --kicks 1000000 --stack copy
        run "hs-$n-go" "$GO/hackysack" --players "$n" --kicks 1000000
    done
    for w in 1 2; do
        run "sky-$w-fixed" "$SKY" --leaves 1000000 --warmup --repeat 3 --workers "$w"
        run "sky-$w-copy" "$SKY" --leaves 1000000 --warmup --repeat 3 --workers "$w" --stack copy
        run "sky-$w-go" env GOMAXPROCS="$w" "$GO/skynet" --size 1000000 --runs 3
    done
    run spawn "$B/bench/bench_spawn" --iters 1000000
    run channel "$B/bench/bench_channel" --iters 1000000
    run ratio-tasklet "$HS" --players 1000 --kicks 100000
    run ratio-pthread "$HS" --mode pthread --players 1000 --kicks 100000
done

# The fastest value of each key: hackysack's seconds (and its CPU seconds),
# skynet's first tree and best tree, the micro benchmarks' ns.
awk '
function v(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
function keep(key, what, x) { if (x == "") return; if (!((key, what) in best) || x + 0 < best[key, what] + 0) best[key, what] = x }
{
    key = $1; l = v("load") + 0
    if (!(key in lo) || l < lo[key]) lo[key] = l
    if (!(key in hi) || l > hi[key]) hi[key] = l
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    if (key ~ /^(hs|ratio)/) { keep(key, "s", v("seconds")); keep(key, "cpu", v("spawn_cpu_seconds") + v("game_cpu_seconds")) }
    else if (key ~ /^sky-.*-go$/) { keep(key, "first", v("first_run_seconds")); keep(key, "best", v("seconds")) }
    else if (key ~ /^sky/) { keep(key, "first", v("first_ms") / 1000); keep(key, "best", v("ms") / 1000) }
    else { keep(key, "ns", v("ns_per_spawn") v("ns_per_message")) }
}
END {
    print "| step | fastest | load |"
    print "|---|---|---|"
    for (i = 1; i <= n; i++) {
        k = order[i]
        if (k ~ /^(hs|ratio)/) f = sprintf("%.3f s (CPU %.3f s)", best[k, "s"], best[k, "cpu"])
        else if (k ~ /^sky/) f = sprintf("first tree %.3f s, best tree %.3f s", best[k, "first"], best[k, "best"])
        else f = sprintf("%.2f ns", best[k, "ns"])
        printf "| %s | %s | %.1f-%.1f |\n", k, f, lo[k], hi[k]
    }
}' "$RAW"
