"""
================================================================
FILE: config.py
PATH: /services/lkms102-orders/app/config.py
DESCRIPTION: Configuration of the orders service (environment variables, local defaults)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from functools import lru_cache

from pydantic import Field

from lkern_common.grpc_clients.contacts import DEFAULT_CONTACTS_TARGET, ContactsClientSettings
from lkern_common.settings import LOCAL_POSTGRES_PORT, ServiceSettings

# === CONSTANTS ===
CONSUMER_GROUP_ID = "lkms102-orders-group"
DLQ_TOPIC = "lkern.orders.dlq"


# === SETTINGS ===
class Settings(ServiceSettings):
    """Orders service settings; every field is an environment variable (see .env.example)."""

    service_name: str = "lkms102-orders"
    http_port: int = 4102
    grpc_port: int = 5102
    database_url: str = (
        f"postgresql+asyncpg://postgres@127.0.0.1:{LOCAL_POSTGRES_PORT}/lkms102_orders"
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
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
