"""
================================================================
FILE: __init__.py
PATH: /services/lkms102-orders/app/kafka/__init__.py
DESCRIPTION: Kafka side of the orders service: order events (outbox) and contact events (consumer)
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""
