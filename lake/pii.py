"""Masking of declared PII fields before anything reaches cleaned/."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

REDACTED = "[REDACTED]"
DEV_KEY = "firehose-lake-local-dev-key"  # only for the embedded default; set PII_HASH_KEY in prod


def hash_key() -> bytes:
    return os.environ.get("PII_HASH_KEY", DEV_KEY).encode()


def mask(value: Any, how: str, key: bytes) -> Any:
    """`hash`: keyed HMAC-SHA256 hex (stable, so masked ids still join); `redact`: gone."""
    if value is None:
        return None
    if how == "redact":
        return REDACTED if isinstance(value, str) else None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
