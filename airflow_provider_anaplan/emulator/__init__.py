"""A local Anaplan API emulator (ASGI, in-memory, with fault injection) for tests, demos and offline DAG development.

It is an independent implementation of the Anaplan wire protocol and imports nothing from the client.
"""

from .app import EmulatorApp, create_app
from .faults import FaultInjector
from .state import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorState, default_seed, load_seed_file

__all__ = [
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_PASSWORD",
    "EmulatorApp",
    "EmulatorState",
    "FaultInjector",
    "create_app",
    "default_seed",
    "load_seed_file",
]
