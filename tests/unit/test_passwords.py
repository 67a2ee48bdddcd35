"""Local passwords: the rules for a new one, argon2id hashes, and checking them."""

from __future__ import annotations

import pytest

from kopers import passwords
from kopers.errors import BadRequest


def test_a_password_is_hashed_with_argon2id_and_checked() -> None:
    stored = passwords.hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert passwords.verify(stored, "correct horse battery staple")
    assert not passwords.verify(stored, "correct horse battery stapler")
    assert not passwords.verify(stored, "")


def test_two_hashes_of_one_password_differ() -> None:
    assert passwords.hash_password("same") != passwords.hash_password("same")


def test_no_stored_hash_or_a_broken_one_never_matches() -> None:
    assert not passwords.verify(None, "anything")
    assert not passwords.verify("not a hash", "anything")
    assert not passwords.verify("$argon2id$v=19$m=1,t=1,p=1$broken", "anything")


def test_a_new_password_must_not_be_empty_or_longer_than_1024_bytes() -> None:
    with pytest.raises(BadRequest, match="empty"):
        passwords.check_new("")
    assert passwords.check_new("x" * 1024) == "x" * 1024
    with pytest.raises(BadRequest, match="1024 bytes"):
        passwords.check_new("x" * 1025)
    # Bytes, not characters: 342 three-byte characters are 1026 bytes.
    with pytest.raises(BadRequest, match="1024 bytes"):
        passwords.hash_password("€" * 342)


def test_an_overlong_password_never_matches() -> None:
    stored = passwords.hash_password("x" * 1024)
    assert passwords.verify(stored, "x" * 1024)
    assert not passwords.verify(stored, "x" * 1025)
    assert not passwords.verify(stored, "\ud800")
