"""Apache Airflow provider for Anaplan."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("airflow-provider-anaplan")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0.0.0"

HOOK_CLASS_NAME = "airflow_provider_anaplan.hooks.anaplan.AnaplanHook"
CONNECTION_TYPE = "anaplan"

_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_SECRET: dict[str, Any] = {"type": ["string", "null"], "format": "password"}

# The `anaplan` connection form, declared once: Airflow 3.2+ reads it from the provider info below without importing
# the hook; on Airflow 3.1 the hook's get_connection_form_widgets()/get_ui_field_behaviour() derive from it.
# Every secret is a password field (Airflow masks it and never sends it back to the browser).
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "auth_type": {
        "label": "Auth type",
        "description": "basic (Login and Password), certificate, token or oauth.",
        "schema": {"type": "string", "enum": ["basic", "certificate", "token", "oauth"], "default": "basic"},
    },
    "workspace_id": {
        "label": "Default workspace",
        "description": "Workspace id (or name) used when a task gives none.",
        "schema": _TEXT,
    },
    "model_id": {
        "label": "Default model",
        "description": "Model id (or name) used when a task gives none.",
        "schema": _TEXT,
    },
    "certificate": {
        "label": "CA certificate",
        "description": "certificate auth: the PEM certificate text, or a path readable on every worker.",
        "schema": {"type": ["string", "null"], "format": "multiline"},
    },
    "private_key": {
        "label": "Private key",
        "description": "certificate auth: the certificate's RSA private key as PEM text (pasted on one line is "
        "fine), or a path readable on every worker.",
        "schema": _SECRET,
    },
    "private_key_password": {
        "label": "Private key password",
        "description": "certificate auth: the password of an encrypted private key.",
        "schema": _SECRET,
    },
    "keystore": {
        "label": "Keystore",
        "description": "certificate auth, instead of certificate and private key: a PKCS#12 (.p12/.pfx) or Java "
        "keystore (.jks, needs the jks extra) as base64 text, or a path readable on every worker.",
        "schema": _SECRET,
    },
    "keystore_type": {
        "label": "Keystore type",
        "description": "pkcs12 or jks (JKS and JCEKS). Empty: detected from the keystore.",
        "schema": _TEXT,
    },
    "keystore_password": {
        "label": "Keystore password",
        "description": "certificate auth: the password of the keystore.",
        "schema": _SECRET,
    },
    "key_password": {
        "label": "Key password",
        "description": "Java keystores: the password of the key entry, when it differs from the keystore password.",
        "schema": _SECRET,
    },
    "key_alias": {
        "label": "Key alias",
        "description": "The alias of the key entry; may be left empty when the keystore holds one key.",
        "schema": _TEXT,
    },
    "token": {
        "label": "Token",
        "description": "token auth: an Anaplan token obtained elsewhere (it cannot be renewed).",
        "schema": _SECRET,
    },
    "oauth_client_id": {
        "label": "OAuth client id",
        "description": "oauth auth: the client id of the OAuth client registered in Anaplan.",
        "schema": _TEXT,
    },
    "oauth_client_secret": {
        "label": "OAuth client secret",
        "description": "oauth auth: the client secret (authorization-code clients only).",
        "schema": _SECRET,
    },
    "oauth_refresh_token": {
        "label": "OAuth refresh token",
        "description": "oauth auth: the refresh token. Rotated tokens are stored in the Airflow Variable named in "
        "oauth_refresh_token_variable.",
        "schema": _SECRET,
    },
    "oauth_refresh_token_variable": {
        "label": "Rotated refresh token Variable",
        "description": "oauth auth: the Airflow Variable that keeps the latest rotated refresh token (default "
        "anaplan_oauth_refresh_token__<client id>__<12 hex digits of the SHA-256 of oauth_refresh_token>).",
        "schema": _TEXT,
    },
    "auth_url": {
        "label": "Auth URL",
        "description": "Origin of the auth service, without a path. Empty: https://auth.anaplan.com.",
        "schema": _TEXT,
    },
    "api_url": {
        "label": "API URL",
        "description": "Origin of the Integration API, without a path. Empty: https://api.anaplan.com.",
        "schema": _TEXT,
    },
    "oauth_url": {
        "label": "OAuth URL",
        "description": "Origin of the OAuth service, without a path. Empty: https://us1a.app.anaplan.com.",
        "schema": _TEXT,
    },
    "base_url": {
        "label": "Base URL",
        "description": "One origin for all three services (the local emulator); the URLs above win when set.",
        "schema": _TEXT,
    },
    "proxy": {
        "label": "Proxy",
        "description": "HTTP(S) proxy URL, e.g. http://user:password@proxy:3128 (treated as a secret).",
        "schema": _SECRET,
    },
    "verify": {
        "label": "Verify TLS",
        "description": "true (default), false, or the path of a PEM CA bundle.",
        "schema": _TEXT,
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "HTTP timeout per request. Empty: 30 s to connect, 300 s to read or write.",
        "schema": {"type": ["integer", "null"], "minimum": 1},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "port", "schema"],
    "relabeling": {"login": "User email (basic auth)", "password": "Password (basic auth)"},
    "placeholders": {
        "login": "integration.user@example.com",
        "workspace_id": "8a81b01c7d2e4f3a9b5c6d7e8f901a2b",
        "model_id": "75A40874E6B64FA3AE0743278996850F",
        "certificate": "-----BEGIN CERTIFICATE----- ... or /path/to/cert.pem",
        "private_key": "-----BEGIN PRIVATE KEY----- ... or /path/to/key.pem",
        "keystore": "MIIKXAIBAzCC... (base64) or /path/to/keystore.p12",
        "keystore_type": "pkcs12",
        "auth_url": "https://auth.anaplan.com",
        "api_url": "https://api.anaplan.com",
        "oauth_url": "https://us1a.app.anaplan.com",
        "base_url": "http://127.0.0.1:8080",
        "proxy": "http://proxy.example:3128",
        "verify": "true",
        "timeout": "300",
    },
}


def get_provider_info() -> dict:
    """Describe this provider to Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    return {
        "package-name": "airflow-provider-anaplan",
        "name": "Anaplan",
        "description": "`Anaplan <https://www.anaplan.com/>`__ provider: imports, exports, processes, actions and ALM.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Anaplan",
                "external-doc-url": "https://help.anaplan.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Anaplan", "python-modules": ["airflow_provider_anaplan.hooks.anaplan"]}],
        "operators": [
            {
                "integration-name": "Anaplan",
                "python-modules": ["airflow_provider_anaplan.operators.bulk", "airflow_provider_anaplan.operators.alm"],
            }
        ],
        "sensors": [{"integration-name": "Anaplan", "python-modules": ["airflow_provider_anaplan.sensors.anaplan"]}],
        "triggers": [{"integration-name": "Anaplan", "python-modules": ["airflow_provider_anaplan.triggers.anaplan"]}],
        "connection-types": [
            {
                "connection-type": CONNECTION_TYPE,
                "hook-class-name": HOOK_CLASS_NAME,
                "hook-name": "Anaplan",
                "ui-field-behaviour": {key: _copy(value) for key, value in UI_FIELD_BEHAVIOUR.items()},
                "conn-fields": {name: _copy(field) for name, field in CONN_FIELDS.items()},
            }
        ],
        "extra-links": ["airflow_provider_anaplan.links.AnaplanModelLink"],
        # anaplan://{workspace_id}/{model_id}/files/{file_id}: read by ProvidersManager (3.1) and the Task SDK's
        # ProvidersManagerTaskRuntime (3.2+) alike; the handler validates and normalizes every such Asset URI.
        "asset-uris": [
            {
                "schemes": ["anaplan"],
                "handler": "airflow_provider_anaplan.assets.normalize_anaplan_uri",
                "factory": "airflow_provider_anaplan.assets.create_asset",
            }
        ],
    }


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON data, so callers may change the provider info they get."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
