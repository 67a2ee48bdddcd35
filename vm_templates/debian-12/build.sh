#!/bin/bash
# Build the Debian 12 builder template image.
#
# Usage: build.sh OUTDIR   (run by kopers.vm.template.build_template, as root)
#
# Writes into OUTDIR:
#   base.qcow2          the root file system (ext4 on the whole disk, no partitions)
#   vmlinuz, initrd.img the kernel and Kopers' own small initramfs (direct kernel boot)
#   cmdline             the kernel command line to boot them with
#   id_ed25519(.pub)    the key pair root accepts over SSH
#   system-provides.txt the capabilities of kopers-system-provides, one a line
# Scratch space lives in OUTDIR/work and is removed on exit.
#
# Root is needed: mmdebstrap's root mode builds into a plain directory, and
# `mkfs.ext4 -d` copies ownership from it.
# Environment: KOPERS_DEBIAN_MIRROR, KOPERS_DEBIAN_SECURITY_MIRROR (optional),
# KOPERS_DISK_SIZE (default 8G, sparse).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: must run as root (mmdebstrap --mode=root, mkfs.ext4 -d)" >&2
    exit 1
fi
for tool in mmdebstrap mkfs.ext4 qemu-img ssh-keygen; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is not installed" >&2; exit 1; }
done

out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$out/work
rootfs=$work/rootfs
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

mirror=${KOPERS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${KOPERS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
packages=$(sed 's/#.*//' "$here/packages.txt" | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')

echo "== ssh key"
rm -f "$out/id_ed25519" "$out/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C kopers-builder -f "$out/id_ed25519"

echo "== mmdebstrap bookworm ($mirror)"
export KOPERS_RECIPE_DIR=$here KOPERS_PUBKEY=$out/id_ed25519.pub KOPERS_OUT=$out
# Documentation, man pages and translations are dead weight in a builder.
mmdebstrap --mode=root --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='"$KOPERS_RECIPE_DIR/customize.sh" "$1"' \
    bookworm "$rootfs" \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main"

echo "== kernel"
kernel=$(find "$rootfs/boot" -name 'vmlinuz-*' | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "build.sh: no kernel in /boot" >&2; exit 1; }
# 0644: libvirt's qemu user reads them directly (direct kernel boot).
install -m 644 "$kernel" "$out/vmlinuz"
echo "$(basename "$kernel")"

echo "== initramfs"
# Our own, not Debian's: see initramfs-init for why.
"$here/initramfs.sh" "$rootfs" "$out/initrd.img"
chmod 644 "$out/initrd.img"
# quiet: every byte on the emulated serial console costs; kopers-init and sshd
# still print what a failed boot needs. panic=-1: if PID 1 dies the guest
# reboots at once, and on_reboot=destroy ends the domain.
echo "root=/dev/vda rw console=ttyS0 quiet panic=-1" >"$out/cmdline"

echo "== disk image"
# Debian's initramfs is never booted (initrd.img above replaces it).
rm -f "$rootfs"/boot/initrd.img-*
truncate -s "${KOPERS_DISK_SIZE:-8G}" "$work/disk.raw"
mkfs.ext4 -q -F -L kopers-root -d "$rootfs" "$work/disk.raw"
qemu-img convert -O qcow2 "$work/disk.raw" "$out/base.qcow2"
chmod 644 "$out/base.qcow2" "$out/system-provides.txt"
qemu-img info "$out/base.qcow2" | sed -n 's/^\(virtual size\|disk size\)/  &/p'
echo "== done"
