#!/bin/bash
# Make the builder's initramfs: busybox, the modules that reach the root disk,
# the NIC and the RNG (with their dependencies, in load order), and /init.
#
# Usage: initramfs.sh ROOTFS OUTFILE   (run by build.sh after mmdebstrap)
# Tools come from ROOTFS (modprobe, busybox, cpio), so the host needs none.
# The archive is left uncompressed: unpacking gzip costs more under TCG than
# reading the extra megabytes.
set -euo pipefail
root=$1
out=$2
here=$(dirname "$(realpath "$0")")
# virtio_pci finds the devices; the rest drive them. ext4 is built into the kernel.
modules=(virtio_pci virtio_blk virtio_net virtio_rng)

kver=$(basename "$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n 1)")
tree=/tmp/kopers-initramfs
rm -rf "${root:?}$tree"
mkdir -p "$root$tree"/{bin,modules,proc,sys,dev,newroot}
cp "$root/bin/busybox" "$root$tree/bin/busybox"
install -m 755 "$here/initramfs-init" "$root$tree/init"
# The kernel opens /dev/console for /init before anything is mounted.
mknod -m 600 "$root$tree/dev/console" c 5 1

# `modprobe --show-depends` prints each module a module needs, dependencies
# first, as "insmod PATH"; built-in ones as "builtin NAME".
: >"$root$tree/modules.order"
for module in "${modules[@]}"; do
    chroot "$root" modprobe -S "$kver" --show-depends "$module" | while read -r verb path _; do
        [ "$verb" = insmod ] || continue
        name=$(basename "$path")
        grep -qx "$name" "$root$tree/modules.order" && continue
        cp "$root$path" "$root$tree/modules/$name"
        echo "$name" >>"$root$tree/modules.order"
    done
done
echo "initramfs modules: $(tr '\n' ' ' <"$root$tree/modules.order")"
chroot "$root" sh -c "cd $tree && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0" >"$out"
rm -rf "${root:?}$tree"
