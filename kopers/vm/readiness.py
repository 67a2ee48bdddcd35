"""A booted clone made ready for its task: the first login kept open, the builder warmed.

Under emulation a login costs the guest most of a second (a key exchange), and
the builder's first start another half second (Python and its modules read
from disk). Both are paid while the clone waits in the warm pool: the login
that finds sshd ready is kept for the task that takes the clone, and the
builder is started once with `--warm` (it loads and exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from kopers.errors import InfrastructureError
from kopers.vm import ssh
from kopers.vm.libvirt import VmHandle
from kopers.vm.template import TemplateImage

log = logging.getLogger(__name__)
WARM_TIMEOUT_S = 30.0


async def ready_session(
    handle: VmHandle,
    image: TemplateImage,
    timeout: float,
    tunnel: ssh.Tunnel | None,
    *,
    alive: Callable[[], Awaitable[bool]],
    every: float,
) -> ssh.SshSession:
    """The first login that sshd accepts, the builder warmed through it.

    `alive()` is asked `every` seconds meanwhile: a domain that stopped (qemu
    died) fails at once instead of after the whole timeout.
    """
    ready = asyncio.create_task(_login_and_warm(handle, image, timeout, tunnel))
    try:
        while True:
            done, _ = await asyncio.wait({ready}, timeout=every)
            if done:
                return ready.result()
            if not await alive():
                raise InfrastructureError(f"VM {handle.name} stopped while booting")
    finally:
        if not ready.done():
            ready.cancel()
            with contextlib.suppress(BaseException):
                await (await ready).close()


async def _login_and_warm(
    handle: VmHandle, image: TemplateImage, timeout: float, tunnel: ssh.Tunnel | None
) -> ssh.SshSession:
    session = await ssh.wait_session(
        handle.ssh_host, handle.ssh_port, image.ssh_key, timeout, tunnel=tunnel
    )
    try:
        await warm(session, image)
    except BaseException:
        await session.close()
        raise
    return session


async def warm(session: ssh.SshSession, image: TemplateImage) -> None:
    """Start the builder once with `--warm`, within WARM_TIMEOUT_S.

    Only a speed-up: a template whose builder does not know `--warm`, or a slow
    start, changes nothing else.
    """

    async def ignore(_: str) -> None:
        return None

    try:
        async with asyncio.timeout(WARM_TIMEOUT_S):
            await session.run(f"{image.builder} --warm", ignore)
    except (TimeoutError, InfrastructureError) as exc:
        log.info("warming the builder of %s: %s", session.target, exc or "timed out")
