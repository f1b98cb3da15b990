"""
================================================================
FILE: __init__.py
PATH: /services/lkms102-orders/app/__init__.py
DESCRIPTION: Orders service (lkms102) application package
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""
