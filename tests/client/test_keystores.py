"""CertificateAuth from keystores: PKCS#12 (cryptography) and JKS (pyjks), built here, used against the emulator."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jks
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from airflow_provider_anaplan.client import keystores
from airflow_provider_anaplan.client._transport import Transport
from airflow_provider_anaplan.client.auth import CertificateAuth
from airflow_provider_anaplan.client.errors import ConfigurationError
from airflow_provider_anaplan.client.settings import ClientSettings
from airflow_provider_anaplan.emulator import EmulatorApp

CERT_EMAIL = "keystore.user@anaplan.example"
STORE_PASSWORD = "store-Pa55-word-8d1"
KEY_PASSWORD = "key-Pa55-word-5e9"
WRONG_PASSWORD = "wrong-Pa55-word-000"


def _cert(key: Any, email: str, *, days_from: int = -1, days_to: int = 30, issuer: Any = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days_from))
        .not_valid_after(now + dt.timedelta(days=days_to))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .sign(issuer or key, hashes.SHA256())
    )


def _der_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _jks_key_entry(alias: str, key: Any, certs: list[x509.Certificate], password: str | None) -> Any:
    entry = jks.PrivateKeyEntry.new(alias, [c.public_bytes(serialization.Encoding.DER) for c in certs], _der_key(key))
    if password is not None:
        entry.encrypt(password)  # a key password of its own; saves() encrypts the rest with the store password
    return entry


@dataclass(frozen=True)
class Stores:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    p12: bytes  # friendly name "anaplan", STORE_PASSWORD
    jks: bytes  # key entry "anaplan" with KEY_PASSWORD, plus a trusted certificate "ca", STORE_PASSWORD
    jks_same_password: bytes  # key entry protected by the store password
    jks_two_keys: bytes  # "anaplan" and "other", both with the store password


@pytest.fixture(scope="module")
def stores() -> Stores:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _cert(key, CERT_EMAIL)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = _cert(other_key, "other@anaplan.example")
    p12 = pkcs12.serialize_key_and_certificates(
        b"anaplan", key, cert, None, serialization.BestAvailableEncryption(STORE_PASSWORD.encode())
    )
    ca = jks.TrustedCertEntry.new("ca", other.public_bytes(serialization.Encoding.DER))
    keystore = jks.KeyStore.new("jks", [_jks_key_entry("anaplan", key, [cert], KEY_PASSWORD), ca])
    same = jks.KeyStore.new("jks", [_jks_key_entry("anaplan", key, [cert], None)])
    two = jks.KeyStore.new(
        "jks", [_jks_key_entry("anaplan", key, [cert], None), _jks_key_entry("other", other_key, [other], None)]
    )
    return Stores(
        key=key,
        cert=cert,
        p12=p12,
        jks=keystore.saves(STORE_PASSWORD),
        jks_same_password=same.saves(STORE_PASSWORD),
        jks_two_keys=two.saves(STORE_PASSWORD),
    )


@pytest.fixture
def trusted(app: EmulatorApp, stores: Stores) -> Stores:
    """The keystores' certificate trusted by the emulator, with a password-less user for its email."""
    app.state.add_trusted_certificate(stores.cert.public_bytes(serialization.Encoding.PEM))
    app.state.add_user(CERT_EMAIL, None)
    return stores


async def whoami(settings: ClientSettings, auth: CertificateAuth) -> str:
    async with Transport(settings, auth) as transport:
        return (await transport.get_json("users/me"))["user"]["email"]


