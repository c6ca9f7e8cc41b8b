"""Triggerer scale: N ``AnaplanTaskTrigger``s in one event loop, each polling a real task in the emulator (issue 9).

The driver writes a seed with N models (``EmulatorState.bulk_seed`` plus one action per model, so that every task
runs instead of queueing behind another on the same model), starts the emulator as its own process with a task
duration longer than the run, starts one action task per model over HTTP, zeroes the emulator's counters, and runs
one child process (this file with ``--child``): one event loop, as in a triggerer, running N ``trigger.run()``
generators at once against ``anaplan_default`` (an ``AIRFLOW_CONN_ANAPLAN_DEFAULT`` JSON connection, basic auth, in a
temporary ``AIRFLOW_HOME``). The child measures, after a ramp of two poll intervals, a steady window:

- authentication calls (``auth.authenticate`` from ``GET /__emulator/counters``, over the child's whole life);
- requests per second seen by the emulator during the window;
- the child's CPU seconds per minute of the window (``time.process_time``) and the emulator's (``/proc``);
- the child's peak RSS (``VmHWM``) and RSS per trigger: ``VmRSS`` after the ramp minus ``VmRSS`` before the first
  trigger was made (after imports and one throw-away request), divided by N;
- the event loop's worst lag: a ticker sleeps 10 ms again and again; the worst overshoot, during the ramp (all N
  triggers start and poll at once) and during the window.

Run: ``.venvs/airflow-3.3.2/bin/python benchmarks/triggerer.py [--counts 100,1000] [--poll-interval 5] [--window 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import EMAIL, PASSWORD, cpu_seconds, emit, log, vm_hwm_bytes, vm_rss_bytes

ACTION_ID = "117000000001"
TARGET_AUTH = 1  # one authentication per credential
TARGET_LAG_S = 0.100
TARGET_RSS_PER_TRIGGER = 50 * 1024  # 50 KB (KiB, as VmRSS counts)


# ------------------------------------------------------------------------------------------------- helpers
def admin(url: str, method: str, path: str) -> Any:
    request = urllib.request.Request(f"{url}/__emulator/{path}", method=method)  # noqa: S310 - local emulator
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read() or b"{}")


def counters(url: str) -> dict[str, Any]:
    return admin(url, "GET", "counters")["counters"]


# ------------------------------------------------------------------------------------------------- child
class Ticker:
    """Sleeps ``interval`` again and again; keeps the worst overshoot since the last :meth:`restart`."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0
        self.ticks = 0
        self.late = 0  # ticks more than 50 ms late

    def restart(self) -> dict[str, float]:
        report = {"worst_s": self.worst, "ticks": self.ticks, "late_50ms": self.late}
        self.worst, self.ticks, self.late = 0.0, 0, 0
        return report

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            overshoot = time.perf_counter() - started - self.interval
            self.ticks += 1
            self.late += overshoot > 0.05
            self.worst = max(self.worst, overshoot)


