#!/usr/bin/python3
"""e2e: the allocation ledgers the apiserver keeps in etcd (/stratus/v1/allocations/<node>, not
served by the API) against what runs, number by number:

- per node, the ledger's instance uids are exactly the instances bound there, and each entry
  claims what its instance's flavor says (vcpus, memoryMiB, diskGiB = rootDiskGiB + ephemeralGiB
  + swapMiB rounded up to GiB) under its own namespace and name;
- per node, the ledger's sums equal the sums of the flavors of the instances Running there, stay
  within status.allocatable x spec.allocationRatios, and equal what stratusctl shows
  (`get nodes`: CPU, MEM, INSTANCES; `describe node`: Allocated);
- no uid is claimed on two nodes; with --ipam, the IP ledger of each network holds exactly the
  addresses the instances carry, each owned by its instance.

Prints one line per node and exits 1 on any difference (each one printed).

    ledger.py --etcd ETCDCTL_JSON --instances JSON --flavors JSON --nodes JSON
              --get-nodes TABLE --describe-nodes TEXT [--ipam ETCDCTL_JSON] [--expect N]
"""
import argparse
import base64
import json
import math
import re
import sys

RESOURCES = ("vcpus", "memoryMiB", "diskGiB")


def etcd_kvs(path):
    doc = json.load(open(path))
    out = {}
    for kv in doc.get("kvs", []):
        key = base64.b64decode(kv["key"]).decode()
        out[key] = json.loads(base64.b64decode(kv.get("value", "")) or b"{}")
    return out


def items(path):
    return json.load(open(path))["items"]


