#!/usr/bin/env bash
# run.sh SRC_DIR BUILD_DIR - install the already-built tree BUILD_DIR into a
# temporary prefix, then build tests/consumer against that installed copy
# both ways, (a) CMake find_package(stackless) and (b) cc + pkg-config
# --static, and run each program. Exits non-zero, saying why, on any failure.
#
# Environment: SL_KEEP_TMP=1 keeps the temporary directory for inspection;
# SL_CONSUMER_TIMEOUT (seconds, default 120) bounds each consumer run.
set -euo pipefail

die() { echo "consumer/run.sh: FAILED: $*" >&2; exit 1; }
step() { printf '\n---- consumer: %s\n' "$*"; }

[ $# -eq 2 ] || die "usage: $0 SRC_DIR BUILD_DIR"
src=$(cd "$1" 2>/dev/null && pwd) || die "source dir '$1' does not exist"
build=$(cd "$2" 2>/dev/null && pwd) || die "build dir '$2' does not exist"
here=$src/tests/consumer
[ -f "$here/consumer.c" ] || die "$here/consumer.c not found"
[ -f "$build/CMakeCache.txt" ] || die "$build is not a configured CMake build tree"
command -v cmake >/dev/null || die "cmake not found"
command -v pkg-config >/dev/null ||
    die "pkg-config not found: install it (Debian: apt-get install pkgconf)"

# What the library was built with: a sanitized libstackless.a only links
# into a program built with the same sanitizer and compiler.
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1; }
cc=$(cache_get CMAKE_C_COMPILER)
cc=${cc:-${CC:-cc}}
sanitize=$(cache_get SL_SANITIZE)
case "$sanitize" in
    "")      san_flags="" ;;
    address) san_flags="-fsanitize=address,undefined -fno-omit-frame-pointer" ;;
    thread)  san_flags="-fsanitize=thread" ;;
    *)       die "unknown SL_SANITIZE='$sanitize' in $build/CMakeCache.txt" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stackless-consumer.XXXXXX") ||
    die "cannot create a temporary directory"
cleanup() {
    if [ "${SL_KEEP_TMP:-0}" = 1 ]; then
        echo "consumer/run.sh: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
prefix=$tmp/prefix

# find_one DESCRIPTION find-args...: the single installed file matching.
find_one() {
    local what=$1 found
    shift
    found=$(find "$prefix" "$@" -print)
    [ -n "$found" ] || die "install did not produce $what under $prefix"
    [ "$(printf '%s\n' "$found" | wc -l)" -eq 1 ] ||
        die "more than one $what under $prefix: $found"
    printf '%s\n' "$found"
}

# run_consumer LABEL PROGRAM: run it (bounded), fail with its exit status.
run_consumer() {
    local label=$1 prog=$2 rc=0
    local -a limit=()
    command -v timeout >/dev/null && limit=(timeout "${SL_CONSUMER_TIMEOUT:-120}")
    LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        "${limit[@]}" "$prog" || rc=$?
    [ "$rc" -ne 124 ] || [ ${#limit[@]} -eq 0 ] ||
        die "$label consumer timed out after ${limit[1]} s"
    [ "$rc" -eq 0 ] || die "$label consumer exited with status $rc"
}

step "install $build -> $prefix"
cmake --install "$build" --prefix "$prefix" || die "cmake --install $build failed"
header=$(find_one "include/stackless.h" -path '*/include/stackless.h')
archive=$(find_one "libstackless.a" -name libstackless.a)
config=$(find_one "stacklessConfig.cmake" -path '*/cmake/stackless/stacklessConfig.cmake')
pc=$(find_one "pkgconfig/stackless.pc" -path '*/pkgconfig/stackless.pc')
libdir=$(dirname "$archive")
printf 'installed: %s\n           %s\n           %s\n           %s\n' \
    "${header#"$prefix"/}" "${archive#"$prefix"/}" "${config#"$prefix"/}" "${pc#"$prefix"/}"

step "(a) CMake: find_package(stackless) with CMAKE_PREFIX_PATH=$prefix${san_flags:+ [$san_flags]}"
cmake_args=(-S "$here" -B "$tmp/cmake-build"
            -DCMAKE_PREFIX_PATH="$prefix"
            -DCMAKE_C_COMPILER="$cc"
            -DCMAKE_BUILD_TYPE=RelWithDebInfo
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if [ -n "$san_flags" ]; then
    cmake_args+=(-DCMAKE_C_FLAGS="$san_flags" -DCMAKE_EXE_LINKER_FLAGS="$san_flags")
fi
cmake "${cmake_args[@]}" || die "configuring the consumer with CMake failed"
found_dir=$(sed -n 's/^stackless_DIR:[A-Z]*=//p' "$tmp/cmake-build/CMakeCache.txt")
[ "$found_dir" -ef "$(dirname "$config")" ] ||
    die "find_package(stackless) used '$found_dir', not the copy installed in $prefix"
cmake --build "$tmp/cmake-build" -- VERBOSE=1 || die "building the consumer with CMake failed"
run_consumer "CMake-built" "$tmp/cmake-build/consumer"

pcdir=$(dirname "$pc")
step "(b) pkg-config: PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs --static stackless"
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs --static stackless) ||
    die "pkg-config --cflags --libs --static stackless failed"
echo "flags: $flags"
incdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=includedir stackless)
[ "$incdir/stackless.h" -ef "$header" ] ||
    die "stackless.pc points at includedir '$incdir', not at the copy installed in $prefix"
# $flags is split into words on purpose: it is a compiler command line.
# shellcheck disable=SC2086
(set -x; "$cc" -std=c11 -Wall -Wextra -Werror $san_flags \
    "$here/consumer.c" -o "$tmp/consumer-pc" $flags) ||
    die "compiling the consumer with cc and pkg-config flags failed"
run_consumer "pkg-config-built" "$tmp/consumer-pc"

printf '\nconsumer/run.sh: OK (CMake package and pkg-config builds both passed)\n'
