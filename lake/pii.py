"""PII masking settings; the masking itself runs in SQL (lake.cleaning: HMAC-SHA256, redact)."""

from __future__ import annotations

import os

REDACTED = "[REDACTED]"
DEV_KEY = "firehose-lake-local-dev-key"  # only for the embedded default; set PII_HASH_KEY in prod


def hash_key() -> bytes:
    return os.environ.get("PII_HASH_KEY", DEV_KEY).encode()
