#!/bin/sh
# Installs every Debian 12 package Stratus needs to build, test and run a local cluster.
# Idempotent and non-interactive; does nothing when everything is already there.
set -eu
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
etcd-server etcd-client
libgrpc-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
libjansson-dev libev-dev libcurl4-openssl-dev libjemalloc-dev
libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
libssl-dev qemu-utils qemu-system-x86 genisoimage iptables dnsmasq-base busybox-static cpio
python3 python3-grpcio python3-protobuf openssl"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "error: missing packages:$missing (run 'make deps' as root)" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# etcd-server's postinst would start a system etcd on the default ports; tests never use it,
# and a policy-rc.d keeps it from starting where there is an init to start it.
apt-get install -y -qq --no-install-recommends $missing
