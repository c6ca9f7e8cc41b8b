"""One-time OAuth set-up for an ``anaplan`` connection: ``python -m airflow_provider_anaplan.oauth device-login``.

The command runs the OAuth device grant (RFC 8628) against Anaplan's OAuth service: it prints the verification URL
and the user code (on stderr), waits while a person approves in a browser, and then either

* ``--print``: writes the refresh token, alone, on stdout (for a secrets manager: ``$(python -m ... --print)``), or
* ``--store-variable NAME``: stores the refresh token in the Airflow Variable ``NAME`` (through the metadata database,
  as the hook stores rotated refresh tokens) and prints, on stdout, the connection to create, in JSON and URI form,
  without the secret: the connection names the Variable in ``oauth_refresh_token_variable``.

Exit codes: 0 approved, 1 any other failure (network, unknown client, Variable not stored), 2 bad arguments,
3 denied (``access_denied``), 4 expired (``expired_token``), 130 interrupted. Failures print one line on stderr. The
refresh token is never logged and reaches stdout only with ``--print``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlencode

from .client.device import (
    DEFAULT_SCOPE,
    DeviceAccessDeniedError,
    DeviceCode,
    DeviceCodeExpiredError,
    DeviceLoginResult,
    device_login,
)
from .client.errors import AnaplanError
from .client.settings import DEFAULT_OAUTH_URL, ClientSettings

PROG = "python -m airflow_provider_anaplan.oauth"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_EXPIRED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_SENSITIVE_HINTS = ("token", "secret", "password")  # Airflow hides Variables whose name contains one of these


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="One-time OAuth set-up for an Anaplan connection.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    login = commands.add_parser(
        "device-login",
        help="obtain a refresh token with the OAuth device grant",
        description="Obtain a refresh token with the OAuth device grant: open the printed URL, approve, done.",
    )
    login.add_argument("--client-id", required=True, help="the id of an OAuth client of type Device Grant")
    login.add_argument(
        "--oauth-url",
        default=DEFAULT_OAUTH_URL,
        help=f"origin of the OAuth service of the tenant's region (default: {DEFAULT_OAUTH_URL})",
    )
    login.add_argument("--scope", default=DEFAULT_SCOPE, help=f"OAuth scopes (default: {DEFAULT_SCOPE!r})")
    login.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default: 30)")
    target = login.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--store-variable",
        metavar="NAME",
        help="store the refresh token in this Airflow Variable and print the connection to create",
    )
    target.add_argument("--print", action="store_true", help="print the refresh token on stdout")
    return parser


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _show_code(code: DeviceCode) -> None:
    _say(f"To authorize, open {code.verification_uri_complete or code.verification_uri}")
    _say(f"and confirm the code {code.user_code} (at {code.verification_uri}; it expires in {code.expires_in:.0f} s).")
    _say("Waiting for approval...")


def connection_snippets(client_id: str, oauth_url: str, variable: str) -> dict[str, str]:
    """The connection (JSON and URI forms of ``AIRFLOW_CONN_…``) that reads the refresh token from ``variable``."""
    extra: dict[str, Any] = {
        "auth_type": "oauth",
        "oauth_client_id": client_id,
        "oauth_refresh_token_variable": variable,
    }
    if oauth_url.rstrip("/") != DEFAULT_OAUTH_URL:
        extra["oauth_url"] = oauth_url.rstrip("/")
    return {
        "json": json.dumps({"conn_type": "anaplan", "extra": extra}),
        "uri": f"anaplan:///?{urlencode(extra)}",
    }


def _store(variable: str, result: DeviceLoginResult) -> None:
    # Airflow is imported only when a Variable is written; its log lines go to stderr, so stdout stays the snippets.
    with contextlib.redirect_stdout(sys.stderr):
        from .hooks.anaplan import VariableRefreshTokenStore

        VariableRefreshTokenStore(variable).save(result.refresh_token)


def device_login_command(args: argparse.Namespace) -> int:
    try:
        settings = ClientSettings(oauth_url=args.oauth_url, timeout=args.timeout)
    except AnaplanError as exc:
        _say(f"{PROG} device-login: error: {exc}")
        return EXIT_USAGE
    variable = (args.store_variable or "").strip()
    if args.store_variable is not None and not variable:
        _say(f"{PROG} device-login: error: --store-variable needs a Variable name")
        return EXIT_USAGE
    try:
        result = asyncio.run(device_login(args.client_id, _show_code, settings=settings, scope=args.scope))
    except DeviceAccessDeniedError as exc:
        _say(f"{PROG} device-login: denied: {exc}")
        return EXIT_DENIED
    except DeviceCodeExpiredError as exc:
        _say(f"{PROG} device-login: expired: {exc}")
        return EXIT_EXPIRED
    except AnaplanError as exc:
        _say(f"{PROG} device-login: error: {exc}")
        return EXIT_ERROR
    if args.print:
        _say("Approved. The refresh token follows on stdout; put it in the connection's oauth_refresh_token.")
        print(result.refresh_token, flush=True)
        return EXIT_OK
    try:
        _store(variable, result)
    except Exception as exc:  # the Airflow metadata DB is not reachable, not migrated, ...
        _say(
            f"{PROG} device-login: error: approved, but the refresh token could not be stored in the Airflow Variable "
            f"{variable!r} ({type(exc).__name__}); run again with a working Airflow configuration, or with --print"
        )
        return EXIT_ERROR
    _say(f"Approved. The refresh token is stored in the Airflow Variable {variable!r}.")
    if not any(hint in variable.lower() for hint in _SENSITIVE_HINTS):
        _say(f"Note: Airflow shows the value of {variable!r} in its UI; a name containing 'token' keeps it hidden.")
    _say("Create the connection (JSON or URI form of AIRFLOW_CONN_ANAPLAN_DEFAULT):")
    snippets = connection_snippets(result.client_id, settings.oauth_url, variable)
    print(snippets["json"], flush=True)
    print(snippets["uri"], flush=True)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return device_login_command(args)
    except KeyboardInterrupt:
        _say(f"{PROG} device-login: interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
