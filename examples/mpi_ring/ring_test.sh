#!/bin/bash
# The ring on 3 ranks under the launcher, and alone without mpirun.
#
#   ring_test.sh LAUNCHER RING
set -u
launcher=$1 ring=$2
case "$ring" in /*) ;; *) ring=$PWD/$ring ;; esac
export TMPDIR=/tmp  # short paths for Open MPI's session directory
out=$(mktemp)
failures=0

lines() {  # lines TEXT N: TEXT is a whole line of the output exactly N times
  local got
  got=$(grep -cxF -- "$1" "$out")
  if [ "$got" != "$2" ]; then
    echo "FAIL: '$1' printed $got time(s), expected $2" >&2
    failures=$((failures + 1))
  fi
}

timeout -k 5 50 "$launcher" -np 3 "$ring" >"$out" 2>&1
rc=$?
echo "ring on 3 ranks: exit $rc"
sed 's/^/    /' "$out"
[ "$rc" = 0 ] || { echo "FAIL: exit $rc" >&2; failures=$((failures + 1)); }
node=$(hostname)
for r in 0 1 2; do lines "I am proc $r of 3 on node $node" 1; done
lines 'Processor 0 received message "P0P1P2" from processor 2' 1
[ "$(wc -l <"$out")" = 4 ] || { echo "FAIL: expected 4 lines" >&2; failures=$((failures + 1)); }

timeout -k 5 50 "$ring" >"$out" 2>&1
rc=$?
echo "ring alone: exit $rc"
sed 's/^/    /' "$out"
[ "$rc" = 0 ] || { echo "FAIL: exit $rc" >&2; failures=$((failures + 1)); }
lines "I am proc 0 of 1 on node $node" 1
lines 'Processor 0 received message "P0" from processor 0' 1

if pgrep -f "^$ring" >/dev/null; then
  echo "FAIL: ranks left running" >&2
  failures=$((failures + 1))
fi
rm -f "$out"
[ "$failures" = 0 ] || exit 1
echo "all cases passed"
