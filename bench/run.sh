#!/usr/bin/env bash
# run.sh - the benchmark sweep: hackysack with tasklets, pthreads and Go at
# growing sizes, the micro-benchmarks and their Go counterparts, skynet and
# bench_parallel on 1 and 2 workers (scaling), the process pool (bench_pool)
# beside Python's multiprocessing.Pool (bench/pool_python.py, skipped when
# python3 is missing), hackysack over 2 processes, the MPI layer (bench_mpi
# on 3 ranks beside mpi4py.futures' MPIPoolExecutor, bench/mpi_python.py;
# skipped without MPI; mpi4py installed on demand, python3-mpi4py) and
# hackysack over 4 ranks, and hackysack, skynet and the micro-benchmarks
# again with copy stacks (--stack copy); writes docs/benchmarks.md (tables,
# machine, ratios from this one run) and docs/hackysack.svg (gnuplot).
#
# usage: bench/run.sh [BUILD_DIR] [--quick] [--repeat R] [--out DIR] [--only RE]
#   BUILD_DIR  a CMake build of this repo (default: build-bench beside
#              bench/), e.g. made with
#                cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSL_BUILD_TESTS=OFF
#                cmake --build build-bench -j2
#   --quick    small sizes only: a smoke check of the whole pipeline
#   --repeat R run each hackysack step R times, keep the fastest (default 1)
#   --out DIR  where benchmarks.md and hackysack.svg go (default: docs/)
#   --only RE  run only the steps whose id matches the extended regular
#              expression RE (e.g. '^(mpi|mpi-python)$'); the others read
#              "not run" in the report
#
# Raw outputs of every step stay in BUILD_DIR/bench-results/. A hand-written
# section between <!-- manual --> and <!-- /manual --> in an existing
# benchmarks.md is copied into the new one.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=""
QUICK=0
REPEAT=1
ONLY=""
OUT="$ROOT/docs"

