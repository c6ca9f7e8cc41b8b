"""The Airflow twins of the client's errors: each is both the client error and an ``AirflowException``.

The client (``airflow_provider_anaplan.client``) imports no Airflow, so its errors are plain exceptions. Airflow treats
``AirflowException`` specially (``soft_fail`` turns it into a skip, for instance), so the hook re-raises every client
error as its twin here: ``except client.errors.NotFoundError`` and ``except exceptions.NotFoundError`` both catch it,
and so do ``except AirflowException`` and ``except exceptions.AnaplanError``. The twins mirror the client's tree
(``exceptions.ConfigurationError`` is also an ``exceptions.InvalidInputError``).
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException

from .client import errors as client_errors


class AnaplanError(client_errors.AnaplanError, AirflowException):
    """Base of the Airflow-side Anaplan errors (the twin of the client's ``AnaplanError``)."""


class InvalidInputError(client_errors.InvalidInputError, AnaplanError):
    """Twin of the client's ``InvalidInputError``: unusable input, raised before any network call."""


class ConfigurationError(client_errors.ConfigurationError, InvalidInputError):
    """Twin of the client's ``ConfigurationError``; the hook raises it for a connection that is missing or broken."""


class AuthenticationError(client_errors.AuthenticationError, AnaplanError):
    """Twin of the client's ``AuthenticationError``: Anaplan refused the credentials or the token."""


class PermissionDeniedError(client_errors.PermissionDeniedError, AnaplanError):
    """Twin of the client's ``PermissionDeniedError`` (403/424)."""


class NotFoundError(client_errors.NotFoundError, AnaplanError):
    """Twin of the client's ``NotFoundError`` (404)."""


class NameNotFoundError(client_errors.NameNotFoundError, NotFoundError, InvalidInputError):
    """Twin of the client's ``NameNotFoundError``: a name that matches nothing (the closest names are listed)."""


class ConflictError(client_errors.ConflictError, AnaplanError):
    """Twin of the client's ``ConflictError`` (409)."""


class ModelStateError(client_errors.ModelStateError, AnaplanError):
    """Twin of the client's ``ModelStateError`` (410/422/423)."""


class RateLimitedError(client_errors.RateLimitedError, AnaplanError):
    """Twin of the client's ``RateLimitedError`` (429 after every retry)."""


class ServerError(client_errors.ServerError, AnaplanError):
    """Twin of the client's ``ServerError`` (5xx)."""


class TransportError(client_errors.TransportError, AnaplanError):
    """Twin of the client's ``TransportError``: the connection failed, was reset, or the response was lost."""


class AnaplanTimeoutError(client_errors.AnaplanTimeoutError, TransportError):
    """Twin of the client's ``AnaplanTimeoutError``."""


class ProtocolError(client_errors.ProtocolError, AnaplanError):
    """Twin of the client's ``ProtocolError``: an answer the client cannot read."""


class TaskFailedError(client_errors.TaskFailedError, AnaplanError):
    """Twin of the client's ``TaskFailedError``: an Anaplan task ended without success."""


class TaskCancelledError(client_errors.TaskCancelledError, TaskFailedError):
    """Twin of the client's ``TaskCancelledError``: an Anaplan task ended CANCELLED."""


TWINS: dict[type[client_errors.AnaplanError], type[AnaplanError]] = {
    client_errors.AnaplanError: AnaplanError,
    client_errors.InvalidInputError: InvalidInputError,
    client_errors.ConfigurationError: ConfigurationError,
    client_errors.AuthenticationError: AuthenticationError,
    client_errors.PermissionDeniedError: PermissionDeniedError,
    client_errors.NotFoundError: NotFoundError,
    client_errors.NameNotFoundError: NameNotFoundError,
    client_errors.ConflictError: ConflictError,
    client_errors.ModelStateError: ModelStateError,
    client_errors.RateLimitedError: RateLimitedError,
    client_errors.ServerError: ServerError,
    client_errors.TransportError: TransportError,
    client_errors.AnaplanTimeoutError: AnaplanTimeoutError,
    client_errors.ProtocolError: ProtocolError,
    client_errors.TaskFailedError: TaskFailedError,
    client_errors.TaskCancelledError: TaskCancelledError,
}
"""Client error class -> its Airflow twin."""


def twin_of(cls: type[client_errors.AnaplanError]) -> type[AnaplanError]:
    """The Airflow twin of a client error class: its own, or that of its nearest ancestor with one.

    A client error class added later without a twin here still becomes an ``AirflowException`` through its parent's.
    """
    for ancestor in cls.__mro__:
        twin = TWINS.get(ancestor)  # type: ignore[call-overload]
        if twin is not None:
            return twin
    return AnaplanError


def to_airflow_error(exc: BaseException) -> BaseException:
    """``exc`` as its Airflow twin when it is a client error; anything else (Airflow's own included) unchanged.

    The twin keeps the message, the attributes (status, Anaplan's message, method, path, ...), the traceback and
    the cause of the original, so nothing is lost in translation.
    """
    if not isinstance(exc, client_errors.AnaplanError) or isinstance(exc, AirflowException):
        return exc
    twin_cls = twin_of(type(exc))
    if not issubclass(twin_cls, type(exc)):
        # A client error subclass without an exact twin: keep its class and add the Airflow base on the fly.
        twin_cls = type(type(exc).__name__, (type(exc), twin_cls), {"__module__": __name__})
    twin = twin_cls.__new__(twin_cls)
    twin.args = exc.args
    twin.__dict__.update(exc.__dict__)
    twin.__cause__ = exc.__cause__
    twin.__suppress_context__ = exc.__suppress_context__ or exc.__cause__ is not None
    twin.__context__ = exc.__context__
    twin.__traceback__ = exc.__traceback__
    return twin


__all__ = [
    "TWINS",
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
    "to_airflow_error",
    "twin_of",
]
