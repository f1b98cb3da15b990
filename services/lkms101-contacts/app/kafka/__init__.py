"""
================================================================
FILE: __init__.py
PATH: /services/lkms101-contacts/app/kafka/__init__.py
DESCRIPTION: Kafka side of the contacts service: contact events, written to the outbox
VERSION: v1.0.0
UPDATED: 2026-11-26 15:00:00
================================================================
"""
