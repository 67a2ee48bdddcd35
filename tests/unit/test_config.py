"""Configuration loading, defaults and environment overrides."""

from pathlib import Path

import pytest

from kopers import config
from kopers.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_file_parses_and_enables_the_test_chroot() -> None:
    cfg = config.load(str(REPO / "kopers.toml"), env={})
    assert [c.name for c in cfg.enabled_chroots] == ["debian-12-x86_64"]
    assert cfg.chroot("debian-12-x86_64").os_version == "debian-12"  # type: ignore[union-attr]
    assert cfg.server.public_url == "http://127.0.0.1:8080"


def test_fixed_env_names_and_generic_overrides(tmp_path: Path) -> None:
    env = {
        "KOPERS_DATA_DIR": str(tmp_path),
        "KOPERS_LISTEN": "127.0.0.1:9999",
        "KOPERS_PUBLIC_URL": "http://example.test/",
        "KOPERS_VM_MEMORY_MIB": "2048",
        "KOPERS_BUILD_REPO_TAG": "mine",
        "KOPERS_NETWORK_ALLOW": "127.0.0.2/32, 10.1.0.0/16",
    }
    cfg = config.load(str(REPO / "kopers.toml"), env=env)
    assert cfg.data_dir == tmp_path
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 9999)
    assert cfg.server.public_url == "http://example.test"
    assert cfg.vm.memory_mib == 2048
    assert cfg.build.repo_tag == "mine"
    assert [str(n) for n in cfg.network.allow] == ["127.0.0.2/32", "10.1.0.0/16"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('[server]\nlisten = "nope"\n', "host:port"),
        ('[vm]\nhypervisor = "xen"\n', "hypervisor"),
        ("bogus = 1\n", "unknown setting"),
        ('[[chroots]]\nname = "debian"\ntemplate = "t"\ndist = ".d"\n', "distro-version-arch"),
        ("[vm]\nvcpus = 0\n", "positive"),
        ('[network]\nallow = ["not-a-net"]\n', "network.allow"),
        ('[network]\nallow = "10.0.0.0/8"\n', "network.allow"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "k.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.load(str(path), env={})


def test_bad_env_value_is_named() -> None:
    with pytest.raises(ConfigError, match="integer"):
        config.load(str(REPO / "kopers.toml"), env={"KOPERS_VM_VCPUS": "many"})
