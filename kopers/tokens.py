"""API tokens: generation and verification of the Copr-style login/token pair.

The login is the public half (HTTP Basic user name), the token the secret
half. Only a SHA-256 digest of the secret is stored: the secret carries 256
random bits, so a deliberately slow hash would buy nothing against guessing
and would cost time on every authenticated call.

Tokens expire: `kopers token create --days N` (default 180, fractions
allowed, 0 for never) sets the lifetime. A user may hold several tokens, each
revoked on its own (`kopers token revoke LOGIN`, `DELETE /api/tokens/LOGIN`).
`POST /api_3/api-token` (copr-cli new-api-token) replaces the token it is
called with by a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class NewToken:
    login: str
    secret: str

    @property
    def digest(self) -> str:
        return digest(self.secret)


def generate() -> NewToken:
    # token_urlsafe never yields ':', which Basic auth would split on.
    return NewToken(login=secrets.token_hex(12), secret=secrets.token_urlsafe(32))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def expires_on(now: datetime, days: float) -> datetime | None:
    """When a token made at `now` with a lifetime of `days` expires; 0 days: never."""
    if days < 0:
        raise ValueError("a token's lifetime must not be negative")
    return now + timedelta(days=days) if days else None


def expired(expires: datetime | None, now: datetime) -> bool:
    return expires is not None and expires <= now


def expiration_date(expires: datetime | None) -> str | None:
    """The day a token expires, as Copr reports it (`YYYY-MM-DD`); None: never."""
    return expires.date().isoformat() if expires is not None else None


def copr_cli_config(public_url: str, username: str, token: NewToken) -> str:
    """A complete copr-cli config file (the INI `[copr-cli]` section)."""
    encrypted = "true" if public_url.startswith("https://") else "false"
    return (
        "[copr-cli]\n"
        f"copr_url = {public_url}\n"
        f"login = {token.login}\n"
        f"token = {token.secret}\n"
        f"username = {username}\n"
        f"encrypted = {encrypted}\n"
    )
