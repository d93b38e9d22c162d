#!/bin/bash
# What happens to a job when a rank misbehaves, with Open MPI's mpirun:
# it must end (no hang) within a bound, exit non-zero with a message that
# says which rank and why, and leave no rank running. And a normal exit
# finalizes MPI exactly once per rank, with the exit code propagated.
#
#   mpi_fault_test.sh LAUNCHER HELPER
set -u
launcher=$1 helper=$2
case "$helper" in /*) ;; *) helper=$PWD/$helper ;; esac
export TMPDIR=/tmp  # short paths for Open MPI's session directory
out=$(mktemp)
failures=0

fail() {
  echo "FAIL [$case_name]: $*" >&2
  sed 's/^/    /' "$out" >&2
  failures=$((failures + 1))
}

# run NAME EXPECTED_EXIT MODE...: runs the helper on 3 ranks, with the
# variables in run_env added to their environment.
run_env=()
run() {
  case_name=$1 expected=$2
  shift 2
  local start=$SECONDS
  env "${run_env[@]}" timeout -k 5 40 "$launcher" -np 3 "$helper" "$@" \
    >"$out" 2>&1
  rc=$?
  echo "$case_name: exit $rc after $((SECONDS - start)) s"
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && fail "did not end within 40 s (hang)"
  [ "$rc" = "$expected" ] || fail "exit $rc, expected $expected"
  if pgrep -f "^$helper" >/dev/null; then
    fail "ranks left running: $(pgrep -af "^$helper")"
  fi
}

expect() {  # expect TEXT: the output contains TEXT
  grep -qF -- "$1" "$out" || fail "output lacks: $1"
}

count() {  # count TEXT N: TEXT appears on exactly N lines
  local got
  got=$(grep -cF -- "$1" "$out")
  [ "$got" = "$2" ] || fail "'$1' on $got lines, expected $2"
}

run ok 0 ok
count "sum 780" 1
for r in 0 1 2; do count "rank $r: MPI_Finalize call 1" 1; done
count "MPI_Finalize call 2" 0

run exit-code 5 exit 5
count "sum 780" 1
for r in 0 1 2; do count "rank $r: MPI_Finalize call 1" 1; done
expect "Exit code:    5"

# The rank must die of the signal itself. A sanitizer's SEGV handler would
# turn it into a report and exit 1 (ASan's does, under --config=asan), which
# tests another case (exit-code): the sanitizers leave SIGSEGV alone here.
run_env=(
  "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0"
  "UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}handle_segv=0"
)
run segv 139 segv
run_env=()
expect "process rank 1 with PID"
expect "exited on signal 11 (Segmentation fault)"
count "sum 780" 0

run _exit-3 3 _exit 3
expect "Exit code:    3"
count "sum 780" 0

run _exit-0 1 _exit 0
expect "process rank 1 with PID"
expect "exiting improperly"
count "sum 780" 0

run diverge 70 diverge
expect "fanout mpi: ranks diverged: rank 0 is in parallel call #1 (40 tasks) but rank 1 is in call #1 (7 tasks)"

rm -f "$out"
[ "$failures" = 0 ] || exit 1
echo "all cases passed"