def _secret_forms(*secrets: str | bytes) -> list[str]:
    """Each secret as given and in base64, as it could leak into a message or a log."""
    out: list[str] = []
    for secret in secrets:
        raw = secret.encode() if isinstance(secret, str) else secret
        out += [raw.decode("latin-1"), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    return out


def assert_no_secret(text: str, *secrets: str | bytes) -> None:
    for form in _secret_forms(*secrets):
        assert form not in text, f"a secret leaked into: {text[:200]}"


# --------------------------------------------------------------------------------------------------- PKCS#12
@pytest.mark.asyncio
async def test_pkcs12_from_bytes_path_and_base64_authenticates(
    trusted: Stores, settings: ClientSettings, tmp_path: Path
) -> None:
    path = tmp_path / "anaplan.p12"
    path.write_bytes(trusted.p12)
    text = base64.encodebytes(trusted.p12).decode()  # wrapped at 76 columns: whitespace is ignored
    for source in (trusted.p12, path, str(path), text):
        auth = CertificateAuth.from_pkcs12(source, STORE_PASSWORD)
        assert auth.subject == f"CN={CERT_EMAIL}"
        assert await whoami(settings, auth) == CERT_EMAIL
    auth = CertificateAuth.from_pkcs12(trusted.p12, STORE_PASSWORD.encode(), key_alias="ANAPLAN", payload_version="v1")
    assert auth.payload_version == "v1" and await whoami(settings, auth) == CERT_EMAIL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anaplan.p12"]  # noqa: ASYNC240 - nothing written there


def test_pkcs12_chain_is_kept_leaf_first(stores: Stores) -> None:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _cert(ca_key, "ca@anaplan.example")
    leaf = _cert(stores.key, CERT_EMAIL, issuer=ca_key)
    bundle = pkcs12.serialize_key_and_certificates(
        None, stores.key, leaf, [ca], serialization.BestAvailableEncryption(b"pw")
    )
    entry = keystores.read_pkcs12(bundle, "pw")
    assert entry.alias is None and entry.certificates == (leaf, ca) and entry.keystore_type == "pkcs12"
    assert "key=" not in repr(entry) and "RSAPrivateKey" not in repr(entry)  # the key is not in the repr
    assert CertificateAuth.from_pkcs12(bundle, "pw").subject == f"CN={CERT_EMAIL}"


def test_pkcs12_errors_each_have_their_own_message(stores: Stores) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_bundle = pkcs12.serialize_key_and_certificates(
        b"ec", ec_key, _cert(ec_key, CERT_EMAIL), None, serialization.BestAvailableEncryption(b"pw")
    )
    cert_only = pkcs12.serialize_key_and_certificates(
        None, None, None, [stores.cert], serialization.BestAvailableEncryption(b"pw")
    )
    expired = pkcs12.serialize_key_and_certificates(
        b"old", stores.key, _cert(stores.key, CERT_EMAIL, days_from=-30, days_to=-1), None, serialization.NoEncryption()
    )
    cases: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((stores.p12, WRONG_PASSWORD), {}, "keystore_password is wrong"),
        ((stores.p12, None), {}, "keystore is password-protected: give keystore_password"),
        ((stores.p12, STORE_PASSWORD), {"key_alias": "nope"}, "key_alias 'nope' is not a key entry"),
        ((stores.p12[:-40], STORE_PASSWORD), {}, "not a readable PKCS#12 bundle"),
        ((b"\x00" * 64, STORE_PASSWORD), {}, "not a readable PKCS#12 bundle"),
        ((stores.jks, STORE_PASSWORD), {}, "looks like a Java keystore"),
        ((ec_bundle, "pw"), {}, "holds a key of type EC; Anaplan certificates need an RSA key"),
        ((cert_only, "pw"), {}, "holds no private key entry"),
        ((expired, None), {}, "keystore entry 'old': certificate CN="),
        (("no/such/store.p12", "pw"), {}, "keystore is neither a readable file 'no/such/store.p12' nor base64"),
        (("", "pw"), {}, "keystore is empty"),
    ]
    for args, kwargs, expected in cases:
        with pytest.raises(ConfigurationError) as caught:
            CertificateAuth.from_pkcs12(*args, **kwargs)
        assert expected in str(caught.value), (expected, str(caught.value))
        assert_no_secret(str(caught.value) + repr(caught.value), STORE_PASSWORD, WRONG_PASSWORD)
    with pytest.raises(ConfigurationError, match="key entries present: 'anaplan'"):
        CertificateAuth.from_pkcs12(stores.p12, STORE_PASSWORD, key_alias="nope")


