# Shared steps of scripts/run.sh and scripts/test.sh (sourced, not run).
# Everything here is idempotent: a second run only checks.

KOPERS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APT_PACKAGES=(
  python3 python3-venv python3-dev gcc pkg-config
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev
  mmdebstrap e2fsprogs acl openssh-client
  rpm createrepo-c dnf dnf-plugins-core gnupg wget curl git ca-certificates
)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'kopers setup: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_system_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# There may be no systemd (containers, CI): start the libvirt daemons directly.
start_libvirt() {
  kvm_node_for_libvirt
  if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    say "starting libvirtd and virtlogd"
    pgrep -x virtlogd >/dev/null || as_root virtlogd -d
    pgrep -x libvirtd >/dev/null || as_root libvirtd -d
    local i
    for i in $(seq 1 30); do
      virsh -c qemu:///system version >/dev/null 2>&1 && return 0
      sleep 1
    done
    die "libvirtd did not answer on qemu:///system"
  fi
}

# Without udev (containers, CI) /dev/kvm can exist and stay root-only. libvirt
# then decides at every domain start that KVM has gone away since it probed
# QEMU and probes again, a dozen times, which costs about 50 s per VM start on
# a TCG host. udev's usual rule (group kvm, mode 0660; Debian puts libvirt-qemu
# in that group) makes the cached probe valid, whether or not KVM works.
kvm_node_for_libvirt() {
  [ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
  if [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
    say "giving /dev/kvm udev's permissions (group kvm, mode 0660)"
    as_root chgrp kvm /dev/kvm && as_root chmod 660 /dev/kvm
  fi
}

make_venv() {
  local extras=${1:-}
  if [ ! -x "$KOPERS_ROOT/.venv/bin/python" ]; then
    say "creating the virtualenv in .venv"
    python3 -m venv "$KOPERS_ROOT/.venv"
  fi
  local stamp="$KOPERS_ROOT/.venv/.kopers-installed$extras"
  if [ ! -f "$stamp" ] || [ "$KOPERS_ROOT/pyproject.toml" -nt "$stamp" ]; then
    say "installing Kopers into .venv"
    "$KOPERS_ROOT/.venv/bin/pip" install -q --upgrade pip
    "$KOPERS_ROOT/.venv/bin/pip" install -q -e "$KOPERS_ROOT$extras"
    touch "$stamp"
  fi
}

build_templates() {
  say "building builder VM templates (cached by recipe hash; minutes the first time)"
  "$KOPERS_ROOT/.venv/bin/kopers" --config "$KOPERS_ROOT/kopers.toml" template build
}

# Debian's PostgreSQL server, as a throwaway cluster of its own in $1 on
# 127.0.0.1:$2 (no systemd, no pg_ctlcluster, nothing shared with the
# machine's own cluster). It has a superuser "postgres" and a plain role
# "kopers" that owns what it creates, both with scram passwords. Prints the
# superuser's DSN; the role's password is in $1/kopers.password. fsync is
# off: nobody keeps what this cluster holds.
start_system_postgres() {
  local dir=$1 port=$2 bin password
  bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] || die "no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)"
  as_root rm -rf "$dir"
  as_root install -d -o postgres -g postgres -m 700 "$dir"
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$password" | as_root tee "$dir/pwfile" "$dir/kopers.password" >/dev/null
  as_root chown postgres:postgres "$dir/pwfile"
  as_root runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres \
    --pwfile="$dir/pwfile" --auth-host=scram-sha-256 --auth-local=peer -E UTF8 >"$dir/initdb.log" \
    || die "initdb failed: $(tail -3 "$dir/initdb.log")"
  as_root runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start \
    >/dev/null || die "PostgreSQL did not start: $(tail -3 "$dir/server.log")"
  PGPASSWORD=$password psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE kopers LOGIN CREATEDB PASSWORD '$password'" >/dev/null
  printf 'postgresql://postgres:%s@127.0.0.1:%s/postgres\n' "$password" "$port"
}

stop_system_postgres() {
  local dir=$1 bin
  bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
  [ -d "$dir/data" ] && as_root runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1
  as_root rm -rf "$dir"
}
