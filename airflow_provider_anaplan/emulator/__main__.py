"""Run the Anaplan emulator: ``python -m airflow_provider_anaplan.emulator [--port 0] [--user EMAIL:PASSWORD] ...``.

Prints exactly one line, ``Anaplan emulator listening on http://HOST:PORT`` (the port really bound), once it accepts
connections, and stops cleanly (exit code 0) on SIGTERM or SIGINT. A bad argument prints one line on stderr and exits
with code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from .app import create_app
from .engine import MB, EngineOptions, engine_for
from .faults import DEFAULT_5XX_STATUSES, DEFAULT_RETRY_AFTER, FaultInjector, validate_settings
from .state import DEFAULT_TOKEN_TTL, DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorState, default_seed

PROG = "python -m airflow_provider_anaplan.emulator"
READY_MESSAGE = "Anaplan emulator listening on {url}"
EXIT_USAGE = 2
EXIT_CANNOT_LISTEN = 1


class UsageError(Exception):
    """A bad argument: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A local, in-memory Anaplan API emulator (auth service, OAuth, Integration API) with faults.",
        epilog=f"Default user: {DEFAULT_USER_EMAIL} / {DEFAULT_USER_PASSWORD}. Admin endpoint: /__emulator/...",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 takes a free one (default: 8765)")
    parser.add_argument("--seed", metavar="FILE", type=Path, help="seed JSON document (default: the bundled seed)")
    parser.add_argument(
        "--user",
        metavar="EMAIL:PASSWORD",
        action="append",
        default=[],
        help="add a user, or set a seeded user's password (repeatable)",
    )
    parser.add_argument(
        "--trust-cert",
        metavar="PEM_FILE",
        type=Path,
        action="append",
        default=[],
        help="trust this certificate (or CA) for CACertificate logins (repeatable)",
    )
    parser.add_argument(
        "--token-ttl",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TOKEN_TTL,
        help=f"lifetime of issued tokens (default: {DEFAULT_TOKEN_TTL:g})",
    )
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    faults = parser.add_argument_group("faults (all off by default; change them at run time via /__emulator/faults)")
    faults.add_argument("--latency", metavar="SECONDS", type=float, default=0.0, help="delay before every request")
    faults.add_argument("--jitter", metavar="SECONDS", type=float, default=0.0, help="latency +/- up to this much")
    faults.add_argument("--rate-429", metavar="RATE", type=float, default=0.0, help="share of requests answered 429")
    faults.add_argument(
        "--retry-after", metavar="SECONDS", type=int, default=DEFAULT_RETRY_AFTER, help="Retry-After of 429 answers"
    )
    faults.add_argument("--rate-5xx", metavar="RATE", type=float, default=0.0, help="share of requests answered 5xx")
    faults.add_argument(
        "--statuses-5xx",
        metavar="LIST",
        default=",".join(map(str, DEFAULT_5XX_STATUSES)),
        help="comma-separated 5xx statuses to choose from (default: 500,502,503,504)",
    )
    faults.add_argument(
        "--rate-reset", metavar="RATE", type=float, default=0.0, help="share of connections reset before handling"
    )
    faults.add_argument(
        "--rate-drop", metavar="RATE", type=float, default=0.0, help="share of responses dropped after handling"
    )
    faults.add_argument("--fault-seed", metavar="INT", type=int, help="random seed that makes faults repeatable")
    defaults = EngineOptions()
    engine = parser.add_argument_group("task engine (imports, exports, processes, actions and their files)")
    engine.add_argument(
        "--task-duration",
        metavar="SECONDS",
        type=float,
        default=defaults.task_duration,
        help=f"how long one action, or one process step, runs (default: {defaults.task_duration:g})",
    )
    engine.add_argument(
        "--cancel-duration",
        metavar="SECONDS",
        type=float,
        default=defaults.cancel_duration,
        help=f"how long a cancelled task stays CANCELLING (default: {defaults.cancel_duration:g})",
    )
    engine.add_argument(
        "--export-chunk-bytes",
        metavar="BYTES",
        type=int,
        default=defaults.export_chunk_bytes,
        help=f"size of an export's output chunks (default: {defaults.export_chunk_bytes // MB} MiB)",
    )
    engine.add_argument(
        "--dump-chunk-bytes",
        metavar="BYTES",
        type=int,
        default=defaults.dump_chunk_bytes,
        help=f"size of failure dump chunks (default: {defaults.dump_chunk_bytes // MB} MiB)",
    )
    engine.add_argument(
        "--dump-ttl",
        metavar="SECONDS",
        type=float,
        default=defaults.dump_ttl,
        help=f"a failure dump is removed this long after it was last read (default: {defaults.dump_ttl:g}, 48 h)",
    )
    engine.add_argument(
        "--count-only-imports",
        action="store_true",
        help="imports only count the rows of their file and load nothing (for large benchmarks)",
    )
    engine.add_argument(
        "--store-compressed-chunks",
        action="store_true",
        help="keep gzip chunks as uploaded and inflate them only when read (import, download), not on upload, so a "
        "benchmark's timed upload does not include the emulator's inflation; a corrupt chunk is found only then",
    )
    engine.add_argument(
        "--spool-dir",
        metavar="DIR",
        type=Path,
        help="keep file content in a temporary directory under DIR instead of memory (removed at exit)",
    )
    return parser


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


