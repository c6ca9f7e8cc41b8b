"""Start the Anaplan emulator, list what it serves (workspaces, models and their actions), stop it.

Run by ``./scripts/demo`` with the Airflow 3.3.2 venv's Python. Exits non-zero on any failure.

    python scripts/demo_walkthrough.py                   # start and stop a private emulator
    python scripts/demo_walkthrough.py --url http://...  # use an emulator that is already running

It speaks to the emulator through the provider's own async client, ``AnaplanClient`` (basic auth).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from airflow_provider_anaplan.client import AnaplanClient, AnaplanError, BasicAuth

DEFAULT_EMAIL = "demo@anaplan.example"
DEFAULT_PASSWORD = "emulator-password"  # noqa: S105 - the emulator's documented demo credential
READY_LINE = re.compile(r"Anaplan emulator listening on (http://\S+)")
MODEL_OBJECTS = ("imports", "exports", "processes", "actions", "files")


class DemoError(Exception):
    """A failure worth one clear line on stderr."""


@contextmanager
def running_emulator(startup_timeout: float, command: Sequence[str] | None = None) -> Iterator[str]:
    """Start ``python -m airflow_provider_anaplan.emulator --port 0`` (or ``command``, which must print the same ready
    line) and yield its base URL; always stop it."""
    command = list(command or [sys.executable, "-m", "airflow_provider_anaplan.emulator", "--port", "0"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(  # noqa: S603 - our own module, run with our own interpreter
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    recent: collections.deque[str] = collections.deque(maxlen=40)  # the emulator's output, shown on failure
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        # Keep reading for the emulator's whole life, so a chatty server never blocks on a full pipe.
        assert proc.stdout is not None
        for line in proc.stdout:
            recent.append(line.rstrip("\n"))
            match = READY_LINE.search(line)
            if match and not ready.is_set():
                found.append(match.group(1))
                ready.set()
        ready.set()  # end of output: the process is gone

    reader = threading.Thread(target=pump, name="emulator-output", daemon=True)
    reader.start()
    try:
        if not ready.wait(startup_timeout):
            state = f"not ready after {startup_timeout:g}s"
        elif not found:  # its output ended without the ready line: it is exiting
            try:
                state = f"exited with code {proc.wait(timeout=5)}"
            except subprocess.TimeoutExpired:
                state = "closed its output without saying it was ready"
        if not found:
            raise DemoError(f"emulator {state}; its output:\n" + "\n".join(f"  | {line}" for line in recent))
        print(f"Started the emulator (pid {proc.pid}): python {' '.join(command[1:])}")
        try:
            yield found[0]
        except Exception:
            print("emulator output (last lines):", *(f"  | {line}" for line in recent), sep="\n", file=sys.stderr)
            raise
    finally:
        stop(proc)
        reader.join(timeout=5)
        print(f"Stopped the emulator (exit code {proc.returncode}).")


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it is still alive after 10 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


async def walkthrough_async(base_url: str, email: str, password: str) -> None:
    """Log in with basic auth, then print every workspace, model and model object."""
    async with AnaplanClient(BasicAuth(email, password), base_url=base_url, timeout=10.0) as client:
        await client.get_current_user()  # the first call logs in
        print(f"Logged in to {base_url} as {email}.")

        workspaces = await client.list_workspaces()
        print(f"\n{len(workspaces)} workspace(s):")
        for workspace in workspaces:
            print(f"- workspace {workspace.name!r} ({workspace.id})")
            models = await client.list_models(workspace.id)
            for model in models:
                print(f"  - model {model.name!r} ({model.id}), {model.active_state or '?'}")
                for kind in MODEL_OBJECTS:
                    items = await getattr(client, f"list_{kind}")(model.id, workspace.id)
                    names = ", ".join(repr(item.name) for item in items) or "-"
                    print(f"      {kind:<9} ({len(items)}): {names}")
            if not models:
                print("  (no models)")


def walkthrough(base_url: str, email: str, password: str) -> None:
    """Run the walk-through to completion on a fresh event loop."""
    asyncio.run(walkthrough_async(base_url, email, password))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="base URL of a running emulator (default: start one on a free port)")
    parser.add_argument("--email", default=DEFAULT_EMAIL)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="seconds to wait for the emulator")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.url:
            walkthrough(args.url.rstrip("/"), args.email, args.password)
        else:
            with running_emulator(args.startup_timeout) as url:
                walkthrough(url, args.email, args.password)
    except (DemoError, AnaplanError, KeyError, ValueError) as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.1f}s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
