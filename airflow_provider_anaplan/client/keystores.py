"""Certificate credentials from keystores: PKCS#12 bundles (natively) and Java keystores (JKS, JCEKS).

A keystore holds the CA certificate (with its chain) and the RSA private key that :class:`~.auth.CertificateAuth`
needs. PKCS#12 (``.p12``/``.pfx``) is read by ``cryptography``; Java keystores need the optional ``pyjks`` package
(``pip install 'airflow-provider-anaplan[jks]'``), imported only when a Java keystore is read.

Everything happens in memory: no key material is written to disk. Each problem gets its own
:class:`~.errors.ConfigurationError` naming the parameter to fix (``keystore``, ``keystore_password``,
``key_password``, ``key_alias``), and no message ever contains a password or key material.

A keystore is given as its bytes, as a path (``str`` or ``os.PathLike``, ``~`` expanded) or as base64 text (what a
connection field or a secrets backend holds).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .auth import CertificateAuth

    AuthT = TypeVar("AuthT", bound=CertificateAuth)

KeystoreSource = str | bytes | os.PathLike[str]
KeystoreType = Literal["pkcs12", "jks"]
KEYSTORE_TYPES: tuple[str, ...] = ("pkcs12", "jks")
JKS_INSTALL_HINT = "pip install 'airflow-provider-anaplan[jks]'"
_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"
_TYPE_ALIASES = {"pkcs12": "pkcs12", "p12": "pkcs12", "pfx": "pkcs12", "jks": "jks", "jceks": "jks"}


@dataclass(frozen=True)
class KeystoreEntry:
    """The key entry read from a keystore: its alias, its RSA key and its certificates (the leaf first)."""

    alias: str | None
    key: rsa.RSAPrivateKey = field(repr=False)
    certificates: tuple[x509.Certificate, ...]
    keystore_type: str  # "pkcs12", "jks" or "jceks"

    def certificate_pem(self) -> bytes:
        """The certificate chain as PEM, the leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certificates)

    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (in memory only)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


# --------------------------------------------------------------------------------------------------- input
def keystore_bytes(source: KeystoreSource | bytearray | memoryview, name: str = "keystore") -> bytes:
    """The raw keystore: bytes as given, a file's content, or decoded base64 text."""
    if source is None or (isinstance(source, str | bytes) and not source.strip()):
        raise ConfigurationError(f"Missing credentials: {name} is empty")
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if not isinstance(source, str | os.PathLike):
        raise ConfigurationError(f"{name} must be bytes, a file path or base64 text, got {type(source).__name__}")
    text = os.fspath(source)
    if not isinstance(text, str):
        raise ConfigurationError(f"{name} must be a text path, got bytes")
    path_like = isinstance(source, os.PathLike) or (len(text) < 1024 and "\n" not in text)
    if path_like and "\x00" not in text:
        try:
            path = Path(text.strip()).expanduser()
            if path.is_file():
                return path.read_bytes()
        except OSError as exc:
            if isinstance(source, os.PathLike):
                raise ConfigurationError(
                    f"{name} file could not be read: {exc.strerror or type(exc).__name__}"
                ) from None
    if isinstance(source, str):
        compact = "".join(text.split())
        try:
            decoded = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) >= 32:
            return decoded
    shown = f" {text.strip()!r}" if len(text) <= 200 and not any(c.isspace() for c in text.strip()) else ""
    raise ConfigurationError(
        f"{name} is neither a readable file{shown} nor base64 text of a keystore: give the path of a .p12/.pfx/.jks "
        f"file readable on every worker, or its content as base64 (e.g. base64 -w0 keystore.p12)"
    )


def detect_keystore_type(data: bytes) -> str | None:
    """ "jks" for a JKS or JCEKS keystore, "pkcs12" for DER that starts like a PKCS#12 PFX, else None."""
    if data[:4] in (_JKS_MAGIC, _JCEKS_MAGIC):
        return "jks"
    if _looks_like_pfx(data):
        return "pkcs12"
    return None


