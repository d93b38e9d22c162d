#!/bin/bash
# --checkpoint on the mpi backend: only rank 0 writes the file, every rank
# reads it back, so all ranks agree on the tasks left. Windows are a 32nd of
# the tasks there (313 of 10000; a rank's clock cannot size them), so a run
# whose task 7000 fails keeps exactly the 22 windows before task 7000's:
# 6886 tasks. The next run reads them back, runs the rest and prints the
# reference answer once, and the one after that reads everything back.
#
#   mpi_checkpoint_test.sh LAUNCHER CLI
set -u
launcher=$1 cli=$2
case "$cli" in /*) ;; *) cli=$PWD/$cli ;; esac
export TMPDIR=/tmp  # short paths for Open MPI's session directory
readonly SUM=249972500250000000
dir=$(mktemp -d)
ckpt=$dir/sum.ckpt
out=$dir/out
failures=0

fail() {
  echo "FAIL [$1]" >&2
  sed 's/^/    /' "$out" >&2
  failures=$((failures + 1))
}

run() {  # run ARGS...: the CLI on 2 ranks; sets rc
  timeout -k 5 60 "$launcher" -np 2 "$cli" --backend=mpi --jobs=1 \
    --checkpoint="$ckpt" "$@" >"$out" 2>&1
  rc=$?
  if pgrep -f "^$cli" >/dev/null; then
    echo "FAIL [$*]: ranks left running" >&2
    failures=$((failures + 1))
  fi
}

# resumed WHAT COUNT: exit 0, the answer and one "resumed" line of COUNT.
resumed() {
  local what=$1 count=$2
  local answers lines
  answers=$(grep -cxF -- "$SUM" "$out")
  lines=$(grep -cxF -- "run: resumed from $ckpt: $count of 10000 tasks already done" "$out")
  echo "$what: exit $rc, answer printed $answers time(s), resumed line $lines time(s)"
  if [ "$rc" != 0 ] || [ "$answers" != 1 ] || [ "$lines" != 1 ] ||
    [ "$(grep -c '^run: resumed' "$out")" != 1 ]; then
    fail "$what: expected exit 0, the answer once and '$count of 10000' once"
  fi
}

run --fail-task=7000
echo "task 7000 fails: exit $rc"
[ "$rc" = 1 ] || fail "task 7000 fails: expected exit 1"
[ -s "$ckpt" ] || fail "task 7000 fails: rank 0 wrote no checkpoint"

run
resumed "resumed" 6886
run
resumed "complete" 10000

rm -rf "$dir"
[ "$failures" = 0 ] || exit 1
echo "all cases passed"
