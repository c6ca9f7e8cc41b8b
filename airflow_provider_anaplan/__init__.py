"""Apache Airflow provider for Anaplan."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-provider-anaplan")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0.0.0"


def get_provider_info() -> dict:
    """Describe this provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-anaplan",
        "name": "Anaplan",
        "description": "`Anaplan <https://www.anaplan.com/>`__ provider: imports, exports, processes, actions and ALM.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Anaplan",
                "external-doc-url": "https://help.anaplan.com/",
                "tags": ["service"],
            }
        ],
    }
