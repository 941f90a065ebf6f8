#!/usr/bin/env bash
# End-to-end: a node agent stopped for good (SIGKILL, never restarted). Its lease expires, the
# scheduler's node-lifecycle loop marks the Node Ready=False and, only after the fencing margin,
# gives its instances back; they are then Running on the other nodes, the same instances (same
# uids and addresses) with the lost node in their attempts, and the ledgers say so. An instance
# pinned to the lost node's zone cannot move: it waits Pending and says why.
#
# Leases and the margin are shortened through tools/local-cluster.sh (STRATUS_AGENT_FLAGS,
# STRATUS_SCHEDULER_FLAGS): lease TTL 3 s (so the agents fence themselves after 9 s), margin 12 s.
#
#   e2e/node-lost.sh BUILD_DIR
set -uo pipefail

export STRATUS_AGENT_FLAGS="--lease-ttl 3s"
export STRATUS_SCHEDULER_FLAGS="--fencing-margin 12s"
# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/lib.sh" "${1:-}"

LOST=hollow-2
INSTANCES=(n-1 n-2 n-3 n-4)

cordon() { # node true|false (again if the agent wrote the Node in between)
    local _
    for _ in 1 2 3 4 5; do
        ctl get node "$1" -o json |
            sed "s/\"unschedulable\": [a-z]*/\"unschedulable\": $2/" | ctl apply -f - && return 0
        sleep 0.2
    done
    return 1
}

all_on() { # node → every instance of INSTANCES bound there
    local i
    for i in "${INSTANCES[@]}"; do
        [ "$(field "$i" spec.nodeName)" = "$1" ] ||
            { echo "$i is on $(field "$i" spec.nodeName)"; return 1; }
    done
}

# The other nodes are cordoned while the instances are placed, so all of them land on LOST.
placed_on_the_node() {
    up 3 && cordon hollow-1 true && cordon hollow-3 true || return 1
    local i
    for i in "${INSTANCES[@]}"; do
        echo "{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"$i\"},\"spec\":{\"flavor\":\"m1.tiny\",\"image\":\"demo-disk\",\"networks\":[{\"network\":\"demo\"}]}}"
    done | ctl apply -f - &&
        ctl wait "${INSTANCES[@]/#/instance/}" --for=phase=Running --timeout=60s &&
        all_on $LOST && cordon hollow-1 false && cordon hollow-3 false || return 1
    for i in "${INSTANCES[@]}" web-2; do
        echo "$i $(field "$i" metadata.uid) $(field "$i" status.addresses)" >>"$tmp/before"
    done
}

node_not_ready() {
    local pid
    pid=$(pid_of agent-$LOST)
    kill -KILL "$pid" || return 1
    eventually 30 "^$LOST +False " ctl get nodes || return 1
    # The margin has not passed: nothing has moved yet, and a few seconds later still nothing.
    all_on $LOST || return 1
    sleep 4
    all_on $LOST || return 1
    ctl describe node $LOST | grep -E '^  Ready +False +NodeLeaseExpired ' &&
        ctl events | grep -E "Warning +NodeNotReady +node/$LOST +the node's lease expired"
}

running_elsewhere() {
    local i end=$((SECONDS + 60)) node
    for i in "${INSTANCES[@]}"; do
        until_ok $((end - SECONDS)) eval "[ \"\$(field $i spec.nodeName)\" != $LOST ]" || return 1
    done
    ctl wait "${INSTANCES[@]/#/instance/}" --for=phase=Running --timeout=60s || return 1
    for i in "${INSTANCES[@]}"; do
        node=$(field "$i" spec.nodeName)
        case $node in hollow-1 | hollow-3) ;; *) echo "$i is on \"$node\""; return 1 ;; esac
        # the same instance (uid, addresses), not a new one
        grep -Fx "$i $(field "$i" metadata.uid) $(field "$i" status.addresses)" "$tmp/before" ||
            return 1
        field "$i" status.attempts | "$py" -c '
import json, sys
a = json.load(sys.stdin)
assert [(x["nodeName"], x["reason"]) for x in a] == [(sys.argv[1], "NodeLost")], a' $LOST ||
            return 1
        ctl events --for "instance/$i" |
            grep -E "Warning +Rescheduled +instance/$i +node $LOST stopped renewing its lease" ||
            return 1
    done
    ctl get instances -o wide
}

pinned_waits() {
    # web-2 may only run in az-2, the lost node's zone: given back, Pending with the reason.
    ctl get instance web-2 | grep -E '^web-2 +Pending +<none> ' &&
        ctl describe instance web-2 |
        grep -E '^  Scheduled +False +Unschedulable +0/3 nodes available: 2 in another availability zone, 1 not ready'
}

ledgers_follow() {
    # shellcheck disable=SC2119 # no extra arguments for ledger.py
    ledgers_check >"$tmp/ledger.txt"
    local r=$?
    cat "$tmp/ledger.txt"
    [ $r = 0 ] && grep -E "^$LOST +ledger: +0 instances" "$tmp/ledger.txt"
}

check placed_on_the_node placed_on_the_node
check node_not_ready node_not_ready
check running_elsewhere running_elsewhere
check pinned_waits pinned_waits
check ledgers_follow ledgers_follow
e2e_finish
