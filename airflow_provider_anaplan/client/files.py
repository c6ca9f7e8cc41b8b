"""Chunked, streaming file transfers: upload (gzip in worker threads, bounded concurrency), download, delete.

Upload protocol (Anaplan's): ``POST …/files/{id}`` with ``{"chunkCount": N}`` (or ``-1`` when the size is not known
up front), ``PUT …/files/{id}/chunks/{n}`` for n = 0, 1, … (204), and, after ``-1``, ``POST …/files/{id}/complete``
with a JSON body (Anaplan answers a bodiless one with a 500). Each chunk PUT is safe to repeat, so a failed chunk is
retried on its own by the transport.

Uploads run as a pipeline (``_UploadPipeline``): one reader, ``min(concurrency, os.cpu_count())`` gzip threads and
``concurrency`` senders, each stage working while the others wait on disk, CPU or network. The first chunks are read
and compressed while the upload is being opened (authentication, the file's lookup, ``POST …/files/{id}``); the
senders start once it is, so no byte goes to a file before it is known to be the right one.

Memory: the source is read one chunk at a time, and a new chunk is read only while the chunk data held (chunks read
and not yet compressed, counted whole; compressed bodies not yet acknowledged, counted at their size) stays within
``chunk_size * (concurrency + 1)`` bytes, whatever the file's size; the gzip output being written by the compressions
under way comes on top. Downloads keep at most ``concurrency`` chunks in flight, each read into one of
``concurrency`` buffers reused from chunk to chunk (sized from its ``Content-Length``), and hand them over in order.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, overload
from urllib.parse import quote

from ._transport import RetryClass, new_buffer
from .errors import InvalidInputError, NotFoundError, ProtocolError
from .ids import ObjectKind, check_id, is_object_id
from .models import File
from .workspace import MetadataAPI, member, parse

MB = 1024 * 1024
#: Anaplan's limits: chunks of at most 50 MB (uncompressed), at most 1000 chunks per file.
MAX_CHUNK_SIZE = 50 * MB
MAX_CHUNKS = 1000
DEFAULT_CHUNK_SIZE = 25 * MB
DEFAULT_CONCURRENCY = 4
#: gzip level 1: on CSV it keeps most of level 6's saving at about four times the speed.
DEFAULT_COMPRESSION_LEVEL = 1

UploadSource = (
    bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]
)
Destination = str | os.PathLike[str] | IO[bytes]


def compress_chunk(data: bytes | bytearray | memoryview, level: int) -> bytes:
    """gzip one chunk; called in a worker thread (zlib releases the GIL), never on the event loop."""
    return gzip.compress(data, compresslevel=level, mtime=0)


# ---------------------------------------------------------------------------------------------------- sources
Chunk = bytes | bytearray | memoryview


class _Rechunker:
    """Cuts a stream of byte pieces of any size into chunks of exactly ``size`` bytes (the last may be shorter).

    A piece is consumed lazily, so a piece larger than a chunk never turns into several chunks at once, and a chunk
    that lies whole inside a piece is handed out as a view of it, without a copy.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffer = bytearray()
        self._carry: memoryview | None = None

    @property
    def hungry(self) -> bool:
        """True when the rechunker needs another piece to make progress."""
        return self._carry is None

    def feed(self, piece: Any) -> None:
        if isinstance(piece, str):
            piece = piece.encode("utf-8")
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise InvalidInputError(f"An upload source must yield bytes, got {type(piece).__name__}.")
        view = memoryview(piece).cast("B")
        self._carry = view if len(view) else None

    def pop(self, final: bool = False) -> Chunk | None:
        """The next full chunk, or the last partial one when ``final``; None when more input is needed."""
        carry = self._carry
        if carry is not None:
            if not self._buffer and len(carry) >= self.size:
                self._carry = carry[self.size :] if len(carry) > self.size else None
                return carry[: self.size]
            need = self.size - len(self._buffer)
            self._buffer += carry[:need]
            self._carry = carry[need:] if len(carry) > need else None
        if len(self._buffer) >= self.size or (final and self._buffer and self._carry is None):
            chunk, self._buffer = self._buffer, bytearray()
            return chunk
        return None


_END = object()


