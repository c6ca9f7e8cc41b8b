"""`python -m airflow_provider_anaplan.oauth device-login` as a subprocess against the emulator on a real socket; the
test approves (or denies) through the emulator's admin endpoint while the command waits."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, create_app
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from airflow_provider_anaplan.oauth import connection_snippets
from tests.emulator.conftest import LiveServer
from tests.hooks.conftest import ROTATING_CLIENT, SetConnection
from tests.hooks.test_anaplan_hook import is_masked

ADMIN = "/__emulator/oauth/device"
COMMAND = [sys.executable, "-m", "airflow_provider_anaplan.oauth", "device-login"]


@pytest.fixture
def device_server() -> Iterator[LiveServer]:
    """The emulator on loopback with the real clock and a 1 s polling interval (the test waits for real)."""
    server = LiveServer(create_app(device_interval=1))
    server.start()
    yield server
    server.stop()


@dataclass
class Run:
    process: subprocess.Popen[str]
    stderr_lines: queue.Queue[str | None]
    pump: threading.Thread
    seen: list[str]

    def wait_for_code(self, timeout: float = 60.0) -> str:
        while True:
            line = self.stderr_lines.get(timeout=timeout)
            assert line is not None, "".join(self.seen)
            self.seen.append(line)
            found = re.search(r"confirm the code ([A-Z]{4}-[A-Z]{4})", line)
            if found:
                return found.group(1)

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        code = self.process.wait(timeout=timeout)
        self.pump.join(timeout)
        while (line := self.stderr_lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        self.close()
        return code, stdout, "".join(self.seen)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def start() -> Iterator[Callable[..., Run]]:
    """Start the command with these arguments; every process is ended and its pipes closed after the test."""
    runs: list[Run] = []

    def start_(*args: str) -> Run:
        process = subprocess.Popen(
            [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1, env=_env()
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.put(line)
            lines.put(None)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        runs.append(Run(process, lines, thread, []))
        return runs[-1]

    yield start_
    for run in runs:
        run.close()


def _env() -> dict[str, str]:
    """The test's environment, with this process's Fernet key: an `airflow` CLI run by another test may have written
    an airflow.cfg with a key of its own into the shared AIRFLOW_HOME, which this process never read."""
    from airflow.configuration import conf

    return {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key", fallback="") or ""}


def admin(server: LiveServer, action: str, **body: Any) -> httpx.Response:
    response = httpx.post(f"{server.url}{ADMIN}/{action}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.slow
def test_print_writes_only_the_refresh_token_on_stdout(device_server: LiveServer, start: Callable[..., Run]) -> None:
    run = start("--client-id", ROTATING_CLIENT, "--oauth-url", device_server.url, "--print")
    user_code = run.wait_for_code()
    admin(device_server, "approve", user_code=user_code, email=DEFAULT_USER_EMAIL)
    code, stdout, stderr = run.finish()
    assert code == 0, stderr
    refresh_token = stdout.strip()
    assert refresh_token and "\n" not in refresh_token and refresh_token not in stderr
    assert f"{device_server.url}{ADMIN}?user_code={user_code}" in stderr
    grant = {"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": refresh_token}
    assert httpx.post(f"{device_server.url}/oauth/token", json=grant).status_code == 200  # a working refresh token


@pytest.mark.slow
def test_store_variable_then_the_printed_connection_works(
    airflow_db: Any, device_server: LiveServer, set_connection: SetConnection, start: Callable[..., Run]
) -> None:
    from airflow.models.variable import Variable

    variable = f"anaplan_device_token_{uuid.uuid4().hex[:8]}"
    run = start("--client-id", ROTATING_CLIENT, "--oauth-url", device_server.url, "--store-variable", variable)
    admin(device_server, "approve", user_code=run.wait_for_code())
    code, stdout, stderr = run.finish()
    assert code == 0, stderr
    stored = Variable.get(variable)
    assert stored and stored not in stdout + stderr
    json_form, uri_form = stdout.strip().splitlines()[-2:]
    assert stdout.strip().splitlines() == [json_form, uri_form], stdout
    assert json_form == connection_snippets(ROTATING_CLIENT, device_server.url, variable)["json"]
    extra = json.loads(json_form)["extra"]
    assert extra == {
        "auth_type": "oauth",
        "oauth_client_id": ROTATING_CLIENT,
        "oauth_refresh_token_variable": variable,
        "oauth_url": device_server.url,
    }
    assert uri_form.startswith("anaplan:///?auth_type=oauth&oauth_client_id=")
    # the connection the command printed, as the user would create it (plus the API host of the emulator)
    conn_id = set_connection("anaplan_from_device_login", form="uri", **extra, api_url=device_server.url)
    hook = AnaplanHook(conn_id)
    assert hook.get_current_user().email == DEFAULT_USER_EMAIL
    assert Variable.get(variable) != stored and is_masked(Variable.get(variable))  # rotated and stored again
    Variable.delete(variable)


@pytest.mark.slow
def test_denied_and_expired_exit_codes(device_server: LiveServer, start: Callable[..., Run]) -> None:
    run = start("--client-id", ROTATING_CLIENT, "--oauth-url", device_server.url, "--print")
    admin(device_server, "deny", user_code=run.wait_for_code())
    code, stdout, stderr = run.finish()
    assert code == 3 and stdout == ""
    (line,) = [s for s in stderr.splitlines() if "denied" in s]
    assert line.startswith("python -m airflow_provider_anaplan.oauth device-login: denied: ")
    assert "Traceback" not in stderr

    httpx.put(f"{device_server.url}{ADMIN}/settings", json={"expires_in": 1})
    run = start("--client-id", ROTATING_CLIENT, "--oauth-url", device_server.url, "--print")
    run.wait_for_code()
    code, stdout, stderr = run.finish()
    assert code == 4 and stdout == "" and "device-login: expired: " in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_errors_and_usage(device_server: LiveServer) -> None:
    unknown = subprocess.run(
        [*COMMAND, "--client-id", "0" * 32, "--oauth-url", device_server.url, "--print"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip().count("\n") == 0 and "(invalid_client)" in unknown.stderr
    for args, expected in (
        (["--print"], "the following arguments are required: --client-id"),
        (["--client-id", ROTATING_CLIENT], "one of the arguments --store-variable --print is required"),
        (["--client-id", ROTATING_CLIENT, "--print", "--oauth-url", "https://x.example/path"], "oauth_url must be"),
    ):
        done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
