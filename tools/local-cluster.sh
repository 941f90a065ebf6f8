#!/usr/bin/env bash
# A kind-like local Stratus cluster: etcd, the apiserver, the scheduler and node agents (hollow
# nodes on libvirt's test driver), all on loopback, with every file under _local/ in the
# checkout. `up` is safe to run twice; `down` stops everything it started and removes _local/
# and the client config it wrote. See docs/local-cluster.md.
#
#   tools/local-cluster.sh up|down|status
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
state=${STRATUS_STATE:-$top/_local} # the e2e tests point this at a temporary folder
bin=${STRATUS_BIN:-$top/build/bin}
nodes=${STRATUS_NODES:-3}
# Extra flags for every node agent and for the scheduler (the e2e tests shorten leases with them).
read -r -a agent_flags <<<"${STRATUS_AGENT_FLAGS:-}"
read -r -a scheduler_flags <<<"${STRATUS_SCHEDULER_FLAGS:-}"
config_dir=${HOME:-/root}/.stratus
config=$config_dir/config
marker='"writtenBy":"stratus make up"'

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port what pidfile
    local port=$1 what=$2 pidfile=$3
    for _ in $(seq 1 200); do
        if ! alive "$pidfile"; then
            die "$what exited during start-up; see $state/logs/"
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    die "$what did not listen on port $port; see $state/logs/"
}

# Running, not merely existing: a killed process stays a zombie until someone reaps it.
pid_alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# shellcheck source=tools/proc.sh
. "$top/tools/proc.sh"
# The process a pid file names, still that one (the start time beside it: tools/proc.sh).
alive() {
    [ -f "$1" ] && pid_alive "$(cat "$1")" &&
        { [ ! -f "$1.start" ] || [ "$(proc_start "$(cat "$1")")" = "$(cat "$1.start")" ]; }
}

start() { # name pidfile logfile command...
    local name=$1 pidfile=$2 log=$3
    shift 3
    if alive "$pidfile"; then
        return 0
    fi
    setsid "$@" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    proc_start $! >"$pidfile.start" || rm -f "$pidfile.start"
}

stop_pid() { # pidfile
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if alive "$pidfile"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            alive "$pidfile" || break
            sleep 0.05
        done
        alive "$pidfile" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile" "$pidfile.start"
}

cmd_up() {
    [ -x "$bin/stratus-apiserver" ] || die "build first: make build (no $bin/stratus-apiserver)"
    mkdir -p "$state"/{etcd,logs,run,nodes}
    if [ ! -f "$state/ports" ]; then
        printf 'ETCD=%s\nPEER=%s\nAPI=%s\n' "$(free_port)" "$(free_port)" "$(free_port)" >"$state/ports"
    fi
    # shellcheck disable=SC1091
    . "$state/ports"
    local etcd_url=http://127.0.0.1:$ETCD peer_url=http://127.0.0.1:$PEER server=127.0.0.1:$API

    start etcd "$state/run/etcd.pid" "$state/logs/etcd.log" \
        etcd --name local --data-dir "$state/etcd" --listen-client-urls "$etcd_url" \
        --advertise-client-urls "$etcd_url" --listen-peer-urls "$peer_url" \
        --initial-advertise-peer-urls "$peer_url" --initial-cluster "local=$peer_url" \
        --log-level warn
    wait_port "$ETCD" etcd "$state/run/etcd.pid"

    start apiserver "$state/run/apiserver.pid" "$state/logs/apiserver.log" \
        "$bin/stratus-apiserver" --listen "$server" --etcd "$etcd_url"
    wait_port "$API" stratus-apiserver "$state/run/apiserver.pid"

    start scheduler "$state/run/scheduler.pid" "$state/logs/scheduler.log" \
        "$bin/stratus-scheduler" --server "$server" "${scheduler_flags[@]}"

    if [ -x "$bin/stratus-node-agent" ]; then
        local zones=(az-1 az-2 az-3) i
        # Disk: 100 GiB each, what libvirt's test driver holds in a pool whatever node.xml says
        # (PLATFORM.md). Advertising more (200 x i before) let the ledger place more disk on a
        # node than its pool takes, and builds failed "Not enough free space in pool".
        for i in $(seq 1 "$nodes"); do
            local name=hollow-$i zone=${zones[$(((i - 1) % 3))]}
            start "agent-$name" "$state/run/agent-$name.pid" "$state/logs/agent-$name.log" \
                "$bin/stratus-node-agent" --server "$server" --node-name "$name" \
                --backend test --zone "$zone" --vcpus $((8 * i)) --memory-mib $((16384 * i)) \
                --disk-gib 100 --state-dir "$state/nodes/$name" "${agent_flags[@]}"
        done
    fi

    if real_node_possible; then
        real_node_up "$server"
    fi

    mkdir -p "$config_dir"
    if [ ! -f "$config" ] || grep -q "$marker" "$config"; then
        printf '{"server":"%s",%s}\n' "$server" "$marker" >"$config"
    else
        say "note: $config exists and was not written by make up; use --server $server"
    fi

    demo_apply "$server"
    say ""
    say "Stratus is up: apiserver $server, etcd $etcd_url, state and logs in ${state#"$top"/}/"
    say ""
    "$bin/stratusctl" --server "$server" get nodes || true
    say ""
    "$bin/stratusctl" --server "$server" get instances -o wide || true
    if [ -f "$state/run/agent-real-1.pid" ]; then
        say ""
        say "The real guest's serial console (stratusctl console instance/guest-1):"
        "$bin/stratusctl" --server "$server" console instance/guest-1 | grep -E 'STRATUS-GUEST-OK' || true
    fi
    cat <<EOF

Try next (stratusctl finds the cluster through ~/.stratus/config):
  export PATH=\$PWD/build/bin:\$PATH
  stratusctl get instances -o wide          # where everything runs, with addresses
  stratusctl describe instance web-1        # conditions, the build timeline, events
  stratusctl apply -f manifests/            # the example objects of every kind
  stratusctl get instances -w               # watch changes as they happen
  make down                                 # stop everything and remove _local/
EOF
}