def at(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def flavor_claim(f):
    s = f.get("spec", {})
    return {"vcpus": s.get("vcpus", 0), "memoryMiB": s.get("memoryMiB", 0),
            "diskGiB": s.get("rootDiskGiB", 0) + s.get("ephemeralGiB", 0)
            + math.ceil(s.get("swapMiB", 0) / 1024)}


def mib(text):
    m = re.fullmatch(r"(\d+)(Mi|Gi|Ti)", text)
    if not m:
        raise ValueError("not a size: %r" % text)
    return int(m.group(1)) * {"Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}[m.group(2)]


def get_nodes_table(path):
    """NAME READY ZONE CPU MEM INSTANCES AGE → {node: (vcpus, memoryMiB, instances)}"""
    lines = open(path).read().splitlines()
    head = lines[0].split()
    out = {}
    for line in lines[1:]:
        cols = dict(zip(head, line.split()))
        out[cols["NAME"]] = (int(cols["CPU"].split("/")[0]), mib(cols["MEM"].split("/")[0]),
                             int(cols["INSTANCES"]))
    return out


def describe_allocated(path):
    """Name: N ... Allocated: vcpus A, memory M, disk D (K instances) → {node: (A, M, D, K)}"""
    out, name = {}, None
    for line in open(path):
        m = re.match(r"Name:\s+(\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"\s+Allocated:\s+vcpus (\d+), memory (\S+), disk (\S+) \((\d+) instances?\)",
                     line)
        if m and name:
            out[name] = (int(m.group(1)), mib(m.group(2)), mib(m.group(3)) // 1024,
                         int(m.group(4)))
    return out


def main():
    p = argparse.ArgumentParser()
    for a in ("etcd", "instances", "flavors", "nodes", "get-nodes", "describe-nodes"):
        p.add_argument("--" + a, required=True)
    p.add_argument("--ipam")
    p.add_argument("--expect", type=int, help="instances that must be bound and Running in all")
    a = p.parse_args()

    prefix = "/stratus/v1/allocations/"
    ledgers = {k[len(prefix):]: v.get("instances", {}) for k, v in etcd_kvs(a.etcd).items()
               if k.startswith(prefix)}
    flavors = {f["metadata"]["name"]: flavor_claim(f) for f in items(a.flavors)}
    nodes = {n["metadata"]["name"]: n for n in items(a.nodes)}
    instances = items(a.instances)
    table = get_nodes_table(a.get_nodes)
    described = describe_allocated(a.describe_nodes)
    problems = []

    bound = {}
    for i in instances:
        node = at(i, "spec.nodeName")
        if node and at(i, "status.phase") != "Pending":
            bound.setdefault(node, []).append(i)
    running = sum(1 for i in instances if at(i, "status.phase") == "Running")
    if a.expect is not None and (running != a.expect or len(instances) != a.expect):
        problems.append("%d instances, %d Running; expected %d, all Running"
                        % (len(instances), running, a.expect))

    owner = {}
    for node in sorted(set(nodes) | set(ledgers) | set(bound)):
        led = ledgers.get(node, {})
        mine = {at(i, "metadata.uid"): i for i in bound.get(node, [])}
        for uid in set(led) - set(mine):
            problems.append("%s: ledger claims %s (%s) for no instance bound there"
                            % (node, uid, led[uid].get("name")))
        for uid in set(mine) - set(led):
            problems.append("%s: instance %s is bound there without a claim"
                            % (node, at(mine[uid], "metadata.name")))
        for uid in led:
            if uid in owner:
                problems.append("%s claimed on two nodes: %s and %s" % (uid, owner[uid], node))
            owner[uid] = node
        ledger_sum = {r: sum(e.get(r, 0) for e in led.values()) for r in RESOURCES}
        flavor_sum = {r: 0 for r in RESOURCES}
        for uid, i in mine.items():
            if at(i, "status.phase") != "Running":
                problems.append("%s: %s is %s" % (node, at(i, "metadata.name"),
                                                  at(i, "status.phase")))
            want = flavors.get(at(i, "spec.flavor"))
            if want is None:
                problems.append("%s: flavor %s is gone" % (at(i, "metadata.name"),
                                                           at(i, "spec.flavor")))
                continue
            for r in RESOURCES:
                flavor_sum[r] += want[r]
            e = led.get(uid)
            if e is None:
                continue
            got = {r: e.get(r) for r in RESOURCES}
            if got != want:
                problems.append("%s: %s claims %s, its flavor %s says %s"
                                % (node, at(i, "metadata.name"), got, at(i, "spec.flavor"), want))
            if (e.get("name"), e.get("namespace")) != (at(i, "metadata.name"),
                                                      at(i, "metadata.namespace")):
                problems.append("%s: ledger names %s/%s for %s/%s" % (
                    node, e.get("namespace"), e.get("name"), at(i, "metadata.namespace"),
                    at(i, "metadata.name")))
        if ledger_sum != flavor_sum:
            problems.append("%s: ledger sums %s, Running flavors sum %s"
                            % (node, ledger_sum, flavor_sum))
        n = nodes.get(node)
        if n is None:
            problems.append("%s: a ledger for no Node" % node)
            continue
        ratio = {"vcpus": at(n, "spec.allocationRatios.cpu", 1.0),
                 "memoryMiB": at(n, "spec.allocationRatios.memory", 1.0),
                 "diskGiB": at(n, "spec.allocationRatios.disk", 1.0)}
        for r in RESOURCES:
            limit = math.floor(at(n, "status.allocatable." + r, 0) * ratio[r])
            if ledger_sum[r] > limit:
                problems.append("%s: %s %d claimed > %d allocatable x ratio"
                                % (node, r, ledger_sum[r], limit))
        shown = (ledger_sum["vcpus"], ledger_sum["memoryMiB"], len(led))
        if table.get(node) != shown:
            problems.append("%s: `get nodes` shows vcpus, MiB, instances %s; the ledger %s"
                            % (node, table.get(node), shown))
        shown = (ledger_sum["vcpus"], ledger_sum["memoryMiB"], ledger_sum["diskGiB"], len(led))
        if described.get(node) != shown:
            problems.append("%s: `describe node` Allocated %s; the ledger %s"
                            % (node, described.get(node), shown))
        print("%-10s ledger: %3d instances, %3d vcpus, %6d MiB, %4d GiB; Running: %3d"
              % (node, len(led), ledger_sum["vcpus"], ledger_sum["memoryMiB"],
                 ledger_sum["diskGiB"], len(mine)))

    if a.ipam:
        want = {}
        for i in instances:
            for addr in at(i, "status.addresses", []) or []:
                net = "/stratus/v1/ipam/%s/%s" % (at(i, "metadata.namespace"), addr["network"])
                want.setdefault(net, {})[addr["ip"]] = at(i, "metadata.uid")
        got = {k: v.get("allocations", {}) for k, v in etcd_kvs(a.ipam).items()}
        for key in sorted(set(want) | set(got)):
            w, g = want.get(key, {}), got.get(key, {})
            if w != g:
                extra = sorted(set(g) - set(w))
                missing = sorted(set(w) - set(g))
                wrong = sorted(ip for ip in set(w) & set(g) if w[ip] != g[ip])
                problems.append("%s: IPs held for no instance %s, missing %s, wrong owner %s"
                                % (key, extra, missing, wrong))
            print("%s: %d addresses, each owned by its instance" % (key, len(g)))

    for prob in problems:
        print("FAIL: " + prob)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
