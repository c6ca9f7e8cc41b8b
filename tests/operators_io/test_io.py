"""The operators' storage bridges against the emulator: uploads from local paths, ``file://`` and ``memory://``
ObjectStoragePaths and text; downloads into them with a temporary name and a CSV row count; failure dumps saved and
summarised; memory held during transfers measured in bytes; progress lines; the per-file guard."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
import pytest_asyncio
from airflow.sdk import ObjectStoragePath

from airflow_provider_anaplan.client import AnaplanClient, BasicAuth, ClientSettings, OutcomeStatus, token_cache
from airflow_provider_anaplan.client.errors import TaskFailedError
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import Engine, engine_for
from airflow_provider_anaplan.exceptions import ConflictError, InvalidInputError, NotFoundError
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook, forget_shared_clients
from airflow_provider_anaplan.operators import _guard
from airflow_provider_anaplan.operators._io import (
    CsvRecordCounter,
    TransferProgress,
    adownload_to,
    aopen_source,
    asave_failure_dump,
    asave_failure_dumps,
    download_to,
    open_source,
    render_dump_target,
    save_failure_dumps,
    write_stream,
)
from tests.client.conftest import BASE, FAST_RETRIES
from tests.client.test_files import MODEL, SALES_FILE, WORKSPACE, Recorder, TickingSleep
from tests.client.test_tasks import (
    EMPLOYEES_FILE,
    EMPLOYEES_IMPORT,
    NIGHTLY_LOAD,
    POLL,
    SALES_IMPORT,
    SALES_WITH_BAD_ROWS,
)
from tests.emulator.conftest import FakeClock, LiveServer

KB = 1024


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    token_cache.clear()
    forget_shared_clients()
    yield
    token_cache.clear()
    forget_shared_clients()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def client(recorder: Recorder, clock: FakeClock, ticking: TickingSleep) -> AsyncIterator[AnaplanClient]:
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, sleep=ticking, **FAST_RETRIES)
    async with AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=settings) as c:
        yield c


@pytest.fixture(params=["local", "file", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A directory of each kind: a local ``Path``, a ``file://`` and a ``memory://`` ObjectStoragePath."""
    if request.param == "local":
        return tmp_path
    if request.param == "file":
        return ObjectStoragePath(f"file://{tmp_path}/")
    return request.getfixturevalue("memory_root")


def join(directory: Any, *names: str) -> Any:
    """``directory / name / ...``; an ObjectStoragePath is rebuilt from its URL, because on Airflow 3.1 its ``/``
    warns (PendingDeprecationWarning, from universal_pathlib's ``__fspath__``) and warnings are errors here."""
    if not isinstance(directory, ObjectStoragePath):  # (on Airflow 3.1 it is also a pathlib.Path)
        return directory.joinpath(*names)
    return ObjectStoragePath("/".join([str(directory).rstrip("/"), *names]))


