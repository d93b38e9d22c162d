#!/bin/bash
# Five children run at once and are waited for: each one's output and exit
# code, in order.
set -euo pipefail
bin="$1"
want=""
for i in 0 1 2 3 4; do
  want+="child $i started
child $i done
child $i exit code $i
"
done
got="$("$bin" 2>"$TEST_TMPDIR/err")"
if [[ "$got" != "${want%$'\n'}" ]]; then
  echo "FAIL: got:"; echo "$got"; exit 1
fi
if ! grep -Eq '^5 children of 0.2 s each ran in [0-9.]+ s$' "$TEST_TMPDIR/err"; then
  echo "FAIL: stderr:"; cat "$TEST_TMPDIR/err"; exit 1
fi
echo PASS
