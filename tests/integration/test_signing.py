"""Per-project keys with real gpg, rpmsign and rpm (kopers.publish.signing)."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kopers.errors import BadRequest, NotFound
from kopers.publish.signing import Signer
from tests.rpms import noarch_rpm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("gpg", "gpgconf", "gpgv", "rpmbuild", "rpmsign")),
        reason="needs gpg, gpgv, rpmbuild and rpmsign",
    ),
]


def build_rpm(workdir: Path, name: str) -> tuple[Path, Path]:
    """A tiny noarch package: (binary RPM, SRPM)."""
    return noarch_rpm(workdir, name)


def rpm_checksig(dbdir: Path, armored_key: str, *rpms: Path) -> str:
    """`rpm -Kv` against a private rpm database holding only `armored_key`."""
    dbdir.mkdir(exist_ok=True)
    key = dbdir / "key.asc"
    key.write_text(armored_key)
    subprocess.run(["rpm", "--dbpath", str(dbdir), "--import", str(key)], check=True)
    result = subprocess.run(
        ["rpm", "--dbpath", str(dbdir), "-Kv", *map(str, rpms)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def gpgv_verify(tmp: Path, armored_key: str, signature: Path, data: Path) -> None:
    keyring = tmp / "trusted.gpg"
    subprocess.run(
        ["gpg", "--batch", "--yes", "--dearmor", "-o", str(keyring)],
        input=armored_key.encode(),
        check=True,
    )
    subprocess.run(
        ["gpgv", "--keyring", str(keyring), str(signature), str(data)],
        check=True,
        capture_output=True,
    )


def agent_sockets(home: Path) -> list[str]:
    return sorted(p.name for p in home.glob("S.gpg-agent*"))


@pytest.fixture
async def signer(tmp_path: Path) -> AsyncIterator[Signer]:
    s = Signer(tmp_path / "keys")
    yield s
    await s.close()


async def test_create_key_is_idempotent(signer: Signer, tmp_path: Path) -> None:
    started = time.monotonic()
    fpr = await signer.create_key("alice", "tools")
    print(f"create_key: {time.monotonic() - started:.3f}s")
    assert len(fpr) == 40
    assert await signer.create_key("alice", "tools") == fpr
    # A fresh Signer (a restarted server) finds the key on disk.
    assert await Signer(tmp_path / "keys").fingerprint("alice", "tools") == fpr

    home = signer.homedir("alice", "tools")
    assert home == tmp_path / "keys" / "alice" / "tools"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert agent_sockets(home) == []  # the agent was stopped after use

    listing = subprocess.run(
        ["gpg", "--homedir", str(home), "--list-keys", "--with-colons"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "alice_tools (Kopers) <alice#tools@kopers>" in listing
    assert ":3072:1:" in listing  # RSA (algo 1), 3072 bits


async def test_concurrent_create_key_makes_one_key(signer: Signer) -> None:
    fprs = await asyncio.gather(*(signer.create_key("bob", "p") for _ in range(4)))
    assert len(set(fprs)) == 1


async def test_group_owner_key(signer: Signer) -> None:
    await signer.create_key("@sig", "proj")
    assert signer.homedir("@sig", "proj").name == "proj"
    armored = await signer.public_key("@sig", "proj")
    assert armored.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


async def test_sign_rpms_verifies_with_rpm(signer: Signer, tmp_path: Path) -> None:
    rpm, srpm = build_rpm(tmp_path, "signme")
    await signer.create_key("alice", "tools")
    started = time.monotonic()
    await signer.sign_rpms("alice", "tools", [rpm, srpm])
    print(f"sign_rpms (2 files): {time.monotonic() - started:.3f}s")
    out = rpm_checksig(tmp_path / "rpmdb", await signer.public_key("alice", "tools"), rpm, srpm)
    assert out.count("Signature, key ID") == 2, out
    assert "NOKEY" not in out and "NOT OK" not in out, out
    assert agent_sockets(signer.homedir("alice", "tools")) == []


async def test_signature_from_another_project_does_not_verify(
    signer: Signer, tmp_path: Path
) -> None:
    (rpm, _) = build_rpm(tmp_path, "other")
    await signer.create_key("alice", "one")
    await signer.create_key("alice", "two")
    await signer.sign_rpms("alice", "one", [rpm])
    dbdir = tmp_path / "db"
    dbdir.mkdir()
    (dbdir / "k.asc").write_text(await signer.public_key("alice", "two"))
    subprocess.run(["rpm", "--dbpath", str(dbdir), "--import", str(dbdir / "k.asc")], check=True)
    out = subprocess.run(
        ["rpm", "--dbpath", str(dbdir), "-Kv", str(rpm)], capture_output=True, text=True
    ).stdout
    assert "NOKEY" in out


async def test_sign_detached(signer: Signer, tmp_path: Path) -> None:
    await signer.create_key("alice", "tools")
    data = tmp_path / "repomd.xml"
    data.write_text("<repomd/>\n")
    sigs = await asyncio.gather(*(signer.sign_detached("alice", "tools", data) for _ in range(3)))
    assert sigs[0] == tmp_path / "repomd.xml.asc"
    text = sigs[0].read_text()
    assert text.startswith("-----BEGIN PGP SIGNATURE-----")
    gpgv_verify(tmp_path, await signer.public_key("alice", "tools"), sigs[0], data)
    assert not list(tmp_path.glob(".repomd.xml.asc.*"))  # no temp files left


async def test_missing_key(signer: Signer, tmp_path: Path) -> None:
    assert await signer.fingerprint("nobody", "p") is None
    with pytest.raises(NotFound):
        await signer.public_key("nobody", "p")
    with pytest.raises(NotFound):
        await signer.sign_detached("nobody", "p", tmp_path / "x")


async def test_delete_key(signer: Signer) -> None:
    await signer.create_key("alice", "gone")
    home = signer.homedir("alice", "gone")
    async with signer.session("alice", "gone"):
        await signer.public_key("alice", "gone")
    await signer.delete_key("alice", "gone")
    assert not home.exists()
    assert await signer.fingerprint("alice", "gone") is None
    await signer.delete_key("alice", "gone")  # deleting twice is fine


async def test_bad_names_never_reach_the_filesystem(signer: Signer, tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        await signer.create_key("../x", "p")
    with pytest.raises(BadRequest):
        await signer.delete_key("alice", "..")
    assert not (tmp_path / "x").exists()


async def test_long_home_path_uses_short_alias(tmp_path: Path) -> None:
    # Beyond ~87 bytes gpg-agent cannot bind its sockets inside the home.
    keys_dir = tmp_path / ("k" * 60)
    signer = Signer(keys_dir)
    owner, project = "o" * 30, "p" * 40
    home = signer.homedir(owner, project)
    assert len(str(home)) > 110
    try:
        rpm, _ = build_rpm(tmp_path, "longpath")
        await signer.create_key(owner, project)
        await signer.sign_rpms(owner, project, [rpm])
        out = rpm_checksig(tmp_path / "db", await signer.public_key(owner, project), rpm)
        assert "Signature, key ID" in out
        assert agent_sockets(home) == []
    finally:
        await signer.delete_key(owner, project)
        await signer.close()
    assert not home.exists()


async def test_asking_about_a_missing_key_creates_nothing(signer: Signer, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        await signer.sign_rpms("ghost", "p", [tmp_path / "x.rpm"])
    assert not signer.homedir("ghost", "p").exists()
