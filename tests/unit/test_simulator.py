"""The Firehose simulator: real objects written to a temp folder, read back and decoded."""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from lake.firehose import parse_key
from lake.simulator import ObjectWritten, Simulator, SimulatorConfig
from lake.simulator.cli import main
from lake.simulator.core import KINDS
from lake.simulator.farm import Farm
from lake.storage import LocalStorage
from lake.streams import load_streams

START = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
ALL = ("robot_telemetry", "clickstream", "cloudtrail")
ROBOT_FIELDS = ("event_id", "ts", "robot_id", "cow_id", "event_type", "firmware", "farm_id")
CLICK_FIELDS = (
    "event_id",
    "ts",
    "session_id",
    "user_id",
    "event_type",
    "page",
    "referrer",
    "ip_address",
    "user_agent",
    "user",
    "properties",
)
TRAIL_FIELDS = (
    "eventVersion",
    "eventID",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "userIdentity",
    "requestParameters",
    "responseElements",
    "readOnly",
    "eventType",
    "recipientAccountId",
)
TS_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TS_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def run(tmp_path, hours: float, start: datetime = START, **config) -> tuple[LocalStorage, list]:
    storage = LocalStorage(tmp_path)
    sim = Simulator(SimulatorConfig(**config))
    return storage, list(sim.write_range(storage, start, start + timedelta(hours=hours)))


def text_of(storage: LocalStorage, written: ObjectWritten) -> str:
    data = storage.read(written.key)
    assert len(data) == written.size
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    assert not data[3] & 0x08  # no file name in the header
    return gzip.decompress(data).decode("utf-8")


def decode_concatenated(text: str) -> tuple[list[dict], list[str], list[tuple[int, int]]]:
    """Documents back to back; after a parse error, resynchronise on the next `{`."""
    decoder = json.JSONDecoder()
    docs, broken, spans, pos = [], [], [], 0
    while pos < len(text):
        try:
            doc, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            nxt = text.find("{", pos + 1)
            end = len(text) if nxt == -1 else nxt
            broken.append(text[pos:end])
        else:
            docs.append(doc)
            spans.append((pos, end))
        pos = end
    return docs, broken, spans


def decode(storage: LocalStorage, written: ObjectWritten) -> tuple[list[dict], list[str]]:
    text = text_of(storage, written)
    if written.stream == "robot_telemetry":
        docs, broken, _ = decode_concatenated(text)
        return docs, broken
    if written.stream == "clickstream":
        assert text.endswith("\n")
        docs, broken = [], []
        for line in text[:-1].split("\n"):
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError:
                broken.append(line)
        return docs, broken
    body = json.loads(text)
    assert list(body) == ["Records"]
    docs = [r for r in body["Records"] if isinstance(r, dict) and "eventTime" in r]
    broken = [r for r in body["Records"] if not (isinstance(r, dict) and "eventTime" in r)]
    return docs, [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in broken]


def event_ms(record: dict) -> int:
    raw = record.get("ts") or record["eventTime"]
    return int(datetime.fromisoformat(raw).timestamp() * 1000)


# -- layout and determinism ----------------------------------------------------------------


