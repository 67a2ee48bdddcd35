"""Where each kind of state lives under the data directory. Pure.

Everything Kopers keeps is below one data directory, so two instances with
different data directories never touch each other's files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DataPaths:
    root: Path

    @property
    def results(self) -> Path:
        """Published repositories and build results, served at /results/."""
        return self.root / "results"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def overlays(self) -> Path:
        return self.root / "overlays"

    @property
    def sources(self) -> Path:
        """Source RPMs of accepted builds, by build id."""
        return self.root / "sources"

    @property
    def incoming(self) -> Path:
        """Uploads being received; moved to `sources` when the build row commits."""
        return self.root / "incoming"

    @property
    def live_logs(self) -> Path:
        return self.root / "logs"

    @property
    def work(self) -> Path:
        """Per-task scratch space for downloaded results before they are published."""
        return self.root / "work"

    def source_dir(self, build_id: int) -> Path:
        return self.sources / f"{build_id:08d}"

    def clear_scratch(self) -> None:
        """Remove half-received uploads and task scratch left by a crashed process."""
        for scratch in (self.incoming, self.work):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True, exist_ok=True)

    def ensure(self) -> None:
        for path in (
            self.results,
            self.keys,
            self.overlays,
            self.sources,
            self.incoming,
            self.live_logs,
            self.work,
        ):
            path.mkdir(parents=True, exist_ok=True)
