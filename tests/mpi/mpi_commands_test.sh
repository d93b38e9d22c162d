#!/bin/bash
# Commands mode on the mpi backend: under mpirun every rank runs commands and
# rank 0 alone prints their output, in input order, each exactly once, and
# writes a job log with a row per command whose Host names the host.
#
#   mpi_commands_test.sh LAUNCHER CLI
set -u
launcher=$1 cli=$2
case "$cli" in /*) ;; *) cli=$PWD/$cli ;; esac
export TMPDIR=/tmp  # short paths for Open MPI's session directory
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
  echo "FAIL [$1]: $2" >&2
  sed 's/^/    /' "$work/out" >&2
  failures=$((failures + 1))
}

for np in 2 4; do
  what="$np ranks"
  rm -f "$work/log"
  timeout -k 5 50 "$launcher" -np "$np" "$cli" --backend=mpi --jobs=1 \
    --joblog="$work/log" -- 'sleep 0.2; echo line-{} rank-$OMPI_COMM_WORLD_RANK' \
    ::: 1 2 3 4 5 6 7 8 >"$work/out" 2>"$work/err"
  rc=$?
  [ "$rc" = 0 ] || fail "$what" "exit $rc: $(cat "$work/err")"
  for i in 1 2 3 4 5 6 7 8; do
    n=$(grep -c "^line-$i rank-" "$work/out")
    [ "$n" = 1 ] || fail "$what" "line-$i printed $n times"
  done
  # In input order (rank 0 prints them after the map, in task order).
  [ "$(grep -o '^line-[0-9]' "$work/out" | tr -d '\n')" = \
    "line-1line-2line-3line-4line-5line-6line-7line-8" ] ||
    fail "$what" "not in input order"
  ranks=$(sed -n 's/^line-[0-9] rank-//p' "$work/out" | sort -u | wc -l)
  [ "$ranks" -ge 2 ] || fail "$what" "ran on $ranks rank(s) only"
  rows=$(tail -n +2 "$work/log" | wc -l)
  [ "$rows" = 8 ] || fail "$what" "$rows job log rows, want 8"
  host=$(hostname)
  bad=$(tail -n +2 "$work/log" | awk -F'\t' -v h="$host" '$2 != h || $7 != 0' | wc -l)
  [ "$bad" = 0 ] || fail "$what" "job log rows with another host or a failure: $(cat "$work/log")"
  grep -q "^commands: 8 run, 8 ok, 0 failed, " "$work/err" ||
    fail "$what" "no summary: $(cat "$work/err")"
  [ "$(grep -c '^commands: ' "$work/err")" = 1 ] || fail "$what" "summary not printed once"
  if pgrep -f "^$cli" >/dev/null; then fail "$what" "ranks left running"; fi
  echo "$what: exit $rc, 8 lines once each on $ranks ranks, 8 job log rows"
done

[ "$failures" = 0 ] || exit 1
echo "all cases passed"
