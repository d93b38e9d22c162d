#!/bin/bash
# Two producers, two consumers: every item consumed exactly once.
set -euo pipefail
bin="$1"
want="producer a: a-0 a-1 a-2 a-3 a-4 a-5 a-6 a-7 a-8 a-9
producer b: b-0 b-1 b-2 b-3 b-4 b-5 b-6 b-7 b-8 b-9
produced 20, consumed 20, each exactly once: yes"
for backend in process thread; do
  for run in 1 2 3; do
    got="$("$bin" "$backend")"
    if [[ "$got" != "$want" ]]; then
      echo "FAIL ($backend, run $run): got:"; echo "$got"; exit 1
    fi
  done
done
echo PASS