def test_keys_follow_firehose_layout_and_arrival_hour(tmp_path):
    storage, written = run(tmp_path, 2, start=START + timedelta(minutes=30), seed=1)
    assert Counter(w.stream for w in written) == {s: 24 for s in ALL}
    assert sorted(info.key for info in storage.list()) == sorted(w.key for w in written)
    for w in written:
        parsed = parse_key(w.key)
        assert parsed is not None and parsed.stream == w.stream and parsed.version == "1"
        assert parsed.arrival_hour == w.arrival.replace(minute=0, second=0, microsecond=0)
        assert parsed.written_at == w.arrival
        assert w.key.endswith(".gz")
        assert START + timedelta(minutes=30) <= w.arrival < START + timedelta(hours=2.5)
        assert (w.arrival - START).total_seconds() % 300 == 0
    assert len({parse_key(w.key).arrival_hour for w in written}) == 3  # 06:30 -> 08:25


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    faults = {"duplicate_rate": 0.05, "late_rate": 0.05, "late_hours": 1.5, "malformed_rate": 0.05}
    a_store, a = run(tmp_path / "a", 1.5, seed=7, **faults)
    b_store, b = run(tmp_path / "b", 1.5, seed=7, **faults)
    c_store, c = run(tmp_path / "c", 1.5, seed=8, **faults)
    assert [w.key for w in a] == [w.key for w in b]
    assert all(a_store.read(x.key) == b_store.read(y.key) for x, y in zip(a, b, strict=True))
    assert a == b
    assert not {w.key for w in a} & {w.key for w in c}
    first = {w.stream: a_store.read(w.key) for w in reversed(a)}
    other = {w.stream: c_store.read(w.key) for w in reversed(c)}
    assert all(first[s] != other[s] for s in ALL)

    # A stream's objects do not depend on which other streams are simulated.
    d_store, d = run(tmp_path / "d", 1.5, seed=7, streams=("clickstream",), **faults)
    clicks = [w for w in a if w.stream == "clickstream"]
    assert [w.key for w in d] == [w.key for w in clicks]
    assert [d_store.read(w.key) for w in d] == [a_store.read(w.key) for w in clicks]


# -- the three formats ---------------------------------------------------------------------


def test_robot_telemetry_is_concatenated_json_without_delimiters(tmp_path):
    storage, written = run(tmp_path, 3, seed=3, streams=("robot_telemetry",), malformed_rate=0.03)
    types = Counter()
    for w in written:
        text = text_of(storage, w)
        assert "\n" not in text and text.startswith("{")
        docs, broken, spans = decode_concatenated(text)
        assert docs == w.records and broken == w.malformed
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if end == start:  # neighbours with nothing broken between them
                assert text[end - 1 : end + 1] == "}{"
        for piece in broken:
            with pytest.raises(json.JSONDecodeError):
                json.loads(piece)
        for r in w.records:
            assert all(f in r for f in ROBOT_FIELDS) and isinstance(r["sensors"], dict)
            assert TS_MS.match(r["ts"]) and re.fullmatch(r"R0[1-4]", r["robot_id"])
            types[r["event_type"]] += 1
            extra = {
                "gate_pass": "gate",
                "milking_end": "milking",
                "feed": "feed",
                "error": "error",
            }
            if r["event_type"] in extra:
                assert isinstance(r[extra[r["event_type"]]], dict)
            if r["event_type"] == "heartbeat":
                assert r["cow_id"] is None
            if r["event_type"] in ("milking_end", "milking_start", "gate_pass", "feed"):
                assert re.fullmatch(r"C\d{4}", r["cow_id"])
            if r["event_type"] == "error":
                assert set(r["operator"]) == {"name", "email"}
    assert sum(len(w.malformed) for w in written) > 0
    assert {"gate_pass", "milking_start", "milking_end", "feed", "heartbeat"} <= set(types)
    end = next(r for w in written for r in w.records if r["event_type"] == "milking_end")
    assert [q["quarter"] for q in end["milking"]["quarters"]] == ["lf", "rf", "lr", "rr"]
    assert set(end["sensors"]["conductivity_ms_cm"]) == {"lf", "rf", "lr", "rr"}


def test_clickstream_is_ndjson(tmp_path):
    storage, written = run(tmp_path, 3, seed=4, streams=("clickstream",), malformed_rate=0.03)
    total = 0
    for w in written:
        docs, broken = decode(storage, w)
        assert docs == w.records and broken == w.malformed
        total += len(docs)
        for r in w.records:
            assert tuple(r) == CLICK_FIELDS and TS_MS.match(r["ts"])
            assert r["event_type"] in ("page_view", "click", "add_to_cart", "purchase", "login")
            assert (r["user"] is None) == (r["user_id"] is None)
            if r["user"]:
                assert set(r["user"]) == {"email", "full_name", "plan"}
    assert 300 <= total <= 3000  # a few hundred events an hour
    assert sum(len(w.malformed) for w in written) > 0
    purchases = [r for w in written for r in w.records if r["event_type"] == "purchase"]
    assert purchases and all(p["properties"]["items"] for p in purchases)


