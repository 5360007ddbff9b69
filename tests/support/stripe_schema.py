"""Validate objects against the vendored excerpt of Stripe's OpenAPI description.

OpenAPI 3.0's ``nullable`` becomes a JSON Schema ``null`` alternative. The top level of a
Checkout Session and of an event is closed (``additionalProperties: false``): a field the
pinned version does not have is an error, as is an enum value it does not know.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from local_stripe.params import spec

_CLOSED = ("checkout.session", "event", "webhook_endpoint")


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-") or key in ("nullable", "format", "description", "title"):
            continue
        if key == "$ref":
            out[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key in ("properties", "definitions"):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _definitions() -> dict[str, Any]:
    definitions = {name: _convert(schema) for name, schema in spec()["components"]["schemas"].items()}
    for name in _CLOSED:
        definitions[name]["additionalProperties"] = False
    return definitions


def errors(obj: dict[str, Any], schema_name: str) -> list[str]:
    """Every way ``obj`` breaks the pinned version's schema of ``schema_name``; for an event
    whose data holds a Checkout Session, the session is checked too."""
    schema = {"definitions": _definitions(), "$ref": f"#/definitions/{schema_name}"}
    validator = jsonschema.Draft7Validator(schema)
    found = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
             for e in validator.iter_errors(obj)]
    if schema_name == "event":
        inner = (obj.get("data") or {}).get("object") or {}
        if inner.get("object") == "checkout.session":
            found += [f"data/object/{e}" for e in errors(inner, "checkout.session")]
    return found


def api_version() -> str:
    return spec()["info"]["version"]
