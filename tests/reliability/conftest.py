"""Fixtures of the reliability suites: the emulator over real HTTP (one or several servers, restartable on the same
port), clocks and sleeps the client and the emulator share, and the session-wide collector of fault results.

Every fault scenario calls ``record_fault(...)``; at the end of the session the collected rows are printed as a
Markdown table (the terminal summary) and written as JSON to ``<pytest basetemp>/reliability/fault-results.json``, or
to the path in ``$ANAPLAN_RELIABILITY_RESULTS`` when it is set. ``docs/reliability.md`` carries a copy of the table.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from airflow_provider_anaplan.client import token_cache
from airflow_provider_anaplan.emulator import EmulatorApp
from airflow_provider_anaplan.hooks.anaplan import forget_shared_clients
from tests.emulator.conftest import FakeClock

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"  # FP&A Production
MODEL = "75A40874E6B64FA3AE0743278996850F"  # Sales Forecast
SALES_FILE = "113000000001"  # Sales Actuals.csv, the source of the Sales import
EMPLOYEES_FILE = "113000000000"
EMPLOYEES_IMPORT, SALES_IMPORT, PRODUCTS_IMPORT = "112000000000", "112000000001", "112000000002"
SALES_EXPORT = "116000000000"
NIGHTLY_LOAD = "118000000000"

FAULT_COUNTERS = ("faults.reset", "faults.drop", "faults.rate_limit", "faults.server_error")


# --------------------------------------------------------------------------------------------------- process state
@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Every test starts and ends without cached tokens, rotation chains or shared hook clients (never logged out)."""
    token_cache.clear()
    forget_shared_clients()
    yield
    token_cache.clear()
    forget_shared_clients()


# --------------------------------------------------------------------------------------------------- clocks and sleeps
class TickingSleep:
    """The client's ``sleep``: records every wait and moves the given fake clocks by it instead of waiting.

    The emulator's tasks advance on its clock, so a poll wait of 5 s moves a task 5 s along at no cost. ``hooks`` run
    after each wait (a test uses them to change the world while the client is waiting).
    """

    def __init__(self, *clocks: FakeClock) -> None:
        self.clocks = clocks
        self.delays: list[float] = []
        self.hooks: list[Callable[[], Any]] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        for clock in self.clocks:
            clock.advance(seconds)
        for hook in self.hooks:
            result = hook()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0)

    @property
    def total(self) -> float:
        return sum(self.delays)


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock starting at the real time (certificate v2 timestamps must be near the real time)."""
    return FakeClock(start=float(int(time.time())))


@pytest.fixture
def ticking(clock: FakeClock) -> TickingSleep:
    return TickingSleep(clock)


# --------------------------------------------------------------------------------------------------- live servers
class Server:
    """An emulator app served by uvicorn on 127.0.0.1 in a background thread; ``port=0`` takes a free port, and a
    given port lets a second app take the place of a stopped one (an emulator restart)."""

    def __init__(self, app: Any, port: int = 0, **config: Any) -> None:
        self.app = app
        config.setdefault("lifespan", "on")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
        self.thread = threading.Thread(target=self.server.run, name="reliability-uvicorn", daemon=True)
        self.port = port
        self.scheme = "https" if config.get("ssl_certfile") else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout=10)


ServerFactory = Callable[..., Server]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    """``serve(app, port=0, **uvicorn_config)``: start an emulator on loopback; every server is stopped afterwards."""
    started: list[Server] = []

    def start(app: EmulatorApp, port: int = 0, **config: Any) -> Server:
        server = Server(app, port, **config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Switchboard:
    """An ASGI app that passes every request to the emulator app plugged in at the moment: one uvicorn server serves
    the whole session, each test plugs in a fresh emulator (starting and stopping uvicorn per test costs 0.2 s)."""

    def __init__(self) -> None:
        self.app: EmulatorApp | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.app is None:
            raise RuntimeError("no emulator is plugged into the switchboard")
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def _switchboard() -> Iterator[tuple[Switchboard, Server]]:
    board = Switchboard()
    server = Server(board, lifespan="off").start()
    yield board, server
    server.stop()


@pytest.fixture
def plug(_switchboard: tuple[Switchboard, Server]) -> Iterator[Callable[[EmulatorApp], Server]]:
    """``plug(app)``: serve this emulator app over real HTTP on the session's uvicorn server; returns the server."""
    board, server = _switchboard

    def plug_in(app: EmulatorApp) -> Server:
        board.app = app
        return server

    yield plug_in
    board.app = None


# --------------------------------------------------------------------------------------------------- fault results
@dataclass
class FaultResult:
    """One row of the fault table in docs/reliability.md."""

    scenario: str
    faults: dict[str, int]
    operations: str
    bytes_lost: int
    duplicate_runs: int
    outcome: str
    test: str = ""
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def faults_text(self) -> str:
        shown = [f"{name}: {count}" for name, count in self.faults.items() if count]
        return ", ".join(shown) if shown else "0"


RESULTS: list[FaultResult] = []
SCANS: list[str] = []  # one line per secret scan of test_secrets.py: what was searched, and the hits (0)


def injected_faults(counters: dict[str, int], **extra: int) -> dict[str, int]:
    """The faults the emulator injected, by kind (from its ``faults.*`` counters), plus any the test caused itself."""
    names = {
        "faults.reset": "connection resets",
        "faults.drop": "dropped responses",
        "faults.rate_limit": "429 answers",
        "faults.server_error": "5xx answers",
    }
    out = {label: counters.get(name, 0) for name, label in names.items()}
    out.update(extra)
    return out


