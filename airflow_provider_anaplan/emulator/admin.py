"""The emulator's admin endpoint (outside /2/0): fault settings, token TTL and counters at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._asgi import Router
from .state import EmulatorState

if TYPE_CHECKING:
    from .faults import FaultInjector


def register(router: Router, state: EmulatorState, faults: FaultInjector) -> None:
    """Add the admin routes."""
