"""
================================================================
FILE: __init__.py
PATH: /services/lkms102-orders/app/schemas/__init__.py
DESCRIPTION: Pydantic schemas of the orders service
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""
