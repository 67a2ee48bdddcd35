"""PostgreSQL's client programs (pg_dump, pg_restore): which one, and running it.

A dump needs a pg_dump at least as new as the server, and a dump is read
only by a pg_restore at least as new as the pg_dump that wrote it. The
candidates are the programs pgserver ships beside the embedded server,
Debian's `/usr/lib/postgresql/<N>/bin/`, and whatever is on PATH; each is
asked its version (`--version`), and `choose_tool` picks one. The choosing
is pure; the finding and the running, further down, are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from kopers.errors import BackupError

DEBIAN_ROOT = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


# -- pure -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tool:
    path: str
    major: int


def parse_tool_version(output: str) -> int | None:
    """`pg_dump (PostgreSQL) 16.2` -> 16."""
    match = _VERSION.search(output)
    return int(match.group(1)) if match else None


def server_major(version_num: int) -> int:
    """`server_version_num` -> major: 160002 -> 16, 90624 -> 9 (9.6 counted as 9)."""
    return version_num // 10000


def choose_tool(name: str, found: Sequence[Tool], at_least: int) -> Tool:
    """The oldest of `found` whose major version is at least `at_least`."""
    # Stable: among equals, the first found (a real program before a wrapper on PATH).
    fit = sorted((t for t in found if t.major >= at_least), key=lambda t: t.major)
    if fit:
        return fit[0]
    seen = ", ".join(f"{t.path} ({t.major})" for t in found)
    detail = f"found only {seen}" if found else f"no {name} was found"
    raise BackupError(
        f"{name} {at_least} or newer is needed for PostgreSQL {at_least}; {detail}; "
        f"install postgresql-client-{at_least} (or pip install pgserver)"
    )


def without_password(dsn: str) -> tuple[str, str | None]:
    """(the DSN without its password, the password): the password goes in PGPASSWORD,
    not on a command line every user of the host can read."""
    parts = urlsplit(dsn)
    if parts.password is None and ":" not in parts.netloc.rpartition("@")[0]:
        return dsn, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}@{host}" if user else host
    password = unquote(parts.password or "")
    return urlunsplit(parts._replace(netloc=netloc)), password or None


# -- finding and running them -----------------------------------------------------


def candidates(name: str) -> list[Path]:
    """Where `name` may be, in no particular order (missing ones included)."""
    paths = []
    # The embedded server's own programs, found without importing pgserver
    # (which starts looking for a runtime directory as it is imported).
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        paths.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    paths.extend(sorted(DEBIAN_ROOT.glob(f"*/bin/{name}")))
    on_path = shutil.which(name)
    if on_path:
        paths.append(Path(on_path))
    return paths


def found(name: str) -> list[Tool]:
    """Each runnable candidate with its major version (blocking)."""
    tools: dict[str, Tool] = {}
    for path in candidates(name):
        real = os.path.realpath(path)
        if real in tools or not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [str(path), "--version"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        major = parse_tool_version(out)
        if major is not None:
            tools[real] = Tool(str(path), major)
    return list(tools.values())


async def find_tool(name: str, at_least: int) -> Tool:
    """The oldest `name` of major version `at_least` or newer; BackupError if none."""
    return choose_tool(name, await asyncio.to_thread(found, name), at_least)


def tool_env(password: str | None) -> dict[str, str]:
    """The environment for a client program: the password, if any, never on its command line."""
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return env


async def run_tool(argv: list[str], env: dict[str, str], what: str) -> str:
    """Run a client program to its end; its stdout, or BackupError with its last stderr line."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise BackupError(f"{what} failed: {last_line(err)}")
    return out.decode("utf-8", "replace")


def last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no message"