async def child_main(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from airflow_provider_anaplan.triggers.anaplan import AnaplanTaskTrigger

    tasks_by_model: list[tuple[str, str]] = json.loads(Path(args.tasks_file).read_text())  # noqa: ASYNC240 - before the clock
    async with httpx.AsyncClient() as throwaway:  # lazy imports of the HTTP stack, paid once per process
        (await throwaway.get(f"{args.url}/__emulator/counters")).raise_for_status()
    gc.collect()
    rss_before = vm_rss_bytes()

    ticker = Ticker()
    ticking = asyncio.create_task(ticker.run())
    idle_cpu = time.process_time()
    await asyncio.sleep(args.idle)  # reference: the ticker alone on this machine (its noise, its own CPU)
    idle = ticker.restart()
    idle_cpu = (time.process_time() - idle_cpu) / args.idle * 60
    events: list[dict[str, Any]] = []

    async def consume(trigger: AnaplanTaskTrigger) -> None:
        async for event in trigger.run():
            events.append(event.payload)

    cpu_start = time.process_time()
    started = time.perf_counter()
    runners = []
    for model_id, task_id in tasks_by_model:
        # As Airflow's TriggerRunner.create_triggers does: one trigger made and started per turn of the loop (it
        # awaits asyncio.sleep(0) before each), not a thousand made in one synchronous block.
        await asyncio.sleep(0)
        trigger = AnaplanTaskTrigger(
            anaplan_conn_id="anaplan_default",
            model_id=model_id,
            action_id=ACTION_ID,
            task_id=task_id,
            workspace_id=args.workspace_id,
            poll_interval=args.poll_interval,
            end_time=time.time() + 3600,
        )
        runners.append(asyncio.create_task(consume(trigger)))
    await asyncio.sleep(2 * args.poll_interval + 1)  # ramp: every trigger made its first polls
    ramp_cpu = time.process_time() - cpu_start
    ramp = ticker.restart()  # before the full collection below: it stops the loop for 100 ms or more by itself
    gc.collect()  # so that VmRSS counts live objects only
    rss_after = vm_rss_bytes()
    c0 = await asyncio.to_thread(counters, args.url)
    ticker.restart()  # the window starts here, without the collection's pause
    cpu0, emu0, t0 = time.process_time(), cpu_seconds(args.emulator_pid), time.perf_counter()
    await asyncio.sleep(args.window)
    cpu1, emu1, t1 = time.process_time(), cpu_seconds(args.emulator_pid), time.perf_counter()
    window = ticker.restart()
    c1 = await asyncio.to_thread(counters, args.url)

    for runner in (*runners, ticking):
        runner.cancel()
    for runner in (*runners, ticking):
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    elapsed = t1 - t0
    statuses: dict[str, int] = {}
    for event in events:
        statuses[event["status"]] = statuses.get(event["status"], 0) + 1
    return {
        "n": len(runners),
        "auth_calls": c1.get("auth.authenticate", 0),
        "auth_refresh": c1.get("auth.refresh", 0),
        "window_s": elapsed,
        "requests": c1.get("requests", 0) - c0.get("requests", 0),
        "rps": (c1.get("requests", 0) - c0.get("requests", 0)) / elapsed,
        "unauthorized": c1.get("auth.unauthorized", 0),
        "cpu_per_min": (cpu1 - cpu0) / elapsed * 60,
        "ramp_cpu_s": ramp_cpu,
        "ramp_s": time.perf_counter() - started - elapsed,
        "emulator_cpu_per_min": (emu1 - emu0) / elapsed * 60,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_per_trigger": (rss_after - rss_before) / len(runners),
        "peak_rss": vm_hwm_bytes(),
        "idle_cpu_per_min": idle_cpu,
        "lag_idle_s": idle["worst_s"],
        "lag_ramp_s": ramp["worst_s"],
        "lag_window_s": window["worst_s"],
        "late_ticks": ramp["late_50ms"] + window["late_50ms"],
        "ticks": ramp["ticks"] + window["ticks"],
        "events": statuses,
    }


# ------------------------------------------------------------------------------------------------- driver
def write_seed(path: Path, models: int) -> tuple[str, list[str]]:
    from airflow_provider_anaplan.emulator.state import BULK_WORKSPACE_ID, bulk_seed

    seed = bulk_seed(models=models)
    workspace = next(w for w in seed["workspaces"] if w["id"] == BULK_WORKSPACE_ID)
    for model in workspace["models"]:  # one action per model: no rule, so it only takes --task-duration
        model["actions"] = [{"id": ACTION_ID, "name": "Bench Action", "actionType": "DELETE_BY_SELECTION"}]
    path.write_text(json.dumps(seed))
    return BULK_WORKSPACE_ID, [m["id"] for m in workspace["models"]]


def start_tasks(url: str, workspace_id: str, model_ids: list[str]) -> list[tuple[str, str]]:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as http:
        token = http.post("/token/authenticate", auth=(EMAIL, PASSWORD)).json()["tokenInfo"]["tokenValue"]
        headers = {"Authorization": f"AnaplanAuthToken {token}"}
        started = []
        for model_id in model_ids:
            response = http.post(
                f"/2/0/workspaces/{workspace_id}/models/{model_id}/actions/{ACTION_ID}/tasks",
                json={"localeName": "en_US"},
                headers=headers,
            )
            response.raise_for_status()
            started.append((model_id, response.json()["task"]["taskId"]))
    return started


def run_one(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from _harness import Emulator

    seed_path = workdir / f"seed-{n}.json"
    workspace_id, model_ids = write_seed(seed_path, n)
    task_duration = 2 * args.poll_interval + args.window + 120  # outlives the child's ramp and window
    with Emulator("--seed", str(seed_path), "--task-duration", str(task_duration)) as emulator:
        began = time.perf_counter()
        tasks = start_tasks(emulator.url, workspace_id, model_ids)
        log(f"N={n}: started {len(tasks)} tasks on {len(model_ids)} models in {time.perf_counter() - began:.1f} s")
        tasks_file = workdir / f"tasks-{n}.json"
        tasks_file.write_text(json.dumps(tasks))
        admin(emulator.url, "POST", "counters/reset")
        home = workdir / f"airflow-home-{n}"
        home.mkdir()
        conn = {
            "conn_type": "anaplan",
            "login": EMAIL,
            "password": PASSWORD,
            "extra": {"base_url": emulator.url, "workspace_id": workspace_id, "timeout": 30},
        }
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW_CONN_ANAPLAN_DEFAULT": json.dumps(conn)}
        command = [
            sys.executable,
            __file__,
            "--child",
            "--url",
            emulator.url,
            "--emulator-pid",
            str(emulator.pid),
            "--tasks-file",
            str(tasks_file),
            "--workspace-id",
            workspace_id,
            "--poll-interval",
            str(args.poll_interval),
            "--window",
            str(args.window),
            "--idle",
            str(args.idle),
        ]
        import subprocess

        load = os.getloadavg()
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if completed.returncode != 0:
            raise RuntimeError(f"the child failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        from _common import read_result

        result = read_result(completed.stdout)
        result["load_before"] = load
        result["load_after"] = os.getloadavg()
        return result


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(results: list[dict[str, Any]]) -> None:
    from _harness import table

    rows = []
    for r in results:
        rows.append(
            [
                r["n"],
                f"{r['auth_calls']} (refresh {r['auth_refresh']}, 401s {r['unauthorized']})",
                f"{r['rps']:.1f}",
                f"{r['cpu_per_min']:.2f} (idle {r['idle_cpu_per_min']:.2f})",
                f"{r['emulator_cpu_per_min']:.2f}",
                f"{r['ramp_cpu_s']:.2f}",
                f"{r['peak_rss'] / 1e6:.1f}",
                f"{r['rss_before'] / 1e6:.1f} → {r['rss_after'] / 1e6:.1f}",
                f"{r['rss_per_trigger'] / 1024:.1f}",
                f"{r['lag_idle_s'] * 1000:.0f}",
                f"{r['lag_ramp_s'] * 1000:.0f}",
                f"{r['lag_window_s'] * 1000:.0f}",
                f"{r['late_ticks']}/{r['ticks']}",
                ", ".join(f"{k} {v}" for k, v in r["events"].items()) or "none",
                " / ".join(f"{x:.2f}" for x in r["load_before"][:1] + r["load_after"][:1]),
            ]
        )
    print(
        table(
            [
                "N",
                "auth calls",
                "req/s",
                "CPU s/min",
                "emulator CPU s/min",
                "ramp CPU s",
                "peak RSS MB",
                "RSS MB before → after",
                "KiB/trigger",
                "lag idle ms",
                "lag ramp ms",
                "lag window ms",
                "ticks >50 ms",
                "events",
                "load 1m before/after",
            ],
            rows,
        )
    )
    print()
    target_rows = []
    for r in results:
        lag = max(r["lag_ramp_s"], r["lag_window_s"])
        noise = f" (idle ticker alone: {r['lag_idle_s'] * 1000:.0f} ms)"
        target_rows += [
            [r["n"], "authentications", "1", r["auth_calls"], f"{r['auth_calls'] / TARGET_AUTH:.2f}x"],
            [r["n"], "worst lag (ramp + window)", "< 100 ms", f"{lag * 1000:.0f} ms{noise}", f"{lag / 0.1:.2f}x"],
            [
                r["n"],
                "RSS per trigger",
                "< 50 KiB",
                f"{r['rss_per_trigger'] / 1024:.1f} KiB",
                f"{r['rss_per_trigger'] / TARGET_RSS_PER_TRIGGER:.2f}x",
            ],
        ]
        target_rows[-3].append(verdict(r["auth_calls"] <= TARGET_AUTH))
        target_rows[-2].append(verdict(lag < TARGET_LAG_S))
        target_rows[-1].append(verdict(r["rss_per_trigger"] < TARGET_RSS_PER_TRIGGER))
    print(table(["N", "target", "wanted", "measured", "measured/target", "verdict"], target_rows))
    if len(results) >= 2:  # the fixed cost (shared client, token, connection pool) cancels out between two counts
        low, high = min(results, key=lambda r: r["n"]), max(results, key=lambda r: r["n"])
        if high["n"] > low["n"]:
            marginal = (high["rss_after"] - high["rss_before"] - low["rss_after"] + low["rss_before"]) / (
                high["n"] - low["n"]
            )
            print(
                f"\nmarginal RSS per trigger between N={low['n']} and N={high['n']}: {marginal / 1024:.1f} KiB "
                f"({marginal / TARGET_RSS_PER_TRIGGER:.2f}x the 50 KiB target: "
                f"{verdict(marginal < TARGET_RSS_PER_TRIGGER)})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,1000", help="trigger counts, comma-separated")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured after the ramp")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of ticker alone first (the reference)")
    parser.add_argument("--json", help="also write every figure here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--emulator-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tasks-file", help=argparse.SUPPRESS)
    parser.add_argument("--workspace-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        emit(asyncio.run(child_main(args)))
        return
    log(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    results = []
    with tempfile.TemporaryDirectory(prefix="anaplan-bench-triggerer-") as tmp:
        for n in [int(x) for x in args.counts.split(",")]:
            results.append(run_one(n, args, Path(tmp)))
    log(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
