#!/bin/bash
# mmdebstrap --customize-hook for the Debian 12 builder template.
#
# Called as `customize.sh ROOTFS` after all packages are installed, while
# mmdebstrap has /dev, /proc and /sys mounted inside ROOTFS (so chroot commands
# such as rpmbuild work). Reads KOPERS_RECIPE_DIR, KOPERS_PUBKEY and KOPERS_OUT
# from the environment set by build.sh.
set -euo pipefail
root=$1
recipe=${KOPERS_RECIPE_DIR:?}
pubkey=${KOPERS_PUBKEY:?}
out=${KOPERS_OUT:?}

echo "customize: identity, fstab, init"
echo kopers-builder >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1 localhost
127.0.1.1 kopers-builder
::1 localhost ip6-localhost ip6-loopback
EOF
# The kernel mounts / read-write (cmdline `rw`); pass 0 skips a pointless fsck
# of a file system that was made seconds before the clone was taken.
echo '/dev/vda / ext4 rw,noatime,errors=remount-ro 0 0' >"$root/etc/fstab"

# The guest boots straight into kopers-init (see that file): no systemd as
# PID 1, no udev, no DHCP. It configures QEMU user networking's fixed
# addresses itself; DNS matters only for projects that enable networking.
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
install -m 755 "$recipe/kopers-init" "$root/usr/local/sbin/kopers-init"

echo "customize: sshd (root by key only)"
cat >"$root/etc/ssh/sshd_config.d/kopers.conf" <<'EOF'
# Kopers builder: the host reaches root with the template's key over a
# 127.0.0.1-only port forward. No passwords anywhere.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# No PAM session for a key login: it adds a third of a second to every login
# and command in an emulated VM, and a builder has no limits or sessions to set.
UsePAM no
PrintLastLog no
EOF
# The host keys were generated when openssh-server was installed, so every
# clone shares them. That is fine: the host connects with known_hosts=None to a
# loopback-only port and authenticates the VM by nothing but reachability.
install -d -m 700 "$root/root/.ssh"
install -m 600 "$pubkey" "$root/root/.ssh/authorized_keys"

echo "customize: rpm database location and builder"
# Debian's rpm keeps its database in ~/.rpmdb; a builder wants one system-wide
# database that rpm, rpmbuild and dnf all agree on.
mkdir -p "$root/etc/rpm"
echo '%_dbpath /var/lib/rpm' >"$root/etc/rpm/macros.kopers"
# dnf-plugins-core's "local" plugin runs createrepo_c after every transaction,
# which this image does not have (and a builder does not want).
if [ -f "$root/etc/dnf/plugins/local.conf" ]; then
    sed -i 's/^enabled *=.*/enabled=0/' "$root/etc/dnf/plugins/local.conf"
fi
# The builder is a module with its bytecode compiled here, started by a small
# launcher without site packages: in an emulated VM, compiling a script of its
# size and importing site on every start cost about a third of a second.
install -d -m 755 "$root/usr/local/lib/kopers"
install -m 644 "$recipe/builder.py" "$root/usr/local/lib/kopers/kopers_builder.py"
chroot "$root" python3 -m compileall -q /usr/local/lib/kopers
cat >"$root/usr/local/bin/kopers-builder" <<'EOF'
#!/usr/bin/python3 -IS
import sys

sys.path.insert(0, "/usr/local/lib/kopers")
from kopers_builder import main

sys.exit(main(sys.argv))
EOF
chmod 755 "$root/usr/local/bin/kopers-builder"
install -d -m 755 "$root/build" "$root/build/in" "$root/build/out"

echo "customize: pyp2spec for builds from PyPI, in /opt/pyp2spec"
# Wheels for the guest's Python (bookworm's 3.11), fetched by the host's pip
# (KOPERS_HOST_PIP): the guest has no pip and no network while it is made.
${KOPERS_HOST_PIP:-python3 -m pip} install --quiet --no-compile --disable-pip-version-check \
    --target "$root/opt/pyp2spec" --python-version 3.11 --implementation cp --abi cp311 \
    --platform manylinux2014_x86_64 --only-binary=:all: "pyp2spec==0.16.0"
chroot "$root" env PYTHONPATH=/opt/pyp2spec python3 -c "import pyp2spec.pyp2spec"

echo "customize: kopers-system-provides"
work=/tmp/kopers-provides
mkdir -p "$root$work"
cp "$recipe/system-provides.py" "$recipe/aliases.txt" "$root$work/"
chroot "$root" python3 "$work/system-provides.py" "$work" "$work/aliases.txt"
chroot "$root" rpm --initdb
chroot "$root" rpmbuild --quiet -bb --define "_topdir $work/top" "$work/kopers-system-provides.spec"
# --force-debian: Debian's rpm otherwise warns that packages belong to dpkg.
chroot "$root" sh -c "rpm -i --force-debian $work/top/RPMS/*/kopers-system-provides-*.rpm"
chroot "$root" rpm -q kopers-system-provides
install -m 644 "$root$work/system-provides.txt" "$out/system-provides.txt"
rm -rf "${root:?}$work"

echo "customize: the buildroot manifest as the template holds it"
# With the rpm database unchanged since now, a build takes its manifest from
# here instead of running `rpm -qa` (kopers-builder checks the digest).
chroot "$root" /usr/local/bin/kopers-builder --record-manifest
cat "$root/usr/local/lib/kopers/manifest.json"; echo
