"""Streaming bridges between Airflow storage and the Anaplan client, with bounded memory.

* :func:`open_source` turns what a DAG author gives as an upload source (a local path, an ``ObjectStoragePath`` on any
  fsspec backend, or templated text/bytes) into something ``AnaplanClient.upload_file`` accepts. Files are read one
  block at a time in worker threads, so the event loop never waits on a disk or a bucket and at most one block is
  held here (the client holds at most ``chunk_size * (concurrency + 1)`` more).
* :func:`write_stream` consumes the client's async iterator of bytes (a download, a failure dump) into a local path or
  an ``ObjectStoragePath``, writing in worker threads through a temporary name that is renamed into place at the end
  (on object stores, where a rename is a full copy, through an upload committed only once complete), and counts CSV
  records on the way.
* :func:`save_failure_dump` / :func:`save_failure_dumps` stream a task's failure dumps to ``dump_to`` and summarise them
  for the log (counts and the first rejected rows with their ``_Line_`` and ``_Error_1_``) without ever holding a
  whole dump.
* :class:`TransferProgress` logs long transfers every 10 s or every 10 %: bytes, chunks, MB/s.

Everything here runs on workers (sync, through the hook) or on any event loop (``a``-prefixed functions); nothing
blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow.sdk import ObjectStoragePath

from ..client.files import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_CHUNKS
from ..client.task_models import StepOutcome, TaskOutcome
from ..exceptions import InvalidInputError, NotFoundError, to_airflow_error

if TYPE_CHECKING:
    from ..client import AnaplanClient
    from ..hooks.anaplan import AnaplanHook

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: Size of one read from a source file or bucket object (the client re-cuts the blocks into its chunks).
DEFAULT_BLOCK_SIZE = 8 * MB
#: A progress line at most this often (seconds) ...
PROGRESS_INTERVAL = 10.0
#: ... or whenever a transfer of known size crosses another multiple of this many percent.
PROGRESS_PERCENT_STEP = 10
#: How many rejected rows of a failure dump are shown in the log by default.
DEFAULT_SAMPLE_ROWS = 5
#: The most bytes of a dump's beginning kept to show its first rows (a row longer than this is not shown).
MAX_SAMPLE_BYTES = MB

#: fsspec protocols of object stores: an object appears only once its upload completes, and a "rename" is a full
#: copy, so they are written in place through an upload that is committed at the end, or discarded on failure.
OBJECT_STORE_PROTOCOLS = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "wasb", "wasbs", "oci", "oss", "r2", "cos"}
)
#: Destinations whose name ends so are counted as CSV when ``count_rows`` is left to decide.
TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})

SourceKind = Literal["auto", "path", "text"]
Location = str | os.PathLike[str] | ObjectStoragePath

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


# ==================================================================================================== progress
def format_bytes(count: float) -> str:
    """``1.5 MB``, ``820 B``: a byte count for a log line."""
    for unit, size in (("GB", 1024**3), ("MB", MB), ("kB", 1024)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


class TransferProgress:
    """Counts the bytes and chunks of one transfer and logs a line every ``interval`` seconds or ``percent_step`` %.

    ``update(n)`` after each chunk moved, ``finish()`` once at the end (logs the total and the mean rate). Only the
    counters live here; nothing of the data.
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        interval: float = PROGRESS_INTERVAL,
        percent_step: int = PROGRESS_PERCENT_STEP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total if total is not None and total > 0 else None
        self.log = logger or log
        self.interval = interval
        self.percent_step = percent_step
        self.clock = clock
        self.bytes = 0
        self.chunks = 0
        self.started = clock()
        self._last_log = self.started
        self._last_percent = 0
        self.finished = False
        self.lines_logged = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the transfer started."""
        return max(self.clock() - self.started, 0.0)

    @property
    def rate(self) -> float:
        """Mean throughput so far, in bytes per second (0 before any time passed)."""
        elapsed = self.elapsed
        return self.bytes / elapsed if elapsed > 0 else 0.0

    @property
    def percent(self) -> int | None:
        """Whole percent done, when the total is known."""
        return min(100, self.bytes * 100 // self.total) if self.total else None

    def update(self, nbytes: int) -> None:
        """Record one chunk of ``nbytes`` moved; log when the interval passed or another step of percent was done."""
        self.bytes += nbytes
        self.chunks += 1
        now = self.clock()
        percent = self.percent
        crossed = percent is not None and percent // self.percent_step > self._last_percent // self.percent_step
        if now - self._last_log >= self.interval or (crossed and percent is not None and percent < 100):
            self._last_log = now
            if percent is not None:
                self._last_percent = percent
            self._emit("%s: %s", self.what, self.describe())

    def finish(self) -> None:
        """Log the final line (once): total bytes, chunks, time and mean MB/s."""
        if self.finished:
            return
        self.finished = True
        self._emit("%s: done, %s", self.what, self.describe(final=True))

    def describe(self, final: bool = False) -> str:
        """``12.0 MB of 48.0 MB (25%), 3 chunks, 4.1 MB/s`` (the final form gives the elapsed time instead of %)."""
        done = format_bytes(self.bytes)
        if self.total and not final:
            done += f" of {format_bytes(self.total)} ({self.percent}%)"
        text = f"{done}, {self.chunks} chunk{'s' if self.chunks != 1 else ''}"
        if final:
            text += f" in {self.elapsed:.1f} s"
        return text + f", {self.rate / MB:.1f} MB/s"

    def as_dict(self) -> dict[str, Any]:
        """The counters, JSON-ready (for an XCom value)."""
        return {"bytes": self.bytes, "chunks": self.chunks, "seconds": round(self.elapsed, 3)}

    def _emit(self, message: str, *args: Any) -> None:
        self.lines_logged += 1
        self.log.info(message, *args)


# ==================================================================================================== sources
def is_object_storage_path(value: Any) -> bool:
    """True for an ``airflow.sdk.ObjectStoragePath``.

    Test for it before ``pathlib.Path`` or ``os.PathLike``: on Airflow 3.1 it is a ``pathlib.Path`` subclass (and its
    ``__fspath__`` warns), on 3.3 it is neither.
    """
    return isinstance(value, ObjectStoragePath)


def _is_local(location: Path | ObjectStoragePath) -> bool:
    return isinstance(location, Path) and not is_object_storage_path(location)


def as_location(value: Location, field: str | None = None) -> Path | ObjectStoragePath:
    """A local ``Path`` or an ``ObjectStoragePath`` from a path, a ``scheme://`` URL or an ``ObjectStoragePath``.

    ``file://`` URLs stay ``ObjectStoragePath`` (Airflow resolves them to the local filesystem). ``field`` names the
    parameter in the error raised for anything else.
    """
    if is_object_storage_path(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str) and value.strip():
        if _URL.match(value):
            return ObjectStoragePath(value)
        return Path(value).expanduser()
    if isinstance(value, os.PathLike):
        return Path(os.fspath(value)).expanduser()
    what = f"{field} must be" if field else "Expected"
    got = "an empty string" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
    raise InvalidInputError(f"{what} a local path, a URL such as s3://bucket/key, or an ObjectStoragePath; got {got}.")


def check_location(field: str, value: Any, *, writable: bool = False) -> None:
    """Raise an ``InvalidInputError`` naming ``field`` unless ``value`` can be a location (see :func:`as_location`).

    Nothing is built and no filesystem is loaded (safe when a DAG file is parsed). With ``writable``, a local path must
    lie under a directory this process may write to: its nearest existing ancestor is a writable directory. URLs and
    ``ObjectStoragePath`` objects are not asked (that would load a backend, or make a network call).
    """
    if not (is_object_storage_path(value) or isinstance(value, os.PathLike | str)) or (
        isinstance(value, str) and not value.strip()
    ):
        as_location(value, field)  # raises, naming the field
    if not writable or is_object_storage_path(value) or (isinstance(value, str) and _URL.match(value)):
        return
    given = Path(os.path.abspath(Path(os.fspath(value)).expanduser()))
    ancestor = given
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor == given and not given.is_dir():
        ancestor = given.parent  # an existing file: it is replaced
    elif not ancestor.is_dir():
        raise InvalidInputError(
            f"{field} {str(value)!r} cannot be written: {str(ancestor)!r} is a file, not a directory. Give a path in "
            "a directory."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"{field} {str(value)!r} cannot be written: this process may not write to {str(ancestor)!r}. Give a path "
            "in a writable directory, or fix its permissions."
        )


class BlockStream:
    """An async iterable of a file's blocks, each read in a worker thread: what ``upload_file`` gets for a path.

    Every iteration opens the file anew (a retried upload starts from the beginning) and closes it at the end.
    ``bytes_read`` counts what was read so far; ``progress`` (if any) is updated after each block.
    """

    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        description: str,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        progress: TransferProgress | None = None,
    ) -> None:
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
            raise InvalidInputError(f"block_size must be an integer >= 1, got {block_size!r}.")
        self._opener = opener
        self.description = description
        self.block_size = block_size
        self.progress = progress
        self.bytes_read = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._blocks()

    async def _blocks(self) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self._opener)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        try:
            while True:
                try:
                    block = await asyncio.to_thread(handle.read, self.block_size)
                except OSError as exc:
                    raise self._unreadable(exc) from exc
                if not block:
                    break
                if not isinstance(block, bytes | bytearray | memoryview):
                    raise InvalidInputError(f"{self.description} was opened in text mode; open it in binary mode.")
                self.bytes_read += len(block)
                if self.progress is not None:
                    self.progress.update(len(block))
                yield bytes(block) if isinstance(block, memoryview) else block
                del block
        finally:
            await asyncio.to_thread(handle.close)
        if self.progress is not None:
            self.progress.finish()

    def _unreadable(self, exc: OSError) -> InvalidInputError:
        return InvalidInputError(
            f"The upload source {self.description!r} could not be read ({exc.strerror or exc}): check that it is a "
            "readable file and that this worker may read it."
        )

    def __repr__(self) -> str:
        return f"BlockStream({self.description!r}, block_size={self.block_size})"


@dataclass
class OpenedSource:
    """An upload source made ready for ``AnaplanClient.upload_file``.

    ``source`` goes to ``upload_file`` as is; ``size`` is the byte count when known up front (a file's size, the
    length of text), else None; ``description`` names it in logs.
    """

    source: Any
    size: int | None
    description: str
    stream: BlockStream | None = None

    @property
    def bytes_read(self) -> int | None:
        """Bytes read from a file source so far (None for in-memory content)."""
        return self.stream.bytes_read if self.stream is not None else None

    def chunk_size_for(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
        """``chunk_size``, raised when the known size would need more than Anaplan's 1000 chunks.

        A streamed source does not tell ``upload_file`` its size, so pass this as its ``chunk_size``.
        """
        if self.size is None or self.size <= chunk_size * MAX_CHUNKS:
            return chunk_size
        needed = -(-self.size // MAX_CHUNKS)
        if needed > MAX_CHUNK_SIZE:
            raise InvalidInputError(
                f"{self.description} holds {self.size} bytes, more than Anaplan's 1000 chunks of 50 MB allow."
            )
        return needed


def open_source(
    source: Any,
    *,
    kind: SourceKind = "auto",
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: TransferProgress | bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    encoding: str = "utf-8",
) -> OpenedSource:
    """Make an upload source ready for ``upload_file``; checks that a file exists and reads its size (blocking I/O).

    ``source`` is a ``pathlib.Path``, an ``ObjectStoragePath``, bytes, or a str. With ``kind="auto"`` a str that
    contains a line break is content (templated text, uploaded as ``encoding``), and one without a line break is a
    location: a ``scheme://`` URL becomes an ``ObjectStoragePath``, anything else a local path (so a mistyped path
    fails here instead of being uploaded as text). ``kind="text"`` or ``"path"`` decides it explicitly. Binary file
    objects and sync or async iterators of bytes pass through unchanged.

    ``progress``: True logs progress through ``logger``; a :class:`TransferProgress` is used as given; False: none.
    On an event loop use :func:`aopen_source`.
    """
    if kind not in ("auto", "path", "text"):
        raise InvalidInputError(f"kind must be 'auto', 'path' or 'text', got {kind!r}.")
    if isinstance(source, bytes | bytearray | memoryview):
        if kind == "path":
            source = bytes(source).decode(encoding)
        else:
            data = bytes(source)
            return OpenedSource(data, len(data), f"{format_bytes(len(data))} of content")
    if isinstance(source, str):
        is_text = kind == "text" or (kind == "auto" and ("\n" in source or "\r" in source))
        if is_text:
            data = source.encode(encoding)
            return OpenedSource(data, len(data), f"{format_bytes(len(data))} of text")
        if not source.strip():
            raise InvalidInputError("The upload source is an empty string: give a path, a URL or text content.")
        source = as_location(source)
    elif kind == "text":
        raise InvalidInputError(f"kind='text' needs str or bytes content, got {type(source).__name__}.")

    if isinstance(source, Mapping):
        raise InvalidInputError(
            f"Cannot upload a {type(source).__name__}: give a path, an ObjectStoragePath, a URL, text, or bytes (a "
            "Jinja expression rendered as a native object keeps its type)."
        )
    if is_object_storage_path(source) or isinstance(source, os.PathLike):
        location = as_location(source)
        opener, size, description = _file_opener(location)
        tracker: TransferProgress | None
        if isinstance(progress, TransferProgress):
            tracker = progress
            tracker.total = tracker.total or size
        elif progress:
            tracker = TransferProgress(f"Uploading {description}", size, logger=logger)
        else:
            tracker = None
        stream = BlockStream(opener, description, block_size=block_size, progress=tracker)
        return OpenedSource(stream, size, description, stream)

    if callable(getattr(source, "read", None)) or isinstance(source, AsyncIterable | Iterable):
        return OpenedSource(source, None, type(source).__name__)
    raise InvalidInputError(
        f"Cannot upload an object of type {type(source).__name__}: give a path, an ObjectStoragePath, a URL, "
        "text, or bytes."
    )


async def aopen_source(source: Any, **kwargs: Any) -> OpenedSource:
    """:func:`open_source` for code on an event loop (its existence check and size lookup run in a thread)."""
    return await asyncio.to_thread(open_source, source, **kwargs)


def _file_opener(location: Path | ObjectStoragePath) -> tuple[Callable[[], IO[bytes]], int | None, str]:
    """(open for reading in binary, size or None, description) of a local or object storage file that must exist."""
    if _is_local(location):
        try:
            stat = location.stat()
        except FileNotFoundError:
            raise InvalidInputError(f"The upload source {str(location)!r} does not exist.") from None
        except OSError as exc:
            raise InvalidInputError(
                f"The upload source {str(location)!r} could not be read ({exc.strerror or exc}): check its path and "
                "permissions."
            ) from exc
        if not location.is_file():
            raise InvalidInputError(f"The upload source {str(location)!r} is not a file.")
        return (lambda: open(location, "rb")), stat.st_size, str(location)

    fs, path = location.fs, location.path
    description = str(location)
    if not fs.exists(path):
        raise InvalidInputError(f"The upload source {description!r} does not exist.")
    if fs.isdir(path):
        raise InvalidInputError(f"The upload source {description!r} is a directory, not a file.")
    try:
        size = fs.size(path)
    except (NotImplementedError, OSError, ValueError):
        size = None
    return (lambda: fs.open(path, "rb")), (int(size) if size is not None else None), description


# ==================================================================================================== CSV records
class CsvRecordCounter:
    """Counts CSV records as bytes stream by (a line break inside double quotes does not end a record, as in
    RFC 4180) and keeps the beginning of the data so that its first ``keep_records`` records can be parsed.

    Counting costs one ``bytes.count`` per chunk, or one split on ``"`` for a chunk that contains quotes.
    """

    def __init__(self, keep_records: int = 0, keep_limit: int = MAX_SAMPLE_BYTES) -> None:
        self.ended_records = 0
        self.in_quotes = False
        self.seen_bytes = 0
        self._last_byte = b""
        self._keep_records = keep_records
        self._keep_limit = keep_limit
        self.head = bytearray()
        self.head_truncated = False
        self._keeping = keep_records > 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Count the record ends in the next piece of the stream (and keep it while the head is wanted)."""
        if not data:
            return
        data = bytes(data) if isinstance(data, memoryview) else data
        if b'"' not in data:
            if not self.in_quotes:
                self.ended_records += data.count(b"\n")
        else:
            parts = data.split(b'"')
            first_outside = 1 if self.in_quotes else 0
            self.ended_records += sum(part.count(b"\n") for part in parts[first_outside::2])
            if (len(parts) - 1) % 2:
                self.in_quotes = not self.in_quotes
        self.seen_bytes += len(data)
        self._last_byte = data[-1:]
        if self._keeping:
            room = self._keep_limit - len(self.head)
            self.head += data[:room]
            if len(data) > room:
                self.head_truncated = True
            if self.ended_records >= self._keep_records or self.head_truncated:
                self._keeping = False

    @property
    def records(self) -> int:
        """Records so far, counting a last one that has no line break after it."""
        unterminated = 1 if self.seen_bytes and self._last_byte != b"\n" else 0
        return self.ended_records + unterminated

    def first_rows(self, count: int) -> list[list[str]]:
        """The first ``count`` records of the kept head, parsed (a record cut by the size limit is left out)."""
        if not self.head or count <= 0:
            return []
        text = bytes(self.head).decode("utf-8-sig", errors="replace")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if self.head_truncated and rows:
            rows = rows[:-1]
        return rows[:count]


