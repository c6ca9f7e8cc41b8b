"""Keystore extras of the `anaplan` connection (PKCS#12 and JKS) and OAuth connections that keep their refresh token
in a Variable (as device-login writes it), through Airflow's connection resolution against the live emulator."""

from __future__ import annotations

import base64
import contextlib
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import jks
import pytest
from airflow.sdk.exceptions import AirflowException
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

import airflow_provider_anaplan
from airflow_provider_anaplan import exceptions
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from tests.emulator.conftest import LiveServer
from tests.hooks.conftest import CERT_EMAIL, ROTATING_CLIENT, ROTATING_REFRESH_TOKEN, CertificateKit, SetConnection
from tests.hooks.test_anaplan_hook import is_masked

STORE_PASSWORD = "hook-store-Pa55-71c"
KEY_PASSWORD = "hook-key-Pa55-3f0"
KEYSTORE_EXTRAS = {"keystore", "keystore_type", "keystore_password", "key_password", "key_alias"}


def _key_and_cert(kit: CertificateKit) -> tuple[Any, x509.Certificate]:
    key = serialization.load_pem_private_key(kit.key_pem.encode(), None)
    return key, x509.load_pem_x509_certificate(kit.cert_pem.encode())


@pytest.fixture(scope="module")
def p12(certificate_kit: CertificateKit) -> bytes:
    key, cert = _key_and_cert(certificate_kit)
    return pkcs12.serialize_key_and_certificates(
        b"anaplan", key, cert, None, serialization.BestAvailableEncryption(STORE_PASSWORD.encode())
    )


@pytest.fixture(scope="module")
def java_keystore(certificate_kit: CertificateKit) -> bytes:
    key, cert = _key_and_cert(certificate_kit)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    entry = jks.PrivateKeyEntry.new("anaplan", [cert.public_bytes(serialization.Encoding.DER)], der)
    entry.encrypt(KEY_PASSWORD)
    return jks.KeyStore.new("jks", [entry]).saves(STORE_PASSWORD)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("form", ["json", "uri"])
def test_pkcs12_and_jks_connections_authenticate(
    form: str,
    live: LiveServer,
    set_connection: SetConnection,
    trusted_certificate: CertificateKit,
    p12: bytes,
    java_keystore: bytes,
    tmp_path: Path,
) -> None:
    path = tmp_path / "anaplan.p12"
    path.write_bytes(p12)
    variants: list[dict[str, Any]] = [
        {"keystore": b64(p12), "keystore_password": STORE_PASSWORD},  # auth_type and keystore_type inferred
        {
            "auth_type": "certificate",
            "keystore": str(path),
            "keystore_type": "pkcs12",
            "keystore_password": STORE_PASSWORD,
        },
        {
            "keystore": b64(java_keystore),
            "keystore_type": "jks",
            "keystore_password": STORE_PASSWORD,
            "key_password": KEY_PASSWORD,
            "key_alias": "anaplan",
        },
        {
            "keystore": base64.encodebytes(java_keystore).decode(),
            "keystore_password": STORE_PASSWORD,
            "key_password": KEY_PASSWORD,
        },
    ]
    for number, extra in enumerate(variants):
        conn_id = set_connection(f"anaplan_keystore_{form}_{number}", form=form, base_url=live.url, **extra)
        hook = AnaplanHook(conn_id)
        assert hook.auth_type == "certificate"
        assert hook.get_current_user().email == CERT_EMAIL, extra


def _broken(p12: bytes, java_keystore: bytes, kit: CertificateKit) -> list[tuple[dict[str, Any], str]]:
    return [
        ({"keystore": b64(p12), "keystore_password": "wrong-one-1"}, "keystore_password is wrong"),
        ({"keystore": b64(p12)}, "keystore is password-protected: give keystore_password"),
        ({"keystore": b64(p12), "keystore_password": STORE_PASSWORD, "key_alias": "prod"}, "key_alias 'prod'"),
        (
            {"keystore": b64(java_keystore), "keystore_password": STORE_PASSWORD, "key_password": "wrong-two-2"},
            "key_password is wrong: key entry 'anaplan'",
        ),
        ({"keystore": b64(java_keystore), "keystore_password": STORE_PASSWORD}, "give key_password"),
        (
            {
                "keystore": b64(java_keystore),
                "keystore_password": STORE_PASSWORD,
                "key_password": KEY_PASSWORD,
                "key_alias": "x",
            },
            "key entries present: 'anaplan'",
        ),
        ({"keystore": b64(p12), "keystore_type": "pem"}, "extra keystore_type must be pkcs12 or jks"),
        ({"keystore": b64(p12[:-30]), "keystore_password": STORE_PASSWORD}, "neither a PKCS#12 bundle nor a Java"),
        ({"keystore": "/no/such/keystore.p12"}, "keystore is neither a readable file '/no/such/keystore.p12'"),
        ({"keystore": b64(p12), "certificate": kit.cert_pem}, "give either extra keystore or certificate"),
        ({"auth_type": "certificate"}, "or extra keystore: a PKCS#12 or Java keystore"),
    ]


