#!/usr/bin/env bash
# Runs one named build/test step and reports how long it took:
#   scripts/step.sh NAME COMMAND [ARGS...]
# prints `==> NAME` before and `<== NAME: ok in 12.3 s` (or `FAILED (exit N)`)
# after, and appends `NAME<TAB>seconds<TAB>status` to $STEP_LOG if it is set,
# so `.ci/run` can print a summary table at the end.
set -uo pipefail
name=$1
shift
echo "==> $name"
start=$(date +%s.%N)
"$@"
status=$?
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ $status -eq 0 ]; then result=ok; else result="FAILED (exit $status)"; fi
echo "<== $name: $result in $secs s"
if [ -n "${STEP_LOG:-}" ]; then printf '%s\t%s\t%s\n' "$name" "$secs" "$result" >>"$STEP_LOG"; fi
exit $status
