"""The login in front of every page.

Three ways in, chosen by MONITOR_AUTH:

- ``oidc`` (or ``auto`` with an ``[auth]`` section in ``.streamlit/secrets.toml``): Streamlit's
  own ``st.login`` / ``st.user`` / ``st.logout`` against the configured identity provider.
- ``password`` (``auto`` otherwise): a form checked against MONITOR_PASSWORD_HASH (or
  ``password_hash`` in secrets.toml), a salted scrypt hash made by
  ``python -m jobs hash-password``, compared in constant time. Repeated failures slow every
  further attempt down, per browser session and across the whole process (a new session
  does not reset the process-wide count).
- ``none``: no login, accepted only while the server listens on a loopback address; a banner
  says so on every page.

The hashing lives in ``core.passwords`` (the jobs make hashes too); it and the throttle are
plain functions and classes (no ``st.``) so they can be tested directly; ``require_login()`` is the Streamlit part, called once by the entry script.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from core.passwords import (HASH_COMMAND, SCRYPT_N, SCRYPT_P, SCRYPT_R, InvalidHash,  # noqa: F401
                            ParsedHash, hash_password, parse_hash, verify_password)
from core.passwords import b64url as _b64

LOOPBACK_ADDRESSES = {"127.0.0.1", "localhost", "::1"}


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address only accepts local connections (unset = all interfaces)."""
    return (address or "").strip().strip("[]").lower() in LOOPBACK_ADDRESSES


@dataclass
class Throttle:
    """Failed-login bookkeeping: how long the next attempt must wait.

    Per key (a browser session) the first ``free`` failures cost nothing; after that each
    attempt waits ``first_wait_s``, doubling with every further failure, up to ``max_wait_s``. Across all keys, more than ``global_limit`` failures within
    ``global_window_s`` make every session wait ``global_wait_s`` after the latest failure, so
    opening new sessions does not buy fresh attempts. Times are passed in (monotonic seconds).
    """

    free: int = 3
    first_wait_s: float = 5.0
    max_wait_s: float = 60.0
    global_limit: int = 20
    global_window_s: float = 600.0
    global_wait_s: float = 10.0
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _recent: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds ``key`` must still wait before its next attempt is checked (0 = go)."""
        with self._lock:
            wait = 0.0
            count, last = self._failures.get(key, (0, 0.0))
            if count >= self.free:
                wait = max(wait, last + min(self.first_wait_s * 2.0 ** (count - self.free), self.max_wait_s) - now)
            self._forget_old(now)
            if len(self._recent) > self.global_limit:
                wait = max(wait, self._recent[-1] + self.global_wait_s - now)
            return max(wait, 0.0)

    def failed(self, key: str, now: float) -> None:
        with self._lock:
            count, _ = self._failures.get(key, (0, 0.0))
            self._failures[key] = (count + 1, now)
            self._recent.append(now)
            self._forget_old(now)
            if len(self._failures) > 10_000:  # keep memory bounded under a flood of sessions
                self._failures.clear()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def reset(self) -> None:
        """Forget every failure (a fresh server process starts this way)."""
        with self._lock:
            self._failures.clear()
            self._recent.clear()

    def _forget_old(self, now: float) -> None:
        while self._recent and self._recent[0] < now - self.global_window_s:
            self._recent.popleft()


# One per server process: shared by every session of this Streamlit server.
THROTTLE = Throttle()


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


def require_login(settings) -> str:
    """Stop the script unless the visitor is logged in; return the mode in force.

    Draws the login form, or the page explaining what to configure, and a logout button in
    the sidebar once logged in.
    """
    import streamlit as st

    secrets = _secrets()
    mode = resolve_mode(settings.MONITOR_AUTH, secrets)
    if mode == "none":
        address = st.get_option("server.address")
        if not is_loopback(address):
            st.error(
                "**MONITOR_AUTH=none is refused**: this server listens on "
                f"`{address or 'every network interface'}`, so anyone who can reach it would "
                "see the dashboard. Run it with `--server.address 127.0.0.1` (loopback only), "
                f"or set up a login: a password hash (`{HASH_COMMAND}`) or OIDC (`[auth]` in "
                "`.streamlit/secrets.toml`).", icon=":material/lock:")
            st.stop()
        return mode
    if mode == "oidc":
        _require_oidc(st, secrets)
    else:
        _require_password(st, settings, secrets)
    return mode


def _require_oidc(st, secrets: dict) -> None:
    if "auth" not in secrets:
        st.error("**MONITOR_AUTH=oidc needs an `[auth]` section** in `.streamlit/secrets.toml` "
                 "(`redirect_uri`, `cookie_secret`, `client_id`, `client_secret`, "
                 "`server_metadata_url`); see Streamlit's st.login documentation.",
                 icon=":material/lock:")
        st.stop()
    if not st.user.is_logged_in:
        st.title("Webhook monitor")
        st.write("Log in with your organisation's account to see the dashboard.")
        st.button("Log in", type="primary", on_click=st.login, icon=":material/login:")
        st.stop()
    with st.sidebar:
        st.caption(f"Logged in as {st.user.get('email') or st.user.get('name') or 'you'}")
        st.button("Log out", on_click=st.logout, icon=":material/logout:")


def _configured_hash(settings, secrets: dict) -> str | None:
    value = settings.MONITOR_PASSWORD_HASH or secrets.get("password_hash")
    return str(value).strip() if value else None


def _require_password(st, settings, secrets: dict) -> None:
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
        with st.sidebar:
            if st.button("Log out", icon=":material/logout:"):
                st.session_state.pop("_login_token", None)
                st.rerun()
        return

    st.title("Webhook monitor")
    key = st.session_state.setdefault("_login_key", _b64(os.urandom(12)))
    with st.form("login"):
        password = st.text_input("Password", type="password", max_chars=1024)
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        wait = THROTTLE.retry_after(key, time.monotonic())
        if wait > 0:
            st.warning(f"Too many failed attempts. Try again in {wait:.0f} s.", icon=":material/timer:")
        elif password and verify_password(password, encoded):
            THROTTLE.succeeded(key)
            st.session_state["_login_token"] = token
            st.rerun()
        else:
            THROTTLE.failed(key, time.monotonic())
            st.error("Wrong password.")
    st.stop()
