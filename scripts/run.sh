#!/usr/bin/env bash
# Set up Kopers on Debian 12 and run it: system packages, .venv, the builder
# VM template, the embedded Postgres, an admin user and a copr-cli config.
# Settings come from kopers.toml and KOPERS_* variables (see kopers.toml).
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$KOPERS_ROOT"
export KOPERS_CONFIG=${KOPERS_CONFIG:-$KOPERS_ROOT/kopers.toml}
admin=${KOPERS_ADMIN:-admin}

install_system_packages
start_libvirt
make_venv
build_templates

kopers=.venv/bin/kopers
data_dir=$("$kopers" config --get data_dir)
public_url=$("$kopers" config --get public_url)
"$kopers" user add "$admin" --admin --exist-ok

say "starting kopers serve"
"$kopers" serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM
for _ in $(seq 1 120); do
  curl -fsS "$public_url/api_3/" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || die "kopers serve exited; see the messages above"
  sleep 1
done

conf="$data_dir/copr-cli-$admin.conf"
(umask 077; "$kopers" token create "$admin" > "$conf")
cat <<MSG

Kopers is running.
  Web pages:   $public_url/
  Copr API:    $public_url/api_3/
  Results:     $public_url/results/
  copr-cli config for user '$admin' (saved in $conf):

$(cat "$conf")

  Try:  copr-cli --config $conf create demo --chroot debian-12-x86_64
Press Ctrl-C to stop.
MSG
wait $server
