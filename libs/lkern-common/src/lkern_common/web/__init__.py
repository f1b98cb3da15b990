"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/web/__init__.py
DESCRIPTION: FastAPI pieces shared by every service: app factory, middleware, error handlers, health
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""