def _looks_like_pfx(data: bytes) -> bool:
    """True when ``data`` is one DER/BER SEQUENCE that starts with INTEGER 3 (a PKCS#12 PFX) and is not truncated."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    first, pos = data[1], 2
    length: int | None
    if first == 0x80:  # BER indefinite length
        length = None
    elif first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if not 1 <= size <= 4 or len(data) < 2 + size:
            return False
        length, pos = int.from_bytes(data[2 : 2 + size], "big"), 2 + size
    if length is not None and pos + length != len(data):
        return False
    return data[pos : pos + 3] == b"\x02\x01\x03"


def _password_bytes(name: str, value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")


def _password_text(name: str, value: str | bytes | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigurationError(f"{name} must be UTF-8 text") from None
    raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")


def _rsa_key(key: Any, alias: str | None) -> rsa.RSAPrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    kind = type(key).__name__.lstrip("_").replace("PrivateKey", "") or "non-RSA"
    where = f"key entry {alias!r}" if alias else "the keystore's key"
    raise ConfigurationError(
        f"{where} holds a key of type {kind}; Anaplan certificates need an RSA key (SHA512withRSA)"
    )


def _listing(aliases: list[str]) -> str:
    return ", ".join(repr(a) for a in sorted(aliases)) or "none"


# --------------------------------------------------------------------------------------------------- PKCS#12
def read_pkcs12(
    source: KeystoreSource | bytearray | memoryview,
    keystore_password: str | bytes | None = None,
    *,
    key_alias: str | None = None,
) -> KeystoreEntry:
    """The key entry of a PKCS#12 bundle (one password protects the whole bundle)."""
    data = keystore_bytes(source)
    password = _password_bytes("keystore_password", keystore_password)
    if not _looks_like_pfx(data):
        hint = (
            " (it looks like a Java keystore: use keystore_type jks)" if data[:4] in (_JKS_MAGIC, _JCEKS_MAGIC) else ""
        )
        raise ConfigurationError(
            f"keystore is not a readable PKCS#12 bundle: the data is corrupt, truncated or another format{hint}"
        )
    attempts = [password] if password else [None, b""]
    bundle = None
    for attempt in attempts:
        try:
            bundle = pkcs12.load_pkcs12(data, attempt)
            break
        except ValueError:
            continue
        except (TypeError, UnsupportedAlgorithm):
            raise ConfigurationError(
                "keystore uses a PKCS#12 encryption this installation cannot read: re-export it with AES-256 "
                "(e.g. openssl pkcs12 -export ... -keypbe AES-256-CBC -certpbe AES-256-CBC)"
            ) from None
    if bundle is None:
        if password:
            raise ConfigurationError(
                "keystore_password is wrong: the PKCS#12 bundle could not be opened with it (its integrity check "
                "failed, so the password is wrong or the file was altered)"
            )
        raise ConfigurationError("keystore is password-protected: give keystore_password")
    friendly = bundle.cert.friendly_name if bundle.cert is not None else None
    alias = friendly.decode("utf-8", "replace") if friendly else None
    if bundle.key is None:
        names = [c.friendly_name.decode("utf-8", "replace") for c in bundle.additional_certs if c.friendly_name]
        raise ConfigurationError(
            "keystore holds no private key entry"
            + (f" (only certificates: {_listing(names)})" if names else "")
            + ": export the certificate together with its private key"
        )
    if key_alias is not None and key_alias.strip() and (alias is None or alias.lower() != key_alias.strip().lower()):
        raise ConfigurationError(
            f"key_alias {key_alias.strip()!r} is not a key entry of the PKCS#12 bundle; key entries present: "
            + (f"{alias!r}" if alias else "one without an alias (leave key_alias empty)")
        )
    key = _rsa_key(bundle.key, alias)
    if bundle.cert is None:
        raise ConfigurationError(
            "keystore holds a private key without its certificate chain: export the certificate with the key"
        )
    chain = (bundle.cert.certificate, *(c.certificate for c in bundle.additional_certs))
    return KeystoreEntry(alias, key, chain, "pkcs12")


# --------------------------------------------------------------------------------------------------- Java keystores
def _import_pyjks() -> Any:
    try:
        import jks
    except ImportError:
        raise ConfigurationError(
            f"Java keystores (JKS/JCEKS) need the optional pyjks package: {JKS_INSTALL_HINT}; or convert the keystore "
            "to PKCS#12 (keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 -deststoretype PKCS12)"
        ) from None
    return jks


