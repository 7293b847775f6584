#!/usr/bin/env bash
# test.sh - the project's test command: builds and tests a Release tree
# (build/) and an ASan+UBSan tree (build-asan/), then prints one line,
# "N passed, N failed", summing the ctest results of every tree. Exits 0 only
# if every tree configured, built and passed all its tests.
#
# Environment:
#   SL_JOBS=N            build and ctest parallelism (default 2)
#   SL_TEST_TIMEOUT=S    per-test timeout for tests that set none (default 300)
#   SL_CI_TSAN=1         also build and test a ThreadSanitizer tree
#                        (build-tsan/); off until the runtime tells TSan
#                        about its context switches.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash scripts/install-deps.sh

jobs=${SL_JOBS:-2}
test_timeout=${SL_TEST_TIMEOUT:-300}
passed=0
failed=0
problems=()

section() { printf '\n======== %s ========\n' "$*"; }
problem() { problems+=("$1"); failed=$((failed + 1)); }

# tree NAME DIR [VAR=VALUE...] -- [CMAKE-ARG...]
# Configures, builds and tests one tree; VAR=VALUE pairs are set for ctest.
tree() {
    local name=$1 dir=$2 rc=0 summary total nfail
    shift 2
    local -a envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local start=$SECONDS

    section "$name: configure $dir"
    if ! cmake -S . -B "$dir" -DSL_BUILD_TESTS=ON "$@"; then
        problem "$name: configure failed"
        return
    fi
    section "$name: build"
    if ! cmake --build "$dir" --parallel "$jobs"; then
        problem "$name: build failed"
        return
    fi
    section "$name: test (${envs[*]:-no extra environment})"
    (cd "$dir" && env "${envs[@]}" ctest --output-on-failure -j "$jobs" \
        --timeout "$test_timeout") 2>&1 | tee "$dir/ctest.log" || rc=$?
    # ctest's own summary: "NN% tests passed, F tests failed out of T"
    summary=$(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1 \2/p' \
        "$dir/ctest.log" | tail -n 1)
    if [ -z "$summary" ]; then
        problem "$name: ctest ran no tests or printed no summary (exit $rc)"
        return
    fi
    read -r nfail total <<<"$summary"
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
    [ "$nfail" -eq 0 ] || problems+=("$name: $nfail of $total tests failed (see $dir/ctest.log)")
    if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        problem "$name: ctest exited with status $rc"
    fi
    echo "$name: $((total - nfail)) passed, $nfail failed in $((SECONDS - start)) s"
}

tree "Release" build \
    -- -DCMAKE_BUILD_TYPE=Release -DSL_SANITIZE= -DSL_BUILD_EXAMPLES=ON

tree "ASan+UBSan" build-asan \
    "ASAN_OPTIONS=detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    "UBSAN_OPTIONS=print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    -- -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=address -DSL_BUILD_EXAMPLES=ON

# Hook for the ThreadSanitizer tree, not run by default yet.
if [ "${SL_CI_TSAN:-0}" = 1 ]; then
    tree "TSan" build-tsan \
        "TSAN_OPTIONS=halt_on_error=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
        -- -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=thread -DSL_BUILD_EXAMPLES=ON
fi

section "summary"
for p in "${problems[@]}"; do echo "FAILED: $p"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
