"""The "Anaplan model" extra link: what an operator persists, what the worker's finalize step reads back, the URL
the emulator's ``modelUrl`` gives, and that nothing in it raises."""

from __future__ import annotations

from typing import Any
from unittest import mock

import httpx
import pytest
from airflow.sdk import BaseOperator, BaseOperatorLink

from airflow_provider_anaplan import get_provider_info
from airflow_provider_anaplan.client import AnaplanClient, BasicAuth, ClientSettings, token_cache
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, create_app
from airflow_provider_anaplan.links import DEFAULT_UI_ORIGIN, AnaplanModelLink, model_url

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"
EXPECTED = f"{DEFAULT_UI_ORIGIN}/anaplan/framework.jsp?selectedWorkspaceId={WORKSPACE}&selectedModelId={MODEL}"


class FakeTI:
    """Stands in for the task instance: XCom pushes go to a dict, which ``XCom.get_value`` then reads."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class LinkedOperator(BaseOperator):
    operator_extra_links = (AnaplanModelLink(),)

    def __init__(self, workspace_id: str | None = None, model_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.model_id = model_id


def read_back(ti: FakeTI) -> Any:
    """Patch Airflow's XCom reader (used by ``get_link`` on the worker) to read what ``persist`` pushed."""
    return mock.patch(
        "airflow.sdk.execution_time.xcom.XCom.get_value",
        side_effect=lambda *, ti_key, key: ti.xcom.get(key),
    )


def test_the_link_is_an_sdk_operator_link_registered_in_provider_info() -> None:
    link = AnaplanModelLink()
    assert isinstance(link, BaseOperatorLink)
    assert link.name == "Anaplan model"
    assert link.xcom_key == "_link_AnaplanModelLink"
    assert get_provider_info()["extra-links"] == ["airflow_provider_anaplan.links.AnaplanModelLink"]
    assert model_url(WORKSPACE, MODEL) == EXPECTED


@pytest.mark.asyncio
async def test_persist_records_the_emulators_model_url_and_get_link_returns_it() -> None:
    token_cache.clear()
    settings = ClientSettings(base_url="http://emulator.test", transport=httpx.ASGITransport(app=create_app()))
    async with AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=settings) as client:
        model = await client.get_model(MODEL)
    token_cache.clear()
    assert model.model_url
    ti = FakeTI()
    url = AnaplanModelLink.persist({"ti": ti}, model=model)  # type: ignore[arg-type]
    assert url == model.model_url
    assert ti.xcom["anaplan_model"] == {"url": url, "workspace_id": WORKSPACE, "model_id": MODEL}
    operator = LinkedOperator(task_id="t")
    with read_back(ti):
        assert AnaplanModelLink().get_link(operator, ti_key=mock.sentinel.ti_key) == url


def test_persist_from_ids_uses_the_default_ui_host() -> None:
    ti = FakeTI()
    assert AnaplanModelLink.persist({"ti": ti}, workspace_id=WORKSPACE, model_id=MODEL) == EXPECTED  # type: ignore[arg-type]
    assert AnaplanModelLink.persist({"ti": ti}, model_id="Sales Forecast") is None  # type: ignore[arg-type]
    assert AnaplanModelLink.build(workspace_id=WORKSPACE, model_id=MODEL, origin="https://eu1a.app.anaplan.com/")[
        "url"
    ].startswith("https://eu1a.app.anaplan.com/anaplan/framework.jsp?")


def test_get_link_falls_back_to_the_operators_ids_and_never_raises() -> None:
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", side_effect=RuntimeError("no supervisor")):
        with_ids = LinkedOperator(task_id="a", workspace_id=WORKSPACE, model_id=MODEL)
        assert AnaplanModelLink().get_link(with_ids, ti_key=mock.sentinel.ti_key) == EXPECTED
        with_names = LinkedOperator(task_id="b", workspace_id="Planning", model_id="Sales Forecast")
        assert AnaplanModelLink().get_link(with_names, ti_key=mock.sentinel.ti_key) == ""


def test_a_failing_push_does_not_fail_the_task() -> None:
    ti = mock.Mock()
    ti.xcom_push.side_effect = RuntimeError("XCom backend down")
    assert AnaplanModelLink.persist({"ti": ti}, workspace_id=WORKSPACE, model_id=MODEL) is None  # type: ignore[arg-type]
