"""One GPG key per project: key creation, rpmsign and detached signatures.

Each project has its own GnuPG home, `<keys_dir>/<owner>/<project>/` (mode
700), holding one unprotected RSA-3072 key. python-gnupg is blocking, so its
calls run in threads; rpmsign and gpgconf run as asyncio subprocesses.

gpg-agent. GnuPG starts one agent per home directory on the first use of a
secret key, and the agent outlives the process that started it. A server
with many projects would collect agents forever, so the agent of a home is
killed (`gpgconf --kill all`) as soon as no operation uses that home any
more. `Signer.session()` keeps one agent alive across several operations.
A kill in progress is waited for before the next operation starts, so no
gpg ever talks to a dying agent. Restarting an agent costs about 10 ms.

Socket paths. The agent puts its sockets in the home directory (there is no
/run/user/<uid> on the hosts we target), and a Unix socket path is limited
to 107 bytes. For a home whose path is too long, gpg and rpmsign are given a
short alias instead: a symlink `<tmp>/kopers-gnupg-<uid>/<hash>` to the real
home, in a private (0700, owner-checked) directory. The sockets are then
bound through the short path and land in the real home.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gnupg

from kopers.errors import InfrastructureError, NotFound
from kopers.publish import run_tool, stderr_tail
from kopers.publish.layout import validate_owner, validate_project

KEY_TYPE = "RSA"
KEY_LENGTH = 3072
# Longest socket name gpg-agent creates in its home directory.
_LONGEST_SOCKET = "/S.gpg-agent.browser"
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def key_uid(owner: str, project: str) -> tuple[str, str, str]:
    """(real name, comment, email) of a project key, Copr style.

    A group's `@` becomes `group_`, as in dnf's repo ids, so the address
    stays a valid mailbox with a single `@`.
    """
    safe_owner = owner.replace("@", "group_", 1)
    return f"{safe_owner}_{project}", "Kopers", f"{safe_owner}#{project}@kopers"


@dataclass(eq=False)
class _Home:
    """In-memory state of one project's GnuPG home; owned by its Signer."""

    path: Path  # the real directory
    gpg_home: str = ""  # what gpg is told: the path itself or a short alias
    gpg: gnupg.GPG | None = None
    fingerprint: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # create/delete
    users: int = 0
    killing: asyncio.Task[None] | None = None


