"""The command line: ``python -m airflow_provider_anaplan.emulator`` as a real process, and its argument errors."""

from __future__ import annotations

import base64
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from airflow_provider_anaplan.emulator.__main__ import build_parser, build_state, configure_engine, main
from airflow_provider_anaplan.emulator.engine import EngineOptions, engine_for

from .conftest import basic_header

READY = re.compile(r"^Anaplan emulator listening on (http://127\.0\.0\.1:(\d+))$")
CERT_EMAIL = "cli.cert@anaplan.example"


class Emulator:
    """A running emulator process and the URL from its ready line."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "airflow_provider_anaplan.emulator", "--port", "0", *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"}
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            self.ready_line = lines.get(timeout=20).rstrip("\n")
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"no ready line; stderr: {self.proc.communicate()[1]}") from None
        match = READY.match(self.ready_line)
        assert match, f"unexpected first line {self.ready_line!r}; stderr: {self.stop(signal.SIGKILL)[1]}"
        self.url = match.group(1)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[str, str]:
        """Signal the process and return the rest of its (stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()


@pytest.fixture
def emulators() -> Iterator[list[Emulator]]:
    """Emulators a test starts; any still running afterwards are killed."""
    started: list[Emulator] = []
    yield started
    for emulator in started:
        if emulator.proc.poll() is None:
            emulator.stop(signal.SIGKILL)


def self_signed(tmp_path: Path) -> tuple[Path, x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "CLI test"), x509.NameAttribute(NameOID.EMAIL_ADDRESS, CERT_EMAIL)]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "trusted.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def certificate_login(client: httpx.Client, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> httpx.Response:
    pem = cert.public_bytes(serialization.Encoding.PEM)
    data = os.urandom(150)
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    return client.post(
        "/token/authenticate",
        headers={"Authorization": f"CACertificate {base64.b64encode(pem).decode()}"},
        json={
            "encodedData": base64.b64encode(data).decode(),
            "encodedSignedData": base64.b64encode(signature).decode(),
        },
    )


@pytest.mark.slow
def test_cli_serves_users_certificates_and_token_ttl(tmp_path: Path, emulators: list[Emulator]) -> None:
    cert_path, cert, key = self_signed(tmp_path)
    emulator = Emulator(
        "--user", "extra@anaplan.example:s3cret:with-colon",
        "--user", f"{CERT_EMAIL}:unused-password",
        "--trust-cert", str(cert_path),
        "--token-ttl", "120",
        "--rate-5xx", "0", "--fault-seed", "1",
    )  # fmt: skip
    emulators.append(emulator)
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        default = client.post("/token/authenticate", headers=basic_header())
        assert default.status_code == 201, default.text
        lifetime = default.json()["tokenInfo"]["expiresAt"] / 1000 - time.time()
        assert 100 < lifetime <= 121

        extra = client.post("/token/authenticate", headers=basic_header("extra@anaplan.example", "s3cret:with-colon"))
        assert extra.status_code == 201, extra.text
        assert (
            client.post("/token/authenticate", headers=basic_header("extra@anaplan.example", "wrong")).status_code
            == 401
        )

        assert certificate_login(client, cert, key).status_code == 201

        faults = client.get("/__emulator/faults").json()
        assert faults["seed"] == 1 and faults["rate_5xx"] == 0
        assert client.get("/__emulator/token-ttl").json() == {"token_ttl": 120.0}

    stdout, stderr = emulator.stop(signal.SIGTERM)
    assert emulator.proc.returncode == 0, stderr
    assert stdout == ""  # the ready line was the only line
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_cli_stops_cleanly_on_sigint(emulators: list[Emulator]) -> None:
    emulator = Emulator()
    emulators.append(emulator)
    assert httpx.get(f"{emulator.url}/__emulator/health").json() == {"status": "ok"}
    _, stderr = emulator.stop(signal.SIGINT)
    assert emulator.proc.returncode == 0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


