"""Errors answered in Stripe's JSON shape (https://docs.stripe.com/api/errors)."""

from __future__ import annotations

from typing import Any


class StripeHTTPError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

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


def invalid(message: str, param: str) -> StripeHTTPError:
    return StripeHTTPError(400, message, param=param)


def resource_missing(object_name: str, object_id: str, param: str) -> StripeHTTPError:
    return StripeHTTPError(404, f"No such {object_name}: '{object_id}'", code="resource_missing",
                           param=param)


def rate_limited() -> StripeHTTPError:
    return StripeHTTPError(429, "Request rate limit exceeded. Learn more about rate limits here "
                           "https://docs.stripe.com/rate-limits.", code="rate_limit")


def api_error() -> StripeHTTPError:
    return StripeHTTPError(500, "An unknown error occurred", type="api_error")
