"""The emulator's in-memory tenant: users, tokens, OAuth clients, workspaces, models and their objects.

Everything the routes serve lives here. Model objects are kept in their wire form (camelCase dicts, as Anaplan sends
them) so that the routes can return them without translation; anything the wire never shows lives in separate fields.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509

DEFAULT_TOKEN_TTL = 2100.0  # seconds: Anaplan tokens live 35 minutes
DEFAULT_REFRESH_TOKEN_TTL = 43_000.0  # seconds: Anaplan's default lifetime of a rotatable OAuth refresh token
DEFAULT_DEVICE_CODE_TTL = 900.0  # seconds a device code waits for approval (Anaplan answers expires_in 900)
DEFAULT_DEVICE_INTERVAL = 5  # seconds between device-grant polls (Anaplan answers interval 5)
DEFAULT_USER_EMAIL = "demo@anaplan.example"
DEFAULT_USER_PASSWORD = "emulator-password"  # noqa: S105 - a documented, public demo credential

Clock = Callable[[], float]


def new_hex_id(upper: bool = False) -> str:
    """A 32-hex-character id as Anaplan uses for users, workspaces, models and tasks."""
    value = uuid.uuid4().hex
    return value.upper() if upper else value


@dataclass
class User:
    id: str
    email: str
    password: str | None
    first_name: str = "Demo"
    last_name: str = "User"
    customer_id: str = field(default_factory=new_hex_id)
    last_login_date: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "active": True,
            "email": self.email,
            "emailOptIn": False,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "customerId": self.customer_id,
        }
        if self.last_login_date:
            out["lastLoginDate"] = self.last_login_date
        return out


@dataclass
class Token:
    """An AnaplanAuthToken (also used for OAuth access tokens, which travel in the same header)."""

    value: str
    token_id: str
    refresh_token_id: str
    user_id: str
    expires_at: float  # epoch seconds
    revoked: bool = False

    def expires_at_ms(self) -> int:
        return int(self.expires_at * 1000)


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str | None = None
    rotatable: bool = True
    refresh_token_ttl: float = DEFAULT_REFRESH_TOKEN_TTL


@dataclass
class RefreshToken:
    value: str
    client_id: str
    user_id: str
    expires_at: float | None  # None: a non-rotatable token, which never expires
    used: bool = False


@dataclass
class DeviceAuthorization:
    """One device-grant request (RFC 8628): pending until approved or denied through the admin endpoint."""

    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float  # epoch seconds
    interval: int  # seconds the client must wait between polls; grows by 5 with each slow_down
    status: str = "pending"  # pending | approved | denied | used (tokens issued)
    user_id: str | None = None
    last_poll: float | None = None


@dataclass
class Model:
    id: str
    name: str
    workspace_id: str
    active_state: str = "UNLOCKED"
    category_values: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # modelDetails=true fields
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)
    import_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    export_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    process_actions: dict[str, list[str]] = field(default_factory=dict)  # process id -> ordered action ids
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    is_open: bool = False  # what GET .../status reports: "Open" or "Closed"


@dataclass
class Workspace:
    id: str
    name: str
    active: bool = True
    size_allowance: int = 1_073_741_824
    current_size: int = 0
    model_ids: list[str] = field(default_factory=list)


class EmulatorState:
    """One emulated Anaplan tenant, seeded from JSON and mutated by the routes."""

    def __init__(
        self,
        *,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        clock: Clock = time.time,
        device_code_ttl: float = DEFAULT_DEVICE_CODE_TTL,
        device_interval: int = DEFAULT_DEVICE_INTERVAL,
    ) -> None:
        self.clock = clock
        self.token_ttl = token_ttl
        self.device_code_ttl = device_code_ttl  # for device codes issued afterwards
        self.device_interval = device_interval  # for device codes issued afterwards
        self.device_authorizations: dict[str, DeviceAuthorization] = {}  # by device code
        self.users: dict[str, User] = {}  # by lower-cased email
        self.tokens: dict[str, Token] = {}  # by token value
        self.trusted_certificates_pem: list[bytes] = []
        self.oauth_clients: dict[str, OAuthClient] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.used_certificate_payloads: dict[str, float] = {}  # v2 payload digest -> forget after (epoch s)
        self.workspaces: dict[str, Workspace] = {}
        self.models: dict[str, Model] = {}
        self.counters: dict[str, int] = {}  # request counters by name, read by tests and benchmarks

    # ----------------------------------------------------------------- counters
    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # ----------------------------------------------------------------- users and tokens
    def add_user(self, email: str, password: str | None, **kwargs: Any) -> User:
        user = User(id=kwargs.pop("id", None) or new_hex_id(), email=email, password=password, **kwargs)
        self.users[email.lower()] = user
        return user

    def add_trusted_certificate(self, pem: bytes | str) -> int:
        """Trust the certificate(s) in ``pem`` for CACertificate logins; returns how many; ValueError if none."""
        raw = pem.encode("ascii") if isinstance(pem, str) else pem
        certificates = x509.load_pem_x509_certificates(raw)  # ValueError when there is no PEM certificate
        self.trusted_certificates_pem.append(raw)
        return len(certificates)

    def user_by_id(self, user_id: str) -> User | None:
        return next((u for u in self.users.values() if u.id == user_id), None)

    def issue_token(self, user: User) -> Token:
        """Create a fresh token for ``user`` that expires after the current TTL."""
        token = Token(
            value=secrets.token_urlsafe(48),
            token_id=str(uuid.uuid4()),
            refresh_token_id=str(uuid.uuid4()),
            user_id=user.id,
            expires_at=self.clock() + self.token_ttl,
        )
        self.tokens[token.value] = token
        return token

    def live_token(self, value: str) -> Token | None:
        """The token with this value if it exists, is not revoked and has not expired."""
        token = self.tokens.get(value)
        if token is None or token.revoked or token.expires_at <= self.clock():
            return None
        return token

    def extend_token(self, token: Token) -> Token:
        """Restart ``token``'s lifetime from now (Anaplan's refresh keeps the value and moves the expiry)."""
        token.expires_at = self.clock() + self.token_ttl
        return token

    def revoke_token(self, token: Token) -> None:
        """Invalidate ``token`` at once (logout)."""
        token.revoked = True

    def issue_refresh_token(self, client: OAuthClient, user_id: str) -> RefreshToken:
        """Create an OAuth refresh token; rotatable clients' tokens expire after the client's refresh-token TTL."""
        expires = self.clock() + client.refresh_token_ttl if client.rotatable else None
        grant = RefreshToken(secrets.token_urlsafe(32), client.client_id, user_id, expires)
        self.refresh_tokens[grant.value] = grant
        return grant

    def live_refresh_token(self, value: str, client_id: str) -> RefreshToken | None:
        """The refresh token with this value if it belongs to ``client_id``, is unused and has not expired."""
        grant = self.refresh_tokens.get(value)
        if grant is None or grant.client_id != client_id or grant.used:
            return None
        if grant.expires_at is not None and grant.expires_at <= self.clock():
            return None
        return grant

    def claim_certificate_payload(self, digest: str, forget_after: float) -> bool:
        """Record a signed v2 certificate payload; False when it was already used (a replay)."""
        now = self.clock()
        for seen, until in list(self.used_certificate_payloads.items()):
            if until < now:
                del self.used_certificate_payloads[seen]
        if digest in self.used_certificate_payloads:
            return False
        self.used_certificate_payloads[digest] = forget_after
        return True

    # ----------------------------------------------------------------- model objects
    def workspace_models(self, workspace_id: str) -> list[Model]:
        workspace = self.workspaces.get(workspace_id)
        return [self.models[m] for m in workspace.model_ids] if workspace else []

    def find_model(self, model_id: str, workspace_id: str | None = None) -> Model | None:
        """The model with this id; when ``workspace_id`` is given, only if the model lives in that workspace."""
        model = self.models.get(model_id)
        if model is None or (workspace_id is not None and model.workspace_id != workspace_id):
            return None
        return model

    def delete_model(self, model_id: str) -> bool:
        """Remove a model and everything in it; False when there is no such model."""
        model = self.models.pop(model_id, None)
        if model is None:
            return False
        workspace = self.workspaces.get(model.workspace_id)
        if workspace is not None and model_id in workspace.model_ids:
            workspace.model_ids.remove(model_id)
        return True

    # ----------------------------------------------------------------- seeding
    @classmethod
    def from_seed(cls, seed: dict[str, Any], **kwargs: Any) -> EmulatorState:
        """Build a tenant from a seed document (see docs/emulator.md for the format)."""
        state = cls(**kwargs)
        state.load_seed(seed)
        return state

    def load_seed(self, seed: dict[str, Any]) -> None:
        for entry in seed.get("users", []):
            self.add_user(
                entry["email"],
                entry.get("password"),
                id=entry.get("id"),
                first_name=entry.get("firstName", "Demo"),
                last_name=entry.get("lastName", "User"),
                customer_id=entry.get("customerId") or new_hex_id(),
            )
        for pem in seed.get("trustedCertificates", []):
            self.trusted_certificates_pem.append(pem.encode("ascii") if isinstance(pem, str) else pem)
        for entry in seed.get("oauthClients", []):
            client = OAuthClient(
                client_id=entry["clientId"],
                client_secret=entry.get("clientSecret"),
                rotatable=entry.get("rotatable", True),
                refresh_token_ttl=float(entry.get("refreshTokenTtl", DEFAULT_REFRESH_TOKEN_TTL)),
            )
            self.oauth_clients[client.client_id] = client
            for grant in entry.get("refreshTokens", []):
                user = self.users[grant["user"].lower()]
                expires = None if not client.rotatable else self.clock() + client.refresh_token_ttl
                self.refresh_tokens[grant["token"]] = RefreshToken(grant["token"], client.client_id, user.id, expires)
        for ws_entry in seed.get("workspaces", []):
            workspace = Workspace(
                id=ws_entry["id"],
                name=ws_entry["name"],
                active=ws_entry.get("active", True),
                size_allowance=ws_entry.get("sizeAllowance", 1_073_741_824),
                current_size=ws_entry.get("currentSize", 0),
            )
            self.workspaces[workspace.id] = workspace
            for model_entry in ws_entry.get("models", []):
                model = _model_from_seed(model_entry, workspace.id)
                self.models[model.id] = model
                workspace.model_ids.append(model.id)


_FILE_DEFAULTS = {
    "chunkCount": 0,
    "delimiter": '"',
    "encoding": "UTF-8",
    "firstDataRow": 2,
    "format": "txt",
    "headerRow": 1,
    "separator": ",",
}


def _model_from_seed(entry: dict[str, Any], workspace_id: str) -> Model:
    model = Model(
        id=entry["id"],
        name=entry["name"],
        workspace_id=workspace_id,
        active_state=entry.get("activeState", "UNLOCKED"),
        category_values=entry.get("categoryValues", []),
        details=entry.get("details", {}),
        is_open=bool(entry.get("open", False)),
    )
    for f in entry.get("files", []):
        model.files[f["id"]] = {**_FILE_DEFAULTS, **{k: v for k, v in f.items() if not k.startswith("_")}}
    for imp in entry.get("imports", []):
        wire = {k: imp[k] for k in ("id", "name", "importDataSourceId", "importType") if k in imp}
        model.imports[imp["id"]] = wire
        model.import_metadata[imp["id"]] = _import_metadata(imp, model)
    for exp in entry.get("exports", []):
        wire = {k: exp[k] for k in ("id", "name", "exportType", "exportFormat", "encoding", "layout") if k in exp}
        model.exports[exp["id"]] = wire
        model.export_metadata[exp["id"]] = _export_metadata(exp)
        # An export's output file has the export's id and appears in the model's file list.
        model.files.setdefault(
            exp["id"], {"id": exp["id"], "name": exp["name"], "chunkCount": 0, "firstDataRow": 0, "headerRow": 0}
        )
    for proc in entry.get("processes", []):
        model.processes[proc["id"]] = {"id": proc["id"], "name": proc["name"]}
        model.process_actions[proc["id"]] = list(proc.get("actions", []))
    for act in entry.get("actions", []):
        model.actions[act["id"]] = {k: act[k] for k in ("id", "name", "actionType") if k in act}
    return model


def _import_metadata(imp: dict[str, Any], model: Model) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": imp["name"], "type": imp.get("sourceType", "FILE")}
    if meta["type"] == "FILE":
        source_file = model.files.get(imp.get("importDataSourceId", ""), {})
        headers = list(imp.get("headerNames", []))
        meta["source"] = {
            "textEncoding": source_file.get("encoding", "UTF-8"),
            "columnSeparator": source_file.get("separator", ","),
            "textDelimiter": source_file.get("delimiter", '"'),
            "headerRow": source_file.get("headerRow", 1),
            "firstDataRow": source_file.get("firstDataRow", 2),
            "decimalSeparator": ".",
            "headerNames": headers,
            "columnCount": len(headers),
        }
    return meta


def _export_metadata(exp: dict[str, Any]) -> dict[str, Any]:
    headers = list(exp.get("headerNames", []))
    return {
        "columnCount": len(headers),
        "dataTypes": list(exp.get("dataTypes", ["TEXT"] * len(headers))),
        "delimiter": '"',
        "encoding": exp.get("encoding", "UTF-8"),
        "exportFormat": exp.get("exportFormat", "text/csv"),
        "headerNames": headers,
        "listNames": list(exp.get("listNames", [])),
        "rowCount": int(exp.get("rowCount", 0)),
        "separator": ",",
    }


def default_seed() -> dict[str, Any]:
    """The bundled seed the emulator starts with when no ``--seed`` is given."""
    return json.loads(resources.files(__package__).joinpath("seed.json").read_text("utf-8"))


def load_seed_file(path: str | Path) -> dict[str, Any]:
    """Read a seed document from a JSON file."""
    return json.loads(Path(path).read_text("utf-8"))


BULK_WORKSPACE_ID = "8a81b01c5b6c4d7e8f9a0b1c2d3e4f5a"


def bulk_seed(*, models: int = 0, objects: int = 0, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A seed with a large extra workspace, for paging tests and benchmarks.

    It is ``base`` (the bundled seed by default) plus a workspace "Bulk Load" with ``max(models, 1)`` models; the first
    of them holds ``objects`` each of files, imports (one per file), exports, processes and actions.
    """
    seed = json.loads(json.dumps(base)) if base is not None else default_seed()
    bulk_models: list[dict[str, Any]] = []
    for index in range(max(models, 1)):
        bulk_models.append(
            {
                "id": f"B0{index:030X}",
                "name": f"Bulk Model {index:05d}",
                "activeState": "UNLOCKED",
                "categoryValues": [],
                "details": {  # what modelDetails=true adds, as for the bundled seed's models
                    "lastSavedSerialNumber": 1_000_000 + index,
                    "memoryUsage": 1_048_576,
                    "isoCreationDate": "2025-01-20T14:00:00.000+0000",
                    "lastModified": "2026-11-18T08:30:00.000+0000",
                    "lastModifiedByUserGuid": "8a81b09d5f1e4c2a9b3e7d6f10a2c4e8",
                },
            }
        )
    first = bulk_models[0]
    first["files"] = [{"id": f"113{i:09d}", "name": f"Bulk File {i:05d}.csv"} for i in range(objects)]
    first["imports"] = [
        {
            "id": f"112{i:09d}",
            "name": f"Bulk Import {i:05d}",
            "importType": "MODULE_DATA",
            "importDataSourceId": f"113{i:09d}",
            "headerNames": ["Code", "Value"],
        }
        for i in range(objects)
    ]
    first["exports"] = [
        {
            "id": f"116{i:09d}",
            "name": f"Bulk Export {i:05d}.csv",
            "exportType": "TABULAR_MULTI_COLUMN",
            "exportFormat": "text/csv",
            "encoding": "UTF-8",
            "layout": "TABULAR_MULTI_COLUMN",
        }
        for i in range(objects)
    ]
    first["processes"] = [
        {"id": f"118{i:09d}", "name": f"Bulk Process {i:05d}", "actions": [f"112{i:09d}"]} for i in range(objects)
    ]
    first["actions"] = [
        {"id": f"117{i:09d}", "name": f"Bulk Action {i:05d}", "actionType": "DELETE_BY_SELECTION"}
        for i in range(objects)
    ]
    seed.setdefault("workspaces", []).append({"id": BULK_WORKSPACE_ID, "name": "Bulk Load", "models": bulk_models})
    return seed
