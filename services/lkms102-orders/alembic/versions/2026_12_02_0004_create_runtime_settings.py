"""create runtime_settings (settings changed at runtime: the log level)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:30:00
"""

# === IMPORTS ===
from collections.abc import Sequence

from alembic import op

from lkern_common.runtime_config import (
    create_runtime_settings_table_v1,
    drop_runtime_settings_table_v1,
)

# === REVISION IDENTIFIERS ===
revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# === UPGRADE ===
def upgrade() -> None:
    """Create runtime_settings (version 1 of the shared table): PUT /config/log-level keeps it."""
    create_runtime_settings_table_v1(op)


# === DOWNGRADE ===
def downgrade() -> None:
    """Drop runtime_settings (a level set at runtime is forgotten: LOG_LEVEL applies again)."""
    drop_runtime_settings_table_v1(op)
