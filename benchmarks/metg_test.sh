#!/bin/sh
# metg.py --quick runs every runner on two task sizes, checks their answers
# (a wrong one fails the run), prints the tables and targets and writes the
# plot. No timing is asserted.
set -eu
metg="$1"
out="${TEST_TMPDIR}/metg"
/usr/bin/python3 "$metg" --benchmark="$2" --peers="$3" --kernel="$4" \
  --mpirun="$5" --quick --no_install --plot="${out}/metg.png" \
  --out_dir="${out}" >"${TEST_TMPDIR}/stdout"
cat "${TEST_TMPDIR}/stdout"
fail() { echo "FAIL: $*" >&2; exit 1; }
grep -q '^| runner | workers | METG(50%) | between | ' "${TEST_TMPDIR}/stdout" ||
  fail "no METG table"
for runner in thread tbb process mpi sequential peer:tbb_parallel_for \
    peer:openmp peer:thread_pool peer:loop python:ProcessPoolExecutor \
    python:joblib; do
  grep -q "^| ${runner} | [12] | " "${TEST_TMPDIR}/stdout" ||
    fail "no METG row for ${runner}"
done
grep -q '^| runner | 2^10 | 2^16 |$' "${TEST_TMPDIR}/stdout" ||
  fail "no efficiency table"
for target in 'thread METG / best of raw TBB and OpenMP' \
    'tbb METG / best of raw TBB and OpenMP' 'process METG / thread METG' \
    'joblib METG / thread METG' 'joblib METG / mpi METG'; do
  grep -Eq "^\| ${target} \| .* \| (PASS|FAIL|UNRESOLVED) \|$" \
    "${TEST_TMPDIR}/stdout" || fail "no verdict for: ${target}"
done
[ -s "${out}/metg.md" ] || fail "no markdown"
/usr/bin/python3 -c 'import json, sys; json.load(open(sys.argv[1]))' \
  "${out}/metg.json" || fail "metg.json is not JSON"
# A PNG starts with \x89PNG.
[ "$(head -c 4 "${out}/metg.png" | tail -c 3)" = "PNG" ] || fail "plot is not a PNG"
echo PASS
