"""Typed, range-checked access to a JSON object, naming the parameter on every error.

Every provider's request parser reads its body through ``Obj`` so that no field
reaches the engine unchecked and every failure is a 400 that says which
parameter was wrong (``messages[2].content``).
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any, Iterator

from mlxcli.core.errors import InvalidRequest

MAX_STRING = 1 << 22  # 4 Mi characters; the body limit usually bites first


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Obj:
    """A JSON object at ``path`` inside the request body."""

    def __init__(self, data: Any, path: str = ""):
        if not isinstance(data, dict):
            raise InvalidRequest(f"{path or 'The request body'} must be an object, not {_describe(data)}.", param=path or None)
        self.data = data
        self.path = path

    def param(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def _missing(self, key: str) -> InvalidRequest:
        return InvalidRequest(f"Missing required parameter: '{self.param(key)}'.", param=self.param(key), code="missing_required_parameter")

    def _wrong(self, key: str, expected: str) -> InvalidRequest:
        value = self.data.get(key)
        return InvalidRequest(
            f"Invalid type for '{self.param(key)}': expected {expected}, but got {_describe(value)}.",
            param=self.param(key),
            code="invalid_type",
        )

    def _range(self, key: str, message: str) -> InvalidRequest:
        return InvalidRequest(f"Invalid value for '{self.param(key)}': {message}", param=self.param(key), code="invalid_value")

    def str(
        self,
        key: str,
        *,
        required: bool = False,
        default: str | None = None,
        choices: tuple[str, ...] | None = None,
        max_len: int = MAX_STRING,
        allow_empty: bool = True,
        printable: bool = False,
    ) -> str | None:
        """``printable``: no control or invisible formatting characters (names, ids)."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        if choices is not None and value not in choices:
            raise self._range(key, f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}.")
        if len(value) > max_len:
            raise self._range(key, f"string too long ({len(value)} > {max_len} characters).")
        if not allow_empty and not value:
            raise self._range(key, "must not be empty.")
        if printable and any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
            raise self._range(key, "must not contain control characters.")
        return value

    def int(
        self, key: str, *, lo: int | None = None, hi: int | None = None, required: bool = False, default: int | None = None
    ) -> int | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return default
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)  # 5.0 is an integer to most clients
        if not is_int(value):
            raise self._wrong(key, "an integer")
        self._check_range(key, value, lo, hi)
        return value

    def num(
        self, key: str, *, lo: float | None = None, hi: float | None = None, required: bool = False, default: float | None = None
    ) -> float | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return default
        if not is_number(value):
            raise self._wrong(key, "a finite number")
        self._check_range(key, value, lo, hi)
        return float(value)

    def _check_range(self, key: str, value: float, lo: float | None, hi: float | None) -> None:
        if lo is not None and value < lo:
            raise self._range(key, f"{value} is less than the minimum of {lo}.")
        if hi is not None and value > hi:
            raise self._range(key, f"{value} is greater than the maximum of {hi}.")

    def bool(self, key: str, *, default: bool | None = None) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "a boolean")
        return value

    def list(self, key: str, *, required: bool = False, min_items: int = 0, max_items: int = 10_000) -> list[tuple[Any, str]]:
        """The items with their parameter paths, ``[(item, "key[i]"), ...]``."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "an array")
        if len(value) < min_items:
            raise self._range(key, f"expected at least {min_items} item(s), got {len(value)}.")
        if len(value) > max_items:
            raise self._range(key, f"expected at most {max_items} items, got {len(value)}.")
        return [(item, f"{self.param(key)}[{i}]") for i, item in enumerate(value)]

    def obj(self, key: str, *, required: bool = False, max_keys: int = 10_000) -> "Obj | None":
        value = self.data.get(key)
        if value is None:
            if required:
                raise self._missing(key)
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object")
        if len(value) > max_keys:
            raise self._range(key, f"expected at most {max_keys} keys, got {len(value)}.")
        return Obj(value, self.param(key))

    def str_map(self, key: str, *, max_items: int, max_key_len: int, max_value_len: int) -> dict[str, str]:
        """An object of string values (e.g. ``metadata``)."""
        o = self.obj(key, max_keys=max_items)
        if o is None:
            return {}
        for name in o.data:
            if len(name) > max_key_len:
                raise self._range(key, f"key {name[:32]!r}... is longer than {max_key_len} characters.")
            o.str(name, max_len=max_value_len)
        return dict(o.data)

    def unsupported(self, key: str, why: str = "is not supported by this server") -> None:
        """Refuse a known field the server cannot honour, rather than silently ignoring it.

        Absent, null, false and empty values are accepted: clients often send the defaults.
        """
        value = self.data.get(key)
        if value is None or value is False or value in ("", [], {}):
            return
        raise InvalidRequest(f"'{self.param(key)}' {why}.", param=self.param(key), code="unsupported_parameter")

    def str_or_list(self, key: str, *, max_items: int, max_len: int) -> list[str]:
        """A string or an array of strings (e.g. ``stop``) → list of strings."""
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            items = [value]
        elif isinstance(value, list):
            items = value
            if len(items) > max_items:
                raise self._range(key, f"expected at most {max_items} items, got {len(items)}.")
        else:
            raise self._wrong(key, "a string or an array of strings")
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidRequest(
                    f"Invalid type for '{self.param(key)}[{i}]': expected a string, but got {_describe(item)}.",
                    param=f"{self.param(key)}[{i}]",
                    code="invalid_type",
                )
            if len(item) > max_len:
                raise self._range(key, f"item {i} is too long ({len(item)} > {max_len} characters).")
        return list(items)


def objects(items: list[tuple[Any, str]]) -> Iterator[Obj]:
    """Each item of ``Obj.list`` as an ``Obj`` (an error names the item if it is not an object)."""
    for item, path in items:
        yield Obj(item, path)
