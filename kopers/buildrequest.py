"""A build request's options, as a client gave them and as checked against the project."""

from __future__ import annotations

from dataclasses import dataclass, field

from kopers.db.chains import ChainSpec


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """Copr's build options as a client gave them, each value already parsed."""

    chroots: tuple[str, ...] | None = None  # names or fnmatch patterns; None: every enabled
    exclude_chroots: tuple[str, ...] = ()
    timeout: int | None = None  # seconds; None: the project's default, then the server's
    background: bool = False
    after_build_id: int | None = None
    with_build_id: int | None = None


@dataclass(frozen=True, slots=True)
class BuildOptions:
    chroots: tuple[str, ...]
    timeout: int
    background: bool
    chain: ChainSpec = field(default_factory=ChainSpec)

    @property
    def priority(self) -> int:
        # Copr's --background: run after everything that is not background.
        return 1 if self.background else 0
