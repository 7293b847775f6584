#!/usr/bin/env bash
# load.sh - runs a built tree's ctest suite N rounds in a row while busy
# loops keep every CPU busy; stops at the first round that fails and keeps
# its log. Issue 13's bar: "ctest must pass while other programs load the
# machine", i.e. 5 rounds of the Release and ASan trees and 2 of the TSan
# tree (-L mn) with -j 4 and two busy loops on the 2-CPU machine:
#
#   tests/load.sh -n 5 build
#   ASAN_OPTIONS=detect_leaks=1 tests/load.sh -n 5 build-asan
#   TSAN_OPTIONS=halt_on_error=1 tests/load.sh -n 2 -L mn build-tsan
#
# Options:
#   -n N       rounds (default 5)
#   -j N       ctest parallelism (default 4)
#   -b N       busy loops (default 2: one per CPU of the reference machine)
#   -L LABEL   only tests with this ctest label (e.g. mn)
#   -R REGEX   only tests whose name matches
#   -E REGEX   not the tests whose name matches
#   -t S       ctest's per-test timeout (default 300; the CUnit harness
#              kills one hung test case after SL_TEST_CASE_TIMEOUT, 60 s)
#   -k         keep going after a failed round (hunting a rare failure):
#              every failed round's log is kept; the exit status is 1 if
#              any round failed
# The environment is passed on to ctest (TSAN_OPTIONS, SL_TEST_CASE_TIMEOUT,
# ...). Logs: TREE/load/round-N.log; a failed round's log is kept and named
# on the last line, passed rounds' logs are removed. After each round the
# slowest CUnit case (the harness prints "[wall s, cpu s]" for cases of a
# second or more) is named: the margin left to the case limit. Exit status
# 0 when every round passed, 1 at the first failure, 2 on bad usage.
set -euo pipefail

rounds=5 jobs=4 busy=2 timeout=300 keep_going=0
select=()
usage() {
    echo "usage: $0 [-n rounds] [-j jobs] [-b busy-loops] [-L label] [-R regex] [-E regex] [-t seconds] [-k] TREE" >&2
    exit 2
}
while getopts "n:j:b:L:R:E:t:k" opt; do
    case $opt in
        n) rounds=$OPTARG ;;
        j) jobs=$OPTARG ;;
        b) busy=$OPTARG ;;
        L) select+=(-L "$OPTARG") ;;
        R) select+=(-R "$OPTARG") ;;
        E) select+=(-E "$OPTARG") ;;
        t) timeout=$OPTARG ;;
        k) keep_going=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
tree=$(cd "$1" && pwd) || usage
[ -f "$tree/CTestTestfile.cmake" ] || { echo "$0: $tree is not a built ctest tree" >&2; exit 2; }

# The busy loops and the running ctest are ours: end exactly those (by
# pid) however we leave. ctest runs in the background and we wait for it,
# so that a signal is acted on at once, not when the round ends.
pids=()
ctest_pid=
stop_all() {
    [ -z "$ctest_pid" ] || kill "$ctest_pid" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}" $ctest_pid; do wait "$p" 2>/dev/null || true; done
    pids=()
    ctest_pid=
}
trap stop_all EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$busy"); do
    sh -c 'while :; do :; done' &
    pids+=($!)
done

# The slowest case of ctest's last run: "SUITE: CASE [W s, cpu C s]".
slowest_case() {
    awk '
/^[0-9]+\/[0-9]+ Testing: / { suite = $3 }
/Test: .*\[[0-9.]+ s, cpu [0-9.]+ s\]/ {
    name = $0; sub(/^.*Test: /, "", name); sub(/ .*$/, "", name)
    t = $0; sub(/^.*\[/, "", t); sub(/ s, cpu.*$/, "", t)
    c = $0; sub(/^.*, cpu /, "", c); sub(/ s\].*$/, "", c)
    if (t + 0 > best) { best = t + 0; out = suite ": " name " [" t " s, cpu " c " s]" }
}
END { if (out != "") print out }' "$tree/Testing/Temporary/LastTest.log" 2>/dev/null || true
}

mkdir -p "$tree/load"
failed=0
echo "load: $rounds round(s) of ctest -j $jobs ${select[*]} on $tree with $busy busy loop(s)"
for r in $(seq "$rounds"); do
    log=$tree/load/round-$r.log
    start=$SECONDS
    rc=0
    (cd "$tree" && exec ctest --output-on-failure -j "$jobs" \
        --timeout "$timeout" "${select[@]}") >"$log" 2>&1 &
    ctest_pid=$!
    wait "$ctest_pid" || rc=$?
    ctest_pid=
    summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
    echo "load: round $r/$rounds: ${summary:-no ctest summary} ($((SECONDS - start)) s)"
    slow=$(slowest_case)
    [ -z "$slow" ] || echo "load:   slowest case: $slow"
    if [ "$rc" -ne 0 ]; then
        sed -n '/^The following tests FAILED:/,$p' "$log"
        echo "load: FAILED in round $r; log kept: $log"
        [ "$keep_going" -eq 1 ] || exit 1
        failed=$((failed + 1))
        continue
    fi
    rm -f "$log"
done
if [ "$failed" -gt 0 ]; then
    echo "load: $failed of $rounds round(s) failed"
    exit 1
fi
echo "load: $rounds round(s) passed"
