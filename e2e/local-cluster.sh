#!/usr/bin/env bash
# End-to-end: the real binaries as `make up` runs them (hollow nodes; the real guest is
# e2e/real-guest.sh), driven with stratusctl as a person would, and watched from Python grpcio.
# State and the client config live in a temporary folder; the cluster is always taken down
# (e2e/lib.sh).
#
#   e2e/local-cluster.sh BUILD_DIR
set -uo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/lib.sh" "${1:-}"

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

# wait prints one line per object met and exits 0, blocks until the change happens, says what
# it last saw when it times out (exit 1), and waits for a deletion; events lists and streams
# what the agent reported, with the object, the reason and the message.
wait_and_events() {
    ctl wait instance/web-1 instance/web-3 --for=condition=Ready --timeout=30s >"$tmp/w1" &&
        printf 'instance/web-1 condition met\ninstance/web-3 condition met\n' | cmp - "$tmp/w1" ||
        return 1
    if ctl wait instance/web-1 --for=phase=Stopped --timeout=1s 2>"$tmp/w2"; then
        echo "wait for a phase that never comes exited 0"
        return 1
    fi
    grep -F 'timed out waiting for phase Stopped on instance/web-1 (phase Running, Ready=True)' \
        "$tmp/w2" || return 1

    ctl wait instance/web-3 --for=phase=Stopped --timeout=60s >"$tmp/w3" 2>&1 &
    local waiter=$!
    sleep 1
    if ! kill -0 $waiter 2>/dev/null; then
        echo "wait returned before web-3 was stopped:"
        cat "$tmp/w3"
        return 1
    fi
    ctl get instance web-3 -o json | sed 's/"powerState": "Running"/"powerState": "Stopped"/' |
        ctl apply -f - || return 1
    wait $waiter && grep -Fx 'instance/web-3 condition met' "$tmp/w3" &&
        ctl get instance web-3 | grep -E '^web-3 +Stopped ' || return 1
    ctl get instance web-3 -o json | sed 's/"powerState": "Stopped"/"powerState": "Running"/' |
        ctl apply -f - && ctl wait instance/web-3 --for=phase=Running --timeout=60s || return 1

    # An image whose sha256 is wrong: the agent says so in an event, which a watching
    # `events -w` prints as it happens.
    head -c 4096 /dev/urandom >"$tmp/bad-sum.img"
    local real
    real=$(sha256sum "$tmp/bad-sum.img" | cut -d' ' -f1)
    ctl events -w --for instance/evt-1 >"$tmp/ev-watch" 2>&1 &
    local watcher=$!
    e2e_track $watcher
    sleep 0.5
    ctl apply -f - <<EOF || return 1
{"apiVersion":"stratus/v1","kind":"List","items":[
 {"apiVersion":"stratus/v1","kind":"Image","metadata":{"name":"bad-sum"},
  "spec":{"source":{"url":"file://$tmp/bad-sum.img","format":"raw",
          "sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}},
 {"apiVersion":"stratus/v1","kind":"Instance","metadata":{"name":"evt-1"},
  "spec":{"flavor":"m1.tiny","image":"bad-sum"}}]}
EOF
    local line="Warning +ImageChecksumMismatch +instance/evt-1 +image \"bad-sum\": sha256 mismatch"
    line="$line for file://$tmp/bad-sum.img: expected 0{64}, got $real"
    eventually 60 "$line" cat "$tmp/ev-watch" || return 1
    kill $watcher
    ctl events | grep -E "$line" || return 1
    ctl get instance evt-1 -o json >"$tmp/evt-1.json" &&
        ctl events --for instance/evt-1 -o json >"$tmp/ev.json" &&
        "$py" - "$tmp/ev.json" "$tmp/evt-1.json" <<'EOF' || return 1
import json, sys
items = json.load(open(sys.argv[1]))["items"]
inst = json.load(open(sys.argv[2]))
ev = [e for e in items if e["spec"]["reason"] == "ImageChecksumMismatch"]
assert len(ev) == 1, items
s = ev[0]["spec"]
assert s["involvedObject"]["uid"] == inst["metadata"]["uid"], s
assert s["source"] == {"component": "stratus-node-agent", "host": inst["spec"]["nodeName"]}, s
assert s["type"] == "Warning" and s["count"] >= 1, s
EOF
    ctl get instance evt-1 | grep -E '^evt-1 +Failed ' || return 1

    ctl delete instance evt-1 && ctl wait instance/evt-1 --for=delete --timeout=60s >"$tmp/w4" &&
        grep -Fx 'instance/evt-1 condition met' "$tmp/w4" && ! ctl get instance evt-1 2>/dev/null
}

# A client in another language sees one instance's whole life through a Watch.
python_watch_sees_the_lifecycle() {
    "$py" "$top/e2e/watch_lifecycle.py" --server "$(server)" --proto-root "$top/api" \
        --out "$tmp/py" --name py-watch
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
        ctl events --for instance/big |
        grep -E 'Warning +FailedScheduling +instance/big +.*insufficient vcpus' &&
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
check wait_and_events wait_and_events
check python_watch_sees_the_lifecycle python_watch_sees_the_lifecycle
check unfit_waits_for_a_node unfit_waits_for_a_node
check apiserver_killed_and_back apiserver_killed_and_back
check delete_removes_it delete_removes_it
check broken_manifest_stores_nothing broken_manifest_stores_nothing
check down_leaves_nothing down_leaves_nothing
e2e_finish
