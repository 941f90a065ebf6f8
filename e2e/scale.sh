#!/usr/bin/env bash
# End-to-end: 100 instances of two flavors over the three hollow nodes of a local cluster, all
# Running, and the allocation ledgers the apiserver keeps (read from etcd: the API does not serve
# them) equal, node by node and number by number, to the flavors of what runs there and to what
# stratusctl shows; the IP ledger holds exactly the instances' addresses. Deleting the 100 gives
# everything back: claims, addresses and the agents' instance folders.
#
#   e2e/scale.sh BUILD_DIR
set -uo pipefail

# 70 x 1 vcpu + 30 x 2 vcpus do not fit the 48 vcpus of hollow-1..3 at ratio 1: the nodes
# advertise a cpu allocation ratio of 4, which the ledger check holds them to.
export STRATUS_AGENT_FLAGS="--cpu-allocation-ratio 4"
# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/lib.sh" "${1:-}"

COUNT=100

hundred_running() {
    up 3 || return 1
    local items="" names=() i flavor
    for i in $(seq 1 $COUNT); do
        flavor=e2e.small
        [ $((i % 10)) -lt 3 ] && flavor=e2e.large
        items="$items${items:+,}{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"s-$i\",\"labels\":{\"e2e\":\"scale\"}},\"spec\":{\"flavor\":\"$flavor\",\"image\":\"demo-disk\",\"networks\":[{\"network\":\"demo\"}]}}"
        names+=("instance/s-$i")
    done
    # Sizes that make every sum say something: disk = root + ephemeral + swap rounded up.
    cat >"$tmp/scale.json" <<EOF
{"apiVersion":"stratus/v1","kind":"List","items":[
 {"apiVersion":"stratus/v1","kind":"Flavor","metadata":{"name":"e2e.small"},
  "spec":{"vcpus":1,"memoryMiB":192,"rootDiskGiB":1}},
 {"apiVersion":"stratus/v1","kind":"Flavor","metadata":{"name":"e2e.large"},
  "spec":{"vcpus":2,"memoryMiB":640,"rootDiskGiB":2,"ephemeralGiB":1,"swapMiB":1536}},
 $items]}
EOF
    ctl apply -f "$tmp/scale.json" >/dev/null &&
        ctl wait "${names[@]}" --for=phase=Running --timeout=240s >"$tmp/waited" || return 1
    [ "$(grep -c 'condition met' "$tmp/waited")" = $COUNT ] &&
        [ "$(ctl get instances -l e2e=scale --field-selector status.phase=Running -o name |
            wc -l)" = $COUNT ]
}

ledgers_equal_what_runs() {
    ledgers_check --expect $((COUNT + 3)) # with the demo's web-1..3
}

delete_gives_everything_back() {
    folders_match hollow-1 hollow-2 hollow-3 || return 1
    ctl delete instance -l e2e=scale --wait=240s >/dev/null &&
        [ "$(ctl get instances -l e2e=scale -o name | wc -l)" = 0 ] &&
        ledgers_check --expect 3 &&
        until_ok 30 folders_match hollow-1 hollow-2 hollow-3
}

check hundred_running hundred_running
check ledgers_equal_what_runs ledgers_equal_what_runs
check delete_gives_everything_back delete_gives_everything_back
e2e_finish
