#!/bin/bash
# The CLI on the mpi backend: under mpirun every rank runs the workload and
# only rank 0 prints, so each answer appears exactly once; without mpirun
# --backend=mpi is one rank that prints the same answers. A task that fails
# fails the call on every rank: the error line too appears once (issue 14
# item 15: it appeared once per rank), and every rank exits 1.
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

# check_error WHAT LINE COMMAND...: exit 1 and LINE (a grep -E pattern)
# exactly once on the combined output, no rank left running.
check_error() {
  local what=$1 line=$2
  shift 2
  timeout -k 5 50 "$@" >"$out" 2>&1
  local rc=$?
  local got
  got=$(grep -cE -- "$line" "$out")
  local lines
  lines=$(grep -c '^run: ' "$out")
  echo "$what: exit $rc, error printed $got time(s), $lines run: line(s)"
  if [ "$rc" != 1 ] || [ "$got" != 1 ] || [ "$lines" != 1 ]; then
    echo "FAIL [$what]: expected exit 1 and one run: line matching $line" >&2
    sed 's/^/    /' "$out" >&2
    failures=$((failures + 1))
  fi
  if pgrep -f "^$cli" >/dev/null; then
    echo "FAIL [$what]: ranks left running" >&2
    failures=$((failures + 1))
  fi
}

readonly FAILED="^run: error: task 17 failed on backend 'mpi' \\(rank [0-9]+\\): std::runtime_error: injected failure in task 17$"

# check_collect WHAT COMMAND...: --errors=collect with task 17 failing: exit
# 1, the partial answer and the failure line each exactly once.
check_collect() {
  local what=$1
  shift
  timeout -k 5 50 "$@" >"$out" 2>&1
  local rc=$?
  local answers errors
  answers=$(grep -cxF -- "$PARTIAL" "$out")
  errors=$(grep -cE -- "$FAILED" "$out")
  echo "$what: exit $rc, partial answer printed $answers time(s), error $errors time(s)"
  if [ "$rc" != 1 ] || [ "$answers" != 1 ] || [ "$errors" != 1 ] ||
    [ "$(grep -c '^run: ' "$out")" != 1 ]; then
    echo "FAIL [$what]: expected exit 1, the partial answer and one run: line" >&2
    sed 's/^/    /' "$out" >&2
    failures=$((failures + 1))
  fi
  if pgrep -f "^$cli" >/dev/null; then
    echo "FAIL [$what]: ranks left running" >&2
    failures=$((failures + 1))
  fi
}

# check_exit WHAT LINE COMMAND...: a task that calls exit(3) (issue 23 item
# 11): exit 3, LINE (a grep -E pattern) exactly once, none of Open MPI's
# own errors (it used to end with "MPI_ERR_COMM: invalid communicator",
# exit 5, and no word of the task), no rank left running.
check_exit() {
  local what=$1 line=$2
  shift 2
  timeout -k 5 50 "$@" >"$out" 2>&1
  local rc=$?
  local got
  got=$(grep -cE -- "$line" "$out")
  echo "$what: exit $rc, exit line printed $got time(s)"
  if [ "$rc" != 3 ] || [ "$got" != 1 ] || grep -q 'MPI_ERR' "$out"; then
    echo "FAIL [$what]: expected exit 3 and one line matching $line" >&2
    sed 's/^/    /' "$out" >&2
    failures=$((failures + 1))
  fi
  if pgrep -f "^$cli" >/dev/null; then
    echo "FAIL [$what]: ranks left running" >&2
    failures=$((failures + 1))
  fi
}
readonly EXITED="^fanout: task 17 called exit\\(3\\) while a call was running on backend 'mpi'"
readonly LOST="; its results are lost$"

# The reference sum without task 17's 17 * 4999950000.
readonly PARTIAL="249972415250850000 (partial: 1 of 10000 tasks failed)"

