"""Start the Anaplan emulator, list what it serves (workspaces, models and their actions), stop it.

Run by ``./scripts/demo`` with the Airflow 3.3.2 venv's Python. Exits non-zero on any failure.

    python scripts/demo_walkthrough.py                   # start and stop a private emulator
    python scripts/demo_walkthrough.py --url http://...  # use an emulator that is already running

It speaks the Anaplan wire protocol with plain httpx (basic auth, then ``AnaplanAuthToken``).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

DEFAULT_EMAIL = "demo@anaplan.example"
DEFAULT_PASSWORD = "emulator-password"  # noqa: S105 - the emulator's documented demo credential
READY_LINE = re.compile(r"Anaplan emulator listening on (http://\S+)")
MODEL_OBJECTS = ("imports", "exports", "processes", "actions", "files")


class DemoError(Exception):
    """A failure worth one clear line on stderr."""


@contextmanager
def running_emulator(startup_timeout: float) -> Iterator[str]:
    """Start ``python -m airflow_provider_anaplan.emulator --port 0`` and yield its base URL; always stop it."""
    command = [sys.executable, "-m", "airflow_provider_anaplan.emulator", "--port", "0"]
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


def get_json(client: httpx.Client, path: str) -> dict:
    response = client.get(path)
    if response.status_code != 200:
        raise DemoError(f"GET {path} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def walkthrough(base_url: str, email: str, password: str) -> None:
    """Log in with basic auth, then print every workspace, model and model object."""
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        response = client.post("/token/authenticate", auth=(email, password))
        if response.status_code != 201:
            raise DemoError(f"POST /token/authenticate answered {response.status_code}: {response.text[:500]}")
        token = response.json()["tokenInfo"]["tokenValue"]
        client.headers["Authorization"] = f"AnaplanAuthToken {token}"
        print(f"Logged in to {base_url} as {email}.")

        workspaces = get_json(client, "/2/0/workspaces").get("workspaces", [])
        print(f"\n{len(workspaces)} workspace(s):")
        for workspace in workspaces:
            wid = workspace["id"]
            print(f"- workspace {workspace.get('name', '?')!r} ({wid})")
            models = get_json(client, f"/2/0/workspaces/{wid}/models").get("models", [])
            for model in models:
                mid = model["id"]
                print(f"  - model {model.get('name', '?')!r} ({mid}), {model.get('activeState', '?')}")
                for kind in MODEL_OBJECTS:
                    items = get_json(client, f"/2/0/workspaces/{wid}/models/{mid}/{kind}").get(kind, [])
                    names = ", ".join(repr(item.get("name", item.get("id"))) for item in items) or "-"
                    print(f"      {kind:<9} ({len(items)}): {names}")
            if not models:
                print("  (no models)")


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
    except (DemoError, httpx.HTTPError, KeyError, ValueError) as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.1f}s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