def test_pkcs12_without_a_password() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bundle = pkcs12.serialize_key_and_certificates(
        None, key, _cert(key, CERT_EMAIL), None, serialization.NoEncryption()
    )
    assert CertificateAuth.from_pkcs12(bundle).subject == f"CN={CERT_EMAIL}"


# --------------------------------------------------------------------------------------------------- Java keystores
@pytest.mark.asyncio
async def test_jks_with_its_own_key_password_authenticates(
    trusted: Stores, settings: ClientSettings, tmp_path: Path
) -> None:
    auth = CertificateAuth.from_jks(trusted.jks, STORE_PASSWORD, KEY_PASSWORD)  # one key entry: no alias needed
    assert await whoami(settings, auth) == CERT_EMAIL
    path = tmp_path / "anaplan.jks"
    path.write_bytes(trusted.jks)
    auth = CertificateAuth.from_jks(path, STORE_PASSWORD, KEY_PASSWORD, key_alias="Anaplan")
    assert await whoami(settings, auth) == CERT_EMAIL
    same = CertificateAuth.from_jks(base64.b64encode(trusted.jks_same_password).decode(), STORE_PASSWORD)
    assert await whoami(settings, same) == CERT_EMAIL  # the key password defaults to the store password
    two = CertificateAuth.from_jks(trusted.jks_two_keys, STORE_PASSWORD, key_alias="anaplan")
    assert await whoami(settings, two) == CERT_EMAIL


def test_jks_errors_each_have_their_own_message(stores: Stores) -> None:
    cases: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        ((stores.jks, WRONG_PASSWORD, KEY_PASSWORD), {}, "keystore_password is wrong: the JKS keystore's integrity"),
        ((stores.jks, STORE_PASSWORD, WRONG_PASSWORD), {}, "key_password is wrong: key entry 'anaplan'"),
        ((stores.jks, STORE_PASSWORD), {}, "has a password of its own (keystore_password does not decrypt it)"),
        ((stores.jks, STORE_PASSWORD, KEY_PASSWORD), {"key_alias": "nope"}, "key entries present: 'anaplan'"),
        ((stores.jks, STORE_PASSWORD, KEY_PASSWORD), {"key_alias": "ca"}, "'ca' is a certificate or secret key"),
        ((stores.jks_two_keys, STORE_PASSWORD), {}, "holds 2 key entries: give key_alias, one of 'anaplan', 'other'"),
        ((stores.jks[:60], STORE_PASSWORD), {}, "not a readable JKS keystore: the data is corrupt or truncated"),
        ((stores.p12, STORE_PASSWORD), {}, "looks like a PKCS#12 bundle"),
        ((b"garbage!" * 8, STORE_PASSWORD), {}, "not a readable Java keystore"),
        ((stores.jks, None), {}, "give keystore_password"),
    ]
    for args, kwargs, expected in cases:
        with pytest.raises(ConfigurationError) as caught:
            CertificateAuth.from_jks(*args, **kwargs)
        assert expected in str(caught.value), (expected, str(caught.value))
        assert_no_secret(str(caught.value) + repr(caught.value), STORE_PASSWORD, KEY_PASSWORD, WRONG_PASSWORD)


def test_jks_with_only_trusted_certificates(stores: Stores) -> None:
    store = jks.KeyStore.new(
        "jks", [jks.TrustedCertEntry.new("ca", stores.cert.public_bytes(serialization.Encoding.DER))]
    )
    with pytest.raises(ConfigurationError, match=r"holds no private key entry \(only trusted certificates .*'ca'"):
        CertificateAuth.from_jks(store.saves(STORE_PASSWORD), STORE_PASSWORD)