usage() { sed -n '/^# usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --repeat)
        [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || usage
        REPEAT=$2
        shift ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift ;;
    --only) [ $# -ge 2 ] || usage; ONLY=$2; shift ;;
    --help|-h) sed -n '/^# usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$BUILD" ] || usage; BUILD=$1 ;;
    esac
    shift
done
BUILD=${BUILD:-$ROOT/build-bench}
if ! BUILD_ABS=$(cd "$BUILD" 2>/dev/null && pwd); then
    echo "run.sh: no build directory '$BUILD'; make one with:" >&2
    echo "  cmake -S $ROOT -B $ROOT/build-bench -DCMAKE_BUILD_TYPE=Release -DSL_BUILD_TESTS=OFF && cmake --build $ROOT/build-bench -j2" >&2
    exit 1
fi
BUILD=$BUILD_ABS
HS=$BUILD/examples/hackysack/hackysack
SKY=$BUILD/examples/skynet/skynet
PAR=$BUILD/bench/bench_parallel
for exe in "$HS" "$SKY" "$PAR" "$BUILD"/bench/bench_{switch,channel,spawn,fcontext}; do
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe is missing; build first: cmake --build $BUILD -j2" >&2
        exit 1
    fi
done
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
RES=$BUILD/bench-results
rm -rf "$RES"
mkdir -p "$RES"

# Paths as the reader should type them: relative to the repo when inside it.
rel() { case "$1" in "$ROOT"/*) echo "${1#"$ROOT"/}" ;; *) echo "$1" ;; esac; }

# ---- sizes -------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    PLAYERS="10 100 1000"
    TK=10000          # tasklet and Go kicks
    PK=1000           # pthread kicks
    RATIO_PLAYERS=100
    I_SWITCH=1000000 I_CHANNEL=400000 I_SPAWN=100000 I_FCONTEXT=1000000 SKYNET=10000
    PAR_ITERS=500000   # bench_parallel rounds per tasklet
    COPY_BIG=""        # the ten-million-player copy-stack game: not quick
    POOL_ARGS="--runs 2 --tasks 10000 --bulk-tasks 20000 --map-items 1000000 --map-c1-items 20000 --rounds 10000 --cpu-items 40"
    PYPOOL_ARGS="--runs 1 --tasks 500 --bulk-tasks 2000 --map-items 2000 --map-default-items 100000"
    MPI_ARGS="--runs 2 --rounds 2000 --one 2000 --tasks 20000 --map-items 400000 --idle-ms 200"
    MPIPY_ARGS="--runs 1 --one 200 --tasks 500 --map-items 100000"
else
    PLAYERS="10 100 1000 10000 100000 1000000"
    TK=1000000
    PK=100000
    RATIO_PLAYERS=1000
    I_SWITCH=10000000 I_CHANNEL=4000000 I_SPAWN=1000000 I_FCONTEXT=10000000 SKYNET=1000000
    PAR_ITERS=12500000 # about 2 s on one core of the 2-CPU VM
    COPY_BIG=10000000
    POOL_ARGS=""       # bench_pool's defaults (10M map items, 5 runs)
    PYPOOL_ARGS=""     # pool_python.py's defaults (3 runs)
    MPI_ARGS=""        # bench_mpi's defaults (5 runs)
    MPIPY_ARGS=""      # mpi_python.py's defaults (3 runs)
fi
STEP_TIMEOUT=1200    # seconds; a step that takes longer is killed and recorded

# ---- Go ----------------------------------------------------------------------
GO_OK=0
GOBIN=$BUILD/go/bin
if command -v go >/dev/null 2>&1; then
    mkdir -p "$GOBIN" "$BUILD/go/cache" "$BUILD/go/path"
    GO_OK=1
    for p in hackysack chan spawn skynet; do
        if ! GOCACHE=$BUILD/go/cache GOPATH=$BUILD/go/path GOPROXY=off GOFLAGS= \
            go build -o "$GOBIN/$p" "$ROOT/bench/go/$p.go" 2>"$RES/go-build-$p.err"; then
            echo "run.sh: go build $p failed (see $RES/go-build-$p.err); skipping Go" >&2
            GO_OK=0
        fi
    done
    GO_VERSION=$(go version)
else
    echo "run.sh: no 'go' on PATH; skipping the Go programs" >&2
    GO_VERSION="(not installed)"
fi

# ---- the steps -----------------------------------------------------------------
# Each step: an id (names its output files), a label, and a command line.
IDS=() LABELS=() CMDS=()
add() { IDS+=("$1"); LABELS+=("$2"); CMDS+=("$3"); }

for n in $PLAYERS; do
    add "hs-tasklet-$n" "hackysack tasklet players=$n kicks=$TK" "$HS --mode tasklet --players $n --kicks $TK"
done
add "hs-tasklet-ratio" "hackysack tasklet players=$RATIO_PLAYERS kicks=$PK (vs pthread)" \
    "$HS --mode tasklet --players $RATIO_PLAYERS --kicks $PK"
for n in $PLAYERS; do
    add "hs-pthread-$n" "hackysack pthread players=$n kicks=$PK" "$HS --mode pthread --players $n --kicks $PK"
done
if [ "$GO_OK" = 1 ]; then
    for n in $PLAYERS; do
        add "hs-go-$n" "hackysack go players=$n kicks=$TK" "$GOBIN/hackysack --players $n --kicks $TK"
    done
fi
# Copy stacks: the same games and micro-benchmarks with --stack copy.
for n in $PLAYERS $COPY_BIG; do
    add "hs-copy-$n" "hackysack tasklet players=$n kicks=$TK stack=copy" "$HS --mode tasklet --players $n --kicks $TK --stack copy"
done
add "switch" "bench_switch" "$BUILD/bench/bench_switch --iters $I_SWITCH"
add "fcontext" "bench_fcontext" "$BUILD/bench/bench_fcontext --iters $I_FCONTEXT"
add "channel" "bench_channel" "$BUILD/bench/bench_channel --iters $I_CHANNEL"
add "spawn" "bench_spawn" "$BUILD/bench/bench_spawn --iters $I_SPAWN"
for b in switch channel spawn; do
    iters_var=I_${b^^}
    add "$b-copy" "bench_$b --stack copy" "$BUILD/bench/bench_$b --iters ${!iters_var} --stack copy"
done
# skynet: the warm-up and five runs of bench/go/skynet.go, at the program's
# own preference, then at Stackless's default -1 for comparison.
add "skynet" "skynet workers=1" "$SKY --leaves $SKYNET --warmup --repeat 5 --workers 1"
add "skynet-pref-1" "skynet workers=1 preference=-1" "$SKY --leaves $SKYNET --warmup --repeat 5 --workers 1 --preference -1"
for w in 1 2; do
    add "skynet-copy-w$w" "skynet workers=$w stack=copy" "$SKY --leaves $SKYNET --warmup --repeat 5 --workers $w --stack copy"
done
if [ "$GO_OK" = 1 ]; then
    for procs in 1 "$(nproc)"; do
        add "go-chan-$procs" "go chan GOMAXPROCS=$procs" "env GOMAXPROCS=$procs $GOBIN/chan --iters $I_CHANNEL"
        add "go-spawn-$procs" "go spawn GOMAXPROCS=$procs" "env GOMAXPROCS=$procs $GOBIN/spawn --iters $I_SPAWN"
        add "go-skynet-$procs" "go skynet GOMAXPROCS=$procs" "env GOMAXPROCS=$procs $GOBIN/skynet --size $SKYNET"
        [ "$(nproc)" = 1 ] && break
    done
fi
# ---- scaling: 1 and 2 workers (Go: GOMAXPROCS 1 and 2), ratios in this run.
# Until M:N workers exist, --workers 2 is refused (exit 2) and the report
# says so instead of a figure.
add "skynet-w2" "skynet workers=2" "$SKY --leaves $SKYNET --warmup --repeat 5 --workers 2"
if [ "$GO_OK" = 1 ] && [ "$(nproc)" != 2 ]; then
    add "go-skynet-2" "go skynet GOMAXPROCS=2" "env GOMAXPROCS=2 $GOBIN/skynet --size $SKYNET"
fi
for w in 1 2; do
    add "par-w$w" "bench_parallel workers=$w" "$PAR --workers $w --iters $PAR_ITERS --repeat 3"
done
# ---- the process pool and Python's, side by side; hackysack over processes.
POOL=$BUILD/bench/bench_pool
if [ -x "$POOL" ]; then
    add "pool" "bench_pool processes=2" "$POOL --processes 2 $POOL_ARGS"
    add "hs-process-2" "hackysack process procs=2 players=$RATIO_PLAYERS kicks=$PK" \
        "$HS --mode process --procs 2 --players $RATIO_PLAYERS --kicks $PK"
else
    echo "run.sh: no $POOL (an older build?); skipping the process pool" >&2
fi
if command -v python3 >/dev/null 2>&1; then
    PY_VERSION=$(python3 --version 2>&1)
    add "pool-python" "Python multiprocessing.Pool processes=2" "python3 $ROOT/bench/pool_python.py --processes 2 $PYPOOL_ARGS"
else
    PY_VERSION=""
    echo "run.sh: no python3 on PATH; skipping Python's multiprocessing.Pool rows" >&2
fi

# ---- the MPI layer and mpi4py.futures, side by side; hackysack over ranks.
# Open MPI refuses root unless told (CI runs as root); --oversubscribe:
# 3 or 4 ranks on a machine with fewer cores.
MPIBENCH=$BUILD/bench/bench_mpi
MPIRUN="env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe"
MPI4PY=""
if [ -x "$MPIBENCH" ] && command -v mpirun >/dev/null 2>&1; then
    add "mpi" "bench_mpi ranks=3" "$MPIRUN -np 3 $MPIBENCH $MPI_ARGS"
    add "hs-mpi-4" "hackysack mpi ranks=4 players=$RATIO_PLAYERS kicks=$PK" \
        "$MPIRUN -np 4 $HS --mode mpi --players $RATIO_PLAYERS --kicks $PK"
    # mpi4py: the first Python that has it; else install it (Debian).
    have_mpi4py() { for py in python3 /usr/bin/python3; do
        if "$py" -c 'import mpi4py.futures' 2>/dev/null; then command -v "$py"; return 0; fi
    done; return 1; }
    if ! MPI4PY=$(have_mpi4py); then
        echo "run.sh: no mpi4py; installing python3-mpi4py for the anchor" >&2
        SL_EXTRA_PACKAGES=python3-mpi4py bash "$ROOT/scripts/install-deps.sh" >&2 || true
        MPI4PY=$(have_mpi4py) || MPI4PY=""
    fi
    if [ -n "$MPI4PY" ]; then
        MPI4PY_VERSION=$("$MPI4PY" -c 'import mpi4py; print(mpi4py.__version__)')
        add "mpi-python" "mpi4py.futures MPIPoolExecutor ranks=3" \
            "$MPIRUN -np 3 $MPI4PY -m mpi4py.futures $ROOT/bench/mpi_python.py $MPIPY_ARGS"
    else
        echo "run.sh: no mpi4py (Debian: python3-mpi4py); skipping its rows" >&2
    fi
else
    echo "run.sh: no $MPIBENCH or no mpirun (a build without MPI?); skipping the MPI layer" >&2
fi

NSTEPS=${#IDS[@]}
PTHREAD_FAILED=""   # "players=N: message" once pthread creation has failed

# The value of key in the last line of a step's output, or "".
kv() {
    local f=$RES/$1.out
    [ -s "$f" ] || return 0
    tail -n 1 "$f" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
status() { cat "$RES/$1.rc" 2>/dev/null || echo "-"; }
# The kick trace a hackysack step printed, or "".
trace_of() { sed -n 's/^hackysack: .* trace \([0-9a-f]*\)$/\1/p' "$RES/$1.out" 2>/dev/null | tail -n 1; }
# compare_traces A:B...: in `same` the pairs of steps whose traces agree,
# in `differ` " A vs B" for each that does not (pairs without both traces
# are skipped).
compare_traces() {
    local pair a b
    same=0 differ=""
    for pair in "$@"; do
        a=$(trace_of "${pair%%:*}") b=$(trace_of "${pair##*:}")
        [ -n "$a" ] && [ -n "$b" ] || continue
        if [ "$a" = "$b" ]; then same=$((same + 1)); else differ+=" ${pair/:/ vs }"; fi
    done
}

# CPUs busy over one second while nothing of ours runs: the load other
# processes put on the machine just before a scaling step.
others_busy() {
    local a b
    a=$(awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
        t = y[1] - x[1]; if (t > 0) printf "%.2f", (t - (y[2] - x[2])) / t * n; else printf "?" }'
}
is_scaling() { [[ $1 =~ ^(skynet|skynet-w2|skynet-copy-w[0-9]+|go-skynet-[0-9]+|par-w[0-9]+|pool|pool-python|mpi|mpi-python)$ ]]; }

SWEEP_T0=$(date +%s)
for i in "${!IDS[@]}"; do
    id=${IDS[$i]} label=${LABELS[$i]} cmd=${CMDS[$i]}
    printf '[%d/%d] %s ... ' "$((i + 1))" "$NSTEPS" "$label" >&2
    if [ -n "$ONLY" ] && ! [[ $id =~ $ONLY ]]; then
        echo "not selected (--only)" >&2
        continue
    fi
    if [ -n "$PTHREAD_FAILED" ] && [[ $id == hs-pthread-* ]]; then
        echo "skipped (pthreads already failed at $PTHREAD_FAILED)" >&2
        echo skipped >"$RES/$id.rc"
        continue
    fi
    echo "$cmd" >"$RES/$id.cmd"
    if is_scaling "$id"; then others_busy >"$RES/$id.others"; fi
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # the command is a plain word list
    timeout "$STEP_TIMEOUT" $cmd >"$RES/$id.out" 2>"$RES/$id.err"
    rc=$?
    # --repeat: run a hackysack step again and keep the fastest run.
    if [ "$rc" = 0 ] && [ "$REPEAT" -gt 1 ] && [[ $id == hs-* ]]; then
        for ((r = 2; r <= REPEAT; r++)); do
            # shellcheck disable=SC2086
            timeout "$STEP_TIMEOUT" $cmd >"$RES/$id.out.try" 2>"$RES/$id.err.try" || break
            if awk -v a="$(kv "$id" seconds)" -v b="$(tail -n 1 "$RES/$id.out.try" | tr ' ' '\n' | sed -n 's/^seconds=//p')" \
                'BEGIN { exit !(b < a) }'; then
                mv "$RES/$id.out.try" "$RES/$id.out"
                mv "$RES/$id.err.try" "$RES/$id.err"
            fi
        done
        rm -f "$RES/$id.out.try" "$RES/$id.err.try"
    fi
    t1=$(date +%s.%N)
    echo "$rc" >"$RES/$id.rc"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" = 0 ]; then
        echo "ok in ${wall}s: $(tail -n 1 "$RES/$id.out")" >&2
    else
        why=$(grep -v '^usage\|^  ' "$RES/$id.err" | head -n 1 | sed 's/^[a-z_]*: //')
        [ "$rc" = 124 ] && why="timed out after ${STEP_TIMEOUT}s"
        echo "FAILED (exit $rc) in ${wall}s: $why" >&2
        if [[ $id == hs-pthread-* ]]; then
            PTHREAD_FAILED="players=${id#hs-pthread-}: $why"
        fi
    fi
done
SWEEP_SECS=$(($(date +%s) - SWEEP_T0))

# ---- the report ------------------------------------------------------------------
# fmt VALUE PRINTF-FORMAT: formatted number, or "-" when missing.
fmt() { if [ -n "$1" ]; then awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; else echo "-"; fi; }
# ratio A B: A/B to two places, or "-".
ratio() {
    if [ -n "$1" ] && [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; else echo "-"; fi
}
mib() { if [ -n "$1" ]; then awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; else echo "-"; fi; }
sec_of_ms() { if [ -n "$1" ]; then awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }'; else echo "-"; fi; }
ms_of_s() { if [ -n "$1" ]; then awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; fi; }
sec3() { fmt "$1" %.3f; }
plain() { echo "${1:--}"; }
code() { if [ -n "$1" ]; then echo "\`$1\`"; else echo "-"; fi; }
others_of() { cat "$RES/$1.others" 2>/dev/null || echo "-"; }
# Why a scaling step has no figure: "n/a (workers=2 refused: ...)" when the
# runtime turned the worker count down (exit 2 with the sl_init message),
# else how it failed.
scale_why() {
    local id=$1 rc msg
    rc=$(status "$id")
    case "$rc" in
    -) echo "not run" ;;
    124) echo "timed out" ;;
    *) msg=$(sed -n 's/^.*sl_init(\(workers=[0-9]*\)): \(.*\)$/\1 refused: \2/p' "$RES/$id.err" 2>/dev/null | head -n 1)
       if [ "$rc" = 2 ] && [ -n "$msg" ]; then
           echo "n/a ($msg)"
       else
           echo "failed (exit $rc: $(grep -v '^usage\|^  ' "$RES/$id.err" 2>/dev/null | head -n 1 | sed 's/^[a-z_]*: //; s/|/\\|/g'))"
       fi ;;
    esac
}
# scale_cell ID KEY FORMATTER [short]: the step's value, formatted, or why
# not ("n/a" alone with short: the row's first cell has said why).
scale_cell() {
    if [ "$(status "$1")" = 0 ]; then "$3" "$(kv "$1" "$2")"
    elif [ -n "${4:-}" ]; then echo "n/a"
    else scale_why "$1"; fi
}
# scale_ratio ID1 ID2 KEY: KEY of ID1 over KEY of ID2, or "n/a" and why.
scale_ratio() {
    local a b
    [ "$(status "$1")" = 0 ] && a=$(kv "$1" "$3")
    [ "$(status "$2")" = 0 ] && b=$(kv "$2" "$3")
    if [ -n "${a:-}" ] && [ -n "${b:-}" ]; then
        ratio "$a" "$b"
    else
        local why=""
        [ -n "${a:-}" ] || why=$(scale_why "$1")
        [ -n "${b:-}" ] || why=$(scale_why "$2")
        case "$why" in n/a*) echo "$why" ;; *) echo "n/a: $why" ;; esac
    fi
}
cmd_of() { if [ -f "$RES/$1.cmd" ]; then echo "\`$(rel_cmd "$(cat "$RES/$1.cmd")")\`"; else echo "-"; fi; }
rel_cmd() {
    local out="" w
    for w in $1; do out+="$(rel "$w") "; done
    echo "${out% }"
}
# A cell for a hackysack step: its seconds, or why it has none.
hs_cell() {
    local id=$1 rc
    rc=$(status "$id")
    case "$rc" in
    0) fmt "$(kv "$id" seconds)" "%.3f" ;;
    skipped) echo "not run" ;;
    124) echo "timed out" ;;
    -) echo "-" ;;
    *) local e t
       e=$(kv "$id" error)
       t=$(kv "$id" threads_created)
       if [ -n "$t" ]; then
           echo "failed ($e) after $t threads"
       elif [ -n "$e" ]; then
           echo "failed ($e) after $(kv "$id" tasklets_created) tasklets"
       else
           echo "failed (exit $rc)"
       fi ;;
    esac
}

MANUAL=""
if [ -f "$OUT/benchmarks.md" ]; then
    MANUAL=$(awk '/<!-- manual -->/ { on = 1 } on { print } /<!-- \/manual -->/ { on = 0 }' "$OUT/benchmarks.md")
fi
[ -n "$MANUAL" ] || MANUAL=$'<!-- manual -->\n<!-- /manual -->'

MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
if [ -n "$(git -C "$ROOT" status --porcelain -- . ':!docs/benchmarks.md' ':!docs/hackysack.svg' 2>/dev/null)" ]; then COMMIT="$COMMIT (with uncommitted changes)"; fi
CC_LINE=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null | head -n 1)
[ -n "$CC_LINE" ] && CC_LINE="$CC_LINE ($("$CC_LINE" --version 2>/dev/null | head -n 1))"
BTYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null | head -n 1)
INVOCATION="bench/run.sh $(rel "$BUILD")"
[ "$QUICK" = 1 ] && INVOCATION+=" --quick"
[ "$REPEAT" -gt 1 ] && INVOCATION+=" --repeat $REPEAT"
[ -n "$ONLY" ] && INVOCATION+=" --only '$ONLY'"

SW=$(kv switch ns_per_switch) FC=$(kv fcontext ns_per_switch)
CH=$(kv channel ns_per_message) SP=$(kv spawn ns_per_spawn)
NP=$(nproc)
PAR_TASKLETS_TXT=$(kv par-w1 tasklets); PAR_TASKLETS_TXT=${PAR_TASKLETS_TXT:-64}

MD=$OUT/benchmarks.md
{
    echo "# Benchmarks"
    echo
    echo "Written by \`$INVOCATION\` on $(date -u '+%Y-%m-%d %H:%M UTC') (sweep took ${SWEEP_SECS} s)."
    [ "$QUICK" = 1 ] && echo "**Quick smoke run: small sizes, not representative figures.**"
    echo "Every figure and ratio below comes from this one run on this one machine;"
    echo "the raw outputs are in \`$(rel "$RES")/\`. Regenerate rather than edit:"
    echo "only the section between the manual markers survives a rerun."
    echo
    echo "$MANUAL"
    echo
    echo "## Machine"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPUs (\`nproc\`) | $NP |"
    echo "| model | ${MODEL:-?} |"
    echo "| memory | $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
    echo "| kernel | $(uname -sr) |"
    echo "| limits | \`ulimit -u\` $(ulimit -u), kernel.pid_max $(cat /proc/sys/kernel/pid_max 2>/dev/null), vm.max_map_count $(cat /proc/sys/vm/max_map_count 2>/dev/null) |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |"
    echo "| commit | $COMMIT |"
    echo "| C compiler | ${CC_LINE:-?}, CMAKE_BUILD_TYPE=${BTYPE:-?} |"
    echo "| Go | $GO_VERSION |"
    echo
    echo "## Micro-benchmarks"
    echo
    echo "Each program warms up, then times five runs and keeps the best;"
    echo "\"ns\" is per operation. Tasklet benchmarks run on one worker."
    echo
    echo "| what | command | iterations | ns per op |"
    echo "|---|---|---|---|"
    echo "| tasklet switch: \`sl_schedule()\` between two tasklets | $(cmd_of switch) | $(fmt "$(kv switch iters)" %d) | $(fmt "$SW" %.2f) |"
    echo "| raw boost.context \`jump_fcontext\`, one jump | $(cmd_of fcontext) | $(fmt "$(kv fcontext iters)" %d) | $(fmt "$FC" %.2f) |"
    echo "| channel message, one way, two tasklets | $(cmd_of channel) | $(fmt "$(kv channel iters)" %d) | $(fmt "$CH" %.2f) |"
    echo "| tasklet spawn + first run + exit | $(cmd_of spawn) | $(fmt "$(kv spawn iters)" %d) | $(fmt "$SP" %.2f) |"
    if [ "$GO_OK" = 1 ]; then
        for procs in 1 "$NP"; do
            echo "| Go unbuffered channel message, one way, GOMAXPROCS=$procs | $(cmd_of "go-chan-$procs") | $(fmt "$(kv "go-chan-$procs" iters)" %d) | $(fmt "$(kv "go-chan-$procs" ns_per_message)" %.2f) |"
            echo "| Go goroutine spawn + run + exit, GOMAXPROCS=$procs | $(cmd_of "go-spawn-$procs") | $(fmt "$(kv "go-spawn-$procs" iters)" %d) | $(fmt "$(kv "go-spawn-$procs" ns_per_spawn)" %.2f) |"
            [ "$NP" = 1 ] && break
        done
    fi
    echo
    echo "| ratio (same run) | value |"
    echo "|---|---|"
    echo "| tasklet switch / raw fcontext jump | $(ratio "$SW" "$FC") |"
    if [ "$GO_OK" = 1 ]; then
        echo "| tasklet channel message / Go channel message (GOMAXPROCS=1) | $(ratio "$CH" "$(kv go-chan-1 ns_per_message)") |"
        echo "| tasklet spawn / Go spawn (GOMAXPROCS=1) | $(ratio "$SP" "$(kv go-spawn-1 ns_per_spawn)") |"
    fi
    echo
    echo "### Skynet"
    echo
    echo "$SKYNET leaves, $(kv skynet tasklets) tasklets or goroutines per tree. Each program"
    echo "warms up on a tree a tenth the size, then builds the full tree five times:"
    echo "the first of those runs first-touches the stacks, later runs reuse them."
    echo "\`examples/skynet\` uses preference $(kv skynet preference) on its result channels"
    echo "(its opening comment says why); the second row is Stackless's default, -1."
    echo
    echo "| who | command | first run s | best s | peak RSS MiB |"
    echo "|---|---|---|---|---|"
    echo "| tasklets, one worker | $(cmd_of skynet) | $(sec_of_ms "$(kv skynet first_ms)") | $(sec_of_ms "$(kv skynet ms)") | $(mib "$(kv skynet peak_rss_kb)") |"
    echo "| tasklets, one worker, preference -1 | $(cmd_of skynet-pref-1) | $(sec_of_ms "$(kv skynet-pref-1 first_ms)") | $(sec_of_ms "$(kv skynet-pref-1 ms)") | $(mib "$(kv skynet-pref-1 peak_rss_kb)") |"
    if [ "$GO_OK" = 1 ]; then
        for procs in 1 "$NP"; do
            g=go-skynet-$procs
            echo "| Go, GOMAXPROCS=$procs | $(cmd_of "$g") | $(fmt "$(kv "$g" first_run_seconds)" %.3f) | $(fmt "$(kv "$g" seconds)" %.3f) | $(mib "$(kv "$g" peak_rss_kb)") |"
            [ "$NP" = 1 ] && break
        done
        echo
        echo "Tasklet / Go (GOMAXPROCS=1) skynet time: first run $(ratio "$(kv skynet first_ms)" "$(ms_of_s "$(kv go-skynet-1 first_run_seconds)")"), best $(ratio "$(kv skynet ms)" "$(ms_of_s "$(kv go-skynet-1 seconds)")")."
    fi
    echo
    echo "## Scaling"
    echo
    echo "The same programs on one and two workers (\`sl_config.workers\`, the"
    echo "\`--workers\` flag), and Go's skynet at GOMAXPROCS=1 and 2. A speed-up is"
    echo "the 1-worker time over the 2-worker time, both from this run: above 1,"
    echo "two workers are faster. \`bench_parallel\`: $PAR_TASKLETS_TXT tasklets of pure CPU work"
    echo "($PAR_ITERS mixing rounds each, \`sl_schedule()\` every 100,000), best of three runs;"
    echo "its checksum must not depend on the number of workers. \"Other load\" is the"
    echo "CPUs other processes kept busy in the second before the step: two workers"
    echo "on $NP CPUs measure scaling only when it is near 0."
    echo
    echo "| what | command | first run s | best s | peak RSS MiB | other load |"
    echo "|---|---|---|---|---|---|"
    for w in 1 2; do
        id=skynet-w$w; [ "$w" = 1 ] && id=skynet
        echo "| skynet, tasklets, workers=$w | $(cmd_of "$id") | $(scale_cell "$id" first_ms sec_of_ms) | $(scale_cell "$id" ms sec_of_ms short) | $(scale_cell "$id" peak_rss_kb mib short) | $(others_of "$id") |"
    done
    if [ "$GO_OK" = 1 ]; then
        for procs in 1 2; do
            g=go-skynet-$procs
            echo "| skynet, Go, GOMAXPROCS=$procs | $(cmd_of "$g") | $(scale_cell "$g" first_run_seconds sec3) | $(scale_cell "$g" seconds sec3 short) | $(scale_cell "$g" peak_rss_kb mib short) | $(others_of "$g") |"
        done
    fi
    echo
    echo "| what | command | best s | CPU s | OS threads used | migrations | checksum | other load |"
    echo "|---|---|---|---|---|---|---|---|"
    for w in 1 2; do
        id=par-w$w
        echo "| bench_parallel, workers=$w | $(cmd_of "$id") | $(scale_cell "$id" seconds sec3) | $(scale_cell "$id" cpu_seconds sec3 short) | $(scale_cell "$id" threads plain short) | $(scale_cell "$id" migrations plain short) | $(scale_cell "$id" checksum code short) | $(others_of "$id") |"
    done
    echo
    echo "| speed-up, 1 / 2 (same run) | value |"
    echo "|---|---|"
    echo "| skynet, tasklets, best run: workers=1 / workers=2 | $(scale_ratio skynet skynet-w2 ms) |"
    echo "| skynet, tasklets, first run: workers=1 / workers=2 | $(scale_ratio skynet skynet-w2 first_ms) |"
    if [ "$GO_OK" = 1 ]; then
        echo "| skynet, Go, best run: GOMAXPROCS=1 / GOMAXPROCS=2 | $(scale_ratio go-skynet-1 go-skynet-2 seconds) |"
    fi
    echo "| bench_parallel: workers=1 / workers=2 | $(scale_ratio par-w1 par-w2 seconds) |"
    echo
    c1=$(kv par-w1 checksum) c2=$(kv par-w2 checksum)
    if [ "$(status par-w1)" = 0 ] && [ "$(status par-w2)" = 0 ]; then
        if [ "$c1" = "$c2" ]; then
            echo "bench_parallel checksums agree on 1 and 2 workers ($c1)."
        else
            echo "**bench_parallel checksums differ: $c1 on one worker, $c2 on two.**"
        fi
        echo
    fi
    echo
    echo "## Process pool"
    echo
    echo "\`bench_pool\` (\`bench/bench_pool.c\`, see docs/mp.md) against Python's"
    echo "\`multiprocessing.Pool\` (\`bench/pool_python.py\`, ${PY_VERSION:-python3 not installed}),"
    echo "both with 2 worker processes, in this run. No-op tasks: 8 bytes in, the same"
    echo "8 back (Python: the argument returned). Each measure is the best of several"
    echo "runs after a warm-up. Other load during the steps: bench_pool $(others_of pool),"
    echo "Python $(others_of pool-python) CPUs."
    echo
    if [ "$(status pool)" = - ]; then
        echo "Not run (no bench_pool in the build)."
    elif [ "$(status pool)" != 0 ]; then
        echo "**bench_pool failed (exit $(status pool)): $(grep -v '^usage\|^  ' "$RES/pool.err" | head -n 1)**"
    fi
    PYOK=0
    [ "$(status pool-python)" = 0 ] && PYOK=1
    py() { if [ "$PYOK" = 1 ]; then fmt "$(kv pool-python "$1")" %.0f; else echo "n/a"; fi; }
    pyratio() { if [ "$PYOK" = 1 ]; then ratio "$(kv pool "$1")" "$(kv pool-python "$2")"; else echo "n/a"; fi; }
    echo "Commands: $(cmd_of pool) and $(cmd_of pool-python)."
    echo
    echo "| tasks per second | stackless | Python | stackless / Python |"
    echo "|---|---|---|---|"
    echo "| no-op, submit + wait one at a time (Python: \`apply_async(...).get()\`) | $(fmt "$(kv pool one_tasks_per_sec)" %.0f) | $(py apply_one_tasks_per_sec) | $(pyratio one_tasks_per_sec apply_one_tasks_per_sec) |"
    echo "| no-op, N submitted then N awaited (Python: N \`apply_async\`, then \`.get()\` each) | $(fmt "$(kv pool bulk_tasks_per_sec)" %.0f) | $(py apply_bulk_tasks_per_sec) | $(pyratio bulk_tasks_per_sec apply_bulk_tasks_per_sec) |"
    echo "| \`map\`, chunksize 1 | $(fmt "$(kv pool map_c1_tasks_per_sec)" %.0f) | $(py map_c1_tasks_per_sec) | $(pyratio map_c1_tasks_per_sec map_c1_tasks_per_sec) |"
    echo "| \`map\`, default chunksize (n / (4 P)) | $(fmt "$(kv pool map_tasks_per_sec)" %.0f) | $(py map_default_tasks_per_sec) | $(pyratio map_tasks_per_sec map_default_tasks_per_sec) |"
    echo "| \`sl_pool_map\`, chunksize $(kv pool map_big_chunk) | $(fmt "$(kv pool map_big_tasks_per_sec)" %.0f) | - | - |"
    echo
    echo "| measure (bench_pool, this run) | value | target |"
    echo "|---|---|---|"
    echo "| no-op tasks in bulk, stackless / Python \`apply_async\` | $(pyratio bulk_tasks_per_sec apply_bulk_tasks_per_sec) | >= 20 |"
    echo "| tiny tasks through \`sl_pool_map\` ($(fmt "$(kv pool map_items)" %d) items), best chunksize, tasks/s | $(awk -v a="$(kv pool map_tasks_per_sec)" -v b="$(kv pool map_big_tasks_per_sec)" 'BEGIN { if (a == "" && b == "") print "-"; else printf "%.0f", (a > b ? a : b) }') | >= 10,000,000 |"
    echo "| \`sl_mpchan\` round trip, parent <-> a task in a worker, both busy, us | $(fmt "$(kv pool mpchan_round_trip_us)" %.3f) | <= 2 |"
    echo "| CPU-bound map ($(kv pool cpu_items) items of $(kv pool cpu_item_ms) ms, chunksize 1), speed-up of 2 processes over 1: $(fmt "$(kv pool cpu_1_s)" %.3f) s / $(fmt "$(kv pool cpu_p_s)" %.3f) s | $(fmt "$(kv pool cpu_speedup)" %.2f) | >= 1.85 |"
    echo "| the parent's own CPU time during that 2-process map (it waits, it should not spin), ms | $(fmt "$(kv pool cpu_parent_ms)" %.2f) | |"
    echo
    hp=hs-process-2
    if [ "$(status "$hp")" != - ]; then
        echo "Hackysack over 2 processes ($(cmd_of "$hp")): $(hs_cell "$hp") s, $(fmt "$(kv "$hp" kicks_per_sec)" %.0f) kicks/s"
        echo "(tasklets in one process, same game: $(fmt "$(kv hs-tasklet-ratio kicks_per_sec)" %.0f) kicks/s); every kick whose receiver lives in"
        echo "the other process crosses an \`sl_mpchan\`."
        a=$(trace_of "$hp") b=$(trace_of hs-tasklet-ratio)
        if [ -n "$a" ] && [ -n "$b" ]; then
            if [ "$a" = "$b" ]; then echo "Its kick trace agrees with the tasklet run's ($a)."
            else echo "**Its kick trace ($a) differs from the tasklet run's ($b).**"; fi
        fi
        echo
    fi
    echo "## MPI"
    echo
    echo "\`bench_mpi\` (\`bench/bench_mpi.c\`, see docs/distributed.md) against"
    echo "mpi4py's \`MPIPoolExecutor\` (\`bench/mpi_python.py\`, mpi4py ${MPI4PY_VERSION:-not installed}),"
    echo "each as 3 MPI ranks on this machine: rank 0 the caller, 2 serving ranks. No-op"
    echo "tasks: 8 bytes in, the same 8 back (Python: the argument returned). Each"
    echo "measure is the best of several runs after a warm-up. Other load during the"
    echo "steps: bench_mpi $(others_of mpi), Python $(others_of mpi-python) CPUs."
    echo
    if [ "$(status mpi)" = - ]; then
        echo "Not run (no bench_mpi in the build, or no mpirun)."
    elif [ "$(status mpi)" != 0 ]; then
        echo "**bench_mpi failed (exit $(status mpi)): $(grep -v '^usage\|^  ' "$RES/mpi.err" | head -n 1)**"
    fi
    MPYOK=0
    [ "$(status mpi-python)" = 0 ] && MPYOK=1
    mpy() { if [ "$MPYOK" = 1 ]; then fmt "$(kv mpi-python "$1")" %.0f; else echo "n/a"; fi; }
    mpyratio() { if [ "$MPYOK" = 1 ]; then ratio "$(kv mpi "$1")" "$(kv mpi-python "$2")"; else echo "n/a"; fi; }
    echo "Commands: $(cmd_of mpi) and $(cmd_of mpi-python)."
    echo
    echo "| tasks per second | stackless | mpi4py.futures | stackless / mpi4py |"
    echo "|---|---|---|---|"
    echo "| no-op, submit + wait one at a time | $(fmt "$(kv mpi one_tasks_per_sec)" %.0f) | $(mpy one_tasks_per_sec) | $(mpyratio one_tasks_per_sec one_tasks_per_sec) |"
    echo "| no-op, N submitted then N awaited (unbatched: a record per task) | $(fmt "$(kv mpi tasks_per_sec)" %.0f) | $(mpy tasks_per_sec) | $(mpyratio tasks_per_sec tasks_per_sec) |"
    echo "| \`map\`, chunksize 1000 | $(fmt "$(kv mpi map_c1000_tasks_per_sec)" %.0f) | $(mpy map_c1000_tasks_per_sec) | $(mpyratio map_c1000_tasks_per_sec map_c1000_tasks_per_sec) |"
    echo "| \`sl_mpi_pool_map\`, default chunksize ($(kv mpi map_chunk)) | $(fmt "$(kv mpi map_tasks_per_sec)" %.0f) | - | - |"
    echo
    echo "| measure (bench_mpi, this run) | value | target |"
    echo "|---|---|---|"
    echo "| no-op tasks, N submitted then awaited, tasks/s | $(fmt "$(kv mpi tasks_per_sec)" %.0f) | >= 100,000 |"
    echo "| chunked map of tiny tasks, stackless / mpi4py (chunksize 1000) | $(mpyratio map_c1000_tasks_per_sec map_c1000_tasks_per_sec) | >= 10 |"
    echo "| channel round trip between ranks, 8 bytes, us: ours $(fmt "$(kv mpi rtt_us)" %.2f), raw \`MPI_Send\`/\`MPI_Recv\` $(fmt "$(kv mpi mpi_rtt_us)" %.2f); ratio | $(fmt "$(kv mpi rtt_ratio)" %.2f) | <= 2 |"
    echo "| CPU of an idle rank (the busier of ranks 1 and 2 over $(kv mpi idle_ms) ms), % | $(fmt "$(kv mpi idle_cpu_pct)" %.3f) | ~0 |"
    echo "| waking a sleeping rank (a send it must take), us | $(fmt "$(kv mpi wake_us)" %.1f) | |"
    echo "| rank 0's own CPU per no-op task in bulk (dispatching, collecting), us | $(fmt "$(kv mpi rank0_cpu_us_per_task)" %.3f) | |"
    echo
    hm=hs-mpi-4
    if [ "$(status "$hm")" != - ]; then
        echo "Hackysack over 4 MPI ranks ($(cmd_of "$hm")): $(hs_cell "$hm") s, $(fmt "$(kv "$hm" kicks_per_sec)" %.0f) kicks/s;"
        echo "three kicks in four cross ranks on an \`sl_mpi_chan\`."
        a=$(trace_of "$hm") b=$(trace_of hs-tasklet-ratio)
        if [ -n "$a" ] && [ -n "$b" ]; then
            if [ "$a" = "$b" ]; then echo "Its kick trace agrees with the tasklet run's ($a)."
            else echo "**Its kick trace ($a) differs from the tasklet run's ($b).**"; fi
        fi
        echo
    fi
    echo "## Hackysack"
    echo
    echo "The game of \`examples/hackysack\`: one player (tasklet, thread or goroutine)"
    echo "with its own channel per player; one ball; the same seeded kick sequence in"
    echo "every mode (each run prints its trace). Seconds cover creating the players,"
    echo "the game and every player's exit. Tasklets and Go play $TK kicks;"
    echo "pthreads $PK (one thread per player, 64 KiB stacks, mutex+condvar mailboxes),"
    echo "and stop at the first size where threads run out."
    [ "$REPEAT" -gt 1 ] && echo "Each size ran $REPEAT times; the fastest run is shown."
    echo
    echo "Commands: \`$(rel "$HS") --mode tasklet --players N --kicks $TK\`,"
    echo "\`$(rel "$HS") --mode pthread --players N --kicks $PK\`"
    [ "$GO_OK" = 1 ] && echo "and \`$(rel "$GOBIN")/hackysack --players N --kicks $TK\` (Go's default GOMAXPROCS=$NP)."
    echo
    echo "| players | tasklet s | tasklet spawn s | tasklet game ns/kick | tasklet peak RSS MiB | Go s | Go peak RSS MiB | tasklet / Go time | pthread s ($PK kicks) | pthread peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    : >"$RES/hackysack.dat"
    echo "# players tasklet_s pthread_s go_s" >>"$RES/hackysack.dat"
    for n in $PLAYERS; do
        t=hs-tasklet-$n p=hs-pthread-$n g=hs-go-$n
        ts="" ps="" gs=""
        [ "$(status "$t")" = 0 ] && ts=$(kv "$t" seconds)
        [ "$(status "$p")" = 0 ] && ps=$(kv "$p" seconds)
        [ "$(status "$g")" = 0 ] && gs=$(kv "$g" seconds)
        gcell="-" grss="-"
        if [ "$GO_OK" = 1 ]; then gcell=$(hs_cell "$g"); grss=$(mib "$(kv "$g" peak_rss_kb)"); fi
        prss="-"
        [ -n "$ps" ] && prss=$(mib "$(kv "$p" peak_rss_kb)")
        nsk=""
        [ -n "$ts" ] && nsk=$(awk -v g="$(kv "$t" game_seconds)" -v k="$TK" 'BEGIN { printf "%.0f", g * 1e9 / k }')
        echo "| $n | $(hs_cell "$t") | $(fmt "$(kv "$t" spawn_seconds)" %.3f) | ${nsk:--} | $(mib "$(kv "$t" peak_rss_kb)") | $gcell | $grss | $(ratio "$ts" "$gs") | $(hs_cell "$p") | $prss |"
        echo "$n ${ts:-?} ${ps:-?} ${gs:-?}" >>"$RES/hackysack.dat"
    done
    echo
    # Same seed, same sizes: the runs must have played the same kicks.
    compare_traces $(for n in $PLAYERS; do echo "hs-tasklet-$n:hs-go-$n"; done) "hs-tasklet-ratio:hs-pthread-$RATIO_PLAYERS"
    if [ -n "$differ" ]; then
        echo "**Kick traces differ:**$differ (same seed and size should mean the same game)."
    else
        echo "Kick traces agree in all $same pairs of runs that played the same size (tasklet vs Go, and tasklet vs pthread below)."
    fi
    echo
    if [ -n "$PTHREAD_FAILED" ]; then
        echo "pthreads ran out at $PTHREAD_FAILED; larger sizes were not run."
        echo
    fi
    tr=hs-tasklet-ratio pr=hs-pthread-$RATIO_PLAYERS
    trs=$(kv "$tr" seconds) prs=""
    [ "$(status "$pr")" = 0 ] && prs=$(kv "$pr" seconds)
    echo "### Tasklets vs pthreads, $RATIO_PLAYERS players x $PK kicks"
    echo
    echo "| | command | seconds | kicks/s | peak RSS MiB |"
    echo "|---|---|---|---|---|"
    echo "| tasklets | $(cmd_of "$tr") | $(fmt "$trs" %.4f) | $(fmt "$(kv "$tr" kicks_per_sec)" %d) | $(mib "$(kv "$tr" peak_rss_kb)") |"
    echo "| pthreads | $(cmd_of "$pr") | $(fmt "$prs" %.4f) | $(fmt "$(kv "$pr" kicks_per_sec)" %d) | $(mib "$(kv "$pr" peak_rss_kb)") |"
    echo
    echo "Speed-up of tasklets over pthreads: **$(ratio "$prs" "$trs")x**."
    echo
    echo "![hackysack seconds vs players](hackysack.svg)"
    echo
    echo "## Copy stacks"
    echo
    echo "The same programs with \`--stack copy\` (\`sl_config.stack_mode = SL_STACK_COPY\`,"
    echo "[stacks.md](stacks.md)): tasklets share their worker's stack and a waiting one"
    echo "keeps only the bytes its frames use. \"Bytes copied\" counts the bytes saved"
    echo "plus restored per operation in the last timed run (\`sl_stack_stats_get\`)."
    echo
    echo "| what | fixed ns | copy ns | copy / fixed | bytes copied per op | copy command |"
    echo "|---|---|---|---|---|---|"
    for b in switch channel spawn; do
        case $b in switch) u=ns_per_switch ;; channel) u=ns_per_message ;; *) u=ns_per_spawn ;; esac
        echo "| bench_$b | $(fmt "$(kv "$b" "$u")" %.2f) | $(fmt "$(kv "$b-copy" "$u")" %.2f) | $(ratio "$(kv "$b-copy" "$u")" "$(kv "$b" "$u")") | $(fmt "$(kv "$b-copy" bytes_copied_per_op)" %.0f) | $(cmd_of "$b-copy") |"
    done
    echo
    echo "Hackysack, $TK kicks, copy stacks against fixed stacks (the table above) and"
    echo "Go. Bytes per player: the resident bytes the waiting players added, each"
    echo "(their channels and control blocks included)."
    echo
    echo "| players | copy s | copy peak RSS MiB | bytes per player | fixed s | fixed peak RSS MiB | fixed / copy RSS | Go s | copy / Go time |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for n in $PLAYERS $COPY_BIG; do
        c=hs-copy-$n t=hs-tasklet-$n g=hs-go-$n
        cs="" gs=""
        [ "$(status "$c")" = 0 ] && cs=$(kv "$c" seconds)
        [ "$(status "$g")" = 0 ] && gs=$(kv "$g" seconds)
        tcell="-" gcell="-"
        [ -f "$RES/$t.rc" ] && tcell=$(hs_cell "$t")
        [ -f "$RES/$g.rc" ] && gcell=$(hs_cell "$g")
        echo "| $n | $(hs_cell "$c") | $(mib "$(kv "$c" peak_rss_kb)") | $(fmt "$(kv "$c" bytes_per_player)" %.0f) | $tcell | $(mib "$(kv "$t" peak_rss_kb)") | $(ratio "$(kv "$t" peak_rss_kb)" "$(kv "$c" peak_rss_kb)") | $gcell | $(ratio "$cs" "$gs") |"
    done
    echo
    echo "Command: \`$(rel "$HS") --mode tasklet --players N --kicks $TK --stack copy\`."
    compare_traces $(for n in $PLAYERS; do echo "hs-copy-$n:hs-tasklet-$n"; done)
    if [ -n "$differ" ]; then
        echo "**Kick traces of copy and fixed stacks differ:**$differ."
    else
        echo "Kick traces of copy and fixed stacks agree at all $same sizes."
    fi
    echo
    # The targets of issue 7 (copy stacks), judged on this run's figures.
    big=hs-copy-${COPY_BIG:-none}
    bigs="" bigk=""
    [ "$(status "$big")" = 0 ] && bigs=$(kv "$big" seconds) && bigk=$(kv "$big" peak_rss_kb)
    m=1000000
    c1=$(kv "hs-copy-$m" seconds) g1=$(kv "hs-go-$m" seconds)
    verdict() { if [ -n "$1" ]; then awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = op == "<=" ? v <= t : v >= t; print ok ? "met" : "not met" }'; else echo "not run"; fi; }
    r1=$(ratio "$c1" "$g1"); [ "$r1" = "-" ] && r1=""
    rr=$(ratio "$(kv "hs-tasklet-$m" peak_rss_kb)" "$(kv "hs-copy-$m" peak_rss_kb)"); [ "$rr" = "-" ] && rr=""
    rs=$(ratio "$(kv skynet-copy-w2 ms)" "$(ms_of_s "$(kv go-skynet-2 seconds)")"); [ "$rs" = "-" ] && rs=""
    rw=$(ratio "$(kv switch-copy ns_per_switch)" "$(kv switch ns_per_switch)"); [ "$rw" = "-" ] && rw=""
    bpp=$(kv "$big" bytes_per_player)
    echo "Targets of the copy-stack issue, judged on this run:"
    echo
    echo "| target | this run | status |"
    echo "|---|---|---|"
    echo "| hackysack ${COPY_BIG:-10000000} players x $TK kicks, copy stacks: <= 12 GiB RSS, <= 30 s | $(if [ -n "$bigs" ]; then awk -v s="$bigs" -v k="$bigk" 'BEGIN { printf "%.1f s, %.2f GiB", s, k / 1048576 }'; else echo "-"; fi) | $(if [ -n "$bigs" ]; then awk -v s="$bigs" -v k="$bigk" 'BEGIN { print (s <= 30 && k <= 12 * 1048576) ? "met" : "not met" }'; else echo "not run"; fi) |"
    echo "| bytes per waiting player, copy stacks: <= 1 KiB | $(fmt "$bpp" %.0f) | $(verdict "$bpp" "<=" 1024) |"
    echo "| hackysack $m x $TK, copy stacks: <= 0.25x Go's time | ${r1:--} | $(verdict "$r1" "<=" 0.25) |"
    echo "| hackysack $m x $TK: fixed / copy peak RSS >= 3 | ${rr:--} | $(verdict "$rr" ">=" 3) |"
    echo "| skynet, copy stacks, 2 workers: <= 0.25x Go's time (GOMAXPROCS=2, best tree) | ${rs:--} | $(verdict "$rs" "<=" 0.25) |"
    echo "| switch between two copy-mode tasklets: <= 4x the fixed switch | ${rw:--} | $(verdict "$rw" "<=" 4) |"
    echo
    echo "Skynet with copy stacks ($SKYNET leaves, warm-up and five trees, as above):"
    echo
    echo "| who | command | first run s | best s | peak RSS MiB | other load |"
    echo "|---|---|---|---|---|---|"
    for w in 1 2; do
        id=skynet-copy-w$w
        echo "| tasklets, copy stacks, workers=$w | $(cmd_of "$id") | $(scale_cell "$id" first_ms sec_of_ms) | $(scale_cell "$id" ms sec_of_ms short) | $(scale_cell "$id" peak_rss_kb mib short) | $(others_of "$id") |"
    done
    if [ "$GO_OK" = 1 ]; then
        echo
        echo "| ratio (same run) | first run | best |"
        echo "|---|---|---|"
        for w in 1 2; do
            g=go-skynet-$w
            [ -f "$RES/$g.rc" ] || continue
            echo "| skynet copy stacks workers=$w / Go GOMAXPROCS=$w | $(ratio "$(kv "skynet-copy-w$w" first_ms)" "$(ms_of_s "$(kv "$g" first_run_seconds)")") | $(ratio "$(kv "skynet-copy-w$w" ms)" "$(ms_of_s "$(kv "$g" seconds)")") |"
        done
    fi
} >"$MD"

if command -v gnuplot >/dev/null 2>&1; then
    GP_GO=""
    [ "$GO_OK" = 1 ] && GP_GO=", '$RES/hackysack.dat' using 1:4 with linespoints lw 2 pt 9 title 'Go goroutines ($TK kicks)'"
    if ! gnuplot 2>"$RES/gnuplot.err" <<EOF; then
set terminal svg size 760,480 dynamic enhanced font 'sans,12' background rgb 'white'
set output '$OUT/hackysack.svg'
set title 'hackysack: seconds to create N players, play and end ($(date -u +%Y-%m-%d), $NP CPUs)'
set logscale xy
set xlabel 'players'
set ylabel 'seconds'
set format x '%.0f'
set grid
set key top left
set datafile missing '?'
plot '$RES/hackysack.dat' using 1:2 with linespoints lw 2 pt 7 title 'tasklets ($TK kicks)', \
     '$RES/hackysack.dat' using 1:3 with linespoints lw 2 pt 5 title 'pthreads ($PK kicks)'$GP_GO
EOF
        echo "run.sh: gnuplot failed (see $RES/gnuplot.err)" >&2
    fi
else
    echo "run.sh: no gnuplot; $OUT/hackysack.svg not drawn" >&2
fi

echo "run.sh: wrote $(rel "$MD") and $(rel "$OUT/hackysack.svg") (raw outputs in $(rel "$RES"))" >&2
