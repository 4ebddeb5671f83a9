"""PII masking settings; the masking itself runs in SQL (lake.cleaning: HMAC-SHA256, redact)."""

from __future__ import annotations

import os

REDACTED = "[REDACTED]"
DEV_KEY = "firehose-lake-local-dev-key"  # only for the embedded default; set PII_HASH_KEY in prod


class MissingPIIKey(RuntimeError):
    """Cleaning an S3 location with the development key: its hashes could be reversed by
    anyone who has this (public) code."""


def hash_key() -> bytes:
    return os.environ.get("PII_HASH_KEY", DEV_KEY).encode()


def require_key_for(*uris: str) -> None:
    """Refuse to mask data of an S3 location with the development key: the embedded
    default (local folders) may use it, anything on S3 needs PII_HASH_KEY."""
    on_s3 = [u for u in uris if u.startswith("s3://")]
    if on_s3 and not os.environ.get("PII_HASH_KEY"):
        raise MissingPIIKey(
            f"PII_HASH_KEY is not set and {on_s3[0]} is on S3: set PII_HASH_KEY to a secret "
            "(the development key is public, so its hashes of e-mails and IPs could be reversed)"
        )
