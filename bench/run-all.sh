#!/bin/sh
# Runs every benchmark built in BUILD (default build/) and prints their figures.
set -eu
build=${1:-build}
for b in "$build"/bin/*-bench; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b"
done
