"""The login: password hashing and throttling, and what a visitor sees in each auth mode."""

import pytest

from core import passwords
from dashboard import auth
from tests.support.apptest import new_app, server_address

PASSWORD = "correct horse battery staple"
HASH = passwords.hash_password(PASSWORD)


# --- hashing ------------------------------------------------------------------------------

def test_hash_round_trip_and_fresh_salt():
    assert passwords.verify_password(PASSWORD, HASH)
    assert not passwords.verify_password(PASSWORD + " ", HASH)
    assert not passwords.verify_password("", HASH)
    assert passwords.hash_password(PASSWORD) != HASH  # a new salt every time
    assert HASH.startswith("scrypt$16384$8$1$")


def test_unicode_passwords():
    encoded = passwords.hash_password("pässwörd 🔑")
    assert passwords.verify_password("pässwörd 🔑", encoded) and not passwords.verify_password("passwort 🔑", encoded)


@pytest.mark.parametrize("bad", [
    "", "plaintext-password", "scrypt$16384$8$1$onlyfive", "pbkdf2$1$2$3$4$5",
    "scrypt$3$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",         # n not a power of 2
    "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # would eat memory
    "scrypt$16384$8$1$!!!$???",
])
def test_malformed_hashes_are_refused_with_a_reason(bad):
    with pytest.raises(passwords.InvalidHash):
        passwords.verify_password(PASSWORD, bad)


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("", False), (None, False), ("0.0.0.0", False), ("192.168.1.5", False), ("::", False),
])
def test_is_loopback(address, loopback):
    assert auth.is_loopback(address) == loopback


# --- what a visitor sees ----------------------------------------------------------------

@pytest.fixture
def visitor(db, monkeypatch):
    """A dashboard session with password login (``db`` empties the throttle's table)."""
    monkeypatch.setenv("MONITOR_AUTH", "password")
    monkeypatch.setenv("MONITOR_PASSWORD_HASH", HASH)
    return new_app()


def titles(at):
    return [t.value for t in at.title]


def log_in(at, password):
    at.text_input[0].input(password)
    return at.button[0].click().run()  # the form's "Log in"


def test_password_login_then_logout(visitor):
    at = visitor.run()
    assert titles(at) == ["Webhook monitor"] and not at.metric  # nothing of the dashboard yet
    at = log_in(at, "wrong")
    assert [e.value for e in at.error] == ["Wrong password."]
    at = log_in(at, PASSWORD)
    assert not at.exception and "Overview" in titles(at)
    logout = next(b for b in at.sidebar.button if b.label == "Log out")
    at = logout.click().run()
    assert titles(at) == ["Webhook monitor"] and at.text_input[0].label == "Password"


def test_repeated_failures_are_slowed_down(visitor):
    at = visitor.run()
    for _ in range(3):
        at = log_in(at, "guess")
        assert [e.value for e in at.error] == ["Wrong password."]
    at = log_in(at, PASSWORD)  # even the right password waits its turn (5 s)
    assert any("Too many failed attempts" in w.value for w in at.warning)
    assert "Overview" not in titles(at)


def test_hash_from_secrets(db, monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "password")
    monkeypatch.delenv("MONITOR_PASSWORD_HASH", raising=False)
    at = new_app()
    at.secrets["password_hash"] = HASH
    at = log_in(at.run(), PASSWORD)
    assert "Overview" in titles(at)


def test_no_hash_configured_explains_how_to_set_one(db, monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "auto")
    monkeypatch.delenv("MONITOR_PASSWORD_HASH", raising=False)
    at = new_app().run()
    assert not at.exception
    assert "No login is configured" in at.error[0].value
    assert "python -m jobs hash-password" in at.code[0].value
    assert not at.text_input and "Overview" not in titles(at)


