#!/usr/bin/python3
"""e2e: a Python grpcio client, knowing nothing but api/stratus/v1/stratus.proto, watches one
instance through its whole life on a running cluster (scheduler and node agents included):
created → bound to a node → Running → marked for deletion → gone. It creates and deletes the
instance itself, prints the events it saw, and exits 1 unless they came in that order.

    watch_lifecycle.py --server HOST:PORT --proto-root api --out DIR [--name NAME]
"""
import argparse
import json
import os
import subprocess
import sys
import threading

import grpc

SERVICE = "/stratus.v1.Stratus/"
TIMEOUT = 90  # seconds for the whole life; a hollow node builds in well under a second


def compile_proto(proto_root, out):
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "--python_out=" + out, "-I", proto_root,
                    os.path.join(proto_root, "stratus/v1/stratus.proto")], check=True)
    sys.path.insert(0, out)
    from stratus.v1 import stratus_pb2  # noqa: E402 (generated just now)
    return stratus_pb2


def unary(ch, method, req, rep):
    return ch.unary_unary(SERVICE + method, request_serializer=req.SerializeToString,
                          response_deserializer=rep.FromString)


def at(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--proto-root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="py-watch")
    a = p.parse_args()
    pb = compile_proto(a.proto_root, a.out)
    names = {v: k for k, v in pb.WatchEvent.Type.items()}
    label = "e2e-watch=" + a.name

    with grpc.insecure_channel(a.server) as ch:
        apply = unary(ch, "Apply", pb.ApplyRequest, pb.ApplyResponse)
        lst = unary(ch, "List", pb.ListRequest, pb.ListResponse)
        delete = unary(ch, "Delete", pb.DeleteRequest, pb.ObjectResponse)
        rv = lst(pb.ListRequest(kind="instances", namespace="default", label_selector=label),
                 timeout=10).resource_version

        events = []
        running = threading.Event()
        done = threading.Event()
        watch = ch.unary_stream(SERVICE + "Watch", request_serializer=pb.WatchRequest.SerializeToString,
                                response_deserializer=pb.WatchEvent.FromString)
        stream = watch(pb.WatchRequest(kind="instances", namespace="default", label_selector=label,
                                       resource_version=rv, allow_bookmarks=True), timeout=TIMEOUT)

        def reader():
            try:
                for ev in stream:
                    if ev.type == pb.WatchEvent.BOOKMARK:
                        continue
                    obj = json.loads(ev.object_json) if ev.object_json else {}
                    events.append((ev.type, ev.resource_version, obj))
                    if at(obj, "status.phase") == "Running":
                        running.set()
                    if ev.type in (pb.WatchEvent.DELETED, pb.WatchEvent.ERROR):
                        break
            except grpc.RpcError as e:
                print("watch ended: %s %s" % (e.code(), e.details()))
            running.set()
            done.set()

        t = threading.Thread(target=reader)
        t.start()
        inst = {"apiVersion": "stratus/v1", "kind": "Instance",
                "metadata": {"name": a.name, "namespace": "default",
                             "labels": {"e2e-watch": a.name}},
                "spec": {"flavor": "m1.tiny", "image": "demo-disk",
                         "networks": [{"network": "demo"}]}}
        r = apply(pb.ApplyRequest(object_json=json.dumps(inst)), timeout=10)
        assert r.result == pb.ApplyResponse.CREATED, r
        running.wait(TIMEOUT)
        delete(pb.DeleteRequest(kind="instance", namespace="default", name=a.name), timeout=10)
        done.wait(TIMEOUT)
        stream.cancel()
        t.join()

    for typ, rv, obj in events:
        print("%-8s rv=%-5s phase=%-9s node=%-10s deleting=%s" % (
            names.get(typ, typ), rv, at(obj, "status.phase"), at(obj, "spec.nodeName") or "-",
            "yes" if at(obj, "metadata.deletionTimestamp") else "no"))

    def first(pred):
        return next((i for i, (typ, _, obj) in enumerate(events) if pred(typ, obj)), None)

    problems = []
    types = [typ for typ, _, _ in events]
    if not events or types[0] != pb.WatchEvent.ADDED or types.count(pb.WatchEvent.ADDED) != 1:
        problems.append("the first event, and only it, must be ADDED")
    if not events or types[-1] != pb.WatchEvent.DELETED or types.count(pb.WatchEvent.DELETED) != 1:
        problems.append("the last event, and only it, must be DELETED")
    if any(t not in (pb.WatchEvent.ADDED, pb.WatchEvent.MODIFIED, pb.WatchEvent.DELETED)
           for t in types):
        problems.append("unexpected event types")
    rvs = [int(rv) for _, rv, _ in events]
    if rvs != sorted(set(rvs)):
        problems.append("resource versions are not strictly increasing: %s" % rvs)
    uids = {at(obj, "metadata.uid") for _, _, obj in events}
    if len(uids) != 1 or None in uids:
        problems.append("the events are not about one object: uids %s" % uids)
    if events and at(events[0][2], "spec.nodeName"):
        problems.append("ADDED already carries a node: %s" % at(events[0][2], "spec.nodeName"))
    bound = first(lambda typ, obj: bool(at(obj, "spec.nodeName")))
    ran = first(lambda typ, obj: at(obj, "status.phase") == "Running")
    marked = first(lambda typ, obj: bool(at(obj, "metadata.deletionTimestamp")))
    gone = first(lambda typ, obj: typ == pb.WatchEvent.DELETED)
    order = [bound, ran, marked, gone]
    if None in order or order != sorted(order) or bound == 0:
        problems.append("not ADDED < bound < Running < deletionTimestamp <= DELETED: %s" % order)
    else:
        nodes = {at(obj, "spec.nodeName") for _, _, obj in events[bound:]}
        if len(nodes) != 1:
            problems.append("the node changed after binding: %s" % nodes)
        if not at(events[ran][2], "status.addresses"):
            problems.append("Running without an address")
        rank = {"Pending": 0, "Scheduled": 1, "Building": 2, "Running": 3, "Deleting": 4}
        phases = [at(obj, "status.phase") for _, _, obj in events]
        ranks = [rank.get(ph, -1) for ph in phases]
        if -1 in ranks or ranks != sorted(ranks):
            problems.append("phases out of order: %s" % phases)
    for prob in problems:
        print("FAIL: " + prob)
    if problems:
        return 1
    print("lifecycle seen in order: ADDED, bound to %s, Running, deletion, DELETED (%d events)"
          % (at(events[bound][2], "spec.nodeName"), len(events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
