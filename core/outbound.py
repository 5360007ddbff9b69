"""What every outbound HTTP call of the project shares (re-deliveries, alert webhooks).

- ``url_host``: a URL shown in messages, run records and alerts is its host only: webhook
  and replay URLs carry users, passwords and tokens in their userinfo, path or query.
- ``read_capped``: an answer is read up to a limit and no further, so an endpoint that
  answers with gigabytes (or never stops) cannot fill the memory or hold a run forever.
- ``is_loopback_url``: plain http:// is only for this machine.
"""

from __future__ import annotations

import ipaddress

import httpx

# Enough for any JSON answer a webhook endpoint gives; what is over it is not read.
ANSWER_LIMIT_BYTES = 64 * 1024


def url_host(url: str) -> str:
    """The host of ``url`` (never its user, password, path or query), or "?"."""
    try:
        return httpx.URL(url).host or "?"
    except Exception:
        return "?"


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine: localhost or a loopback address (127.0.0.0/8, ::1)."""
    try:
        host = httpx.URL(url).host
    except Exception:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_capped(response: httpx.Response, limit: int = ANSWER_LIMIT_BYTES) -> tuple[bytes, bool]:
    """(the first ``limit`` bytes of a streamed response's body, whether there was more).

    Reads no further than that (decompressed bytes count); the caller closes the response."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False
