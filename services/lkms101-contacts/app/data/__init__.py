"""
================================================================
FILE: __init__.py
PATH: /services/lkms101-contacts/app/data/__init__.py
DESCRIPTION: Typed data access on asyncpg: the hot reads and the create (docs/performance.md)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:15:00
================================================================
"""
