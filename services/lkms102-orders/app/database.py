"""
================================================================
FILE: database.py
PATH: /services/lkms102-orders/app/database.py
DESCRIPTION: Database pieces of the orders service (from the shared library)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from lkern_common.database import Base, Database
from lkern_common.web.deps import ReadSessionDep, SessionDep

# === EXPORTS ===
__all__ = ["Base", "Database", "ReadSessionDep", "SessionDep"]
