"""Child: one upload (then import) or one download with our client, in a fresh process.

``python benchmarks/_child_ours.py upload|download --url URL --file F [--level 1] [--concurrency 4]``

Prints one result line: wall time of the transfer (client creation, login and lookups included), bytes on the wire,
the event loop's worst lag, this process's peak RSS (VmHWM) and CPU seconds. For ``upload`` the import that follows
is timed on its own (the emulator should run with ``--count-only-imports --task-duration 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
from _common import EMAIL, FILE_ID, IMPORT_ID, MODEL_ID, PASSWORD, WORKSPACE_ID, LagMeter, emit, vm_hwm_bytes

from airflow_provider_anaplan.client import AnaplanClient, BasicAuth, StaticTokenAuth
from airflow_provider_anaplan.client.settings import shared_ssl_context


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting the request and response body bytes that cross it."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=context)
        self.sent = 0
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.sent += int(request.headers.get("content-length") or 0)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def warm_up(url: str) -> None:
    """One request with a throw-away client, so that the lazy imports of httpx, httpcore, anyio and h11 (paid once
    per process, and long paid in an Airflow worker or triggerer) are not counted as event-loop lag."""
    async with httpx.AsyncClient() as http:
        (await http.get(f"{url}/__emulator/health")).raise_for_status()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    await warm_up(args.url)
    result: dict[str, Any] = {"client": "ours", "op": args.op}
    started = time.perf_counter()
    async with LagMeter() as lag:
        # In the measured part, as the client does it: the CA bundle is loaded in a worker thread, once per process.
        transport = CountingTransport(await asyncio.to_thread(shared_ssl_context, True))
        auth = StaticTokenAuth(args.token) if args.token else BasicAuth(EMAIL, PASSWORD)
        async with AnaplanClient(auth, base_url=args.url, transport=transport) as client:
            if args.op == "upload":
                uploaded = await client.upload_file(
                    MODEL_ID,
                    FILE_ID,
                    Path(args.file),
                    workspace_id=WORKSPACE_ID,
                    compress=args.level,
                    concurrency=args.concurrency,
                )
                result["wall_s"] = time.perf_counter() - started
                result["bytes"] = args.size
                result["sent"] = transport.sent
                result["chunks"] = uploaded.chunk_count
                result.update(lag.report())
                result["transfer_peak_rss"] = vm_hwm_bytes()
                import_started = time.perf_counter()
                outcome = await client.run_action(
                    MODEL_ID, IMPORT_ID, workspace_id=WORKSPACE_ID, poll_interval=args.poll_interval
                )
                result["import_s"] = time.perf_counter() - import_started
                result["import_status"] = str(outcome.status)
            else:
                written = await client.download_file(
                    MODEL_ID, FILE_ID, args.dest, workspace_id=WORKSPACE_ID, concurrency=args.concurrency
                )
                result["wall_s"] = time.perf_counter() - started
                result["bytes"] = written
                result["sent"] = transport.sent
                result.update(lag.report())
    result["requests"] = transport.requests
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["upload", "download"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--file", help="the CSV to upload")
    parser.add_argument("--dest", help="where to write the download")
    parser.add_argument("--token", help="a static token instead of basic login")
    parser.add_argument("--level", type=int, default=1, help="gzip level (the client's default is 1)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll-interval", type=float, default=0.2)
    args = parser.parse_args()
    args.size = os.path.getsize(args.file) if args.file else 0
    emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
