"""Child: list a large collection once, with our client or anaplan-sdk's, in a fresh process.

``python benchmarks/_child_paging.py ours|sdk --url URL --what files|imports|exports|models [--token T]``

With ``--token`` both clients use that static token (no login); anaplan-sdk needs it.

Our client runs under the project's venv, anaplan-sdk under ``.venvs/bench-sdk``; this file imports only what the
chosen client needs. Prints one result line: wall time (client creation and login included), items, requests,
peak RSS, event-loop lag.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import EMAIL, PASSWORD, LagMeter, emit

BULK_WORKSPACE_ID = "8a81b01c5b6c4d7e8f9a0b1c2d3e4f5a"  # emulator.state.BULK_WORKSPACE_ID
BULK_MODEL_ID = "B0" + "0" * 30  # the first model of bulk_seed(), which holds the objects


async def ours(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from airflow_provider_anaplan.client import AnaplanClient, BasicAuth, StaticTokenAuth

    class Counting(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()
            self.requests = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.requests += 1
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async with httpx.AsyncClient() as http:  # warm-up: lazy imports are not lag
        (await http.get(f"{args.url}/__emulator/health")).raise_for_status()
    started = time.perf_counter()
    async with LagMeter() as lag:
        transport = Counting()
        auth = StaticTokenAuth(args.token) if args.token else BasicAuth(EMAIL, PASSWORD)
        async with AnaplanClient(auth, base_url=args.url, transport=transport) as client:
            if args.what == "models":
                items = await client.list_models(BULK_WORKSPACE_ID)
            else:
                lister = getattr(client, f"list_{args.what}")
                items = await lister(BULK_MODEL_ID, BULK_WORKSPACE_ID)
    return {
        "wall_s": time.perf_counter() - started,
        "items": len(items),
        "requests": transport.requests,
        **lag.report(),
    }


async def sdk(args: argparse.Namespace) -> dict[str, Any]:
    import httpx2
    from _child_sdk import RedirectTransport
    from anaplan_sdk import AsyncClient

    async with httpx2.AsyncClient() as http:
        (await http.get(f"{args.url}/__emulator/health")).raise_for_status()
    started = time.perf_counter()
    async with LagMeter() as lag:
        transport = RedirectTransport(args.url)
        client = AsyncClient(
            workspace_id=BULK_WORKSPACE_ID, model_id=BULK_MODEL_ID, token=args.token, transport=transport, timeout=300
        )
        try:
            if args.what == "models":
                items = await client.get_models(only_in_workspace=True)
            else:
                items = await getattr(client, f"get_{args.what}")()
            error = None
        except Exception as exc:  # e.g. a model class that wants fields the emulator's bulk objects lack
            items, error = [], f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        await client._http._client.aclose()
    result = {"wall_s": time.perf_counter() - started, "items": len(items), "requests": transport.requests}
    if error:
        result["error"] = error
    return {**result, **lag.report()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["ours", "sdk"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--what", choices=["files", "imports", "exports", "models"], default="files")
    parser.add_argument("--token", help="anaplan-sdk: a static token")
    args = parser.parse_args()
    result = asyncio.run(ours(args) if args.client == "ours" else sdk(args))
    emit({"client": args.client, "what": args.what, **result})


if __name__ == "__main__":
    main()
