"""
================================================================
FILE: config.py
PATH: /services/lkms101-contacts/app/config.py
DESCRIPTION: Configuration of the contacts service (environment variables, local defaults)
VERSION: v1.2.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from lkern_common.registry import load_service_entry
from lkern_common.settings import LOCAL_PKI_DIR, LOCAL_POSTGRES_PORT, ServiceSettings

# === CONSTANTS ===
# The service's declaration (pyproject.toml [tool.lkern]): name, ports and database.
ENTRY = load_service_entry(Path(__file__).resolve().parents[1])
SERVICE_NAME = ENTRY.name


# === SETTINGS ===
class Settings(ServiceSettings):
    """Contacts service settings; every field is an environment variable (see .env.example)."""

    service_name: str = SERVICE_NAME
    http_port: int = ENTRY.http_port
    grpc_port: int = ENTRY.grpc_port
    database_url: str = ENTRY.local_database_url(LOCAL_POSTGRES_PORT)

    # --- gRPC mutual TLS and who may call (the local stack's certificates by default) ---
    grpc_tls_cert: Path | None = Field(
        default=LOCAL_PKI_DIR / f"{SERVICE_NAME}.crt",
        description="PEM certificate of this service: its gRPC server certificate and its "
        "client certificate (SAN = the service name, its identity)",
    )
    grpc_tls_key: Path | None = Field(
        default=LOCAL_PKI_DIR / f"{SERVICE_NAME}.key",
        description="PEM private key of GRPC_TLS_CERT",
    )
    grpc_client_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: ENTRY.grpc_client_scopes,  # [tool.lkern] grpc_clients
        description="Scopes each calling service (the service name in its client "
        'certificate) has on this gRPC server, JSON: {"lkms102-orders": ["contacts:read"]}',
    )

    # --- event signatures: contacts signs every event it publishes ---
    event_signing_key_file: Path | None = Field(
        default=LOCAL_PKI_DIR / "events" / f"{SERVICE_NAME}.jwk.json",
        description="Private JWK (JSON, with its kid) this service signs its events with",
    )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