def test_cloudtrail_is_records_document(tmp_path):
    storage, written = run(tmp_path, 24, seed=5, streams=("cloudtrail",), malformed_rate=0.01)
    records = []
    for w in written:
        docs, broken = decode(storage, w)
        assert docs == w.records and broken == w.malformed
        records += docs
    for r in records:
        assert all(f in r for f in TRAIL_FIELDS) and TS_S.match(r["eventTime"])
        assert r["eventVersion"] == "1.08" and r["eventType"] in ("AwsApiCall", "AwsConsoleSignIn")
        assert isinstance(r["userIdentity"], dict) and "type" in r["userIdentity"]
    names = Counter(r["eventName"] for r in records)
    assert {"ConsoleLogin", "GetObject", "PutObject", "DescribeInstances", "AssumeRole"} <= set(
        names
    )
    logins = [r for r in records if r["eventName"] == "ConsoleLogin"]
    assert {r["responseElements"]["ConsoleLogin"] for r in logins} == {"Success", "Failure"}
    failed = [r for r in logins if r["responseElements"]["ConsoleLogin"] == "Failure"]
    assert all(r["errorMessage"] == "Failed authentication" for r in failed)
    assert any(r.get("errorCode") == "AccessDenied" for r in records)
    roles = [r for r in records if r["userIdentity"]["type"] == "AssumedRole"]
    assert roles and all("sessionIssuer" in r["userIdentity"]["sessionContext"] for r in roles)
    broken = [json.loads(m) for w in written for m in w.malformed]
    assert any(isinstance(b, str) for b in broken) and any(isinstance(b, dict) for b in broken)


def test_stream_framing_matches_streams_yaml():
    catalog = load_streams()
    for name, kind in KINDS.items():
        spec = catalog[name]
        assert (spec.format, spec.dedup_key, spec.event_time_field) == (
            kind.framing,
            kind.id_field,
            kind.time_field,
        )


# -- the farm ------------------------------------------------------------------------------


def test_cows_are_milked_two_to_three_times_a_day(tmp_path):
    _, written = run(tmp_path, 48, seed=11, streams=("robot_telemetry",), cows=300)
    records = [r for w in written for r in w.records]
    ends = [r for r in records if r["event_type"] == "milking_end"]
    per_cow = Counter(r["cow_id"] for r in ends)
    assert len(per_cow) == 300
    assert 1.5 <= len(ends) / 300 / 2 <= 3.5
    yields = [r["milking"]["yield_kg"] for r in ends]
    assert 8 <= sum(yields) / len(yields) <= 16
    assert all(2 <= y <= 26 for y in yields)
    assert all(120 <= r["milking"]["duration_s"] <= 1200 for r in ends)
    for r in ends:
        quarters = sum(q["yield_kg"] for q in r["milking"]["quarters"])
        assert abs(quarters - r["milking"]["yield_kg"]) < 0.05
    heartbeats = Counter(r["robot_id"] for r in records if r["event_type"] == "heartbeat")
    assert set(heartbeats) == {"R01", "R02", "R03", "R04"}
    assert max(heartbeats.values()) <= 48 * 61  # about one a minute


def test_forced_breakdown_silences_the_robot(tmp_path):
    down_at = START + timedelta(hours=10)
    cfg = {"breakdowns": (("R02", down_at, 4.0),), "random_breakdowns": False}
    _, written = run(tmp_path, 24, seed=12, streams=("robot_telemetry",), **cfg)
    records = [r for w in written for r in w.records]
    lo, hi = down_at, down_at + timedelta(hours=4)

    def when(r):
        return datetime.fromisoformat(r["ts"])

    r02 = [r for r in records if r["robot_id"] == "R02"]
    during = [r for r in r02 if lo <= when(r) < hi]
    assert during and {r["event_type"] for r in during} == {"error"}
    assert all(r["error"]["severity"] == "critical" for r in during)
    assert when(during[0]) == lo
    before = [r for r in r02 if when(r) < lo]
    after = [r for r in r02 if when(r) >= hi]
    for part in (before, after):
        assert {"heartbeat", "milking_end"} <= {r["event_type"] for r in part}
    others = [r for r in records if r["robot_id"] != "R02" and lo <= when(r) < hi]
    assert Counter(r["event_type"] for r in others)["heartbeat"] > 3 * 4 * 55
    assert not [
        r
        for r in records
        if r["event_type"] == "error"
        and r["robot_id"] != "R02"
        and r["error"]["severity"] == "critical"
    ]