@pytest.mark.slow
def test_cli_bad_argument_is_one_line_and_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_anaplan.emulator", "--user", "no-colon-here"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    prefix = "python -m airflow_provider_anaplan.emulator: error: "
    assert result.stderr.splitlines() == [f"{prefix}argument --user: expected EMAIL:PASSWORD, got 'no-colon-here'"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: ["--seed", str(d / "missing.json")], "argument --seed: cannot read"),
        (lambda d: ["--seed", str(write(d / "bad.json", "{oops"))], "is not a JSON document"),
        (lambda d: ["--seed", str(write(d / "list.json", "[]"))], "must hold a JSON object"),
        (lambda d: ["--seed", str(write(d / "partial.json", '{"users": [{}]}'))], "is not a valid seed"),
        (lambda d: ["--user", ":password"], "expected EMAIL:PASSWORD"),
        (lambda d: ["--user", "someone@anaplan.example:"], "expected EMAIL:PASSWORD"),
        (lambda d: ["--trust-cert", str(d / "missing.pem")], "argument --trust-cert: cannot read"),
        (lambda d: ["--trust-cert", str(write(d / "junk.pem", "not a cert"))], "holds no PEM certificate"),
        (lambda d: ["--token-ttl", "0"], "argument --token-ttl: must be a positive number"),
        (lambda d: ["--rate-429", "1.5"], "argument --rate-429: must be between 0 and 1"),
        (lambda d: ["--statuses-5xx", "500,404"], "argument --statuses-5xx: must be an HTTP status from 500 to 599"),
        (lambda d: ["--latency", "-1"], "argument --latency: must be >= 0"),
        (lambda d: ["--port", "70000"], "argument --port: must be 0..65535"),
        (lambda d: ["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (lambda d: ["--task-duration", "-1"], "argument --task-duration: must be a non-negative number"),
        (lambda d: ["--task-duration", "soon"], "argument --task-duration: invalid float value: 'soon'"),
        (lambda d: ["--cancel-duration", "nan"], "argument --cancel-duration: must be a non-negative number"),
        (lambda d: ["--dump-ttl", "0"], "argument --dump-ttl: must be a positive number"),
        (lambda d: ["--export-chunk-bytes", "0"], "argument --export-chunk-bytes: must be at least 1"),
        (lambda d: ["--spool-dir", str(write(d / "a-file", ""))], "argument --spool-dir: cannot use"),
    ],
)
def test_cli_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args, message: str) -> None:
    assert main(make_args(tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m airflow_provider_anaplan.emulator: error: ")
    assert message in lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def test_cli_engine_options(tmp_path: Path) -> None:
    spool_dir = str(tmp_path / "s")
    argv = [
        "--task-duration", "0", "--cancel-duration", "2.5", "--dump-ttl", "60",
        "--export-chunk-bytes", "4096", "--dump-chunk-bytes", "512", "--count-only-imports", "--spool-dir", spool_dir,
    ]  # fmt: skip
    args = build_parser().parse_args(argv)
    state = build_state(args)
    spool = configure_engine(args, state)
    engine = engine_for(state)
    assert (engine.options.task_duration, engine.options.cancel_duration, engine.options.dump_ttl) == (0, 2.5, 60)
    assert (engine.options.export_chunk_bytes, engine.options.dump_chunk_bytes) == (4096, 512)
    assert engine.options.count_only_imports is True
    assert spool is not None and spool.parent == tmp_path / "s"
    # the seeded file content moved to the spool directory
    content = b"".join(engine.store.iter_chunks("75A40874E6B64FA3AE0743278996850F", "113000000000"))
    assert content.startswith(b"Code,Name,Parent,Start Date,Salary\n")
    stored = sum(len(engine.store.indexes(m, f)) for m, model in state.models.items() for f in model.files)
    assert stored > 0 and len([p for p in spool.iterdir() if p.suffix == ".chunk"]) == stored


def test_cli_removes_its_spool_directory_on_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--spool-dir", str(tmp_path), "--port", "70000"]) == 2  # fails after the spool was made
    assert "argument --port" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_engine_defaults_are_the_engines() -> None:
    args = build_parser().parse_args([])
    state = build_state(args)
    assert configure_engine(args, state) is None
    assert engine_for(state).options == EngineOptions()
