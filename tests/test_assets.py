"""The ``anaplan://`` Asset URI scheme, checked through Airflow's own Asset machinery (the provider's registered
handler), on every supported Airflow version."""

from __future__ import annotations

import pytest
from airflow.sdk import Asset

from airflow_provider_anaplan import get_provider_info
from airflow_provider_anaplan.assets import (
    AnaplanFileRef,
    anaplan_file_asset,
    anaplan_file_uri,
    create_asset,
    normalize_anaplan_uri,
    parse_anaplan_uri,
)

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"
URI = f"anaplan://{WORKSPACE}/{MODEL}/files/113000000001"


def registered_handlers() -> dict:
    """The URI handlers Airflow uses to build Assets: the Task SDK's registry on 3.2+, ProvidersManager's on 3.1."""
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:  # Airflow 3.1
        from airflow.providers_manager import ProvidersManager

        return ProvidersManager().asset_uri_handlers
    return ProvidersManagerTaskRuntime().asset_uri_handlers


def test_the_scheme_is_registered_through_provider_info() -> None:
    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["anaplan"]
    assert registered_handlers()["anaplan"] is normalize_anaplan_uri


def test_airflow_accepts_and_normalizes_a_well_formed_uri() -> None:
    asset = Asset(uri=f"ANAPLAN://{WORKSPACE.upper()}/{MODEL.lower()}/files/113000000001/")
    assert asset.uri == URI
    assert asset.normalized_uri == URI
    assert Asset(uri=URI.replace("113000000001", "116000000000")).uri.endswith("/files/116000000000")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"anaplan://8a81b01c/{MODEL}/files/113000000001", "workspace id must be 32 hexadecimal digits"),
        (f"anaplan://{WORKSPACE}/Sales Forecast/files/113000000001", "model id must be 32 hexadecimal digits"),
        (f"anaplan://{WORKSPACE}/{MODEL}/files/112000000001", "file id must be 12 digits starting 113"),
        (f"anaplan://{WORKSPACE}/{MODEL}/files/1130000000011", "file id must be 12 digits"),
        (f"anaplan://{WORKSPACE}/{MODEL}/file/113000000001", "the path must be"),
        (f"anaplan://{WORKSPACE}/{MODEL}/files", "the path must be"),
        (f"anaplan://{WORKSPACE}/{MODEL}/files/113000000001/x", "the path must be"),
        (f"anaplan://{WORKSPACE}/{MODEL}/files/113000000001?v=1", "must not have a query"),
        (f"anaplan://{WORKSPACE}:443/{MODEL}/files/113000000001", "user, password or port"),
        (f"anaplan:///{MODEL}/files/113000000001", "workspace id is missing"),
    ],
)
def test_airflow_rejects_a_malformed_uri_with_a_clear_message(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Asset(uri=uri)
    assert "Expected anaplan://{workspace_id}/{model_id}/files/{file_id}" in str(caught.value)


def test_building_and_parsing() -> None:
    asset = anaplan_file_asset(WORKSPACE.upper(), MODEL.lower(), "113000000001")
    assert isinstance(asset, Asset) and asset.uri == URI and asset.name == URI and asset.group == "asset"
    named = anaplan_file_asset(WORKSPACE, MODEL, "116000000000", name="sales_report", extra={"model": "Sales"})
    assert (named.name, named.extra) == ("sales_report", {"model": "Sales"})
    assert anaplan_file_uri(WORKSPACE, MODEL, "113000000001") == URI
    assert parse_anaplan_uri(URI) == AnaplanFileRef(WORKSPACE, MODEL, "113000000001")
    assert create_asset(workspace_id=WORKSPACE, model_id=MODEL, file_id="113000000001", extra=None) == Asset(uri=URI)
    with pytest.raises(ValueError, match="file id"):
        anaplan_file_uri(WORKSPACE, MODEL, "Sales Actuals.csv")
    with pytest.raises(ValueError, match="scheme must be 'anaplan'"):
        parse_anaplan_uri(URI.replace("anaplan://", "s3://"))


def test_a_downstream_schedule_matches_the_producers_asset() -> None:
    from airflow.sdk.definitions.asset import AssetUniqueKey

    produced = anaplan_file_asset(WORKSPACE.upper(), MODEL, "113000000001")
    assert produced == Asset(uri=URI)
    assert AssetUniqueKey.from_asset(produced) == AssetUniqueKey.from_asset(Asset(uri=URI))
    # Airflow names an Asset by its URI as written: another casing normalizes to the same URI, but not the same name.
    other_case = Asset(uri=URI.replace(WORKSPACE, WORKSPACE.upper()))
    assert other_case.uri == URI and other_case.name != produced.name
