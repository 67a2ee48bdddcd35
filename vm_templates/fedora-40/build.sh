#!/bin/bash
# Build the Fedora 40 builder template image (production path: builds run mock).
#
# Usage: build.sh OUTDIR   (run by kopers.vm.template.build_template, as root)
#
# Needs: dnf (4 or 5) able to reach the Fedora mirrors, mkfs.ext4 (e2fsprogs
# >= 1.43 for -d), qemu-img, ssh-keygen, mount. Works on a Fedora host and on
# a Debian host with dnf installed; see README.md. The output contract is the
# same as vm_templates/debian-12/build.sh:
#   base.qcow2 vmlinuz initrd.img cmdline id_ed25519(.pub) system-provides.txt
# Environment: KOPERS_FEDORA_REPO (a .repo file to install from instead of
# fedora.repo, e.g. a local mirror), KOPERS_DISK_SIZE (default 20G, sparse).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: must run as root (dnf --installroot, chroot, mkfs.ext4 -d)" >&2
    exit 1
fi
for tool in dnf mkfs.ext4 qemu-img ssh-keygen chroot mount; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is not installed" >&2; exit 1; }
done

releasever=40
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$out/work
rootfs=$work/rootfs
mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$rootfs" "$work/repos"
cp "${KOPERS_FEDORA_REPO:-$here/fedora.repo}" "$work/repos/kopers-fedora.repo"
packages=$(sed 's/#.*//' "$here/packages.txt" | xargs)

echo "== ssh key"
rm -f "$out/id_ed25519" "$out/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C kopers-builder -f "$out/id_ed25519"

# A generic initramfs (not host-only: it is built here but boots under QEMU),
# with the virtio drivers the domain uses. Written before the kernel is
# installed so kernel-install's own dracut run already uses it.
mkdir -p "$rootfs/etc/dracut.conf.d"
cat >"$rootfs/etc/dracut.conf.d/kopers.conf" <<'EOF'
hostonly="no"
add_drivers+=" virtio_blk virtio_net virtio_pci virtio_rng ext4 "
EOF

echo "== dnf --installroot (Fedora $releasever): $packages"
for fs in proc sys dev; do
    mkdir -p "$rootfs/$fs"
    mount --bind "/$fs" "$rootfs/$fs"
    mounted+=("$rootfs/$fs")
done
# shellcheck disable=SC2086 # the package list is meant to split
dnf -y --installroot="$rootfs" --releasever="$releasever" \
    --setopt=reposdir="$work/repos" --setopt=install_weak_deps=False \
    --setopt=tsflags=nodocs --nodocs \
    install $packages

echo "== configure"
echo kopers-builder >"$rootfs/etc/hostname"
echo '/dev/vda / ext4 rw,noatime 0 0' >"$rootfs/etc/fstab"
# mkfs.ext4 -d does not carry SELinux labels; a relabel on every boot of a
# throw-away VM would cost more than it protects, so SELinux is off (cmdline too).
sed -i 's/^SELINUX=.*/SELINUX=disabled/' "$rootfs/etc/selinux/config" 2>/dev/null || true
mkdir -p "$rootfs/etc/systemd/network"
cat >"$rootfs/etc/systemd/network/10-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
systemctl --root="$rootfs" enable systemd-networkd.service sshd.service
systemctl --root="$rootfs" mask systemd-networkd-wait-online.service getty@tty1.service \
    dnf-makecache.timer fstrim.timer raid-check.timer unbound-anchor.timer \
    systemd-homed.service systemd-userdbd.socket
mkdir -p "$rootfs/etc/ssh/sshd_config.d"
cat >"$rootfs/etc/ssh/sshd_config.d/10-kopers.conf" <<'EOF'
# Kopers builder: root by key only, over a 127.0.0.1-only port forward.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
# Host keys made now are shared by every clone (see ../../kopers/vm/ssh.py for
# why that is acceptable) and spare each boot the key generation.
chroot "$rootfs" ssh-keygen -A
install -d -m 700 "$rootfs/root/.ssh"
install -m 600 "$out/id_ed25519.pub" "$rootfs/root/.ssh/authorized_keys"
# mock refuses to build as root: builds run as this user, in the mock group.
chroot "$rootfs" useradd --create-home --groups mock kopers
cat >"$rootfs/etc/mock/site-defaults.cfg" <<'EOF'
# Kopers: the VM is the isolation boundary and is thrown away after one build.
config_opts['use_bootstrap_image'] = False
config_opts['plugin_conf']['package_state_enable'] = True
config_opts['plugin_conf']['package_state_opts']['installed_pkgs'] = True
EOF
install -m 755 "$here/builder.py" "$rootfs/usr/local/bin/kopers-builder"
install -d -m 755 "$rootfs/build" "$rootfs/build/in" "$rootfs/build/out"

echo "== kernel and initramfs"
kver=$(find "$rootfs/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[ -n "$kver" ] || { echo "build.sh: no kernel installed" >&2; exit 1; }
chroot "$rootfs" dracut --force --no-hostonly --kver "$kver" "/boot/initramfs-kopers.img"
install -m 644 "$rootfs/lib/modules/$kver/vmlinuz" "$out/vmlinuz"
install -m 644 "$rootfs/boot/initramfs-kopers.img" "$out/initrd.img"
rm -f "$rootfs/boot/initramfs-kopers.img"
echo "root=/dev/vda rw console=ttyS0 net.ifnames=0 selinux=0" >"$out/cmdline"
echo "kernel $kver"

# A real rpm database needs no provides package; export what it provides anyway
# so hosts can treat every template alike.
chroot "$rootfs" rpm -qa --provides | sort -u >"$out/system-provides.txt"

for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}"; done
mounted=()
rm -rf "$rootfs/var/cache/dnf" "$rootfs/var/cache/libdnf5"

echo "== disk image"
truncate -s "${KOPERS_DISK_SIZE:-20G}" "$work/disk.raw"
mkfs.ext4 -q -F -L kopers-root -d "$rootfs" "$work/disk.raw"
qemu-img convert -O qcow2 "$work/disk.raw" "$out/base.qcow2"
chmod 644 "$out/base.qcow2" "$out/system-provides.txt"
echo "== done"