# ==================================================================================================== destinations
@dataclass(frozen=True)
class WriteResult:
    """Where a stream went: ``path`` (as text), bytes written, and CSV counts when they were taken.

    ``records`` counts every CSV record, the header included; ``rows`` leaves out ``header_rows`` of them.
    """

    path: str
    bytes: int
    records: int | None = None
    rows: int | None = None
    seconds: float = 0.0

    def to_xcom(self) -> dict[str, Any]:
        """A small JSON-ready dict for an XCom value."""
        return {"path": self.path, "bytes": self.bytes, "rows": self.rows}


class _Sink:
    """Where bytes go; ``write`` / ``commit`` / ``abort`` are blocking calls, made in worker threads."""

    handle: Any

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.handle.write(data)

    def commit(self) -> None:  # pragma: no cover - every sink overrides it
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - every sink overrides it
        raise NotImplementedError


def _temporary_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(4)}.part"


class _LocalSink(_Sink):
    """A local file written as ``.<name>.<random>.part`` beside the target and renamed over it (atomic on POSIX)."""

    def __init__(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.partial = target.with_name(_temporary_name(target.name))
        self.handle = open(self.partial, "wb")  # noqa: SIM115 - closed in commit/abort

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.partial, self.target)

    def abort(self) -> None:
        try:
            self.handle.close()
        finally:
            self.partial.unlink(missing_ok=True)


