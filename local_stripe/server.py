"""The HTTP side of local_stripe: routing, authentication, Stripe's list envelope.

Behaviour follows the live API where the project depends on it: lists come newest first in
Stripe's list envelope (``object``, ``data``, ``has_more``, ``url``), errors use Stripe's
error JSON and status codes, every request needs ``Authorization: Bearer <key>``, and every
answer is in the pinned API version (``Stripe-Version`` header) whatever version the
request asks for: one server, one version. Parameters are checked in ``params``; the
objects live in ``store``; queued failures and counters in ``fault_injection``.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable
from urllib.parse import unquote, urlsplit

from core.stripe_api import API_VERSION
from local_stripe import params as P
from local_stripe.errors import StripeHTTPError, api_error, invalid, rate_limited, resource_missing
from local_stripe.fault_injection import (
    LIST_EVENTS,
    LIST_SESSIONS,
    LIST_WEBHOOK_ENDPOINTS,
    RETRIEVE_EVENT,
    RETRIEVE_SESSION,
    RETRIEVE_WEBHOOK_ENDPOINT,
    UPDATE_WEBHOOK_ENDPOINT,
    Faults,
    RateLimiter,
)
from local_stripe.store import StripeState

_LIST_PATHS = {LIST_SESSIONS: "/v1/checkout/sessions", LIST_EVENTS: "/v1/events",
               LIST_WEBHOOK_ENDPOINTS: "/v1/webhook_endpoints"}


def _public(obj: dict) -> dict:
    """The object as Stripe sends it (private test keys removed)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class LocalStripe:
    """A running (or runnable) local Stripe API.

    ``api_keys``: the keys accepted; None accepts any key shaped like a secret or restricted
    key (``sk_...`` / ``rk_...``). ``rate_limit``: requests per second per endpoint before
    answering 429, like Stripe (None: unlimited).
    """

    api_version = API_VERSION

    def __init__(self, state: StripeState | dict | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, api_keys: Iterable[str] | None = None,
                 rate_limit: int | None = None, verbose: bool = False):
        if isinstance(state, dict):
            state = StripeState.from_data(state)
        self.state = state or StripeState()
        self.faults = Faults()
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.verbose = verbose
        self._rate_limiter = RateLimiter(rate_limit)
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

    def answer(self, method: str, raw_path: str, authorization: str | None,
               body: bytes = b"") -> tuple[int, dict]:
        """(status, JSON body) for one request; the handler only does the HTTP framing."""
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        try:
            self._authenticate(authorization)
            endpoint, object_id = _route(method, path)
            params = P.parse_query(parts.query)
            if method == "POST":  # form-encoded, as the stripe library sends it
                params.update(P.parse_query(body.decode("utf-8", "replace")))
            self.faults.record(endpoint, method, path, params)
            self.faults.run_hooks(endpoint, {"id": object_id, **params})
            self.faults.hold(endpoint)
            status = self.faults.take(endpoint)
            if status == 429 or not self._rate_limiter.allow(endpoint):
                raise rate_limited()
            if status is not None:
                error = api_error() if status >= 500 else StripeHTTPError(status, "Injected failure")
                error.status = status
                raise error
            with self.state.lock:
                return 200, self._dispatch(endpoint, object_id, params)
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

    def _dispatch(self, endpoint: str, object_id: str | None, params: dict) -> dict:
        if endpoint in (RETRIEVE_WEBHOOK_ENDPOINT, UPDATE_WEBHOOK_ENDPOINT):
            return self._webhook_endpoint(endpoint, object_id, params)
        if endpoint in (RETRIEVE_SESSION, RETRIEVE_EVENT):
            for name in params:
                if name != "expand":
                    raise invalid(f"Received unknown parameter: {name}", name)
            if endpoint == RETRIEVE_SESSION:
                found = self.state.checkout_sessions.get(object_id)
                if found is None:
                    raise resource_missing("checkout.session", object_id, "session")
            else:
                found = self.state.events.get(object_id)
                if found is None:
                    raise resource_missing("event", object_id, "id")
            return _public(found)
        path = _LIST_PATHS[endpoint]
        P.check_known(params, path)
        if endpoint == LIST_SESSIONS:
            collection, predicate = self.state.checkout_sessions, P.session_predicate(params)
        elif endpoint == LIST_WEBHOOK_ENDPOINTS:
            collection, predicate = self.state.webhook_endpoints, (lambda _endpoint: True)
        else:
            collection, predicate = self.state.events, P.event_predicate(params)
        data, has_more = collection.page(
            created=P.created_filter(params), predicate=predicate, limit=P.limit(params),
            starting_after=params.get("starting_after") or None,
            ending_before=params.get("ending_before") or None)
        return {"object": "list", "data": [_public(o) for o in data], "has_more": has_more,
                "url": path}


    def _webhook_endpoint(self, endpoint: str, object_id: str | None, params: dict) -> dict:
        """Retrieve one endpoint, or update it: of the update's parameters only ``disabled``
        (``true`` disables, ``false`` enables, as in Stripe's API) is served here."""
        found = self.state.webhook_endpoints.get(object_id)
        if found is None:
            raise resource_missing("webhook_endpoint", object_id, "id")
        for name in params:
            if name not in ("expand", "disabled") or (name == "disabled" and endpoint != UPDATE_WEBHOOK_ENDPOINT):
                raise invalid(f"Received unknown parameter: {name}", name)
        if "disabled" in params:
            if params["disabled"] not in ("true", "false"):
                raise invalid("Invalid boolean: " + str(params["disabled"]), "disabled")
            found = self.state.set_webhook_endpoint_status(
                object_id, "disabled" if params["disabled"] == "true" else "enabled")
        return _public(found)


def _route(method: str, path: str) -> tuple[str, str | None]:
    if path.startswith("/v1/webhook_endpoints/") and path.count("/") == 3:
        endpoint_id = unquote(path.rsplit("/", 1)[1])
        if method == "GET":
            return RETRIEVE_WEBHOOK_ENDPOINT, endpoint_id
        if method == "POST":
            return UPDATE_WEBHOOK_ENDPOINT, endpoint_id
    if method == "GET":
        if path == "/v1/checkout/sessions":
            return LIST_SESSIONS, None
        if path.startswith("/v1/checkout/sessions/") and path.count("/") == 4:
            return RETRIEVE_SESSION, unquote(path.rsplit("/", 1)[1])
        if path == "/v1/events":
            return LIST_EVENTS, None
        if path.startswith("/v1/events/") and path.count("/") == 3:
            return RETRIEVE_EVENT, unquote(path.rsplit("/", 1)[1])
        if path == "/v1/webhook_endpoints":
            return LIST_WEBHOOK_ENDPOINTS, None
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
            request_body = self.rfile.read(length) if length else b""
            status, body = server.answer(self.command, self.path, self.headers.get("Authorization"),
                                         request_body)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            # The version the objects are rendered in, not an echo of the request's.
            self.send_header("Stripe-Version", server.api_version)
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a held request)
                self.close_connection = True

        do_GET = do_POST = do_DELETE = _respond

        def log_message(self, format, *args):  # the base class names it so
            if server.verbose:
                super().log_message(format, *args)

    return Handler
