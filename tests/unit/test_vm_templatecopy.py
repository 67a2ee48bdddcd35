"""A template image's copy on another host: its paths there, and telling a copy from a stranger."""

from __future__ import annotations

from pathlib import Path

import pytest

from kopers.vm.template import TemplateImage, image_dir
from kopers.vm.templatecopy import FileFacts, local_facts, mismatch, placed

HASH = "0123456789abcdef"


def image(cache: Path) -> TemplateImage:
    folder = image_dir("debian-12", HASH, cache)
    folder.mkdir(parents=True)
    files = {
        "complete": b"debian-12 0123456789abcdef\n",
        "base.qcow2": b"QFI\xfb" + b"\0" * 60,
        "vmlinuz": b"k" * 100,
        "initrd.img": b"i" * 50,
        "id_ed25519": b"private",
        "id_ed25519.pub": b"ssh-ed25519 AAAA kopers\n",
        "cmdline": b"root=/dev/vda rw\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return TemplateImage(
        "debian-12",
        HASH,
        folder,
        folder / "base.qcow2",
        folder / "vmlinuz",
        folder / "initrd.img",
        folder / "id_ed25519",
        "/usr/local/bin/kopers-builder",
    )


def test_on_another_host_the_image_lies_in_its_cache_but_the_key_stays_here(
    tmp_path: Path,
) -> None:
    here = image(tmp_path / "here")
    there = placed(here, Path("/srv/kopers-cache"))
    folder = Path("/srv/kopers-cache/templates/debian-12-0123456789abcdef")
    assert (there.dir, there.base_image, there.kernel, there.initrd) == (
        folder,
        folder / "base.qcow2",
        folder / "vmlinuz",
        folder / "initrd.img",
    )
    assert there.ssh_key == here.ssh_key and there.builder == here.builder


def test_a_copy_matches_and_needs_no_private_key(tmp_path: Path) -> None:
    wanted = local_facts(image(tmp_path))
    assert "id_ed25519" not in wanted  # the host boots the image; it never logs in
    assert wanted["cmdline"].data == b"root=/dev/vda rw\n"
    assert wanted["base.qcow2"] == FileFacts(64, None)  # large files: by size only
    assert mismatch(wanted, dict(wanted)) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"vmlinuz": None, "complete": None}, "it has no complete, vmlinuz"),
        ({"base.qcow2": FileFacts(10)}, "its base.qcow2 has 10 bytes, 64 here"),
        (
            {"id_ed25519.pub": FileFacts(24, b"ssh-ed25519 BBBB kopers\n")},
            "its id_ed25519.pub differs: it is another build of the recipe, not a copy",
        ),
        ({"complete": FileFacts(27, b"debian-12 fedcba9876543210\n")}, "its complete mark differs"),
    ],
)
def test_what_is_wrong_with_a_copy_is_named(
    tmp_path: Path, change: dict[str, FileFacts | None], reason: str
) -> None:
    wanted = local_facts(image(tmp_path))
    found = {name: facts for name, facts in wanted.items() if change.get(name, facts) is not None}
    found |= {name: facts for name, facts in change.items() if facts is not None}
    assert mismatch(wanted, found) == reason
