"""The HTTP server: Stripe's list/retrieve API for Checkout Sessions and Events.

Behaviour follows the live API where the project depends on it: lists come newest first in
Stripe's list envelope (``object``, ``data``, ``has_more``, ``url``), ``limit`` is 1..100,
``starting_after`` / ``ending_before`` page by object id, ``created`` takes ``gt/gte/lt/lte``,
errors use Stripe's error JSON and status codes, and every request needs
``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

from local_stripe.objects import API_VERSION

MAX_LIMIT = 100

# Endpoint names used by the request counters and fault filters.
LIST_SESSIONS = "list_checkout_sessions"
RETRIEVE_SESSION = "retrieve_checkout_session"
LIST_EVENTS = "list_events"
RETRIEVE_EVENT = "retrieve_event"
ENDPOINTS = (LIST_SESSIONS, RETRIEVE_SESSION, LIST_EVENTS, RETRIEVE_EVENT)


class StripeHTTPError(Exception):
    """An error answered in Stripe's JSON shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "type": type}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param


def resource_missing(object_name: str, object_id: str, param: str) -> StripeHTTPError:
    return StripeHTTPError(404, f"No such {object_name}: '{object_id}'", code="resource_missing",
                           param=param)


def rate_limited() -> StripeHTTPError:
    return StripeHTTPError(429, "Request rate limit exceeded. Learn more about rate limits here "
                           "https://docs.stripe.com/rate-limits.", code="rate_limit")


def api_error() -> StripeHTTPError:
    return StripeHTTPError(500, "An unknown error occurred", type="api_error")


# --- state ------------------------------------------------------------------------------

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

    def __init__(self, checkout_sessions: Iterable[dict] = (), events: Iterable[dict] = ()):
        self.lock = threading.RLock()
        self.checkout_sessions = _Collection("checkout.session")
        self.events = _Collection("event")
        for session in checkout_sessions:
            self.add_checkout_session(session)
        for evt in events:
            self.add_event(evt)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "StripeState":
        unknown = set(data) - {"checkout_sessions", "events"}
        if unknown:
            raise ValueError(f"unknown keys in Stripe state: {', '.join(sorted(unknown))} "
                             "(expected 'checkout_sessions' and 'events')")
        return cls(data.get("checkout_sessions") or (), data.get("events") or ())

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


def _require(obj: dict[str, Any], object_name: str) -> None:
    if not isinstance(obj, dict) or obj.get("object") != object_name or not obj.get("id") \
            or not isinstance(obj.get("created"), int):
        raise ValueError(f"not a {object_name} object with an id and an integer 'created': "
                         f"{str(obj)[:120]}")


# --- fault injection and counters -------------------------------------------------------

@dataclass
class _Fault:
    status: int
    endpoint: str | None


