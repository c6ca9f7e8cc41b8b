"""``AnaplanClient``: the one object a caller needs, an async context manager over the transport and its APIs."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ._transport import Transport
from .alm import ALMAPI
from .auth import AnaplanAuth
from .errors import ConfigurationError
from .files import FilesAPI
from .settings import ClientSettings
from .tasks import TasksAPI
from .workspace import MetadataAPI


class AnaplanClient(TasksAPI, FilesAPI, MetadataAPI, ALMAPI):
    """An async Anaplan client: metadata and name resolution, files, tasks, and ALM (revisions, syncs, reports).

    ``settings`` (a :class:`ClientSettings`) or keyword settings (``base_url=``, ``api_url=``, ``timeout=``...), or
    both (the keywords override the object's fields). Use it as ``async with AnaplanClient(auth) as client: ...``,
    or call :meth:`aclose` when done. The same client may be used under several ``asyncio.run`` calls in a row:
    what is bound to an event loop is kept per loop by the transport, and tokens are shared through the
    process-wide token cache.
    """

    def __init__(self, auth: AnaplanAuth, *, settings: ClientSettings | None = None, **settings_kwargs: Any) -> None:
        if not isinstance(auth, AnaplanAuth):
            raise ConfigurationError(
                f"auth must be an AnaplanAuth (BasicAuth, CertificateAuth, StaticTokenAuth or OAuthRefreshTokenAuth), "
                f"got {type(auth).__name__}"
            )
        # Unknown keywords are a ConfigurationError; base_url with settings= also moves the hosts not given.
        settings = ClientSettings.from_options(settings, **settings_kwargs)
        self.auth = auth
        self.settings = settings
        super().__init__(Transport(settings, auth))

    @property
    def transport(self) -> Transport:
        """The transport under this client (retries, paging, tokens), for the rare call the client lacks."""
        return self._transport

    async def __aenter__(self) -> AnaplanClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections; tokens stay in the process-wide cache for the next use."""
        await self._transport.aclose()

    def __repr__(self) -> str:
        # Only the class of the credentials: their own repr is safe today, but a client's repr ends up in logs.
        return f"AnaplanClient(api_url={self.settings.api_url!r}, auth={type(self.auth).__name__})"


__all__ = ["AnaplanClient"]
