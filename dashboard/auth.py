"""The login in front of every page.

Three ways in, chosen by MONITOR_AUTH:

- ``oidc`` (or ``auto`` with an ``[auth]`` section in ``.streamlit/secrets.toml``): Streamlit's
  own ``st.login`` / ``st.user`` / ``st.logout`` against the configured identity provider;
  only a verified address on MONITOR_ALLOWED_EMAILS gets in, and OIDC refuses to start
  without that list (an identity provider such as Google accepts anyone).
- ``password`` (``auto`` otherwise): a form checked against MONITOR_PASSWORD_HASH (or
  ``password_hash`` in secrets.toml), a salted scrypt hash made by
  ``python -m jobs hash-password``, compared in constant time. Every attempt first takes a
  turn from the throttle kept in PostgreSQL (dashboard/throttle.py), by client address and
  for the account, shared by every process and replica.
- ``none``: no login, accepted only while the server listens on a loopback address and the
  request itself was addressed to a loopback name from a loopback page (``Host`` and
  ``Origin``), which shuts out DNS rebinding and reverse proxies; a banner says so.

Whoever is logged in (``current_identity()``) is what the write actions record, and
``write_refusal()`` is the one check a write runs before it touches anything.

The hashing (``core.passwords``: the jobs make hashes too) and the request checks are plain
functions (no ``st.``) so they can be tested directly; ``require_login()`` is the Streamlit
part, called once by the entry script.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from core.passwords import HASH_COMMAND, InvalidHash, parse_hash, verify_password
from core.settings import parse_allowed_emails, parse_networks

LOOPBACK_ADDRESSES = {"127.0.0.1", "localhost", "::1"}
LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address only accepts local connections (unset = all interfaces)."""
    return (address or "").strip().strip("[]").lower() in LOOPBACK_ADDRESSES


