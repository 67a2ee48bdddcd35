#!/usr/bin/env bash
# Run the whole test suite: lint, types, unit, integration (real Postgres,
# gpg, rpm, createrepo_c) and end-to-end (real VMs, copr-cli, dnf).
# Installs what it needs first. Extra arguments go to pytest.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$KOPERS_ROOT"

# chromium: the live-log page is checked in a real headless browser.
install_system_packages chromium
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
exit $status
