"""
================================================================
FILE: database.py
PATH: /services/lkms101-contacts/app/database.py
DESCRIPTION: Database pieces of the contacts service (from the shared library)
VERSION: v1.1.0
UPDATED: 2026-11-26 15:00:00
================================================================
"""

# === IMPORTS ===
from lkern_common.database import Base, Database
from lkern_common.web.deps import DatabaseDep, SessionDep

# === EXPORTS ===
__all__ = ["Base", "Database", "DatabaseDep", "SessionDep"]
