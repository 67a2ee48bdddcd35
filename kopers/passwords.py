"""Local passwords: what a new one may be, and hashing and checking them with argon2id.

Only the hash is stored (users.password_hash, a PHC string that carries its
own parameters). A user without one cannot sign in on the web; their API
tokens work as before.

Hashing and checking take tens of milliseconds of CPU on purpose: callers on
the event loop run them in a thread. Checking a password for a user who does
not exist, or has none, costs the same as checking a wrong one, so the time
of an answer does not tell which names exist.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kopers.errors import BadRequest

MAX_BYTES = 1024

_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters


def check_new(password: str) -> str:
    """A password someone wants to set: not empty, at most MAX_BYTES of UTF-8."""
    if not password:
        raise BadRequest("the password must not be empty")
    if len(password) > MAX_BYTES or len(password.encode()) > MAX_BYTES:
        raise BadRequest(f"the password is longer than {MAX_BYTES} bytes")
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(check_new(password))


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash; None: no password, always False."""
    try:
        if len(password) > MAX_BYTES or len(password.encode()) > MAX_BYTES:
            # No password this long can have been set: do not spend the time on it.
            return False
    except UnicodeEncodeError:  # a lone surrogate: no text anyone could have set
        return False
    try:
        if stored is None:
            _HASHER.verify(_dummy_hash(), password)
            return False
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash no one's password is checked against for real; made once, when first needed."""
    return _HASHER.hash("no password is set for this user")
