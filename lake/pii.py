"""PII masking settings and the hash key; the masking itself runs in SQL (lake.cleaning.masking:
HMAC-SHA256, redact).

The key is resolved once per run (`resolve_key`: PII_HASH_KEY, else the Secrets Manager
secret PII_HASH_KEY_SECRET_ID, else the development key, which only local folders may
use) and installed on the cleaning's DuckDB connection as two BLOB variables bound by
parameter (`install_key`), so it is never part of any SQL text: an error that echoes
the query, or a log of it, shows `getvariable(...)`, not the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lake.settings import Settings

REDACTED = "[REDACTED]"
DEV_KEY = "firehose-lake-local-dev-key"  # only for the embedded default; set PII_HASH_KEY in prod
KEY_ENV = "PII_HASH_KEY"
SECRET_ID_ENV = "PII_HASH_KEY_SECRET_ID"
# DuckDB variables holding HMAC's inner and outer padded keys (lake.cleaning.masking._hmac_sql)
IPAD_VARIABLE = "_pii_hmac_ipad"
OPAD_VARIABLE = "_pii_hmac_opad"


class PIIKeyError(RuntimeError):
    """No usable PII key. `retryable` is False when running again cannot help (a
    setting, a missing or empty secret, a denied permission). Messages never hold the key."""

    retryable = False


class MissingPIIKey(PIIKeyError):
    """Cleaning an S3 location with the development key: its hashes could be reversed by
    anyone who has this (public) code."""


class SecretUnavailable(PIIKeyError):
    """The key's secret could not be read from Secrets Manager."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class PIIKey:
    """The HMAC key and where it came from (`env`, `secret`, `development`); its repr
    and str never show the key."""

    secret: bytes = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        if not self.secret:
            raise PIIKeyError(f"the PII key from {self.source} is empty")

    def __str__(self) -> str:
        return repr(self)

    def pads(self) -> tuple[bytes, bytes]:
        """HMAC's (key XOR ipad, key XOR opad) blocks (RFC 2104, SHA-256's 64-byte block)."""
        key = self.secret if len(self.secret) <= 64 else hashlib.sha256(self.secret).digest()
        key = key.ljust(64, b"\0")
        return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hash_key(settings: Settings | None = None) -> bytes:
    """The key from PII_HASH_KEY (read now), else the development key (no secret lookup)."""
    settings = Settings.from_env() if settings is None else settings
    return (settings.pii_hash_key or DEV_KEY).encode()


def resolve_key(
    *uris: str,
    env_key: str | None = None,
    secret_id: str | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> PIIKey:
    """The key for masking data of `uris`: `env_key` (PII_HASH_KEY's value), else the
    secret `secret_id` (read with `fetch`, default Secrets Manager), else the development
    key, which is refused (MissingPIIKey) when any location is on S3."""
    if env_key:
        return PIIKey(env_key.encode(), "env")
    if secret_id:
        if fetch is None:
            from lake.pii_secret import fetch_secret

            fetch = fetch_secret
        return PIIKey(fetch(secret_id), "secret")
    refuse_development_key(*uris)
    return PIIKey(DEV_KEY.encode(), "development")


def key_from_env(*uris: str) -> PIIKey:
    """resolve_key with PII_HASH_KEY and PII_HASH_KEY_SECRET_ID read now (for callers
    outside Dagster, which gets them from its resource)."""
    settings = Settings.from_env()
    return resolve_key(
        *uris, env_key=settings.pii_hash_key, secret_id=settings.pii_hash_key_secret_id
    )


def refuse_development_key(*uris: str) -> None:
    """Refuse to mask data of an S3 location with the development key: the embedded
    default (local folders) may use it, anything on S3 needs a secret key."""
    on_s3 = [u for u in uris if u.startswith("s3://")]
    if on_s3:
        raise MissingPIIKey(
            f"no PII key is set and {on_s3[0]} is on S3: set {SECRET_ID_ENV} to a Secrets "
            f"Manager secret holding the key (or {KEY_ENV} to the key); the development key "
            "is public, so its hashes of e-mails and IPs could be reversed"
        )


def install_key(con: Any, key: PIIKey) -> None:
    """Make `key` the HMAC key of lake.cleaning's SQL on DuckDB connection `con`
    (bound as parameters, so no statement text holds it)."""
    ipad, opad = key.pads()
    con.execute(f"SET VARIABLE {IPAD_VARIABLE} = ?", [ipad])
    con.execute(f"SET VARIABLE {OPAD_VARIABLE} = ?", [opad])
