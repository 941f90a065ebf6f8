#!/usr/bin/env bash
# e2e/real-guest.sh's last word on libvirt, run by its teardown after `down`: whatever of the
# test is still there goes, even when libvirtd died under the test (another user of the host
# stopped it): domains whose disks or console live under STATE (and their qemu processes), the
# decoys, the demo network unless it was there before, storage pools pointing into STATE. When
# libvirtd does not answer, it is started for the sweep and stopped again.
#
# Last, it stops the daemons whose pids follow (the ones the test started): SIGTERM, and SIGKILL
# if one is still there after 5 s (libvirtd 9.0 can hang in its shutdown).
#
#   e2e/libvirt-sweep.sh STATE DECOY NETWORKS_BEFORE_FILE [PID...]
set -uo pipefail

state=$1 decoy=$2 before=$3
shift 3
virsh() { command virsh -q -c qemu:///system "$@"; }

# The host's daemon is the one its default pid file names (a test may run a private libvirtd
# with a pid file of its own: that one does not serve qemu:///system).
system_daemon() { # name → its pid, if it runs
    local pid
    pid=$(cat "/run/$1.pid" 2>/dev/null) && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"
}

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

started=("$@")
if ! virsh uri >/dev/null 2>&1; then
    for d in virtlogd libvirtd; do
        system_daemon $d >/dev/null && continue
        $d -d || continue
        for _ in $(seq 1 50); do
            pid=$(system_daemon $d) && { started=("$pid" "${started[@]}"); break; }
            sleep 0.1
        done
    done
    for _ in $(seq 1 100); do
        virsh uri >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

for d in $(virsh list --all --name 2>/dev/null); do
    virsh dumpxml "$d" 2>/dev/null | grep -qF "'$state/" || continue
    virsh destroy "$d" >/dev/null 2>&1
    virsh undefine "$d" >/dev/null 2>&1
done
virsh undefine "$decoy" >/dev/null 2>&1
virsh net-undefine "$decoy" >/dev/null 2>&1
if ! grep -qx stratus-default-demo "$before" 2>/dev/null &&
    virsh net-list --all --name 2>/dev/null | grep -qx stratus-default-demo; then
    virsh net-destroy stratus-default-demo >/dev/null 2>&1
    virsh net-undefine stratus-default-demo >/dev/null 2>&1
fi
for p in $(virsh pool-list --all --name 2>/dev/null); do
    virsh pool-dumpxml "$p" 2>/dev/null | grep -qF "<path>$state/" || continue
    virsh pool-destroy "$p" >/dev/null 2>&1
    virsh pool-undefine "$p" >/dev/null 2>&1
done
# qemu processes of the test that no libvirtd knows about any more
for pid in $(pgrep -f "qemu-system.*$state/"); do
    kill -KILL "$pid" 2>/dev/null
done

for pid in "${started[@]}"; do
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
done
exit 0