class _RenameSink(_Sink):
    """A filesystem with a real rename (local, memory, SFTP, HDFS ...): a temporary sibling, moved over the target."""

    def __init__(self, target: ObjectStoragePath) -> None:
        self.fs = target.fs
        self.path = target.path
        self.partial = f"{self.fs._parent(self.path)}/{_temporary_name(target.name)}"
        with contextlib.suppress(NotImplementedError, PermissionError):  # no directories, or an existing bucket
            self.fs.makedirs(self.fs._parent(self.path), exist_ok=True)
        self.handle = self.fs.open(self.partial, "wb")

    def commit(self) -> None:
        self.handle.close()
        self.fs.mv(self.partial, self.path)

    def abort(self) -> None:
        try:
            self.handle.close()
        finally:
            try:
                self.fs.rm(self.partial)
            except (FileNotFoundError, OSError):
                log.debug("Could not remove the partial file %s", self.partial, exc_info=True)


class _ObjectSink(_Sink):
    """An object store: written in place with ``autocommit=False``, so the object appears only on ``commit`` and a
    failed transfer discards its upload instead of leaving a truncated object (or overwriting a good one)."""

    def __init__(self, target: ObjectStoragePath) -> None:
        fs, path = target.fs, target.path
        try:
            self.handle = fs.open(path, "wb", autocommit=False)
            self.transactional = True
        except (TypeError, NotImplementedError, ValueError):  # a backend without deferred commits
            self.handle = fs.open(path, "wb")
            self.transactional = False

    def commit(self) -> None:
        self.handle.close()
        if self.transactional:
            self.handle.commit()

    def abort(self) -> None:
        if self.transactional:
            try:
                self.handle.discard()
            finally:
                self.handle.closed = True  # never let a later close() complete the discarded upload
        else:
            self.handle.close()


