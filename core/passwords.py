"""Password hashing for the dashboard login, below the dashboard so that
``python -m jobs hash-password`` (which makes the hash) and ``dashboard.auth`` (which checks
it) share it without the jobs importing the dashboard.

Salted scrypt, stored as ``scrypt$n$r$p$salt$key`` (base64url, no padding), compared in
constant time. The standard library only: hashlib.scrypt is OpenSSL's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

# scrypt cost: n=2**14, r=8 takes ~50 ms and 16 MiB per check, the parameters Python's
# docs and OWASP's cheat sheet suggest as a floor for interactive logins.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_MAX_N = 2**20  # refuse hashes whose cost would let a bad setting exhaust memory
_SALT_BYTES, _KEY_BYTES = 16, 32
HASH_COMMAND = "python -m jobs hash-password"


class InvalidHash(ValueError):
    """The configured password hash is not one this module makes."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = _KEY_BYTES) -> bytes:
    # scrypt needs 128 * n * r bytes; allow that plus headroom (the default cap is 32 MiB).
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + 1024 * 1024, dklen=dklen)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$key`` with a fresh random salt (base64url, no padding)."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = os.urandom(_SALT_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


@dataclass(frozen=True)
class ParsedHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def parse_hash(encoded: str) -> ParsedHash:
    """Check a stored hash's shape and cost; raise InvalidHash saying what is wrong."""
    parts = encoded.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise InvalidHash(f"expected scrypt$n$r$p$salt$key as printed by '{HASH_COMMAND}'")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise InvalidHash(f"the numbers or base64 parts are damaged; make a new one with '{HASH_COMMAND}'") from None
    if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise InvalidHash("its cost parameters are out of range (n a power of two up to 2**20, r ≤ 32, p ≤ 16)")
    if len(salt) < 8 or len(key) < 16:
        raise InvalidHash("its salt or key is too short")
    return ParsedHash(n, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison)."""
    parsed = parse_hash(encoded)
    candidate = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, dklen=len(parsed.key))
    return hmac.compare_digest(candidate, parsed.key)
