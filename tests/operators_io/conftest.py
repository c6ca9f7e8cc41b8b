"""Fixtures of the IO tests, shared with the client's file tests and the operator tests rather than copied:
the emulator with the bulk routes (``app``, ``engine``), its recording transport and ticking sleep, and the
``memory://`` object storage."""

from tests.client.test_files import app, engine, recorder, ticking  # noqa: F401 - fixtures
from tests.operators.conftest import memory_root, memory_store  # noqa: F401 - fixtures
