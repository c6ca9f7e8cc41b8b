"""Driver-side plumbing: test data, the emulator process, child processes, tables."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import EMAIL, PASSWORD, cpu_seconds, log, read_result, vm_hwm_bytes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OURS_PYTHON = os.environ.get("BENCH_PYTHON") or str(REPO / ".venvs" / "airflow-3.3.2" / "bin" / "python")
SDK_PYTHON = os.environ.get("BENCH_SDK_PYTHON") or str(REPO / ".venvs" / "bench-sdk" / "bin" / "python")
DATA_VERSION = "1"  # bump when the generator changes, so that cached files are made anew


# ------------------------------------------------------------------------------------------------- data
def default_data_dir() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR") or Path(tempfile.gettempdir()) / "anaplan-bench-data")


def _row_tails(rng: random.Random, count: int) -> list[str]:
    """Distinct row bodies (everything after the id and the date) with realistic variety."""
    regions = {
        "EMEA": ["Germany", "France", "United Kingdom", "Spain", "Italy", "Netherlands", "Sweden", "Poland"],
        "NA": ["United States", "Canada", "Mexico"],
        "APAC": ["Japan", "Australia", "Singapore", "India", "South Korea"],
        "LATAM": ["Brazil", "Argentina", "Chile", "Colombia"],
    }
    currencies = {"EMEA": "EUR", "NA": "USD", "APAC": "JPY", "LATAM": "BRL"}
    families = ["Laptop", "Monitor", "Dock", "Headset", "Keyboard", "Mouse", "Tablet", "Phone", "Router", "Camera"]
    tiers = ["Basic", "Standard", "Pro", "Ultra", "Max"]
    channels = ["Direct", "Partner", "Online", "Retail", "Distributor"]
    syllables = ["an", "ber", "cor", "dal", "eno", "fir", "gal", "hur", "ist", "jon", "kel", "lum", "mar", "nor"]
    notes = [
        "",
        "",
        "",
        "",
        "promo Q4",
        '"bundle, incl. warranty"',
        "backorder",
        '"price match, approved by RM"',
        "returned 1 unit",
    ]
    tails = []
    for _ in range(count):
        region = rng.choice(list(regions))
        country = rng.choice(regions[region])
        family = rng.choice(families)
        product = f"{family[:3].upper()}-{rng.randrange(1000, 9999)}"
        name = f"{family} {rng.choice(tiers)} {rng.randrange(1, 20)}"
        customer = "".join(rng.choice(syllables) for _ in range(rng.randrange(2, 4))).title()
        customer += rng.choice([" GmbH", " Ltd", " Inc", " SA", " BV", " KK", " Pty", ""])
        units = rng.randrange(1, 500)
        price = round(rng.uniform(5, 2500), 2)
        discount = rng.choice([0, 0, 0, 0.05, 0.1, 0.15, 0.2])
        amount = round(units * price * (1 - discount), 2)
        tails.append(
            f"{region},{country},{product},{name},{customer},{rng.choice(channels)},{currencies[region]},"
            f"{units},{price:.2f},{discount:.2f},{amount:.2f},{rng.choice(notes)}"
        )
    return tails


HEADER = "Transaction ID,Date,Region,Country,Product Code,Product Name,Customer,Channel,Currency,Units,Unit Price,"
HEADER += "Discount,Amount,Notes\n"


def generate_csv(path: Path, size: int, seed: int = 20240601) -> None:
    """Write a deterministic sales-transactions CSV of about ``size`` bytes (cut at a line end) to ``path``."""
    rng = random.Random(seed)  # noqa: S311 - test data
    tails = _row_tails(rng, 200_003)  # a prime count: rows cycle through the tails with a stride
    dates = [time.strftime("%Y-%m-%d", time.gmtime(1_672_531_200 + day * 86_400)) for day in range(3650)]
    partial = path.with_name(path.name + ".part")
    written = 0
    row = 0
    batch = 50_000
    with open(partial, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        written += len(HEADER)
        while written < size:
            lines = [
                f"TX{n:010d},{dates[(n // 3000) % 3650]},{tails[(n * 7919) % 200_003]}\n"
                for n in range(row, row + batch)
            ]
            row += batch
            text = "".join(lines)
            last = written + len(text) >= size
            if last:
                cut = text.rfind("\n", 0, size - written) + 1
                text = text[:cut] if cut else text[: text.index("\n") + 1]
            out.write(text)
            written += len(text)  # ASCII only
            if last:
                break
    partial.replace(path)


def ensure_csv(data_dir: Path, label: str, size: int) -> Path:
    """The cached CSV of ``size`` bytes, generated first when missing or made by another generator version."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"sales-{label}-v{DATA_VERSION}.csv"
    if not path.exists() or abs(path.stat().st_size - size) > 4096:
        log(f"generating {path} ({size / 1e6:,.0f} MB)...")
        started = time.perf_counter()
        generate_csv(path, size)
        log(f"  done in {time.perf_counter() - started:.1f} s")
    return path


# ------------------------------------------------------------------------------------------------- emulator
class Emulator:
    """The emulator in its own process (``python -m airflow_provider_anaplan.emulator --port 0 ...``)."""

    def __init__(self, *extra_args: str, python: str = OURS_PYTHON) -> None:
        self.args = [python, "-m", "airflow_provider_anaplan.emulator", "--port", "0", *extra_args]
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Emulator:
        log("starting the emulator: " + " ".join(self.args[1:]))
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=sys.stderr, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.match(r"Anaplan emulator listening on (\S+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = match.group(1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss(self) -> int:
        return vm_hwm_bytes(self.pid)

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our local emulator
            f"{self.url}/__emulator/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"{}")

    def set_latency(self, seconds: float) -> None:
        self._admin("PUT", "faults", {"latency": seconds})

    def counters(self) -> dict[str, Any]:
        return self._admin("GET", "counters")["counters"]

    def login_token(self) -> str:
        """A token from the emulator's auth service (for the static-token runs)."""
        import base64

        credentials = base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - our local emulator
            f"{self.url}/token/authenticate", method="POST", headers={"Authorization": f"Basic {credentials}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())["tokenInfo"]["tokenValue"]


# ------------------------------------------------------------------------------------------------- children
def run_child(python: str, script: str, args: Sequence[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` in a fresh interpreter and return the result it printed."""
    command = [python, str(HERE / script), *args]
    completed = subprocess.run(  # noqa: S603 - our own scripts
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[1:])} failed with exit code {completed.returncode}:\n{completed.stderr[-3000:]}"
        )
    return read_result(completed.stdout)


# ------------------------------------------------------------------------------------------------- tables
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)