def _open_sink(target: Path | ObjectStoragePath, rename: bool | None) -> _Sink:
    if _is_local(target):
        return _LocalSink(target)
    if rename is None:
        rename = (target.protocol or "file") not in OBJECT_STORE_PROTOCOLS
    return _RenameSink(target) if rename else _ObjectSink(target)


def _is_directory(target: Path | ObjectStoragePath, given: Location) -> bool:
    text = os.fspath(given) if isinstance(given, os.PathLike) and not is_object_storage_path(given) else str(given)
    if text.endswith(("/", os.sep)):
        return True
    try:
        return target.is_dir()
    except Exception:  # a backend that cannot tell (or not load here): writing will say what is wrong
        log.debug("Could not tell whether %s is a directory", text, exc_info=True)
        return False


def _child(location: Path | ObjectStoragePath, name: str) -> Path | ObjectStoragePath:
    """``location / name``. An ``ObjectStoragePath`` is rebuilt from its URL (which keeps its conn id): on Airflow 3.1
    its ``/`` goes through ``__fspath__``, which warns (PendingDeprecationWarning) for every join."""
    if _is_local(location):
        return location / name
    return ObjectStoragePath(f"{str(location).rstrip('/')}/{name}")


def _sibling(location: Path | ObjectStoragePath, name: str) -> Path | ObjectStoragePath:
    """``location.with_name(name)``, rebuilt from the URL for an ``ObjectStoragePath`` (see :func:`_child`)."""
    if _is_local(location):
        return location.with_name(name)
    text = str(location).rstrip("/")
    return ObjectStoragePath(f"{text[: text.rfind('/')]}/{name}")


