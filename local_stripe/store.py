"""The objects local_stripe serves: Checkout Sessions and events, kept in Stripe's list order.

Lists are newest first (``created`` descending, later insertions first among equal times),
paged by object id with ``starting_after`` / ``ending_before`` as Stripe does; ``created``
bounds are found by bisection, so a page of a 100,000-event window costs no scan of it.
"""

from __future__ import annotations

import bisect
import json
import threading
from typing import Any, Callable, Iterable

from local_stripe.errors import resource_missing


class _Collection:
    """Objects of one kind, kept in Stripe's list order: newest first, ties by insertion."""

    def __init__(self, object_name: str):
        self.object_name = object_name
        self._objects: dict[str, dict[str, Any]] = {}
        self._sequence: dict[str, int] = {}
        self._next_sequence = 0
        self._order: list[str] | None = None       # ids, newest first
        self._order_keys: list[tuple[int, int]] = []  # (-created, -sequence), ascending
        self._position: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def put(self, obj: dict[str, Any]) -> None:
        obj_id = obj["id"]
        if obj_id not in self._sequence:
            self._sequence[obj_id] = self._next_sequence
            self._next_sequence += 1
        self._objects[obj_id] = obj
        self._order = None

    def get(self, obj_id: str) -> dict[str, Any] | None:
        return self._objects.get(obj_id)

    def remove(self, obj_id: str) -> None:
        self._objects.pop(obj_id, None)
        self._sequence.pop(obj_id, None)
        self._order = None

    def all(self) -> list[dict[str, Any]]:
        self._ensure_order()
        return [self._objects[i] for i in self._order]

    def _ensure_order(self) -> None:
        if self._order is not None:
            return
        keyed = sorted((-int(o["created"]), -self._sequence[i], i) for i, o in self._objects.items())
        self._order = [i for _, _, i in keyed]
        self._order_keys = [(c, s) for c, s, _ in keyed]
        self._position = {obj_id: n for n, obj_id in enumerate(self._order)}

    def page(self, *, created: dict[str, int], predicate: Callable[[dict], bool], limit: int,
             starting_after: str | None, ending_before: str | None) -> tuple[list[dict], bool]:
        """One page of the list and whether more objects lie beyond it."""
        self._ensure_order()
        order, keys = self._order, self._order_keys
        # created bounds as an index range over the newest-first order (keys hold -created).
        lo, hi = 0, len(order)
        if "lte" in created:
            lo = max(lo, bisect.bisect_left(keys, (-created["lte"], -(1 << 62))))
        if "lt" in created:
            lo = max(lo, bisect.bisect_left(keys, (-created["lt"] + 1, -(1 << 62))))
        if "gte" in created:
            hi = min(hi, bisect.bisect_left(keys, (-created["gte"] + 1, -(1 << 62))))
        if "gt" in created:
            hi = min(hi, bisect.bisect_left(keys, (-created["gt"], -(1 << 62))))
        if "eq" in created:
            lo = max(lo, bisect.bisect_left(keys, (-created["eq"], -(1 << 62))))
            hi = min(hi, bisect.bisect_left(keys, (-created["eq"] + 1, -(1 << 62))))

        if ending_before is not None:
            # Walk towards newer objects from just before the cursor, then restore the order.
            start = self._cursor(ending_before, "ending_before") - 1
            found: list[dict] = []
            index = min(start, hi - 1)
            while index >= lo:
                obj = self._objects[order[index]]
                if predicate(obj):
                    if len(found) == limit:
                        return list(reversed(found)), True
                    found.append(obj)
                index -= 1
            return list(reversed(found)), False

        start = lo if starting_after is None else max(lo, self._cursor(starting_after, "starting_after") + 1)
        found = []
        for index in range(start, hi):
            obj = self._objects[order[index]]
            if predicate(obj):
                if len(found) == limit:
                    return found, True
                found.append(obj)
        return found, False

    def _cursor(self, obj_id: str, param: str) -> int:
        if obj_id not in self._position:
            raise resource_missing(self.object_name, obj_id, param)
        return self._position[obj_id]


class StripeState:
    """The objects the server answers with; safe to change while the server runs."""

    def __init__(self, checkout_sessions: Iterable[dict] = (), events: Iterable[dict] = (),
                 webhook_endpoints: Iterable[dict] = ()):
        self.lock = threading.RLock()
        self.checkout_sessions = _Collection("checkout.session")
        self.events = _Collection("event")
        self.webhook_endpoints = _Collection("webhook_endpoint")
        for session in checkout_sessions:
            self.add_checkout_session(session)
        for evt in events:
            self.add_event(evt)
        for endpoint in webhook_endpoints:
            self.add_webhook_endpoint(endpoint)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "StripeState":
        unknown = set(data) - {"checkout_sessions", "events", "webhook_endpoints"}
        if unknown:
            raise ValueError(f"unknown keys in Stripe state: {', '.join(sorted(unknown))} "
                             "(expected 'checkout_sessions', 'events' and 'webhook_endpoints')")
        return cls(data.get("checkout_sessions") or (), data.get("events") or (),
                   data.get("webhook_endpoints") or ())

    @classmethod
    def from_file(cls, path) -> "StripeState":
        with open(path, encoding="utf-8") as handle:
            return cls.from_data(json.load(handle))

    def add_checkout_session(self, session: dict[str, Any]) -> dict[str, Any]:
        _require(session, "checkout.session")
        with self.lock:
            self.checkout_sessions.put(session)
        return session

    def update_checkout_session(self, session_id: str, **changes: Any) -> dict[str, Any]:
        with self.lock:
            session = self.checkout_sessions.get(session_id)
            if session is None:
                raise KeyError(session_id)
            updated = {**session, **changes}
            self.checkout_sessions.put(updated)
            return updated

    def remove_checkout_session(self, session_id: str) -> None:
        with self.lock:
            self.checkout_sessions.remove(session_id)

    def add_event(self, evt: dict[str, Any]) -> dict[str, Any]:
        _require(evt, "event")
        with self.lock:
            self.events.put(evt)
        return evt


    def add_webhook_endpoint(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        _require(endpoint, "webhook_endpoint")
        with self.lock:
            self.webhook_endpoints.put(endpoint)
        return endpoint

    def set_webhook_endpoint_status(self, endpoint_id: str, status: str) -> dict[str, Any]:
        """Enable or disable an endpoint, as Stripe does after weeks of failed deliveries (or as
        ``POST /v1/webhook_endpoints/{id}`` with ``disabled`` does)."""
        if status not in ("enabled", "disabled"):
            raise ValueError(f"a webhook endpoint is 'enabled' or 'disabled', not {status!r}")
        with self.lock:
            endpoint = self.webhook_endpoints.get(endpoint_id)
            if endpoint is None:
                raise KeyError(endpoint_id)
            updated = {**endpoint, "status": status}
            self.webhook_endpoints.put(updated)
            return updated


def _require(obj: dict[str, Any], object_name: str) -> None:
    if not isinstance(obj, dict) or obj.get("object") != object_name or not obj.get("id") \
            or not isinstance(obj.get("created"), int):
        raise ValueError(f"not a {object_name} object with an id and an integer 'created': "
                         f"{str(obj)[:120]}")
