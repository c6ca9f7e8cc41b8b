"""Ids: the kind an id names, and clear errors for malformed or wrong-kind ids."""

from __future__ import annotations

import pytest

from airflow_provider_anaplan.client.errors import InvalidInputError
from airflow_provider_anaplan.client.ids import (
    ObjectKind,
    check_id,
    check_model_id,
    check_task_id,
    check_workspace_id,
    is_hex_id,
    is_object_id,
    kind_of,
    looks_like_id,
    runnable_kind,
)


@pytest.mark.parametrize(
    ("object_id", "kind"),
    [
        ("112000000001", ObjectKind.IMPORT),
        ("113000000001", ObjectKind.FILE),
        ("116000000001", ObjectKind.EXPORT),
        ("117000000001", ObjectKind.ACTION),
        ("118000000001", ObjectKind.PROCESS),
        ("101000000001", ObjectKind.LIST),
        ("102000000001", ObjectKind.MODULE),
        ("999000000001", None),
        ("11200000001", None),  # 11 digits
        ("1120000000011", None),  # 13 digits
        ("75A40874E6B64FA3AE0743278996850F", None),
        ("", None),
    ],
)
def test_kind_of(object_id: str, kind: ObjectKind | None) -> None:
    assert kind_of(object_id) == kind


def test_shapes() -> None:
    assert is_object_id("112000000001")
    assert not is_object_id("11200000000a")
    assert not is_object_id(112000000001)
    assert is_hex_id("75A40874E6B64FA3AE0743278996850F")
    assert is_hex_id("8a81b01c7d2e4f3a9b5c6d7e8f901a2b")
    assert not is_hex_id("75A40874E6B64FA3AE0743278996850G")
    assert not is_hex_id("75A40874E6B64FA3AE0743278996850")
    assert looks_like_id("116000000000", "import")  # any 12 digits is an id, even of the wrong kind
    assert not looks_like_id("Sales Report.csv", ObjectKind.EXPORT)
    assert looks_like_id("75A40874E6B64FA3AE0743278996850F", ObjectKind.MODEL)
    assert not looks_like_id("Sales Forecast", ObjectKind.MODEL)


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("116000000001", ObjectKind.IMPORT, "'116000000001' is an export id, not an import id"),
        ("112000000001", ObjectKind.EXPORT, "'112000000001' is an import id, not an export id"),
        ("118000000001", ObjectKind.ACTION, "'118000000001' is a process id, not an action id"),
        ("117000000001", ObjectKind.PROCESS, "'117000000001' is an action id, not a process id"),
        ("112000000001", ObjectKind.FILE, "'112000000001' is an import id, not a file id"),
        ("999000000001", ObjectKind.IMPORT, "999 is not a prefix this client knows"),
        ("Sales", ObjectKind.IMPORT, "import ids are 12 digits starting with 112"),
        ("11600000001", ObjectKind.EXPORT, "export ids are 12 digits starting with 116"),
        ("abc", ObjectKind.MODEL, "'abc' is not a model id: model ids are 32 hex characters"),
        ("", ObjectKind.WORKSPACE, "must be a non-empty string"),
        (None, ObjectKind.TASK, "must be a non-empty string"),
    ],
)
def test_check_id_rejects(value: object, kind: ObjectKind, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_id(value, kind)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)  # usable where a ValueError is expected
    assert caught.value.status is None  # raised before any network call


def test_check_id_accepts() -> None:
    assert check_id("112000000001", "import") == "112000000001"
    assert check_id("113000000001", ObjectKind.FILE) == "113000000001"
    assert check_id("116000000001", ObjectKind.FILE) == "116000000001"  # an export's output file
    assert check_workspace_id("8a81b01c7d2e4f3a9b5c6d7e8f901a2b") == "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
    assert check_model_id("75A40874E6B64FA3AE0743278996850F") == "75A40874E6B64FA3AE0743278996850F"
    assert check_task_id("0123456789ABCDEF0123456789ABCDEF") == "0123456789ABCDEF0123456789ABCDEF"


def test_runnable_kind() -> None:
    assert runnable_kind("112000000001") is ObjectKind.IMPORT
    assert runnable_kind("116000000001") is ObjectKind.EXPORT
    assert runnable_kind("117000000001") is ObjectKind.ACTION
    assert runnable_kind("118000000001") is ObjectKind.PROCESS
    with pytest.raises(InvalidInputError, match="'113000000001' is a file id: only imports"):
        runnable_kind("113000000001")
    with pytest.raises(InvalidInputError, match="is not an id of anything that can be run"):
        runnable_kind("Nightly Load")
