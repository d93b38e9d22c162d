#!/bin/sh
# Runs every process benchmark once, briefly, so a broken one fails the build.
exec "$1" --benchmark_min_time=0.01