def _loopback_name(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (a name a browser can only have resolved locally)."""
    host = (host or "").strip().strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Headers a reverse proxy adds: a request carrying them came from somewhere else.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip")


def local_request_problem(headers: Mapping[str, str]) -> str | None:
    """Why this request may not use a dashboard with login off, or None when it is local.

    ``headers`` are the browser's (Streamlit's ``st.context.headers``: the websocket
    upgrade request). A DNS-rebinding page reaches 127.0.0.1 under its own name, so its
    ``Host`` is not a loopback name; a page of another local site sends its own ``Origin``;
    a reverse proxy adds forwarding headers. No headers at all means no browser request
    (a script run in-process, as Streamlit's AppTest does): nothing to check.
    """
    if not headers:
        return None
    header = {key.lower(): value for key, value in headers.items()}
    host = header.get("host", "")
    for name in PROXY_HEADERS:
        if name.lower() in header:
            return f"this request came through a proxy ({name} header)"
    try:
        host_parts = urlsplit(f"//{host}")
        host_name = host_parts.hostname
        _ = host_parts.port  # reading it raises ValueError for a malformed port
    except ValueError:
        return "its Host header is malformed"
    if not _loopback_name(host_name):
        return f"it was addressed to {host!r}, not to localhost or 127.0.0.1"
    return origin_problem(headers)


def origin_problem(headers: Mapping[str, str], *, forwarded_host: bool = False) -> str | None:
    """Why this browser request was not sent by a page of this dashboard, or None when it was.

    Streamlit lets a page of any port on localhost open the dashboard's websocket, and the
    browser sends that page the login cookie too (same site), so a page served by anything
    else on the machine could drive a logged-in session. Its ``Origin`` must name the host
    (and port) the request was addressed to: ``Host``, or with ``forwarded_host`` (the request
    came from a trusted proxy) the proxy's ``X-Forwarded-Host`` when it sends one. No
    ``Origin`` (no browser: a script run in-process, as Streamlit's AppTest does): nothing
    to check.
    """
    header = {key.lower(): value for key, value in (headers or {}).items()}
    origin = header.get("origin")
    if origin is None:
        return None
    host = header.get("host", "")
    if forwarded_host and header.get("x-forwarded-host"):
        host = header["x-forwarded-host"].split(",")[0].strip()
    try:
        origin_parts = urlsplit(origin)
        scheme = origin_parts.scheme.lower()
        default = {"http": 80, "https": 443}.get(scheme)
        host_parts = urlsplit(f"//{host}")
        same = (default is not None and origin_parts.hostname is not None
                and origin_parts.hostname == host_parts.hostname
                and (origin_parts.port or default) == (host_parts.port or default))
    except ValueError:
        same = False
    if not same:
        return f"it was sent by the page {origin!r}, not by this dashboard"
    return None


def email_allowed(email: str | None, verified, allowed: frozenset[str]) -> bool:
    """A verified address that is on the list itself or whose domain is (``@example.com``)."""
    if verified is not True and str(verified).lower() != "true":
        return False
    email = (email or "").strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return False
    return email in allowed or f"@{domain}" in allowed


def client_address(headers: Mapping[str, str], peer: str | None, trusted_proxies: Sequence = LOOPBACK_NETWORKS
                   ) -> str | None:
    """The browser's address, which the password throttle counts failures by.

    ``peer`` is the websocket's remote address (Streamlit gives None for this machine).
    ``X-Forwarded-For`` is believed only from a trusted proxy (MONITOR_TRUSTED_PROXIES): each
    proxy appends the address it was reached from, so the client is the last entry that is
    not itself a trusted proxy; anything to its left is whatever the client sent. A peer that
    is not a trusted proxy is the client, whatever its headers say.
    """
    peer = peer if isinstance(peer, str) and peer else None
    if not _trusted(peer or "127.0.0.1", trusted_proxies):
        return peer
    header = {key.lower(): value for key, value in (headers or {}).items()}
    forwarded = [part.strip() for part in header.get("x-forwarded-for", "").split(",") if part.strip()]
    for entry in reversed(forwarded):
        if not _trusted(entry, trusted_proxies):
            return entry
    if forwarded:
        return forwarded[0]
    return header.get("x-real-ip") or peer


def _trusted(address: str, networks: Sequence) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


PASSWORD_ACCOUNT = "dashboard-password"  # one shared password: one account


# --- Streamlit ------------------------------------------------------------------------

def _secrets() -> dict:
    import streamlit as st

    try:
        return dict(st.secrets)
    except Exception:  # no secrets.toml at all (Streamlit raises rather than returning {})
        return {}


def resolve_mode(setting: str, secrets: dict) -> str:
    """The login actually used: 'auto' becomes 'oidc' with an [auth] section, else 'password'."""
    if setting == "auto":
        return "oidc" if "auth" in secrets else "password"
    return setting


def require_login(settings, *, before_form: Callable[[], object] | None = None) -> str:
    """Stop the script unless the visitor is logged in; return the mode in force.

    Draws the login form, or the page explaining what to configure, and a logout button in
    the sidebar once logged in. ``before_form`` is called right before the password form is
    drawn: the entry script resolves its (hidden) navigation there, so a link opened while
    logged out (``/events?view=stuck``) keeps its page and query parameters through the
    login instead of landing on the default page.
    """
    import streamlit as st

    secrets = _secrets()
    mode = resolve_mode(settings.MONITOR_AUTH, secrets)
    if mode != "none":  # with login off, local_request_problem below checks this and more
        peer = st.context.ip_address
        from_proxy = _trusted(peer or "127.0.0.1", parse_networks(settings.MONITOR_TRUSTED_PROXIES))
        problem = origin_problem(st.context.headers, forwarded_host=from_proxy)
        if problem:
            st.error(f"**Refused**: this dashboard answers only its own pages, and {_plain(problem)}.",
                     icon=":material/lock:")
            st.stop()
    if mode == "none":
        address = st.get_option("server.address")
        problem = local_request_problem(st.context.headers)
        if problem:
            st.error("**Refused**: login is off (MONITOR_AUTH=none), so this dashboard answers "
                     "only a browser on this machine opening http://127.0.0.1 or "
                     f"http://localhost, and {_plain(problem)}.", icon=":material/lock:")
            st.stop()
        if not is_loopback(address):
            st.error(
                "**MONITOR_AUTH=none is refused**: this server listens on "
                f"`{address or 'every network interface'}`, so anyone who can reach it would "
                "see the dashboard. Run it with `--server.address 127.0.0.1` (loopback only), "
                f"or set up a login: a password hash (`{HASH_COMMAND}`) or OIDC (`[auth]` in "
                "`.streamlit/secrets.toml`).", icon=":material/lock:")
            st.stop()
        st.session_state[IDENTITY_KEY] = LOCAL_IDENTITY
        return mode
    if mode == "oidc":
        _require_oidc(st, settings, secrets)
    else:
        _require_password(st, settings, secrets, before_form=before_form)
    return mode


IDENTITY_KEY = "_login_identity"
LOCAL_IDENTITY = "local user (login off)"
PASSWORD_IDENTITY = "password login"


def _plain(text: str) -> str:
    """Text from a request, safe inside a Markdown message (no markup, no links)."""
    from dashboard.components.text import markdown_literal

    return markdown_literal(text)


def current_identity() -> str | None:
    """Who this browser session is logged in as (set by ``require_login``), or None.

    The verified OIDC address, ``password login`` for the shared password, or
    ``local user (login off)``; write actions record it instead of a typed name.
    """
    import streamlit as st

    return st.session_state.get(IDENTITY_KEY)


def write_refusal(settings) -> str | None:
    """Why this session may not write (resolve, acknowledge, run), or None.

    Checked again at the moment of the write, not only when the page was drawn: the
    session must still be logged in, and with login off the request must still be local.
    """
    import streamlit as st

    if current_identity() is None:
        return "Log in to change anything."
    if resolve_mode(settings.MONITOR_AUTH, _secrets()) == "none":
        if not is_loopback(st.get_option("server.address")):
            return "Login is off and the server does not listen on a loopback address."
        problem = local_request_problem(st.context.headers)
        if problem:
            return f"Login is off and this request is not local: {problem}."
    return None


def _require_oidc(st, settings, secrets: dict) -> None:
    if not settings.MONITOR_ALLOWED_EMAILS:
        st.session_state.pop(IDENTITY_KEY, None)
        st.error("**OIDC login needs MONITOR_ALLOWED_EMAILS**: the comma-separated addresses and "
                 "`@domain` entries allowed in (e.g. `alice@example.com,@ops.example.com`). "
                 "Without it anyone your identity provider accepts would get in.",
                 icon=":material/lock:")
        st.stop()
    if "auth" not in secrets:
        st.error("**MONITOR_AUTH=oidc needs an `[auth]` section** in `.streamlit/secrets.toml` "
                 "(`redirect_uri`, `cookie_secret`, `client_id`, `client_secret`, "
                 "`server_metadata_url`); see Streamlit's st.login documentation.",
                 icon=":material/lock:")
        st.stop()
    if not st.user.is_logged_in:
        st.session_state.pop(IDENTITY_KEY, None)
        st.title("Webhook monitor")
        st.write("Log in with your organisation's account to see the dashboard.")
        st.button("Log in", type="primary", on_click=st.login, icon=":material/login:")
        st.stop()
    email = str(st.user.get("email") or "")
    if not email_allowed(email, st.user.get("email_verified"),
                         parse_allowed_emails(settings.MONITOR_ALLOWED_EMAILS)):
        st.session_state.pop(IDENTITY_KEY, None)
        st.title("Webhook monitor")
        st.error("**Not allowed in.** The account you logged in with "
                 f"({_plain(email) if email else 'no e-mail address'}) is not a verified address on "
                 "this dashboard's MONITOR_ALLOWED_EMAILS. Log out and use another account, or ask "
                 "an administrator to add it.", icon=":material/block:")
        st.button("Log out", on_click=st.logout, icon=":material/logout:")
        st.stop()
    st.session_state[IDENTITY_KEY] = email.lower()
    with st.sidebar:
        st.caption("Logged in as")
        st.text(email)
        st.button("Log out", on_click=st.logout, icon=":material/logout:")


def _configured_hash(settings, secrets: dict) -> str | None:
    value = settings.MONITOR_PASSWORD_HASH or secrets.get("password_hash")
    return str(value).strip() if value else None


def _require_password(st, settings, secrets: dict, *, before_form: Callable[[], object] | None = None) -> None:
    encoded = _configured_hash(settings, secrets)
    if not encoded:
        st.title("Webhook monitor")
        st.error("**No login is configured.** Make a password hash and give it to the dashboard:",
                 icon=":material/lock:")
        st.code(f"{HASH_COMMAND}\n# then either\nexport MONITOR_PASSWORD_HASH='scrypt$...'\n"
                "# or put  password_hash = \"scrypt$...\"  in .streamlit/secrets.toml", language="sh")
        st.write("Alternatively configure OIDC with an `[auth]` section in `.streamlit/secrets.toml`, "
                 "or, for a dashboard that only listens on 127.0.0.1, set `MONITOR_AUTH=none`.")
        st.stop()
    try:
        parse_hash(encoded)
    except InvalidHash as exc:
        st.error(f"**MONITOR_PASSWORD_HASH is not usable**: {exc}.", icon=":material/lock:")
        st.stop()

    # Remember which hash the session logged in with: changing the hash logs everyone out.
    token = hashlib.sha256(encoded.encode()).hexdigest()
    if st.session_state.get("_login_token") == token:
        st.session_state[IDENTITY_KEY] = PASSWORD_IDENTITY
        with st.sidebar:
            if st.button("Log out", icon=":material/logout:"):
                st.session_state.pop("_login_token", None)
                st.session_state.pop(IDENTITY_KEY, None)
                st.rerun()
        return
    st.session_state.pop(IDENTITY_KEY, None)

    if before_form is not None:
        before_form()
    st.title("Webhook monitor")
    with st.form("login"):
        password = st.text_input("Password", type="password", max_chars=1024)
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        _check_password(st, settings, password, encoded, token)
    st.stop()


def _check_password(st, settings, password: str, encoded: str, token: str) -> None:
    """Take a turn from the shared throttle, then check the password (slowed, not locked out)."""
    from datetime import datetime, timezone

    import sqlalchemy as sa

    from dashboard import data, throttle

    proxies = parse_networks(settings.MONITOR_TRUSTED_PROXIES)
    client = throttle.client_key(client_address(st.context.headers, st.context.ip_address, proxies))
    account = throttle.account_key(PASSWORD_ACCOUNT)
    try:
        engine = data.get_engine()
        wait = throttle.take_turn(engine, client=client, account=account, now=datetime.now(timezone.utc))
    except data.DatabaseProblem as exc:
        data.show_problem(exc)
    except sa.exc.DBAPIError as exc:  # no count, no guess: refuse rather than allow unlimited tries
        data.show_problem(data.DatabaseProblem(data.describe_database_error(data.database_url(), exc)))
    if wait > 0:
        st.warning(f"Too many failed attempts. Try again in {max(1, round(wait))} s.", icon=":material/timer:")
    elif password and verify_password(password, encoded):
        throttle.succeeded(engine, client=client, account=account)
        st.session_state["_login_token"] = token
        st.rerun()
    else:
        st.error("Wrong password.")
