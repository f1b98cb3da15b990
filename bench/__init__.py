"""
================================================================
FILE: __init__.py
PATH: /bench/__init__.py
DESCRIPTION: Benchmark suite of the L-KERN v4 backend (make bench; docs/performance.md)
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================
"""
