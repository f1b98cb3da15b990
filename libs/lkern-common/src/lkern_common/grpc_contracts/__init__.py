"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/grpc_contracts/__init__.py
DESCRIPTION: Generated gRPC contracts (one sub-package per .proto) for clients in other services
VERSION: v1.0.0
UPDATED: 2026-11-26 11:00:00
================================================================

Do not edit the sub-packages by hand: they are produced from each service's proto/ folder by
`.venv/bin/python scripts/gen_grpc.py` (and verified by `scripts/gen_grpc.py --check`).
"""
