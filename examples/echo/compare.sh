#!/usr/bin/env bash
# compare.sh BUILD_DIR - the echo comparison in one go, on loopback:
#   1. 10,000 connections against echo_server (one worker): its peak RSS;
#   2. 1,000 connections against echo_server, then against echo_pthread,
#      each for ECHO_SECONDS (default 5) seconds: requests/s, latencies and
#      the server's CPU time per request; echo_speedup = tasklet rps /
#      pthread rps, echo_cpu_ratio = pthread CPU / tasklet CPU per request.
# The client (echo_client) runs on one worker too; on a 2-CPU machine
# client and server each get about one CPU, and the client's own CPU can
# bound the rps (see README.md), which the CPU ratio does not depend on.
# The client's CPU time per request is printed too: when client and server
# together need both CPUs, the client's share bounds the rps.
# ROUNDS=N (default 3) repeats step 2 N times, alternating the servers,
# and keeps each server's best round (by rps).
# Every run's two lines (server's, then client's) are printed as they come;
# the summary follows. Exit status 1 if any run failed (see pair.sh).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
ex=$1/examples/echo
pair=$(dirname "$0")/pair.sh
seconds=${ECHO_SECONDS:-5}
rounds=${ROUNDS:-3}
for p in echo_server echo_pthread echo_client; do
    [ -x "$ex/$p" ] || { echo "compare.sh: no $ex/$p (build first)" >&2; exit 1; }
done

# key LINE KEY: the value of KEY=... in LINE.
key() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
# better LINE BEST: LINE's rps beats BEST's (or there is no BEST yet).
better() { [ -z "$2" ] || awk -v a="$(key "$1" rps)" -v b="$(key "$2" rps)" 'BEGIN { exit !(a > b) }'; }

echo "== 10000 connections x 20 requests against echo_server (one worker)"
out=$("$pair" "$ex/echo_server" -- "$ex/echo_client" 10000 --requests 20)
echo "$out"
big_server=$(head -n 1 <<<"$out")
big_client=$(tail -n 1 <<<"$out")

# The best round of each server (by rps): its client's and server's lines.
declare -A best_c best_s
for r in $(seq "$rounds"); do
    for s in echo_server echo_pthread; do
        echo "== 1000 connections for ${seconds} s against $s (round $r)"
        out=$("$pair" "$ex/$s" -- "$ex/echo_client" 1000 --seconds "$seconds")
        echo "$out"
        c=$(tail -n 1 <<<"$out")
        if better "$c" "${best_c[$s]:-}"; then
            best_c[$s]=$c
            best_s[$s]=$(head -n 1 <<<"$out")
        fi
    done
done

# cpu_us SERVER: the server's CPU time (all threads) per request, in us.
cpu_us() {
    awk -v c="$(key "${best_s[$1]}" cpu_seconds)" -v n="$(key "${best_c[$1]}" requests)" \
        'BEGIN { printf "%.2f", c * 1e6 / n }'
}
# client_cpu_us SERVER: the client's CPU time per request against SERVER.
client_cpu_us() {
    awk -v c="$(key "${best_c[$1]}" cpu_seconds)" -v n="$(key "${best_c[$1]}" requests)" \
        'BEGIN { printf "%.2f", c * 1e6 / n }'
}

echo "== summary"
echo "10000 connections, echo_server on one worker: peak RSS $(key "$big_server" rss_mib) MiB" \
     "(target < 200), $(key "$big_client" rps) requests/s, p99 $(key "$big_client" p99_us) us"
for s in echo_server echo_pthread; do
    l=${best_c[$s]}
    echo "1000 connections, $s: $(key "$l" rps) requests/s, p50 $(key "$l" p50_us) us," \
         "p99 $(key "$l" p99_us) us, p999 $(key "$l" p999_us) us, server CPU $(cpu_us $s) us/request," \
         "client CPU $(client_cpu_us $s) us/request"
done
awk -v t="$(key "${best_c[echo_server]}" rps)" -v p="$(key "${best_c[echo_pthread]}" rps)" \
    -v ct="$(cpu_us echo_server)" -v cp="$(cpu_us echo_pthread)" \
    'BEGIN { printf "echo_speedup=%.2f (target >= 2) echo_cpu_ratio=%.2f\n", t / p, cp / ct }'
