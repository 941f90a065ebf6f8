#!/usr/bin/env bash
# End-to-end: a node agent SIGKILLed in the middle of builds, then started again, converges
# without duplicating anything.
#
# The kill lands mid-build for certain: the instances' image is served by e2e/gated_http.py,
# which holds every download half-way until the test releases it, so the builds are inside
# their block-devices step (phase Building, a partial download in the image cache) when the
# agent dies. A hollow node's domains live inside the agent process (libvirt's test driver) and
# vanish with it, so "no duplicate domain" is checked on what outlives the process: each
# instance ends Running with one domain UUID that stays put (no rebuild loop), the domain that
# was running before the kill is rebuilt exactly once (one DomainMissing event), the image is
# downloaded once more (not once per instance) with no partial file left, the agent keeps one
# folder per instance, and every instance is claimed once in the allocation ledgers. The real
# node's variant, where domains do outlive the agent, is in e2e/real-guest.sh.
#
#   e2e/agent-restart.sh BUILD_DIR
set -uo pipefail

# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/lib.sh" "${1:-}"

NODE=hollow-1
INSTANCES=(k-1 k-2 k-3)
images=$STRATUS_STATE/nodes/$NODE/images

uuid_of() { # instance → the domain UUID in its DomainRunning condition
    ctl get instance "$1" -o json | "$py" -c '
import json, re, sys
st = json.load(sys.stdin).get("status", {})
c = [c for c in st.get("conditions", []) if c["type"] == "DomainRunning" and c["status"] == "True"]
m = re.fullmatch(r"domain (\S+) is running", c[0].get("message", "")) if c else None
print(m.group(1) if m else "none")'
}

builds_in_flight() {
    local i
    for i in "${INSTANCES[@]}"; do
        ctl get instance "$i" | grep -E "^$i +Building +$NODE " || return 1
        ctl describe instance "$i" | grep -E '^  BlockDevicesReady +True' && return 1
    done
    grep -c '^started' "$tmp/http.log" | grep -qx 1 && compgen -G "$images/*.part*" >/dev/null
}

killed_mid_build() {
    up 3 || return 1
    head -c 4194304 /dev/urandom >"$tmp/gated.img"
    "$py" "$top/e2e/gated_http.py" "$tmp/gated.img" "$tmp/http.port" "$tmp/release" \
        "$tmp/http.log" </dev/null >/dev/null 2>&1 &
    e2e_track $!
    until_ok 10 test -s "$tmp/http.port" || return 1
    local sum items="" i
    sum=$(sha256sum "$tmp/gated.img" | cut -d' ' -f1)
    for i in "${INSTANCES[@]}"; do
        items="$items,{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"$i\"},\"spec\":{\"flavor\":\"m1.tiny\",\"image\":\"gated-disk\",\"availabilityZone\":\"az-1\",\"networks\":[{\"network\":\"demo\"}]}}"
    done
    ctl apply -f - <<EOF || return 1
{"apiVersion":"stratus/v1","kind":"List","items":[
 {"apiVersion":"stratus/v1","kind":"Image","metadata":{"name":"gated-disk"},
  "spec":{"source":{"url":"http://127.0.0.1:$(cat "$tmp/http.port")/gated.img",
          "sha256":"$sum","format":"raw"}}}$items]}
EOF
    until_ok 60 builds_in_flight || { builds_in_flight; return 1; }
    uuid_of web-1 >"$tmp/web-1.before"
    local pid
    pid=$(pid_of agent-$NODE)
    kill -KILL "$pid" || return 1
    until_ok 10 eval "! kill -0 $pid 2>/dev/null || grep -q '^State:.*Z' /proc/$pid/status" || return 1
    # Dead, its builds cut short: still bound here, nothing given back.
    for i in "${INSTANCES[@]}"; do
        ctl get instance "$i" | grep -E "^$i +Building +$NODE " || return 1
    done
}

restarted_converges() {
    touch "$tmp/release"
    up 3 >/dev/null || return 1 # starts what is not running: the agent
    ctl wait "${INSTANCES[@]/#/instance/}" instance/web-1 --for=phase=Running --timeout=90s ||
        return 1
    local i
    for i in "${INSTANCES[@]}" web-1; do
        ctl get instance "$i" -o wide | grep -E "^$i +Running +$NODE .* 0 +True$" || return 1
    done
}

no_duplicates() {
    local i u
    : >"$tmp/uuids"
    for i in "${INSTANCES[@]}" web-1; do
        u=$(uuid_of "$i")
        [ "$u" != none ] || { echo "$i has no running domain"; return 1; }
        echo "$i $u" >>"$tmp/uuids"
    done
    cat "$tmp/uuids"
    # one domain each, none shared
    [ "$(cut -d' ' -f2 "$tmp/uuids" | sort -u | wc -l)" = 4 ] || return 1
    # web-1's domain died with the agent: rebuilt once, under a new UUID
    [ "$(grep '^web-1 ' "$tmp/uuids" | cut -d' ' -f2)" != "$(cat "$tmp/web-1.before")" ] || return 1
    ctl events --for instance/web-1 -o json >"$tmp/ev.json" &&
        "$py" - "$tmp/ev.json" <<'EOF' || return 1
import json, sys
ev = [e["spec"] for e in json.load(open(sys.argv[1]))["items"] if e["spec"]["reason"] == "DomainMissing"]
assert len(ev) == 1 and ev[0]["count"] == 1, ev
EOF
    for i in "${INSTANCES[@]}"; do
        ! ctl events --for "instance/$i" | grep -E 'DomainMissing|Warning' || return 1
    done
    # The image: fetched by the first life (cut short) and once by the second, not per instance;
    # the partial file of the first is gone.
    grep -c '^started' "$tmp/http.log" | grep -qx 2 || { cat "$tmp/http.log"; return 1; }
    compgen -G "$images/*.part*" && return 1
    [ -f "$images/$(sha256sum "$tmp/gated.img" | cut -d' ' -f1)" ] || return 1
    # One folder per instance bound here.
    folders_match $NODE || return 1
    # Settled: the same domains a resync later (the agent resyncs on start and every 30 s;
    # a rebuild would show a new UUID or a second DomainMissing).
    sleep 3
    for i in "${INSTANCES[@]}" web-1; do
        [ "$(uuid_of "$i")" = "$(grep "^$i " "$tmp/uuids" | cut -d' ' -f2)" ] ||
            { echo "$i: domain changed"; return 1; }
    done
    # Claimed once each, on this node.
    ledgers_check --expect 6
}

check killed_mid_build killed_mid_build
check restarted_converges restarted_converges
check no_duplicates no_duplicates
e2e_finish
