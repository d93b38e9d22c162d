#!/usr/bin/env bash
# --pipe against GNU parallel (Debian's `parallel`, which ./bazelw installs),
# on the same machine in one run: a file of lines (1 GiB by default) cut into
# blocks, each counted by `grep -c PATTERN`, through
#   run --pipe --block=B 'grep -c P' < FILE          (fanout)
#   parallel --pipe --block B grep -c P < FILE        (GNU, blocks via Perl)
#   parallel --pipepart -a FILE --block B grep -c P   (GNU, reads the file)
# at --jobs=2, for each --block. Each cell is the median wall time of REPEAT
# runs; every run's counts must add up to `grep -c P FILE`, or the script
# fails.
#
#   ./bazelw run //benchmarks:pipe_vs_parallel             # the README's table
#   ./bazelw run //benchmarks:pipe_vs_parallel -- --quick  # a 2 MiB file
#
# Prints a Markdown table: seconds for each tool, MB/s for fanout, and how
# many times faster fanout is than each of GNU's forms.
set -euo pipefail

run=""
quick=0
repeat=3
size_mb=1024
blocks="10M 100M"
jobs=2
pattern=ERROR
for arg in "$@"; do
  case "$arg" in
    --run=*) run="${arg#--run=}" ;;
    --quick) quick=1 ;;
    --repeat=*) repeat="${arg#--repeat=}" ;;
    --size-mb=*) size_mb="${arg#--size-mb=}" ;;
    --blocks=*) blocks="${arg#--blocks=}" ;;
    --jobs=*) jobs="${arg#--jobs=}" ;;
    *) echo "pipe_vs_parallel: unknown argument '$arg'; valid: --run=PATH --quick --repeat=N --size-mb=N --blocks='10M 100M' --jobs=N" >&2; exit 2 ;;
  esac
done
[[ -n "$run" && -x "$run" ]] || { echo "pipe_vs_parallel: --run=PATH to fanout's cli/run is needed" >&2; exit 2; }
command -v parallel >/dev/null || { echo "pipe_vs_parallel: GNU parallel is missing (./bazelw installs it: it is in PACKAGES)" >&2; exit 1; }
run=$(cd "$(dirname "$run")" && pwd)/$(basename "$run")
if ((quick)); then size_mb=2; blocks="512K"; repeat=1; fi

dir=$(mktemp -d "${TEST_TMPDIR:-/tmp}/pipe_vs_parallel.XXXXXX")
trap 'rm -rf "$dir"' EXIT
file="$dir/lines.txt"
# Lines of about 60 bytes, one in 7 with the pattern, up to the size.
awk -v n=$((size_mb << 20)) -v p="$pattern" 'BEGIN {
  srand(21)
  for (i = 0; s < n; i++) {
    l = sprintf("%09d %s the quick brown fox jumps over the lazy dog %d",
                i, (i % 7 == 3 ? p : "info"), int(rand() * 1000000))
    s += length(l) + 1
    print l
  }
}' >"$file"
bytes=$(stat -c %s "$file")
want=$(grep -c "$pattern" "$file")

# seconds TOOL BLOCK: the median wall time of `repeat` runs, each checked.
seconds() {
  local tool=$1 block=$2 times=() t0 t1 got
  for ((k = 0; k < repeat; k++)); do
    t0=$(date +%s.%N)
    case "$tool" in
      fanout) "$run" --pipe --block="$block" --jobs="$jobs" "grep -c $pattern" <"$file" 2>/dev/null >"$dir/out" ;;
      pipe) parallel --will-cite --pipe --block "$block" -j "$jobs" grep -c "$pattern" <"$file" 2>/dev/null >"$dir/out" ;;
      pipepart) parallel --will-cite --pipepart -a "$file" --block "$block" -j "$jobs" grep -c "$pattern" 2>/dev/null >"$dir/out" ;;
    esac
    t1=$(date +%s.%N)
    got=$(awk '{ s += $1 } END { print s + 0 }' "$dir/out")
    if [[ "$got" != "$want" ]]; then
      echo "pipe_vs_parallel: $tool --block=$block counted $got, grep -c counts $want" >&2
      exit 1
    fi
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

echo "| --block | fanout s | parallel --pipe s | parallel --pipepart s | fanout MB/s | faster than --pipe | faster than --pipepart |"
echo "|---|---|---|---|---|---|---|"
for block in $blocks; do
  f=$(seconds fanout "$block")
  p=$(seconds pipe "$block")
  pp=$(seconds pipepart "$block")
  awk -v b="$block" -v f="$f" -v p="$p" -v pp="$pp" -v n="$bytes" 'BEGIN {
    printf "| %s | %.2f | %.2f | %.2f | %.0f | %.1fx | %.1fx |\n", b, f, p, pp,
           n / 1e6 / f, p / f, pp / f }'
done
echo
echo "$((bytes >> 20)) MiB of lines, grep -c $pattern ($want), --jobs=$jobs; $(nproc) CPUs, $(uname -sr), $(parallel --version 2>/dev/null | head -1), median of $repeat"