# ---- the demo: images that exist on this machine, with their real sha256

demo_apply() { # server
    local server=$1 demo=$state/demo
    local ctl=("$bin/stratusctl" --server "$server")
    mkdir -p "$demo" "$state/images"
    if [ ! -f "$state/images/demo.qcow2" ]; then
        qemu-img create -q -f qcow2 "$state/images/demo.qcow2" 64M
    fi
    local sum
    sum=$(sha256sum "$state/images/demo.qcow2" | cut -d' ' -f1)
    cat >"$demo/10-base.json" <<EOF
{"apiVersion":"stratus/v1","kind":"List","items":[
 {"apiVersion":"stratus/v1","kind":"Image","metadata":{"name":"demo-disk"},
  "spec":{"source":{"url":"file://$state/images/demo.qcow2","sha256":"$sum","format":"qcow2"}}},
 {"apiVersion":"stratus/v1","kind":"Network","metadata":{"name":"demo"},
  "spec":{"cidr":"10.99.0.0/24"}}]}
EOF
    local items="" i
    for i in 1 2 3; do
        items="$items${items:+,}{\"apiVersion\":\"stratus/v1\",\"kind\":\"Instance\",\"metadata\":{\"name\":\"web-$i\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"flavor\":\"m1.tiny\",\"image\":\"demo-disk\",\"networks\":[{\"network\":\"demo\"}],\"availabilityZone\":\"az-$i\"}}"
    done
    printf '{"apiVersion":"stratus/v1","kind":"List","items":[%s]}\n' "$items" >"$demo/20-instances.json"
    "${ctl[@]}" apply -f "$top/manifests/flavors.json" -f "$demo/10-base.json" -f "$demo/20-instances.json"
    local waits=(instance/web-1 instance/web-2 instance/web-3)
    if [ -f "$state/run/agent-real-1.pid" ] && [ -f "$state/guest/vmlinuz" ]; then
        local k i2
        k=$(sha256sum "$state/guest/vmlinuz" | cut -d' ' -f1)
        i2=$(sha256sum "$state/guest/initrd.img" | cut -d' ' -f1)
        cat >"$demo/30-guest.json" <<EOF
{"apiVersion":"stratus/v1","kind":"List","items":[
 {"apiVersion":"stratus/v1","kind":"Image","metadata":{"name":"stratus-guest"},
  "spec":{"kernel":{"url":"file://$state/guest/vmlinuz","sha256":"$k"},
          "initrd":{"url":"file://$state/guest/initrd.img","sha256":"$i2"},
          "cmdline":"console=ttyS0","properties":{"architecture":"x86_64"}}},
 {"apiVersion":"stratus/v1","kind":"Instance","metadata":{"name":"guest-1"},
  "spec":{"flavor":"m1.tiny","image":"stratus-guest","networks":[{"network":"demo"}],
          "availabilityZone":"az-real"}}]}
EOF
        "${ctl[@]}" apply -f "$demo/30-guest.json"
        waits+=(instance/guest-1)
    fi
    local w
    for w in "${waits[@]}"; do
        "${ctl[@]}" wait "$w" --for=phase=Running --timeout=180s ||
            say "warning: $w is not Running yet (stratusctl describe $w)"
    done
    if [ -f "$demo/30-guest.json" ]; then
        local _
        for _ in $(seq 1 120); do
            "${ctl[@]}" console instance/guest-1 2>/dev/null | grep -q STRATUS-GUEST-OK && break
            sleep 1
        done
    fi
}

