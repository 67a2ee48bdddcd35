"""The one error tree of Kopers.

Every error a user can cause or see is a `KopersError`. Each class carries the
HTTP status it maps to; the API turns any of them into a JSON body with an
`error` key in one place (`kopers.api.app`), and the CLI prints the message on
one line and exits non-zero.
"""

from __future__ import annotations


class KopersError(Exception):
    """Base of all expected errors; `status` is the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(KopersError):
    """The request is malformed or fails validation."""

    status = 400


class AuthenticationError(KopersError):
    """Credentials are missing, wrong or expired."""

    status = 401


class Forbidden(KopersError):
    """The caller is known but may not do this."""

    status = 403


class NotFound(KopersError):
    """The named object does not exist."""

    status = 404


class Conflict(KopersError):
    """The object exists already, or is in a state that forbids the action."""

    status = 409


class PayloadTooLarge(KopersError):
    """A request body over its cap; refused before it is read."""

    status = 413


class UnsupportedMediaType(KopersError):
    """A request body in a form the server does not take (a compressed one)."""

    status = 415


class NotSupported(KopersError):
    """The request is valid, but this server does not offer what it asks for.

    The message says so in a way copr-cli prints as it is: a 404 would read
    as "no such project", which sends people looking for the wrong problem.
    """

    status = 501


class ConfigError(KopersError):
    """kopers.toml or an environment override is invalid."""

    status = 500


class InfrastructureError(KopersError):
    """A VM, SSH connection or host tool failed: not the package's fault.

    Tasks that fail this way are retried on a fresh VM; a failing `%build` is not.
    """

    status = 503


class BackupError(KopersError):
    """`kopers backup` or `kopers restore` cannot go on (see kopers.backup)."""

    status = 500


class BuildFailed(KopersError):
    """The package itself failed to build (the builder exited non-zero)."""

    status = 500


class BuildCanceled(KopersError):
    """The user canceled the build while it ran."""

    status = 409
