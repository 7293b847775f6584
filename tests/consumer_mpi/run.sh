#!/usr/bin/env bash
# run.sh SRC_DIR BUILD_DIR - install the built tree BUILD_DIR (made with
# MPI) into a temporary prefix, build tests/consumer_mpi against the
# installed copy with (a) CMake find_package(stackless) and the target
# stackless::mpi and (b) cc + pkg-config --static stackless-mpi, and run
# each under mpirun with 2 ranks. Exits non-zero, saying why, on failure.
set -euo pipefail

die() { echo "consumer_mpi/run.sh: FAILED: $*" >&2; exit 1; }
step() { printf '\n---- consumer_mpi: %s\n' "$*"; }

[ $# -eq 2 ] || die "usage: $0 SRC_DIR BUILD_DIR"
src=$(cd "$1" && pwd) || die "no source dir '$1'"
build=$(cd "$2" && pwd) || die "no build dir '$2'"
here=$src/tests/consumer_mpi
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1; }
cc=$(cache_get CMAKE_C_COMPILER)
mpiexec=$(cache_get MPIEXEC_EXECUTABLE)
[ -x "$mpiexec" ] || die "no mpiexec in $build/CMakeCache.txt"
mpirun=("$mpiexec")
"$mpiexec" --version 2>&1 | grep -q "Open MPI" && mpirun+=(--oversubscribe)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stackless-consumer-mpi.XXXXXX") || die "mktemp"
trap '[ "${SL_KEEP_TMP:-0}" = 1 ] || rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step "install $build -> $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null || die "cmake --install failed"
pc=$(find "$prefix" -name stackless-mpi.pc) && [ -n "$pc" ] || die "no stackless-mpi.pc installed"
[ -n "$(find "$prefix" -name libstackless_mpi.a)" ] || die "no libstackless_mpi.a installed"
[ -n "$(find "$prefix" -name stackless_mpi.h)" ] || die "no stackless_mpi.h installed"

step "(a) CMake: find_package(stackless), target stackless::mpi"
cmake -S "$here" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >/dev/null || die "configuring the consumer failed"
cmake --build "$tmp/cmake-build" >/dev/null || die "building the consumer with CMake failed"
timeout 120 "${mpirun[@]}" -np 2 "$tmp/cmake-build/consumer_mpi" || die "the CMake-built consumer failed"

step "(b) pkg-config --cflags --libs --static stackless-mpi"
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs --static stackless-mpi) ||
    die "pkg-config stackless-mpi failed"
echo "flags: $flags"
# shellcheck disable=SC2086
"$cc" -std=gnu11 -Wall -Wextra -Werror "$here/consumer_mpi.c" -o "$tmp/consumer-pc" $flags ||
    die "compiling with the pkg-config flags failed"
timeout 120 "${mpirun[@]}" -np 2 "$tmp/consumer-pc" || die "the pkg-config-built consumer failed"

printf '\nconsumer_mpi/run.sh: OK (CMake package and pkg-config builds both ran)\n'
