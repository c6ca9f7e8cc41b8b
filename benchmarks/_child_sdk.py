"""Child: one upload (then import) or one download with anaplan-sdk's AsyncClient, in a fresh process.

Runs in the separate venv ``.venvs/bench-sdk`` (``scripts/bench setup``), which has anaplan-sdk 0.5.22 and its
``httpx2`` but neither our package nor httpx.

``python benchmarks/_child_sdk.py upload|download --url URL --auth login|token [--token T] --mode bytes|stream ...``

anaplan-sdk hard-codes ``https://api.anaplan.com`` and ``https://auth.anaplan.com``. API calls are redirected to the
emulator by a transport given through the client's extra httpx arguments. Its constructor logs in with a client of
its own that no transport reaches, so ``--auth login`` passes ``auth=`` an instance of its own basic-login class
whose login request is built for the emulator's auth service; ``--auth token`` passes a static token instead.

Modes: ``bytes`` is its documented way (``upload_file(file_id, content)`` with the whole file in memory,
``get_file(file_id)`` returning the whole file); ``stream`` is ``upload_file_stream`` of 25 MiB pieces and
``get_file_stream``, both ``--batch-size`` chunks at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from base64 import b64encode
from typing import Any

import httpx2
from _common import EMAIL, FILE_ID, IMPORT_ID, MIB, MODEL_ID, PASSWORD, WORKSPACE_ID, LagMeter, emit, read_pieces
from anaplan_sdk import AsyncClient
from anaplan_sdk._auth import _AnaplanBasicAuth

ANAPLAN_HOSTS = ("api.anaplan.com", "auth.anaplan.com")


class RedirectTransport(httpx2.AsyncBaseTransport):
    """Sends requests for Anaplan's hosts to the emulator instead, counting the request body bytes."""

    def __init__(self, target: str) -> None:
        self.target = httpx2.URL(target)
        self.inner = httpx2.AsyncHTTPTransport()
        self.sent = 0
        self.requests = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host in ANAPLAN_HOSTS:
            request.url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host, port=self.target.port)
            request.headers["Host"] = f"{self.target.host}:{self.target.port}"
        self.requests += 1
        self.sent += int(request.headers.get("content-length") or 0)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class EmulatorBasicAuth(_AnaplanBasicAuth):
    """anaplan-sdk's own basic login (token cache, re-login on 401), pointed at the emulator's auth service."""

    def __init__(self, user_email: str, password: str, auth_url: str) -> None:
        self.auth_url = auth_url  # set first: the parent's constructor logs in at once
        super().__init__(user_email, password)

    def _build_auth_request(self) -> httpx2.Request:
        credentials = b64encode(f"{self.user_email}:{self.password}".encode()).decode()
        return httpx2.Request(
            method="post",
            url=f"{self.auth_url}/token/authenticate",
            headers={"Authorization": f"Basic {credentials}"},
        )


async def warm_up(url: str) -> None:
    """One request with a throw-away client, so that lazy imports are not counted as event-loop lag."""
    async with httpx2.AsyncClient() as http:
        (await http.get(f"{url}/__emulator/health")).raise_for_status()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await warm_up(args.url)
    result: dict[str, Any] = {"client": f"sdk-{args.auth}-{args.mode}", "op": args.op}
    file_id, import_id = int(FILE_ID), int(IMPORT_ID)
    started = time.perf_counter()
    async with LagMeter() as lag:
        transport = RedirectTransport(args.url)
        if args.auth == "login":
            auth_kwargs: dict[str, Any] = {"auth": EmulatorBasicAuth(EMAIL, PASSWORD, args.url)}
        else:
            auth_kwargs = {"token": args.token}
        client = AsyncClient(
            workspace_id=WORKSPACE_ID,
            model_id=MODEL_ID,
            status_poll_delay=args.poll_interval,  # type: ignore[arg-type] - an int in its signature; sleep takes any
            upload_chunk_size=args.chunk_size,
            transport=transport,
            timeout=300,
            **auth_kwargs,
        )
        if args.op == "upload":
            if args.mode == "bytes":
                with open(args.file, "rb") as handle:  # noqa: ASYNC230 - what a caller of upload_file does
                    content = handle.read()
                await client.upload_file(file_id, content)
                size = len(content)
                del content
            else:
                size = 0

                def pieces():  # -> Iterator[bytes]
                    nonlocal size
                    for piece in read_pieces(args.file, args.chunk_size):
                        size += len(piece)
                        yield piece

                await client.upload_file_stream(file_id, pieces(), batch_size=args.batch_size)
            result["wall_s"] = time.perf_counter() - started
            result["bytes"] = size
            result["sent"] = transport.sent
            result.update(lag.report())
            import_started = time.perf_counter()
            task = await client.run_action(import_id)
            result["import_s"] = time.perf_counter() - import_started
            result["import_status"] = "success" if task.result and task.result.successful else "failed"
        else:
            written = 0
            with open(args.dest, "wb") as out:  # noqa: ASYNC230 - get_file returns bytes; the caller writes them
                if args.mode == "bytes":
                    data = await client.get_file(file_id)
                    out.write(data)
                    written = len(data)
                    del data
                else:
                    async for chunk in client.get_file_stream(file_id, batch_size=args.batch_size):
                        out.write(chunk)
                        written += len(chunk)
            result["wall_s"] = time.perf_counter() - started
            result["bytes"] = written
            result["sent"] = transport.sent
            result.update(lag.report())
        await client._http._client.aclose()  # the SDK has no close of its own on AsyncClient
    result["requests"] = transport.requests
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["upload", "download"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--file", help="the CSV to upload")
    parser.add_argument("--dest", help="where to write the download")
    parser.add_argument("--auth", choices=["login", "token"], default="login")
    parser.add_argument("--token", help="the static token for --auth token")
    parser.add_argument("--mode", choices=["bytes", "stream"], default="bytes")
    parser.add_argument("--batch-size", type=int, default=4, help="chunks at a time in stream mode")
    parser.add_argument("--chunk-size", type=int, default=25 * MIB, help="the same chunk size as our client's")
    parser.add_argument("--poll-interval", type=float, default=0.2)
    args = parser.parse_args()
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