def _parse_user(raw: str) -> tuple[str, str]:
    email, colon, password = raw.partition(":")
    if not colon or not email.strip() or "@" not in email or not password:
        _fail(f"argument --user: expected EMAIL:PASSWORD, got {raw!r}")
    return email.strip(), password


def _statuses(raw: str) -> list[int]:
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        _fail(f"argument --statuses-5xx: expected a comma-separated list of 5xx statuses, got {raw!r}")


def build_state(args: argparse.Namespace) -> EmulatorState:
    """The tenant described by the arguments; raises UsageError on a bad seed, user or certificate."""
    if not args.token_ttl > 0 or args.token_ttl == float("inf"):
        _fail(f"argument --token-ttl: must be a positive number of seconds, got {args.token_ttl:g}")
    if args.seed is None:
        seed: Any = default_seed()
    else:
        try:
            seed = json.loads(args.seed.read_text("utf-8"))
        except OSError as exc:
            _fail(f"argument --seed: cannot read {str(args.seed)!r}: {exc.strerror or exc}")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            _fail(f"argument --seed: {str(args.seed)!r} is not a JSON document: {exc}")
        if not isinstance(seed, dict):
            _fail(f"argument --seed: {str(args.seed)!r} must hold a JSON object")
    try:
        state = EmulatorState.from_seed(seed, token_ttl=args.token_ttl)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        _fail(f"argument --seed: {str(args.seed)!r} is not a valid seed ({type(exc).__name__}: {exc})")
    for raw in args.user:
        email, password = _parse_user(raw)
        existing = state.users.get(email.lower())
        if existing is not None:
            existing.password = password  # keep the seeded user's id, which seed data may refer to
        else:
            state.add_user(email, password)
    for path in args.trust_cert:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            _fail(f"argument --trust-cert: cannot read {str(path)!r}: {exc.strerror or exc}")
        try:
            state.add_trusted_certificate(pem)
        except ValueError:
            _fail(f"argument --trust-cert: {str(path)!r} holds no PEM certificate")
    return state


def build_faults(args: argparse.Namespace) -> FaultInjector:
    knobs = {
        "latency": args.latency,
        "jitter": args.jitter,
        "rate_429": args.rate_429,
        "retry_after": args.retry_after,
        "rate_5xx": args.rate_5xx,
        "statuses_5xx": _statuses(args.statuses_5xx),
        "rate_reset": args.rate_reset,
        "rate_drop": args.rate_drop,
    }
    try:
        validate_settings(knobs)
    except ValueError as exc:
        name, _, reason = str(exc).partition(" ")
        _fail(f"argument --{name.replace('_', '-')}: {reason}")
    return FaultInjector(**knobs, seed=args.fault_seed)


