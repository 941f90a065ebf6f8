#!/usr/bin/python3
"""Interop: Python grpcio drives the real stratus-apiserver binary, knowing nothing but
api/stratus/v1/stratus.proto. Starts a throwaway etcd and the apiserver on free loopback ports,
runs the checks (a watch sees one instance's whole life), stops the apiserver with SIGTERM and
expects a clean, prompt exit, and always stops both.

    apiserver_interop.py --apiserver BUILD/bin/stratus-apiserver --proto-root api --out DIR
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

SERVICE = "/stratus.v1.Stratus/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited during start-up (%s)" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (what, port))


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


def expect_error(fn, request, code, text):
    try:
        fn(request, timeout=10)
    except grpc.RpcError as e:
        assert e.code() == code, "expected %s, got %s: %s" % (code, e.code(), e.details())
        assert text in e.details(), "%r not in %r" % (text, e.details())
        return
    raise AssertionError("expected %s" % code)


def doc(kind, name, spec, ns=None):
    md = {"name": name}
    if ns:
        md["namespace"] = ns
    return json.dumps({"apiVersion": "stratus/v1", "kind": kind, "metadata": md, "spec": spec})


def run_checks(target, pb):
    with grpc.insecure_channel(target) as ch:
        health = unary(ch, "Health", pb.HealthRequest, pb.HealthResponse)
        r = health(pb.HealthRequest(), timeout=10)
        assert r.status == "ok" and r.etcd_ok, r

        apply = unary(ch, "Apply", pb.ApplyRequest, pb.ApplyResponse)
        get = unary(ch, "Get", pb.GetRequest, pb.ObjectResponse)
        lst = unary(ch, "List", pb.ListRequest, pb.ListResponse)
        delete = unary(ch, "Delete", pb.DeleteRequest, pb.ObjectResponse)
        status = unary(ch, "UpdateStatus", pb.UpdateStatusRequest, pb.ObjectResponse)

        apply(pb.ApplyRequest(object_json=doc("Flavor", "tiny", {"vcpus": 1, "memoryMiB": 256,
                                                                    "rootDiskGiB": 1})), timeout=10)
        apply(pb.ApplyRequest(object_json=doc("Image", "img", {"source": {
            "url": "file:///tmp/img.qcow2", "sha256": "a" * 64, "format": "qcow2"}})), timeout=10)
        lr = lst(pb.ListRequest(kind="instances"), timeout=10)
        rv = lr.resource_version

        events = []
        done = threading.Event()
        watch = ch.unary_stream(SERVICE + "Watch", request_serializer=pb.WatchRequest.SerializeToString,
                                response_deserializer=pb.WatchEvent.FromString)
        stream = watch(pb.WatchRequest(kind="instances", namespace="default",
                                       resource_version=rv), timeout=30)

        def reader():
            try:
                for ev in stream:
                    events.append(ev)
                    if ev.type == pb.WatchEvent.DELETED:
                        done.set()
                        return
            except grpc.RpcError:
                pass
            done.set()
        t = threading.Thread(target=reader)
        t.start()

        inst = doc("Instance", "py-1", {"flavor": "tiny", "image": "img"})
        r = apply(pb.ApplyRequest(object_json=inst), timeout=10)
        assert r.result == pb.ApplyResponse.CREATED, r
        r = apply(pb.ApplyRequest(object_json=inst), timeout=10)
        assert r.result == pb.ApplyResponse.UNCHANGED, r
        o = json.loads(get(pb.GetRequest(kind="instance", namespace="default", name="py-1"),
                           timeout=10).object_json)
        assert o["status"]["phase"] == "Pending", o
        status(pb.UpdateStatusRequest(kind="instance", namespace="default", name="py-1",
                                      resource_version=o["metadata"]["resourceVersion"],
                                      status_json=json.dumps({"phase": "Building"})), timeout=10)
        delete(pb.DeleteRequest(kind="instance", namespace="default", name="py-1"), timeout=10)
        assert done.wait(15), "the watch did not see the deletion"
        stream.cancel()
        t.join()
        types = [e.type for e in events if e.type != pb.WatchEvent.BOOKMARK]
        assert types == [pb.WatchEvent.ADDED, pb.WatchEvent.MODIFIED, pb.WatchEvent.DELETED], types
        assert json.loads(events[1].object_json)["status"]["phase"] == "Building"

        expect_error(apply, pb.ApplyRequest(object_json=doc("Instance", "bad", {
            "flavor": "tiny", "image": "img", "networks": [{"network": "n", "fixedIp": "10.0.0.300"}]})),
            grpc.StatusCode.INVALID_ARGUMENT, 'spec.networks[0].fixedIp: "10.0.0.300"')
        expect_error(get, pb.GetRequest(kind="instance", name="bad"), grpc.StatusCode.NOT_FOUND,
                     "not found")
        expect_error(ch.unary_unary("/stratus.v1.Stratus/NoSuchMethod"), b"",
                     grpc.StatusCode.UNIMPLEMENTED, "")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--apiserver", required=True)
    p.add_argument("--proto-root", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    pb = compile_proto(a.proto_root, a.out)
    tmp = tempfile.mkdtemp(prefix="stratus-interop-")
    procs = []
    try:
        cport, pport, aport = free_port(), free_port(), free_port()
        curl, purl = "http://127.0.0.1:%d" % cport, "http://127.0.0.1:%d" % pport
        etcd = subprocess.Popen(["etcd", "--data-dir", tmp + "/etcd", "--listen-client-urls", curl,
                                 "--advertise-client-urls", curl, "--listen-peer-urls", purl,
                                 "--initial-advertise-peer-urls", purl, "--initial-cluster",
                                 "default=" + purl, "--log-level", "warn"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp + "/etcd.log", "w"))
        procs.append(etcd)
        wait_port(cport, etcd, "etcd")
        api = subprocess.Popen([a.apiserver, "--listen", "127.0.0.1:%d" % aport, "--etcd", curl],
                               stderr=open(tmp + "/apiserver.log", "w"))
        procs.append(api)
        wait_port(aport, api, "stratus-apiserver")
        run_checks("127.0.0.1:%d" % aport, pb)
        api.send_signal(signal.SIGTERM)
        rc = api.wait(timeout=15)
        assert rc == 0, "apiserver exited with %d after SIGTERM" % rc
        print("apiserver interop: 1 passed, 0 failed")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
