"""The classifier's growing sample: each sampled record is decoded once, and the outcome is
the one a classification of the final sample alone gives (real files, real gzip)."""

from __future__ import annotations

import gzip
import json
import random

import pytest

import lake.classifiers as classifiers
import lake.framings.concatenated_json as concatenated_json
from lake.classifiers import SampleLimits, classify_object
from lake.storage import LocalStorage

LIMITS = SampleLimits(max_bytes=400_000, max_records=5_000)


def _record(rng: random.Random, i: int, big: bool = False) -> dict:
    note = "é€𝄞" * rng.randrange(1, 40)  # multi-byte characters, cut by some sample ends
    record = {"id": i, "ts": "2026-11-21T08:00:00Z", "note": note, "nested": {"v": rng.random()}}
    if big:
        record["blob"] = "x" * 70_000  # longer than the first sample: cut by it
    return record


def _objects() -> dict[str, bytes]:
    rng = random.Random(7)
    records = [_record(rng, i, big=i % 97 == 5) for i in range(1_500)]
    docs = [json.dumps(r, ensure_ascii=False) for r in records]
    concatenated = "".join(docs).encode()
    malformed = "".join(d if i != 400 else d[:-3] + "{{" for i, d in enumerate(docs)).encode()
    return {
        "concatenated.json": concatenated,
        "concatenated.json.gz": gzip.compress(concatenated),
        "spaced.json": " \n ".join(docs).encode(),
        "lines.ndjson": ("\n".join(docs) + "\n").encode(),
        "lines_blank.ndjson": "\n\n".join(docs).encode(),
        "malformed_late.json": malformed,
        "short.json": "".join(docs[:30]).encode(),
        "wrapper.json": json.dumps({"Records": records[:600]}).encode(),
        "array.json": json.dumps(records[:600]).encode(),
    }


@pytest.fixture
def landing(tmp_path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "landing")
    for key, body in _objects().items():
        storage.write(key, body)
    return storage


@pytest.mark.parametrize("key", sorted(_objects()))
@pytest.mark.parametrize("limits", [LIMITS, SampleLimits(max_bytes=1_048_576, max_records=900)])
def test_same_outcome_as_classifying_the_final_sample_alone(
    landing: LocalStorage, key: str, limits: SampleLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = len(landing.read(key))
    resumed = classify_object(landing, key, size, limits)
    monkeypatch.setattr(classifiers, "_resumable", lambda found: False)
    parsed_whole = classify_object(landing, key, size, limits)
    assert resumed.classification == "json"
    assert resumed == parsed_whole


def test_each_sampled_record_is_decoded_once(
    landing: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    decode = concatenated_json.decode

    def counting(sample, pos):
        decoded.append(pos)
        return decode(sample, pos)

    monkeypatch.setattr(concatenated_json, "decode", counting)
    key = "concatenated.json.gz"
    found = classify_object(landing, key, len(landing.read(key)), LIMITS)
    assert found.framing == "concatenated" and len(found.records) > 300
    # one decode per record taken, plus the record each sample's end cuts (four samples)
    assert len(decoded) <= len(found.records) + 4
