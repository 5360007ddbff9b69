"""Query parameters of the list endpoints, checked as Stripe checks them.

Which parameters an endpoint takes, and the enum values of ``status``, come from the
excerpt of Stripe's published OpenAPI description in ``openapi/`` (the pinned API
version); the rules the description states only in prose are written out below:

- ``types`` takes at most 20 event types and no wildcards; ``type`` takes one event type
  or a group ending in ``*`` (``checkout.session.*``); not both at once;
- ``customer_details`` is a hash whose ``email`` is required (the only key it takes);
- ``limit`` is 1..100; ``starting_after`` and ``ending_before`` exclude each other;
- ``delivery_success=false`` lists the events not yet delivered to every endpoint
  (still pending or failed), ``true`` the others.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

from local_stripe.errors import invalid

SPEC_FILE = Path(__file__).parent / "openapi" / "stripe-2026-07-29.dahlia.json"
MAX_LIMIT = 100
MAX_TYPES = 20  # "An array of up to 20 strings containing specific event names"


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The vendored excerpt of Stripe's OpenAPI description."""
    with open(SPEC_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def query_parameters(path: str) -> dict[str, dict[str, Any]]:
    """name -> parameter description of ``GET path``."""
    return {p["name"]: p for p in spec()["paths"][path]["get"]["parameters"]}


def parse_query(query: str) -> dict[str, Any]:
    """Stripe's form encoding: ``created[gte]=1`` -> {'created': {'gte': '1'}},
    ``types[0]=a`` or ``types[]=a`` -> {'types': ['a']}."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if "[" in key and key.endswith("]"):
            name, sub = key[:-1].split("[", 1)
            if sub == "" or sub.isdigit():
                target = params.setdefault(name, [])
                if not isinstance(target, list):
                    raise invalid(f"Invalid {name}: mixed array and hash", name)
                target.append(value)
            else:
                target = params.setdefault(name, {})
                if not isinstance(target, dict):
                    raise invalid(f"Invalid {name}: mixed array and hash", name)
                target[sub] = value
        else:
            params[key] = value
    return params


def check_known(params: dict[str, Any], path: str) -> None:
    """400 for a parameter the endpoint does not take, as Stripe answers."""
    known = query_parameters(path)
    for name in params:
        if name not in known:
            raise invalid(f"Received unknown parameter: {name}", name)
    if params.get("starting_after") and params.get("ending_before"):
        raise invalid("You may only specify one of these parameters: ending_before, "
                      "starting_after.", "starting_after")


def integer(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param) from None


def created_filter(params: dict[str, Any]) -> dict[str, int]:
    raw = params.get("created")
    if raw is None:
        return {}
    if isinstance(raw, list):
        raise invalid("Invalid created: must be an integer or a hash", "created")
    if not isinstance(raw, dict):
        return {"eq": integer(raw, "created")}
    bounds = {}
    for op, value in raw.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise invalid(f"Received unknown parameter: created[{op}]", f"created[{op}]")
        bounds[op] = integer(value, f"created[{op}]")
    return bounds


def limit(params: dict[str, Any]) -> int:
    if "limit" not in params:
        return 10
    value = integer(params["limit"], "limit")
    if not 1 <= value <= MAX_LIMIT:
        raise invalid(f"Invalid limit: must be between 1 and {MAX_LIMIT}", "limit")
    return value


def _string(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"Invalid {name}: must be a string", name)
    return value


def session_predicate(params: dict[str, Any]) -> Callable[[dict], bool]:
    """Which Checkout Sessions a ``GET /v1/checkout/sessions`` request lists."""
    fields = ("status", "customer", "customer_account", "payment_intent", "payment_link",
              "subscription")
    wanted = {name: _string(params, name) for name in fields if name in params}
    statuses = query_parameters("/v1/checkout/sessions")["status"]["schema"]["enum"]
    if "status" in wanted and wanted["status"] not in statuses:
        raise invalid(f"Invalid status: must be one of {', '.join(statuses[:-1])}, or "
                      f"{statuses[-1]}", "status")
    email = None
    if "customer_details" in params:
        details = params["customer_details"]
        if not isinstance(details, dict):
            raise invalid("Invalid customer_details: must be a hash", "customer_details")
        for key in details:
            if key != "email":
                raise invalid(f"Received unknown parameter: customer_details[{key}]",
                              f"customer_details[{key}]")
        if "email" not in details:
            raise invalid("Missing required param: customer_details[email].",
                          "customer_details[email]")
        email = details["email"]

    def matches(session: dict) -> bool:
        if any(session.get(k) != v for k, v in wanted.items()):
            return False
        if email is not None and (session.get("customer_details") or {}).get("email") != email:
            return False
        return True

    return matches


def event_predicate(params: dict[str, Any]) -> Callable[[dict], bool]:
    """Which events a ``GET /v1/events`` request lists."""
    if "type" in params and "types" in params:
        raise invalid("You may only specify one of these parameters: type, types.", "types")
    exact: set[str] | None = None
    prefix: str | None = None
    if "type" in params:
        pattern = _string(params, "type")
        if "*" in pattern[:-1]:
            raise invalid(f"Invalid type: {pattern!r}; a wildcard may only end the type, "
                          "e.g. checkout.session.*", "type")
        if pattern.endswith("*"):
            prefix = pattern[:-1]
        else:
            exact = {pattern}
    if "types" in params:
        types = params["types"]
        if not isinstance(types, list):
            raise invalid("Invalid array", "types")
        if len(types) > MAX_TYPES:
            raise invalid(f"Invalid types: you may pass at most {MAX_TYPES} event types "
                          f"(got {len(types)})", "types")
        for n, name in enumerate(types):
            if "*" in name:
                raise invalid(f"Invalid types[{n}]: wildcards are not allowed in types; "
                              "use type instead", f"types[{n}]")
        exact = set(types)
    delivery = params.get("delivery_success")
    if delivery is not None and delivery not in ("true", "false"):
        raise invalid(f"Invalid boolean: {delivery}", "delivery_success")

    def matches(evt: dict) -> bool:
        if exact is not None and evt["type"] not in exact:
            return False
        if prefix is not None and not evt["type"].startswith(prefix):
            return False
        if delivery is not None and delivered(evt) != (delivery == "true"):
            return False
        return True

    return matches


def delivered(evt: dict[str, Any]) -> bool:
    """Whether Stripe counts the event as delivered to every endpoint: its private
    ``_delivery_success`` when set, else no endpoint still pending."""
    return bool(evt.get("_delivery_success", evt.get("pending_webhooks", 0) == 0))