def test_damaged_hash_is_reported_not_crashed_on(db, monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "password")
    monkeypatch.setenv("MONITOR_PASSWORD_HASH", "scrypt$16384$8$1$broken")
    at = new_app().run()
    assert not at.exception and "MONITOR_PASSWORD_HASH is not usable" in at.error[0].value


def test_login_off_is_refused_on_a_public_address(db, monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "none")
    with server_address("0.0.0.0"):
        at = new_app().run()
    assert "MONITOR_AUTH=none is refused" in at.error[0].value
    assert "Overview" not in titles(at)


def test_login_off_on_loopback_shows_a_banner(db, monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "none")
    with server_address("127.0.0.1"):
        at = new_app().run()
    [banner] = [c.value for c in at.caption if "Login is off" in c.value]
    assert "\n" not in banner and len(banner) < 140  # one line, not a paragraph
    assert "Overview" in titles(at)


OIDC_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x",
                "client_id": "id", "client_secret": "secret",
                "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}


def oidc_app(monkeypatch, allowed: str | None = "admin@example.com,@ops.example.org"):
    monkeypatch.setenv("MONITOR_AUTH", "auto")
    if allowed is None:
        monkeypatch.delenv("MONITOR_ALLOWED_EMAILS", raising=False)
    else:
        monkeypatch.setenv("MONITOR_ALLOWED_EMAILS", allowed)
    at = new_app()
    at.secrets["auth"] = OIDC_SECRETS
    return at