def test_jks_key_entry_without_a_chain_and_a_non_rsa_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bare = jks.KeyStore.new("jks", [_jks_key_entry("bare", key, [], None)])
    with pytest.raises(ConfigurationError, match=r"key entry 'bare' has no X\.509 certificate chain"):
        CertificateAuth.from_jks(bare.saves("pw"), "pw")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_store = jks.KeyStore.new("jks", [_jks_key_entry("ec", ec_key, [_cert(ec_key, CERT_EMAIL)], None)])
    with pytest.raises(ConfigurationError, match="key entry 'ec' holds a key of type EC"):
        CertificateAuth.from_jks(ec_store.saves("pw"), "pw")


def test_jks_without_the_extra_installed_says_how_to_install_it(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jks", None)  # `import jks` now raises ImportError, as when pyjks is absent
    with pytest.raises(ConfigurationError) as caught:
        CertificateAuth.from_jks(stores.jks, STORE_PASSWORD, KEY_PASSWORD)
    assert "pip install 'airflow-provider-anaplan[jks]'" in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"airflow-provider-anaplan\[jks\]"):
        CertificateAuth.from_keystore(stores.jks, STORE_PASSWORD, key_password=KEY_PASSWORD)
    assert CertificateAuth.from_keystore(stores.p12, STORE_PASSWORD).subject == f"CN={CERT_EMAIL}"  # PKCS#12 works


# --------------------------------------------------------------------------------------------------- either
def test_from_keystore_detects_the_type_or_takes_it(stores: Stores) -> None:
    assert keystores.detect_keystore_type(stores.p12) == "pkcs12"
    assert keystores.detect_keystore_type(stores.jks) == "jks"
    assert keystores.detect_keystore_type(b"-----BEGIN CERTIFICATE-----") is None
    for kind in (None, "pkcs12", "PKCS12", "p12", "pfx"):
        assert CertificateAuth.from_keystore(stores.p12, STORE_PASSWORD, keystore_type=kind).subject
    for kind in (None, "jks", "JCEKS"):
        auth = CertificateAuth.from_keystore(stores.jks, STORE_PASSWORD, keystore_type=kind, key_password=KEY_PASSWORD)
        assert auth.subject == f"CN={CERT_EMAIL}"
    with pytest.raises(ConfigurationError, match="keystore_type must be pkcs12 or jks"):
        CertificateAuth.from_keystore(stores.p12, STORE_PASSWORD, keystore_type="pem")
    with pytest.raises(ConfigurationError, match="neither a PKCS#12 bundle nor a Java keystore"):
        CertificateAuth.from_keystore(base64.b64encode(b"not a keystore at all, only text").decode(), "x")
    with pytest.raises(ConfigurationError, match="key_password is for Java keystores"):
        CertificateAuth.from_keystore(stores.p12, STORE_PASSWORD, key_password=KEY_PASSWORD)


def test_secrets_never_reach_logs_messages_or_reprs(stores: Stores, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    auth = CertificateAuth.from_jks(stores.jks, STORE_PASSWORD, KEY_PASSWORD)
    texts += [repr(auth), str(auth)]
    entry = keystores.read_jks(stores.jks, STORE_PASSWORD, KEY_PASSWORD)
    texts.append(repr(entry))
    for call in (
        lambda: CertificateAuth.from_jks(stores.jks, WRONG_PASSWORD, KEY_PASSWORD),
        lambda: CertificateAuth.from_jks(stores.jks, STORE_PASSWORD, WRONG_PASSWORD),
        lambda: CertificateAuth.from_pkcs12(stores.p12, WRONG_PASSWORD),
        lambda: CertificateAuth.from_pkcs12(base64.b64encode(stores.p12[:-9]).decode(), STORE_PASSWORD),
    ):
        with pytest.raises(ConfigurationError) as caught:
            call()
        texts += [str(caught.value), repr(caught.value)]
        error = caught.value
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)  # nothing chained
    key_material = _der_key(stores.key)
    for text in [*texts, caplog.text]:
        assert_no_secret(text, STORE_PASSWORD, KEY_PASSWORD, WRONG_PASSWORD)
        assert base64.b64encode(stores.p12)[:40].decode() not in text
        assert base64.b64encode(key_material)[100:140].decode() not in text
