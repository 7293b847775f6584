#!/usr/bin/env bash
# pair.sh SERVER [SERVER_FLAGS...] -- CLIENT CONNS [CLIENT_FLAGS...]
#
# One echo run: starts SERVER (echo_server or echo_pthread) on a free port
# with --exit-after-conns CONNS, runs CLIENT (echo_client) with --port and
# --conns CONNS against it, waits for the server to exit by itself, and
# prints the server's last line, then the client's. Exit status 0 only if
# both exited 0, the client saw errors=0 and the server served exactly CONNS
# connections without errors; otherwise 1, with both programs' stderr.
# compare.sh and the ctest tests echo_tasklet / echo_pthread use it.
set -euo pipefail

usage() { echo "usage: $0 SERVER [SERVER_FLAGS...] -- CLIENT CONNS [CLIENT_FLAGS...]" >&2; exit 2; }
server=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do server+=("$1"); shift; done
[ $# -ge 3 ] && [ ${#server[@]} -ge 1 ] || usage
shift
client=$1 conns=$2
shift 2

tmp=$(mktemp -d)
spid=
cleanup() {
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "pair.sh: $*" >&2
    for f in server.out server.err client.err; do
        [ -s "$tmp/$f" ] && { echo "--- $f"; cat "$tmp/$f"; } >&2
    done
    exit 1
}

: >"$tmp/server.out" # exists before the server's shell opens it
"${server[@]}" --exit-after-conns "$conns" >"$tmp/server.out" 2>"$tmp/server.err" &
spid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^port=//p' "$tmp/server.out")
    [ -n "$port" ] && break
    kill -0 "$spid" 2>/dev/null || fail "the server exited before listening"
    sleep 0.1
done
[ -n "$port" ] || fail "the server printed no port= line in 10 s"

crc=0
"$client" --port "$port" --conns "$conns" "$@" >"$tmp/client.out" 2>"$tmp/client.err" || crc=$?
# The server stops by itself once every connection has closed; give it
# 30 s (the client has already closed them all, unless it failed).
[ "$crc" -eq 0 ] || kill -TERM "$spid" 2>/dev/null || true
for _ in $(seq 300); do
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$spid" 2>/dev/null && fail "the server is still running 30 s after the client ended"
src=0
wait "$spid" || src=$?
spid=

sline=$(tail -n 1 "$tmp/server.out")
cline=$(tail -n 1 "$tmp/client.out")
echo "$sline"
echo "$cline"
[ "$crc" -eq 0 ] || fail "the client exited with status $crc"
[ "$src" -eq 0 ] || fail "the server exited with status $src"
case " $cline " in *" conns=$conns "*" errors=0 "*) ;; *) fail "the client's line is not conns=$conns ... errors=0" ;; esac
case " $sline " in *" conns_served=$conns "*" errors=0 "*) ;; *) fail "the server's line is not conns_served=$conns ... errors=0" ;; esac
