"""`dnf copr enable` as users type it: the command on the project page, run as it is.

One server and one package in its repository: a built RPM uploaded with
`copr-cli uploadrpm`, which Kopers signs with the project's key and publishes
as it does a build's results, without a VM (what dnf copr does with the
repository does not depend on how its packages were made). Then, as a user
would: fetch the project page, take the command
it shows for the chroot, run it, and `dnf install` from the `.repo` file the
dnf copr plugin wrote, with `gpgcheck` and `repo_gpgcheck` both on. Twice:
1. over plain HTTP, where the command first installs the hub file Kopers
   serves (the plugin assumes https), then enables `HOST:PORT/owner/project`;
2. over HTTPS, behind a TLS-terminating proxy on 127.0.0.1:443 with a
   throwaway CA, the server's public URL https://127.0.0.1: the short form
   `dnf copr enable 127.0.0.1/owner/project CHROOT`, nothing installed first.

How the plugin is pointed at a throwaway root (it has no option of its own):
- the hub files it reads are in dnf's `pluginconfpath` (`/etc/dnf/plugins`):
  `--setopt=pluginconfpath=DIR`, and the page's command is run with its
  `/etc/dnf/plugins/` replaced by DIR (DIR holds `copr.conf` with
  `[main] enabled=1`, the switch dnf reads for the plugin, and `copr.d/`, which
  the plugin lists and the dnf-plugins-core package ships);
- it writes the `.repo` file into the first `reposdir`: `--setopt=reposdir=`;
- `--installroot`, `--releasever=12` and `--disableplugin=local` go after
  `dnf`, as for every dnf of the tests (tests/dnfroot.py).
The CA is trusted only by the test's own processes: the plugin's urllib request
through SSL_CERT_FILE, librepo (metadata, packages, key) through
`--setopt=sslcacert=`. The server restarts with the https public URL on the
same data directory, so the HTTPS half needs no second upload.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import SPEC, service_dir
from tests.e2e.dnfcopr import PLUGIN_DIR, Client, page_command
from tests.e2e.server import CHROOT, Server
from tests.rpms import rpmbuild

pytestmark = pytest.mark.e2e
OWNER, PROJECT, PACKAGE = "admin", "demo", "kopers-dnfcopr"
RELEASE = "1"  # the uploaded RPM's own: no build forced a dist tag on it


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose project admin/demo holds PACKAGE 1.0, uploaded, signed and published."""
    spec = SPEC.format(
        name=PACKAGE, version="1.0", build="", install="", files="", requires="", arch="noarch"
    )
    [rpm] = rpmbuild(spec, tmp_path_factory.mktemp("dnfcopr-rpm"), "-bb")
    with service_dir("kopers-dnfcopr-") as base:
        server = Server.create(base)
        server.start()
        try:
            server.user(OWNER, admin=True)
            r = server.copr(OWNER, "create", PROJECT, "--chroot", CHROOT)
            assert r.returncode == 0, r.stdout + r.stderr
            r = server.copr(OWNER, "uploadrpm", PROJECT, str(rpm))  # waits for the end
            assert r.returncode == 0 and "succeeded" in r.stdout, r.stdout + r.stderr
            yield server
        finally:
            server.stop()


def repo_file(client: Client) -> str:
    path = client.reposdir / f"_copr:127.0.0.1:{OWNER}:{PROJECT}.repo"
    assert path.is_file(), sorted(p.name for p in client.reposdir.iterdir())
    text = path.read_text()
    assert text.startswith(f"[copr:127.0.0.1:{OWNER}:{PROJECT}]\n")
    assert "\ngpgcheck=1\n" in text and "\nrepo_gpgcheck=1\n" in text
    return text


def test_plain_http_command_from_the_page_enables_a_signed_repository(
    built: Server, tmp_path: Path
) -> None:
    page = built.get(f"/coprs/{OWNER}/{PROJECT}/")
    command = page_command(page, CHROOT)
    hub = f"127.0.0.1:{built.port}"
    conf = f"{PLUGIN_DIR}copr.d/kopers-127.0.0.1-{built.port}.conf"
    assert command == (
        f"curl -fsS --create-dirs -o {conf} {built.url}/dnf-copr-hub.conf"
        f" && dnf copr enable {hub}/{OWNER}/{PROJECT} {CHROOT}"
    )
    client = Client.make(tmp_path)
    client.run_page_command(command)
    hub_file = (client.plugins / "copr.d" / f"kopers-127.0.0.1-{built.port}.conf").read_text()
    assert f"[{hub}]\nhostname = 127.0.0.1\nprotocol = http\nport = {built.port}\n" in hub_file
    text = repo_file(client)
    assert f"baseurl={built.url}/results/{OWNER}/{PROJECT}/{CHROOT}/" in text
    key_url = re.search(r"^gpgkey=(.+)$", text, re.M)
    assert key_url and key_url.group(1) == f"{built.url}/results/{OWNER}/{PROJECT}/pubkey.gpg"
    assert "BEGIN PGP PUBLIC KEY BLOCK" in built.get(key_url.group(1).removeprefix(built.url))
    client.install(PACKAGE, "1.0", release=RELEASE)


# HTTPS ------------------------------------------------------------------------------


def make_ca(where: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kopers test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (where / "ca.pem", where / "cert.pem", where / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class TlsProxy:
    """TLS on 127.0.0.1:443 in front of a plain-HTTP server: bytes passed both ways."""

    def __init__(self, cert: Path, key: Path, backend_port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.backend_port = backend_port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server: asyncio.Server | None = None

    def __enter__(self) -> TlsProxy:
        self.thread.start()
        assert self.ready.wait(10), "the TLS proxy did not start"
        assert self.server is not None, "the TLS proxy could not listen on 127.0.0.1:443"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 443, ssl=self.context)
            )
        finally:
            self.ready.set()
        if self.server is not None:
            self.loop.run_forever()
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
def https_public_url(built: Server, tmp_path: Path) -> Iterator[Path]:
    """The server behind the TLS proxy, its public URL https://127.0.0.1; yields ca.pem."""
    ca, cert, key = make_ca(tmp_path)
    with TlsProxy(cert, key, built.port):
        built.stop()
        built.env["KOPERS_PUBLIC_URL"] = "https://127.0.0.1"
        built.start()
        try:
            yield ca
        finally:
            built.stop()
            built.env["KOPERS_PUBLIC_URL"] = built.url
            built.start()


def test_https_short_form_enables_a_signed_repository(
    built: Server, https_public_url: Path, tmp_path: Path
) -> None:
    ca = https_public_url
    trusting = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(
        f"https://127.0.0.1/coprs/{OWNER}/{PROJECT}/", timeout=30, context=trusting
    ) as resp:
        page = resp.read().decode()
    command = page_command(page, CHROOT)
    assert command == f"dnf copr enable 127.0.0.1/{OWNER}/{PROJECT} {CHROOT}"
    client = Client.make(tmp_path / "client")
    client.run_page_command(command, env={"SSL_CERT_FILE": str(ca)})
    text = repo_file(client)
    assert f"baseurl=https://127.0.0.1/results/{OWNER}/{PROJECT}/{CHROOT}/" in text
    assert f"gpgkey=https://127.0.0.1/results/{OWNER}/{PROJECT}/pubkey.gpg" in text
    client.install(PACKAGE, "1.0", f"--setopt=sslcacert={ca}", release=RELEASE)
