"""
================================================================
FILE: config.py
PATH: /services/lkms101-contacts/app/config.py
DESCRIPTION: Configuration of the contacts service (environment variables, local defaults)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from functools import lru_cache

from lkern_common.settings import LOCAL_POSTGRES_PORT, ServiceSettings


# === SETTINGS ===
class Settings(ServiceSettings):
    """Contacts service settings; every field is an environment variable (see .env.example)."""

    service_name: str = "lkms101-contacts"
    http_port: int = 4101
    grpc_port: int = 5101
    database_url: str = (
        f"postgresql+asyncpg://postgres@127.0.0.1:{LOCAL_POSTGRES_PORT}/lkms101_contacts"
    )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
