"""Sending e-mail over SMTP: the one mail path of the project (alerts and the weekly report).

``MONITOR_SMTP_URL`` names the server:

- ``smtp://user:password@host:port`` — plain SMTP (port 25 unless given) upgraded with
  STARTTLS whenever the server offers it. A password is never sent over an unencrypted
  connection, except to a loopback address (a local relay).
- ``smtps://user:password@host:port`` — TLS from the first byte (port 465 unless given).

User name and password are optional and percent-decoded (``%40`` for ``@`` in a user name).
Certificates are checked against the system's trusted authorities (``SSL_CERT_FILE`` adds
one; a caller may pass its own ``ssl.SSLContext``).

    from core import mail
    message = mail.build_message(sender=..., recipients=[...], subject=..., text=..., html=...)
    mail.send(message, mail.parse_smtp_url(settings.MONITOR_SMTP_URL))

Every failure is a ``MailError`` whose text is one line naming the server (never the
password) and what went wrong.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from urllib.parse import unquote, urlsplit

from core.errors import MonitorError

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
DEFAULT_TIMEOUT_S = 30.0


class SmtpUrlError(ValueError):
    """MONITOR_SMTP_URL is malformed (the message never repeats the password)."""


class MailError(MonitorError):
    """A message could not be sent; str() is one line naming the server and the reason."""


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send: parsed from MONITOR_SMTP_URL."""

    scheme: str  # "smtp" (STARTTLS when offered) or "smtps" (implicit TLS)
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The server as a URL without credentials, for messages and logs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class SendResult:
    """Who the server accepted the message for, and who it refused (address -> reason)."""

    accepted: list[str]
    refused: dict[str, str]


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp[s]://[user[:password]@]host[:port]`` -> SmtpServer, or SmtpUrlError."""
    text = (url or "").strip()
    if "://" not in text:
        raise SmtpUrlError("must look like smtp://user:password@host:587 or smtps://user:password@host:465")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise SmtpUrlError(f"scheme {parts.scheme!r} is not smtp:// (STARTTLS when offered) or smtps:// (TLS)")
    try:
        port = parts.port
    except ValueError:
        raise SmtpUrlError("the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise SmtpUrlError("names no host (smtp://user:password@host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SmtpUrlError("takes no path or query after host:port")
    return SmtpServer(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def parse_addresses(text: str | list[str] | None) -> list[str]:
    """'a@x.org, Ops <ops@y.org>' (or a list of such) -> ['a@x.org', 'ops@y.org'].

    Raises ValueError naming the first entry that is not an e-mail address.
    """
    if text is None:
        return []
    items = [text] if isinstance(text, str) else list(text)
    found: list[str] = []
    for item in items:
        for raw in filter(None, (piece.strip() for piece in item.split(","))):
            pairs = getaddresses([raw])
            address = pairs[0][1] if len(pairs) == 1 else ""
            local, at, domain = address.rpartition("@")
            if not at or not local or "." not in domain or any(c.isspace() for c in address):
                raise ValueError(f"{raw!r} is not an e-mail address")
            if address not in found:
                found.append(address)
    return found


def build_message(*, sender: str, recipients: list[str], subject: str, text: str,
                  html: str | None = None, now: datetime | None = None) -> EmailMessage:
    """A message with a plain-text body, and with ``html`` a multipart/alternative one whose
    text part comes first (clients show the last part they can render)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # One line: a line break in a header is refused (or, unchecked, would start a new header).
    message["Subject"] = " ".join(subject.split())
    message["Date"] = format_datetime(now or datetime.now(timezone.utc))
    domain = sender.rpartition("@")[2].strip(" >") or None
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send(message: EmailMessage, server: SmtpServer, *, timeout: float = DEFAULT_TIMEOUT_S,
         ssl_context: ssl.SSLContext | None = None) -> SendResult:
    """Deliver ``message`` to its To/Cc/Bcc recipients through ``server``.

    Returns the accepted and refused recipients when the server took the message for at
    least one; raises MailError otherwise.
    """
    context = ssl_context or ssl.create_default_context()
    recipients = [address for _, address in getaddresses(message.get_all("To", []) + message.get_all("Cc", [])
                                                         + message.get_all("Bcc", []))]
    try:
        client = _connect(server, timeout=timeout, context=context)
        with client:
            client.ehlo()
            if server.scheme == "smtp":
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
                elif server.password is not None and not server.is_loopback:
                    raise MailError(f"could not send mail through {server.display}: the server does not offer "
                                    "STARTTLS, and the password is not sent unencrypted (use smtps://)")
            if server.username:
                client.login(server.username, server.password or "")
            refused = client.send_message(message)
    except MailError:
        raise
    except Exception as exc:  # every other failure becomes one readable line
        raise MailError(f"could not send mail through {server.display}: {_reason(exc, timeout)}") from exc
    refused_text = {address: _smtp_reply(code, text) for address, (code, text) in refused.items()}
    return SendResult([address for address in recipients if address not in refused], refused_text)


def _connect(server: SmtpServer, *, timeout: float, context: ssl.SSLContext) -> smtplib.SMTP:
    # The EHLO name: the machine's short name; smtplib's default (getfqdn) may wait on DNS.
    local_name = socket.gethostname() or "localhost"
    if server.scheme == "smtps":
        return smtplib.SMTP_SSL(server.host, server.port, local_hostname=local_name, timeout=timeout,
                                context=context)
    return smtplib.SMTP(server.host, server.port, local_hostname=local_name, timeout=timeout)


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(str(text).split())}".strip()


def _reason(exc: BaseException, timeout: float) -> str:
    """What went wrong, in words an administrator can act on."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"the server refused the user name or password ({_smtp_reply(exc.smtp_code, exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the server does not support this ({exc}); check whether it wants a user name and password"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{address} ({_smtp_reply(code, text)})"
                            for address, (code, text) in exc.recipients.items())
        return f"every recipient was refused: {refused}"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"the sender {exc.sender} was refused ({_smtp_reply(exc.smtp_code, exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered {_smtp_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({exc or 'no reason given'})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}); smtps:// needs a TLS port such as 465, smtp:// a plain one"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running on that port?)"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
