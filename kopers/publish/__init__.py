"""Publishing: signed RPMs and dnf repositories under the results directory.

- `layout`    pure paths and URLs of results (`Layout`)
- `repofile`  pure rendering of the `.repo` file that `dnf copr enable` fetches
- `signing`   one GPG key per project; rpmsign and detached signatures (`Signer`)
- `repo`      incremental repodata updates, coalesced and swapped in atomically
- `repoindex` the persisted per-chroot index of package metadata (SQLite)
- `repodata`  the metadata files, written from pre-compressed blocks
- `retention` pure: which builds a "keep the newest N" policy removes
- `usage`     storage accounting per project, cached
- `publisher` the steps that put one build's results online (`Publisher`)

This module holds only the helper the tool-running modules share; it imports
none of them, so `kopers.publish.layout` stays free of gnupg and subprocesses.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence

from kopers.errors import InfrastructureError

_TAIL_CHARS = 400


def stderr_tail(stderr: bytes | str, limit: int = _TAIL_CHARS) -> str:
    """The end of a tool's stderr on one line, for an error message."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " | ".join(lines)
    return joined if len(joined) <= limit else "..." + joined[-limit:]


async def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Run a host tool without blocking the loop; return its stdout.

    A missing binary or a non-zero exit raises InfrastructureError with the
    tool's stderr tail, because a failing host tool is never the package's
    fault. `what` names the operation in the message.
    """
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
        )
    except OSError as exc:
        raise InfrastructureError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    try:
        stdout, stderr = await proc.communicate()
    except asyncio.CancelledError:
        # Do not leave the tool running on its own after a cancel.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise InfrastructureError(
            f"{what}: {os.path.basename(argv[0])} exited {proc.returncode}: {stderr_tail(stderr)}"
        )
    return stdout