# ---- the real node: libvirtd + qemu (TCG), when this host can run them

real_node_possible() {
    [ "${STRATUS_REAL_NODE:-1}" = 1 ] && [ "$(id -u)" = 0 ] && [ -x /usr/sbin/libvirtd ] &&
        [ -x /usr/bin/qemu-system-x86_64 ] && command -v iptables >/dev/null
}

# The host's libvirt daemon NAME is the one its default pid file names (a test may run a private
# libvirtd with a pid file of its own, which does not serve qemu:///system). Prints its pid.
system_daemon() { # virtlogd|libvirtd
    local pid
    pid=$(cat "/run/$1.pid" 2>/dev/null) && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && echo "$pid"
}

# Starts a libvirt daemon unless one runs; the pid of one it started goes to run/started-NAME,
# so `down` stops that process and no other.
daemon_up() { # virtlogd|libvirtd
    local name=$1 pid _
    if system_daemon "$name" >/dev/null; then
        return 0
    fi
    "$name" -d || return 0
    for _ in $(seq 1 50); do
        if pid=$(system_daemon "$name"); then
            echo "$pid" >"$state/run/started-$name"
            return 0
        fi
        sleep 0.1
    done
}

daemon_down() { # virtlogd|libvirtd
    local name=$1 pid _
    [ -f "$state/run/started-$name" ] || return 0
    pid=$(cat "$state/run/started-$name")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            pid_alive "$pid" || break
            sleep 0.05
        done
        # libvirtd 9.0 can hang in its shutdown
        if pid_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
}

real_node_up() { # server
    "$top/tools/libvirt-host-setup.sh"
    daemon_up virtlogd
    daemon_up libvirtd
    local _
    for _ in $(seq 1 100); do
        virsh -q -c qemu:///system version >/dev/null 2>&1 && break
        sleep 0.1
    done
    # What was on libvirt before this cluster: `down` leaves it alone.
    if [ ! -f "$state/run/libvirt-networks-before" ]; then
        virsh -q -c qemu:///system net-list --all --name >"$state/run/libvirt-networks-before" \
            2>/dev/null || true
    fi
    echo stratus-default-demo >"$state/run/networks-demo"
    if [ ! -f "$state/guest/vmlinuz" ]; then
        "$top/tools/build-guest-image.sh" "$state/guest" >>"$state/logs/guest-image.log" 2>&1 || {
            say "note: could not build the guest image (_local/logs/guest-image.log): no real node"
            return 0
        }
    fi
    touch "$state/run/real-node"
    # Its own storage pool, where the agent has the flag: other agents on this libvirtd (a test,
    # another cluster) keep theirs.
    local pool=()
    if "$bin/stratus-node-agent" --help 2>/dev/null | grep -q -- '--pool '; then
        pool=(--pool "stratus-local-$(printf %s "$state" | sha256sum | cut -c1-8)")
    fi
    start agent-real-1 "$state/run/agent-real-1.pid" "$state/logs/agent-real-1.log" \
        "$bin/stratus-node-agent" --server "$1" --node-name real-1 --backend qemu:///system \
        --zone az-real --state-dir "$state/nodes/real-1" "${pool[@]}" "${agent_flags[@]}"
}