def test_random_breakdowns_happen_about_every_two_days():
    origin = int(START.timestamp() * 1000)
    farm = Farm(random.Random(13), origin, cows=1, robots=1)
    events = farm.take_until(origin + 30 * 24 * 3_600_000)
    stops = [
        r
        for _, r in events
        if r["event_type"] == "error"
        and r["error"]["severity"] == "critical"
        and r["error"]["code"] == "E_ROBOT_STOPPED"
    ]
    assert 7 <= len(stops) <= 25  # about 15 expected in 30 days
    hours = [(end - start) / 3_600_000 for start, end in farm.robots[0].breakdowns]
    assert all(2 <= h <= 6 for h in hours)


def test_firmware_update_adds_milk_quality(tmp_path):
    update = START + timedelta(hours=12)
    _, written = run(tmp_path, 24, seed=14, streams=("robot_telemetry",), firmware_update_at=update)
    records = [r for w in written for r in w.records]
    before = [r for r in records if datetime.fromisoformat(r["ts"]) < update]
    after = [r for r in records if datetime.fromisoformat(r["ts"]) >= update]
    assert before and after
    assert all(r["firmware"] == "4.2.1" and "milk_quality" not in r for r in before)
    assert all(r["firmware"] == "5.0.0" for r in after)
    ends = [r for r in after if r["event_type"] == "milking_end"]
    assert ends and all(
        isinstance(r["milk_quality"]["somatic_cell_count"], int)
        and isinstance(r["milk_quality"]["fat_pct"], float)
        for r in ends
    )
    assert not [r for r in after if "milk_quality" in r and r["event_type"] != "milking_end"]


# -- delivery faults -----------------------------------------------------------------------


def test_fault_rates_and_counts_match_the_bytes(tmp_path):
    rate = 0.04
    storage, written = run(
        tmp_path,
        8,
        seed=21,
        duplicate_rate=rate,
        late_rate=rate,
        late_hours=2.5,
        malformed_rate=rate,
    )
    seen: dict[str, set] = {s: set() for s in ALL}
    totals = Counter()
    for w in written:
        docs, broken = decode(storage, w)
        assert docs == w.records and broken == w.malformed
        id_field = KINDS[w.stream].id_field
        duplicates = 0
        for r in docs:
            duplicates += r[id_field] in seen[w.stream]
            seen[w.stream].add(r[id_field])
        assert duplicates == w.duplicates
        arrival_ms = int(w.arrival.timestamp() * 1000)
        assert w.late == sum(arrival_ms - event_ms(r) > 3_600_000 for r in docs)
        totals.update(records=len(docs), malformed=len(broken), dup=w.duplicates, late=w.late)
    base = totals["records"] - totals["dup"] + totals["malformed"]  # records before faults
    assert base > 5000
    for name in ("malformed", "dup", "late"):
        assert 0.6 * rate * base <= totals[name] <= 1.4 * rate * base, (name, totals, base)
    late = [
        r
        for w in written
        for r in w.records
        if int(w.arrival.timestamp() * 1000) - event_ms(r) > 3_600_000
    ]
    lag = [
        (w.arrival - datetime.fromisoformat(r.get("ts") or r["eventTime"])).total_seconds()
        for w in written
        for r in w.records
        if r in late
    ]
    assert all(2.5 * 3600 - 1 <= s <= 2.5 * 3600 + 601 for s in lag)


def test_no_faults_means_clean_objects(tmp_path):
    _, written = run(tmp_path, 2, seed=22)
    assert all(w.duplicates == 0 and w.late == 0 and not w.malformed for w in written)
    ids = [r.get("event_id") or r["eventID"] for w in written for r in w.records]
    assert len(ids) == len(set(ids))


