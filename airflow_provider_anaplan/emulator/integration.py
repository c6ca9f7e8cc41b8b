"""The Integration API v2 (/2/0/...) of the emulator: users, workspaces, models and model objects."""

from __future__ import annotations

from ._asgi import Router
from .state import EmulatorState


def register(router: Router, state: EmulatorState) -> None:
    """Add the /2/0 routes."""
