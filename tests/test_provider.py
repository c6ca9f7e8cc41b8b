"""The provider's registration with Airflow (entry point, provider info schema, discovery) and the test environment."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import re
import sqlite3
import tempfile
from pathlib import Path

import jsonschema
import pytest

import airflow_provider_anaplan
from airflow_provider_anaplan import get_provider_info

DISTRIBUTION = "airflow-provider-anaplan"
ENTRY_POINT_GROUP = "apache_airflow_provider"


def canonicalize_name(name: str) -> str:
    """PEP 503 normalisation, as Airflow applies it to distribution names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def provider_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Every ``apache_airflow_provider`` entry point that our distribution declares."""
    return [
        ep
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.dist is not None and canonicalize_name(ep.dist.name) == DISTRIBUTION
    ]


def test_provider_info_matches_airflow_schema() -> None:
    schema = json.loads((importlib.resources.files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_schema_check_is_not_vacuous() -> None:
    schema = json.loads((importlib.resources.files("airflow") / "provider_info.schema.json").read_text())
    info = get_provider_info()
    del info["name"]
    with pytest.raises(jsonschema.ValidationError, match="'name' is a required property"):
        jsonschema.validate(info, schema)


def test_package_name_is_the_canonical_distribution_name() -> None:
    # ProvidersManager raises ValueError when these differ.
    dist = importlib.metadata.distribution(DISTRIBUTION)
    assert get_provider_info()["package-name"] == canonicalize_name(dist.metadata["Name"]) == DISTRIBUTION


def test_provider_info_version_is_the_installed_version() -> None:
    installed = importlib.metadata.version(DISTRIBUTION)
    assert airflow_provider_anaplan.__version__ == installed
    assert get_provider_info()["versions"] == [installed]


def test_entry_point_is_registered_and_loads_get_provider_info() -> None:
    (ep,) = provider_entry_points()
    assert ep.value == "airflow_provider_anaplan:get_provider_info"
    assert ep.load() is get_provider_info


def test_providers_manager_discovers_the_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers
    assert DISTRIBUTION in providers
    discovered = providers[DISTRIBUTION]
    assert discovered.version == importlib.metadata.version(DISTRIBUTION)
    assert discovered.data["package-name"] == DISTRIBUTION
    assert discovered.data["name"] == get_provider_info()["name"]


# The throw-away Airflow environment from tests/conftest.py (checked here so both Airflow versions run it).
def test_airflow_runs_in_the_throwaway_home(airflow_db: Path) -> None:
    from airflow.configuration import conf

    home = Path(os.environ["AIRFLOW_HOME"])
    assert home.is_relative_to(tempfile.gettempdir())
    assert conf.get("core", "dags_folder") == str(Path(__file__).resolve().parent.parent / "example_dags")
    assert not conf.getboolean("core", "load_examples")
    assert conf.get("database", "sql_alchemy_conn") == f"sqlite:///{airflow_db}"
    assert airflow_db.parent == home
    with sqlite3.connect(airflow_db) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alembic_version", "dag", "dag_run", "task_instance", "connection"} <= tables
