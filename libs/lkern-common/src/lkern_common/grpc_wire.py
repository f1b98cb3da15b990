"""
================================================================
FILE: grpc_wire.py
PATH: /libs/lkern-common/src/lkern_common/grpc_wire.py
DESCRIPTION: Request messages checked as they arrive: corrupt bytes and 32-bit integers sent
             as 64-bit values are refused instead of failing obscurely or being truncated
VERSION: v1.0.0
UPDATED: 2026-12-02 03:05:00
================================================================

Protobuf decodes a 64-bit varint sent for an ``int32`` field by keeping its low 32 bits: an id
of 2^32 + 7 becomes 7, another contact. ``checked_deserializer`` wraps a generated
``Message.FromString``: a message that does not decode, or that has a 32-bit integer field
whose value on the wire does not fit, becomes a ``BadRequest`` that the server's interceptor
answers with INVALID_ARGUMENT (lkern_common.grpc_server).

The check costs one re-serialisation per request: a message whose canonical encoding is the
bytes received cannot hold a truncated value (a truncated value encodes shorter). Only when
they differ (another encoder's field order, unknown fields, a wide value) are the bytes walked.
"""

# === IMPORTS ===
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# === CONSTANTS ===
_INT32_RANGE = (-(2**31), 2**31 - 1)
_UINT32_MAX = 2**32 - 1
_WIRE_VARINT, _WIRE_64BIT, _WIRE_LENGTH, _WIRE_32BIT = 0, 1, 2, 5


# === TYPES ===
@dataclass(frozen=True)
class BadRequest:
    """A request message refused before it reached the servicer (the reason is safe to show)."""

    reason: str


# === WIRE FORMAT ===
def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("malformed varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fits(field: FieldDescriptor, raw: int) -> bool:
    """Whether the varint ``raw`` on the wire is a value of the 32-bit field ``field``."""
    if field.type == FieldDescriptor.TYPE_INT32:
        signed = raw - 2**64 if raw >= 2**63 else raw
        return _INT32_RANGE[0] <= signed <= _INT32_RANGE[1]
    if field.type == FieldDescriptor.TYPE_UINT32:
        return raw <= _UINT32_MAX
    if field.type == FieldDescriptor.TYPE_SINT32:
        decoded = (raw >> 1) ^ -(raw & 1)
        return _INT32_RANGE[0] <= decoded <= _INT32_RANGE[1]
    return True


def _packed_misfit(field: FieldDescriptor, chunk: bytes) -> bool:
    pos = 0
    while pos < len(chunk):
        raw, pos = _read_varint(chunk, pos)
        if not _fits(field, raw):
            return True
    return False


def out_of_range_field(descriptor: Descriptor, data: bytes) -> str | None:
    """
    The dotted name of the first 32-bit integer field (also in nested messages and packed
    repeated fields) whose value in ``data`` does not fit it, else None. ValueError when
    ``data`` is not a well-formed message.
    """
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field = descriptor.fields_by_number.get(key >> 3)
        wire_type = key & 7
        if wire_type == _WIRE_VARINT:
            raw, pos = _read_varint(data, pos)
            if field is not None and not _fits(field, raw):
                return field.name
        elif wire_type == _WIRE_64BIT:
            pos += 8
        elif wire_type == _WIRE_32BIT:
            pos += 4
        elif wire_type == _WIRE_LENGTH:
            length, pos = _read_varint(data, pos)
            chunk, pos = data[pos : pos + length], pos + length
            if field is None:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
                inner = out_of_range_field(field.message_type, chunk)
                if inner is not None:
                    return f"{field.name}.{inner}"
            elif _packed_misfit(field, chunk):
                return field.name
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise ValueError("truncated message")
    return None


# === DESERIALIZER ===
def checked_deserializer(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``deserialize`` (a generated ``Message.FromString``) returning BadRequest, never raising."""
    message_class = getattr(deserialize, "__self__", None)
    descriptor: Descriptor | None = getattr(message_class, "DESCRIPTOR", None)

    def parse(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception:
            return BadRequest("The request message could not be decoded")
        if descriptor is not None and message.SerializeToString() != data:
            try:
                field = out_of_range_field(descriptor, data)
            except ValueError:
                return BadRequest("The request message could not be decoded")
            if field is not None:
                return BadRequest(f"{field} is out of range for a 32-bit integer")
        return message

    return parse
