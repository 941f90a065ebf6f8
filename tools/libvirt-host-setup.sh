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
# What udev does on a normal Debian host (50-udev-default.rules: KERNEL=="kvm", GROUP="kvm",
# MODE="0660") and these machines lack: without access to /dev/kvm, libvirt finds its cached
# qemu capabilities stale on every call and probes qemu again — 3.4 s per define/start, minutes
# on a busy machine (seen by bench/realguest-bench).
if [ -c /dev/kvm ]; then
    getent group kvm >/dev/null || groupadd --system kvm
    id -nG libvirt-qemu | tr ' ' '\n' | grep -qx kvm || usermod -aG kvm libvirt-qemu
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
fi
