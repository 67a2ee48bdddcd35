"""A plain HTTP server on 127.0.0.1 serving files for SRPM-by-URL builds."""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path
from typing import Any


class WebRoot:
    def __init__(self, root: Path) -> None:
        self.root = root
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(outer.root), **kwargs)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: Path) -> str:
        """Serve a copy of `path`; return its URL."""
        shutil.copyfile(path, self.root / path.name)
        return f"{self.url}/{path.name}"

    def close(self) -> None:
        self.httpd.shutdown()
