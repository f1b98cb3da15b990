"""
================================================================
FILE: env.py
PATH: /services/lkms102-orders/alembic/env.py
DESCRIPTION: Alembic environment of the orders service (async, shared implementation)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from logging.config import fileConfig

from alembic import context

import app.models  # noqa: F401  (registers every model on the metadata)
from app.config import get_settings
from app.database import Base
from lkern_common.migrations import run_alembic_env

# === LOGGING ===
if context.config.config_file_name is not None and context.config.attributes.get(
    "configure_logger", True
):
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

# === MIGRATIONS ===
run_alembic_env(Base.metadata, get_settings().database_url)
