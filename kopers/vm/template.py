"""Builder template images: recipe hashing, the image cache, and building.

A template is a folder `vm_templates/<name>/` holding `build.sh` (the recipe)
and the builder-side script it copies into the image. The image made from it
is cached under `<cache_dir>/templates/<name>-<recipe hash>/`:

    base.qcow2          read-only base every overlay is cloned from
    vmlinuz, initrd.img direct kernel boot
    cmdline             kernel command line (optional; DEFAULT_CMDLINE otherwise)
    id_ed25519(.pub)    the key root accepts over SSH
    system-provides.txt what the template's rpm database provides (Debian)
    complete            written last: a folder without it is never used

Changing any file of the recipe changes the hash, so the next build_template
makes a fresh image and removes the older ones of the same template.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kopers import resources
from kopers.errors import ConfigError, InfrastructureError
from kopers.vm.domain import DEFAULT_CMDLINE

BUILDER_PATH = "/usr/local/bin/kopers-builder"
RECIPE = "build.sh"
COMPLETE = "complete"
IMAGE_FILES = ("base.qcow2", "vmlinuz", "initrd.img", "id_ed25519", "id_ed25519.pub")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Bytecode caches appear when someone imports builder.py; they are not recipe.
_IGNORED_DIRS = {"__pycache__"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", "~", ".swp")

_locks: dict[Path, asyncio.Lock] = {}


@dataclass(frozen=True, slots=True)
class TemplateImage:
    """A built, complete template image in the cache."""

    name: str
    recipe_hash: str
    dir: Path
    base_image: Path
    kernel: Path
    initrd: Path
    ssh_key: Path  # private key; the public key is ssh_key + ".pub"
    builder: str  # path of the builder script inside the VM
    cmdline: str = DEFAULT_CMDLINE

    @property
    def system_provides(self) -> Path:
        return self.dir / "system-provides.txt"


def default_templates_root() -> Path:
    """Kopers' own vm_templates/ folder (the checkout's, or the installed package's copy)."""
    return resources.vm_templates_dir()