def resolve_destination(destination: Location, default_name: str | None = None) -> Path | ObjectStoragePath:
    """The file to write: ``destination`` itself, or ``default_name`` inside it when it is a directory (an existing
    one, or a path ending with ``/``). Blocking (it may ask the filesystem)."""
    target = as_location(destination)
    if _is_directory(target, destination):
        if not default_name:
            raise InvalidInputError(f"The destination {str(destination)!r} is a directory: give a file name.")
        return _child(target, _safe_file_name(default_name))
    return target


def _safe_file_name(name: str) -> str:
    """A name usable as one path component (slashes, control characters and the like replaced by ``_``)."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", name).strip(" .")
    return cleaned or "anaplan_file"


def _counts_rows(target: Path | ObjectStoragePath, count_rows: bool | None) -> bool:
    if count_rows is not None:
        return count_rows
    return Path(target.name).suffix.lower() in TEXT_SUFFIXES


def _write_piece(sink: _Sink, counter: CsvRecordCounter | None, data: bytes) -> None:
    sink.write(data)
    if counter is not None:
        counter.feed(data)


async def write_stream(
    chunks: AsyncIterable[bytes],
    destination: Location,
    *,
    default_name: str | None = None,
    count_rows: bool | None = None,
    header_rows: int = 1,
    progress: TransferProgress | bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    total: int | None = None,
    rename: bool | None = None,
    counter: CsvRecordCounter | None = None,
) -> WriteResult:
    """Write an async stream of bytes to a local path or an ``ObjectStoragePath``; returns path, bytes and rows.

    Writes (and CSV counting) run in worker threads, one chunk at a time. The data goes to a temporary name that is
    renamed into place once complete (``rename=None`` decides by backend: object stores are instead written in place
    through an upload committed at the end); a failure or cancellation removes the partial file. ``destination`` may
    be a directory (existing, or ending with ``/``): the file is then named ``default_name``.

    ``count_rows`` (None: for ``.csv``/``.tsv``/``.txt`` names) counts CSV records while streaming; ``rows`` leaves
    out ``header_rows``. The stream is closed in every case.
    """
    try:
        target = await asyncio.to_thread(resolve_destination, destination, default_name)
        if counter is None and _counts_rows(target, count_rows):
            counter = CsvRecordCounter()
        tracker: TransferProgress | None
        if isinstance(progress, TransferProgress):
            tracker = progress
        elif progress:
            tracker = TransferProgress(f"Writing {target}", total, logger=logger)
        else:
            tracker = None
        started = time.monotonic()
        if _is_local(target) and await asyncio.to_thread(target.is_dir):
            raise InvalidInputError(
                f"The destination {str(target)!r} is an existing directory, and a file cannot replace it: give a "
                "file name, or a directory that holds no directory of that name."
            )
        try:
            sink = await asyncio.to_thread(_open_sink, target, rename)
        except OSError as exc:
            raise InvalidInputError(
                f"Cannot write to the destination {str(target)!r} ({exc.strerror or exc}): give a path in a writable "
                "directory."
            ) from exc
        written = 0
        try:
            async for data in chunks:
                if not data:
                    continue
                await asyncio.to_thread(_write_piece, sink, counter, data)
                written += len(data)
                if tracker is not None:
                    tracker.update(len(data))
                del data
            await asyncio.to_thread(sink.commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_abort_quietly, sink))
            raise
        if tracker is not None:
            tracker.finish()
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    records = counter.records if counter is not None else None
    rows = max(records - header_rows, 0) if records is not None else None
    return WriteResult(str(target), written, records, rows, round(time.monotonic() - started, 3))


def _abort_quietly(sink: _Sink) -> None:
    try:
        sink.abort()
    except Exception:
        log.warning("Could not clean up a partial file after a failed transfer", exc_info=True)


async def adownload_to(
    hook_or_client: AnaplanHook | AnaplanClient,
    model: str,
    file: str,
    destination: Location,
    *,
    workspace_id: str | None = None,
    default_name: str | None = None,
    **kwargs: Any,
) -> WriteResult:
    """Stream a model's file (an export's output, 116…) into ``destination``; see :func:`write_stream`."""

    async def run(client: AnaplanClient) -> WriteResult:
        chunks = await client.download_file(model, file, workspace_id=workspace_id)
        return await write_stream(chunks, destination, default_name=default_name or file, **kwargs)

    return await _arun(hook_or_client, run)


def download_to(hook_or_client: AnaplanHook | AnaplanClient, *args: Any, **kwargs: Any) -> WriteResult:
    """Synchronous :func:`adownload_to` (for ``execute()`` on a worker)."""
    return _run_sync(hook_or_client, lambda client: adownload_to(client, *args, **kwargs))


# ==================================================================================================== failure dumps
_PLACEHOLDER = re.compile(r"\{(task_id|action_id|object_id|object_name|step)\}")


@dataclass(frozen=True)
class RejectedRow:
    """One row of a failure dump: its line in the source, Anaplan's error(s), its status and its values."""

    line: str | None
    error: str | None
    status: str | None
    values: dict[str, str]

    def describe(self, max_value: int = 40, max_length: int = 400) -> str:
        """``line 3: Invalid number "ten" (Region=South, Units=ten)``, shortened for a log line."""

        def cut(text: str, limit: int) -> str:
            return text if len(text) <= limit else text[: limit - 1] + "…"

        shown = ", ".join(f"{k}={cut(v, max_value)}" for k, v in self.values.items())
        text = f"line {self.line or '?'}: {self.error or 'no error text'}" + (f" ({shown})" if shown else "")
        return cut(text, max_length)


