#!/bin/bash
# The CLI on the mpi backend: under mpirun every rank runs the workload and
# only rank 0 prints, so each answer appears exactly once; without mpirun
# --backend=mpi is one rank that prints the same answers.
#
#   mpi_cli_test.sh LAUNCHER CLI
set -u
launcher=$1 cli=$2
case "$cli" in /*) ;; *) cli=$PWD/$cli ;; esac
export TMPDIR=/tmp  # short paths for Open MPI's session directory
readonly SUM=249972500250000000
readonly FIB="39088169 24157817 14930352 9227465 5702887 3524578"
out=$(mktemp)
failures=0

check() {  # check WHAT EXPECTED_ANSWER COMMAND...
  local what=$1 answer=$2
  shift 2
  timeout -k 5 50 "$@" >"$out" 2>&1
  local rc=$?
  local got
  got=$(grep -cxF -- "$answer" "$out")
  echo "$what: exit $rc, answer printed $got time(s)"
  if [ "$rc" != 0 ] || [ "$got" != 1 ] || [ "$(grep -c '^backend: mpi$' "$out")" != 1 ]; then
    echo "FAIL [$what]: expected exit 0 and the answer and 'backend: mpi' once" >&2
    sed 's/^/    /' "$out" >&2
    failures=$((failures + 1))
  fi
  if pgrep -f "^$cli" >/dev/null; then
    echo "FAIL [$what]: ranks left running" >&2
    failures=$((failures + 1))
  fi
}

for np in 2 4; do
  check "sum, $np ranks" "$SUM" "$launcher" -np "$np" "$cli" --backend=mpi
  check "fib, $np ranks" "$FIB" "$launcher" -np "$np" "$cli" --backend=mpi --workload=fib
done
check "sum, no mpirun" "$SUM" "$cli" --backend=mpi
check "fib, no mpirun" "$FIB" "$cli" --backend=mpi --workload=fib

rm -f "$out"
[ "$failures" = 0 ] || exit 1
echo "all cases passed"
