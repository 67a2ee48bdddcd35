"""A plain HTTP server on a loopback address serving files for SRPM-by-URL builds.

Kopers refuses loopback addresses to URL imports unless they are allow-listed
(`[network] allow`), so a test server that Kopers should reach listens on an
address of its own (such as 127.0.0.2) and only that address is allowed.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path
from typing import Any


class WebRoot:
    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(outer.root), **kwargs)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def add(self, path: Path) -> str:
        """Serve a copy of `path`; return its URL."""
        shutil.copyfile(path, self.root / path.name)
        return f"{self.url}/{path.name}"

    def close(self) -> None:
        self.httpd.shutdown()
