"""Small JSON Schemas of every common shape, for the real-model tests and the compile-time figures.

Strings, arrays and numbers are bounded, so a 135M model finishes them within a modest ``max_tokens``.
"""

from __future__ import annotations

from typing import Any


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


WORD = {"type": "string", "maxLength": 16}

SCHEMAS: dict[str, dict[str, Any]] = {
    "person": _object({"name": WORD, "age": {"type": "integer", "minimum": 0, "maximum": 120}}),
    "color_enum": _object({"color": {"enum": ["red", "green", "blue"]}}),
    "nested_object": _object({"person": _object({"first": WORD, "last": WORD}), "city": WORD}),
    "string_array": _object({"items": {"type": "array", "items": WORD, "minItems": 1, "maxItems": 3}}),
    "boolean": _object({"answer": {"type": "boolean"}}),
    "bounded_number": _object({"celsius": {"type": "number", "minimum": -50, "maximum": 50}}),
    "optional_field": _object({"title": WORD, "subtitle": WORD}, required=["title"]),
    "any_of": _object({"value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 999}, WORD]}}),
    "object_array": _object({"points": {"type": "array", "maxItems": 2, "items": _object({"x": {"type": "integer", "minimum": 0, "maximum": 9}, "y": {"type": "integer", "minimum": 0, "maximum": 9}})}}),
    "const": _object({"version": {"const": 1}, "name": WORD}),
    "integer_enum": _object({"rating": {"enum": [1, 2, 3, 4, 5]}}),
    "nested_arrays": _object({"grid": {"type": "array", "maxItems": 2, "items": {"type": "array", "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 9}}}}),
    "nullable": _object({"note": {"anyOf": [WORD, {"type": "null"}]}}),
    "date_pattern": _object({"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}),
    "zip_pattern": _object({"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}),
    "top_level_array": {"type": "array", "items": WORD, "minItems": 1, "maxItems": 3},
    "refs": {"$defs": {"point": _object({"x": {"type": "integer", "minimum": 0, "maximum": 99}})}, **_object({"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}})},
    "mixed_fields": _object({"id": {"type": "integer", "minimum": 1, "maximum": 9999}, "name": WORD, "active": {"type": "boolean"}}),
    "enum_array": _object({"tags": {"type": "array", "items": {"enum": ["x", "y", "z"]}, "maxItems": 3}}),
    "deep_nesting": _object({"a": _object({"b": _object({"c": {"type": "integer", "minimum": 0, "maximum": 9}})})}),
    "exclusive_bounds": _object({"count": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100}}),
    "short_strings": _object({"first": {"type": "string", "minLength": 1, "maxLength": 4}, "second": {"type": "string", "maxLength": 4}}),
}
