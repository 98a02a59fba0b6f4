"""Typed reading of custom-resource properties.

CloudFormation delivers every custom-resource property as a string: numbers
and booleans arrive as ``"384"`` and ``"true"``, nested objects keep their
shape but their leaves are strings too. Passing such values straight into an
ML Commons request is how ``"is_asymmetric": "true"`` ends up silently
ignored. Every property is therefore read through these helpers, which coerce,
validate, and fail with one line naming the property and what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


class PropertyError(ValueError):
    """A resource property is missing or malformed (a template bug, not a runtime fault)."""


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class Props:
    """Read-only view of ``ResourceProperties`` with typed, validated getters."""

    def __init__(self, raw: Mapping[str, Any] | None, resource_type: str) -> None:
        if raw is not None and not isinstance(raw, Mapping):
            raise PropertyError(
                f"{resource_type}: ResourceProperties is a {type(raw).__name__}; expected an object"
            )
        self._raw: Mapping[str, Any] = raw or {}
        self._type = resource_type

    def _fail(self, key: str, value: Any, expected: str) -> PropertyError:
        # A value can be up to CloudFormation's 1 MB of template: show only its start.
        shown = "missing" if value is None else _short(repr(value))
        return PropertyError(f"{self._type} property {key}: {shown}; expected {expected}")

    def contains(self, key: str) -> bool:
        """Present at all, even as an empty string (an empty prefix is a choice)."""
        return key in self._raw

    def raw(self, key: str) -> Any:
        """The value as CloudFormation sent it (None if absent), for a getter's own parsing."""
        return self._raw.get(key)

    def has(self, key: str) -> bool:
        value = self._raw.get(key)
        return value is not None and value != ""

    def string(
        self,
        key: str,
        *,
        default: str | None = None,
        pattern: str | None = None,
        what: str = "a non-empty string",
        allow_empty: bool = False,
    ) -> str:
        value = self._raw.get(key)
        if value is None or (value == "" and not allow_empty):
            if default is not None:
                return default
            raise self._fail(key, value, what)
        if not isinstance(value, str):
            raise self._fail(key, value, what)
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self._fail(key, value, what)
        return value

    def integer(self, key: str, *, lo: int, hi: int, default: int | None = None) -> int:
        value = self._raw.get(key)
        if value is None or value == "":
            if default is not None:
                return default
            raise self._fail(key, value, f"an integer from {lo} to {hi}")
        # bool is an int subclass; True for a count is a template bug.
        if isinstance(value, bool):
            raise self._fail(key, value, f"an integer from {lo} to {hi}")
        try:
            number = int(value) if isinstance(value, int) else int(str(value).strip(), 10)
        except ValueError:
            raise self._fail(key, value, f"an integer from {lo} to {hi}") from None
        if not lo <= number <= hi:
            raise self._fail(key, value, f"an integer from {lo} to {hi}")
        return number

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self._raw.get(key)
        if value is None or value == "":
            if default is not None:
                return default
            raise self._fail(key, value, "true or false")
        return to_bool(value, lambda: self._fail(key, value, "true or false"))

    def choice(self, key: str, choices: tuple[str, ...], *, default: str | None = None) -> str:
        value = self.string(key, default=default, what="one of " + ", ".join(choices))
        if value not in choices:
            raise self._fail(key, value, "one of " + ", ".join(choices))
        return value

    def string_list(self, key: str, *, pattern: str | None = None, what: str) -> list[str]:
        """A list of strings; CloudFormation keeps lists as lists, a JSON string is also read."""
        value = self._raw.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise self._fail(key, value, what) from None
        if not isinstance(value, list) or not value:
            raise self._fail(key, value, what)
        for item in value:
            if not isinstance(item, str) or not item:
                raise self._fail(key, value, what)
            if pattern is not None and not re.fullmatch(pattern, item):
                raise self._fail(key, value, what)
        return list(value)

    def mapping(self, key: str) -> dict[str, Any]:
        """A JSON object, given either as a nested object or as a JSON string."""
        value = self._raw.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise self._fail(key, value, "a JSON object") from None
        if not isinstance(value, dict):
            raise self._fail(key, value, "a JSON object")
        return dict(value)


def _short(text: str, limit: int = 80) -> str:
    """One line of at most ``limit`` characters (a reason stays within CloudFormation's 4 KB)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def to_bool(value: Any, fail: Any) -> bool:
    """Read a CloudFormation boolean (``"true"``/``"false"``, any case) or a real bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise fail()


ROLE_ARN = r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}"
REGION = r"[a-z]{2}(-gov|-iso|-isob)?-[a-z]+-\d"
ENDPOINT_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
INDEX_NAME = r"[a-z0-9][a-z0-9_\-]{0,200}"
FIELD_NAME = r"[A-Za-z][A-Za-z0-9_]{0,63}"
OBJECT_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
