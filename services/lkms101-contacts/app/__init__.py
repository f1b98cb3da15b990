"""
================================================================
FILE: __init__.py
PATH: /services/lkms101-contacts/app/__init__.py
DESCRIPTION: Contacts service (lkms101) application package
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""
