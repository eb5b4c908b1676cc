"""A pydantic model's JSON schema (draft 2020-12, with ``$defs``) as one self-contained draft-04
document, the dialect Kazoo's schemas and its clients' validators speak.

``$ref`` is inlined, optional fields keep their ``null`` (``"type": ["string", "null"]``: the API
takes ``null`` for them), the 2020-12 spellings become draft-04 ones (``const``, numeric
``exclusiveMinimum``, ``prefixItems``) and pydantic's annotations (``title``, ``examples``,
``default: null``) go. A keyword not known here raises ``ValueError``, so that a model using a new
construct fails the tests instead of being published looser than the API validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

DRAFT_04 = "http://json-schema.org/draft-04/schema#"
_DEFS = "#/$defs/"

# Same spelling and meaning in draft-04 and 2020-12.
_KEPT = frozenset(
    {
        "type",
        "enum",
        "description",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "required",
    }
)
# Annotations that validate nothing and that draft-04 does not have.
_DROPPED = frozenset({"title", "examples", "deprecated", "readOnly", "writeOnly"})
_ONE_SCHEMA = frozenset({"not", "additionalProperties", "additionalItems"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
# Which keywords constrain which type only: branches of an anyOf that use nothing else can be
# merged into one schema with a list of types without changing what it accepts.
_NUMERIC = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
_TYPE_KEYWORDS: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": _NUMERIC,
    "number": _NUMERIC,
    "array": frozenset({"items", "additionalItems", "minItems", "maxItems", "uniqueItems"}),
    "object": frozenset(
        {
            "properties",
            "patternProperties",
            "required",
            "additionalProperties",
            "minProperties",
            "maxProperties",
        }
    ),
    "boolean": frozenset(),
    "null": frozenset(),
}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s validation schema in draft-04, every ``$ref`` inlined, keys sorted."""
    source = model.model_json_schema(mode="validation")
    defs: Mapping[str, Any] = source.pop("$defs", {})
    return _Converter(defs).convert(source)


class _Converter:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs
        self.expanding: list[str] = []

    def convert(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ref = schema.get("$ref")
        if ref is not None:
            out.update(self._inline(str(ref)))
        for key, value in schema.items():
            if key == "$ref" or key in _DROPPED:
                continue
            if key == "default":
                if value is not None:
                    out["default"] = value
            elif key == "const":
                out["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                if bound in schema:
                    raise ValueError(f"both {bound} and {key} in one schema: {schema}")
                out[bound] = value
                out[key] = True
            elif key == "prefixItems":
                out["items"] = [self.convert(item) for item in value]
                rest = schema.get("items")
                if rest is not None:
                    out["additionalItems"] = rest if isinstance(rest, bool) else self.convert(rest)
            elif key == "items":
                if "prefixItems" not in schema:
                    out["items"] = value if isinstance(value, bool) else self.convert(value)
            elif key in _ONE_SCHEMA:
                out[key] = value if isinstance(value, bool) else self.convert(value)
            elif key in _SCHEMA_MAPS:
                out[key] = {name: self.convert(sub) for name, sub in sorted(value.items())}
            elif key in _SCHEMA_LISTS:
                branches = [self.convert(sub) for sub in value]
                merged = _merged(branches) if key == "anyOf" else {key: branches}
                out.update({name: sub for name, sub in merged.items() if name not in schema})
            elif key == "description":
                out[key] = _plain(value)
            elif key == "required":
                out[key] = sorted(value)
            elif key in _KEPT:
                out[key] = value
            else:
                raise ValueError(f"no draft-04 equivalent known for JSON schema keyword {key!r}")
        return dict(sorted(out.items()))

    def _inline(self, ref: str) -> dict[str, Any]:
        if not ref.startswith(_DEFS) or ref[len(_DEFS) :] not in self.defs:
            raise ValueError(f"cannot inline $ref {ref!r}")
        name = ref[len(_DEFS) :]
        if name in self.expanding:
            raise ValueError(f"recursive model {name} cannot be inlined into one document")
        self.expanding.append(name)
        try:
            return self.convert(self.defs[name])
        finally:
            self.expanding.pop()


def _merged(branches: list[dict[str, Any]]) -> dict[str, Any]:
    """``anyOf`` branches as one schema with a type list when that accepts exactly the same
    values (Kazoo's style: ``"type": ["string", "array"]``); else ``anyOf`` as it is."""
    kinds: list[str] = []
    merged: dict[str, Any] = {}
    enum: list[Any] | None = None
    descriptions: list[str] = []
    for branch in branches:
        kind = branch.get("type")
        if not isinstance(kind, str) or kind in kinds or kind not in _TYPE_KEYWORDS:
            return {"anyOf": branches}
        rest = {key: value for key, value in branch.items() if key != "type"}
        if "description" in rest:
            descriptions.append(rest.pop("description"))
        if "enum" in rest:
            if enum is not None:
                return {"anyOf": branches}
            enum = list(rest.pop("enum"))
        if not set(rest) <= _TYPE_KEYWORDS[kind] or set(rest) & set(merged):
            return {"anyOf": branches}
        kinds.append(kind)
        merged.update(rest)
    if enum is not None:
        # An enum binds every type of the merged schema: only null may sit beside its own.
        if len([kind for kind in kinds if kind != "null"]) > 1:
            return {"anyOf": branches}
        merged["enum"] = [*enum, None] if "null" in kinds else enum
    merged["type"] = kinds[0] if len(kinds) == 1 else kinds
    if descriptions:
        merged["description"] = " ".join(descriptions)  # the field's own, if any, wins
    return dict(sorted(merged.items()))


def _plain(text: str) -> str:
    """Docstrings' reST literals (````x````) as plain text, as Kazoo's descriptions are."""
    return text.replace("``", "")
