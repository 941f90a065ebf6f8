#!/bin/sh
# Prepares a Debian 12 host to run libvirtd + qemu without systemd (PLATFORM.md): the folders
# libvirt expects and the libvirt-qemu user and group qemu runs as. Idempotent; root only. The
# real-guest test (tests/integration/test-agent-qemu.c) runs it before starting the daemons.
# Packages come from tools/install-deps.sh (libvirt-daemon-driver-qemu, qemu-system-x86,
# iptables for libvirt networks).
set -eu
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 1; }
mkdir -p /var/log/libvirt /var/lib/libvirt /var/run/libvirt /var/cache/libvirt
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
    useradd --system -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
