#!/bin/bash
# Runs a program under fanout-mpirun with NP ranks and checks that it ends
# in time, exits 0, and leaves no rank behind.
#
#   mpirun_test.sh LAUNCHER NP PROGRAM [ARGS...]
set -u
launcher=$1 np=$2 program=$3
shift 3
case "$program" in /*) ;; *) program=$PWD/$program ;; esac
# Open MPI keeps its session directory (with unix sockets, whose paths must
# stay short) under TMPDIR; Bazel's test TMPDIR is too long for that.
export TMPDIR=/tmp

start=$(date +%s)
timeout -k 5 50 "$launcher" -np "$np" "$program" "$@"
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "mpirun -np $np $(basename "$program"): exit $rc after ${elapsed}s"
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "FAIL: did not finish within 50 s" >&2
  exit 1
fi
if pgrep -f "^$program" >/dev/null; then
  echo "FAIL: ranks left running:" >&2
  pgrep -af "^$program" >&2
  exit 1
fi
exit "$rc"
