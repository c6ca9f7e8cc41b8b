"""Emulator files: chunked and single-shot upload, download, delete, limits, and the live quirks (500, new ids)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from airflow_provider_anaplan.emulator import EmulatorApp, bulk, create_app
from airflow_provider_anaplan.emulator.data import Deferred
from airflow_provider_anaplan.emulator.engine import engine_for

from .conftest import FakeClock

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "anaplan-openapi"
WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"
WS_MODEL = f"/2/0/workspaces/{WORKSPACE}/models/{MODEL}"
MODEL_ONLY = f"/2/0/models/{MODEL}"
SALES_FILE = "113000000001"


def with_bulk_routes(app: EmulatorApp) -> EmulatorApp:
    """Register the bulk routes unless app.py already does."""
    if not any(route.template.endswith("/files/{file_id}/chunks/{chunk_id}") for route in app.router.routes):
        bulk.register(app.router, app.state)
    return app


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    return with_bulk_routes(create_app(clock=clock))


@cache
def _spec() -> dict[str, Any]:
    return json.loads((SPEC_DIR / "integration-openapi.json").read_text("utf-8"))


def assert_matches_spec(body: Any, path: str, method: str = "get", status: str = "200") -> None:
    """Validate a JSON body against the response schema the Integration spec gives for ``path``."""
    spec = _spec()
    schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    OAS30Validator({**schema, "components": spec["components"]}).validate(body)


async def upload(client: httpx.AsyncClient, base: str, file_id: str, chunks: list[bytes], gzipped: bool = False) -> str:
    """Upload chunks the way clients do (count -1, chunks, complete) and return the file id Anaplan answered."""
    response = await client.post(f"{base}/files/{file_id}", json={"chunkCount": -1})
    assert response.status_code == 200, response.text
    real_id = response.json()["file"]["id"]
    for index, chunk in enumerate(chunks):
        headers = {"Content-Type": "application/x-gzip" if gzipped else "application/octet-stream"}
        body = gzip.compress(chunk) if gzipped else chunk
        put = await client.put(f"{base}/files/{real_id}/chunks/{index}", content=body, headers=headers)
        assert put.status_code == 204, put.text
    done = await client.post(f"{base}/files/{real_id}/complete", json={"id": real_id})
    assert done.status_code == 200, done.text
    assert done.json()["file"]["chunkCount"] == len(chunks)
    return real_id


@pytest.mark.asyncio
@pytest.mark.parametrize("base", [WS_MODEL, MODEL_ONLY])
async def test_chunked_upload_then_download_is_byte_identical(authed: httpx.AsyncClient, base: str) -> None:
    chunks = [b"Region,Product,Month,Units,Revenue\n", b"North,Laptop,Mar 26,1,2\n", b"South,Monitor,Mar 26,3,4\n"]
    await upload(authed, base, SALES_FILE, chunks, gzipped=True)

    listing = await authed.get(f"{base}/files/{SALES_FILE}/chunks")
    assert listing.status_code == 200
    body = listing.json()
    assert body["chunks"] == [{"id": str(i), "name": f"Chunk {i}"} for i in range(3)]
    assert body["meta"]["paging"] == {"currentPageSize": 3, "offset": 0, "totalSize": 3}
    assert_matches_spec(body, "/workspaces/{workspaceId}/models/{modelId}/files/{fileId}/chunks")
    assert_matches_spec(body, "/models/{modelId}/files/{fileId}/chunks")

    fetched = []
    for index in range(3):
        response = await authed.get(f"{base}/files/{SALES_FILE}/chunks/{index}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        fetched.append(response.content)
    assert fetched == chunks
    whole = await authed.get(f"{base}/files/{SALES_FILE}")
    assert whole.status_code == 200
    assert whole.content == b"".join(chunks)


@pytest.mark.asyncio
async def test_known_chunk_count_needs_no_complete(authed: httpx.AsyncClient) -> None:
    response = await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": 2})
    assert response.status_code == 200
    assert_matches_spec(response.json(), "/workspaces/{workspaceId}/models/{modelId}/files/{fileId}", "post")
    assert response.json()["file"]["chunkCount"] == 2
    for index, part in enumerate([b"a,b\n", b"c,d\n"]):  # out of order is fine: clients upload concurrently
        put = await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/{1 - index}", content=part)
        assert put.status_code == 204
    whole = await authed.get(f"{WS_MODEL}/files/{SALES_FILE}")
    assert whole.content == b"c,d\na,b\n"


@pytest.mark.asyncio
async def test_post_to_unknown_file_id_silently_creates_a_new_file(authed: httpx.AsyncClient, app: EmulatorApp) -> None:
    response = await authed.post(f"{WS_MODEL}/files/113999999999", json={"chunkCount": 1})
    assert response.status_code == 200
    created = response.json()["file"]
    assert created["id"] != "113999999999"
    assert created["id"].startswith("113") and len(created["id"]) == 12
    assert created["name"] == "113999999999"
    assert created["id"] in app.state.models[MODEL].files
    put = await authed.put(f"{WS_MODEL}/files/{created['id']}/chunks/0", content=b"x\n")
    assert put.status_code == 204
    # The id that was asked for still does not exist.
    missing = await authed.put(f"{WS_MODEL}/files/113999999999/chunks/0", content=b"x\n")
    assert missing.status_code == 404


@pytest.mark.asyncio
async def test_files_list_and_file_bodies_match_the_spec(authed: httpx.AsyncClient) -> None:
    new_id = await upload(authed, WS_MODEL, SALES_FILE, [b"Region\n"])
    response = await authed.post(f"{WS_MODEL}/files/{new_id}/complete", json={"id": new_id})
    assert_matches_spec(response.json(), "/workspaces/{workspaceId}/models/{modelId}/files/{fileId}/complete", "post")
    listing = await authed.get(f"{WS_MODEL}/files")
    if listing.status_code == 200:  # the list route belongs to integration.py; check it whenever it is there
        assert_matches_spec(listing.json(), "/workspaces/{workspaceId}/models/{modelId}/files")
        assert_matches_spec(listing.json(), "/models/{modelId}/files")
        by_id = {f["id"]: f for f in listing.json()["files"]}
        assert by_id[SALES_FILE]["chunkCount"] == 1


@pytest.mark.asyncio
async def test_complete_without_a_body_answers_500_as_live(authed: httpx.AsyncClient) -> None:
    await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": -1})
    await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=b"x\n")
    response = await authed.post(f"{WS_MODEL}/files/{SALES_FILE}/complete")
    assert response.status_code == 500
    assert response.json()["status"]["code"] == 500
    # With a body it works.
    response = await authed.post(f"{WS_MODEL}/files/{SALES_FILE}/complete", json={"id": SALES_FILE})
    assert response.status_code == 200


@pytest.mark.asyncio
async def test_complete_with_a_missing_chunk_is_refused(authed: httpx.AsyncClient) -> None:
    await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": -1})
    await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=b"a\n")
    await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/2", content=b"c\n")
    response = await authed.post(f"{WS_MODEL}/files/{SALES_FILE}/complete", json={"id": SALES_FILE})
    assert response.status_code == 400
    assert "[1]" in response.json()["status"]["message"]


@pytest.mark.asyncio
async def test_single_shot_put_and_delete(authed: httpx.AsyncClient) -> None:
    response = await authed.put(
        f"{MODEL_ONLY}/files/{SALES_FILE}",
        content=b"Region\nNorth\n",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 204
    assert (await authed.get(f"{MODEL_ONLY}/files/{SALES_FILE}")).content == b"Region\nNorth\n"

    deleted = await authed.delete(f"{MODEL_ONLY}/files/{SALES_FILE}")
    assert deleted.status_code == 204
    assert (await authed.get(f"{MODEL_ONLY}/files/{SALES_FILE}")).status_code == 404
    listing = await authed.get(f"{MODEL_ONLY}/files/{SALES_FILE}/chunks")
    assert listing.status_code == 200
    assert "chunks" not in listing.json()  # an empty collection drops its key
    assert listing.json()["meta"]["paging"]["totalSize"] == 0
    assert (await authed.get(f"{MODEL_ONLY}/files/{SALES_FILE}/chunks/0")).status_code == 404


@pytest.mark.asyncio
async def test_whole_file_get_of_an_empty_file_is_404(authed: httpx.AsyncClient) -> None:
    await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": 0})
    response = await authed.get(f"{WS_MODEL}/files/{SALES_FILE}")
    assert response.status_code == 404
    assert response.json()["status"]["code"] == 404


@pytest.mark.asyncio
async def test_unknown_files_and_models_are_404(authed: httpx.AsyncClient) -> None:
    assert (await authed.get(f"{WS_MODEL}/files/113123123123/chunks")).status_code == 404
    assert (await authed.delete(f"{WS_MODEL}/files/113123123123")).status_code == 404
    assert (await authed.put(f"{WS_MODEL}/files/113123123123", content=b"x")).status_code == 404
    other_workspace = f"/2/0/workspaces/8a81b01c3e5f4a7b9c1d2e3f4a5b6c7d/models/{MODEL}"
    assert (await authed.get(f"{other_workspace}/files/{SALES_FILE}/chunks")).status_code == 404
    assert (await authed.get(f"/2/0/models/{'0' * 32}/files/{SALES_FILE}/chunks")).status_code == 404


@pytest.mark.asyncio
async def test_file_routes_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": 1})
    assert response.status_code == 401


@pytest.mark.asyncio
async def test_bad_chunk_count_bodies_are_400(authed: httpx.AsyncClient) -> None:
    for body in ({}, {"chunkCount": "3"}, {"chunkCount": -2}, {"chunkCount": True}, [1]):
        response = await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json=body)
        assert response.status_code == 400, body
    response = await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", content=b"{nope")
    assert response.status_code == 400


@pytest.mark.asyncio
async def test_chunk_size_limit_applies_to_the_uncompressed_bytes(authed: httpx.AsyncClient) -> None:
    # The real 50 MB limit, without sending 50 MB: a gzip body that inflates past it.
    oversized = gzip.compress(b"0" * (50 * 1024 * 1024 + 1), compresslevel=1)
    response = await authed.put(
        f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=oversized, headers={"Content-Type": "application/x-gzip"}
    )
    assert response.status_code == 413
    at_limit = gzip.compress(b"0" * (50 * 1024 * 1024), compresslevel=1)
    response = await authed.put(
        f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=at_limit, headers={"Content-Type": "application/x-gzip"}
    )
    assert response.status_code == 204


@pytest.mark.asyncio
async def test_raw_chunk_and_single_shot_limits(authed: httpx.AsyncClient, app: EmulatorApp) -> None:
    engine_for(app.state).options.max_chunk_bytes = 100
    assert (await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=b"x" * 101)).status_code == 413
    assert (await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=b"x" * 100)).status_code == 204
    assert (await authed.put(f"{WS_MODEL}/files/{SALES_FILE}", content=b"x" * 101)).status_code == 413


@pytest.mark.asyncio
async def test_at_most_1000_chunks(authed: httpx.AsyncClient) -> None:
    assert (await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": 1001})).status_code == 400
    assert (await authed.post(f"{WS_MODEL}/files/{SALES_FILE}", json={"chunkCount": 1000})).status_code == 200
    assert (await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/999", content=b"x")).status_code == 204
    assert (await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/1000", content=b"x")).status_code == 400
    assert (await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/abc", content=b"x")).status_code == 404


@pytest.mark.asyncio
async def test_invalid_gzip_is_400(authed: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/x-gzip"}
    response = await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=b"not gzip", headers=headers)
    assert response.status_code == 400
    truncated = gzip.compress(b"abc" * 1000)[:-12]
    response = await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/0", content=truncated, headers=headers)
    assert response.status_code == 400


@pytest.mark.asyncio
async def test_chunk_list_pages(authed: httpx.AsyncClient) -> None:
    await upload(authed, WS_MODEL, SALES_FILE, [b"a\n", b"b\n", b"c\n"])
    page = (await authed.get(f"{WS_MODEL}/files/{SALES_FILE}/chunks", params={"limit": 2, "offset": 1})).json()
    assert [c["id"] for c in page["chunks"]] == ["1", "2"]
    assert page["meta"]["paging"]["totalSize"] == 3
    assert "previous" in page["meta"]["paging"]
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_FILE}/chunks", params={"limit": "x"})).status_code == 400


def _spooled(path: Path) -> list[Path]:
    return list(path.iterdir())


@pytest.mark.asyncio
async def test_spooled_content_round_trips(authed: httpx.AsyncClient, app: EmulatorApp, tmp_path: Path) -> None:
    engine_for(app.state).use_spool_dir(str(tmp_path))
    await upload(authed, WS_MODEL, SALES_FILE, [b"a\n", b"b\n"])
    assert len(_spooled(tmp_path)) == 2
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_FILE}")).content == b"a\nb\n"
    await authed.delete(f"{WS_MODEL}/files/{SALES_FILE}")
    assert _spooled(tmp_path) == []


# ---------------------------------------------------------------------------------------------------- chunk ids
@pytest.mark.asyncio
@pytest.mark.parametrize("chunk_id", ["\u00b2", "\u0663", "%C2%B2", "9" * 5000, "1" * 19])
async def test_a_chunk_id_that_is_not_a_small_ascii_number_is_a_4xx(authed: httpx.AsyncClient, chunk_id: str) -> None:
    await upload(authed, WS_MODEL, SALES_FILE, [b"a\n"])
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_FILE}/chunks/{chunk_id}")).status_code == 404
    put = await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/{chunk_id}", content=b"x")
    assert put.status_code == (404 if not chunk_id.isascii() or not chunk_id.isdigit() else 400), put.text
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_FILE}/chunks/{'0' * 40}")).status_code == 200  # chunk 0


# ---------------------------------------------------------------------------------------------------- stored gzip
@pytest.mark.asyncio
async def test_compressed_chunks_can_be_kept_as_uploaded_and_inflated_when_first_read(
    authed: httpx.AsyncClient, app: EmulatorApp
) -> None:
    engine = engine_for(app.state)
    engine.options.store_compressed_chunks = True
    chunks = [b"Region,Product,Month,Units,Revenue\n", b"North,Laptop,Mar 26,1,2\n" * 100]
    await upload(authed, WS_MODEL, SALES_FILE, chunks, gzipped=True)
    kept = engine.store._files[(MODEL, SALES_FILE)]
    assert all(isinstance(c, Deferred) for c in kept.values())  # not inflated on upload
    assert (await authed.get(f"{WS_MODEL}/files/{SALES_FILE}/chunks/1")).content == chunks[1]
    assert kept[1] == chunks[1] and isinstance(kept[0], Deferred)  # inflated once, when read, and kept so
    assert b"".join(engine.store.iter_chunks(MODEL, SALES_FILE)) == b"".join(chunks)
    assert engine.store.size(MODEL, SALES_FILE) == sum(map(len, chunks))
    raw = await authed.put(f"{WS_MODEL}/files/{SALES_FILE}/chunks/2", content=b"plain\n")  # uncompressed: as before
    assert raw.status_code == 204 and kept[2] == b"plain\n"


@pytest.mark.asyncio
async def test_stored_compressed_chunks_are_checked_lightly_on_upload_and_fully_when_read(
    authed: httpx.AsyncClient, app: EmulatorApp, tmp_path: Path
) -> None:
    engine = engine_for(app.state)
    engine.options.store_compressed_chunks = True
    engine.options.max_chunk_bytes = 1000
    engine.use_spool_dir(str(tmp_path))
    headers = {"Content-Type": "application/x-gzip"}
    path = f"{WS_MODEL}/files/{SALES_FILE}/chunks"
    assert (await authed.put(f"{path}/0", content=b"not gzip at all!!!", headers=headers)).status_code == 400
    too_big = gzip.compress(b"0" * 1001)
    assert (await authed.put(f"{path}/0", content=too_big, headers=headers)).status_code == 413
    corrupt = bytearray(gzip.compress(b"abc" * 100))
    corrupt[12:16] = b"\xff\xff\xff\xff"
    assert (await authed.put(f"{path}/0", content=bytes(corrupt), headers=headers)).status_code == 204
    assert (await authed.get(f"{path}/0")).status_code == 400  # found when it is inflated
    assert (await authed.put(f"{path}/1", content=gzip.compress(b"ok\n"), headers=headers)).status_code == 204
    assert len(_spooled(tmp_path)) == 2  # kept compressed in the spool
    assert (await authed.get(f"{path}/1")).content == b"ok\n"
    await authed.delete(f"{WS_MODEL}/files/{SALES_FILE}")
    assert _spooled(tmp_path) == []


def test_cli_store_compressed_chunks_option() -> None:
    from airflow_provider_anaplan.emulator.__main__ import build_parser, build_state, configure_engine

    for argv, expected in (([], False), (["--store-compressed-chunks"], True)):
        args = build_parser().parse_args(argv)
        state = build_state(args)
        configure_engine(args, state)
        assert engine_for(state).options.store_compressed_chunks is expected
