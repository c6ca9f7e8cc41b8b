"""Child: the emulator's own ingest rate, with plain httpx and no client logic.

``python benchmarks/_child_ingest.py --url URL --token TOKEN --file F --emulator-pid PID``

Three measurements, each sending the first ``--chunk-size`` bytes of the file ``--repeat`` times:

* ``single-shot``: ``PUT files/{id}`` one after another, raw (what the emulator can take when nothing else runs);
* ``chunks raw``: ``PUT files/{id}/chunks/{n}`` as ``application/octet-stream``, ``--concurrency`` at a time;
* ``chunks gzip``: the same with a body gzipped once up front at ``--level`` (so the emulator inflates each one, as
  it does for our client's uploads, while the sender spends no CPU on compression).

Rates are of uncompressed bytes; the emulator's CPU seconds are read from /proc for each.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import time

import httpx
from _common import FILE_ID, MIB, MODEL_ID, WORKSPACE_ID, cpu_seconds, emit


async def measure(args: argparse.Namespace, raw: bytes) -> dict[str, object]:
    packed = gzip.compress(raw, args.level, mtime=0)
    base = f"{args.url}/2/0/workspaces/{WORKSPACE_ID}/models/{MODEL_ID}/files/{FILE_ID}"
    headers = {"Authorization": f"AnaplanAuthToken {args.token}"}
    results: dict[str, object] = {"chunk_bytes": len(raw), "gzip_bytes": len(packed), "repeat": args.repeat}
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as http:

        async def timed(name: str, body: bytes, content_type: str, chunked: bool) -> None:
            if chunked:
                answer = await http.post(base, json={"chunkCount": -1})
                answer.raise_for_status()
            slots = asyncio.Semaphore(args.concurrency if chunked else 1)

            async def send(index: int) -> None:
                async with slots:
                    url = f"{base}/chunks/{index}" if chunked else base
                    response = await http.put(url, content=body, headers={"Content-Type": content_type})
                    response.raise_for_status()

            cpu_before = cpu_seconds(args.emulator_pid)
            started = time.perf_counter()
            await asyncio.gather(*(send(i) for i in range(args.repeat)))
            wall = time.perf_counter() - started
            results[name] = {
                "wall_s": wall,
                "bytes": len(raw) * args.repeat,
                "sent": len(body) * args.repeat,
                "emulator_cpu_s": cpu_seconds(args.emulator_pid) - cpu_before,
            }

        await timed("single-shot raw PUT", raw, "application/octet-stream", chunked=False)
        await timed(f"chunk PUTs raw x{args.concurrency}", raw, "application/octet-stream", chunked=True)
        await timed(f"chunk PUTs gzip-{args.level} x{args.concurrency}", packed, "application/x-gzip", chunked=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--emulator-pid", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, default=25 * MIB)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--level", type=int, default=1)
    args = parser.parse_args()
    with open(args.file, "rb") as handle:
        raw = handle.read(args.chunk_size)
    emit(asyncio.run(measure(args, raw)))


if __name__ == "__main__":
    main()
