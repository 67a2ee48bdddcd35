"""Template recipe hashing and the image cache, with a fake recipe (no VM, no mmdebstrap)."""

from __future__ import annotations

from pathlib import Path

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
