"""
================================================================
FILE: __init__.py
PATH: /services/lkms101-contacts/app/services/__init__.py
DESCRIPTION: Business logic of the contacts service
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""
