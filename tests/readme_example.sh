#!/usr/bin/env bash
# readme_example.sh SRC_DIR BUILD_DIR - compiles the first program of
# README.md against the built library and checks that it prints the text
# block under it, so the README's example cannot rot (doc_blocks.sh does
# the work).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/doc_blocks.sh" "$1" "$2" "$1/README.md"