@dataclass(frozen=True)
class DumpSummary:
    """A failure dump saved (or the reason it could not be): where, how big, how many rejected rows, the first ones."""

    task_id: str
    action_id: str | None
    object_id: str | None = None
    step: str | None = None
    path: str | None = None
    bytes: int = 0
    rows: int | None = None
    columns: tuple[str, ...] = ()
    sample: tuple[RejectedRow, ...] = ()
    error: str | None = None

    @property
    def saved(self) -> bool:
        """True when the dump was written to ``path``."""
        return self.error is None and self.path is not None

    def describe(self) -> str:
        """One line: whose dump, rows, size, where (or why it is missing)."""
        whose = self.step or f"task {self.task_id}"
        if not self.saved:
            return f"Failure dump of {whose} not saved: {self.error}"
        rows = f"{self.rows} rejected row(s)" if self.rows is not None else "rejected rows"
        return f"Failure dump of {whose}: {rows}, {format_bytes(self.bytes)} saved to {self.path}"

    def log_lines(self) -> list[str]:
        """:meth:`describe` followed by one line per sampled rejected row."""
        lines = [self.describe()]
        if self.sample:
            more = f" of {self.rows}" if self.rows is not None and self.rows > len(self.sample) else ""
            lines.append(f"First {len(self.sample)}{more} rejected row(s):")
            lines.extend(f"  {row.describe()}" for row in self.sample)
        return lines

    def to_xcom(self) -> dict[str, Any]:
        """A small JSON-ready dict for an XCom value (no row data)."""
        return {
            "object_id": self.object_id,
            "path": self.path,
            "bytes": self.bytes,
            "rows": self.rows,
            **({"error": self.error} if self.error else {}),
        }


