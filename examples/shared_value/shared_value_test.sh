#!/bin/bash
# The caller reads what the tasks wrote, across processes and across threads.
set -euo pipefail
bin="$1"
expect() {
  local backend="$1" others="$2"
  local want
  want="backend: $backend
shared_int: 10001
shared_arr: [1667.0, 1666.5, 1666.5]
sum: 249972500250000000
tasks run outside the caller's process: $others of 10000"
  local got
  got="$("$bin" "$backend")"
  if [[ "$got" != "$want" ]]; then
    echo "FAIL ($backend): got:"; echo "$got"; echo "want:"; echo "$want"; exit 1
  fi
}
expect process 10000
expect thread 0
echo PASS
