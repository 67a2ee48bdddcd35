"""`kopers doctor`'s probes: look at the host, libvirt, Postgres and the public URL.

Each probe gathers plain facts and hands them to the pure verdicts in
kopers.doctor. Nothing here boots a VM, builds a template or changes the
database: a probe that cannot run says so as a warning. A probe that may
hang (libvirt over SSH, a remote Postgres, the public URL) has a deadline;
libvirt's blocking open runs in a daemon thread, so a host that never
answers cannot keep the command from exiting either.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from kopers import doctor
from kopers.config import Config
from kopers.db.migrations import discover
from kopers.doctor import Check
from kopers.errors import KopersError
from kopers.vm.probe import KVM_NODE
from kopers.vm.template import (
    TemplateImage,
    cached_image,
    default_templates_root,
    recipe_hash,
    template_dir,
)

PROBE_TIMEOUT_S = 10.0
T = TypeVar("T")


async def run_checks(cfg: Config, templates_root: Path | None = None) -> list[Check]:
    """Every check, in the order a newcomer would fix them."""
    checks = [check_kvm(cfg)]
    checks += [await check_libvirt(h.name, h.uri) for h in cfg.vm.hosts]
    for what, path in (("data directory", cfg.data_dir), ("template cache", cfg.vm.cache_dir)):
        checks.append(doctor.disk(what, str(path), free_bytes(path)))
    root = templates_root or default_templates_root()
    checks += check_templates(cfg, root)
    checks += await check_template_copies(cfg, root)
    checks += await check_postgres(cfg)
    checks.append(await check_public_url(cfg.server.public_url))
    return checks


def check_kvm(cfg: Config) -> Check:
    local = [h.hypervisor for h in cfg.vm.hosts if not urlsplit(h.uri).hostname]
    # One local host forcing KVM is enough to need it; all forcing TCG, none.
    wanted = "kvm" if "kvm" in local else ("qemu" if local and set(local) == {"qemu"} else "auto")
    exists = KVM_NODE.exists()
    usable = exists and os.access(KVM_NODE, os.R_OK | os.W_OK)
    return doctor.kvm(exists, usable, wanted, _probed(cfg.vm.cache_dir / "kvm-probe.json"))


def _probed(cache_file: Path) -> tuple[str, str] | None:
    """The verdict an earlier start's KVM test boot left (kopers.vm.probe), if any."""
    try:
        saved = json.loads(cache_file.read_text())
        return str(saved["domain_type"]), str(saved["reason"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def check_libvirt(host: str, uri: str) -> Check:
    try:
        import libvirt
    except ImportError:
        return doctor.libvirt(host, uri, "the libvirt Python module is not installed", False)

    def connect() -> None:
        conn = libvirt.open(uri)
        try:
            conn.getVersion()
        finally:
            conn.close()

    try:
        await _in_daemon_thread(connect, PROBE_TIMEOUT_S)
    except TimeoutError:
        return doctor.libvirt(host, uri, f"no answer within {PROBE_TIMEOUT_S:.0f} s")
    except libvirt.libvirtError as exc:
        return doctor.libvirt(host, uri, exc.get_error_message() or str(exc))
    return doctor.libvirt(host, uri, None)


async def _in_daemon_thread(fn: Callable[[], T], timeout: float) -> T:
    """`fn()` in a daemon thread; TimeoutError after `timeout` (the thread is left behind)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, name="doctor probe", daemon=True).start()
    async with asyncio.timeout(timeout):
        return await future


def _settle(future: asyncio.Future[T], result: T | None, exc: BaseException | None) -> None:
    if future.done():
        return  # timed out already
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system that holds `path` (or would, once it is made)."""
    here = path.expanduser()
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        return shutil.disk_usage(here).free
    except OSError:
        return None


def _templates(cfg: Config) -> dict[str, str]:
    """Each template an enabled chroot uses, with the first such chroot's name."""
    first: dict[str, str] = {}
    for chroot in cfg.enabled_chroots:
        first.setdefault(chroot.template, chroot.name)
    return first


def check_templates(cfg: Config, root: Path) -> list[Check]:
    checks = []
    for template, chroot_name in _templates(cfg).items():
        try:
            digest = recipe_hash(template_dir(template, root))
            cached = cached_image(template, root, cfg.vm.cache_dir) is not None
        except (KopersError, OSError) as exc:
            error = exc.message if isinstance(exc, KopersError) else str(exc)
            checks.append(doctor.template(chroot_name, template, None, False, error))
            continue
        checks.append(doctor.template(chroot_name, template, digest, cached, ""))
    return checks


async def check_template_copies(cfg: Config, root: Path) -> list[Check]:
    """Each host with a template cache of its own against the images here, as the
    pool checks a host before it boots anything there (kopers.vm.templatecopy)."""
    images = []
    for name in _templates(cfg):
        try:
            image = cached_image(name, root, cfg.vm.cache_dir)
        except (KopersError, OSError):
            image = None
        if image is not None:  # one not built here is a FAIL of check_templates already
            images.append(image)
    hosts = [(h, cache) for h in cfg.vm.hosts if (cache := cfg.vm.host_cache(h)) is not None]
    if not images or not hosts:
        return []
    try:
        import libvirt

        from kopers.vm import templatecopy
    except ImportError:
        return [doctor.unchecked("template copies", "the libvirt Python module is not installed")]
    checks = []
    for host, cache in hosts:
        for image in images:
            folder = templatecopy.placed(image, cache).dir
            what = f"host {host.name}'s copy of template {image.name}"
            compare = functools.partial(_copy_problem, host.uri, image, folder)
            try:
                problem = await _in_daemon_thread(compare, PROBE_TIMEOUT_S)
            except TimeoutError:
                checks.append(doctor.unchecked(what, f"no answer within {PROBE_TIMEOUT_S:.0f} s"))
                continue
            except libvirt.libvirtError as exc:
                problem = f"not there ({_first_line(exc)})"
            except OSError as exc:
                checks.append(doctor.unchecked(what, f"cannot read {image.dir}: {exc}"))
                continue
            checks.append(
                doctor.template_copy(host.name, image.name, str(folder), str(image.dir), problem)
            )
    return checks


def _copy_problem(uri: str, image: TemplateImage, folder: Path) -> str | None:
    """How the folder on the host at `uri` differs from `image` here (blocking)."""
    import libvirt

    from kopers.vm import templatecopy

    wanted = templatecopy.local_facts(image)
    conn = libvirt.open(uri)
    try:
        return templatecopy.mismatch(wanted, templatecopy.inspect(conn, folder))
    finally:
        conn.close()


async def check_postgres(cfg: Config) -> list[Check]:
    """Connect (without starting anything new) and compare the applied migrations."""
    known = [m.version for m in discover()]
    if cfg.database.dsn:
        where = f"database {_dsn_place(cfg.database.dsn)}"
        dsn = cfg.database.dsn
    else:
        pgdata = cfg.data_dir / "pg"
        where = f"embedded Postgres in {pgdata}"
        if not (pgdata / "PG_VERSION").is_file():
            return [
                doctor.postgres(where, None, started=False),
                doctor.migrations([], known),
            ]
        try:
            dsn = await _embedded_dsn(cfg)
        except Exception as exc:  # pgserver raises plain exceptions with the pg log
            return [doctor.postgres(where, f"it does not start: {_first_line(exc)}"), _no_db()]
    try:
        conn = await asyncpg.connect(dsn, timeout=PROBE_TIMEOUT_S)
        try:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            rows = await conn.fetch("SELECT version FROM schema_migrations") if exists else []
        finally:
            await conn.close()
    except (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        return [doctor.postgres(where, _first_line(exc)), _no_db()]
    return [doctor.postgres(where, None), doctor.migrations([r["version"] for r in rows], known)]


def _no_db() -> Check:
    return doctor.unchecked("migrations", "the database does not answer")


async def _embedded_dsn(cfg: Config) -> str:
    """Join the embedded server (pgserver shares it with a running kopers serve)."""
    from kopers.db.database import embedded_dsn

    dsn, _server = await asyncio.to_thread(embedded_dsn, cfg.data_dir)
    return dsn


def _dsn_place(dsn: str) -> str:
    """Where a DSN leads, without its credentials."""
    if not dsn.startswith(("postgres://", "postgresql://")):
        return "(the configured DSN)"  # key=value form: it may hold a password anywhere
    try:
        parts = urlsplit(dsn)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(the configured DSN)"
    return f"{parts.hostname or 'localhost'}{port}{parts.path}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


async def check_public_url(url: str) -> Check:
    """Whether a Kopers answers at the public URL's /api_3/ (warn if nothing does)."""
    if doctor.public_url_form(url) is not None:
        return doctor.public_url(url, None, None)
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url}/api_3/", allow_redirects=False) as resp,
        ):
            return doctor.public_url(url, resp.status, None)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return doctor.public_url(url, None, _first_line(exc))
