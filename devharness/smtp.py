"""A real SMTP server for tests (aiosmtpd on 127.0.0.1), with optional STARTTLS, implicit TLS
and AUTH, keeping every message it accepts.

    with SmtpServer(starttls=True, credentials=("ops", "s3cret")) as smtp:
        url = smtp.url  # smtp://ops:s3cret@127.0.0.1:PORT
        ...
        [message] = smtp.messages  # email.message.EmailMessage

TLS uses a throwaway certificate authority made here (``cert_authority``); ``client_context``
trusts it, and ``ca_file`` is a PEM file for ``SSL_CERT_FILE`` when the client is a subprocess.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from devharness.ports import listening_socket


@dataclass(frozen=True)
class CertAuthority:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@lru_cache(maxsize=1)
def cert_authority() -> CertAuthority:
    """A CA and a certificate for 127.0.0.1/localhost signed by it (made once per session)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(tempfile.mkdtemp(prefix="smtp-test-ca-"))
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    authority = CertAuthority(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    authority.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    authority.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    authority.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    return authority


class _Keeper:
    """aiosmtpd handler: keeps each accepted message with its envelope."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on a free 127.0.0.1 port. ``starttls`` offers STARTTLS, ``implicit_tls`` is
    smtps, ``credentials`` = (user, password) requires AUTH."""

    def __init__(self, *, starttls: bool = False, implicit_tls: bool = False,
                 credentials: tuple[str, str] | None = None, port: int = 0):
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.keeper = _Keeper()
        # Bound and listening before aiosmtpd starts, so the port cannot be taken in between.
        self.socket = listening_socket(port=port)  # port 0: the kernel's choice; else e.g. a restart
        self.port = self.socket.getsockname()[1]
        kwargs: dict = {}
        if starttls:
            kwargs["tls_context"] = cert_authority().server_context()
        if credentials:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self.controller = _BoundController(
            self.socket, self.keeper, hostname="127.0.0.1", port=self.port,
            ssl_context=cert_authority().server_context() if implicit_tls else None, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials)
        return AuthResult(success=ok, handled=False)

    @property
    def url(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self.keeper.lock:
            raw = [content for _, _, content in self.keeper.envelopes]
        return [email.message_from_bytes(content, policy=email.policy.default) for content in raw]

    @property
    def envelopes(self) -> list[tuple[str, list[str], bytes]]:
        with self.keeper.lock:
            return list(self.keeper.envelopes)

    def refuse(self, address: str) -> None:
        """Answer 550 to RCPT TO for this address."""
        self.keeper.refuse.add(address)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
        self.socket.close()


class _BoundController(Controller):
    """aiosmtpd's controller serving a socket that is already bound and listening."""

    def __init__(self, sock, *args, **kwargs):
        self._bound_socket = sock
        super().__init__(*args, **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._bound_socket, ssl=self.ssl_context)

