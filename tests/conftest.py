"""Suite-wide test setup: a throw-away Airflow environment, fixed before anything imports airflow.

Importing airflow reads its configuration once, and even ``import airflow.sdk`` creates ``$AIRFLOW_HOME/logs``
(``~/airflow`` by default). So this module sets the environment at import time, which pytest does before it
imports any test module:

* ``AIRFLOW_HOME``: a fresh temporary directory, removed when the process exits;
* the metadata DB: SQLite inside that directory (never a DB configured in the caller's environment);
* ``AIRFLOW__CORE__LOAD_EXAMPLES=False`` and ``AIRFLOW__CORE__DAGS_FOLDER=<repo>/example_dags``.

``AIRFLOW__CORE__UNIT_TEST_MODE`` is deliberately not set: it loads Airflow's own ``unit_tests.cfg``, which turns
the example DAGs on and points the DAGs folder into Airflow's own test tree.

The metadata DB is created lazily by the session fixture ``airflow_db``; only tests that ask for it pay for it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

if "airflow" in sys.modules:  # pragma: no cover - a plugin or earlier import beat us to it
    raise RuntimeError("airflow was imported before tests/conftest.py could point AIRFLOW_HOME at a temp dir")

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS_DIR = REPO_ROOT / "example_dags"

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="anaplan-provider-tests-airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(EXAMPLE_DAGS_DIR)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the temporary ``AIRFLOW_HOME`` (created once per session, on first use).

    Returns the DB file's path.
    """
    from airflow.utils.db import initdb

    initdb()
    return AIRFLOW_HOME / "airflow.db"
