"""
================================================================
FILE: dev_pki.py
PATH: /tools/lkern-devstack/src/lkern_devstack/dev_pki.py
DESCRIPTION: Development PKI: a CA, one TLS certificate per service, one event signing key each
VERSION: v1.0.0
UPDATED: 2026-12-02 02:10:00
================================================================

`lkern up` and the tests make, under a folder of their own (the stack's ``.lkern/pki``, never
committed; tests use a temporary folder):

========================================== ===================================================
``ca.crt`` / ``ca.key``                    the development CA (``GRPC_TLS_CA`` of every service)
``{name}.crt`` / ``{name}.key``            a certificate per service, signed by the CA: SAN =
                                           the service name (its gRPC identity), plus
                                           ``localhost`` and ``127.0.0.1`` so that it also
                                           serves local targets; server and client use
                                           (``GRPC_TLS_CERT`` / ``GRPC_TLS_KEY``)
``events/{name}.jwk.json``                 the service's private event signing key (Ed25519,
                                           a JWK with its ``kid``: ``EVENT_SIGNING_KEY_FILE``)
``events/{name}.jwks.json``                its public part as a JWKS, what consumers trust
                                           (``EVENT_TRUSTED_JWKS``)
========================================== ===================================================

Files that exist are kept (a restart keeps its certificates); a certificate that was not
signed by the current CA is made again. Private keys are written with mode 0600.
Production uses the company's CA and key management instead: docs/deploy.md.
"""

# === IMPORTS ===
import datetime
import ipaddress
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import OKPAlgorithm

from lkern_common.grpc_tls import TlsFiles

# === CONSTANTS ===
CA_NAME = "L-KERN development CA"
CA_VALID_DAYS = 3650
CERT_VALID_DAYS = 825
LOCAL_NAMES = ("localhost",)
LOCAL_ADDRESSES = ("127.0.0.1",)
EVENT_KEY_ALGORITHM = "EdDSA"


# === HELPERS ===
def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (created so, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when ``cert`` was issued by ``ca`` (signature checked) and is valid now."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc > _now()


# === PKI ===
@dataclass(frozen=True)
class DevPki:
    """The files of a development PKI folder (see the module's docstring)."""

    directory: Path

    # --- paths ---
    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_file(self) -> Path:
        return self.directory / "ca.key"

    def cert_file(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key_file(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def event_key_file(self, name: str) -> Path:
        return self.directory / "events" / f"{name}.jwk.json"

    def event_jwks_file(self, name: str) -> Path:
        return self.directory / "events" / f"{name}.jwks.json"

    def tls_files(self, name: str) -> TlsFiles:
        """The CA and ``name``'s certificate and key, for a gRPC server or channel."""
        return TlsFiles(ca=self.ca_file, cert=self.cert_file(name), key=self.key_file(name))

    # --- settings of a service ---
    def grpc_tls_settings(self, name: str) -> dict[str, str]:
        """``grpc_tls_ca`` / ``grpc_tls_cert`` / ``grpc_tls_key`` of service ``name``."""
        return {
            "grpc_tls_ca": str(self.ca_file),
            "grpc_tls_cert": str(self.cert_file(name)),
            "grpc_tls_key": str(self.key_file(name)),
        }

    def event_settings(self, name: str, trusted: Iterable[str] = ()) -> dict[str, Any]:
        """``event_signing_key_file`` of ``name``; ``event_trusted_jwks`` of ``trusted``."""
        return {
            "event_signing_key_file": str(self.event_key_file(name)),
            "event_trusted_jwks": {source: str(self.event_jwks_file(source)) for source in trusted},
        }

    def service_env(self, name: str, trusted_publishers: Iterable[str] = ()) -> dict[str, str]:
        """The environment variables that point service ``name`` at this PKI."""
        values = {**self.grpc_tls_settings(name), **self.event_settings(name, trusted_publishers)}
        return {
            key.upper(): value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()
        }

    # --- making files ---
    def ensure(self, names: Iterable[str]) -> "DevPki":
        """Make the CA (when missing) and, for each name, a certificate and an event key."""
        ca_cert, ca_key = self._ensure_ca()
        for name in names:
            self._ensure_cert(name, ca_cert, ca_key)
            self.ensure_event_key(name)
        return self

    def _ensure_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self.ca_file.is_file() and self.ca_key_file.is_file():
            cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), None)
            if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc > _now():
                return cert, key
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key_file, _key_pem(key))
        _write_public(self.ca_file, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def _ensure_cert(
        self, name: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
    ) -> None:
        cert_file, key_file = self.cert_file(name), self.key_file(name)
        if cert_file.is_file() and key_file.is_file():
            existing = x509.load_pem_x509_certificate(cert_file.read_bytes())
            if _signed_by(existing, ca_cert):
                return
        key, cert = issue_certificate(name, ca_cert, ca_key)
        _write_private(key_file, _key_pem(key))
        _write_public(cert_file, cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str) -> tuple[Path, Path]:
        """A certificate for ``name`` from this CA (made when missing): (cert file, key file)."""
        self.ensure([name])
        return self.cert_file(name), self.key_file(name)

    def ensure_event_key(self, name: str) -> str:
        """The event signing key of ``name`` (made when missing); returns its key id."""
        key_file, jwks_file = self.event_key_file(name), self.event_jwks_file(name)
        if key_file.is_file() and jwks_file.is_file():
            kid: str = json.loads(key_file.read_text())["kid"]
            return kid
        kid = f"{name}-{secrets.token_hex(4)}"
        key = ed25519.Ed25519PrivateKey.generate()
        private = {**OKPAlgorithm.to_jwk(key, as_dict=True), "kid": kid, "alg": "EdDSA"}
        public = {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid}
        public.update({"alg": EVENT_KEY_ALGORITHM, "use": "sig"})
        _write_private(key_file, json.dumps(private).encode())
        _write_public(jwks_file, json.dumps({"keys": [public]}, indent=2).encode())
        return kid


# === CERTIFICATES ===
def issue_certificate(
    name: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate for service ``name`` (server and client use), signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    names += [x509.DNSName(local) for local in LOCAL_NAMES if local != name]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in LOCAL_ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CERT_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def ensure_dev_pki(directory: Path, names: Iterable[str]) -> DevPki:
    """The development PKI in ``directory``, with a certificate and event key for each name."""
    return DevPki(directory).ensure(names)
