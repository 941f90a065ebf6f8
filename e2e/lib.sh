# shellcheck shell=bash
# Shared by the e2e scripts (sourced, not run): a local cluster brought up by
# tools/local-cluster.sh with its state and client config in a temporary folder, checks that
# print ok/FAIL, and a teardown that always runs — on a normal end, on SIGINT/SIGTERM, and, through
# a detached watchdog, even when CTest's timeout SIGKILLs the test.
#
#   . "$(dirname "$0")/lib.sh" BUILD_DIR
#
# The caller sets STRATUS_REAL_NODE (default 0: hollow nodes only) and any STRATUS_* variable of
# tools/local-cluster.sh before sourcing. Helpers started in the background are registered with
# e2e_track so the teardown stops them too.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stratus-e2e-XXXXXX")
export STRATUS_STATE=$tmp/state STRATUS_BIN=$build/bin HOME=$tmp/home
export STRATUS_REAL_NODE=${STRATUS_REAL_NODE:-0}
mkdir -p "$HOME"
cluster=$top/tools/local-cluster.sh
# shellcheck disable=SC2034 # used by the scripts that source this
py=/usr/bin/python3 # the Debian python with python3-grpcio (another python3 may come first)
passed=0
failed=0

ctl() { "$build/bin/stratusctl" "$@"; }

# shellcheck source=tools/proc.sh
. "$top/tools/proc.sh"

# Remembers a helper's pid (and when it started) so the teardown (or the watchdog) stops it.
e2e_track() {
    echo "$1 $(proc_start "$1")" >>"$tmp/pids"
    disown "$1" 2>/dev/null # no "Killed" notice from bash when the teardown stops it
}

e2e_stop_tracked() {
    proc_kill_listed "$tmp/pids"
    rm -f "$tmp/pids"
}

# Adds a command (one line of shell) that the teardown runs after the cluster is down.
e2e_on_teardown() { echo "$*" >>"$tmp/teardown.sh"; }

