#!/usr/bin/env bash
# api_index.sh DOCS_DIR HEADER... - the stricter form of doc_symbols.sh:
# docs/api.md alone names every public function, error code and type of
# the headers (in a heading or a code span), so the index stays complete.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DOCS_DIR HEADER..." >&2; exit 2; }
docs=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$docs/api.md" "$tmp/api.md"
bash "$(dirname "${BASH_SOURCE[0]}")/doc_symbols.sh" "$tmp" "$@" | sed 's/^doc symbols/api.md/'