class Signer:
    """Creates, uses and deletes per-project signing keys under `keys_dir`."""

    def __init__(self, keys_dir: Path, *, gpg_binary: str | None = None) -> None:
        self._keys_dir = Path(keys_dir)
        self._gpg = gpg_binary or shutil.which("gpg") or "/usr/bin/gpg"
        self._gpgconf = shutil.which("gpgconf") or "gpgconf"
        self._rpmsign = shutil.which("rpmsign") or "rpmsign"
        self._homes: dict[tuple[str, str], _Home] = {}

    def homedir(self, owner: str, project: str) -> Path:
        """The project's GnuPG home (pure: does not create it)."""
        return self._keys_dir / validate_owner(owner) / validate_project(project)

    # -- public operations -------------------------------------------------

    async def create_key(self, owner: str, project: str) -> str:
        """Make the project's key unless it exists; return its fingerprint."""
        home = self._home(owner, project)
        async with home.lock, self._session(home):
            existing = await self._find_fingerprint(home)
            if existing:
                return existing
            name, comment, email = key_uid(owner, project)
            gpg = await self._gnupg(home)
            spec = gpg.gen_key_input(
                key_type=KEY_TYPE,
                key_length=KEY_LENGTH,
                name_real=name,
                name_comment=comment,
                name_email=email,
                expire_date=0,
                no_protection=True,
            )
            result = await asyncio.to_thread(gpg.gen_key, spec)
            if not result.fingerprint:
                raise InfrastructureError(
                    f"gpg key generation for {owner}/{project} failed: "
                    f"{stderr_tail(result.stderr or '')}"
                )
            home.fingerprint = str(result.fingerprint)
            return home.fingerprint

    async def fingerprint(self, owner: str, project: str) -> str | None:
        """The project key's fingerprint, or None if it has no key yet."""
        home = self._home(owner, project)
        if home.fingerprint is not None:
            return home.fingerprint
        if not await asyncio.to_thread(home.path.is_dir):
            return None  # checked first: looking must not create an empty home
        async with self._session(home):
            return await self._find_fingerprint(home)

    async def public_key(self, owner: str, project: str) -> str:
        """The project's public key, ASCII armoured."""
        fpr = await self._require_key(owner, project)
        home = self._home(owner, project)
        # Exporting needs no agent, but the home (or its alias) must be there.
        home.gpg_home = await asyncio.to_thread(self._prepare_home, home.path)
        gpg = await self._gnupg(home)
        armored = await asyncio.to_thread(gpg.export_keys, fpr)
        if not isinstance(armored, str) or "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
            raise InfrastructureError(f"gpg could not export the key of {owner}/{project}")
        return armored

    async def sign_rpms(self, owner: str, project: str, paths: Sequence[Path]) -> None:
        """Sign RPMs (and SRPMs) in place with the project key."""
        if not paths:
            return
        fpr = await self._require_key(owner, project)
        home = self._home(owner, project)
        async with self._session(home):
            await run_tool(
                [
                    self._rpmsign,
                    # Debian's rpm points %__gpg at a gpg2 that does not exist.
                    "--define", f"__gpg {self._gpg}",
                    "--define", f"_gpg_path {home.gpg_home}",
                    "--define", f"_gpg_name {fpr}",
                    # Never prompt: the key has no passphrase and there is no tty.
                    "--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode error",
                    "--addsign",
                    *(str(p) for p in paths),
                ],
                what=f"signing {len(paths)} RPM(s) for {owner}/{project}",
            )  # fmt: skip

    async def sign_detached(self, owner: str, project: str, path: Path) -> Path:
        """Write an armoured detached signature of `path` to `path.asc`."""
        fpr = await self._require_key(owner, project)
        home = self._home(owner, project)
        async with self._session(home):
            gpg = await self._gnupg(home)
            target = path.with_name(path.name + ".asc")
            await asyncio.to_thread(_sign_file, gpg, fpr, path, target)
            return target

    async def delete_key(self, owner: str, project: str) -> None:
        """Remove the project's key and GnuPG home; a missing key is fine."""
        key = (validate_owner(owner), validate_project(project))
        home = self._home(owner, project)
        async with home.lock:
            if home.killing is not None and not home.killing.done():
                await asyncio.shield(home.killing)
            if await asyncio.to_thread(home.path.is_dir):
                # Also stops an agent left over by an earlier process.
                home.gpg_home = await asyncio.to_thread(self._prepare_home, home.path)
                await self._kill_agent(home)
            await asyncio.to_thread(_remove_home, home.path)
            self._homes.pop(key, None)

    @contextlib.asynccontextmanager
    async def session(self, owner: str, project: str) -> AsyncIterator[None]:
        """Keep the project's gpg-agent alive across several operations."""
        async with self._session(self._home(owner, project)):
            yield

    async def close(self) -> None:
        """Stop every agent this signer may have started (for shutdown)."""
        for home in list(self._homes.values()):
            if home.killing is not None and not home.killing.done():
                await asyncio.shield(home.killing)
            if not home.gpg_home:
                continue  # never used by this process
            if await asyncio.to_thread(home.path.is_dir):
                await self._kill_agent(home)

    # -- internals ---------------------------------------------------------

    def _home(self, owner: str, project: str) -> _Home:
        key = (validate_owner(owner), validate_project(project))
        home = self._homes.get(key)
        if home is None:
            home = self._homes[key] = _Home(path=self.homedir(owner, project))
        return home

    @contextlib.asynccontextmanager
    async def _session(self, home: _Home) -> AsyncIterator[None]:
        # Every time, not once: it also restores a short alias that a /tmp
        # cleaner removed (gpg would otherwise make an empty home there).
        home.gpg_home = await asyncio.to_thread(self._prepare_home, home.path)
        # Wait for a kill in progress: gpg must not connect to a dying agent.
        # No await between this loop and the increment, so no kill can start.
        while home.killing is not None and not home.killing.done():
            await asyncio.shield(home.killing)
        home.users += 1
        try:
            yield
        finally:
            home.users -= 1
            if home.users == 0:
                # Shielded so a cancelled caller still leaves no agent behind.
                home.killing = asyncio.ensure_future(self._kill_agent(home))
                await asyncio.shield(home.killing)

    async def _kill_agent(self, home: _Home) -> None:
        # An agent that will not die is a leak, not a reason to fail a publish.
        with contextlib.suppress(InfrastructureError):
            await run_tool(
                [self._gpgconf, "--homedir", home.gpg_home, "--kill", "all"],
                what=f"stopping gpg-agent of {home.path}",
                env={"GNUPGHOME": home.gpg_home},
            )

    async def _gnupg(self, home: _Home) -> gnupg.GPG:
        if home.gpg is None:
            if not home.gpg_home:
                home.gpg_home = await asyncio.to_thread(self._prepare_home, home.path)
            # The constructor runs `gpg --version`: keep it off the loop.
            home.gpg = await asyncio.to_thread(
                gnupg.GPG, gpgbinary=self._gpg, gnupghome=home.gpg_home
            )
        return home.gpg

    async def _find_fingerprint(self, home: _Home) -> str | None:
        if home.fingerprint is None:
            gpg = await self._gnupg(home)
            keys = await asyncio.to_thread(gpg.list_keys, True)
            if keys:
                home.fingerprint = str(keys[0]["fingerprint"])
        return home.fingerprint

    async def _require_key(self, owner: str, project: str) -> str:
        fpr = await self.fingerprint(owner, project)
        if fpr is None:
            raise NotFound(f"project {owner}/{project} has no signing key")
        return fpr

    def _prepare_home(self, path: Path) -> str:
        """Create the home (0700 all the way down) and pick the path gpg is given."""
        for directory in (self._keys_dir, path.parent, path):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        absolute = str(path.absolute())
        if len(absolute) + len(_LONGEST_SOCKET) <= _SUN_PATH_MAX:
            return absolute
        return str(_short_alias(Path(absolute)))


