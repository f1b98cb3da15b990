"""
================================================================
FILE: config.py
PATH: /services/lkms102-orders/app/config.py
DESCRIPTION: Configuration of the orders service (environment variables, local defaults)
VERSION: v1.2.0
UPDATED: 2026-12-02 06:40:00
================================================================
"""

# === IMPORTS ===
from functools import lru_cache
from pathlib import Path

from pydantic import Field

from lkern_common.grpc_clients.contacts import DEFAULT_CONTACTS_TARGET, ContactsClientSettings
from lkern_common.registry import load_service_entry
from lkern_common.settings import LOCAL_PKI_DIR, LOCAL_POSTGRES_PORT, ServiceSettings

# === CONSTANTS ===
# The service's declaration (pyproject.toml [tool.lkern]): name, ports and database.
ENTRY = load_service_entry(Path(__file__).resolve().parents[1])
SERVICE_NAME = ENTRY.name
CONTACTS_SERVICE = "lkms101-contacts"
CONSUMER_GROUP_ID = ENTRY.consumer_group  # [tool.lkern] consumer_group
DLQ_TOPIC = "lkern.orders.dlq"


# === SETTINGS ===
class Settings(ServiceSettings):
    """Orders service settings; every field is an environment variable (see .env.example)."""

    service_name: str = SERVICE_NAME
    http_port: int = ENTRY.http_port
    grpc_port: int = ENTRY.grpc_port
    database_url: str = ENTRY.local_database_url(LOCAL_POSTGRES_PORT)

    # --- gRPC mutual TLS (server and the contacts client; the local stack's by default) ---
    grpc_tls_cert: Path | None = Field(
        default=LOCAL_PKI_DIR / f"{SERVICE_NAME}.crt",
        description="PEM certificate of this service: its gRPC server certificate and its "
        "client certificate (SAN = the service name, its identity)",
    )
    grpc_tls_key: Path | None = Field(
        default=LOCAL_PKI_DIR / f"{SERVICE_NAME}.key",
        description="PEM private key of GRPC_TLS_CERT",
    )

    # --- event signatures: orders signs its events and trusts contacts' ---
    event_signing_key_file: Path | None = Field(
        default=LOCAL_PKI_DIR / "events" / f"{SERVICE_NAME}.jwk.json",
        description="Private JWK (JSON, with its kid) this service signs its events with",
    )
    event_trusted_jwks: dict[str, Path] = Field(
        # The services of [tool.lkern] consumes_events_of, with the local stack's key files.
        default_factory=lambda: {
            name: LOCAL_PKI_DIR / "events" / f"{name}.jwks.json"
            for name in ENTRY.consumes_events_of
        },
        description="Public keys (JWKS files) of the services whose events this service "
        'consumes, by service name, JSON: {"lkms101-contacts": "/keys/contacts.jwks.json"}',
    )

    # --- contacts service (lkms101) over gRPC ---
    # Same variable names as lkern_common.grpc_clients.contacts.ContactsClientSettings.
    contacts_grpc_target: str = Field(
        default=DEFAULT_CONTACTS_TARGET,
        description="host:port of the contacts service's gRPC server (lkms101-contacts:5101 "
        "in containers)",
    )
    contacts_grpc_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Deadline of one call to contacts, retries included"
    )
    contacts_grpc_max_attempts: int = Field(
        default=3,
        ge=1,
        le=5,
        description="Attempts of a call to contacts that answers UNAVAILABLE (1 = no retry)",
    )
    contacts_grpc_breaker_failure_threshold: int = Field(
        default=5,
        ge=1,
        description="Calls in a row that find contacts unreachable before the circuit breaker "
        "opens (then creates and confirmations answer 503 at once)",
    )
    contacts_grpc_breaker_open_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Seconds the open circuit breaker fails calls to contacts at once before "
        "letting one probe through",
    )

    # --- contact events consumer ---
    kafka_consumer_enabled: bool = Field(
        default=True, description="Consume contact events into the local read model"
    )
    kafka_consumer_group_id: str = Field(
        default=CONSUMER_GROUP_ID, description="Consumer group of the contact events consumer"
    )
    kafka_dlq_topic: str = Field(
        default=DLQ_TOPIC, description="Dead-letter topic of contact events that cannot apply"
    )

    def contacts_client_settings(self) -> ContactsClientSettings:
        """The contacts gRPC client's settings, taken from these settings."""
        return ContactsClientSettings(
            target=self.contacts_grpc_target,
            timeout_seconds=self.contacts_grpc_timeout_seconds,
            max_attempts=self.contacts_grpc_max_attempts,
            breaker_failure_threshold=self.contacts_grpc_breaker_failure_threshold,
            breaker_open_seconds=self.contacts_grpc_breaker_open_seconds,
            tls_ca=self.grpc_tls_ca,
            tls_cert=self.grpc_tls_cert,
            tls_key=self.grpc_tls_key,
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
