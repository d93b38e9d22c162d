#!/usr/bin/env bash
# Commands mode against GNU parallel (Debian's `parallel`, which ./bazelw
# installs), on the same machine in one run: 2000 `true` commands and 200
# commands that each print 1 MB, at --jobs=2 and --jobs=8. Each cell is the
# median wall time of REPEAT runs; output goes to /dev/null for both tools.
#
#   ./bazelw run //benchmarks:commands_vs_parallel            # the README's table
#   ./bazelw run //benchmarks:commands_vs_parallel -- --quick # a few commands
#
# Prints a Markdown table: seconds for each tool, milliseconds per command,
# and how many times faster fanout is (parallel's time / fanout's).
set -euo pipefail

run=""
quick=0
repeat=3
for arg in "$@"; do
  case "$arg" in
    --run=*) run="${arg#--run=}" ;;
    --quick) quick=1 ;;
    --repeat=*) repeat="${arg#--repeat=}" ;;
    *) echo "commands_vs_parallel: unknown argument '$arg'; valid: --run=PATH --quick --repeat=N" >&2; exit 2 ;;
  esac
done
[[ -n "$run" && -x "$run" ]] || { echo "commands_vs_parallel: --run=PATH to fanout's cli/run is needed" >&2; exit 2; }
command -v parallel >/dev/null || { echo "commands_vs_parallel: GNU parallel is missing (./bazelw installs it: it is in PACKAGES)" >&2; exit 1; }
run=$(cd "$(dirname "$run")" && pwd)/$(basename "$run")

n_true=2000
n_mb=200
if ((quick)); then n_true=40; n_mb=4; repeat=1; fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for ((i = 0; i < n_true; i++)); do echo true; done >"$dir/true.txt"
for ((i = 0; i < n_mb; i++)); do echo "head -c 1000000 /dev/zero"; done >"$dir/mb.txt"

# seconds FILE JOBS TOOL: the median wall time of `repeat` runs.
seconds() {
  local file=$1 jobs=$2 tool=$3 times=() t0 t1
  for ((k = 0; k < repeat; k++)); do
    t0=$(date +%s.%N)
    if [[ "$tool" == fanout ]]; then
      "$run" --commands="$file" --jobs="$jobs" >/dev/null 2>&1
    else
      parallel --will-cite -j "$jobs" <"$file" >/dev/null 2>&1
    fi
    t1=$(date +%s.%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

echo "| workload | jobs | fanout s | GNU parallel s | fanout ms/command | parallel ms/command | fanout faster |"
echo "|---|---|---|---|---|---|---|"
for spec in "true.txt:$n_true:$n_true x true" "mb.txt:$n_mb:$n_mb x 1 MB of output"; do
  IFS=: read -r file n label <<<"$spec"
  for jobs in 2 8; do
    f=$(seconds "$dir/$file" "$jobs" fanout)
    p=$(seconds "$dir/$file" "$jobs" parallel)
    awk -v l="$label" -v j="$jobs" -v f="$f" -v p="$p" -v n="$n" 'BEGIN {
      printf "| %s | %d | %.2f | %.2f | %.3f | %.3f | %.1fx |\n", l, j, f, p,
             1000 * f / n, 1000 * p / n, p / f }'
  done
done
echo
echo "$(nproc) CPUs, $(uname -sr), $(parallel --version 2>/dev/null | head -1), median of $repeat"
