"""The authentication service (/token/...) and OAuth (/oauth/...) of the emulator."""

from __future__ import annotations

from ._asgi import Router
from .state import EmulatorState


def register(router: Router, state: EmulatorState) -> None:
    """Add the /token and /oauth routes."""
