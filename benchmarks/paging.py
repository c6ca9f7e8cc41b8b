"""Paging benchmark: listing 20 000 items through the emulator, our client (and anaplan-sdk's if installed).

    .venvs/airflow-3.3.2/bin/python benchmarks/paging.py [--items 20000] [--what files,imports,models]
        [--latencies 0,0.05] [--repeat 3] [--json FILE]

(``scripts/bench paging`` runs it with the right interpreter.) The seed is ``EmulatorState.bulk_seed(models=N,
objects=N)`` written to a temporary JSON file and passed with ``--seed``: a workspace "Bulk Load" whose first model
holds N files, imports, exports, processes and actions, and N models in all. Anaplan pages at most 5000 items, so
20 000 items take 4 pages. Each listing runs in a fresh child process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MIB, log
from _harness import OURS_PYTHON, SDK_PYTHON, Emulator, run_child, table


def write_seed(items: int, directory: str) -> Path:
    from airflow_provider_anaplan.emulator.state import bulk_seed

    path = Path(directory) / f"bulk-seed-{items}.json"
    path.write_text(json.dumps(bulk_seed(models=items, objects=items)))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--what", default="files,imports,models", help="of files, imports, exports, models")
    parser.add_argument("--latencies", default="0,0.05")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (best wall time is reported)")
    parser.add_argument("--no-sdk", action="store_true", help="leave anaplan-sdk out")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    kinds = [w.strip() for w in args.what.split(",") if w.strip()]
    clients = ["ours"]
    if not args.no_sdk:
        if os.access(SDK_PYTHON, os.X_OK):
            clients.append("sdk")
        else:
            log(f"anaplan-sdk is not installed ({SDK_PYTHON} is missing; run scripts/bench setup): skipping it")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="anaplan-bench-") as scratch:
        started = time.perf_counter()
        seed = write_seed(args.items, scratch)
        log(
            f"seed with {args.items} of each: {seed.stat().st_size / 1e6:.1f} MB "
            f"in {time.perf_counter() - started:.1f} s"
        )
        for latency in (float(x) for x in args.latencies.split(",") if x.strip()):
            with Emulator("--seed", str(seed), "--latency", str(latency)) as emulator:
                token = emulator.login_token()
                for what in kinds:
                    for client in clients:
                        python = OURS_PYTHON if client == "ours" else SDK_PYTHON
                        extra = ["--token", token]  # both clients: a static token, no login in the timing
                        runs = [
                            run_child(
                                python, "_child_paging.py", [client, "--url", emulator.url, "--what", what, *extra]
                            )
                            for _ in range(args.repeat)
                        ]
                        result = dict(min(runs, key=lambda r: r["wall_s"]))
                        result["peak_rss"] = max(r["peak_rss"] for r in runs)
                        result["lag_s"] = max(r["lag_s"] for r in runs)
                        result["latency"] = latency
                        log(f"  {latency * 1000:.0f} ms {what} {client}: {result['items']} in {result['wall_s']:.3f} s")
                        results.append(result)

    rows = [
        [
            f"{r['latency'] * 1000:.0f}",
            r["what"],
            "ours" if r["client"] == "ours" else "anaplan-sdk",
            r["items"],
            r["requests"],
            f"{r['wall_s']:.3f}",
            f"{r['items'] / r['wall_s']:,.0f}" if r["items"] else "-",
            f"{r['peak_rss'] / MIB:.0f}",
            f"{r['lag_s'] * 1000:.0f}",
            r.get("error", ""),
        ]
        for r in results
    ]
    print(
        f"Listing {args.items} items (best of {args.repeat}; a static token for both clients; "
        "wall time includes client creation):"
    )
    print(
        table(
            [
                "latency ms",
                "what",
                "client",
                "items",
                "requests",
                "wall s",
                "items/s",
                "peak RSS MiB",
                "lag ms",
                "error",
            ],
            rows,
        )
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