def _next_chunk_sync(pieces: Iterator[Any], rechunker: _Rechunker) -> Chunk | None:
    """Pull pieces from a sync iterator until a chunk is full (run in a worker thread: the iterator may block)."""
    while True:
        chunk = rechunker.pop()
        if chunk is not None:
            return chunk
        piece = next(pieces, _END)
        if piece is _END:
            return rechunker.pop(final=True)
        rechunker.feed(piece)


async def _iter_chunks(source: Any, size: int) -> AsyncIterator[Chunk]:
    """The chunks of an upload source other than a path (``_UploadPipeline._read_file`` reads those), read only as
    they are asked for (file objects and sync iterators in worker threads)."""
    rechunker = _Rechunker(size)
    if isinstance(source, bytes | bytearray | memoryview):
        rechunker.feed(source)
        while (chunk := rechunker.pop(final=True)) is not None:
            yield chunk
        return
    if callable(getattr(source, "read", None)):
        async for chunk in _iter_sync(_read_pieces(source, size), rechunker):
            yield chunk
        return
    if isinstance(source, AsyncIterable):
        iterator = aiter(source)
        try:
            while True:
                while (chunk := rechunker.pop()) is not None:
                    yield chunk
                try:
                    piece = await anext(iterator)
                except StopAsyncIteration:
                    break
                rechunker.feed(piece)
            while (chunk := rechunker.pop(final=True)) is not None:
                yield chunk
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
        return
    if isinstance(source, Iterable):
        async for chunk in _iter_sync(iter(source), rechunker):
            yield chunk
        return
    raise InvalidInputError(
        f"Cannot upload an object of type {type(source).__name__}: give bytes, str, a path (pathlib.Path), "
        "a binary file object, or a sync or async iterator of bytes."
    )


def _os_reason(exc: OSError) -> str:
    """A short reason for an OS error ("No such file or directory"), without the path (the caller names it)."""
    return exc.strerror or type(exc).__name__


def _stat_source(source: os.PathLike[str]) -> os.stat_result:
    try:
        return os.stat(os.fspath(source))
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise InvalidInputError(f"The upload source {os.fspath(source)!r} cannot be read: {reason}.") from None


def _open_source(source: os.PathLike[str]) -> IO[bytes]:
    try:
        return open(os.fspath(source), "rb")
    except (OSError, ValueError) as exc:
        reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise InvalidInputError(f"The upload source {os.fspath(source)!r} cannot be opened: {reason}.") from None


def _read_pieces(handle: Any, size: int) -> Iterator[Any]:
    """A file object's content in pieces of ``size`` (bytes, or str from a text file: uploaded as UTF-8)."""
    while piece := handle.read(size):
        yield piece


async def _iter_sync(pieces: Iterator[Any], rechunker: _Rechunker) -> AsyncIterator[Chunk]:
    while (chunk := await asyncio.to_thread(_next_chunk_sync, pieces, rechunker)) is not None:
        yield chunk


def _check_str_source(source: str) -> bytes:
    # A short str without a line break that names an existing file is almost surely a path given by mistake.
    if "\n" not in source and len(source) < 4096 and source.strip() and os.path.exists(source):
        raise InvalidInputError(
            f"The upload source {source!r} is a str naming an existing file; a str is uploaded as the file's text. "
            f"Pass pathlib.Path({source!r}) to upload the file, or text with a line break."
        )
    return source.encode("utf-8")


def _level(compress: bool | int) -> int:
    """The gzip level for ``compress`` (True: the default level; False or 0: no compression; 1-9: that level)."""
    if isinstance(compress, bool):
        return DEFAULT_COMPRESSION_LEVEL if compress else 0
    if isinstance(compress, int) and 0 <= compress <= 9:
        return compress
    raise InvalidInputError(f"compress must be True, False or a gzip level 0-9, got {compress!r}.")


