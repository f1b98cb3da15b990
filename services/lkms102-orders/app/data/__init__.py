"""
================================================================
FILE: __init__.py
PATH: /services/lkms102-orders/app/data/__init__.py
DESCRIPTION: Orders' typed views and their plain-SQL reads (asyncpg)
VERSION: v1.0.0
UPDATED: 2026-12-02 07:00:00
================================================================
"""
