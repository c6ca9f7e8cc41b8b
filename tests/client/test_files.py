"""Chunked uploads and downloads against the emulator: every source type, gzip off the event loop, bounded memory and
concurrency, a failed chunk re-sent alone, the unknown-file-id trap, and downloads in order."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from airflow_provider_anaplan.client import (
    AnaplanClient,
    BasicAuth,
    ClientSettings,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    ServerError,
)
from airflow_provider_anaplan.client import files as files_module
from airflow_provider_anaplan.emulator import EmulatorApp, bulk, create_app
from airflow_provider_anaplan.emulator.engine import Engine, engine_for
from tests.emulator.conftest import FakeClock, LiveServer

from .conftest import BASE, FAST_RETRIES

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"  # Sales Forecast
SALES_FILE = "113000000001"  # Sales Actuals.csv
EMPLOYEES_FILE = "113000000000"
SALES_EXPORT = "116000000000"


def with_bulk_routes(app: EmulatorApp) -> EmulatorApp:
    """Register the emulator's file and task routes unless app.py already does."""
    if not any(route.template.endswith("/files/{file_id}/chunks/{chunk_id}") for route in app.router.routes):
        bulk.register(app.router, app.state)
    return app


class TickingSleep:
    """The client's sleep: moves the shared fake clock instead of waiting, so emulated tasks progress at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []
        self.hooks: list[Callable[[], Any]] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        for hook in self.hooks:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0)


class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the emulator, records them, counts requests in flight, and the chunk bytes acknowledged."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.requests: list[httpx.Request] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.acked_chunk_bytes = 0  # uncompressed
        self.acked_body_bytes = 0  # as sent (compressed or not)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} chunk" if "/chunks/" in request.url.path else request.method
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), self.in_flight[key])
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            response = await self.inner.handle_async_request(request)
        finally:
            self.in_flight[key] -= 1
        if request.method == "PUT" and "/chunks/" in request.url.path and response.status_code == 204:
            body = request.content
            self.acked_body_bytes += len(body)
            if request.headers.get("content-type") == "application/x-gzip":
                body = gzip.decompress(body)
            self.acked_chunk_bytes += len(body)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def calls(self, method: str | None = None, contains: str = "") -> list[httpx.Request]:
        """The Integration API requests, optionally of one method and with ``contains`` in the path."""
        return [
            r
            for r in self.requests
            if r.url.path.startswith("/2/0/") and (method is None or r.method == method) and contains in r.url.path
        ]


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    return with_bulk_routes(create_app(clock=clock))


@pytest.fixture
def engine(app: EmulatorApp) -> Engine:
    return engine_for(app.state)


@pytest.fixture
def ticking(clock: FakeClock) -> TickingSleep:
    return TickingSleep(clock)


@pytest.fixture
def recorder(app: EmulatorApp) -> Recorder:
    return Recorder(httpx.ASGITransport(app=app))


@pytest_asyncio.fixture
async def client(
    recorder: Recorder, clock: FakeClock, ticking: TickingSleep, basic_auth: BasicAuth
) -> AsyncIterator[AnaplanClient]:
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, sleep=ticking, **FAST_RETRIES)
    async with AnaplanClient(basic_auth, settings=settings) as c:
        yield c


def stored(engine: Engine, file_id: str, model: str = MODEL) -> bytes:
    """What the emulator holds for a file, all chunks joined."""
    return b"".join(engine.store.iter_chunks(model, file_id))


def csv_bytes(rows: int) -> bytes:
    lines = [b"Region,Product,Month,Units,Revenue\n"]
    lines += [b"North,Laptop,Mar 26,%d,%d\n" % (i, i * 7) for i in range(rows)]
    return b"".join(lines)


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


# ---------------------------------------------------------------------------------------------------- sources
@pytest.mark.asyncio
async def test_upload_bytes_of_known_size_announces_the_chunk_count(
    client: AnaplanClient, recorder: Recorder, engine: Engine, tmp_path: Path
) -> None:
    data = csv_bytes(130)  # 3548 bytes: four chunks of 1000 bytes
    described = await client.upload_file(MODEL, SALES_FILE, data, workspace_id=WORKSPACE, chunk_size=1000)
    assert described.id == SALES_FILE
    assert described.chunk_count == 4
    (start,) = [r for r in recorder.calls("POST") if r.url.path.endswith(f"/files/{SALES_FILE}")]
    assert start.content == b'{"chunkCount":4}'
    assert not recorder.calls("POST", "/complete")  # a known count needs no complete
    puts = recorder.calls("PUT", "/chunks/")
    assert sorted(r.url.path.rsplit("/", 1)[1] for r in puts) == ["0", "1", "2", "3"]
    assert {r.headers["content-type"] for r in puts} == {"application/x-gzip"}
    assert stored(engine, SALES_FILE) == data

    assert await client.download_file(MODEL, SALES_FILE, tmp_path / "out.csv") == len(data)
    assert (tmp_path / "out.csv").read_bytes() == data
    assert not (tmp_path / "out.csv.part").exists()
    assert await collect(client.stream_file(MODEL, "Sales Actuals.csv")) == data
    assert await collect(await client.download_file(MODEL, SALES_FILE)) == data
    buffer = io.BytesIO()
    assert await client.download_file(MODEL, SALES_FILE, buffer, workspace_id=WORKSPACE) == len(data)
    assert buffer.getvalue() == data


def _sync_pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _async_pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[i : i + size]


SOURCES: dict[str, Callable[[bytes, Path], Any]] = {
    "str": lambda data, _: data.decode(),
    "bytearray": lambda data, _: bytearray(data),
    "memoryview": lambda data, _: memoryview(data),
    "path": lambda data, tmp: (tmp / "in.csv").write_bytes(data) and tmp / "in.csv",
    "file object": lambda data, _: io.BytesIO(data),
    "text file object": lambda data, _: io.StringIO(data.decode()),
    "list of pieces": lambda data, _: [data[:10], data[10:2500], data[2500:]],
    "sync generator": lambda data, _: _sync_pieces(data, 333),
    "async generator": lambda data, _: _async_pieces(data, 777),
    "async generator of big pieces": lambda data, _: _async_pieces(data, 2500),
    "str pieces": lambda data, _: (line + "\n" for line in data.decode().splitlines()),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", list(SOURCES))
async def test_every_source_type_round_trips(
    client: AnaplanClient, recorder: Recorder, engine: Engine, tmp_path: Path, kind: str
) -> None:
    data = csv_bytes(130)
    source = SOURCES[kind](data, tmp_path)
    described = await client.upload_file(MODEL, SALES_FILE, source, chunk_size=1000)
    assert described.chunk_count == 4
    assert stored(engine, SALES_FILE) == data
    (start,) = [r for r in recorder.calls("POST") if r.url.path.endswith(f"/files/{SALES_FILE}")]
    if kind in ("str", "bytearray", "memoryview"):
        assert start.content == b'{"chunkCount":4}'
    else:  # the size is not known up front (or may change): -1, then complete with a body
        assert start.content == b'{"chunkCount":-1}'
        (complete,) = recorder.calls("POST", "/complete")
        assert b'"id":"113000000001"' in complete.content and b'"chunkCount":4' in complete.content
    assert await collect(client.stream_file(MODEL, SALES_FILE)) == data


class _SlowOpening(Recorder):
    """The emulator behind a slow ``POST …/files/{id}`` (the request that opens an upload), logging events in order."""

    def __init__(self, inner: httpx.AsyncBaseTransport, log: list[str]) -> None:
        super().__init__(inner)
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        opening = request.method == "POST" and request.url.path.rstrip("/").split("/")[-2] == "files"
        if opening:
            await asyncio.sleep(0.3)
        response = await super().handle_async_request(request)
        if opening:
            self.log.append("opened")
        elif request.method == "PUT":
            self.log.append("put")
        return response


@pytest.mark.asyncio
async def test_the_source_is_read_and_compressed_while_the_upload_is_opened_and_nothing_sent_before(
    app: EmulatorApp, engine: Engine, clock: FakeClock, basic_auth: BasicAuth
) -> None:
    log: list[str] = []
    data = csv_bytes(300)

    async def source() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            log.append("read")
            yield data[start : start + 1000]

    recorder = _SlowOpening(httpx.ASGITransport(app=app), log)
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, **FAST_RETRIES)
    async with AnaplanClient(basic_auth, settings=settings) as client:
        await client.upload_file(MODEL, SALES_FILE, source(), chunk_size=1000, concurrency=2)
    assert stored(engine, SALES_FILE) == data
    opened = log.index("opened")
    assert log[:opened].count("read") >= 2  # chunks read (and queued for gzip) during the slow POST
    assert "put" not in log[:opened]  # but no chunk sent to a file not yet known to be the right one
    assert log.count("put") == -(-len(data) // 1000)


@pytest.mark.asyncio
async def test_upload_from_an_async_generator_of_unknown_length(client: AnaplanClient, engine: Engine) -> None:
    produced = bytearray()

    async def rows() -> AsyncIterator[bytes]:
        yield b"Region,Product,Month,Units,Revenue\n"
        for i in range(997):
            line = b"South,Monitor,Apr 26,%d,%d\n" % (i, i)
            produced.extend(line)
            yield line

    described = await client.upload_file(MODEL, SALES_FILE, rows(), chunk_size=4096)
    expected = b"Region,Product,Month,Units,Revenue\n" + bytes(produced)
    assert described.chunk_count == -(-len(expected) // 4096)
    assert stored(engine, SALES_FILE) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize("compress", [False, 0, 9, True])
async def test_compression_switch_and_level(
    client: AnaplanClient, recorder: Recorder, engine: Engine, compress: bool | int
) -> None:
    data = csv_bytes(40)
    await client.upload_file(MODEL, SALES_FILE, data, compress=compress)
    (put,) = recorder.calls("PUT", "/chunks/0")
    if compress:
        assert put.headers["content-type"] == "application/x-gzip"
        assert gzip.decompress(put.content) == data
    else:
        assert put.headers["content-type"] == "application/octet-stream"
        assert put.content == data
    assert stored(engine, SALES_FILE) == data


@pytest.mark.asyncio
async def test_an_empty_source_leaves_an_empty_file(client: AnaplanClient, engine: Engine) -> None:
    await client.upload_file(MODEL, SALES_FILE, b"old content\n")

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover

    described = await client.upload_file(MODEL, SALES_FILE, nothing())
    assert described.chunk_count == 0
    assert stored(engine, SALES_FILE) == b""
    assert await collect(client.stream_file(MODEL, SALES_FILE)) == b""


# ---------------------------------------------------------------------------------------------------- failures
@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["server_error", "drop", "reset"])
async def test_a_chunk_that_fails_is_resent_alone_and_the_file_is_identical(
    app: EmulatorApp, client: AnaplanClient, recorder: Recorder, engine: Engine, fault: str
) -> None:
    data = csv_bytes(400)
    app.faults.add_rule(fault, method="PUT", path=r"/chunks/2$", count=1)
    described = await client.upload_file(MODEL, SALES_FILE, _async_pieces(data, 500), chunk_size=1000)
    assert stored(engine, SALES_FILE) == data
    sent = [r.url.path.rsplit("/", 1)[1] for r in recorder.calls("PUT", "/chunks/")]
    assert sent.count("2") == 2
    assert all(sent.count(str(i)) == 1 for i in range(described.chunk_count or 0) if i != 2)
    assert app.state.counters[f"faults.{fault}"] == 1


@pytest.mark.asyncio
async def test_a_chunk_that_keeps_failing_fails_the_upload(
    app: EmulatorApp, client: AnaplanClient, recorder: Recorder
) -> None:
    app.faults.add_rule("server_error", method="PUT", path=r"/chunks/1$", count=50, status=503)
    with pytest.raises(ServerError, match="503"):
        await client.upload_file(MODEL, SALES_FILE, csv_bytes(400), chunk_size=1000, concurrency=2)
    assert not recorder.calls("POST", "/complete")
    assert all(v == 0 for v in recorder.in_flight.values())  # nothing left running


@pytest.mark.asyncio
async def test_a_source_that_raises_stops_the_upload(client: AnaplanClient, recorder: Recorder) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * 2500
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        await client.upload_file(MODEL, SALES_FILE, broken(), chunk_size=1000)
    assert not recorder.calls("POST", "/complete")
    assert all(v == 0 for v in recorder.in_flight.values())


# ---------------------------------------------------------------------------------------------------- file ids
@pytest.mark.asyncio
async def test_an_unknown_file_id_is_refused_before_anaplan_can_create_a_file(
    app: EmulatorApp, client: AnaplanClient, recorder: Recorder
) -> None:
    before = set(app.state.models[MODEL].files)
    with pytest.raises(NotFoundError, match="allow_new_file=True"):
        await client.upload_file(MODEL, "113999999999", b"x,y\n1,2\n")
    assert not recorder.calls("POST", "/files/")
    assert set(app.state.models[MODEL].files) == before
    with pytest.raises(NotFoundError, match="allow_new_file=True"):
        await client.upload_file(MODEL, "Salse Actuals.csv", b"x,y\n1,2\n")


@pytest.mark.asyncio
async def test_allow_new_file_returns_the_file_anaplan_created(
    app: EmulatorApp, client: AnaplanClient, engine: Engine
) -> None:
    created = await client.upload_file(MODEL, "113999999999", b"x,y\n1,2\n", allow_new_file=True)
    assert created.id != "113999999999" and created.id.startswith("113")
    assert created.name == "113999999999"
    assert stored(engine, created.id) == b"x,y\n1,2\n"
    named = await client.upload_file(MODEL, "New Upload.csv", b"a\n", allow_new_file=True)
    assert app.state.models[MODEL].files[named.id]["name"] == "New Upload.csv"
    assert stored(engine, named.id) == b"a\n"


@pytest.mark.asyncio
async def test_a_different_file_id_in_the_answer_is_refused(
    app: EmulatorApp, client: AnaplanClient, engine: Engine
) -> None:
    # The file exists when it is looked up but is gone when the upload starts: Anaplan answers with a new id.
    original = client.find_file

    async def find_then_remove(*args: Any, **kwargs: Any) -> Any:
        found = await original(*args, **kwargs)
        del app.state.models[MODEL].files[SALES_FILE]
        return found

    client.find_file = find_then_remove  # type: ignore[method-assign]
    with pytest.raises(ProtocolError, match="created a new file"):
        await client.upload_file(MODEL, SALES_FILE, b"x\n")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("file", "message"),
    [
        (SALES_EXPORT, "export's output file"),
        ("112000000001", "is an import id, not a file id"),
        ("", "non-empty"),
    ],
)
async def test_wrong_file_ids_fail_before_any_upload(
    client: AnaplanClient, recorder: Recorder, file: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await client.upload_file(MODEL, file, b"x\n")
    assert not recorder.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 50 * 1024 * 1024 + 1}, "chunk_size"),
        ({"concurrency": 0}, "concurrency"),
        ({"compress": 10}, "compress"),
    ],
)
async def test_bad_options_fail_before_any_call(
    client: AnaplanClient, recorder: Recorder, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await client.upload_file(MODEL, SALES_FILE, b"x\n", **options)
    assert not recorder.requests


@pytest.mark.asyncio
async def test_a_str_naming_a_file_is_refused(client: AnaplanClient, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    with pytest.raises(InvalidInputError, match=r"pathlib\.Path"):
        await client.upload_file(MODEL, SALES_FILE, str(path))


@pytest.mark.asyncio
async def test_unsupported_sources_and_pieces(client: AnaplanClient) -> None:
    with pytest.raises(InvalidInputError, match="of type int"):
        await client.upload_file(MODEL, SALES_FILE, 42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="must yield bytes"):
        await client.upload_file(MODEL, SALES_FILE, [b"ok", 3])  # type: ignore[list-item]


@pytest.mark.asyncio
async def test_the_chunk_limit(client: AnaplanClient, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "MAX_CHUNKS", 5)
    data = csv_bytes(300)
    # A known size grows the chunks to fit.
    described = await client.upload_file(MODEL, SALES_FILE, data, chunk_size=100)
    assert described.chunk_count == 5
    assert stored(engine, SALES_FILE) == data
    # An unknown size cannot: it fails clearly once the limit is passed.
    with pytest.raises(InvalidInputError, match="more than 5 chunks"):
        await client.upload_file(MODEL, SALES_FILE, _async_pieces(data, 100), chunk_size=100)


# ---------------------------------------------------------------------------------------------------- memory, threads
@pytest.mark.asyncio
async def test_upload_memory_is_bounded_by_chunk_size_times_concurrency_plus_one(
    app: EmulatorApp, clock: FakeClock, basic_auth: BasicAuth, engine: Engine
) -> None:
    # Uncompressed, every chunk counts whole until its PUT is acknowledged: the bound at its tightest.
    recorder = Recorder(httpx.ASGITransport(app=app), delay=0.002)  # slow uploads: the pipeline backs up
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, **FAST_RETRIES)
    chunk_size, concurrency, piece = 8000, 3, 1000
    total_pieces = 1600  # 1.6 MB: a hundred times the bound
    held: list[int] = []
    produced = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        for i in range(total_pieces):
            produced += piece
            held.append(produced - recorder.acked_chunk_bytes)  # read from the source but not yet stored
            yield bytes([65 + i % 26]) * piece

    async with AnaplanClient(basic_auth, settings=settings) as client:
        described = await client.upload_file(
            MODEL, SALES_FILE, source(), chunk_size=chunk_size, concurrency=concurrency, compress=False
        )
    assert described.chunk_count == total_pieces * piece // chunk_size
    assert len(stored(engine, SALES_FILE)) == total_pieces * piece
    assert max(held) <= chunk_size * (concurrency + 1)
    assert max(held) > chunk_size * concurrency  # the bound is reached: the pipeline really overlaps
    assert recorder.max_in_flight["PUT chunk"] == concurrency


@pytest.mark.asyncio
async def test_compressed_upload_runs_gzip_ahead_of_the_sends_within_the_same_memory_bound(
    app: EmulatorApp, clock: FakeClock, basic_auth: BasicAuth, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Held = chunks read but not yet compressed (whole) + compressed bodies not yet acknowledged (their size); the
    # bound is chunk_size * (concurrency + 1), plus the output of the compressions under way (a fraction of a chunk).
    recorder = Recorder(httpx.ASGITransport(app=app), delay=0.002)
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, **FAST_RETRIES)
    chunk_size, concurrency = 8000, 3
    data = csv_bytes(40_000)  # ~1 MB, gzip shrinks it about 4x
    lock = threading.Lock()
    compressed = {"raw": 0, "out": 0}
    threads: set[str] = set()
    real = files_module.compress_chunk

    def spy(chunk: Any, level: int) -> bytes:
        out = real(chunk, level)
        with lock:
            compressed["raw"] += len(chunk)
            compressed["out"] += len(out)
            threads.add(threading.current_thread().name)
        return out

    monkeypatch.setattr(files_module, "compress_chunk", spy)
    held: list[int] = []
    raw_ahead: list[int] = []
    produced = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal produced
        for start in range(0, len(data), 1000):
            piece = data[start : start + 1000]
            produced += len(piece)
            with lock:
                held.append(produced - compressed["raw"] + compressed["out"] - recorder.acked_body_bytes)
            raw_ahead.append(produced - recorder.acked_chunk_bytes)
            yield piece

    async with AnaplanClient(basic_auth, settings=settings) as client:
        await client.upload_file(MODEL, SALES_FILE, source(), chunk_size=chunk_size, concurrency=concurrency)
    assert stored(engine, SALES_FILE) == data
    compressors = min(concurrency, os.cpu_count() or 1)
    assert max(held) <= chunk_size * (concurrency + 1) + compressors * chunk_size // 2  # + outputs under way
    # Compressed bodies are small, so gzip runs ahead: more of the source is read ahead of the sends than the
    # uncompressed bound would allow, while what is held stays within it.
    assert max(raw_ahead) > chunk_size * (concurrency + 1)
    assert recorder.max_in_flight["PUT chunk"] == concurrency
    assert threads and all(name.startswith("anaplan-gzip") for name in threads)
    assert len(threads) <= min(concurrency, os.cpu_count() or 1)


class _AckCounter(Recorder):
    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float) -> None:
        super().__init__(inner, delay)
        self.acked = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.method == "PUT" and response.status_code == 204:
            self.acked += 1
        return response


@pytest.mark.asyncio
async def test_at_most_concurrency_compressed_bodies_exist_at_once_whatever_the_file_size(
    app: EmulatorApp, clock: FakeClock, basic_auth: BasicAuth, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small gzip bodies would let the byte budget hold many; a file of `concurrency` chunks holds that many bodies,
    # and a long file holds no more (so peak memory at 1 GB is what it is at 100 MB).
    recorder = _AckCounter(httpx.ASGITransport(app=app), delay=0.005)  # slow PUTs: bodies pile up if allowed to
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, **FAST_RETRIES)
    data = csv_bytes(20_000)
    lock = threading.Lock()
    made = 0
    alive: list[int] = []
    real = files_module.compress_chunk

    def spy(chunk: Any, level: int) -> bytes:
        nonlocal made
        with lock:
            made += 1
            alive.append(made - recorder.acked)
        return real(chunk, level)

    monkeypatch.setattr(files_module, "compress_chunk", spy)
    async with AnaplanClient(basic_auth, settings=settings) as client:
        await client.upload_file(MODEL, SALES_FILE, data, chunk_size=8000, concurrency=3)
    assert stored(engine, SALES_FILE) == data
    assert made == -(-len(data) // 8000) > 50
    assert max(alive) == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("compress", [True, False])
async def test_a_file_is_read_into_a_few_buffers_reused_from_chunk_to_chunk(
    client: AnaplanClient, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compress: bool
) -> None:
    buffers: set[int] = set()
    real = files_module._read_into

    def spy(handle: Any, buffer: bytearray | None, size: int) -> tuple[bytearray, int]:
        filled, count = real(handle, buffer, size)
        buffers.add(id(filled))
        return filled, count

    monkeypatch.setattr(files_module, "_read_into", spy)
    data = csv_bytes(3000)  # about 80 chunks of 1000 bytes, the last one short
    source = tmp_path / "sales.csv"
    source.write_bytes(data)
    described = await client.upload_file(MODEL, SALES_FILE, source, chunk_size=1000, concurrency=2, compress=compress)
    assert stored(engine, SALES_FILE) == data
    assert described.chunk_count == -(-len(data) // 1000)
    assert 1 <= len(buffers) <= 2  # one per read slot: min(compressors + 1, concurrency), or 1 without compression


@pytest.mark.asyncio
async def test_gzip_runs_in_worker_threads_never_on_the_event_loop(
    client: AnaplanClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real = files_module.compress_chunk

    def spy(data: Any, level: int) -> bytes:
        threads.append(threading.get_ident())
        return real(data, level)

    monkeypatch.setattr(files_module, "compress_chunk", spy)
    data = csv_bytes(200)
    await client.upload_file(MODEL, SALES_FILE, data, chunk_size=1000)
    assert len(threads) == 6  # 5565 bytes in chunks of 1000
    assert loop_thread not in threads
    assert stored(engine, SALES_FILE) == data


# ---------------------------------------------------------------------------------------------------- download, delete
@pytest.mark.asyncio
async def test_download_fetches_concurrently_and_yields_in_order(
    app: EmulatorApp, clock: FakeClock, basic_auth: BasicAuth
) -> None:
    recorder = Recorder(httpx.ASGITransport(app=app), delay=0.002)
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, **FAST_RETRIES)
    data = csv_bytes(300)
    async with AnaplanClient(basic_auth, settings=settings) as client:
        await client.upload_file(MODEL, SALES_FILE, data, chunk_size=250)
        chunks = [c async for c in client.stream_file(MODEL, SALES_FILE, concurrency=3)]
    assert b"".join(chunks) == data
    assert len(chunks) == -(-len(data) // 250)
    assert recorder.max_in_flight["GET chunk"] == 3


class _KeepingWriter:
    """A binary file object that keeps every object it is asked to write (not a copy) and the bytes it held then."""

    mode = "wb"

    def __init__(self) -> None:
        self.objects: list[object] = []
        self.content = bytearray()

    def write(self, data: bytes | bytearray) -> int:
        self.objects.append(data)
        self.content += data
        return len(data)


@pytest.mark.asyncio
async def test_a_download_reads_its_chunks_into_concurrency_buffers_reused(
    client: AnaplanClient, recorder: Recorder
) -> None:
    data = csv_bytes(400)
    await client.upload_file(MODEL, SALES_FILE, data, chunk_size=300)
    writer = _KeepingWriter()
    written = await client.download_file(MODEL, SALES_FILE, writer, concurrency=3)
    assert written == len(data)
    assert bytes(writer.content) == data  # each chunk was written out before its buffer took a later chunk
    chunks = -(-len(data) // 300)
    assert len(writer.objects) == chunks > 10
    assert len({id(obj) for obj in writer.objects}) <= 3  # kept alive, so distinct objects have distinct ids


@pytest.mark.asyncio
async def test_a_failed_download_leaves_no_partial_file(
    app: EmulatorApp, client: AnaplanClient, recorder: Recorder, tmp_path: Path
) -> None:
    await client.upload_file(MODEL, SALES_FILE, csv_bytes(100), chunk_size=500)
    app.faults.add_rule("server_error", method="GET", path=r"/chunks/2$", count=50, status=502)
    target = tmp_path / "out.csv"
    with pytest.raises(ServerError, match="502"):
        await client.download_file(MODEL, SALES_FILE, target, concurrency=2)
    assert not target.exists()
    assert not (tmp_path / "out.csv.part").exists()
    await asyncio.sleep(0)
    assert all(v == 0 for v in recorder.in_flight.values())


@pytest.mark.asyncio
async def test_stopping_a_download_early_cancels_the_fetches_ahead(client: AnaplanClient, recorder: Recorder) -> None:
    await client.upload_file(MODEL, SALES_FILE, csv_bytes(300), chunk_size=200)
    stream = client.stream_file(MODEL, SALES_FILE, concurrency=4)
    first = await anext(stream)
    assert first.startswith(b"Region,")
    await stream.aclose()
    assert all(v == 0 for v in recorder.in_flight.values())


@pytest.mark.asyncio
async def test_delete_file_removes_the_content(client: AnaplanClient, engine: Engine) -> None:
    await client.upload_file(MODEL, SALES_FILE, b"a,b\n")
    await client.delete_file(MODEL, "Sales Actuals.csv", workspace_id=WORKSPACE)
    assert stored(engine, SALES_FILE) == b""
    assert await collect(client.stream_file(MODEL, SALES_FILE)) == b""
    with pytest.raises(NotFoundError):
        await client.delete_file(MODEL, "113999999999")


@pytest.mark.asyncio
async def test_a_bad_download_destination(client: AnaplanClient) -> None:
    await client.upload_file(MODEL, SALES_FILE, b"a,b\n")
    with pytest.raises(InvalidInputError, match="destination"):
        await client.download_file(MODEL, SALES_FILE, 42)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------------- over a socket
@pytest.mark.asyncio
async def test_round_trip_over_loopback_with_a_reset_chunk(
    app: EmulatorApp,
    live_server_factory: Callable[[EmulatorApp], LiveServer],
    clock: FakeClock,
    basic_auth: BasicAuth,
    engine: Engine,
    tmp_path: Path,
) -> None:
    server = live_server_factory(app)
    app.faults.add_rule("reset", method="PUT", path=r"/chunks/1$", count=1)
    app.faults.add_rule("drop", method="PUT", path=r"/chunks/3$", count=1)
    settings = ClientSettings(base_url=server.url, clock=clock, timeout=10.0, **FAST_RETRIES)
    data = csv_bytes(2000)
    source = tmp_path / "big.csv"
    source.write_bytes(data)
    async with AnaplanClient(basic_auth, settings=settings) as client:
        described = await client.upload_file(MODEL, SALES_FILE, source, chunk_size=8192, workspace_id=WORKSPACE)
        assert described.chunk_count == -(-len(data) // 8192)
        assert stored(engine, SALES_FILE) == data
        assert await client.download_file(MODEL, SALES_FILE, tmp_path / "back.csv") == len(data)
    assert (tmp_path / "back.csv").read_bytes() == data
    assert app.state.counters["faults.reset"] == 1 and app.state.counters["faults.drop"] == 1