def configure_engine(args: argparse.Namespace, state: EmulatorState) -> Path | None:
    """Apply the task-engine options to ``state``'s engine; returns the spool directory it created, if any."""
    for name in ("task_duration", "cancel_duration", "dump_ttl"):
        value = getattr(args, name)
        if not math.isfinite(value) or value < 0 or (name == "dump_ttl" and value == 0):
            kind = "positive" if name == "dump_ttl" else "non-negative"
            _fail(f"argument --{name.replace('_', '-')}: must be a {kind} number of seconds, got {value:g}")
    for name in ("export_chunk_bytes", "dump_chunk_bytes"):
        if getattr(args, name) < 1:
            _fail(f"argument --{name.replace('_', '-')}: must be at least 1, got {getattr(args, name)}")
    engine = engine_for(state)
    options = engine.options
    options.task_duration = args.task_duration
    options.cancel_duration = args.cancel_duration
    options.export_chunk_bytes = args.export_chunk_bytes
    options.dump_chunk_bytes = args.dump_chunk_bytes
    options.dump_ttl = args.dump_ttl
    options.count_only_imports = args.count_only_imports
    options.store_compressed_chunks = args.store_compressed_chunks
    if args.spool_dir is None:
        return None
    try:
        args.spool_dir.mkdir(parents=True, exist_ok=True)
        spool = Path(tempfile.mkdtemp(prefix="anaplan-emulator-", dir=args.spool_dir))
    except OSError as exc:
        _fail(f"argument --spool-dir: cannot use {str(args.spool_dir)!r}: {exc.strerror or exc}")
    seeded = {
        (model_id, file_id): list(engine.store.iter_chunks(model_id, file_id))
        for model_id, model in state.models.items()
        for file_id in model.files
    }
    engine.use_spool_dir(str(spool))  # a new, empty store: move the seeded file content over
    for (model_id, file_id), chunks in seeded.items():
        if chunks:
            engine.store.replace(model_id, file_id, chunks)
    return spool


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound socket for (host, port) on the first address ``host`` resolves to; OSError when that fails."""
    if not 0 <= port <= 65535:
        _fail(f"argument --port: must be 0..65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        _fail(f"argument --host: cannot resolve {host!r}: {exc.strerror or exc}")
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int) -> str:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"
    return f"http://[{literal}]:{port}" if literal.version == 6 else f"http://{literal}:{port}"


def serve(sock: socket.socket, url: str, state: EmulatorState, faults: FaultInjector, log_level: str) -> int:
    """Serve on the bound ``sock`` until SIGTERM or SIGINT; returns the exit code."""
    import uvicorn  # imported here so that argument errors stay fast

    class ReadyServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:  # listening now: tell whoever started us
                print(READY_MESSAGE.format(url=url), flush=True)

    config = uvicorn.Config(
        create_app(state=state, faults=faults),
        log_level=log_level,
        access_log=log_level in ("info", "debug"),
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = ReadyServer(config)

    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers in place that re-raise
    # is harmless, so SIGTERM and SIGINT end in a clean exit code 0 instead of death by signal or a KeyboardInterrupt.
    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, build the tenant and serve until SIGTERM or SIGINT; returns the exit code."""
    spool: Path | None = None
    try:
        try:
            args = build_parser().parse_args(argv)
            state = build_state(args)
            faults = build_faults(args)
            spool = configure_engine(args, state)
            try:
                sock = bind_socket(args.host, args.port)
            except OSError as exc:
                message = f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
                print(f"{PROG}: error: {message}", file=sys.stderr)
                return EXIT_CANNOT_LISTEN
        except UsageError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        return serve(sock, url_for(args.host, sock.getsockname()[1]), state, faults, args.log_level)
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
