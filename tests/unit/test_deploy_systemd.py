"""deploy/systemd: the unit, its account, its directories and its kopers.toml agree.

The unit may write only its StateDirectory, CacheDirectory and
RuntimeDirectory, so the shipped kopers.toml must put the data directory and
the template cache exactly there; the runtime directory must pass the XDG
checks (owned by the service user, mode 0700) for the embedded Postgres to
use it. systemd-analyze, where the host has it, checks the unit's syntax.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kopers import config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "systemd"


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Key=value lines of a unit file, every value of a repeated key in order."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def config_lines(path: Path) -> list[list[str]]:
    """The fields of each line of a sysusers.d or tmpfiles.d file."""
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return [ln.split() for ln in lines if ln and not ln.startswith("#")]


def test_the_shipped_config_puts_data_and_cache_where_the_unit_may_write() -> None:
    unit = unit_settings(DEPLOY / "kopers.service")
    cfg = config.load(str(DEPLOY / "kopers.toml"), env={})
    assert cfg.data_dir == Path("/var/lib") / unit["StateDirectory"][0]
    assert cfg.vm.cache_dir == Path("/var/cache") / unit["CacheDirectory"][0]
    env = dict(item.split("=", 1) for item in unit["Environment"])
    assert env["KOPERS_CONFIG"] == "/etc/kopers/kopers.toml"
    assert env["XDG_RUNTIME_DIR"] == f"/run/{unit['RuntimeDirectory'][0]}"
    assert unit["RuntimeDirectoryMode"] == ["0700"]
    assert unit["ExecStart"][0].split()[1:] == ["serve"]
    assert unit["KillMode"] == ["mixed"]


def test_the_account_and_directories_belong_to_the_units_user() -> None:
    unit = unit_settings(DEPLOY / "kopers.service")
    user = unit["User"][0]
    sysusers = config_lines(DEPLOY / "kopers.sysusers")
    [account] = [f for f in sysusers if f[0] == "u"]
    assert account[1] == user
    assert account[-2] == f"/var/lib/{unit['StateDirectory'][0]}"  # ~ is writable
    assert {f[2] for f in sysusers if f[0] == "m" and f[1] == user} == {"libvirt", "kvm"}
    tmpfiles = {f[1]: f for f in config_lines(DEPLOY / "kopers.tmpfiles")}
    runtime = tmpfiles[f"/run/{unit['RuntimeDirectory'][0]}"]
    assert runtime[2:5] == ["0700", user, user]
    assert tmpfiles["/etc/kopers"][2:5] == ["0750", "root", user]


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # scripts/test.sh installs systemd (the package, not as the init) for this.
    # verify insists that ExecStart's program exists here; it does not run it.
    text = (DEPLOY / "kopers.service").read_text()
    assert "ExecStart=/opt/kopers/bin/kopers " in text
    unit = tmp_path / "kopers.service"
    unit.write_text(text.replace("/opt/kopers/bin/kopers", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
