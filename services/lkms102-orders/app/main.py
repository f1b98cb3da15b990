"""
================================================================
FILE: main.py
PATH: /services/lkms102-orders/app/main.py
DESCRIPTION: FastAPI application entry point for orders service
VERSION: v2.0.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
from fastapi import FastAPI

from app.config import Settings, get_settings
from app.spec import SPEC
from lkern_common.service import create_service_app


# === APP FACTORY ===
def create_app(settings: Settings | None = None) -> FastAPI:
    """The orders app: its spec (app/spec.py) run by lkern_common.service's lifespan."""
    return create_service_app(SPEC, settings or get_settings())


# === APP INSTANCE ===
app = create_app()