def recipe_hash(template_dir: Path) -> str:
    """sha256 over every file of the recipe (relative names and contents), 16 hex chars."""
    digest = hashlib.sha256()
    for path in _recipe_files(template_dir):
        rel = path.relative_to(template_dir).as_posix()
        digest.update(f"{len(rel)}:{rel}\0".encode())
        data = path.read_bytes()
        # The executable bit matters to a recipe: build.sh runs hooks directly.
        digest.update(f"{len(data)}:{int(os.access(path, os.X_OK))}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def template_dir(name: str, templates_root: Path) -> Path:
    """The recipe folder of a template; ConfigError if it is missing or malformed."""
    if not _NAME.match(name):
        raise ConfigError(f"invalid template name {name!r}")
    folder = templates_root / name
    if not (folder / RECIPE).is_file():
        raise ConfigError(f"template {name}: {folder / RECIPE} does not exist")
    return folder


def image_dir(name: str, digest: str, cache_dir: Path) -> Path:
    return cache_dir / "templates" / f"{name}-{digest}"


def cached_image(name: str, templates_root: Path, cache_dir: Path) -> TemplateImage | None:
    """The cached image of the template's current recipe, or None if not built yet."""
    digest = recipe_hash(template_dir(name, templates_root))
    return _load_image(name, digest, image_dir(name, digest, cache_dir))


async def build_template(
    name: str,
    templates_root: Path,
    cache_dir: Path,
    log: Callable[[str], None],
) -> TemplateImage:
    """Return the current image of a template, building it first if needed.

    The recipe runs in a hidden folder next to the target, which is renamed
    into place only after `complete` is written; concurrent callers in this
    process wait for one build, and a build racing another process loses
    gracefully to the image that landed first.
    """
    recipe_dir = template_dir(name, templates_root)
    digest = recipe_hash(recipe_dir)
    target = image_dir(name, digest, cache_dir)
    lock = _locks.setdefault(target, asyncio.Lock())
    async with lock:
        image = _load_image(name, digest, target)
        if image is not None:
            return image
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(target.parent, name)
        partial = target.parent / f".{target.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        log(f"building template {name} ({digest}) in {partial}")
        try:
            await _run_recipe(recipe_dir / RECIPE, partial, log)
            _check_output(name, partial)
            (partial / COMPLETE).write_text(f"{name} {digest}\n")
            _move_into_place(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        image = _load_image(name, digest, target)
        if image is None:
            raise InfrastructureError(f"template {name}: {target} is incomplete after its build")
        for old in _older_images(target.parent, name, digest):
            log(f"removing outdated template image {old}")
            shutil.rmtree(old, ignore_errors=True)
        log(f"template {name} ready: {target}")
        return image


def _recipe_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        for name in names:
            if not name.endswith(_IGNORED_SUFFIXES):
                files.append(Path(root) / name)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _load_image(name: str, digest: str, folder: Path) -> TemplateImage | None:
    if not (folder / COMPLETE).is_file():
        return None
    if not all((folder / f).is_file() for f in IMAGE_FILES):
        return None
    cmdline_file = folder / "cmdline"
    cmdline = cmdline_file.read_text().strip() if cmdline_file.is_file() else ""
    return TemplateImage(
        name=name,
        recipe_hash=digest,
        dir=folder,
        base_image=folder / "base.qcow2",
        kernel=folder / "vmlinuz",
        initrd=folder / "initrd.img",
        ssh_key=folder / "id_ed25519",
        builder=BUILDER_PATH,
        cmdline=cmdline or DEFAULT_CMDLINE,
    )


async def _run_recipe(recipe: Path, outdir: Path, log: Callable[[str], None]) -> None:
    """Run build.sh OUTDIR, passing each output line to `log` as it comes."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            str(recipe),
            str(outdir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(outdir),
            # Recipes that fetch Python wheels for the guest use Kopers' own pip:
            # a fresh host's system Python may have none.
            env={"KOPERS_HOST_PIP": f"{sys.executable} -m pip", **os.environ},
        )
    except OSError as exc:
        raise InfrastructureError(f"cannot run {recipe}: {exc}") from exc
    assert proc.stdout is not None
    tail: list[str] = []
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            tail = [*tail[-19:], line]
            log(line)
        code = await proc.wait()
    except asyncio.CancelledError:
        # Do not leave mmdebstrap running (and mounting) behind a cancelled build.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "no output")
        raise InfrastructureError(f"{recipe} failed with exit code {code}: {last}")


def _check_output(name: str, outdir: Path) -> None:
    missing = [f for f in IMAGE_FILES if not (outdir / f).is_file()]
    if missing:
        raise InfrastructureError(f"template {name}: recipe did not produce {', '.join(missing)}")
    # The private key must stay private; ssh clients refuse group/world-readable keys.
    (outdir / "id_ed25519").chmod(0o600)


def _move_into_place(partial: Path, target: Path) -> None:
    if target.exists():
        # A leftover without `complete` (the process died mid-rename) or an image
        # another process finished meanwhile: keep a complete one, replace the rest.
        if (target / COMPLETE).is_file():
            return
        shutil.rmtree(target)
    try:
        partial.rename(target)
    except OSError as exc:
        if not (target / COMPLETE).is_file():
            raise InfrastructureError(f"cannot move {partial} to {target}: {exc}") from exc


def _older_images(parent: Path, name: str, digest: str) -> list[Path]:
    pattern = re.compile(rf"^{re.escape(name)}-[0-9a-f]{{16}}$")
    return sorted(
        p for p in parent.iterdir() if pattern.match(p.name) and p.name != f"{name}-{digest}"
    )


def _remove_stale_partials(parent: Path, name: str) -> None:
    """Remove half-built images whose building process no longer exists."""
    pattern = re.compile(rf"^\.{re.escape(name)}-[0-9a-f]{{16}}\.partial-(\d+)$")
    for path in parent.iterdir():
        match = pattern.match(path.name)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
