#!/usr/bin/env bash
# doc_rules.sh - the rules every docs page must state alike (issue 13: the
# pages contradicted each other). Each rule lists sentences that state its
# opposite, as found; a page matching one fails. Lines are joined and
# whitespace squeezed first, so a sentence may wrap anywhere.
#
# Rules (the code's, and docs/tasklet.md's):
#   kill-before-closing  a killed tasklet's call that would block on a
#                        closing channel returns SL_EKILLED (the kill check
#                        comes before the closing check);
#   no-message-lost      a send or receive a partner completed returns its
#                        normal result even if the caller was killed before
#                        it ran again: no message is lost to a kill.
# The behaviour itself is tested by test_channel
# (completed_receive_survives_kill,
# killed_tasklet_on_a_closing_channel_gets_ekilled_not_eclosed).
#
# Usage: doc_rules.sh DOCS_DIR. Exit status 0 when no page contradicts a
# rule, 1 otherwise (each contradiction printed as "page: rule: text").
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 DOCS_DIR" >&2; exit 2; }
docs=$1

# rule|regex of a contradicting sentence (extended, on the joined text)
contradictions=(
    'kill-before-closing|checks are made in this order: closing \(`SL_ECLOSED`\), killed'
    'kill-before-closing|This check comes before the `SL_EKILLED` one'
    'kill-before-closing|killed tasklet that would block on a closing channel gets `SL_ECLOSED`'
    'no-message-lost|a message sent to it is then lost'
)

bad=0
for page in "$docs"/*.md; do
    text=$(tr '\n' ' ' <"$page" | tr -s ' ')
    for c in "${contradictions[@]}"; do
        rule=${c%%|*}
        re=${c#*|}
        if hit=$(grep -oE "$re" <<<"$text"); then
            echo "${page##*/}: $rule: \"$hit\""
            bad=1
        fi
    done
done
[ "$bad" -eq 0 ] && echo "doc rules: no page contradicts them"
exit "$bad"
