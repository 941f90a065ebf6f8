#!/usr/bin/python3
"""Interop check: a non-C gRPC client (Python grpcio) against a pkg/rpc server, using nothing but
api/stratus/v1/stratus.proto. Debian has no grpcio-tools, so the messages come from
`protoc --python_out` and the calls from grpcio's generic channel.unary_unary/unary_stream.

    rpc_interop.py --server BUILD/tests/rpc-test-server --proto-root api --out BUILD/interop

Starts the server, reads "PORT n" from it, runs the checks, stops it with SIGTERM and expects a
clean exit. Later the same checks can point at stratus-apiserver (--target host:port).
"""
import argparse
import os
import signal
import subprocess
import sys

import grpc

SERVICE = "/stratus.v1.Stratus/"


def compile_proto(proto_root, out):
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "--python_out=" + out, "-I", proto_root,
                    os.path.join(proto_root, "stratus/v1/stratus.proto")], check=True)
    sys.path.insert(0, out)
    from stratus.v1 import stratus_pb2  # noqa: E402 (generated just now)
    return stratus_pb2


def unary(channel, pb, method, request_type, reply_type):
    return channel.unary_unary(SERVICE + method,
                               request_serializer=request_type.SerializeToString,
                               response_deserializer=reply_type.FromString)


def expect_code(fn, request, code):
    try:
        fn(request, timeout=10)
    except grpc.RpcError as e:
        if e.code() != code:
            raise AssertionError("expected %s, got %s: %s" % (code, e.code(), e.details()))
        return e.details()
    raise AssertionError("expected %s, got a reply" % code)


def run_checks(target, pb):
    with grpc.insecure_channel(target) as ch:
        health = unary(ch, pb, "Health", pb.HealthRequest, pb.HealthResponse)
        r = health(pb.HealthRequest(), timeout=10)
        assert r.status == "ok" and r.etcd_ok, r

        get = unary(ch, pb, "Get", pb.GetRequest, pb.ObjectResponse)
        r = get(pb.GetRequest(kind="Instance", namespace="default", name="web-1"), timeout=10)
        assert '"name":"web-1"' in r.object_json, r.object_json
        details = expect_code(get, pb.GetRequest(kind="Instance", name="missing"),
                              grpc.StatusCode.NOT_FOUND)
        assert details == 'Instance "missing" not found', details

        apply = unary(ch, pb, "Apply", pb.ApplyRequest, pb.ApplyResponse)
        doc = '{"apiVersion":"stratus/v1","kind":"Flavor","metadata":{"name":"small"}}'
        r = apply(pb.ApplyRequest(object_json=doc, dry_run=True), timeout=10)
        assert r.result == pb.ApplyResponse.UNCHANGED and r.object_json == doc, r

        bind = unary(ch, pb, "Bind", pb.BindRequest, pb.BindResponse)
        expect_code(bind, pb.BindRequest(), grpc.StatusCode.UNIMPLEMENTED)
        bogus = ch.unary_unary(SERVICE + "Bogus")
        expect_code(bogus, b"", grpc.StatusCode.UNIMPLEMENTED)

        watch = ch.unary_stream(SERVICE + "Watch",
                                request_serializer=pb.WatchRequest.SerializeToString,
                                response_deserializer=pb.WatchEvent.FromString)
        seen = []
        try:
            for ev in watch(pb.WatchRequest(kind="Instance", resource_version="41"), timeout=10):
                assert ev.type == pb.WatchEvent.ADDED, ev
                seen.append(ev.resource_version)
            raise AssertionError("watch ended without a status")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.OUT_OF_RANGE, (e.code(), e.details())
        assert seen == ["42", "43", "44"], seen


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", help="rpc-test-server binary to start")
    p.add_argument("--target", help="an already running server (host:port)")
    p.add_argument("--proto-root", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    pb = compile_proto(a.proto_root, a.out)

    if a.target:
        run_checks(a.target, pb)
        print("ok")
        return 0
    server = subprocess.Popen([a.server], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().split()
        assert len(line) == 2 and line[0] == "PORT", line
        run_checks("127.0.0.1:" + line[1], pb)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
    assert rc == 0, "server exited with %d" % rc
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
