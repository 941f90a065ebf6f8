#!/usr/bin/env bash
# End-to-end: the real binaries as `make up` runs them (hollow nodes; the real guest has its own
# test, tests/integration/test-agent-qemu.c), driven with stratusctl as a person would. State
# and the client config live in a temporary folder; the cluster is always taken down.
#
#   e2e/local-cluster.sh BUILD_DIR
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stratus-e2e-XXXXXX")
export STRATUS_STATE=$tmp/state STRATUS_BIN=$build/bin STRATUS_REAL_NODE=0 HOME=$tmp/home
mkdir -p "$HOME"
ctl() { "$build/bin/stratusctl" "$@"; }
passed=0
failed=0

cleanup() {
    "$top/tools/local-cluster.sh" down >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

check() { # name command...
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        sed 's/^/    /' "$tmp/out" | tail -20
        failed=$((failed + 1))
    fi
}

# Polls a command until its output matches a pattern.
eventually() { # seconds pattern command...
    local secs=$1 pattern=$2
    shift 2
    local end=$((SECONDS + secs))
    while [ $SECONDS -lt $end ]; do
        if "$@" 2>&1 | grep -qE "$pattern"; then
            return 0
        fi
        sleep 0.5
    done
    echo "never matched /$pattern/; last output:"
    "$@" 2>&1 | tail -10
    return 1
}

up() { STRATUS_NODES=${1:-3} "$top/tools/local-cluster.sh" up; }

demo_running() {
    up 3 &&
        [ "$(ctl get instances -l app=web -o name | wc -l)" = 3 ] &&
        ! ctl get instances -l app=web | tail -n +2 | grep -v Running
}

describe_shows_the_build() {
    ctl describe instance web-1 | grep -E 'Timeline' &&
        ctl describe instance web-1 | grep -E 'DomainRunning +True' &&
        ctl get nodes | grep -E '^hollow-1 +True'
}

power_state_both_ways() {
    ctl get instance web-1 -o json | sed 's/"powerState": "Running"/"powerState": "Stopped"/' |
        ctl apply -f - &&
        ctl wait instance/web-1 --for=phase=Stopped --timeout=60s &&
        ctl get instance web-1 -o json | sed 's/"powerState": "Stopped"/"powerState": "Running"/' |
        ctl apply -f - &&
        ctl wait instance/web-1 --for=phase=Running --timeout=60s
}

unfit_waits_for_a_node() {
    cat >"$tmp/big.json" <<EOF
{"apiVersion":"stratus/v1","kind":"List","items":[
 {"apiVersion":"stratus/v1","kind":"Flavor","metadata":{"name":"x.big"},
  "spec":{"vcpus":30,"memoryMiB":1024,"rootDiskGiB":1}},
 {"apiVersion":"stratus/v1","kind":"Instance","metadata":{"name":"big"},
  "spec":{"flavor":"x.big","image":"demo-disk"}}]}
EOF
    ctl apply -f "$tmp/big.json" &&
        eventually 30 'insufficient vcpus' ctl describe instance big &&
        ctl get instance big | grep Pending &&
        up 4 && # hollow-4: 32 vcpus
        ctl wait instance/big --for=phase=Running --timeout=90s &&
        ctl get instance big | grep hollow-4
}

apiserver_killed_and_back() {
    kill -9 "$(cat "$STRATUS_STATE/run/apiserver.pid")" && sleep 0.5 &&
        up 4 && # restarts what died, on the same port
        eventually 30 'Running' ctl get instance web-3 &&
        ctl apply -f - <<EOF &&
{"apiVersion":"stratus/v1","kind":"Instance","metadata":{"name":"after-restart"},
 "spec":{"flavor":"m1.tiny","image":"demo-disk"}}
EOF
        ctl wait instance/after-restart --for=phase=Running --timeout=90s
}

delete_removes_it() {
    ctl delete instance web-2 --wait=60s &&
        ! ctl get instance web-2 2>/dev/null
}

broken_manifest_stores_nothing() {
    printf '{"apiVersion":"stratus/v1","kind":"Instance","metadata":{"name":"bad"},"spec":{"flavor":"m1.tiny","image":"demo-disk","networks":[{"network":"demo","fixedIp":"10.99.0.300"}]}}' >"$tmp/bad.json"
    ! ctl apply -f "$tmp/bad.json" 2>"$tmp/err" &&
        grep -F 'spec.networks[0].fixedIp: "10.99.0.300" is not an IPv4 address' "$tmp/err" &&
        ! ctl get instance bad 2>/dev/null
}

down_leaves_nothing() {
    "$top/tools/local-cluster.sh" down &&
        [ ! -e "$STRATUS_STATE" ] && [ ! -e "$HOME/.stratus/config" ] &&
        ! pgrep -f "$STRATUS_STATE" >/dev/null
}

check demo_running demo_running
check describe_shows_the_build describe_shows_the_build
check power_state_both_ways power_state_both_ways
check unfit_waits_for_a_node unfit_waits_for_a_node
check apiserver_killed_and_back apiserver_killed_and_back
check delete_removes_it delete_removes_it
check broken_manifest_stores_nothing broken_manifest_stores_nothing
check down_leaves_nothing down_leaves_nothing
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
