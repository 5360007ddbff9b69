"""core.mail against a real SMTP server (aiosmtpd): plain, STARTTLS, smtps, AUTH, and the
one-line errors an administrator sees when something is wrong."""

from __future__ import annotations

import pytest

from core import mail
from core.errors import ConfigError
from core.settings import get_settings
from devharness.smtp import SmtpServer, cert_authority


def _message(to=("ops@example.org",)):
    return mail.build_message(sender="Monitor <monitor@example.org>", recipients=list(to),
                              subject="Weekly report", text="Plain words", html="<p>Rich <b>words</b></p>")


def test_parse_smtp_url_defaults_ports_and_decodes_credentials():
    server = mail.parse_smtp_url("smtp://ops%40corp:p%3Ass@mail.example.org")
    assert (server.scheme, server.host, server.port, server.username, server.password) == (
        "smtp", "mail.example.org", 25, "ops@corp", "p:ss")
    assert mail.parse_smtp_url("smtps://mail.example.org").port == 465
    assert mail.parse_smtp_url("SMTP://127.0.0.1:2525").port == 2525
    assert "p:ss" not in repr(server) and "p:ss" not in server.display


@pytest.mark.parametrize("url, words", [
    ("mail.example.org:25", "must look like"),
    ("http://mail.example.org", "scheme 'http'"),
    ("smtp://:25", "names no host"),
    ("smtp://host:notaport", "port"),
    ("smtp://host:25/inbox", "no path"),
])
def test_parse_smtp_url_rejects_malformed_urls(url, words):
    with pytest.raises(mail.SmtpUrlError, match=words):
        mail.parse_smtp_url(url)


def test_bad_smtp_url_setting_is_a_config_error_without_the_password(monkeypatch):
    monkeypatch.setenv("MONITOR_SMTP_URL", "imap://ops:hunter2@mail.example.org")
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert "MONITOR_SMTP_URL" in str(caught.value) and "hunter2" not in str(caught.value)


def test_parse_addresses_splits_commas_and_rejects_non_addresses():
    assert mail.parse_addresses("a@x.org, Ops Team <ops@y.org>,a@x.org") == ["a@x.org", "ops@y.org"]
    assert mail.parse_addresses(["a@x.org", "b@x.org,c@x.org"]) == ["a@x.org", "b@x.org", "c@x.org"]
    assert mail.parse_addresses("") == []
    with pytest.raises(ValueError, match="'not-an-address'"):
        mail.parse_addresses("a@x.org, not-an-address")


def test_plain_smtp_delivers_a_multipart_alternative_message():
    with SmtpServer() as smtp:
        result = mail.send(_message(["ops@example.org", "cto@example.org"]), mail.parse_smtp_url(smtp.url))
        [received] = smtp.messages
        [(mail_from, rcpt_tos, _)] = smtp.envelopes
    assert result.accepted == ["ops@example.org", "cto@example.org"] and result.refused == {}
    assert mail_from == "monitor@example.org" and rcpt_tos == ["ops@example.org", "cto@example.org"]
    assert received.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]
    assert received.get_body(("plain",)).get_content().strip() == "Plain words"
    assert "<b>words</b>" in received.get_body(("html",)).get_content()
    assert received["Subject"] == "Weekly report" and received["Message-ID"].endswith("@example.org>")


def test_starttls_with_auth_is_used_when_offered():
    with SmtpServer(starttls=True, credentials=("ops", "s3cret")) as smtp:
        mail.send(_message(), mail.parse_smtp_url(smtp.url), ssl_context=cert_authority().client_context())
        assert len(smtp.messages) == 1


def test_starttls_certificate_is_checked():
    with SmtpServer(starttls=True) as smtp:
        with pytest.raises(mail.MailError, match="TLS certificate is not trusted"):
            mail.send(_message(), mail.parse_smtp_url(smtp.url))  # the system CAs do not know the test CA
        assert smtp.messages == []


def test_smtps_with_auth():
    with SmtpServer(implicit_tls=True, credentials=("ops", "s3cret")) as smtp:
        mail.send(_message(), mail.parse_smtp_url(smtp.url), ssl_context=cert_authority().client_context())
        assert len(smtp.messages) == 1


def test_wrong_password_is_one_line_without_the_password():
    with SmtpServer(starttls=True, credentials=("ops", "s3cret")) as smtp:
        url = smtp.url.replace("s3cret", "wrong-pw")
        with pytest.raises(mail.MailError) as caught:
            mail.send(_message(), mail.parse_smtp_url(url), ssl_context=cert_authority().client_context())
        assert smtp.messages == []
    text = str(caught.value)
    assert "refused the user name or password" in text and "wrong-pw" not in text and "\n" not in text
    assert f"smtp://ops@127.0.0.1:{smtp.port}" in text


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                         ("mail.example.org", False), ("192.0.2.10", False)])
def test_only_loopback_hosts_count_as_local_relays(host, local):
    assert mail.SmtpServer("smtp", host, 25, "ops", "pw").is_loopback is local


def test_a_local_relay_may_take_a_password_without_tls():
    with SmtpServer(credentials=("ops", "s3cret")) as smtp:
        mail.send(_message(), mail.parse_smtp_url(smtp.url))
        assert len(smtp.messages) == 1


def test_smtp_down_is_a_clear_one_line_error(down_port):
    url = f"smtp://127.0.0.1:{down_port}"
    with pytest.raises(mail.MailError) as caught:
        mail.send(_message(), mail.parse_smtp_url(url), timeout=5)
    assert str(caught.value) == f"could not send mail through {url}: connection refused (is the server running on that port?)"


def test_smtps_against_a_plain_server_says_tls_failed():
    with SmtpServer() as smtp:
        url = smtp.url.replace("smtp://", "smtps://")
        with pytest.raises(mail.MailError, match="TLS failed|closed the connection|no answer"):
            mail.send(_message(), mail.parse_smtp_url(url), timeout=5)


def test_partly_refused_recipients_are_reported_and_all_refused_is_an_error():
    with SmtpServer() as smtp:
        smtp.refuse("gone@example.org")
        result = mail.send(_message(["ops@example.org", "gone@example.org"]), mail.parse_smtp_url(smtp.url))
        assert result.accepted == ["ops@example.org"]
        assert result.refused == {"gone@example.org": "550 5.1.1 no such mailbox here"}
        with pytest.raises(mail.MailError, match="every recipient was refused: gone@example.org"):
            mail.send(_message(["gone@example.org"]), mail.parse_smtp_url(smtp.url))
        assert len(smtp.messages) == 1