def test_each_broken_keystore_connection_names_its_field(
    set_connection: SetConnection, certificate_kit: CertificateKit, p12: bytes, java_keystore: bytes
) -> None:
    for number, (extra, expected) in enumerate(_broken(p12, java_keystore, certificate_kit)):
        conn_id = set_connection(f"anaplan_bad_keystore_{number}", base_url="http://127.0.0.1:9", **extra)
        with pytest.raises(exceptions.ConfigurationError) as caught:
            AnaplanHook(conn_id)
        message = str(caught.value)
        assert expected in message, (extra, message)
        assert f"'{conn_id}'" in message and isinstance(caught.value, AirflowException)
        for secret in (STORE_PASSWORD, KEY_PASSWORD, "wrong-one-1", "wrong-two-2", b64(p12)[:40]):
            assert secret not in message


def test_jks_connection_without_pyjks_says_how_to_install_it(
    set_connection: SetConnection, java_keystore: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jks", None)
    conn_id = set_connection(
        "anaplan_no_pyjks", keystore=b64(java_keystore), keystore_password=STORE_PASSWORD, key_password=KEY_PASSWORD
    )
    with pytest.raises(exceptions.ConfigurationError, match=r"pip install 'airflow-provider-anaplan\[jks\]'"):
        AnaplanHook(conn_id)


def test_keystore_secrets_are_masked_and_never_logged(
    live: LiveServer,
    set_connection: SetConnection,
    trusted_certificate: CertificateKit,
    java_keystore: bytes,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    text = base64.encodebytes(java_keystore).decode()  # several lines
    conn_id = set_connection(
        "anaplan_mask_keystore",
        base_url=live.url,
        keystore=text,
        keystore_password=STORE_PASSWORD,
        key_password=KEY_PASSWORD,
    )
    hook = AnaplanHook(conn_id)
    hook.list_workspaces()
    secrets = [STORE_PASSWORD, KEY_PASSWORD, "".join(text.split()), text.split()[1]]
    for secret in secrets:
        assert is_masked(secret), secret[:30]
    captured = capsys.readouterr()
    for secret in [*secrets, b64(STORE_PASSWORD.encode()), b64(KEY_PASSWORD.encode())]:
        assert secret not in caplog.text and secret not in captured.out + captured.err
    assert repr(hook.get_conn().auth) == f"CertificateAuth(subject='CN={CERT_EMAIL}', payload_version='v2')"


def test_the_form_declares_the_keystore_fields() -> None:
    (conn_type,) = airflow_provider_anaplan.get_provider_info()["connection-types"]
    fields = conn_type["conn-fields"]
    assert set(fields) >= KEYSTORE_EXTRAS
    assert {k for k in KEYSTORE_EXTRAS if fields[k]["schema"].get("format") == "password"} == {
        "keystore",
        "keystore_password",
        "key_password",
    }


# --------------------------------------------------------------------------------------------------- OAuth via Variable
def _set_variable(key: str, value: str) -> None:
    from airflow.models.variable import Variable

    Variable.set(key, value)


def test_oauth_connection_reading_its_refresh_token_from_a_variable(
    airflow_db: Any, live: LiveServer, set_connection: SetConnection
) -> None:
    variable = f"anaplan_device_token_{uuid.uuid4().hex}"
    conn_id = set_connection(
        "anaplan_oauth_variable",
        auth_type="oauth",
        oauth_client_id=ROTATING_CLIENT,
        oauth_refresh_token_variable=variable,
        base_url=live.url,
    )
    with pytest.raises(exceptions.ConfigurationError) as caught:
        AnaplanHook(conn_id)
    assert f"--store-variable {variable}" in str(caught.value) and "device-login" in str(caught.value)
    assert str(caught.value).startswith(f"Anaplan connection '{conn_id}' (oauth auth): extra oauth_refresh_token is")
    _set_variable(variable, ROTATING_REFRESH_TOKEN)
    assert AnaplanHook(conn_id).get_current_user().email == DEFAULT_USER_EMAIL
    from airflow.models.variable import Variable

    rotated = Variable.get(variable)
    assert rotated != ROTATING_REFRESH_TOKEN and is_masked(rotated)  # the rotation went back into the Variable
    with contextlib.suppress(Exception):
        Variable.delete(variable)
