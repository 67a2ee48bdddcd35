#!/usr/bin/env bash
# Run the whole test suite: lint, types, unit, integration (real Postgres,
# gpg, rpm, createrepo_c) and end-to-end (real VMs, copr-cli, dnf).
# Installs what it needs first. Extra arguments go to pytest.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$KOPERS_ROOT"

# chromium: the pages are checked in a real headless browser; nginx: the shipped
# front-end configuration is tested; postgresql: the integration tier also runs
# on Debian's server; openssh-server: a second libvirt host is reached over SSH;
# systemd: systemd-analyze checks the shipped units.
install_system_packages chromium nginx postgresql openssh-server systemd
start_libvirt
make_venv "[dev]"
build_templates

say "ruff"
lint_dirs=(kopers tests)
[ -d bench ] && lint_dirs+=(bench)
.venv/bin/ruff check "${lint_dirs[@]}"
say "mypy"
.venv/bin/mypy kopers

# Two workers: TCG runs one vCPU per VM, so two builds use both cores. A file's
# tests stay on one worker (--dist loadfile), so the servers and VMs a module
# shares are shared there; each worker has its own server, ports and data dir.
workers=${KOPERS_TEST_WORKERS:-2}
say "pytest ($workers workers)"
set +e
.venv/bin/pytest -p no:cacheprovider -ra --durations=30 -n "$workers" --dist loadfile "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  die "pytest collected no tests"
fi

# The integration tier again, on Debian's PostgreSQL server through
# database.dsn, as a plain role that owns its databases (the run above used
# the embedded server). Only for the whole suite: extra arguments pick tests.
# Its tests that never reach Postgres (signing, the publisher, the network
# proxy) ran above and do not depend on the server: KOPERS_TEST_PG_ONLY
# leaves them out of this pass.
if [ $# -eq 0 ] && [ "${KOPERS_TEST_EXTERNAL_PG:-1}" = 1 ]; then
  pgdir=/var/tmp/kopers-test-system-pg
  pgport=${KOPERS_TEST_PG_PORT:-55432}
  say "pytest: the integration tier on Debian's PostgreSQL"
  trap 'stop_system_postgres "$pgdir"' EXIT
  KOPERS_TEST_PG_DSN=$(start_system_postgres "$pgdir" "$pgport")
  KOPERS_TEST_PG_OWNER="kopers:$(cat "$pgdir/kopers.password")"
  KOPERS_TEST_PG_ONLY=1
  export KOPERS_TEST_PG_DSN KOPERS_TEST_PG_OWNER KOPERS_TEST_PG_ONLY
  set +e
  .venv/bin/pytest -p no:cacheprovider -ra -q -n "$workers" --dist loadfile tests/integration
  external=$?
  set -e
  if [ $external -eq 5 ]; then
    die "pytest collected no integration tests"
  fi
  [ $status -ne 0 ] || status=$external
fi
exit $status
