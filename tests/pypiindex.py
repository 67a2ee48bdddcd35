"""A small pure-Python package, published as PyPI's JSON API lays it out, as static files.

`publish(root, base_url)` writes under `root` what a static web server needs
to answer the part of the API pyp2spec uses: `/pypi/<name>/json`,
`/pypi/<name>/<version>/json`, the sdist, the wheel and the wheel's
`.metadata` (PEP 658), with every URL absolute under `base_url`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

NAME = "kopers-hello"
MODULE = "kopers_hello"
VERSION = "1.0"
METADATA = f"""\
Metadata-Version: 2.4
Name: {NAME}
Version: {VERSION}
Summary: A greeting for the Kopers tests
Home-page: https://example.org/kopers-hello
License-Expression: MIT
Requires-Python: >=3.8

A greeting for the Kopers tests.
"""
PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{NAME}"
version = "{VERSION}"
description = "A greeting for the Kopers tests"
license = "MIT"
"""
CODE = 'GREETING = "hello from kopers"\n'


def _sdist() -> bytes:
    top = f"{MODULE}-{VERSION}"
    files = {
        f"{top}/PKG-INFO": METADATA,
        f"{top}/pyproject.toml": PYPROJECT,
        f"{top}/{MODULE}/__init__.py": CODE,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wheel() -> bytes:
    info = f"{MODULE}-{VERSION}.dist-info"
    files = {
        f"{MODULE}/__init__.py": CODE,
        f"{info}/METADATA": METADATA,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: kopers-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return buf.getvalue()


def publish(root: Path, base_url: str) -> str:
    """Write the package and its JSON under `root`; return the package's name."""
    packages = root / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    sdist_name = f"{MODULE}-{VERSION}.tar.gz"
    wheel_name = f"{MODULE}-{VERSION}-py3-none-any.whl"
    sdist, wheel = _sdist(), _wheel()
    (packages / sdist_name).write_bytes(sdist)
    (packages / wheel_name).write_bytes(wheel)
    (packages / f"{wheel_name}.metadata").write_text(METADATA)
    urls = [
        {
            "packagetype": kind,
            "filename": name,
            "url": f"{base_url}/packages/{name}",
            "digests": {"sha256": hashlib.sha256(data).hexdigest()},
            "size": len(data),
        }
        for kind, name, data in (("sdist", sdist_name, sdist), ("bdist_wheel", wheel_name, wheel))
    ]
    info = {
        "name": NAME,
        "version": VERSION,
        "summary": "A greeting for the Kopers tests",
        "license": "MIT",
        "license_expression": "MIT",
        "home_page": "https://example.org/kopers-hello",
        "project_urls": {"Homepage": "https://example.org/kopers-hello"},
        "requires_python": ">=3.8",
        "classifiers": [],
        "description": "A greeting for the Kopers tests.",
    }
    project = {"info": info, "urls": urls, "releases": {VERSION: urls}}
    for where in (root / "pypi" / NAME, root / "pypi" / NAME / VERSION):
        where.mkdir(parents=True, exist_ok=True)
        (where / "json").write_text(json.dumps(project))
    return NAME
