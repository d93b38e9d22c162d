#!/bin/sh
# Runs a benchmark binary ($1) with the remaining arguments; its exit status
# is the test's (the backend benchmarks exit 1 on a wrong answer).
set -eu
binary="$1"
shift
exec "$binary" "$@"
