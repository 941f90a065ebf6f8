#!/bin/sh
# Builds the real guest Stratus boots in tests: a Debian cloud kernel and a busybox initramfs,
# from Debian packages (downloaded with apt-get download and unpacked; nothing is installed).
#
# The guest's /init loads the virtio modules, configures eth0 from the kernel's ip= argument
# (which the node agent appends to the image's cmdline: ip=<ip>::<gw>:<mask>:<hostname>::off),
# looks at its root disk (/dev/vda), prints one marker line on the serial console, and idles:
#
#   STRATUS-GUEST-OK hostname=web ip=10.0.0.5 mac=52:54:00:00:00:05 disk=vda sectors=2097152
#
# Usage: tools/build-guest-image.sh OUT_DIR   → OUT_DIR/vmlinuz, OUT_DIR/initrd.img, OUT_DIR/SHA256SUMS
# Needs: apt-get (with package lists), dpkg-deb, cpio, gzip, sha256sum; busybox-static is taken
# from the system when installed, else downloaded too.
set -eu

out=${1:?usage: $0 OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/stratus-guest-XXXXXX")
trap 'rm -rf "$work"' EXIT

kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "error: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
cd "$work"
pkgs="$kpkg"
[ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c 'not a dynamic') || file_is_static=0
[ "$file_is_static" = 1 ] || pkgs="$pkgs busybox-static"
apt-get download -qq -o APT::Sandbox::User=root $pkgs
mkdir root
for d in ./*.deb; do dpkg-deb -x "$d" root; done

kver=$(ls root/lib/modules | head -n1)
busybox=root/bin/busybox
[ -x "$busybox" ] || busybox=/bin/busybox

mkdir -p initramfs/bin initramfs/proc initramfs/sys initramfs/dev initramfs/lib/modules
cp "$busybox" initramfs/bin/busybox
# virtio drivers, in load order; the ones built into the kernel are simply absent.
for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk \
    failover net_failover virtio_net; do
    f=$(find "root/lib/modules/$kver" -name "$m.ko*" | head -n1)
    [ -n "$f" ] || continue
    case "$f" in
    *.xz) xz -dc "$f" >"initramfs/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"initramfs/lib/modules/$m.ko" ;;
    *) cp "$f" "initramfs/lib/modules/$m.ko" ;;
    esac
done

cat >initramfs/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# No modules.dep here: a few passes load everything whatever the order of dependencies.
for pass in 1 2 3; do
    for m in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
        virtio_blk failover net_failover virtio_net; do
        [ -f /lib/modules/$m.ko ] && ! [ -d /sys/module/$m ] && insmod /lib/modules/$m.ko 2>/dev/null
    done
done
i=0
while [ $i -lt 50 ] && ! [ -e /sys/class/net/eth0 ]; do sleep 0.1; i=$((i + 1)); done
spec=
for a in $(cat /proc/cmdline); do
    case "$a" in ip=*) spec=${a#ip=} ;; esac
done
ip=$(echo "$spec" | cut -d: -f1)
gw=$(echo "$spec" | cut -d: -f3)
mask=$(echo "$spec" | cut -d: -f4)
host=$(echo "$spec" | cut -d: -f5)
[ -n "$host" ] && hostname "$host"
if [ -n "$ip" ] && [ -e /sys/class/net/eth0 ]; then
    ifconfig eth0 "$ip" netmask "${mask:-255.255.255.0}" up
    [ -n "$gw" ] && route add default gw "$gw" 2>/dev/null
fi
disk=none
sectors=0
if [ -b /dev/vda ]; then
    disk=vda
    sectors=$(cat /sys/block/vda/size)
fi
mac=$(cat /sys/class/net/eth0/address 2>/dev/null || echo none)
have=$(ifconfig eth0 2>/dev/null | sed -n 's/.*inet addr:\([0-9.]*\).*/\1/p')
echo "STRATUS-GUEST-OK hostname=$(hostname) ip=${have:-none} mac=$mac disk=$disk sectors=$sectors"
while :; do sleep 3600; done
EOF
chmod 755 initramfs/init

(cd initramfs && find . | cpio -o -H newc --quiet) | gzip -9 >"$out/initrd.img"
cp "root/boot/vmlinuz-$kver" "$out/vmlinuz"
(cd "$out" && sha256sum vmlinuz initrd.img >SHA256SUMS)
echo "built $out/vmlinuz ($kver) and $out/initrd.img"
