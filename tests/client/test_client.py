"""The ``AnaplanClient`` facade: an async context manager, reusable across ``asyncio.run`` calls, with a safe repr."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

import airflow_provider_anaplan.client as public
from airflow_provider_anaplan.client import (
    AnaplanClient,
    BasicAuth,
    ClientSettings,
    ConfigurationError,
    InvalidInputError,
    NameNotFoundError,
    StaticTokenAuth,
)
from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD, EmulatorApp
from tests.emulator.conftest import FakeClock

from .conftest import BASE

SALES = "75A40874E6B64FA3AE0743278996850F"
FPA = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"


@pytest.mark.asyncio
async def test_async_context_manager(basic_auth: BasicAuth, settings: ClientSettings) -> None:
    async with AnaplanClient(basic_auth, settings=settings) as client:
        assert (await client.get_current_user()).email == "demo@anaplan.example"
        workspace_id = await client.resolve_workspace("FP&A Production")
        model_id = await client.resolve_model("Sales Forecast", workspace_id)
        import_id = await client.resolve_import(model_id, "Sales Actuals from Sales Actuals.csv", workspace_id)
        metadata = await client.get_import_metadata(model_id, import_id, workspace_id)
        assert metadata.import_data_source_id == "113000000001"
        with pytest.raises(NameNotFoundError, match="Did you mean: 'Nightly Load'"):
            await client.resolve_process(model_id, "Nightly")
        loop_clients = dict(client.transport._clients)
        assert len(loop_clients) == 1
    assert all(c.is_closed for c in loop_clients.values())  # leaving the block closed this loop's connections


@pytest.mark.asyncio
async def test_keyword_settings_and_overrides(
    basic_auth: BasicAuth, settings: ClientSettings, app: EmulatorApp, clock: FakeClock
) -> None:
    client = AnaplanClient(basic_auth, base_url=BASE, transport=httpx.ASGITransport(app=app), clock=clock)
    assert client.settings.api_url == BASE and client.settings.auth_url == BASE
    async with client:
        assert len(await client.list_models()) == 3
    tuned = AnaplanClient(basic_auth, settings=settings, max_attempts=2)
    assert tuned.settings.max_attempts == 2
    assert tuned.settings.api_url == settings.api_url
    assert tuned.settings.transport is settings.transport
    default = AnaplanClient(basic_auth)
    assert default.settings.api_url == "https://api.anaplan.com"


@pytest.mark.asyncio
async def test_base_url_keyword_with_settings_moves_the_hosts_not_given(
    basic_auth: BasicAuth, app: EmulatorApp, clock: FakeClock
) -> None:
    production = ClientSettings(transport=httpx.ASGITransport(app=app), clock=clock, max_attempts=2)
    client = AnaplanClient(basic_auth, settings=production, base_url=BASE)
    assert (client.settings.auth_url, client.settings.api_url, client.settings.oauth_url) == (BASE, BASE, BASE)
    assert client.settings.max_attempts == 2 and client.settings.transport is production.transport
    async with client:  # it really talks to the emulator, not to Anaplan's production hosts
        assert (await client.get_current_user()).email == "demo@anaplan.example"
    mixed = AnaplanClient(basic_auth, settings=production, base_url=BASE, auth_url="https://auth.example.com")
    assert (mixed.settings.auth_url, mixed.settings.api_url) == ("https://auth.example.com", BASE)
    with pytest.raises(ConfigurationError, match="base_url must be an origin"):
        AnaplanClient(basic_auth, settings=production, base_url=f"{BASE}/2/0")


def test_two_asyncio_runs_in_a_row_share_one_token(
    basic_auth: BasicAuth, settings: ClientSettings, app: EmulatorApp
) -> None:
    client = AnaplanClient(basic_auth, settings=settings)

    async def one_call() -> list[str]:
        async with client:
            return [m.name for m in await client.list_models(FPA, sort="name")]

    first = asyncio.run(one_call())
    second = asyncio.run(one_call())
    assert first == second == ["Sales Forecast", "Sales Forecast DEV"]
    assert app.state.counters.get("auth.authenticate") == 1  # the second run reused the cached token


def test_repr_shows_no_secret(settings: ClientSettings) -> None:
    client = AnaplanClient(BasicAuth("demo@anaplan.example", DEFAULT_USER_PASSWORD), settings=settings)
    token_client = AnaplanClient(StaticTokenAuth("very-secret-token-value"), settings=settings)
    for text in (repr(client), str(client), repr(token_client), str(token_client)):
        assert DEFAULT_USER_PASSWORD not in text
        assert "very-secret-token-value" not in text
    assert repr(client) == f"AnaplanClient(api_url={BASE!r}, auth=BasicAuth)"


def test_bad_construction() -> None:
    with pytest.raises(ConfigurationError, match="auth must be an AnaplanAuth"):
        AnaplanClient(("demo@anaplan.example", "pw"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AnaplanClient(BasicAuth("demo@anaplan.example", "pw"), api_url="https://api.anaplan.com/2/0")
    with pytest.raises(ConfigurationError, match=r"Unknown client setting.*no_such_setting"):
        AnaplanClient(BasicAuth("demo@anaplan.example", "pw"), no_such_setting=1)
    with pytest.raises(ConfigurationError, match=r"Unknown client setting.*no_such_setting"):
        AnaplanClient(BasicAuth("demo@anaplan.example", "pw"), settings=ClientSettings(), no_such_setting=1)


@pytest.mark.asyncio
async def test_wrong_prefix_rejected_by_the_facade_without_a_call(basic_auth: BasicAuth) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    async with AnaplanClient(basic_auth, base_url=BASE, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(InvalidInputError, match="'116000000000' is an export id, not an import id"):
            await client.get_import_metadata(SALES, "116000000000")
        with pytest.raises(InvalidInputError, match="is not a model id"):
            await client.list_imports("Sales Forecast")
    assert calls == []


def test_public_surface() -> None:
    for name in public.__all__:
        assert hasattr(public, name), name
    for name in ("AnaplanClient", "BasicAuth", "CertificateAuth", "StaticTokenAuth", "OAuthRefreshTokenAuth"):
        assert name in public.__all__
    for name in ("ClientSettings", "Model", "ImportMetadata", "AnaplanError", "NameNotFoundError", "kind_of"):
        assert name in public.__all__


def test_the_client_imports_no_airflow() -> None:
    code = (
        "import sys, airflow_provider_anaplan.client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'airflow_provider_anaplan') and "
        "(m == 'airflow' or m.startswith(('airflow.', 'airflow_provider_anaplan.emulator')))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
