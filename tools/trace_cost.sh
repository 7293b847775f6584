#!/usr/bin/env bash
# trace_cost.sh HACKYSACK [PAIRS] [DIR] - what the trace costs hackysack
# (10,000 players x 1,000,000 kicks, its defaults), measured the way a
# loaded machine allows: PAIRS (default 8) runs without the trace and with
# it (SL_TRACE=DIR/trace_cost.json, DIR default /tmp), alternating, so
# that both see the same load; the medians of the pairs' ratios of
# - game_cpu_seconds: the process's CPU time over the game (the steadiest
#   under load; recording and writing the raw file, not the JSON),
# - game_seconds: the game's wall time,
# - wall: the whole run's wall time, the JSON written at exit included.
# Prints each pair, then the medians. Used for docs/trace.md's figures.
set -euo pipefail
hs=$1
pairs=${2:-8}
dir=${3:-/tmp}
out=$dir/trace_cost.json
log=$(mktemp)
trap 'rm -f "$log" "$out" "$out.raw"' EXIT
field() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" <<<" $2"; }
for i in $(seq "$pairs"); do
    for mode in off on; do
        start=$(date +%s.%N)
        if [ "$mode" = on ]; then
            line=$(SL_TRACE=$out "$hs" | tail -n 1)
        else
            line=$(env -u SL_TRACE "$hs" | tail -n 1)
        fi
        end=$(date +%s.%N)
        rm -f "$out" "$out.raw"
        wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
        echo "$mode game_cpu_seconds=$(field game_cpu_seconds "$line") game_seconds=$(field game_seconds "$line") wall=$wall" |
            tee -a "$log"
    done
done
python3 - "$log" <<'EOF'
import re, statistics, sys
lines = open(sys.argv[1]).read().split("\n")
get = lambda l, k: float(re.search(r"\b" + k + r"=([0-9.]+)", l).group(1))
off = [l for l in lines if l.startswith("off")]
on = [l for l in lines if l.startswith("on")]
for k in ("game_cpu_seconds", "game_seconds", "wall"):
    r = sorted(get(b, k) / get(a, k) for a, b in zip(off, on))
    print("%-16s traced/untraced: median %.2f (pairs: %s)"
          % (k, statistics.median(r), " ".join("%.2f" % x for x in r)))
EOF
