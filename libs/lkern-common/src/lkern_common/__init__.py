"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/__init__.py
DESCRIPTION: L-KERN shared service library: what every service needs once
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

__version__ = "1.0.0"
