"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/kafka/__init__.py
DESCRIPTION: Kafka pieces shared by every service: producer, topics, idempotent consumer with inbox
VERSION: v1.0.0
UPDATED: 2026-11-26 14:00:00
================================================================

Import the submodules directly (``lkern_common.kafka.consumer``, ``lkern_common.kafka.inbox``…).
This package imports nothing on purpose: importing ``inbox`` adds the ``inbox_events`` table to
the shared metadata, which only a consuming service's migrations create.
"""
