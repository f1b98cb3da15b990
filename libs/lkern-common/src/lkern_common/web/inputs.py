"""
================================================================
FILE: inputs.py
PATH: /libs/lkern-common/src/lkern_common/web/inputs.py
DESCRIPTION: One rule for every REST input: storable text, no unknown fields, strict ids and flags
VERSION: v1.0.0
UPDATED: 2026-12-02 02:10:00
================================================================

Every request schema of every service derives from ``InputModel``; query parameters that are
text use ``Text``. What that gives (docs/errors.md):

- Text PostgreSQL cannot store (NUL ``\\u0000``, unpaired surrogates) is a 422 naming the field,
  never a database error: every ``str`` of an ``InputModel`` (also inside lists and nested
  models) is checked, so a new field cannot forget it.
- Unknown fields are a 422 (``extra_forbidden``): a typo such as ``is_activ`` is not silently
  ignored, and a field the client cannot set (``id``, ``version``, ``created_at``) is refused.
- Surrounding whitespace of text is dropped.
- ``Id`` and ``Flag`` are strict in JSON: ``true`` is not contact 1, ``"1"`` is not ``true``.
"""

# === IMPORTS ===
from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    Strict,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from lkern_common.database import INT32_MAX

# === CONSTANTS ===
# The JSON Schema pattern that documents the check (ECMA regex: no NUL anywhere).
STORABLE_TEXT_PATTERN = "^[^\\u0000]*$"


# === TEXT ===
def check_storable_text(value: str) -> str:
    """``value`` unchanged, or a 422 when PostgreSQL's text type cannot hold it."""
    if "\x00" in value:
        raise PydanticCustomError(
            "text_not_storable", "Text must not contain the NUL character (\\u0000)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "text_not_storable", "Text must not contain unpaired surrogate characters"
        ) from None
    return value


def _check_nested_text(value: Any) -> Any:
    """Check every string inside ``value`` (lists, dicts); nested models checked themselves."""
    if isinstance(value, str):
        return check_storable_text(value)
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_nested_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_nested_text(key)
            _check_nested_text(item)
    return value


# Text for a query or path parameter (request models check their text themselves).
Text = Annotated[str, AfterValidator(check_storable_text)]


# === EMAIL ===
def _any_case(word: str) -> str:
    """An ECMA regex for ``word`` in any letter case (JSON Schema patterns have no flags)."""
    return "".join(f"[{char.lower()}{char.upper()}]" if char.isalpha() else char for char in word)


# What email-validator refuses that JSON Schema's `format: email` allows: special-use and
# reserved domains (example@host.test, …@x.local) and a domain without a period. The schema
# adds this pattern so that clients generated from it send only addresses we take.
EMAIL_PATTERN = (
    "^(?!.*@(?:[^@]*\\.)?(?:"
    + "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
    + ")\\.?$)[^@]+@[^@]*\\.[^@]*$"
)


def check_email(value: str) -> str:
    """
    An email address in its normalised form (domain lower-cased), as pydantic's ``EmailStr``
    checks it (email-validator, no DNS look-up) but without a display name (``Jo <jo@x.org>``).
    """
    try:
        return validate_email(
            value, check_deliverability=False, allow_display_name=False
        ).normalized
    except EmailNotValidError as error:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(error)}
        ) from None


class _EmailSchema:
    """
    ``format: email`` and EMAIL_PATTERN in the field's JSON schema only: the check itself is
    email-validator's (pydantic's regex engine has no look-ahead).
    """

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["format"] = "email"
        schema["pattern"] = EMAIL_PATTERN
        return schema


# An email address: at most 254 characters, as email addresses are.
Email = Annotated[
    str,
    Field(max_length=254),
    _EmailSchema,
    AfterValidator(check_email),
]

# === STRICT TYPES ===
# A database id (PostgreSQL integer): a JSON integer 1..2^31-1; never a boolean, string or float.
Id = Annotated[int, Strict(), Field(ge=1, le=INT32_MAX)]
# A flag: a JSON boolean only (not 0/1, not "true").
Flag = Annotated[bool, Strict()]


# === FIELDS ===
def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**field_args: Any) -> Any:
    """
    A field of an update that may be left out (then it is unchanged) but is never ``null``:
    the default ``None`` only marks "not sent" (read with ``model_dump(exclude_unset=True)``),
    it is not validated, so ``null`` sent is a 422, and the schema neither calls the field
    nullable nor shows a ``null`` default.
    """
    return Field(default=None, json_schema_extra=_without_default, **field_args)


# === BASE MODEL ===
class InputModel(BaseModel):
    """
    Base of every request body schema: unknown fields refused, text stripped and storable.
    Read-only fields (``id``, ``version``, ``created_at``…) are simply not declared, so sending
    them is a 422 like any other unknown field.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return _check_nested_text(value)
