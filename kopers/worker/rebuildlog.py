"""What a task's log says about why an automatic rebuild runs. Pure."""

from __future__ import annotations

from collections.abc import Iterator

from kopers.db.rebuilds import RebuildRecord


def rebuild_lines(rebuild: RebuildRecord | None, chroot: str) -> Iterator[str]:
    """The lines that open an automatic rebuild's log on `chroot`; none for other builds."""
    if rebuild is None:
        return
    started = f"build {rebuild.trigger_build_id}" if rebuild.trigger_build_id else "a build"
    yield (
        f"automatic rebuild (generation {rebuild.generation}, release gets .{rebuild.generation})"
        f" of the source of build {rebuild.source_build_id}, in a chain started by {started} of"
        f" {rebuild.trigger_package}: builds {', '.join(map(str, rebuild.chain))}"
    )
    for reason in rebuild.because:
        if reason.get("chroot") == chroot:
            provides = ", ".join(str(p) for p in reason.get("provides", ()))
            yield f"  rebuilt because {reason.get('package')} now provides {provides}"
    for needed, needing in rebuild.broken:
        yield f"  dependency cycle broken: {needing} is not waiting for {needed}"