def csv_bytes(rows: int, width: int = 60) -> bytes:
    """A CSV with a header and ``rows`` data rows; every tenth row has a quoted field holding a line break."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Region", "Product", "Month", "Units", "Revenue", "Note"])
    for i in range(rows):
        note = f"line one\nline two {i}" if i % 10 == 0 else "x" * (width - 40)
        writer.writerow(["North", f"Product {i}", "Mar 26", i, f"{i},000", note])
    return out.getvalue().encode()


def write_file(location: Any, data: bytes) -> None:
    if not isinstance(location, ObjectStoragePath):
        location.write_bytes(data)
    else:
        with location.open("wb") as handle:
            handle.write(data)


def read_file(location: Any) -> bytes:
    return location.read_bytes()


def leftovers(directory: Any) -> list[str]:
    """Names in ``directory`` that look like partial files."""
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


class HeldBytes:
    """Tracks bytes taken from a source minus bytes the emulator acknowledged (uploads), or bytes the emulator served
    minus bytes written to the destination (downloads): what the pipeline holds at each moment, and its peak."""

    def __init__(self) -> None:
        self.taken = 0
        self.released = 0
        self.peak = 0

    def take(self, n: int) -> None:
        self.taken += n
        self.peak = max(self.peak, self.taken - self.released)

    def release(self, n: int) -> None:
        self.released += n


class ReadTracker(TransferProgress):
    """The upload's progress: each block read from the source is taken; the recorder's acknowledgements release."""

    def __init__(self, held: HeldBytes, recorder: Recorder) -> None:
        super().__init__("test upload")
        self.held, self.recorder = held, recorder

    def update(self, nbytes: int) -> None:
        self.held.released = self.recorder.acked_chunk_bytes
        self.held.take(nbytes)
        super().update(nbytes)


class ServingRecorder(Recorder):
    """The recorder, also counting every chunk body the emulator serves as taken."""

    held: HeldBytes | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if self.held is not None and request.method == "GET" and "/chunks/" in request.url.path:
            self.held.take(len(await response.aread()))
        return response


class WriteTracker(TransferProgress):
    def __init__(self, held: HeldBytes) -> None:
        super().__init__("test download")
        self.held = held

    def update(self, nbytes: int) -> None:
        self.held.release(nbytes)
        super().update(nbytes)


# ---------------------------------------------------------------------------------------------------- sources
def test_text_and_bytes_are_content_and_single_line_strings_are_locations(tmp_path: Path) -> None:
    text = open_source("Region,Units\nNorth,1\n")
    assert text.source == b"Region,Units\nNorth,1\n" and text.size == 21
    assert open_source(b"a,b\n1,2\n").size == 8
    assert open_source("one line of text", kind="text").source == b"one line of text"
    with pytest.raises(InvalidInputError, match="does not exist"):
        open_source(str(tmp_path / "missing.csv"))
    with pytest.raises(InvalidInputError, match="is not a file"):
        open_source(tmp_path)
    (tmp_path / "data.csv").write_bytes(b"a\n")
    opened = open_source(str(tmp_path / "data.csv"))
    assert opened.size == 2 and opened.description == str(tmp_path / "data.csv")
    assert isinstance(open_source(f"file://{tmp_path}/data.csv").description, str)
    with pytest.raises(InvalidInputError, match="kind must be"):
        open_source("x", kind="blob")  # type: ignore[arg-type]


def test_a_known_size_raises_the_chunk_size_to_fit_1000_chunks(tmp_path: Path) -> None:
    opened = open_source(b"x" * 5000)
    assert opened.chunk_size_for(4) == 5
    assert opened.chunk_size_for(10) == 10


@pytest.mark.asyncio
async def test_upload_from_each_storage_streams_with_bounded_memory(
    client: AnaplanClient, engine: Engine, recorder: Recorder, storage: Any
) -> None:
    data = csv_bytes(40_000)  # about 2.6 MB
    source = join(storage, "sales.csv")
    await asyncio.to_thread(write_file, source, data)
    held = HeldBytes()
    chunk, concurrency, block = 64 * KB, 2, 16 * KB
    opened = await aopen_source(source, block_size=block, progress=ReadTracker(held, recorder))
    assert opened.size == len(data)
    await client.upload_file(
        MODEL, SALES_FILE, opened.source, chunk_size=opened.chunk_size_for(chunk), concurrency=concurrency
    )
    stored = b"".join(engine.store.iter_chunks(MODEL, SALES_FILE))
    assert stored == data
    assert opened.bytes_read == len(data)
    assert held.taken == len(data) and recorder.acked_chunk_bytes == len(data)
    # Held at any moment: the chunks being sent, the one being filled, and one block; never the file.
    assert 0 < held.peak <= chunk * (concurrency + 1) + block
    assert held.peak < len(data) / 5


@pytest.mark.asyncio
async def test_upload_of_templated_text_through_an_import(client: AnaplanClient) -> None:
    opened = open_source(SALES_WITH_BAD_ROWS)
    outcome = await client.upload_and_import(MODEL, SALES_IMPORT, opened.source, poll_interval=POLL)
    assert outcome.status is OutcomeStatus.PARTIAL_SUCCESS and outcome.counts["totalRowCount"] == 7


@pytest.mark.asyncio
async def test_an_upload_reads_in_worker_threads(client: AnaplanClient, tmp_path: Path) -> None:
    source = tmp_path / "s.csv"
    source.write_bytes(csv_bytes(2000))
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    opened = open_source(source, block_size=8 * KB, progress=False)
    real_opener = opened.stream._opener  # type: ignore[union-attr]

    class Handle:
        def __init__(self) -> None:
            self.inner = real_opener()

        def read(self, n: int) -> bytes:
            threads.add(threading.get_ident())
            return self.inner.read(n)

        def close(self) -> None:
            threads.add(threading.get_ident())
            self.inner.close()

    opened.stream._opener = Handle  # type: ignore[union-attr,assignment]
    await client.upload_file(MODEL, SALES_FILE, opened.source, chunk_size=32 * KB)
    assert threads and loop_thread not in threads


# ---------------------------------------------------------------------------------------------------- destinations
@pytest.mark.asyncio
async def test_download_into_each_storage_with_rows_and_bounded_memory(
    app: EmulatorApp, clock: FakeClock, ticking: TickingSleep, engine: Engine, storage: Any
) -> None:
    rows = 30_000
    data = csv_bytes(rows)
    held = HeldBytes()
    recorder = ServingRecorder(httpx.ASGITransport(app=app))
    settings = ClientSettings(base_url=BASE, transport=recorder, clock=clock, sleep=ticking, **FAST_RETRIES)
    async with AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=settings) as client:
        await client.upload_file(MODEL, SALES_FILE, data, chunk_size=48 * KB, concurrency=2)
        recorder.held = held
        concurrency = 2
        chunks = await client.download_file(MODEL, SALES_FILE, concurrency=concurrency)
        result = await write_stream(chunks, join(storage, "out", "sales.csv"), progress=WriteTracker(held))
    target = join(storage, "out", "sales.csv")
    assert await asyncio.to_thread(read_file, target) == data
    assert result.bytes == len(data) and result.path == str(target)
    assert result.rows == rows and result.records == rows + 1  # quoted line breaks are not records
    assert held.taken == len(data) == held.released
    # Served but not yet written: at most the chunks fetched ahead plus the one being written.
    assert 0 < held.peak <= 48 * KB * (concurrency + 1)
    assert not await asyncio.to_thread(leftovers, join(storage, "out"))


@pytest.mark.asyncio
async def test_a_failed_download_leaves_the_previous_file_and_no_partial_file(storage: Any) -> None:
    target = join(storage, "keep.csv")
    await asyncio.to_thread(write_file, target, b"previous\n")

    async def broken() -> AsyncIterator[bytes]:
        yield b"new,partial\n" * 100
        raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        await write_stream(broken(), target)
    assert await asyncio.to_thread(read_file, target) == b"previous\n"
    assert not await asyncio.to_thread(leftovers, storage)


@pytest.mark.asyncio
async def test_a_directory_destination_takes_the_default_name(tmp_path: Path, memory_root: ObjectStoragePath) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"a,b\r\n1,2\r\n3,4"

    local = await write_stream(chunks(), tmp_path, default_name="Sales Report.csv")
    assert local.path == str(tmp_path / "Sales Report.csv") and local.rows == 2
    remote = await write_stream(chunks(), f"{memory_root}/exports/", default_name="a/b.csv")
    assert remote.path.endswith("/exports/a_b.csv") and remote.rows == 2
    with pytest.raises(InvalidInputError, match="is a directory"):
        await write_stream(chunks(), tmp_path)
    binary = await write_stream(chunks(), tmp_path / "x.bin")
    assert binary.rows is None and binary.bytes == 13


def test_download_to_through_the_hook_on_a_worker(live_hook: AnaplanHook, tmp_path: Path) -> None:
    live_hook.run(lambda c: c.run_action(MODEL, "Sales Report.csv", kind="export", poll_interval=0.05))
    result = download_to(live_hook, MODEL, "116000000000", f"file://{tmp_path}/")
    assert result.path.endswith("/116000000000") or result.path.endswith("116000000000")
    assert result.bytes > 0 and Path(tmp_path / "116000000000").read_bytes().startswith(b"Region")


def test_record_counter_follows_quotes_across_pieces() -> None:
    counter = CsvRecordCounter(keep_records=2)
    for piece in (b'a,"multi\n', b'line",b\n', b'"x""', b'y\nz",1\n2,3'):
        counter.feed(piece)
    assert counter.records == 3 and counter.ended_records == 2
    assert counter.first_rows(2) == [["a", "multi\nline", "b"], ['x"y\nz', "1"]]


# ---------------------------------------------------------------------------------------------------- progress
def test_progress_logs_every_ten_percent_and_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("test.progress")
    progress = TransferProgress("Uploading x", 100 * KB, logger=logger, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(100):
            now[0] += 0.01
            progress.update(KB)
        progress.finish()
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10  # 10 %, 20 %, ..., 90 %, then the final line once
    assert lines[0] == "Uploading x: 10.0 kB of 100.0 kB (10%), 10 chunks, 0.1 MB/s"
    assert lines[-1] == "Uploading x: done, 100.0 kB, 100 chunks in 1.0 s, 0.1 MB/s"

    unknown = TransferProgress("Downloading y", logger=logger, clock=lambda: now[0], interval=10)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(30):
            now[0] += 1
            unknown.update(1024 * 1024)
    assert [r.getMessage() for r in caplog.records] == [
        "Downloading y: 10.0 MB, 10 chunks, 1.0 MB/s",
        "Downloading y: 20.0 MB, 20 chunks, 1.0 MB/s",
        "Downloading y: 30.0 MB, 30 chunks, 1.0 MB/s",
    ]


# ---------------------------------------------------------------------------------------------------- failure dumps
@pytest.mark.asyncio
async def test_a_failing_import_dump_is_saved_and_summarised(
    client: AnaplanClient, engine: Engine, storage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    engine.options.dump_chunk_bytes = 50  # several chunks
    outcome = await client.upload_and_import(MODEL, SALES_IMPORT, SALES_WITH_BAD_ROWS, poll_interval=POLL)
    assert outcome.failure_dump_available
    logger = logging.getLogger("test.dumps")
    with caplog.at_level(logging.INFO, logger="test.dumps"):
        (summary,) = await asave_failure_dumps(
            client, MODEL, SALES_IMPORT, outcome, f"{storage}/dumps/{{task_id}}.csv", sample_rows=2, logger=logger
        )
    target = join(storage, "dumps", f"{outcome.task_id}.csv")
    saved = await asyncio.to_thread(read_file, target)
    assert summary.saved and summary.path == str(target) and summary.bytes == len(saved)
    assert summary.rows == outcome.failed_rows == 3
    assert summary.columns == ("_Status_", "Region", "Product", "Month", "Units", "Revenue", "_Line_", "_Error_1_")
    first = summary.sample[0]
    assert (first.line, first.status) == ("3", "E") and first.error
    assert first.values == dict(zip(summary.columns[1:6], ["South", "Monitor", "Mar 26", "ten", "2000"], strict=True))
    assert [row.line for row in summary.sample] == ["3", "4"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"3 rejected row(s), {len(saved)} B saved to {target}" in logged
    assert "First 2 of 3 rejected row(s):" in logged and f"line 3: {first.error}" in logged
    assert summary.to_xcom() == {"object_id": SALES_IMPORT, "path": str(target), "bytes": len(saved), "rows": 3}


@pytest.mark.asyncio
async def test_dumps_of_a_process_go_to_one_file_per_step(client: AnaplanClient, tmp_path: Path) -> None:
    await client.upload_file(MODEL, EMPLOYEES_FILE, b"Code,Name,Parent,Start Date,Salary\nE020,Nobody,Atlantis,,1\n")
    with pytest.raises(TaskFailedError) as caught:
        await client.run_action(MODEL, NIGHTLY_LOAD, poll_interval=POLL)
    outcome = caught.value.outcome  # type: ignore[attr-defined]
    assert [s.object_id for s in outcome.dump_steps] == [EMPLOYEES_IMPORT]
    both = [*outcome.dump_steps, *outcome.dump_steps]  # as if two steps had dumps: names must not collide
    summaries = await asave_failure_dumps(client, MODEL, NIGHTLY_LOAD, outcome, tmp_path / "nightly.csv", steps=both)
    assert {s.path for s in summaries} == {str(tmp_path / f"nightly_{EMPLOYEES_IMPORT}.csv")}
    (step,) = outcome.dump_steps
    templated = await asave_failure_dump(
        client, MODEL, NIGHTLY_LOAD, outcome.task_id, tmp_path / "{step}-{object_name}.csv", step=step
    )
    assert templated.path == str(tmp_path / f"{step.number}-{step.object_name}.csv")
    assert templated.rows == 1 and "Atlantis" in templated.sample[0].describe()
    assert templated.step == step.describe()


@pytest.mark.asyncio
async def test_a_missing_dump_is_reported_not_raised(client: AnaplanClient, tmp_path: Path) -> None:
    clean = await client.run_action(MODEL, SALES_IMPORT, wait=False)
    summary = await asave_failure_dump(client, MODEL, SALES_IMPORT, clean.task_id, tmp_path)
    assert not summary.saved and "not available" in (summary.error or "")
    assert "not saved" in summary.describe()
    with pytest.raises(NotFoundError):
        await asave_failure_dump(client, MODEL, SALES_IMPORT, clean.task_id, tmp_path, missing_ok=False)
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


def test_dump_targets_fill_placeholders_and_keep_the_connection(tmp_path: Path) -> None:
    osp = ObjectStoragePath("s3://aws_conn@bucket/dumps/{task_id}/{step}.csv")
    target = render_dump_target(osp, task_id="T1", object_id="112000000000", step=2)
    assert str(target) == "s3://aws_conn@bucket/dumps/T1/2.csv"
    directory = render_dump_target(f"{tmp_path}/", task_id="T1", action_id="118000000000", object_id="112000000000")
    assert directory == tmp_path / "anaplan_dump_T1_112000000000.csv"
    plain = render_dump_target(tmp_path / "d.csv", task_id="T1", object_id="112000000001", distinct=True)
    assert plain == tmp_path / "d_112000000001.csv"


def test_save_failure_dumps_through_the_hook_on_a_worker(
    live_hook: AnaplanHook, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = live_hook.run(
        lambda c: c.upload_and_import(
            MODEL, SALES_IMPORT, SALES_WITH_BAD_ROWS, workspace_id=WORKSPACE, poll_interval=0.1
        ),
    )
    with caplog.at_level(logging.INFO):
        (summary,) = save_failure_dumps(live_hook, MODEL, SALES_IMPORT, outcome, tmp_path / "dump.csv")
    assert summary.rows == 3 and len(summary.sample) == 3
    header = next(csv.reader(io.StringIO((tmp_path / "dump.csv").read_text())))
    assert header[0] == "_Status_" and header[-2:] == ["_Line_", "_Error_1_"]


@pytest.mark.asyncio
async def test_adownload_to_with_a_client(client: AnaplanClient, memory_root: ObjectStoragePath) -> None:
    await client.run_action(MODEL, "Sales Report.csv", kind="export", poll_interval=POLL)
    result = await adownload_to(client, MODEL, "116000000000", join(memory_root, "report.csv"))
    assert result.rows is not None and result.rows >= 1
    with pytest.raises(NotFoundError):
        await adownload_to(client, MODEL, "116999999999", join(memory_root, "none.csv"))


# ---------------------------------------------------------------------------------------------------- the hook
@pytest.fixture
def live_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[AnaplanHook]:
    """An AnaplanHook on a connection to the emulator served on loopback (tasks take 0.05 s)."""
    app = create_app()
    engine_for(app.state).options.task_duration = 0.05
    server = LiveServer(app)
    server.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANAPLAN_IO",
        f'{{"conn_type": "anaplan", "login": "{DEFAULT_USER_EMAIL}", "password": "{DEFAULT_USER_PASSWORD}", '
        f'"extra": {{"base_url": "{server.url}", "timeout": 10}}}}',
    )
    try:
        yield AnaplanHook("anaplan_io")
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------- the guard
def test_the_guard_serialises_writers_of_one_file_only() -> None:
    order: list[str] = []
    started = threading.Event()

    def writer() -> None:
        with _guard.guard_file(MODEL, SALES_FILE):
            started.set()
            order.append("first in")
            threading.Event().wait(0.1)
            order.append("first out")

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait()
    with _guard.guard_file(MODEL.lower(), "113000000002"):  # another file: no wait
        order.append("other file")
    with _guard.guard_files(MODEL.lower(), [SALES_FILE, "113000000002"]):
        order.append("second in")
    thread.join()
    assert order == ["first in", "other file", "first out", "second in"]
    assert not _guard.is_file_guarded(MODEL, SALES_FILE)


@pytest.mark.asyncio
async def test_the_async_guard_waits_without_blocking_the_loop_and_times_out() -> None:
    with _guard.guard_file(MODEL, SALES_FILE):
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        with pytest.raises(ConflictError, match="one-slot Airflow pool"):
            async with _guard.aguard_file(MODEL, SALES_FILE, timeout=0.2, poll_interval=0.01):
                pass
        task.cancel()
        assert ticks >= 5
        with pytest.raises(ConflictError), _guard.guard_file(MODEL, SALES_FILE, timeout=0.05):
            pass
    async with _guard.aguard_file(MODEL, SALES_FILE):
        assert _guard.is_file_guarded(MODEL, SALES_FILE)
    assert not _guard.is_file_guarded(MODEL, SALES_FILE)
    assert _guard.file_pool_name(MODEL, SALES_FILE) == "anaplan_75a40874_113000000001"


# ---------------------------------------------------------------------------------------------------- object stores
class FakeObjectFile(fsspec.spec.AbstractBufferedFile):
    """An object-store upload as s3fs/gcsfs/adlfs write one: parts, then completed by ``commit`` (at close only with
    ``autocommit``), or thrown away by ``discard``."""

    def _initiate_upload(self) -> None:
        self.parts: list[bytes] = []

    def _upload_chunk(self, final: bool = False) -> bool:
        self.parts.append(self.buffer.getvalue())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        self.fs.objects[self.path] = b"".join(self.parts)

    def discard(self) -> None:
        self.parts = []


class FakeObjectStore(fsspec.AbstractFileSystem):
    protocol = "fakeobj"

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, bytes] = {}

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True, **kwargs: Any):
        return FakeObjectFile(self, path, mode, block_size=block_size or 5 * 2**20, autocommit=autocommit)


def test_object_stores_commit_only_a_complete_upload() -> None:
    from types import SimpleNamespace

    from airflow_provider_anaplan.operators._io import _ObjectSink, _open_sink

    store = FakeObjectStore()
    store.objects["bucket/keep.csv"] = b"previous\n"
    target = SimpleNamespace(fs=store, path="bucket/keep.csv", protocol="s3", name="keep.csv")
    failed = _open_sink(target, None)  # type: ignore[arg-type]
    assert isinstance(failed, _ObjectSink) and failed.transactional
    failed.write(b"partial" * 1000)
    failed.abort()
    failed.handle.close()  # what garbage collection would do: must not complete the discarded upload
    assert store.objects["bucket/keep.csv"] == b"previous\n"
    done = _open_sink(target, None)  # type: ignore[arg-type]
    done.write(b"a,b\n")
    assert store.objects["bucket/keep.csv"] == b"previous\n"
    done.commit()
    assert store.objects["bucket/keep.csv"] == b"a,b\n"
