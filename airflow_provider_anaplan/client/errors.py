"""The errors the client raises: one tree under :class:`AnaplanError`, each naming the problem and the fix.

Every error carries what a caller needs to act on it (the HTTP status, Anaplan's own message, the request's method
and path) and never a secret: no password, key, key password, token or refresh token is ever put into a message,
an attribute or a repr. Messages are built from values the caller already knows (ids, names, paths) and from
Anaplan's answer, which echoes no credential.
"""

from __future__ import annotations

from collections.abc import Iterable


class AnaplanError(Exception):
    """Base class of every error this client raises.

    ``status`` is the HTTP status code when the error comes from an HTTP answer, else ``None``;
    ``anaplan_message`` is the message from Anaplan's error body, when there was one; ``method`` and ``path`` name the
    request (the path only, never a query string, which could hold a secret).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        anaplan_message: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.anaplan_message = anaplan_message
        self.method = method
        self.path = path

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"

    def __reduce__(self):  # keep every attribute through pickling (Airflow pickles some exceptions)
        # Subclasses take other constructor arguments (NameNotFoundError: kind, name, ...), so the error is rebuilt
        # without calling its __init__ and given back its whole __dict__: each subclass's own attributes round-trip.
        return (_rebuild, (type(self), self.message), dict(self.__dict__))


def _rebuild(cls: type[AnaplanError], message: str) -> AnaplanError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.message = message
    return error


class InvalidInputError(AnaplanError, ValueError):
    """The caller gave something unusable (a malformed id, a bad option): raised before any network call."""


class ConfigurationError(InvalidInputError):
    """Credentials or settings are missing, malformed or do not fit together (bad PEM, wrong key password, ...)."""


class AuthenticationError(AnaplanError):
    """Anaplan refused the credentials or the token (401 from the auth service, or 401 again after a new token)."""


class PermissionDeniedError(AnaplanError):
    """403 (or 424 from the ALM report endpoints): the user's role lacks the permission."""


class NotFoundError(AnaplanError):
    """404: a bad id, an expired dump, or a model the user has no access to (Anaplan masks all of these as 404)."""


class NameNotFoundError(NotFoundError, InvalidInputError):
    """A name that matches no object of its kind; the message lists the closest names that do exist."""

    def __init__(self, kind: str, name: str, where: str, candidates: Iterable[str], close: Iterable[str]) -> None:
        close = list(close)
        hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
        known = list(candidates)
        plural = f"{kind}es" if kind.endswith("s") else f"{kind}s"
        listing = "" if close or not known else f" Known {plural}: {', '.join(repr(c) for c in known[:20])}."
        super().__init__(f"No {kind} named {name!r} in {where}.{hint}{listing}")
        self.kind = kind
        self.name = name
        self.close_matches = close


class ConflictError(AnaplanError):
    """409: the model or object is busy, or the action conflicts with one already running."""


class ModelStateError(AnaplanError):
    """410/422/423: the model is archived, locked or otherwise not in a state to accept the request."""


class RateLimitedError(AnaplanError):
    """429 after every retry allowed by the settings was spent."""


class ServerError(AnaplanError):
    """5xx after every retry allowed by the settings was spent (or at once, where a retry could repeat an action)."""


class TransportError(AnaplanError):
    """The connection failed, was reset, timed out, or the response was lost, after every allowed retry."""


class AnaplanTimeoutError(TransportError, TimeoutError):
    """A request, or a wait for a task, took longer than allowed."""


class ProtocolError(AnaplanError):
    """Anaplan answered something the client cannot read (not JSON, a missing field, an unexpected file id)."""


class TaskFailedError(AnaplanError):
    """A task ended without success (``result.successful`` false, a failed nested result, or CANCELLED)."""


class TaskCancelledError(TaskFailedError):
    """A task ended CANCELLED: someone or something cancelled it in Anaplan before it finished."""


__all__ = [
    "AnaplanError",
    "AnaplanTimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "InvalidInputError",
    "ModelStateError",
    "NameNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitedError",
    "ServerError",
    "TaskCancelledError",
    "TaskFailedError",
    "TransportError",
]
