"""Pool, host and watchdog settings in kopers.toml."""

from pathlib import Path

import pytest

from kopers import config
from kopers.errors import ConfigError
from kopers.redact import host_roots, scrub

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "k.toml"
    path.write_text(text)
    return config.load(str(path), env=env or {})


def test_defaults_one_local_host_and_one_warm_clone(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    assert cfg.vm.warm == 1
    assert [(h.name, h.uri, h.slots, h.tunnel) for h in cfg.vm.hosts] == [
        ("local", "qemu:///system", 1, "")
    ]
    pool = cfg.vm.pool("debian-12")
    assert (pool.max_concurrent, pool.warm, pool.vcpus, pool.memory_mib, pool.disk_gib) == (
        1,
        1,
        1,
        1024,
        0,
    )
    assert (cfg.build.silence_timeout_s, cfg.build.max_log_mib) == (3600, 256)


def test_shipped_file_keeps_one_warm_clone_and_the_env_can_turn_it_off() -> None:
    cfg = config.load(str(REPO / "kopers.toml"), env={})
    assert cfg.vm.warm == 1 and cfg.vm.slots == 1
    cold = config.load(str(REPO / "kopers.toml"), env={"KOPERS_VM_WARM": "0"})
    assert cold.vm.warm == 0


def test_pools_override_the_vm_defaults_per_template(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "[vm]\nvcpus = 2\nwarm = 2\nmax_concurrent = 3\n"
        '[[vm.pools]]\ntemplate = "fedora-40"\nmemory_mib = 4096\nwarm = 0\ndisk_gib = 20\n',
    )
    fedora, debian = cfg.vm.pool("fedora-40"), cfg.vm.pool("debian-12")
    assert (fedora.vcpus, fedora.memory_mib, fedora.warm, fedora.disk_gib) == (2, 4096, 0, 20)
    assert fedora.max_concurrent == 3
    assert (debian.vcpus, debian.warm) == (2, 2)


def test_hosts_list_with_a_remote_host_and_its_tunnel(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[[vm.hosts]]\nname = "local"\nuri = "qemu:///system"\nslots = 2\n'
        '[[vm.hosts]]\nname = "b2"\nuri = "qemu+ssh://root@build2:2222/system"\nslots = 4\n'
        'hypervisor = "kvm"\noverlay_dir = "/srv/overlays"\n',
    )
    local, remote = cfg.vm.hosts
    assert cfg.vm.slots == 6
    assert (local.tunnel, local.overlay_dir) == ("", None)
    assert remote.tunnel == "root@build2:2222"  # from the URI
    assert (remote.hypervisor, remote.overlay_dir) == ("kvm", Path("/srv/overlays"))


def test_a_remote_hosts_cache_key_and_known_hosts(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[[vm.hosts]]\nname = "b2"\nslots = 1\n'
        'uri = "qemu+ssh://kb@build2:2222/session?keyfile=/etc/kopers/id&no_verify=0"\n'
        'cache_dir = "/srv/kopers-cache"\nknown_hosts = "hosts"\n'
        '[[vm.hosts]]\nname = "b3"\nslots = 1\nuri = "qemu+ssh://build3/system"\n'
        'ssh_key = "/etc/kopers/b3"\n',
    )
    b2, b3 = cfg.vm.hosts
    assert b2.cache_dir == Path("/srv/kopers-cache")
    assert b2.ssh_key == Path("/etc/kopers/id")  # the key libvirt's ssh uses: keyfile=
    assert b2.known_hosts == tmp_path / "hosts"  # beside the config file
    assert (b3.cache_dir, b3.ssh_key, b3.known_hosts) == (None, Path("/etc/kopers/b3"), None)
    # Where each keeps its template copies: its own cache_dir, else (remote) vm.cache_dir.
    assert cfg.vm.host_cache(b2) == Path("/srv/kopers-cache")
    assert cfg.vm.host_cache(b3) == cfg.vm.cache_dir
    with pytest.raises(ConfigError, match="b4: cache_dir must be an absolute path on that host"):
        load(tmp_path, '[[vm.hosts]]\nname = "b4"\nslots = 1\nuri = "x"\ncache_dir = "~/c"\n')


def test_a_remote_hosts_folders_stay_out_of_public_messages(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[[vm.hosts]]\nname = "b2"\nslots = 1\nuri = "qemu+ssh://build2/system"\n'
        'cache_dir = "/srv/cache"\noverlay_dir = "/srv/overlays"\n',
    )
    message = "cannot start VM: /srv/overlays/x.qcow2: backing /srv/cache/templates/t/base.qcow2"
    assert scrub(message, host_roots(cfg)) == (
        "cannot start VM: <data>/x.qcow2: backing <data>/templates/t/base.qcow2"
    )


def test_environment_overrides_reach_the_new_settings(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "",
        env={
            "KOPERS_VM_WARM": "0",
            "KOPERS_BUILD_SILENCE_TIMEOUT": "30",
            "KOPERS_BUILD_MAX_LOG_MIB": "1",
        },
    )
    assert (cfg.vm.warm, cfg.build.silence_timeout_s, cfg.build.max_log_mib) == (0, 30, 1)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[vm]\nwarm = -1\n", "non-negative"),
        ('[[vm.pools]]\ntemplate = "t"\nwarmth = 1\n', "unknown setting.*warmth"),
        ("[[vm.pools]]\nwarm = 1\n", "template"),
        ('[[vm.pools]]\ntemplate = "t"\n[[vm.pools]]\ntemplate = "t"\n', "only one"),
        ('[[vm.hosts]]\nname = "a"\nuri = "qemu:///system"\nslots = 0\n', "positive"),
        ('[[vm.hosts]]\nname = "a"\nslots = 1\n', "uri"),
        ('[[vm.hosts]]\nname = "a"\nuri = "x"\nslots = 1\nhypervisor = "xen"\n', "hypervisor"),
        ("[build]\nsilence_timeout = 0\n", "positive"),
    ],
)
def test_bad_pool_and_host_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_a_local_host_uses_the_images_here_unless_it_names_a_cache(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[[vm.hosts]]\nname = "here"\nslots = 1\nuri = "qemu:///system"\n'
        '[[vm.hosts]]\nname = "mine"\nslots = 1\nuri = "qemu:///session"\n'
        'cache_dir = "/srv/own-cache"\n',
    )
    here, mine = cfg.vm.hosts
    assert cfg.vm.host_cache(here) is None
    assert cfg.vm.host_cache(mine) == Path("/srv/own-cache")
