#!/bin/sh
# trace_timeline.py draws a real trace: a process call whose worker 0 dies
# (a SIGSEGV in task 700) and is replaced.
set -eu
timeline="$1"
run="$2"
trace="${TEST_TMPDIR}/run.json"
png="${TEST_TMPDIR}/run.png"
fail() { echo "FAIL: $*" >&2; exit 1; }
# Exit 1: task 700 failed (--errors=collect runs the rest).
rc=0
"$run" --workload=sum --tasks=2000 --backend=process --jobs=2 \
  --fail-task=700 --fail-mode=segv --errors=collect --trace="$trace" \
  >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "run exited $rc, not 1"
/usr/bin/python3 "$timeline" "$trace" --output="$png" >"${TEST_TMPDIR}/out"
cat "${TEST_TMPDIR}/out"
# The caller, worker 0, its replacement and worker 1; the death and the
# replacement as events.
grep -q '^trace_timeline: 4 rows, [0-9]* spans, 2 events -> ' \
  "${TEST_TMPDIR}/out" || fail "not 4 rows and 2 events"
[ "$(head -c 4 "$png" | tail -c 3)" = "PNG" ] || fail "no PNG"
# --call=1 picks the one call; a call past the last is refused.
/usr/bin/python3 "$timeline" "$trace" --call=1 --output="$png" >/dev/null ||
  fail "--call=1 refused"
if /usr/bin/python3 "$timeline" "$trace" --call=2 --output="$png" \
  2>/dev/null; then
  fail "--call=2 of a one-call file accepted"
fi
echo PASS
