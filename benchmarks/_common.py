"""Helpers shared by the benchmark drivers and their child processes.

Standard library only: the anaplan-sdk children run in a venv that has neither our package nor httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

MB = 1_000_000  # throughput and sizes in the reports are decimal megabytes
MIB = 1024 * 1024
RESULT_PREFIX = "BENCH-RESULT "

# The bundled seed's tenant (airflow_provider_anaplan/emulator/seed.json): model "Sales Forecast".
EMAIL = "demo@anaplan.example"
PASSWORD = "emulator-password"  # noqa: S105 - the emulator's public demo password
WORKSPACE_ID = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL_ID = "75A40874E6B64FA3AE0743278996850F"
FILE_ID = "113000000001"  # Sales Actuals.csv
IMPORT_ID = "112000000001"  # Sales Actuals from Sales Actuals.csv (only counts rows with --count-only-imports)


def vm_hwm_bytes(pid: int | str = "self") -> int:
    """Peak resident set size (``VmHWM``) of a process, in bytes: its own high-water mark, not a parent's."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/.../status")


def vm_rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/.../status")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process has used (all its threads)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class LagMeter:
    """Measures how late the event loop wakes a task that sleeps ``interval`` seconds, again and again.

    The worst overshoot is the longest time the loop was blocked (by compression, a big copy, a sync write...),
    give or take the scheduler's noise on a busy machine.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0  # the longest overshoot of a tick, in wall seconds
        self.worst_cpu = 0.0  # the most CPU the loop's thread itself used during one tick
        self.late_ticks = 0  # ticks more than 50 ms late
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            cpu = time.thread_time()
            await asyncio.sleep(self.interval)
            late = time.perf_counter() - started - self.interval
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu)
            self.ticks += 1
            self.late_ticks += late > 0.05
            self.worst = max(self.worst, late)

    def report(self) -> dict[str, float]:
        return {"lag_s": self.worst, "lag_cpu_s": self.worst_cpu, "late_ticks": self.late_ticks, "ticks": self.ticks}

    async def __aenter__(self) -> LagMeter:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def emit(result: dict[str, Any]) -> None:
    """Hand a child's result to its driver: one JSON line on stdout."""
    result.setdefault("peak_rss", vm_hwm_bytes())
    result.setdefault("cpu_s", cpu_seconds())
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def read_result(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"the child printed no result; its output:\n{stdout[-2000:]}")


def read_pieces(path: str, size: int):  # -> Iterator[bytes]
    """A file's content in pieces of ``size`` bytes (a sync generator, as a caller would hand one to a client)."""
    with open(path, "rb") as handle:
        while piece := handle.read(size):
            yield piece


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
