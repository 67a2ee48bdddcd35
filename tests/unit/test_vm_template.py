"""Template recipe hashing and the image cache, with a fake recipe (no VM, no mmdebstrap)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from kopers.errors import ConfigError, InfrastructureError
from kopers.vm.domain import DEFAULT_CMDLINE
from kopers.vm.template import (
    BUILDER_PATH,
    build_template,
    cached_image,
    default_templates_root,
    recipe_hash,
)

FAKE_RECIPE = """#!/bin/bash
set -e
out=$1
echo "building into $out"
for f in base.qcow2 vmlinuz initrd.img id_ed25519 id_ed25519.pub system-provides.txt; do
    echo "$f" > "$out/$f"
done
echo "root=/dev/vda ro" > "$out/cmdline"
echo "$$" >> "$(dirname "$0")/runs.log.ignored~"
"""


def make_template(root: Path, name: str = "fake-1", recipe: str = FAKE_RECIPE) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "build.sh").write_text(recipe)
    (folder / "builder.py").write_text("print('hello')\n")
    return folder


def runs(folder: Path) -> int:
    log = folder / "runs.log.ignored~"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_recipe_hash_is_stable(tmp_path: Path) -> None:
    folder = make_template(tmp_path)
    first = recipe_hash(folder)
    assert first == recipe_hash(folder)
    assert len(first) == 16
    int(first, 16)


def test_recipe_hash_changes_with_content_and_names(tmp_path: Path) -> None:
    folder = make_template(tmp_path)
    before = recipe_hash(folder)
    (folder / "builder.py").write_text("print('bye')\n")
    changed = recipe_hash(folder)
    assert changed != before
    (folder / "builder.py").rename(folder / "builder2.py")
    assert recipe_hash(folder) != changed


def test_recipe_hash_sees_subfolders_and_new_files(tmp_path: Path) -> None:
    folder = make_template(tmp_path)
    before = recipe_hash(folder)
    (folder / "data").mkdir()
    (folder / "data" / "packages.txt").write_text("gcc\n")
    assert recipe_hash(folder) != before


def test_recipe_hash_ignores_bytecode(tmp_path: Path) -> None:
    folder = make_template(tmp_path)
    before = recipe_hash(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "builder.cpython-311.pyc").write_bytes(b"\0")
    assert recipe_hash(folder) == before


def test_recipe_hash_does_not_depend_on_location(tmp_path: Path) -> None:
    a = make_template(tmp_path / "a")
    b = make_template(tmp_path / "b")
    assert recipe_hash(a) == recipe_hash(b)


def test_real_templates_exist() -> None:
    root = default_templates_root()
    assert (root / "debian-12" / "build.sh").is_file()
    assert (root / "debian-12" / "builder.py").is_file()
    assert (root / "fedora-40" / "build.sh").is_file()
    assert (root / "fedora-40" / "builder.py").is_file()


def test_unknown_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        cached_image("nope", tmp_path, tmp_path / "cache")
    with pytest.raises(ConfigError):
        cached_image("../etc", tmp_path, tmp_path / "cache")


async def test_build_then_cache_hit(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    folder = make_template(root)
    assert cached_image("fake-1", root, cache) is None
    lines: list[str] = []
    image = await build_template("fake-1", root, cache, lines.append)
    digest = recipe_hash(folder)
    assert image.dir == cache / "templates" / f"fake-1-{digest}"
    assert image.recipe_hash == digest
    assert image.base_image == image.dir / "base.qcow2"
    assert image.kernel.name == "vmlinuz" and image.initrd.name == "initrd.img"
    assert image.ssh_key == image.dir / "id_ed25519"
    assert image.ssh_key.stat().st_mode & 0o077 == 0
    assert image.builder == BUILDER_PATH
    assert image.cmdline == "root=/dev/vda ro"
    assert (image.dir / "complete").is_file()
    assert any("building into" in line for line in lines)
    # Nothing half-built is left next to the image.
    assert [p.name for p in (cache / "templates").iterdir()] == [image.dir.name]

    again = await build_template("fake-1", root, cache, lines.append)
    assert again == image
    assert runs(folder) == 1
    assert cached_image("fake-1", root, cache) == image


async def test_recipe_change_rebuilds_and_removes_old_image(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    folder = make_template(root)
    old = await build_template("fake-1", root, cache, lambda _: None)
    (folder / "builder.py").write_text("print('v2')\n")
    assert cached_image("fake-1", root, cache) is None
    new = await build_template("fake-1", root, cache, lambda _: None)
    assert new.dir != old.dir
    assert not old.dir.exists()
    assert new.dir.exists()


async def test_other_templates_are_kept(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    make_template(root, "fake-1")
    make_template(root, "fake-1-extra")
    first = await build_template("fake-1-extra", root, cache, lambda _: None)
    await build_template("fake-1", root, cache, lambda _: None)
    assert first.dir.exists()


async def test_incomplete_image_is_not_used(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    make_template(root)
    image = await build_template("fake-1", root, cache, lambda _: None)
    (image.dir / "complete").unlink()
    assert cached_image("fake-1", root, cache) is None
    rebuilt = await build_template("fake-1", root, cache, lambda _: None)
    assert (rebuilt.dir / "complete").is_file()


async def test_failed_recipe_raises_and_cleans_up(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    make_template(root, recipe="#!/bin/bash\necho step one\necho 'mirror unreachable'\nexit 3\n")
    with pytest.raises(InfrastructureError, match="exit code 3: mirror unreachable"):
        await build_template("fake-1", root, cache, lambda _: None)
    assert list((cache / "templates").iterdir()) == []
    assert cached_image("fake-1", root, cache) is None


async def test_recipe_missing_outputs_raises(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    make_template(root, recipe='#!/bin/bash\ntouch "$1/base.qcow2"\n')
    with pytest.raises(InfrastructureError, match="did not produce"):
        await build_template("fake-1", root, cache, lambda _: None)


async def test_default_cmdline_when_recipe_writes_none(tmp_path: Path) -> None:
    root, cache = tmp_path / "templates", tmp_path / "cache"
    make_template(root, recipe=FAKE_RECIPE.replace('echo "root=/dev/vda ro" > "$out/cmdline"', ""))
    image = await build_template("fake-1", root, cache, lambda _: None)
    assert image.cmdline == DEFAULT_CMDLINE


# -- the builder scripts copied into the images (stdlib only, so testable here) --


def load_builder(template: str) -> ModuleType:
    path = default_templates_root() / template / "builder.py"
    spec = importlib.util.spec_from_file_location(f"builder_{template.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def job(tmp_path: Path, **overrides: object) -> dict[str, object]:
    srpm = tmp_path / "x-1-1.src.rpm"
    srpm.write_bytes(b"")
    values: dict[str, object] = {
        "build_id": 7,
        "chroot": "fedora-40-x86_64",
        "srpm": str(srpm),
        "result_dir": str(tmp_path / "out"),
        "macros": {"dist": ".fc40.kopers", "vendor": "Kopers a/p", "packager": "a via Kopers"},
        "repos": [
            {"id": "copr_base", "name": "a/p", "baseurl": "http://127.0.0.1:1/", "gpgcheck": False}
        ],
        "enable_net": False,
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize("template", ["debian-12", "fedora-40"])
def test_builder_forces_identity(template: str, tmp_path: Path) -> None:
    builder = load_builder(template)
    spec = tmp_path / "p.spec"
    spec.write_text(
        "Name: p\n%define dist .evil\n  %global  dist .evil2\nVendor: Evil\n"
        "packager: Mallory\nRelease: 1%{?dist}\n%define distro x\nSummary: vendor: in text\n"
    )
    builder.force_identity(spec)
    assert (
        spec.read_text()
        == "Name: p\nRelease: 1%{?dist}\n%define distro x\nSummary: vendor: in text\n"
    )


@pytest.mark.parametrize("template", ["debian-12", "fedora-40"])
def test_builder_rejects_invalid_jobs(template: str, tmp_path: Path) -> None:
    builder = load_builder(template)
    good = job(tmp_path)
    builder.load_job(write_job(tmp_path, good))
    bad_jobs = [
        {**good, "build_id": "7"},
        {**good, "macros": {"dist": ".x", "vendor": "v"}},
        {**good, "repos": [{"id": "bad id", "name": "n", "baseurl": "http://x/"}]},
        {**good, "repos": [{"id": "ok", "name": "n\nproxy=evil", "baseurl": "http://x/"}]},
        {**good, "srpm": str(tmp_path / "missing.src.rpm")},
        {**good, "enable_net": "yes"},
    ]
    for bad in bad_jobs:
        with pytest.raises(builder.JobError):
            builder.load_job(write_job(tmp_path, bad))
    assert builder.main(["kopers-builder", str(tmp_path / "nope.json")]) == 2


def write_job(tmp_path: Path, value: dict[str, object]) -> str:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(value))
    return str(path)


def test_debian_builder_releasever() -> None:
    builder = load_builder("debian-12")
    assert builder.releasever("debian-12-x86_64") == "12"
    assert builder.releasever("fedora-rawhide-x86_64") == "rawhide"


def test_fedora_mock_config_is_valid_python(tmp_path: Path) -> None:
    builder = load_builder("fedora-40")
    values = job(tmp_path, proxy="http://127.0.0.1:3128", enable_net=True)
    text = builder.mock_config(values)
    included: list[str] = []
    config: dict[str, object] = {
        "macros": {},
        "plugin_conf": {"package_state_opts": {}},
        "dnf.conf": "[main]\nkeepcache=1\n\n[fedora]\nname=Fedora\n",
    }
    exec(text, {"include": included.append, "config_opts": config})
    assert included == ["/etc/mock/fedora-40-x86_64.cfg"]
    assert config["macros"] == {
        "%dist": ".fc40.kopers",
        "%vendor": "Kopers a/p",
        "%packager": "a via Kopers",
    }
    assert config["rpmbuild_networking"] is True
    dnf_conf = str(config["dnf.conf"])
    assert "[copr_base]\nname=a/p\nbaseurl=http://127.0.0.1:1/\ngpgcheck=0" in dnf_conf
    assert dnf_conf.startswith("[main]\nproxy=http://127.0.0.1:3128\nkeepcache=1\n")


def test_fedora_manifest_from_package_state(tmp_path: Path) -> None:
    builder = load_builder("fedora-40")
    results, out = tmp_path / "results", tmp_path / "out"
    results.mkdir()
    out.mkdir()
    (results / "installed_pkgs.log").write_text(
        "bash-5.2.26-3.fc40.x86_64 1706659200 8168424 d2c0ffee installed\n"
        "acl-2.3.2-1.fc40.x86_64 1706659200 1000 abcd installed\n"
    )
    builder.write_manifest(results, out)
    assert (out / "manifest.txt").read_text() == (
        "acl-2.3.2-1.fc40.x86_64\nbash-5.2.26-3.fc40.x86_64\n"
    )