for np in 2 4; do
  check "sum, $np ranks" "$SUM" "$launcher" -np "$np" "$cli" --backend=mpi
  check "fib, $np ranks" "$FIB" "$launcher" -np "$np" "$cli" --backend=mpi --workload=fib
  check_error "task 17 fails, $np ranks" "$FAILED" \
    "$launcher" -np "$np" "$cli" --backend=mpi --fail-task=17 --fail-mode=throw
  # A retry runs on the rank that ran the task, which counts its attempts.
  check "task 17 fails once and is retried, $np ranks" "$SUM" \
    "$launcher" -np "$np" "$cli" --backend=mpi --fail-task=17 \
    --fail-attempts=1 --retries=1
  check_error "task 17 fails once, no retries, $np ranks" "$FAILED" \
    "$launcher" -np "$np" "$cli" --backend=mpi --fail-task=17 --fail-attempts=1
  check_collect "task 17 fails, --errors=collect, $np ranks" \
    "$launcher" -np "$np" "$cli" --backend=mpi --errors=collect --fail-task=17
  check_exit "task 17 calls exit(3), $np ranks" "$EXITED \\(rank [0-9]+\\)$LOST" \
    "$launcher" -np "$np" "$cli" --backend=mpi --fail-task=17 --fail-mode=exit
done
check_exit "task 17 calls exit(3), no mpirun" "$EXITED$LOST" \
  "$cli" --backend=mpi --fail-task=17 --fail-mode=exit
check_error "task 17 fails, no mpirun" "$FAILED" \
  "$cli" --backend=mpi --fail-task=17 --fail-mode=throw

# Out of threads under mpirun (issue 14 item 13): a rank that cannot start
# its compute threads says so and the job ends with exit 1. It used to hang
# when one rank failed and the other did not (the failed rank waited in
# MPI_Finalize for a peer that waited in the call for it). RLIMIT_NPROC
# counts every process and thread of a user and does not hold root, so as
# root the job runs under an unused uid, from copies that uid may read.
nproc_case() {
  local dir prefix=()
  if [ "$(id -u)" = 0 ]; then
    if ! command -v setpriv >/dev/null; then
      echo "out of threads: skipped (root without setpriv)"
      return
    fi
    dir=$(mktemp -d /tmp/fanout-nproc-XXXXXX)
    chmod 755 "$dir"
    cp "$cli" "$dir/run"
    cp "$(readlink -f "$launcher")" "$dir/mpirun"
    chmod 755 "$dir/run" "$dir/mpirun"
    local uid=$((3000000 + $$))
    mkdir "$dir/tmp"  # Open MPI's session directory, the uid's own
    chown "$uid:$uid" "$dir/tmp"
    prefix=(setpriv "--reuid=$uid" "--regid=$uid" --clear-groups
      env HOME="$dir/tmp" TMPDIR="$dir/tmp")
  else
    dir=$(mktemp -d)
    cp "$cli" "$dir/run"
    cp "$(readlink -f "$launcher")" "$dir/mpirun"
  fi
  local limit
  for limit in 40 60; do
    timeout -k 5 50 "${prefix[@]}" prlimit --nproc=$limit \
      "$dir/mpirun" -np 2 "$dir/run" --backend=mpi --jobs=30 >"$out" 2>&1
    local rc=$?
    local got
    got=$(grep -cE "^run: error: mpi backend \(rank [01]\): cannot start compute thread [0-9]+ of 30: Resource temporarily unavailable \(RLIMIT_NPROC \(ulimit -u\) is $limit for this user" "$out")
    echo "out of threads, nproc $limit: exit $rc, $got rank(s) said so"
    if [ "$rc" != 1 ] || [ "$got" -lt 1 ] || grep -q "terminate called" "$out"; then
      echo "FAIL [out of threads, nproc $limit]: expected exit 1 and the" \
        "ranks that could not start a thread saying so" >&2
      sed 's/^/    /' "$out" >&2
      failures=$((failures + 1))
    fi
  done
  rm -rf "$dir"
}
nproc_case
check "sum, no mpirun" "$SUM" "$cli" --backend=mpi
check "fib, no mpirun" "$FIB" "$cli" --backend=mpi --workload=fib

rm -f "$out"
[ "$failures" = 0 ] || exit 1
echo "all cases passed"