def test_oidc_login_with_streamlit_user(db, monkeypatch):
    at = oidc_app(monkeypatch)
    at.user = {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == ["Log in"] and "Overview" not in titles(at)
    at.user = {"is_logged_in": True, "email": "admin@example.com", "email_verified": True}
    at.run()
    assert "Overview" in titles(at)
    assert any(t.value == "admin@example.com" for t in at.sidebar.text)
    assert at.session_state[auth.IDENTITY_KEY] == "admin@example.com"


def test_oidc_refuses_to_start_without_an_allow_list(db, monkeypatch):
    at = oidc_app(monkeypatch, allowed=None)
    at.user = {"is_logged_in": True, "email": "admin@example.com", "email_verified": True}
    at.run()
    assert "needs MONITOR_ALLOWED_EMAILS" in at.error[0].value
    assert "Overview" not in titles(at) and not at.metric


@pytest.mark.parametrize("user, let_in", [
    ({"email": "admin@example.com", "email_verified": True}, True),
    ({"email": "Admin@Example.com", "email_verified": "true"}, True),
    ({"email": "anyone@ops.example.org", "email_verified": True}, True),
    ({"email": "admin@example.com", "email_verified": False}, False),   # unverified
    ({"email": "admin@example.com"}, False),                            # provider says nothing
    ({"email": "stranger@gmail.com", "email_verified": True}, False),
    ({"email": "x@evil-ops.example.org", "email_verified": True}, False),
    ({"email": "x@sub.ops.example.org", "email_verified": True}, False),
    ({"name": "No Address", "email_verified": True}, False),
])
def test_oidc_lets_in_only_verified_listed_addresses(db, monkeypatch, user, let_in):
    at = oidc_app(monkeypatch)
    at.user = {"is_logged_in": True, **user}
    at.run()
    assert not at.exception
    assert ("Overview" in titles(at)) == let_in
    if not let_in:
        assert "Not allowed in" in at.error[0].value and not at.metric
        assert [b.label for b in at.button] == ["Log out"]
        assert auth.IDENTITY_KEY not in at.session_state


def test_a_refused_address_is_shown_as_text(db, monkeypatch):
    at = oidc_app(monkeypatch)
    at.user = {"is_logged_in": True, "email": "![x](http://127.0.0.1:9/p)@evil.test", "email_verified": True}
    at.run()
    assert "![x](" not in at.error[0].value and "\\!\\[x\\]" in at.error[0].value


@pytest.mark.parametrize("headers, refused", [
    ({}, None),  # no browser request at all (an in-process script run)
    ({"Host": "127.0.0.1:8501"}, None),
    ({"Host": "localhost:8501", "Origin": "http://localhost:8501"}, None),
    ({"Host": "[::1]:8501", "Origin": "http://[::1]:8501"}, None),
    ({"Host": "evil.example:8501", "Origin": "http://evil.example:8501"}, "addressed to 'evil.example:8501'"),
    ({"Host": "localhost:8501", "Origin": "http://localhost:3000"}, "sent by the page 'http://localhost:3000'"),
    ({"Host": "127.0.0.1:8501", "Origin": "null"}, "sent by the page 'null'"),
    ({"Host": "127.0.0.1:8501", "X-Forwarded-For": "203.0.113.9"}, "through a proxy"),
    ({"Host": "monitor.example.com", "Forwarded": "for=203.0.113.9"}, "through a proxy"),
    ({"Host": "127.0.0.1.evil.example:8501"}, "not to localhost"),
    ({"Origin": "http://127.0.0.1:8501"}, "not to localhost"),  # no Host at all
])
def test_login_off_answers_only_local_requests(headers, refused):
    problem = auth.local_request_problem(headers)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem


@pytest.mark.parametrize("text, entries", [
    ("a@example.com", {"a@example.com"}),
    (" A@Example.com , @ops.example.org,", {"a@example.com", "@ops.example.org"}),
])
def test_allowed_emails_are_parsed(monkeypatch, text, entries):
    from core.settings import get_settings, parse_allowed_emails

    assert parse_allowed_emails(text) == entries
    monkeypatch.setenv("MONITOR_ALLOWED_EMAILS", text)
    assert get_settings().MONITOR_ALLOWED_EMAILS == text.strip()


@pytest.mark.parametrize("text", ["everyone", "@localhost", "a b@example.com", "@", "a@@example.com", ",,"])
def test_bad_allowed_emails_stop_with_one_line(monkeypatch, text):
    from core.errors import ConfigError
    from core.settings import get_settings

    monkeypatch.setenv("MONITOR_ALLOWED_EMAILS", text)
    with pytest.raises(ConfigError, match="MONITOR_ALLOWED_EMAILS"):
        get_settings()


def test_oidc_without_auth_section_explains(db, monkeypatch):
    monkeypatch.setenv("MONITOR_AUTH", "oidc")
    monkeypatch.setenv("MONITOR_ALLOWED_EMAILS", "@example.com")
    at = new_app().run()
    assert "needs an `[auth]` section" in at.error[0].value


@pytest.mark.parametrize("headers, forwarded_host, refused", [
    ({"Host": "127.0.0.1:8501", "Origin": "http://127.0.0.1:8501"}, False, False),
    ({"Host": "127.0.0.1:8501", "Origin": "http://127.0.0.1:3000"}, False, True),   # another local site
    ({"Host": "127.0.0.1:8501", "Origin": "http://localhost:8501"}, False, True),
    ({"Host": "monitor.example.com", "Origin": "https://monitor.example.com"}, False, False),
    ({"Host": "monitor.example.com:443", "Origin": "https://monitor.example.com"}, False, False),
    ({"Host": "monitor.example.com", "Origin": "https://evil.example"}, False, True),
    ({"Host": "monitor.example.com", "Origin": "null"}, False, True),
    # A trusted proxy that passes the name in X-Forwarded-Host rather than in Host:
    ({"Host": "127.0.0.1:8501", "X-Forwarded-Host": "monitor.example.com", "Origin": "https://monitor.example.com"},
     True, False),
    ({"Host": "127.0.0.1:8501", "X-Forwarded-Host": "monitor.example.com", "Origin": "https://monitor.example.com"},
     False, True),
    ({"Host": "monitor.example.com"}, False, False),  # no browser: nothing to check
])
def test_origin_must_be_the_dashboard_itself(headers, forwarded_host, refused):
    assert (auth.origin_problem(headers, forwarded_host=forwarded_host) is not None) == refused