def read_jks(
    source: KeystoreSource | bytearray | memoryview,
    keystore_password: str | bytes | None = None,
    key_password: str | bytes | None = None,
    *,
    key_alias: str | None = None,
) -> KeystoreEntry:
    """The key entry of a JKS or JCEKS keystore; the key password defaults to the store password."""
    data = keystore_bytes(source)
    store_password = _password_text("keystore_password", keystore_password)
    entry_password = _password_text("key_password", key_password)
    if data[:4] not in (_JKS_MAGIC, _JCEKS_MAGIC):
        hint = " (it looks like a PKCS#12 bundle: use keystore_type pkcs12)" if _looks_like_pfx(data) else ""
        raise ConfigurationError(
            f"keystore is not a readable Java keystore: the data is corrupt, truncated or another format{hint}"
        )
    jks = _import_pyjks()
    store_type = "jceks" if data[:4] == _JCEKS_MAGIC else "jks"
    try:
        store = jks.KeyStore.loads(data, store_password or None, try_decrypt_keys=False)
    except jks.util.KeystoreSignatureException:
        raise ConfigurationError(
            f"keystore_password is wrong: the {store_type.upper()} keystore's integrity check failed with it (a wrong "
            "password, or an altered file)"
        ) from None
    except jks.util.UnsupportedKeystoreVersionException:
        raise ConfigurationError(
            f"keystore is a {store_type.upper()} keystore of a version pyjks cannot read"
        ) from None
    except Exception:  # pyjks and pyasn1 raise many kinds for damaged data; none of their text is needed here
        raise ConfigurationError(
            f"keystore is not a readable {store_type.upper()} keystore: the data is corrupt or truncated"
        ) from None
    keys: dict[str, Any] = dict(store.private_keys)
    others = sorted({*store.certs, *getattr(store, "secret_keys", {})})
    if not keys:
        raise ConfigurationError(
            "keystore holds no private key entry"
            + (f" (only trusted certificates or secret keys: {_listing(others)})" if others else "")
            + ": import the certificate together with its private key"
        )
    if key_alias is None or not key_alias.strip():
        if len(keys) > 1:
            raise ConfigurationError(f"keystore holds {len(keys)} key entries: give key_alias, one of {_listing(keys)}")
        alias = next(iter(keys))
    else:
        wanted = key_alias.strip()
        match = wanted if wanted in keys else next((a for a in keys if a.lower() == wanted.lower()), None)
        if match is None:
            note = f" ({wanted!r} is a certificate or secret key entry, not a key)" if wanted.lower() in others else ""
            raise ConfigurationError(
                f"key_alias {wanted!r} is not a key entry of the keystore; key entries present: {_listing(keys)}{note}"
            )
        alias = match
    entry = keys[alias]
    password = entry_password if entry_password is not None else store_password
    if password is None:
        raise ConfigurationError(
            f"key entry {alias!r} is encrypted: give keystore_password (and key_password when the key has its own)"
        )
    try:
        entry.decrypt(password)
    except jks.util.DecryptionFailureException:
        if entry_password is not None:
            raise ConfigurationError(
                f"key_password is wrong: key entry {alias!r} could not be decrypted with it"
            ) from None
        raise ConfigurationError(
            f"key entry {alias!r} has a password of its own (keystore_password does not decrypt it): give key_password"
        ) from None
    except ValueError:
        raise ConfigurationError(
            f"{'key_password' if entry_password is not None else 'keystore_password'} must be ASCII to decrypt a "
            "JCEKS key entry"
        ) from None
    except Exception:
        raise ConfigurationError(f"key entry {alias!r} uses a key protection pyjks cannot read") from None
    try:
        key = serialization.load_der_private_key(entry.pkey_pkcs8, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(f"key entry {alias!r} holds a private key that could not be read") from None
    key = _rsa_key(key, alias)
    certificates = []
    for cert_type, der in entry.cert_chain or []:
        if cert_type != "X.509":
            continue
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise ConfigurationError(f"key entry {alias!r} has a certificate that could not be read") from None
    if not certificates:
        raise ConfigurationError(f"key entry {alias!r} has no X.509 certificate chain: import the certificate with it")
    return KeystoreEntry(alias, key, tuple(certificates), store_type)


# --------------------------------------------------------------------------------------------------- both
def normal_keystore_type(value: str | None) -> str | None:
    """``pkcs12`` or ``jks`` (``p12``, ``pfx``, ``jceks`` accepted), None when not given; ConfigurationError else."""
    if value is None or not str(value).strip():
        return None
    normal = _TYPE_ALIASES.get(str(value).strip().lower())
    if normal is None:
        raise ConfigurationError(f"keystore_type must be pkcs12 or jks (JKS and JCEKS), got {value!r}")
    return normal


def read_keystore(
    source: KeystoreSource | bytearray | memoryview,
    keystore_password: str | bytes | None = None,
    *,
    keystore_type: str | None = None,
    key_password: str | bytes | None = None,
    key_alias: str | None = None,
) -> KeystoreEntry:
    """The key entry of a PKCS#12 bundle or a Java keystore; the type is detected when not given."""
    kind = normal_keystore_type(keystore_type)
    data = keystore_bytes(source)
    if kind is None:
        kind = detect_keystore_type(data)
        if kind is None:
            raise ConfigurationError(
                "keystore is neither a PKCS#12 bundle nor a Java keystore: the data is corrupt, truncated or another "
                "format (PEM files go into certificate and private_key instead)"
            )
    if kind == "pkcs12":
        if key_password is not None and key_password != keystore_password and key_password != "":
            raise ConfigurationError(
                "key_password is for Java keystores: a PKCS#12 bundle has one password, give it as keystore_password"
            )
        return read_pkcs12(data, keystore_password, key_alias=key_alias)
    return read_jks(data, keystore_password, key_password, key_alias=key_alias)


def certificate_auth_from_entry(
    cls: type[AuthT], entry: KeystoreEntry, payload_version: Literal["v1", "v2"] = "v2"
) -> AuthT:
    """A :class:`CertificateAuth` (or subclass) from a keystore entry; its checks (key matches the certificate, the
    certificate is valid now) apply, their messages naming the entry."""
    try:
        return cls(entry.certificate_pem(), entry.private_key_pem(), None, payload_version)
    except ConfigurationError as exc:
        where = f"keystore entry {entry.alias!r}" if entry.alias else "keystore"
        raise ConfigurationError(f"{where}: {exc}") from None


__all__ = [
    "JKS_INSTALL_HINT",
    "KEYSTORE_TYPES",
    "KeystoreEntry",
    "certificate_auth_from_entry",
    "detect_keystore_type",
    "keystore_bytes",
    "normal_keystore_type",
    "read_jks",
    "read_keystore",
    "read_pkcs12",
]
