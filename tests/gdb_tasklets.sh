#!/usr/bin/env bash
# gdb_tasklets.sh PROG [fixed|copy] [WORKERS] - runs tests/gdb_tasklets.c
# under gdb in batch mode, the tasklet commands auto-loaded from the
# program itself (tools/stackless-gdb.py, embedded by the library), stops
# it with three tasklets blocked and checks what the commands say: `info
# tasklets` lists each with its state and what it waits on, and `tasklet
# apply all bt` gives each one's backtrace from its saved context, naming
# the function it blocked in; then the program goes on and ends normally
# (registers and, copy mode, stack bytes put back). Exit status 0 when all
# holds, 77 (skipped) without gdb. gdb gets two minutes (then SIGTERM,
# and SIGKILL 10 s later): a stuck gdb fails the test, never hangs it.
set -u
prog=$1
mode=${2:-fixed}
workers=${3:-1}
command -v gdb >/dev/null || { echo "gdb_tasklets: no gdb; skipped"; exit 77; }
# LeakSanitizer cannot run under ptrace (ASan trees: their leak check is
# every other test's). Last, since the last of a repeated option wins and
# test.sh's ASan stage sets detect_leaks=1.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
out=$(timeout -k 10 120 gdb -batch -nx \
    -iex "add-auto-load-safe-path $prog" \
    -ex 'break stopped_here' -ex "run $mode $workers" \
    -ex 'info tasklets' -ex 'tasklet apply all bt' -ex 'tasklet bt 2' \
    -ex continue "$prog" 2>&1)
echo "$out"
fail=0
check() { # check WHAT: grep -E PATTERN holds in TEXT
    if ! grep -Eq -- "$2" <<<"$3"; then
        echo "gdb_tasklets: FAIL: $1"
        fail=1
    fi
}
# The listing: state and what each waits on.
check "receiver listed" '^ +1 receiver +blocked-receive +[0-9]+ +channel 0x[0-9a-f]+ \(receive, balance -1\)' "$out"
check "sleeper listed" '^ +2 sleeper +sleeping +[0-9]+ +sleep, timer: [0-9]+ ms left' "$out"
check "reader listed" '^ +3 reader +waiting-fd +[0-9]+ +fd [0-9]+ \(readable\)' "$out"
check "main running" '^\* +0 main +running' "$out"
# Each backtrace (the text between its "Tasklet #N" line and the next)
# names the function its tasklet blocked in, and goes down to the
# trampoline every tasklet starts in.
section() { awk -v h="$1" 'index($0, "Tasklet #") == 1 { on = index($0, h) == 1 } on' <<<"$out"; }
for t in "1 'receiver':wait_on_channel" "2 'sleeper':wait_on_sleep" "3 'reader':wait_on_pipe"; do
    head="Tasklet #${t%%:*}"
    fn=${t##*:}
    body=$(section "$head")
    check "$head backtrace names $fn" "#[0-9]+ .*$fn \(\) at " "$body"
    check "$head backtrace reaches the tasklet's first frame" "#[0-9]+ .* in sl__trampoline(_copy)? " "$body"
done
check "main's own backtrace" "stopped_here \(\) at .*gdb_tasklets.c" "$(section "Tasklet #0")"
# tasklet bt 2 again (after apply all: the context was put back).
check "tasklet bt 2" "$(printf 'Tasklet #2 .sleeper. \\(sleeping\\):')" "$out"
[ "$(grep -c "wait_on_sleep ()" <<<"$out")" -ge 2 ] || { echo "gdb_tasklets: FAIL: tasklet bt 2"; fail=1; }
# Everything put back: the program ends as it would without gdb.
check "program ended normally" 'gdb_tasklets: done' "$out"
check "exit status 0" 'exited normally' "$out"
exit $fail
