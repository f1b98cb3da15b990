"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/grpc_contracts/orders/__init__.py
DESCRIPTION: gRPC package; its *_pb2* modules are generated from orders.proto by gen_grpc.py
VERSION: v1.0.0
UPDATED: 2026-11-26 10:13:39
================================================================
"""