# -- write_object (continuous mode) --------------------------------------------------------


def test_write_object_windows(tmp_path):
    storage = LocalStorage(tmp_path)
    sim = Simulator(SimulatorConfig(seed=31, object_interval_s=600))
    t = START + timedelta(milliseconds=500)
    first = sim.write_object(storage, "robot_telemetry", t)
    assert first is not None and storage.exists(first.key)
    times = [datetime.fromisoformat(r["ts"]) for r in first.records]
    assert all(t - timedelta(seconds=600) <= x < t for x in times)
    assert len([r for r in first.records if r["event_type"] == "heartbeat"]) >= 4 * 9
    second = sim.write_object(storage, "robot_telemetry", t + timedelta(seconds=90))
    assert second is not None
    assert all(
        t <= datetime.fromisoformat(r["ts"]) < t + timedelta(seconds=90) for r in second.records
    )
    with pytest.raises(ValueError):
        sim.write_object(storage, "robot_telemetry", t)
    # CloudTrail events fall on whole seconds: a 1 ms window off the second is empty.
    assert sim.write_object(storage, "cloudtrail", t) is not None
    assert sim.write_object(storage, "cloudtrail", t + timedelta(milliseconds=1)) is None
    with pytest.raises(ValueError):
        Simulator(SimulatorConfig(streams=("clickstream",))).write_object(storage, "cloudtrail", t)


@pytest.mark.parametrize(
    "bad",
    [
        {"duplicate_rate": 1.5},
        {"late_rate": -0.1},
        {"streams": ("nope",)},
        {"robots": 0},
        {"breakdowns": (("R09", START, 2.0),)},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        SimulatorConfig(**bad)


# -- CLI -----------------------------------------------------------------------------------


def test_cli_history(tmp_path, capsys):
    uri = (tmp_path / "landing").as_uri()
    argv = ["--hours", "1", "--landing-uri", uri, "--seed", "5", "--malformed-rate", "0.01"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    keys = [info.key for info in LocalStorage(tmp_path / "landing").list()]
    assert 30 <= len(keys) <= 36  # 12 arrivals x 3 streams; a quiet window writes nothing
    assert out.startswith(f"wrote {len(keys)} objects, ") and out.rstrip().endswith(f"to {uri}")
    assert re.search(r"\(\d+ malformed, 0 duplicates, 0 late\)", out)
    assert "100%" in err


def test_cli_start_end(tmp_path, capsys):
    uri = (tmp_path / "landing").as_uri()
    argv = [
        "--start",
        "2026-11-21T08:00:00Z",
        "--end",
        "2026-11-21T09:00:00Z",
        "--streams",
        "cloudtrail",
        "--object-interval",
        "600",
        "--landing-uri",
        uri,
    ]
    assert main(argv) == 0
    keys = [info.key for info in LocalStorage(tmp_path / "landing").list()]
    assert len(keys) == 6 and all(k.startswith("cloudtrail/2026/11/21/08/") for k in keys)


def test_cli_continuous(tmp_path, capsys):
    uri = (tmp_path / "live").as_uri()
    argv = ["--continuous", "--interval", "1", "--duration", "2", "--landing-uri", uri]
    assert main(argv) == 0
    keys = [info.key for info in LocalStorage(tmp_path / "live").list()]
    assert any(k.startswith("robot_telemetry/") for k in keys)
    assert capsys.readouterr().out.startswith("wrote ")


@pytest.mark.parametrize(
    "argv",
    [
        ["--start", "2026-11-21T10:00:00Z", "--end", "2026-11-21T09:00:00Z"],
        ["--duplicate-rate", "1.5"],
        ["--streams", "robot_telemetry,nope"],
        ["--hours", "-1"],
        ["--continuous", "--hours", "1"],
        ["--duration", "5"],
        ["--start", "yesterday", "--hours", "1"],
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path, capsys, argv):
    assert main([*argv, "--landing-uri", tmp_path.as_uri()]) == 2
    assert "error:" in capsys.readouterr().err
    assert not list(LocalStorage(tmp_path).list())
