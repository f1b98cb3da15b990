"""
================================================================
FILE: grpc_tls.py
PATH: /libs/lkern-common/src/lkern_common/grpc_tls.py
DESCRIPTION: Mutual TLS material of gRPC servers and clients (GRPC_TLS_CA / _CERT / _KEY)
VERSION: v1.0.0
UPDATED: 2026-12-02 02:25:00
================================================================

Every gRPC server and client of L-KERN uses mutual TLS; there is no insecure variant. A
service's certificate (SAN = its service name) is both its server certificate and its client
certificate; the CA file is what it trusts on both sides. The local stack makes all of them
(lkern_devstack.dev_pki); production mounts the company's (docs/deploy.md).
"""

# === IMPORTS ===
from dataclasses import dataclass
from pathlib import Path

import grpc

from lkern_common.settings import ServiceSettings


# === ERRORS ===
class TlsConfigurationError(RuntimeError):
    """A TLS file is not configured or cannot be read; the message names the setting."""


# === MATERIAL ===
@dataclass(frozen=True)
class TlsFiles:
    """Paths of a CA certificate, a certificate and its private key (PEM)."""

    ca: Path
    cert: Path
    key: Path

    def _read(self, path: Path, setting: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise TlsConfigurationError(
                f"{setting}: cannot read {path} ({exc.strerror or exc}). The local stack "
                "makes its certificates on `lkern up`; elsewhere set "
                "GRPC_TLS_CA, GRPC_TLS_CERT and GRPC_TLS_KEY (docs/deploy.md)"
            ) from None

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(CA, certificate, key) as bytes; a clear error when a file cannot be read."""
        return (
            self._read(self.ca, "GRPC_TLS_CA"),
            self._read(self.cert, "GRPC_TLS_CERT"),
            self._read(self.key, "GRPC_TLS_KEY"),
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS that requires a client certificate signed by the CA."""
        ca, cert, key = self.read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS that trusts servers signed by the CA and presents this certificate."""
        ca, cert, key = self.read()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


def tls_files(ca: Path, cert: Path | None, key: Path | None) -> TlsFiles:
    """TlsFiles from settings values; a clear error when the certificate or key is not set."""
    if cert is None or key is None:
        raise TlsConfigurationError(
            "GRPC_TLS_CERT and GRPC_TLS_KEY must be set: gRPC runs only with mutual TLS "
            "(docs/deploy.md)"
        )
    return TlsFiles(ca=ca, cert=cert, key=key)


def service_tls_files(settings: ServiceSettings) -> TlsFiles:
    """A service's own TLS files (GRPC_TLS_CA, GRPC_TLS_CERT, GRPC_TLS_KEY)."""
    return tls_files(settings.grpc_tls_ca, settings.grpc_tls_cert, settings.grpc_tls_key)
