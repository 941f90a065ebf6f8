#!/usr/bin/env bash
# End-to-end on a real node: `make up`'s cluster with real-1 (libvirtd + qemu, TCG), as root.
# The demo's guest-1 (a Debian kernel and busybox initramfs, tools/build-guest-image.sh) boots and
# its serial console shows the marker with the address, MAC and root disk Stratus gave it. Then
# the real node's agent is SIGKILLed while it builds guest-2 — libvirt domains outlive the agent
# here — and started again: it adopts the domain (one domain, same UUID, the guest not booted
# twice). Deleting guest-2 removes its domain, disks and address. `down` removes what this run
# made and nothing else: a decoy network and domain defined beforehand survive it.
#
# Exits 77 (CTest: Skipped) when not root, or libvirtd, qemu or iptables is missing, or the guest
# cannot be built.
#
#   e2e/real-guest.sh BUILD_DIR
set -uo pipefail

skip() {
    echo "skip: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (libvirtd, qemu)"
for f in /usr/sbin/libvirtd /usr/bin/qemu-system-x86_64 /usr/sbin/iptables /usr/bin/virsh; do
    [ -x "$f" ] || skip "$f is not installed (make deps)"
done

export STRATUS_REAL_NODE=1
# real-1 leaves other nodes' domains alone (their metadata names their node), but an agent built
# before domains named their node made domains that look like real-1's orphans: it must not
# remove those during the test. The busybox guest ignores ACPI power-off, so a delete waits 5 s,
# not 30, before destroying it.
export STRATUS_AGENT_FLAGS="--orphan-grace 1h --shutdown-timeout 5s"
# shellcheck source=e2e/lib.sh
. "$(dirname "$0")/lib.sh" "${1:-}"
chmod 755 "$tmp" # qemu runs as libvirt-qemu and must reach the disks and the kernel

virsh() { command virsh -q -c qemu:///system "$@"; }

# libvirtd and virtlogd: the test starts them when they are not running and stops the ones it
# started (by pid) after the cluster is down — so `down` is seen to leave a daemon it did not
# start alone. Before that, e2e/libvirt-sweep.sh removes the decoys below and whatever of the
# test `down` could not (libvirtd stopped under the test by another user of the host).
decoy=stratus-e2e-decoy-$$
# (the daemons' pids are read when the teardown runs: libvirtd first, then virtlogd)
e2e_on_teardown "'$top/e2e/libvirt-sweep.sh' '$STRATUS_STATE' '$decoy' '$tmp/networks-before'" \
    "\$(cat '$tmp/started-libvirtd' '$tmp/started-virtlogd' 2>/dev/null)"
"$top/tools/libvirt-host-setup.sh" || skip "tools/libvirt-host-setup.sh failed"
# The host's daemon is the one its default pid file names (a test may run a private libvirtd
# with a pid file of its own: that one does not serve qemu:///system).
system_daemon() { # name → its pid, if it runs
    local pid
    pid=$(cat "/run/$1.pid" 2>/dev/null) && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"
}
for d in virtlogd libvirtd; do
    system_daemon $d >/dev/null && continue
    $d -d || skip "$d did not start"
    for _ in $(seq 1 50); do
        pid=$(system_daemon $d) && break
        sleep 0.1
    done
    [ -n "$pid" ] || skip "$d did not start"
    echo "$pid" >"$tmp/started-$d"
done
for _ in $(seq 1 100); do
    virsh uri >/dev/null 2>&1 && break
    sleep 0.1
done

# The guest, built once per build folder (as test-agent-qemu does) and copied into the state
# folder, where tools/local-cluster.sh looks for it.
guest=$build/guest
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initrd.img" ]; then
    "$top/tools/build-guest-image.sh" "$guest" >/dev/null 2>&1 ||
        skip "tools/build-guest-image.sh failed (apt-get download needs package lists)"
fi
mkdir -p "$STRATUS_STATE/guest"
cp "$guest/vmlinuz" "$guest/initrd.img" "$STRATUS_STATE/guest/"

domains_of() { # uid → names of the libvirt domains carrying it
    virsh list --all --name | grep -F "$1"
}

status_uuid() { # instance → domain UUID from its DomainRunning condition
    ctl describe instance "$1" |
        sed -n 's/^  DomainRunning  *True  *Running  *domain \([0-9a-f-]*\) is running.*/\1/p'
}

# A libvirt network and a domain that belong to someone else (the domain even carries Stratus
# metadata): `down` must leave both.
up_with_decoys() {
    cat >"$tmp/decoy-net.xml" <<EOF
<network><name>$decoy</name><bridge name='stdecoy$(($$ % 100000))' stp='off'/></network>
EOF
    cat >"$tmp/decoy-dom.xml" <<EOF
<domain type='qemu'><name>$decoy</name><memory unit='MiB'>64</memory>
 <metadata><stratus:instance xmlns:stratus='https://stratus.io/xmlns/instance/1'
   uid='00000000-0000-4000-8000-0000000$(printf %05d $(($$ % 100000)))' generation='1'
   namespace='other' name='decoy' node='other-node'/></metadata>
 <os><type arch='x86_64'>hvm</type></os></domain>
EOF
    virsh net-define "$tmp/decoy-net.xml" && virsh define "$tmp/decoy-dom.xml" || return 1
    up 3 >"$tmp/up.log" 2>&1 || { tail -20 "$tmp/up.log"; return 1; }
}

guest_running() {
    ctl describe instance guest-1 | sed -n '/^Timeline/,/^Events/p' # how long each step took
    ctl get nodes | grep -E '^real-1 +True +az-real ' &&
        ctl get instance guest-1 -o wide | grep -E '^guest-1 +Running +real-1 '
}

console_shows_marker() {
    local ip mac want
    ip=$(field guest-1 status.addresses.0.ip)
    mac=$(field guest-1 status.addresses.0.mac)
    [ -n "$ip" ] && [ -n "$mac" ] || return 1
    want="STRATUS-GUEST-OK hostname=guest-1 ip=$ip mac=$mac disk=vda sectors=2097152"
    echo "want: $want"
    eventually 120 "^$want\$" ctl console instance/guest-1
}

# Where the agent supports it (STRATUS_AGENT_PAUSE_AFTER, docs/agent.md), it is restarted to stop
# right after defining guest-2's domain — defined, not started — and killed there; otherwise it
# is killed as soon as the domain shows on libvirt, wherever its build is by then.
agent_killed_while_building() {
    local uid pid end=$((SECONDS + 120)) paused=$STRATUS_STATE/nodes/real-1/debug-paused
    local pause=
    if grep -q STRATUS_AGENT_PAUSE_AFTER "$build/bin/stratus-node-agent"; then
        pause=Define
        pid=$(pid_of agent-real-1)
        kill -TERM "$pid" && until_ok 30 eval "! kill -0 $pid 2>/dev/null" &&
            STRATUS_AGENT_PAUSE_AFTER=$pause up 3 >/dev/null 2>&1 || return 1
    fi
    ctl apply -f - <<EOF || return 1
{"apiVersion":"stratus/v1","kind":"Instance","metadata":{"name":"guest-2"},
 "spec":{"flavor":"m1.tiny","image":"stratus-guest","networks":[{"network":"demo"}],
         "availabilityZone":"az-real"}}
EOF
    uid=$(field guest-2 metadata.uid)
    echo "$uid" >"$tmp/guest-2.uid"
    if [ -n "$pause" ]; then
        eventually 120 "^$pause default/guest-2\$" cat "$paused" || return 1
    fi
    until domains_of "$uid" >/dev/null; do
        [ $SECONDS -lt $end ] || { echo "guest-2's domain never appeared"; return 1; }
        sleep 0.05
    done
    pid=$(pid_of agent-real-1)
    kill -KILL "$pid" || return 1
    echo "killed the agent ${pause:+paused after $pause }with guest-2:"
    ctl get instance guest-2 -o wide
    # The domain outlives the agent.
    [ "$(domains_of "$uid" | wc -l)" = 1 ] || return 1
    virsh domstate "$(domains_of "$uid")"
    virsh domuuid "$(domains_of "$uid")" | tr -d ' \n' >"$tmp/guest-2.domuuid"
    rm -f "$paused"
    up 3 >/dev/null 2>&1 && ctl wait instance/guest-2 --for=phase=Running --timeout=180s
}

adopted_not_duplicated() {
    local uid dom log
    uid=$(cat "$tmp/guest-2.uid")
    domains_of "$uid"
    [ "$(domains_of "$uid" | wc -l)" = 1 ] || return 1
    dom=$(domains_of "$uid")
    # the same domain as at the kill, and the one the status names
    [ "$(virsh domuuid "$dom" | tr -d ' \n')" = "$(cat "$tmp/guest-2.domuuid")" ] &&
        [ "$(status_uuid guest-2)" = "$(cat "$tmp/guest-2.domuuid")" ] || return 1
    ctl get instance guest-2 -o wide | grep -E '^guest-2 +Running +real-1 .* 0 +True$' || return 1
    # booted once: one kernel banner on its serial console, and the marker
    log=$(virsh dumpxml "$dom" | sed -n "s/.*<log file='\([^']*\)'.*/\1/p" | head -1)
    eventually 120 "STRATUS-GUEST-OK hostname=guest-2 ip=$(field guest-2 status.addresses.0.ip) " \
        cat "$log" || return 1
    [ "$(grep -c 'Linux version' "$log")" = 1 ]
}

delete_removes_everything() {
    local uid ip
    uid=$(cat "$tmp/guest-2.uid")
    ip=$(field guest-2 status.addresses.0.ip)
    ctl delete instance guest-2 --wait=120s || return 1
    domains_of "$uid" && return 1
    find "$STRATUS_STATE/nodes/real-1" -name "*$uid*" | grep . && return 1
    local p
    for p in $(virsh pool-list --name); do
        virsh vol-list "$p" | grep -F "$uid" && return 1
    done
    etcd_get_prefix /stratus/v1/ipam/ | "$py" -c '
import base64, json, sys
for kv in json.load(sys.stdin).get("kvs", []):
    held = json.loads(base64.b64decode(kv["value"]))["allocations"]
    assert sys.argv[1] not in held and sys.argv[2] not in held.values(), held' "$ip" "$uid"
}

down_removes_only_its_own() {
    local d
    "$cluster" down || return 1
    [ ! -e "$STRATUS_STATE" ] && ! pgrep -f "$STRATUS_STATE" || return 1
    for d in $(virsh list --all --name); do
        virsh dumpxml "$d" | grep -F "'$STRATUS_STATE/" && return 1
    done
    if grep -qx stratus-default-demo "$tmp/networks-before"; then
        echo "(stratus-default-demo existed before the test)"
    else
        virsh net-list --all --name | grep -x stratus-default-demo && return 1
    fi
    for d in $(virsh pool-list --all --name); do
        virsh pool-dumpxml "$d" | grep -F "$STRATUS_STATE" && return 1
    done
    # someone else's: still there, the daemons included
    virsh net-list --all --name | grep -x "$decoy" || { echo "decoy network gone"; return 1; }
    virsh list --all --name | grep -x "$decoy" || { echo "decoy domain gone"; return 1; }
    { system_daemon libvirtd && system_daemon virtlogd; } ||
        { echo "libvirtd or virtlogd stopped"; return 1; }
}

virsh net-list --all --name >"$tmp/networks-before"
check up_with_decoys up_with_decoys
check guest_running guest_running
check console_shows_marker console_shows_marker
check agent_killed_while_building agent_killed_while_building
check adopted_not_duplicated adopted_not_duplicated
check delete_removes_everything delete_removes_everything
check down_removes_only_its_own down_removes_only_its_own
e2e_finish
