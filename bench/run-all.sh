#!/bin/sh
# Runs every benchmark built in BUILD (default build/) and prints their figures
# (docs/performance.md says what each one means).
#
#   bench/run-all.sh [--quick] [--only NAME[,NAME...]] [BUILD]
#
# --quick (or BENCH_QUICK=1, e.g. `make bench BENCH_QUICK=1`): the short variant of each, about
# 3 minutes in all instead of about 12: the same phases with fewer operations, a 10 s churn
# instead of 60 s, 10k objects instead of 10k and 100k, one real-guest round instead of five.
# --only (or BENCH_ONLY): a subset, by name without "-bench" (canonical, parse, store, apiserver,
# scheduler, agent, hollow, footprint, realguest). BENCH_GRANT_KVM=1 passes --grant-kvm-access to
# realguest-bench (docs/performance.md: without it, this kind of host's libvirt probes qemu on
# every call).
#
# A benchmark never fails on a time. One that fails (cannot start, crashes) is reported and the
# others still run; the script then exits 1.
set -u
quick=${BENCH_QUICK:-0}
only=${BENCH_ONLY:-}
build=build
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    --only=*) only=${1#--only=} ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) build=$1 ;;
    esac
    shift
done

# name, then its arguments for the full run and for --quick ("-" = none; "_" = a space).
# store-bench keeps its default size in --quick: a short run of it hung here in its raw watch
# reference, which can miss an event split across reads and then wait forever
# (docs/performance.md, "Found while measuring (issue 8)").
plan='canonical - -
parse - -
store - -
apiserver - --quick
scheduler - --instances_2000
agent - -
hollow - --quick
footprint - --quick
realguest - --rounds_1'

wanted() {
    [ -z "$only" ] && return 0
    case ",$only," in *",$1,"*) return 0 ;; esac
    return 1
}

failed=
run() { # name args...
    name=$1
    shift
    echo "== $name-bench $*"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1 /proc/loadavg), $(nproc) cores"
    "$build/bin/$name-bench" "$@" </dev/null
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "!! $name-bench failed (exit $rc)"
        failed="$failed $name"
    fi
}

# Redirected, not piped: the loop runs in this shell, so $failed survives it.
while read -r name full short; do
    [ -x "$build/bin/$name-bench" ] || continue
    wanted "$name" || continue
    args=$full
    [ "$quick" = 1 ] && args=$short
    [ "$args" = - ] && args=
    if [ "$name" = realguest ] && [ "${BENCH_GRANT_KVM:-0}" = 1 ]; then
        args="$args --grant-kvm-access"
    fi
    # shellcheck disable=SC2046 # the arguments are words; "_" stands for a space in the plan
    run "$name" $(echo "$args" | tr _ ' ')
done <<EOF
$plan
EOF

# Benchmarks not in the plan yet: run with no arguments.
for b in "$build"/bin/*-bench; do
    [ -x "$b" ] || continue
    name=$(basename "$b" -bench)
    echo "$plan" | grep -q "^$name " && continue
    wanted "$name" || continue
    run "$name"
done

if [ -n "$failed" ]; then
    echo "!! failed:$failed"
    exit 1
fi