def render_dump_target(
    dump_to: Location,
    *,
    task_id: str,
    action_id: str | None = None,
    object_id: str | None = None,
    object_name: str | None = None,
    step: int | None = None,
    distinct: bool = False,
) -> Path | ObjectStoragePath:
    """The dump's file: ``dump_to`` with ``{task_id}``, ``{action_id}``, ``{object_id}``, ``{object_name}`` and
    ``{step}`` filled in (Jinja leaves single braces alone, so they survive Airflow's templating).

    A directory (existing, or ending with ``/``) gets ``anaplan_dump_<task>[_<object>].csv``. With ``distinct`` (one
    of several dumps) and no placeholder, ``_<object id>`` is added before the suffix so the dumps do not collide.
    Blocking (it may ask the filesystem whether ``dump_to`` is a directory).
    """
    values = {
        "task_id": task_id,
        "action_id": action_id or "",
        "object_id": object_id or action_id or "",
        "object_name": _safe_file_name(object_name or object_id or action_id or ""),
        "step": "" if step is None else str(step),
    }
    text = str(dump_to) if is_object_storage_path(dump_to) else os.fspath(dump_to)
    templated = bool(_PLACEHOLDER.search(text))
    rendered = _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    given: Location = rendered
    if is_object_storage_path(dump_to):
        conn_id = _conn_id_of(dump_to)
        # conn_id=None must not be passed: on Airflow 3.1 it would hide a conn id given in the URL's user part
        given = ObjectStoragePath(rendered, conn_id=conn_id) if conn_id else ObjectStoragePath(rendered)
    location = as_location(given)
    if _is_directory(location, given):
        own = f"_{object_id}" if object_id and object_id != action_id else ""
        return _child(location, f"anaplan_dump_{task_id}{own}.csv")
    if distinct and not templated and object_id:
        stem, suffix = os.path.splitext(location.name)
        return _sibling(location, f"{stem}_{object_id}{suffix or '.csv'}")
    return location


def _conn_id_of(path: Any) -> str | None:
    conn_id = getattr(path, "conn_id", None)  # Airflow 3.2+
    if conn_id is None:
        conn_id = (getattr(path, "storage_options", None) or {}).get("conn_id")  # Airflow 3.1
    return conn_id


def _sample_rows(counter: CsvRecordCounter, sample_rows: int) -> tuple[tuple[str, ...], tuple[RejectedRow, ...]]:
    rows = counter.first_rows(sample_rows + 1)
    if not rows:
        return (), ()
    header = tuple(h.strip() for h in rows[0])
    sample = []
    for row in rows[1:]:
        cells = dict(zip(header, row, strict=False))
        errors = [cells[h] for h in header if h.startswith("_Error_") and cells.get(h)]
        values = {h: v for h, v in cells.items() if not (h.startswith("_") and h.endswith("_"))}
        sample.append(
            RejectedRow(
                line=cells.get("_Line_") or None,
                error="; ".join(errors) or None,
                status=cells.get("_Status_") or None,
                values=values,
            )
        )
    return header, tuple(sample)


