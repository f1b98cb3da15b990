"""
================================================================
FILE: __main__.py
PATH: /services/lkms102-orders/app/__main__.py
DESCRIPTION: Runs the orders service: python -m app (REST 4102 and gRPC 5102 in one process)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from app.config import get_settings
from lkern_common.web.serve import serve

# === MAIN ===
if __name__ == "__main__":
    serve("app.main:app", get_settings())
