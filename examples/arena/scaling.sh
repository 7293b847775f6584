#!/usr/bin/env bash
# scaling.sh - the arena's speed-up with workers: runs the same world on 1
# and on N workers, R times each (interleaved, so a busy machine hurts
# both alike), keeps the best ms_per_tick of each, checks that every run
# ends with the same checksum, and prints a table and one key=value line.
#
# Usage: examples/arena/scaling.sh [ARENA] [--actors N] [--ticks T]
#                                  [--workers N] [--repeat R] [--pin 0|1]
#   ARENA defaults to build/examples/arena/arena; defaults 100000 actors,
#   20 ticks, 2 workers, 3 repeats. Prints load averages too: on a shared
#   machine, read the figures with them.
set -euo pipefail
arena=build/examples/arena/arena
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then arena=$1; shift; fi
actors=100000 ticks=20 workers=2 repeat=3 pin=1
while [ $# -gt 0 ]; do
    case $1 in
        --actors) actors=$2 ;;
        --ticks) ticks=$2 ;;
        --workers) workers=$2 ;;
        --repeat) repeat=$2 ;;
        --pin) pin=$2 ;;
        *) echo "usage: $0 [ARENA] [--actors N] [--ticks T] [--workers N] [--repeat R] [--pin 0|1]" >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$arena" ] || { echo "$0: no arena at $arena (build it first)" >&2; exit 2; }

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
declare -A best rss
checksum=""
echo "arena scaling: $actors actors, $ticks ticks, pin $pin, best of $repeat; load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= repeat; r++)); do
    for w in 1 "$workers"; do
        line=$("$arena" --actors "$actors" --ticks "$ticks" --workers "$w" --pin "$pin" --quiet)
        ms=$(field "$line" ms_per_tick) sum=$(field "$line" checksum)
        [ -z "$checksum" ] && checksum=$sum
        if [ "$sum" != "$checksum" ]; then
            echo "$0: checksum $sum on $w workers, $checksum before" >&2
            exit 1
        fi
        if [ -z "${best[$w]:-}" ] || awk -v a="$ms" -v b="${best[$w]}" 'BEGIN { exit !(a < b) }'; then
            best[$w]=$ms
        fi
        rss[$w]=$(field "$line" peak_rss_kb)
        echo "  run $r, $w worker(s): $ms ms/tick"
    done
done
speedup=$(awk -v a="${best[1]}" -v b="${best[$workers]}" 'BEGIN { printf "%.2f", a / b }')
printf '| workers | ms per tick (best) | peak RSS |\n|---|---|---|\n'
printf '| 1 | %s | %s MB |\n' "${best[1]}" "$((rss[1] / 1024))"
printf '| %s | %s | %s MB |\n' "$workers" "${best[$workers]}" "$((rss[$workers] / 1024))"
echo "actors=$actors ticks=$ticks workers=$workers pin=$pin ms_per_tick_1=${best[1]} ms_per_tick_$workers=${best[$workers]} speedup=$speedup checksum=$checksum load=$(cut -d' ' -f1 /proc/loadavg)"
