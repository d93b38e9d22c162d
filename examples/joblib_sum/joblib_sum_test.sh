#!/bin/bash
# Runs the joblib_sum example on each backend: the exact answer on stdout,
# joblib's verbose progress on stderr ending with the "finished" line.
set -euo pipefail
bin="$1"
for backend in thread process; do
  out="$("$bin" "$backend" 2>"$TEST_TMPDIR/err")"
  if [[ "$out" != "249972500250000000" ]]; then
    echo "FAIL ($backend): stdout was: $out"; exit 1
  fi
  last="$(tail -n 1 "$TEST_TMPDIR/err")"
  if ! [[ "$last" =~ ^\[Parallel\(n_jobs=[0-9]+\)\]:\ Done\ 10000\ out\ of\ 10000\ \|\ elapsed:\ .*\ finished$ ]]; then
    echo "FAIL ($backend): last stderr line was: $last"; exit 1
  fi
done
echo PASS