# ---------------------------------------------------------------------------------------------------- upload pipeline
class _Budget:
    """The bytes of compressed (or copied) bodies an upload holds until their PUT is acknowledged, kept near a limit:
    an uncompressed body is reserved exactly before it is made; a compressor starts only while there is room left,
    and its body (known only once made) is counted when done, so the outputs of compressions under way come on top."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Event()

    async def reserve(self, size: int) -> None:
        while self.used and self.used + size > self.limit:
            await self._wait()
        self.adjust(size)

    async def wait_for_room(self) -> None:
        while self.used >= self.limit:
            await self._wait()

    async def _wait(self) -> None:
        self._freed.clear()
        await self._freed.wait()

    def adjust(self, delta: int) -> None:
        self.used += delta
        if delta < 0:
            self._freed.set()


class _ReadSlots:
    """Chunks read and not yet turned into bodies: at most ``count`` at a time. A file source is read into buffers
    that stay with the slots and are reused from chunk to chunk, which spares the allocator a fresh chunk-sized block
    per chunk (glibc raises its mmap threshold after the first free, so later blocks come from arenas it seldom
    shrinks, and RSS would creep up with the file's size)."""

    def __init__(self, count: int) -> None:
        self._slots = asyncio.Semaphore(count)
        self._spare: list[bytearray] = []

    async def take(self) -> bytearray | None:
        """Wait for a free slot; its buffer, or None (a file source allocates one, off the loop)."""
        await self._slots.acquire()
        return self._spare.pop() if self._spare else None

    def give(self, buffer: bytearray | None) -> None:
        if buffer is not None:
            self._spare.append(buffer)
        self._slots.release()


def _read_into(handle: Any, buffer: bytearray | None, size: int) -> tuple[bytearray, int]:
    """Fill ``buffer`` (a new one of ``size`` bytes when None) from a binary file; (buffer, bytes read), in a thread."""
    if buffer is None:
        buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = handle.readinto(view[filled:])
        if not count:
            break
        filled += count
    return buffer, filled


_DONE = None  # the end of a queue


class _UploadPipeline:
    """read -> gzip -> send, each stage running on its own so that none waits for the others in lock-step.

    One reader pulls chunks from the source (files and sync iterators in worker threads) into a small queue;
    ``min(concurrency, os.cpu_count())`` compressors gzip them in a thread pool of that size (never on the event loop)
    into a queue of at most ``concurrency`` compressed bodies; ``concurrency`` senders PUT the bodies as they come.

    Memory, in chunks of ``chunk_size``: R = ``min(compressors + 1, concurrency)`` chunks read and not yet compressed
    (1 without compression: the chunk being read), and ``concurrency + 1 - R`` chunks' worth of bodies not yet
    acknowledged; ``chunk_size * (concurrency + 1)`` bytes in all, plus the output of the compressions under way.
    Compressed bodies are a fraction of a chunk for text, so that share could hold several of them, but at most
    ``concurrency`` bodies exist at once (being made, queued or being sent): what a file of ``concurrency`` chunks
    holds too, so peak memory does not grow with the file's size. Sends keep up with compression on any link that
    is not the bottleneck itself, so the cap costs no throughput. A failed PUT is retried on its own by the
    transport; when one fails for good (or the source fails) everything else is cancelled and that error is raised.
    """

    def __init__(self, api: FilesAPI, size: int, level: int, concurrency: int) -> None:
        self.api = api
        self.file_path = ""  # known once ``prepare`` is done; no body is sent before
        self.size = size
        self.level = level
        self.concurrency = concurrency
        self.workers = min(concurrency, os.cpu_count() or 1) if level else 0
        reading = min(self.workers + 1, concurrency) if level else 1
        self.slots = _ReadSlots(reading)
        self.budget = _Budget(size * (concurrency + 1 - reading))
        self.held = asyncio.Semaphore(concurrency)  # bodies being made, queued or sent: as many as a small file has
        self.raw: asyncio.Queue[tuple[int, Chunk, bytearray | None] | None] = asyncio.Queue(
            maxsize=max(1, self.workers)
        )
        self.bodies: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=concurrency)
        self.count = 0

    async def run(self, source: Any, prepare: Coroutine[Any, Any, str]) -> int:
        """Upload ``source``; returns the number of chunks sent.

        ``prepare`` (the lookups and the ``POST …/files/{id}`` that open the upload) runs while the first chunks are
        read and compressed, so its round trips to Anaplan cost no time of their own; it returns the file's path,
        and the senders start only then: nothing is sent to a file before it is known to be the right one.
        """
        pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="anaplan-gzip") if self.workers else None
        )  # gzip only ever runs here: zlib releases the GIL, so the threads compress in parallel
        preparing = asyncio.create_task(prepare)
        upstream = {asyncio.create_task(self._read(source))}
        upstream |= {asyncio.create_task(self._compress(pool)) for _ in range(self.workers)}
        every: set[asyncio.Task[Any]] = {preparing, *upstream}
        pending = set(every)
        drained: asyncio.Task[None] | None = None
        try:
            while drained is None or not drained.done():
                # the reader and compressors finish when the source is spent; a failure anywhere stops all
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    result = task.result()  # raises the stage's error
                    if task is preparing:
                        self.file_path = result
                        senders = {asyncio.create_task(self._send()) for _ in range(self.concurrency)}
                        every |= senders
                        pending |= senders
                upstream -= done
                if drained is None and not upstream and preparing.done():
                    drained = asyncio.create_task(self.bodies.join())
                    every.add(drained)
                    pending.add(drained)
        finally:
            await _cancel_all(every)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        return self.count

    async def _read(self, source: Any) -> None:
        if isinstance(source, os.PathLike):
            await self._read_file(source)
        else:
            chunks = _iter_chunks(source, self.size)
            try:
                while True:
                    await self.slots.take()
                    chunk = await anext(chunks, None)
                    if chunk is None:
                        self.slots.give(None)
                        break
                    await self._hand_on(chunk, None)
                    del chunk
            finally:
                await chunks.aclose()
        for _ in range(self.workers):
            await self.raw.put(_DONE)

    async def _read_file(self, source: os.PathLike[str]) -> None:
        """A path's chunks, read straight into the read slots' buffers."""
        handle = await asyncio.to_thread(_open_source, source)
        try:
            while True:
                buffer, filled = await asyncio.to_thread(_read_into, handle, await self.slots.take(), self.size)
                if filled:
                    await self._hand_on(buffer if filled == self.size else memoryview(buffer)[:filled], buffer)
                else:
                    self.slots.give(buffer)
                if filled < self.size:
                    break
                del buffer
        finally:
            await asyncio.to_thread(handle.close)

    async def _hand_on(self, chunk: Chunk, buffer: bytearray | None) -> None:
        """Number a chunk just read and pass it on: to the compressors, or (no compression) straight to the senders."""
        if self.count >= MAX_CHUNKS:
            raise InvalidInputError(
                f"The source needs more than {MAX_CHUNKS} chunks of {self.size} bytes, Anaplan's limit: pass a "
                f"larger chunk_size (up to {MAX_CHUNK_SIZE} bytes)."
            )
        index, self.count = self.count, self.count + 1
        if self.level:
            await self.raw.put((index, chunk, buffer))
            return
        await self.held.acquire()
        await self.budget.reserve(len(chunk))
        body = bytes(chunk)
        del chunk
        self.slots.give(buffer)
        await self.bodies.put((index, body))

    async def _compress(self, pool: ThreadPoolExecutor | None) -> None:
        loop = asyncio.get_running_loop()
        while (item := await self.raw.get()) is not _DONE:
            index, chunk, buffer = item
            del item
            await self.held.acquire()
            await self.budget.wait_for_room()
            body = await loop.run_in_executor(pool, compress_chunk, chunk, self.level)
            self.budget.adjust(len(body))
            del chunk
            self.slots.give(buffer)
            del buffer
            await self.bodies.put((index, body))
            del body

    async def _send(self) -> None:
        while True:
            item = await self.bodies.get()
            assert item is not _DONE
            index, body = item
            del item
            await self.api._put_chunk(self.file_path, index, body, bool(self.level))
            self.budget.adjust(-len(body))
            self.held.release()
            del body
            self.bodies.task_done()