async def asave_failure_dump(
    hook_or_client: AnaplanHook | AnaplanClient,
    model: str,
    action: str,
    task_id: str,
    dump_to: Location,
    *,
    object_id: str | None = None,
    workspace_id: str | None = None,
    step: StepOutcome | None = None,
    action_id: str | None = None,
    distinct: bool = False,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    missing_ok: bool = True,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> DumpSummary:
    """Stream one failure dump to ``dump_to`` and log a summary; returns a :class:`DumpSummary`.

    ``action`` is the import or process (id or name); for a process, ``object_id`` (or ``step``) names the step.
    ``dump_to`` may hold placeholders (see :func:`render_dump_target`). Memory stays bounded: the dump is written
    chunk by chunk and only its first ``sample_rows`` rows (at most 1 MB) are kept for the log. A dump that is gone
    (Anaplan keeps dumps 48 h) is reported in the summary and logged as a warning with ``missing_ok``, else raised.
    """
    logger = logger or log
    if step is not None and object_id is None:
        object_id = step.object_id
    action_id = action_id or (action if re.fullmatch(r"\d{12}", action) else None)
    whose = step.describe() if step is not None else (f"step {object_id}" if object_id else None)
    target = await asyncio.to_thread(
        render_dump_target,
        dump_to,
        task_id=task_id,
        action_id=action_id,
        object_id=object_id,
        object_name=step.object_name if step is not None else None,
        step=step.number if step is not None else None,
        distinct=distinct,
    )
    counter = CsvRecordCounter(keep_records=sample_rows + 1 if sample_rows > 0 else 0)

    async def run(client: AnaplanClient) -> WriteResult:
        chunks = client.stream_failure_dump(model, action, task_id, object_id=object_id, workspace_id=workspace_id)
        progress = TransferProgress(f"Saving failure dump to {target}", logger=logger)
        return await write_stream(chunks, target, counter=counter, progress=progress)

    try:
        written = await _arun(hook_or_client, run)
    except NotFoundError as exc:
        if not missing_ok:
            raise
        summary = DumpSummary(task_id, action_id, object_id, whose, error=str(exc))
        logger.warning("%s", summary.describe())
        return summary
    columns, sample = _sample_rows(counter, sample_rows)
    rows = max(counter.records - 1, 0) if counter.records else 0
    summary = DumpSummary(task_id, action_id, object_id, whose, written.path, written.bytes, rows, columns, sample)
    for line in summary.log_lines():
        logger.info("%s", line)
    return summary


def save_failure_dump(hook_or_client: AnaplanHook | AnaplanClient, *args: Any, **kwargs: Any) -> DumpSummary:
    """Synchronous :func:`asave_failure_dump` (for ``execute()`` on a worker)."""
    return _run_sync(hook_or_client, lambda client: asave_failure_dump(client, *args, **kwargs))


async def asave_failure_dumps(
    hook_or_client: AnaplanHook | AnaplanClient,
    model: str,
    action: str,
    outcome: TaskOutcome,
    dump_to: Location,
    *,
    workspace_id: str | None = None,
    steps: Sequence[StepOutcome] | None = None,
    **kwargs: Any,
) -> list[DumpSummary]:
    """Save the dump of every step of ``outcome`` that left one (an import's own dump, or each process step's).

    With several dumps and no placeholder in ``dump_to``, each file name gets the step's object id.
    """
    dump_steps = list(steps if steps is not None else outcome.dump_steps)
    if not dump_steps:
        return []
    action_id = outcome.action_id or (action if re.fullmatch(r"\d{12}", action) else None)
    is_process = bool(action_id and action_id.startswith("118")) or any(s.number is not None for s in dump_steps)
    summaries = []
    for step in dump_steps:
        summaries.append(
            await asave_failure_dump(
                hook_or_client,
                model,
                action,
                outcome.task_id,
                dump_to,
                object_id=step.object_id if is_process else None,
                workspace_id=workspace_id,
                step=step,
                action_id=action_id,
                distinct=len(dump_steps) > 1,
                **kwargs,
            )
        )
    return summaries


def save_failure_dumps(hook_or_client: AnaplanHook | AnaplanClient, *args: Any, **kwargs: Any) -> list[DumpSummary]:
    """Synchronous :func:`asave_failure_dumps` (for ``execute()`` on a worker)."""
    return _run_sync(hook_or_client, lambda client: asave_failure_dumps(client, *args, **kwargs))


# ==================================================================================================== hook or client
def _is_hook(value: Any) -> bool:
    return callable(getattr(value, "arun", None)) and callable(getattr(value, "aget_client", None))


async def _arun(hook_or_client: Any, fn: Callable[[AnaplanClient], Any]) -> Any:
    """Await ``fn(client)``: through the hook (errors as Airflow twins) or with the client given."""
    if _is_hook(hook_or_client):
        return await hook_or_client.arun(fn)
    try:
        return await fn(hook_or_client)
    except Exception as exc:
        twin = to_airflow_error(exc)
        if twin is exc:
            raise
        raise twin from exc.__cause__


def _run_sync(hook_or_client: Any, fn: Callable[[AnaplanClient], Any]) -> Any:
    """Run ``fn(client)`` to completion from synchronous code: ``hook.run``, or a fresh event loop for a client."""
    if _is_hook(hook_or_client):
        return hook_or_client.run(fn)
    client = hook_or_client

    async def main() -> Any:
        try:
            return await _arun(client, fn)
        finally:
            await client.aclose()

    return asyncio.run(main())


__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_SAMPLE_ROWS",
    "OBJECT_STORE_PROTOCOLS",
    "BlockStream",
    "CsvRecordCounter",
    "DumpSummary",
    "OpenedSource",
    "RejectedRow",
    "TransferProgress",
    "WriteResult",
    "adownload_to",
    "aopen_source",
    "as_location",
    "asave_failure_dump",
    "asave_failure_dumps",
    "check_location",
    "download_to",
    "format_bytes",
    "is_object_storage_path",
    "open_source",
    "render_dump_target",
    "resolve_destination",
    "save_failure_dump",
    "save_failure_dumps",
    "write_stream",
]
