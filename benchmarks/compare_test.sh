#!/bin/sh
# compare.py --quick runs the suite, prints the table and writes its files.
set -eu
compare="$1"
binary="$2"
out="${TEST_TMPDIR}/compare"
/usr/bin/python3 "$compare" --binary="$binary" --quick --out_dir="$out" \
  >"${TEST_TMPDIR}/stdout"
cat "${TEST_TMPDIR}/stdout"
fail() { echo "FAIL: $*" >&2; exit 1; }
grep -q '^| runner | jobs | fib_38_33 | latency_2 |$' "${TEST_TMPDIR}/stdout" ||
  fail "no table header"
for runner in thread tbb sequential peer:loop peer:tbb_parallel_for \
    peer:openmp peer:thread_pool; do
  grep -q "^| ${runner} | 1 | " "${TEST_TMPDIR}/stdout" || fail "no row for ${runner}"
done
grep -q '^### Batch sizes: auto against fixed$' "${TEST_TMPDIR}/stdout" ||
  fail "no batch-size table"
grep -q '^| fib_38_33 | thread | [0-9]* | ' "${TEST_TMPDIR}/stdout" ||
  fail "no batch-size row for thread"
[ -s "${out}/fanout_benchmarks.json" ] || fail "no json"
[ -s "${out}/fanout_benchmarks.md" ] || fail "no markdown table"
[ -s "${out}/fanout_speedup.png" ] || fail "no plot"
# A PNG starts with \x89PNG.
[ "$(head -c 4 "${out}/fanout_speedup.png" | tail -c 3)" = "PNG" ] || fail "plot is not a PNG"
echo PASS