real_node_down() {
    # The agent removed its domains and disks when the instances were deleted; what is left (a
    # crash, instances not deleted) goes too — only what this cluster made: domains whose disks
    # and console live under its state folder, the libvirt networks of its Network objects that
    # were not there before it, and the storage pool if it points into the state folder.
    local d n p
    for d in $(virsh -q -c qemu:///system list --all --name 2>/dev/null); do
        virsh -q -c qemu:///system dumpxml "$d" 2>/dev/null | grep -q "'$state/" || continue
        virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
        virsh -q -c qemu:///system undefine "$d" >/dev/null 2>&1 || true
    done
    # this cluster's networks: its Network objects as the apiserver listed them at `down`, or,
    # when it could not, the demo's
    local ours=$state/run/networks
    [ -f "$ours" ] || ours=$state/run/networks-demo
    for n in $(virsh -q -c qemu:///system net-list --all --name 2>/dev/null | grep '^stratus-' || true); do
        grep -qx "$n" "$ours" 2>/dev/null || continue
        grep -qx "$n" "$state/run/libvirt-networks-before" 2>/dev/null && continue
        virsh -q -c qemu:///system net-destroy "$n" >/dev/null 2>&1 || true
        virsh -q -c qemu:///system net-undefine "$n" >/dev/null 2>&1 || true
    done
    for p in $(virsh -q -c qemu:///system pool-list --all --name 2>/dev/null | grep '^stratus' || true); do
        virsh -q -c qemu:///system pool-dumpxml "$p" 2>/dev/null | grep -q "<path>$state/" ||
            continue
        virsh -q -c qemu:///system pool-destroy "$p" >/dev/null 2>&1 || true
        virsh -q -c qemu:///system pool-undefine "$p" >/dev/null 2>&1 || true
    done
    daemon_down libvirtd
    daemon_down virtlogd
}

cmd_down() {
    local pidfile
    if [ -f "$state/ports" ] && [ -f "$state/run/apiserver.pid" ] && alive "$state/run/apiserver.pid"; then
        # delete the instances first, so the agents clean up their domains and disks
        # shellcheck disable=SC1091
        . "$state/ports"
        local f
        for f in "$state"/demo/20-instances.json "$state"/demo/30-guest.json; do
            [ -f "$f" ] && "$bin/stratusctl" --server "127.0.0.1:$API" delete -f "$f" \
                --ignore-not-found --wait=90s >/dev/null 2>&1 || true
        done
        # the libvirt networks a real node made for this cluster's Network objects
        if [ -f "$state/run/real-node" ]; then
            "$bin/stratusctl" --server "127.0.0.1:$API" get networks -A -o json 2>/dev/null |
                /usr/bin/python3 -c 'import json,sys
for n in json.load(sys.stdin)["items"]:
    print("stratus-%s-%s" % (n["metadata"].get("namespace", "default"), n["metadata"]["name"]))' \
                    >"$state/run/networks" 2>/dev/null || rm -f "$state/run/networks"
        fi
    fi
    for pidfile in "$state"/run/agent-*.pid; do
        [ -e "$pidfile" ] && stop_pid "$pidfile"
    done
    stop_pid "$state/run/scheduler.pid"
    stop_pid "$state/run/apiserver.pid"
    stop_pid "$state/run/etcd.pid"
    # Only a cluster that started a real node touches libvirt: another user of this host's
    # libvirt (a test, another cluster) keeps what is theirs.
    if [ -f "$state/run/real-node" ]; then
        real_node_down
    fi
    if [ -f "$config" ] && grep -q "$marker" "$config"; then
        rm -f "$config"
        rmdir "$config_dir" 2>/dev/null || true
    fi
    rm -rf "$state"
    say "Stratus is down: processes stopped, ${state#"$top"/}/ removed"
}

cmd_status() {
    local pidfile
    for pidfile in "$state"/run/*.pid; do
        [ -e "$pidfile" ] || { say "not running"; return 0; }
        if alive "$pidfile"; then
            say "$(basename "$pidfile" .pid): running (pid $(cat "$pidfile"))"
        else
            say "$(basename "$pidfile" .pid): dead (see _local/logs/)"
        fi
    done
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