def _short_alias(home: Path) -> Path:
    """A short symlink to `home`, in a private per-user directory."""
    alias = _alias_path(home)
    base = alias.parent
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.lstat()
    # Another user could have planted the directory to redirect our keys.
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise InfrastructureError(f"{base} is not a private directory of this user")
    if len(str(alias)) + len(_LONGEST_SOCKET) > _SUN_PATH_MAX:
        raise InfrastructureError(f"temporary directory {base} is too long for gpg sockets")
    if not (alias.is_symlink() and os.readlink(alias) == str(home)):
        tmp = alias.with_name(alias.name + f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(home)
        os.replace(tmp, alias)  # atomic, even if a stale alias exists
    return alias


def _alias_path(home: Path) -> Path:
    digest = hashlib.sha256(str(home.absolute()).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"kopers-gnupg-{os.getuid()}" / digest


def _remove_home(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    alias = _alias_path(path)
    if alias.is_symlink():
        alias.unlink(missing_ok=True)


def _sign_file(gpg: gnupg.GPG, fingerprint: str, path: Path, target: Path) -> None:
    """Detached armoured signature, written beside `target` then renamed over it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with path.open("rb") as source:
            result = gpg.sign_file(
                source, keyid=fingerprint, detach=True, binary=False, output=str(tmp)
            )
        if not result.fingerprint:
            raise InfrastructureError(
                f"gpg could not sign {path.name}: {stderr_tail(result.stderr or '')}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the signature is public
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
