#!/bin/bash
# Pool.map(fib, [38, ..., 33]): the reference answers, in input order.
set -euo pipefail
bin="$1"
want="39088169 24157817 14930352 9227465 5702887 3524578"
for backend in process thread; do
  got="$("$bin" "$backend")"
  if [[ "$got" != "$want" ]]; then
    echo "FAIL ($backend): got: $got"; exit 1
  fi
done
echo PASS
