#!/bin/bash
# Start and join; the subclass style; results and errors through join().
set -euo pipefail
bin="$1"
want="hello bob
squares: [0, 1, 4, 9]
fib(25) = 75025
join() threw: std::invalid_argument: no such input"
for backend in process thread; do
  got="$("$bin" "$backend")"
  if [[ "$got" != "$want" ]]; then
    echo "FAIL ($backend): got:"; echo "$got"; exit 1
  fi
done
echo PASS
