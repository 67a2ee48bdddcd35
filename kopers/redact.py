"""Keeping the host's own paths out of what clients and build logs show, and secrets out of logs.

Kopers' messages are written not to name host paths, but an error from a
library (rpm, createrepo_c, ssh, the OS) may still carry one. Whatever
reaches a response, a task's reason or its public log passes through here
(`scrub`). A request path a log line names passes through `redact_path`:
a webhook URL carries its project's secret. Pure.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from kopers.config import Config

# The folder holding the kopers package: the checkout (and its .venv), or the
# site-packages of an installed wheel (with its sql/, vm_templates/ and libraries).
CODE_DIR = Path(__file__).resolve().parents[1]


def host_roots(config: Config) -> tuple[Path, ...]:
    """The directories whose names are the server's business."""
    hosts = [p for h in config.vm.hosts for p in (h.overlay_dir, h.cache_dir) if p is not None]
    return (config.data_dir, config.vm.cache_dir, CODE_DIR, Path(tempfile.gettempdir()), *hosts)


def scrub(message: str, roots: tuple[Path, ...]) -> str:
    """`message` with every directory in `roots` replaced by `<data>`."""
    for root in sorted({str(r).rstrip("/") for r in roots if str(r) != "/"}, key=len, reverse=True):
        # A whole path component only: /tmp, not the start of a URL's /tmpl.
        message = re.sub(re.escape(root) + r"(?=[/\s'\":,;)]|$)", "<data>", message)
    return message


# /webhooks/<forge>/<project id>/<secret>[/...]: the third segment is the secret.
_WEBHOOK_SECRET = re.compile(r"^(/+webhooks/+[^/]*/+[^/]*/+)[^/]+")


def redact_path(path: str) -> str:
    """A request path as the server log may show it: a webhook URL's secret as `<secret>`.

    A webhook's URL carries the project's webhook secret, and whoever reads
    the log must not be able to build with it. Every log line that names a
    request path passes it through here.
    """
    return _WEBHOOK_SECRET.sub(r"\1<secret>", path)