@dataclass
class Faults:
    """Test controls: queued failures, hooks run before answering, and request counters."""

    counts: Counter = field(default_factory=Counter)
    log: deque = field(default_factory=lambda: deque(maxlen=10_000))
    _queued: deque = field(default_factory=deque)
    _hooks: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int = 1, *, status: int = 429, endpoint: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``endpoint``, or any) with ``status``."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {ENDPOINTS}")
        with self._lock:
            self._queued.extend(_Fault(status, endpoint) for _ in range(count))

    def before(self, hook: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``hook(endpoint, params)`` before answering each request (e.g. to race a write)."""
        self._hooks.append(hook)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()
            self._queued.clear()
            self._hooks.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _take(self, endpoint: str) -> int | None:
        with self._lock:
            for fault in self._queued:
                if fault.endpoint in (None, endpoint):
                    self._queued.remove(fault)
                    return fault.status
        return None


class _RateLimiter:
    """Optional per-endpoint requests-per-second limit, like Stripe's (25/s in test mode)."""

    def __init__(self, per_second: int | None):
        self.per_second = per_second
        self._seen: dict[str, deque] = {}
        self._lock = threading.Lock()

    def allow(self, endpoint: str) -> bool:
        if not self.per_second:
            return True
        now = time.monotonic()
        with self._lock:
            window = self._seen.setdefault(endpoint, deque())
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.per_second:
                return False
            window.append(now)
            return True


# --- request handling -------------------------------------------------------------------

def _parse_query(query: str) -> dict[str, Any]:
    """Stripe's form encoding: ``created[gte]=1`` -> {'created': {'gte': '1'}},
    ``types[0]=a`` or ``types[]=a`` -> {'types': ['a']}."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if "[" in key and key.endswith("]"):
            name, sub = key[:-1].split("[", 1)
            if sub == "" or sub.isdigit():
                params.setdefault(name, []).append(value)
            else:
                target = params.setdefault(name, {})
                if not isinstance(target, dict):
                    raise StripeHTTPError(400, f"Invalid {name}: mixed array and hash", param=name)
                target[sub] = value
        else:
            params[key] = value
    return params


def _integer(value: Any, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeHTTPError(400, f"Invalid integer: {value}", param=param) from None


def _created_filter(params: dict[str, Any]) -> dict[str, int]:
    raw = params.get("created")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        return {"eq": _integer(raw, "created")}
    bounds = {}
    for op, value in raw.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise StripeHTTPError(400, f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        bounds[op] = _integer(value, f"created[{op}]")
    return bounds


def _limit(params: dict[str, Any]) -> int:
    if "limit" not in params:
        return 10
    limit = _integer(params["limit"], "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise StripeHTTPError(400, f"Invalid limit: must be between 1 and {MAX_LIMIT}", param="limit")
    return limit


def _check_params(params: dict[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeHTTPError(400, f"Received unknown parameter: {name}", param=name)


_LIST_PARAMS = {"created", "limit", "starting_after", "ending_before", "expand"}
_SESSION_FILTERS = {"status", "customer", "payment_intent", "payment_link", "subscription",
                    "client_reference_id", "customer_details"}
_EVENT_FILTERS = {"type", "types", "delivery_success"}


def _session_predicate(params: dict[str, Any]) -> Callable[[dict], bool]:
    # Every filter but customer_details (matched on its email below) compares one field.
    wanted = {k: params[k] for k in _SESSION_FILTERS - {"customer_details"} if k in params}
    if "status" in wanted and wanted["status"] not in ("open", "complete", "expired"):
        raise StripeHTTPError(400, "Invalid status: must be one of open, complete, or expired",
                              param="status")
    email = (params.get("customer_details") or {}).get("email") if isinstance(
        params.get("customer_details"), dict) else None

    def matches(session: dict) -> bool:
        if any(session.get(k) != v for k, v in wanted.items()):
            return False
        if email is not None and ((session.get("customer_details") or {}).get("email") != email):
            return False
        return True

    return matches


def _event_predicate(params: dict[str, Any]) -> Callable[[dict], bool]:
    patterns: list[str] = []
    if "type" in params:
        patterns.append(params["type"])
    if "types" in params:
        if "type" in params:
            raise StripeHTTPError(400, "You may only specify one of these parameters: type, types.",
                                  param="types")
        patterns.extend(params["types"] if isinstance(params["types"], list) else [params["types"]])
    delivery = params.get("delivery_success")
    if delivery is not None and delivery not in ("true", "false"):
        raise StripeHTTPError(400, "Invalid boolean: " + str(delivery), param="delivery_success")

    def matches(evt: dict) -> bool:
        if patterns and not any(fnmatch.fnmatchcase(evt["type"], p) for p in patterns):
            return False
        if delivery is not None:
            delivered = evt.get("_delivery_success", evt.get("pending_webhooks", 0) == 0)
            if delivered != (delivery == "true"):
                return False
        return True

    return matches


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as Stripe sends it (private test keys removed)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class LocalStripe:
    """A running (or runnable) local Stripe API.

    ``api_keys``: the keys accepted; None accepts any key shaped like a secret or restricted
    key (``sk_...`` / ``rk_...``). ``rate_limit``: requests per second per endpoint before
    answering 429, like Stripe (None: unlimited).
    """

    def __init__(self, state: StripeState | dict | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, api_keys: Iterable[str] | None = None,
                 rate_limit: int | None = None, verbose: bool = False):
        if isinstance(state, dict):
            state = StripeState.from_data(state)
        self.state = state or StripeState()
        self.faults = Faults()
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.verbose = verbose
        self._rate_limiter = _RateLimiter(rate_limit)
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> "LocalStripe":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-stripe",
                                        kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LocalStripe":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answering --

    def answer(self, method: str, raw_path: str, authorization: str | None) -> tuple[int, dict]:
        """(status, JSON body) for one request; the handler only does the HTTP framing."""
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        try:
            self._authenticate(authorization)
            endpoint, object_id = _route(method, path)
            params = _parse_query(parts.query)
            self.faults.counts[endpoint] += 1
            self.faults.log.append((method, path, params))
            for hook in list(self.faults._hooks):
                hook(endpoint, {"id": object_id, **params})
            status = self.faults._take(endpoint)
            if status == 429 or not self._rate_limiter.allow(endpoint):
                raise rate_limited()
            if status is not None:
                error = api_error() if status >= 500 else StripeHTTPError(status, "Injected failure")
                error.status = status
                raise error
            with self.state.lock:
                return 200, self._dispatch(endpoint, object_id, params, path)
        except StripeHTTPError as exc:
            return exc.status, {"error": exc.body}

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise StripeHTTPError(
                401, "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://docs.stripe.com/api#authentication for details.")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        good_shape = scheme.lower() == "bearer" and key.startswith(("sk_", "rk_"))
        if not good_shape or (self.api_keys is not None and key not in self.api_keys):
            shown = f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"
            raise StripeHTTPError(401, f"Invalid API Key provided: {shown}")

    def _dispatch(self, endpoint: str, object_id: str | None, params: dict, path: str) -> dict:
        if endpoint == RETRIEVE_SESSION:
            _check_params(params, {"expand"})
            session = self.state.checkout_sessions.get(object_id)
            if session is None:
                raise resource_missing("checkout.session", object_id, "session")
            return _public(session)
        if endpoint == RETRIEVE_EVENT:
            _check_params(params, {"expand"})
            evt = self.state.events.get(object_id)
            if evt is None:
                raise resource_missing("event", object_id, "id")
            return _public(evt)
        if endpoint == LIST_SESSIONS:
            _check_params(params, _LIST_PARAMS | _SESSION_FILTERS)
            collection, predicate = self.state.checkout_sessions, _session_predicate(params)
        else:
            _check_params(params, _LIST_PARAMS | _EVENT_FILTERS)
            collection, predicate = self.state.events, _event_predicate(params)
        if params.get("starting_after") and params.get("ending_before"):
            raise StripeHTTPError(400, "You may only specify one of these parameters: "
                                  "ending_before, starting_after.", param="starting_after")
        data, has_more = collection.page(
            created=_created_filter(params), predicate=predicate, limit=_limit(params),
            starting_after=params.get("starting_after") or None,
            ending_before=params.get("ending_before") or None)
        return {"object": "list", "data": [_public(o) for o in data], "has_more": has_more,
                "url": path}


def _route(method: str, path: str) -> tuple[str, str | None]:
    if method == "GET":
        if path == "/v1/checkout/sessions":
            return LIST_SESSIONS, None
        if path.startswith("/v1/checkout/sessions/") and path.count("/") == 4:
            return RETRIEVE_SESSION, unquote(path.rsplit("/", 1)[1])
        if path == "/v1/events":
            return LIST_EVENTS, None
        if path.startswith("/v1/events/") and path.count("/") == 3:
            return RETRIEVE_EVENT, unquote(path.rsplit("/", 1)[1])
    raise StripeHTTPError(404, f"Unrecognized request URL ({method}: {path}). Please see "
                          "https://docs.stripe.com or we can help at https://support.stripe.com/.")


def _handler_for(server: LocalStripe):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the stripe library's session expects
        server_version = "local-stripe"
        # Headers and body go out in two writes; without TCP_NODELAY each keep-alive
        # response waits ~40 ms on the client's delayed ACK.
        disable_nagle_algorithm = True

        def _respond(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)  # drain a body we do not use
            status, body = server.answer(self.command, self.path, self.headers.get("Authorization"))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            self.send_header("Stripe-Version", self.headers.get("Stripe-Version") or API_VERSION)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _respond

        def log_message(self, format, *args):  # noqa: A002 - signature from the base class
            if server.verbose:
                super().log_message(format, *args)

    return Handler
