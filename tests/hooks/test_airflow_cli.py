"""The `airflow` command line sees the provider and tests an `anaplan` connection against a running emulator.

Each CLI start costs seconds, so these few tests are marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD
from tests.emulator.conftest import LiveServer
from tests.hooks.conftest import connection_env

AIRFLOW = Path(sys.executable).with_name("airflow")


def airflow_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run this venv's ``airflow`` with the test AIRFLOW_HOME (inherited from tests/conftest.py) and ``env``."""
    return subprocess.run(
        [str(AIRFLOW), *args],
        env={**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_providers_list_shows_the_provider() -> None:
    result = airflow_cli("providers", "list", "--output", "plain")
    assert result.returncode == 0, result.stderr
    assert "airflow-provider-anaplan" in result.stdout


@pytest.mark.slow
def test_connections_test_passes_against_the_emulator(live: LiveServer) -> None:
    conn = connection_env("anaplan_cli", "json", DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, {"base_url": live.url})
    result = airflow_cli("connections", "test", "anaplan_cli", AIRFLOW_CONN_ANAPLAN_CLI=conn)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Connection success!" in output
    assert DEFAULT_USER_PASSWORD not in output
