"""Child: plain gzip throughput of a file, chunk by chunk, on N threads (the ceiling for uploads).

``python benchmarks/_child_gzip.py --file F --level 1 --threads 2 [--chunk-size B] [--limit B]``

Reads the file in chunks (the client's chunk size by default) and gzips them with ``gzip.compress`` (what the
client and anaplan-sdk call) on a pool of N threads, keeping at most N + 1 chunks in memory. zlib releases the GIL,
so N threads use N cores. Reading from the page cache is included, as it is in an upload.
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from _common import MIB, emit, read_pieces


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", required=True)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk-size", type=int, default=25 * MIB)
    parser.add_argument("--limit", type=int, default=0, help="stop after this many input bytes (0: the whole file)")
    args = parser.parse_args()

    size_in = size_out = 0
    pending: deque[Future[bytes]] = deque()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        for piece in read_pieces(args.file, args.chunk_size):
            pending.append(pool.submit(gzip.compress, piece, args.level, mtime=0))
            size_in += len(piece)
            del piece
            while len(pending) > args.threads:
                size_out += len(pending.popleft().result())
            if args.limit and size_in >= args.limit:
                break
        while pending:
            size_out += len(pending.popleft().result())
    wall = time.perf_counter() - started
    emit({"bytes_in": size_in, "bytes_out": size_out, "wall_s": wall, "level": args.level, "threads": args.threads})


if __name__ == "__main__":
    main()
