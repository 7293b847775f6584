#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages the build and the tests need,
# only those missing (apt-get as root, or sudo -n). Idempotent and quiet when
# everything is present. Used by .ci/run, test.sh and hackysack.sh.
#
# libopenmpi-dev and openmpi-bin: the MPI layer (mpi/, built when CMake
# finds MPI) and its tests under mpirun. SL_EXTRA_PACKAGES adds more
# (bench/run.sh asks for python3-mpi4py, its anchor; CI does not need it).
#
# With --arm64 (test.sh passes it unless SL_CI_ARM64=0), on an x86-64
# Debian host: what test.sh's aarch64 stage needs too (a cross compiler,
# the arm64 builds of boost.context and CUnit from Debian's multiarch
# archive, qemu-user to run the result); the arm64 architecture is added
# to dpkg first if it is not there.
set -euo pipefail

packages=(cmake libboost-context-dev libcunit1-dev pkgconf gcc make valgrind
          libopenmpi-dev openmpi-bin ${SL_EXTRA_PACKAGES:-})
arm64=false
if [ "${1:-}" = --arm64 ] && command -v dpkg >/dev/null &&
    [ "$(dpkg --print-architecture)" = amd64 ]; then
    arm64=true
    packages+=(gcc-aarch64-linux-gnu libboost-context-dev:arm64 libcunit1-dev:arm64 qemu-user-static)
fi

# A package installed for several architectures (libboost-context-dev with
# its :arm64 twin) needs its architecture named.
installed() {
    { dpkg -s "$1" 2>/dev/null || dpkg -s "$1:$(dpkg --print-architecture)" 2>/dev/null; } |
        grep -q '^Status: install ok installed'
}

missing=()
if command -v dpkg >/dev/null; then
    for p in "${packages[@]}"; do
        installed "$p" || missing+=("$p")
    done
else
    echo "install-deps: no dpkg here; not installing anything" >&2
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "==== install-deps: installing missing packages: ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null ||
            { echo "install-deps: FAILED: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        sudo=(sudo -n)   # never prompt: CI has no stdin
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get -y -q -o DPkg::Lock::Timeout=300)
    if $arm64 && ! dpkg --print-foreign-architectures | grep -qx arm64; then
        "${sudo[@]}" dpkg --add-architecture arm64 ||
            { echo "install-deps: FAILED: dpkg --add-architecture arm64" >&2; exit 1; }
    fi
    "${sudo[@]}" "${apt[@]}" update ||
        { echo "install-deps: FAILED: apt-get update" >&2; exit 1; }
    "${sudo[@]}" "${apt[@]}" install "${missing[@]}" ||
        { echo "install-deps: FAILED: apt-get install ${missing[*]}" >&2; exit 1; }
else
    echo "==== install-deps: all build dependencies present (${packages[*]})"
fi

for tool in cmake cc pkg-config; do
    command -v "$tool" >/dev/null ||
        { echo "install-deps: FAILED: $tool not found after installing dependencies" >&2; exit 1; }
done

