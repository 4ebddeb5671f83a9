"""The PII corpus (tests/corpus/pii/): records in the shapes AWS and our producers send,
with the raw values that must never reach an output, landed the way Firehose lands them."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

from lake.firehose import object_key
from lake.storage import Storage
from tests.pii_scan.scanner import RawValue, load_values

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "pii"
ARRIVAL_HOUR = "2026-11-21-08:00"  # the hourly partition every object lands in
EVENT_DAY = "2026-11-21"
WRITTEN_AT = datetime(2026, 11, 21, 8, 40, tzinfo=UTC)


def raw_values() -> list[RawValue]:
    return load_values(CORPUS / "raw_values.json")


def records(stream: str) -> list[dict]:
    """The corpus records of a stream that parse (the malformed clickstream line does not)."""
    if stream == "cloudtrail":
        return json.loads((CORPUS / "cloudtrail.json").read_text())["Records"]
    if stream == "robot_telemetry":
        return json.loads((CORPUS / "robot_telemetry.json").read_text())
    out = []
    for line in (CORPUS / "clickstream.ndjson").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def payloads() -> dict[str, bytes]:
    """Each stream's object body in its declared format (streams.yaml), before gzip."""
    robots = json.loads((CORPUS / "robot_telemetry.json").read_text())
    return {
        # CloudTrail's own file shape: {"Records": [...]}
        "cloudtrail": (CORPUS / "cloudtrail.json").read_bytes(),
        # Firehose's default: JSON documents back to back, no delimiter
        "robot_telemetry": "".join(json.dumps(r) for r in robots).encode(),
        "clickstream": (CORPUS / "clickstream.ndjson").read_bytes(),
    }


def land(landing: Storage) -> list[str]:
    """Write one gzip object per stream under Firehose's key layout; return the keys."""
    keys = []
    for n, (stream, body) in enumerate(payloads().items()):
        key = object_key(stream, WRITTEN_AT, object_id=f"00000000-0000-4000-8000-pii00000000{n}")
        landing.write(key, gzip.compress(body, mtime=0))
        keys.append(key)
    return keys