RecordFault = Callable[..., FaultResult]


@pytest.fixture
def record_fault(request: pytest.FixtureRequest) -> RecordFault:
    """``record_fault(scenario, faults=..., operations=..., bytes_lost=..., duplicate_runs=..., outcome=...)``."""

    def record(
        scenario: str,
        *,
        faults: dict[str, int],
        operations: str,
        bytes_lost: int,
        duplicate_runs: int,
        outcome: str,
        counters: dict[str, int] | None = None,
    ) -> FaultResult:
        row = FaultResult(
            scenario,
            faults,
            operations,
            bytes_lost,
            duplicate_runs,
            outcome,
            test=request.node.nodeid,
            counters=dict(sorted((counters or {}).items())),
        )
        RESULTS.append(row)
        return row

    return record


def results_table(rows: list[FaultResult]) -> str:
    """The fault results as the Markdown table of docs/reliability.md."""
    lines = [
        "| scenario | faults injected | operations completed | data lost (bytes) | duplicate runs | outcome |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row.scenario, row.faults_text, row.operations, str(row.bytes_lost), str(row.duplicate_runs)]
        lines.append("| " + " | ".join([*cells, row.outcome]) + " |")
    return "\n".join(lines)


def _results_path(config: pytest.Config) -> Path | None:
    explicit = os.environ.get("ANAPLAN_RELIABILITY_RESULTS")
    if explicit:
        return Path(explicit)
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    return factory.getbasetemp() / "reliability" / "fault-results.json"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if SCANS:
        terminalreporter.section("Anaplan reliability: secret scans (hits)")
        for line in SCANS:
            terminalreporter.write_line(line)
    if not RESULTS:
        return
    rows = list(RESULTS)  # in the order the tests ran (the file's order)
    path = _results_path(config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    terminalreporter.section("Anaplan reliability: fault results")
    terminalreporter.write_line(results_table(rows))
    if path is not None:
        terminalreporter.write_line(f"(written to {path})")


# --------------------------------------------------------------------------------------------------- credentials
CERT_EMAIL = "reliability.cert.user@anaplan.example"


@dataclass(frozen=True)
class CertificateKit:
    """A certificate for ``CERT_EMAIL`` with its RSA key in several PEM forms, and certificates and keys that are wrong
    in one way each (for the bad-input corpus). The key password is random per session."""

    cert_pem: str
    key_pem: str  # PKCS#8, unencrypted
    traditional_key_pem: str  # "BEGIN RSA PRIVATE KEY", unencrypted
    encrypted_key_pem: str  # PKCS#8, encrypted with key_password
    legacy_encrypted_key_pem: str  # traditional OpenSSL, Proc-Type/DEK-Info headers, key_password
    key_password: str
    other_rsa_key_pem: str  # an RSA key that does not match the certificate
    ec_key_pem: str
    ec_cert_pem: str  # a certificate of the EC key
    expired_cert_pem: str
    future_cert_pem: str  # not valid yet

    def key_body_lines(self) -> list[str]:
        """The base64 lines of every PEM form of the private key (what a leak of the key would contain)."""
        lines: list[str] = []
        for pem in (self.key_pem, self.traditional_key_pem, self.encrypted_key_pem, self.legacy_encrypted_key_pem):
            lines += [line for line in pem.splitlines() if line and not line.startswith("-----") and ":" not in line]
        return lines


def _certificate(key: Any, email: str, not_before: Any, not_after: Any) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def certificate_kit() -> CertificateKit:
    import datetime as dt
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    password = "kp-" + secrets.token_hex(16)

    def pem(k: Any, fmt: Any, encryption: Any = None) -> str:
        return k.private_bytes(serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()).decode()

    crypt = serialization.BestAvailableEncryption(password.encode())
    return CertificateKit(
        cert_pem=_certificate(key, CERT_EMAIL, now - day, now + 30 * day),
        key_pem=pem(key, serialization.PrivateFormat.PKCS8),
        traditional_key_pem=pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
        encrypted_key_pem=pem(key, serialization.PrivateFormat.PKCS8, crypt),
        legacy_encrypted_key_pem=pem(key, serialization.PrivateFormat.TraditionalOpenSSL, crypt),
        key_password=password,
        other_rsa_key_pem=pem(other, serialization.PrivateFormat.PKCS8),
        ec_key_pem=pem(ec_key, serialization.PrivateFormat.PKCS8),
        ec_cert_pem=_certificate(ec_key, CERT_EMAIL, now - day, now + 30 * day),
        expired_cert_pem=_certificate(key, CERT_EMAIL, now - 60 * day, now - 30 * day),
        future_cert_pem=_certificate(key, CERT_EMAIL, now + 30 * day, now + 60 * day),
    )


def one_line(pem: str) -> str:
    """A PEM as a one-line connection form field leaves it: newlines turned into spaces."""
    return " ".join(pem.split("\n")).strip()


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``set_connection(conn_id, login=..., password=..., **extra)``: an ``anaplan`` connection as a JSON env var."""

    def set_(conn_id: str, login: str | None = None, password: str | None = None, **extra: Any) -> str:
        value = {"conn_type": "anaplan", "login": login, "password": password, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        return conn_id

    return set_