e2e_teardown() {
    trap - EXIT INT TERM
    if [ -f "$tmp/watchdog.pid" ]; then
        kill -KILL "$(cat "$tmp/watchdog.pid")" 2>/dev/null
    fi
    e2e_stop_tracked
    "$cluster" down >/dev/null 2>&1
    [ -f "$tmp/teardown.sh" ] && bash "$tmp/teardown.sh" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap e2e_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# CTest's timeout kills the test with SIGKILL, which no trap sees; the cluster's processes run in
# their own sessions and would outlive it. A watchdog outside the test's process tree waits for
# the test to go and then takes the cluster down.
(
    setsid bash -c '
        echo $$ >"$2/watchdog.pid"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        . "$4" && proc_kill_listed "$2/pids"
        "$3" down >/dev/null 2>&1
        [ -f "$2/teardown.sh" ] && bash "$2/teardown.sh" >/dev/null 2>&1
        rm -rf "$2"' e2e-watchdog $$ "$tmp" "$cluster" "$top/tools/proc.sh" </dev/null >/dev/null 2>&1 &
)
for _ in $(seq 1 50); do
    [ -s "$tmp/watchdog.pid" ] && break
    sleep 0.02
done

# Runs one check: a function or command whose exit status says whether it held. Its output is
# shown when it fails (the last 30 lines, then the last lines of every log of the cluster), or
# always with E2E_VERBOSE=1.
check() { # name command...
    local name=$1 start=$SECONDS
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "ok   $name ($((SECONDS - start)) s)"
        [ -z "${E2E_VERBOSE:-}" ] || sed 's/^/    /' "$tmp/out"
        passed=$((passed + 1))
    else
        echo "FAIL $name ($((SECONDS - start)) s)"
        sed 's/^/    /' "$tmp/out" | tail -30
        local f
        for f in "$STRATUS_STATE"/logs/*.log; do
            [ -s "$f" ] || continue
            echo "    --- $(basename "$f"), last lines"
            tail -8 "$f" | sed 's/^/    /'
        done
        failed=$((failed + 1))
    fi
}

# Polls a command until its output matches an extended regular expression.
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
    echo "never matched /$pattern/ in ${secs}s; last output:"
    "$@" 2>&1 | tail -10
    return 1
}

# Polls a command until it succeeds.
until_ok() { # seconds command...
    local secs=$1
    shift
    local end=$((SECONDS + secs))
    while [ $SECONDS -lt $end ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "never succeeded in ${secs}s: $*"
    "$@" 2>&1 | tail -10
    return 1
}

up() { STRATUS_NODES=${1:-3} "$cluster" up; }

# The cluster's ports (ETCD, PEER, API) as shell variables.
# shellcheck disable=SC1091
ports() { . "$STRATUS_STATE/ports"; }

server() { (ports && echo "127.0.0.1:$API"); }

# Every etcd key under a prefix, read-only: the allocation ledgers are not served by the API, and
# a test may look at what the apiserver wrote.
etcd_get_prefix() { # prefix → JSON (etcdctl -w json: base64 keys and values)
    (ports && ETCDCTL_API=3 etcdctl --endpoints="http://127.0.0.1:$ETCD" get --prefix "$1" -w json)
}

# Compares the allocation and IP ledgers with the instances, flavors and nodes, and with what
# `get nodes` and `describe node` show (e2e/ledger.py; extra arguments such as --expect N go to
# it). Prints one line per node; the files stay in $tmp/ledger/ for a post-mortem.
ledgers_check() {
    local d=$tmp/ledger nodes
    mkdir -p "$d"
    mapfile -t nodes < <(ctl get nodes -o name | sed 's|^node/||')
    ctl get instances -A -o json >"$d/instances.json" &&
        ctl get flavors -o json >"$d/flavors.json" &&
        ctl get nodes -o json >"$d/nodes.json" &&
        ctl get nodes >"$d/get-nodes.txt" &&
        ctl describe nodes "${nodes[@]}" >"$d/describe-nodes.txt" &&
        etcd_get_prefix /stratus/v1/allocations/ >"$d/allocations.json" &&
        etcd_get_prefix /stratus/v1/ipam/ >"$d/ipam.json" &&
        "$py" "$top/e2e/ledger.py" --etcd "$d/allocations.json" --ipam "$d/ipam.json" \
            --instances "$d/instances.json" --flavors "$d/flavors.json" --nodes "$d/nodes.json" \
            --get-nodes "$d/get-nodes.txt" --describe-nodes "$d/describe-nodes.txt" "$@"
}

# Whether a node agent keeps exactly one instance folder per instance bound to its node.
folders_match() { # hollow node...
    local n want got
    for n in "$@"; do
        want=$(ctl get instances -A -o json --field-selector "spec.nodeName=$n" | "$py" -c '
import json, sys
print("\n".join(sorted(i["metadata"]["uid"] for i in json.load(sys.stdin)["items"])))')
        got=$(find "$STRATUS_STATE/nodes/$n/nodes/$n/instances" -mindepth 1 -maxdepth 1 \
            -printf '%f\n' | sort)
        if [ "$want" != "$got" ]; then
            echo "$n: instance folders differ from the instances bound there:"
            diff <(echo "$want") <(echo "$got")
            return 1
        fi
    done
}

# One field of an instance, by a dotted path (list items by index: status.addresses.0.ip);
# strings as they are, anything else as JSON, nothing when absent.
field() { # instance path
    ctl get instance "$1" -o json | "$py" -c '
import json, sys
o = json.load(sys.stdin)
for p in sys.argv[1].split("."):
    o = o[int(p)] if isinstance(o, list) and p.isdigit() and int(p) < len(o) else \
        o.get(p) if isinstance(o, dict) else None
print("" if o is None else o if isinstance(o, str) else json.dumps(o, sort_keys=True))' "$2"
}

# The pid of a process the cluster script started (agent-hollow-1, scheduler, apiserver, ...).
pid_of() { cat "$STRATUS_STATE/run/$1.pid"; }

# Prints a test's summary; its exit status says whether every check held.
e2e_finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}