async def _cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel tasks, wait for them, and retrieve their outcome (an error after the first one is moot)."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


# ---------------------------------------------------------------------------------------------------- download buffers
class _ChunkBuffers:
    """The buffers one download reads its chunks into, handed back once a chunk is written out and reused.

    A new buffer grows as its chunk arrives (``_transport.new_buffer`` says why it is not zero-filled up front); a
    reused one is overwritten in place, so after the first ``concurrency`` chunks no page is allocated at all: the
    event loop never waits for the kernel to find memory, and RSS does not creep with the file's size as glibc's
    raised mmap threshold would otherwise let it (see :class:`_ReadSlots`). Chunks are all of one size but the last,
    so a spare fits almost every time; one too small is dropped for a new one.
    """

    def __init__(self) -> None:
        self._spare: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        while self._spare:
            buffer = self._spare.pop()
            if len(buffer) >= size:
                del buffer[size:]  # shrinking in place; only the last chunk is shorter
                return buffer
        return new_buffer(size)

    def give(self, buffer: bytearray) -> None:
        self._spare.append(buffer)


# ---------------------------------------------------------------------------------------------------- the API
class FilesAPI(MetadataAPI):
    """Upload, download and delete the files of a model (import sources 113…, export outputs 116…)."""

    async def _locate(self, model: str, workspace_id: str | None) -> tuple[str, str | None, str]:
        """(model id, workspace id, ``…/models/{m}`` path) from an id or name of each."""
        workspace = await self.resolve_workspace(workspace_id) if workspace_id is not None else None
        model_id = await self.resolve_model(model, workspace)
        return model_id, workspace, self._model_path(model_id, workspace)

    # ------------------------------------------------------------------------------------------ upload
    async def upload_file(
        self,
        model: str,
        file: str,
        source: UploadSource,
        *,
        workspace_id: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compress: bool | int = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        allow_new_file: bool = False,
    ) -> File:
        """Upload ``source`` into a model's file in chunks, streaming; returns the file as Anaplan describes it.

        ``source``: bytes, a str (uploaded as UTF-8 text), a path (``pathlib.Path``), a binary file object, or a sync
        or async iterator of bytes of any length. ``file``: the file's id (113…) or name. Chunks are ``chunk_size``
        bytes (at most 50 MB; raised for a large source of known size so it fits in 1000 chunks), gzipped at level
        ``compress`` (True: level 1) on ``min(concurrency, os.cpu_count())`` worker threads, and sent ``concurrency``
        at a time; see the module's docstring for the memory bound.

        Anaplan answers an unknown file id by silently creating a new file with another id; so the file is looked
        up first and an unknown one is refused, unless ``allow_new_file`` (then the new file is returned).
        """
        level = _level(compress)
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInputError(f"chunk_size must be 1 to {MAX_CHUNK_SIZE} bytes (50 MB), got {chunk_size!r}.")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise InvalidInputError(f"concurrency must be an integer >= 1, got {concurrency!r}.")
        if isinstance(source, str):
            source = _check_str_source(source)
        if not isinstance(file, str) or not file.strip():
            raise InvalidInputError(f"A file name or id must be a non-empty string, got {file!r}.")
        if is_object_id(file):
            if file.startswith("116"):
                raise InvalidInputError(
                    f"{file!r} is an export's output file: upload to an import's source file (113…) instead."
                )
            check_id(file, ObjectKind.FILE)
        exact = isinstance(source, bytes | bytearray | memoryview)
        size: int | None = memoryview(source).nbytes if exact else None  # type: ignore[arg-type]
        if isinstance(source, os.PathLike):
            size = (await asyncio.to_thread(_stat_source, source)).st_size
        if size is not None and size > chunk_size * MAX_CHUNKS:
            chunk_size = -(-size // MAX_CHUNKS)
            if chunk_size > MAX_CHUNK_SIZE:
                raise InvalidInputError(
                    f"The source holds {size} bytes, more than Anaplan's 1000 chunks of 50 MB allow."
                )

        count = -(-size // chunk_size) if exact and size is not None else -1
        model_path = file_id = ""
        described: File | None = None

        async def prepare() -> str:
            """Check the file and open the upload (the pipeline reads and compresses meanwhile)."""
            nonlocal model_path, file_id, described
            model_id, workspace, model_path = await self._locate(model, workspace_id)
            file_id = await self._upload_target(model_id, workspace, file, allow_new_file)
            started = await self._transport.request(
                "POST",
                f"{model_path}/files/{quote(file_id, safe='')}",
                json={"chunkCount": count},
                retry=RetryClass.SAFE,
            )
            described = parse(File, member(self._transport.json_of(started), "file", "a file"), "a file")
            if described.id != file_id:
                if not allow_new_file:
                    raise ProtocolError(
                        f"Anaplan created a new file {described.id!r} named {described.name!r} instead of writing to "
                        f"file {file_id!r} of model {model_id} (it does so for a file id it does not know). Nothing "
                        "was uploaded. Check the file id, or pass allow_new_file=True to upload into the new file."
                    )
                file_id = described.id
            check_id(file_id, ObjectKind.FILE)
            return f"{model_path}/files/{file_id}"

        sent = await _UploadPipeline(self, chunk_size, level, concurrency).run(source, prepare())
        assert described is not None
        if count >= 0:
            if sent != count:
                raise ProtocolError(f"Planned {count} chunk(s) for file {file_id} but sent {sent}.")
            return described.model_copy(update={"chunk_count": sent})
        completed = await self._transport.request(
            "POST",
            f"{model_path}/files/{file_id}/complete",
            json={"id": file_id, "name": described.name, "chunkCount": sent},
            retry=RetryClass.SAFE,
        )
        body = self._transport.json_of(completed)
        final = parse(File, body["file"], "a file") if isinstance(body.get("file"), dict) else described
        if final.chunk_count is not None and final.chunk_count != sent:
            raise ProtocolError(
                f"Anaplan reports {final.chunk_count} chunk(s) for file {file_id} after {sent} were uploaded."
            )
        return final.model_copy(update={"chunk_count": sent})

    async def _upload_target(self, model_id: str, workspace_id: str | None, file: str, allow_new: bool) -> str:
        """The id to POST to: the file's id when it exists; with ``allow_new``, what was given (Anaplan creates it)."""
        try:
            return (await self.find_file(model_id, file, workspace_id)).id
        except NotFoundError as exc:
            if allow_new:
                return file
            raise NotFoundError(
                f"{exc} Anaplan would silently create a new file for an unknown id; pass allow_new_file=True if "
                "that is what you want.",
                status=exc.status,
            ) from None

    async def _put_chunk(self, file_path: str, index: int, body: bytes, compressed: bool) -> None:
        await self._transport.request(
            "PUT",
            f"{file_path}/chunks/{index}",
            content=body,
            headers={"Content-Type": "application/x-gzip" if compressed else "application/octet-stream"},
            retry=RetryClass.SAFE,
        )

    # ------------------------------------------------------------------------------------------ download
    async def stream_file(
        self,
        model: str,
        file: str,
        *,
        workspace_id: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> AsyncIterator[bytes]:
        """Yield a file's content chunk by chunk, in order, fetching up to ``concurrency`` chunks ahead.

        An export's output file has the export's id (116…). A file with no content yields nothing.
        """
        async for data in self._stream_chunks(model, file, workspace_id, concurrency, raw=False):
            yield data  # type: ignore[misc]

    async def _stream_chunks(
        self, model: str, file: str, workspace_id: str | None, concurrency: int, *, raw: bool
    ) -> AsyncIterator[bytes | bytearray]:
        """A file's chunks in order; with ``raw``, as the bytearrays they were read into (no copy to bytes)."""
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise InvalidInputError(f"concurrency must be an integer >= 1, got {concurrency!r}.")
        model_id, workspace, model_path = await self._locate(model, workspace_id)
        file_id = await self.resolve_file(model_id, file, workspace)
        base = f"{model_path}/files/{file_id}/chunks"
        ids = [str(member(item, "id", "a chunk")) async for item in self._transport.paginate(base, "chunks")]
        async for data in self._fetch_in_order([f"{base}/{i}" for i in ids], concurrency, raw=raw):
            yield data

    async def _fetch_in_order(
        self,
        paths: Iterable[str],
        concurrency: int,
        on_missing: Callable[[NotFoundError], Exception] | None = None,
        *,
        raw: bool = False,
    ) -> AsyncIterator[bytes]:
        """GET each path, at most ``concurrency`` at once, yielding the bodies in the paths' order.

        Each body is read straight into one bytearray; it is yielded as ``bytes`` (a copy) unless ``raw``, when the
        bytearray itself is yielded: the caller writes it out before asking for the next, since it is then reused for
        a chunk further on. So a download holds ``concurrency`` buffers, allocated once (see :class:`_ChunkBuffers`).
        """
        window: deque[asyncio.Task[bytearray]] = deque()
        buffers = _ChunkBuffers()
        try:
            for path in paths:
                window.append(asyncio.create_task(self._get_bytes(path, buffers)))
                if len(window) >= concurrency:
                    body = await self._take(window.popleft(), on_missing)
                    yield body if raw else bytes(body)  # type: ignore[misc]
                    buffers.give(body)
                    del body
            while window:
                body = await self._take(window.popleft(), on_missing)
                yield body if raw else bytes(body)  # type: ignore[misc]
                buffers.give(body)
                del body
        finally:
            for task in window:
                task.cancel()
            if window:
                await asyncio.wait(set(window))
                for task in window:
                    if not task.cancelled():
                        task.exception()  # retrieved: a fetch that failed after the consumer stopped is moot

    @staticmethod
    async def _take(task: Awaitable[bytearray], on_missing: Callable[[NotFoundError], Exception] | None) -> bytearray:
        try:
            return await task
        except NotFoundError as exc:
            if on_missing is None:
                raise
            raise on_missing(exc) from None

    async def _get_bytes(self, path: str, buffers: _ChunkBuffers) -> bytearray:
        return await self._transport.request_bytes(
            "GET", path, headers={"Accept": "application/octet-stream"}, buffers=buffers.take
        )

    @overload
    async def download_file(
        self,
        model: str,
        file: str,
        destination: Destination,
        *,
        workspace_id: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> int: ...

    @overload
    async def download_file(
        self,
        model: str,
        file: str,
        destination: None = None,
        *,
        workspace_id: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> AsyncIterator[bytes]: ...

    async def download_file(
        self,
        model: str,
        file: str,
        destination: Destination | None = None,
        *,
        workspace_id: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> int | AsyncIterator[bytes]:
        """Download a file to ``destination`` (a path or a binary file object) and return the bytes written.

        Without a destination, returns an async iterator of the chunks (``stream_file``). A path is written
        through ``<path>.part`` and renamed when complete, so a failed download never leaves a truncated file.
        """
        if destination is None:
            return self.stream_file(model, file, workspace_id=workspace_id, concurrency=concurrency)
        return await write_chunks(self._stream_chunks(model, file, workspace_id, concurrency, raw=True), destination)

    async def delete_file(self, model: str, file: str, *, workspace_id: str | None = None) -> None:
        """Delete the uploaded content of a file (the file's definition stays; Anaplan deletes only content)."""
        model_id, workspace, model_path = await self._locate(model, workspace_id)
        file_id = await self.resolve_file(model_id, file, workspace)
        await self._transport.request("DELETE", f"{model_path}/files/{file_id}")


async def write_chunks(
    chunks: AsyncIterator[bytes] | AsyncIterator[bytes | bytearray], destination: Destination
) -> int:
    """Write async chunks to a path (through ``.part``, renamed at the end) or a binary file object; bytes written.

    Writes run in worker threads, so a slow disk never stalls the event loop.
    """
    try:
        if not isinstance(destination, str | os.PathLike):
            if not callable(getattr(destination, "write", None)):
                raise InvalidInputError(
                    f"A download destination must be a path or a binary file object, got {type(destination).__name__}."
                )
            _check_binary(destination)
            return await _write_all(chunks, destination)
        target = Path(destination)
        partial = target.with_name(target.name + ".part")
        handle = await asyncio.to_thread(_open_partial, partial, target)
        try:
            with handle:
                written = await _write_all(chunks, handle)
            await asyncio.to_thread(_replace, partial, target)
        except BaseException:
            await asyncio.to_thread(_remove_quietly, partial)
            raise
        return written
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _check_binary(destination: Any) -> None:
    """Refuse a text-mode file object up front (it would fail at the first chunk with a TypeError)."""
    mode = getattr(destination, "mode", None)
    if isinstance(destination, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise InvalidInputError(
            f"The download destination {getattr(destination, 'name', type(destination).__name__)!r} is a text-mode "
            "file: open it in binary mode (open(path, 'wb')), or give its path."
        )


def _destination_error(target: Path, exc: OSError) -> InvalidInputError:
    return InvalidInputError(
        f"The download destination {str(target)!r} cannot be written ({_os_reason(exc)}): directory missing or not "
        "writable."
    )


def _open_partial(partial: Path, target: Path) -> IO[bytes]:
    try:
        return open(partial, "wb")
    except OSError as exc:
        raise _destination_error(target, exc) from None


def _replace(partial: Path, target: Path) -> None:
    try:
        os.replace(partial, target)
    except OSError as exc:
        raise _destination_error(target, exc) from None


async def _write_all(chunks: AsyncIterator[bytes] | AsyncIterator[bytes | bytearray], handle: IO[bytes]) -> int:
    written = 0
    async for data in chunks:
        await asyncio.to_thread(handle.write, data)
        written += len(data)
        del data  # not held while the next chunk is fetched
    return written


def _remove_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_CONCURRENCY",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE",
    "FilesAPI",
    "compress_chunk",
    "write_chunks",
]
