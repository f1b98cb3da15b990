"""
================================================================
FILE: test_conditional.py
PATH: /libs/lkern-common/tests/test_conditional.py
DESCRIPTION: Pure logic of conditional requests and idempotency keys (header parsing, matching)
VERSION: v1.0.0
UPDATED: 2026-12-02 03:05:00
================================================================
"""

# === IMPORTS ===
import pytest
from pydantic import BaseModel

from lkern_common.idempotency import InvalidIdempotencyKeyError, fingerprint, parse_key
from lkern_common.web.conditional import (
    IfMatch,
    InvalidConditionError,
    PreconditionFailedError,
    etag,
    not_modified,
)


# === IF-MATCH ===
def test_if_match_uses_the_strong_comparison() -> None:
    assert etag(3) == '"3"'
    assert IfMatch.parse('"3"').matches(3)
    assert IfMatch.parse(' "1", "3" ').matches(3)
    assert IfMatch.parse("*").matches(99)
    assert not IfMatch.parse('W/"3"').matches(3)
    assert not IfMatch.parse('"2"').matches(3)
    with pytest.raises(PreconditionFailedError) as failed:
        IfMatch.parse('"2"').check(3)
    assert failed.value.current_version == 3


@pytest.mark.parametrize("value", ["3", '"3', "W/3", '"3",', "", '"' + "1" * 2000 + '"'])
def test_a_malformed_condition_is_refused(value: str) -> None:
    with pytest.raises(InvalidConditionError):
        IfMatch.parse(value)


def test_if_none_match_uses_the_weak_comparison() -> None:
    assert not_modified(None, 3) is None
    assert not_modified('"2"', 3) is None
    for value in ('"3"', 'W/"3"', '"1", "3"', "*"):
        answer = not_modified(value, 3)
        assert answer is not None and answer.status_code == 304
        assert answer.headers["ETag"] == '"3"'


# === IDEMPOTENCY KEYS ===
def test_keys_may_be_quoted_and_must_be_printable_ascii() -> None:
    assert parse_key("abc") == parse_key('"abc"') == "abc"
    for bad in ("", '""', "x" * 256, "ключ", "a\tb"):
        with pytest.raises(InvalidIdempotencyKeyError):
            parse_key(bad)


class Body(BaseModel):
    a: int
    b: str = "x"


def test_the_fingerprint_ignores_key_order_and_spacing_but_not_values() -> None:
    assert fingerprint(Body.model_validate({"a": 1, "b": "x"})) == fingerprint(
        Body.model_validate({"b": "x", "a": 1})
    )
    assert fingerprint(Body(a=1)) == fingerprint(Body(a=1, b="x"))
    assert fingerprint(Body(a=1)) != fingerprint(Body(a=2))
