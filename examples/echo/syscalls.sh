#!/usr/bin/env bash
# syscalls.sh BUILD_DIR [SERVER] - what one echo request costs in system
# calls: SERVER (echo_server, default, or echo_pthread) and echo_client,
# each under `perf stat`, 1,000 connections for ECHO_SECONDS (default 5)
# seconds on loopback; prints both programs' last lines, then per request,
# for the server (s) and the client (c): all system calls, the read, write,
# epoll_ctl and epoll_pwait2 calls, context switches, and CPU time (us).
# Tracing every system call slows both programs down: use the counts, not
# the rps, of this run. Needs perf with the syscalls tracepoints (root, or
# perf_event_paranoid <= -1).
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 BUILD_DIR [echo_server|echo_pthread]" >&2; exit 2; }
ex=$1/examples/echo
server=${2:-echo_server}
seconds=${ECHO_SECONDS:-5}
conns=1000
ev=raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write
ev=$ev,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_pwait2,context-switches,task-clock

tmp=$(mktemp -d)
spid=
cleanup() {
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

: >"$tmp/s.out"
perf stat -x, -e "$ev" -o "$tmp/s.perf" "$ex/$server" --exit-after-conns $conns \
    >"$tmp/s.out" 2>"$tmp/s.err" &
spid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^port=//p' "$tmp/s.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "syscalls.sh: the server printed no port" >&2; cat "$tmp/s.err" >&2; exit 1; }
perf stat -x, -e "$ev" -o "$tmp/c.perf" "$ex/echo_client" --port "$port" --conns $conns \
    --seconds "$seconds" >"$tmp/c.out"
wait "$spid"
spid=
tail -n 1 "$tmp/s.out"
cat "$tmp/c.out"
req=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' "$tmp/c.out")
for w in s c; do
    awk -F, -v n="$req" -v w=$w '
        /^[0-9]/ { v[$3] = $1 }
        END {
            printf "%s per request: syscalls=%.3f read=%.3f write=%.3f epoll_ctl=%.3f " \
                   "epoll_pwait2=%.3f context_switches=%.3f cpu_us=%.2f\n", w,
                v["raw_syscalls:sys_enter"] / n, v["syscalls:sys_enter_read"] / n,
                v["syscalls:sys_enter_write"] / n, v["syscalls:sys_enter_epoll_ctl"] / n,
                v["syscalls:sys_enter_epoll_pwait2"] / n, v["context-switches"] / n,
                v["task-clock"] * 1000 / n
        }' "$tmp/$w.perf"
done
