"""Issue 12, "show it": CloudTrail records in the shapes of AWS's documentation, through the
whole pipeline on moto's S3 and Glue over HTTP.

The corpus (tests/corpus/cloudtrail/, see its README) holds IAM, STS, EC2, S3, Lambda and
SSM calls by IAMUser, AssumedRole, FederatedUser, Root and AWSService identities, denied
calls, console sign-ins that succeed and fail, empty objects, `resources` entries keyed
`accountId` and `accountid`, `responseElements.role` as an object (IAM) and as a string
(Lambda), and a request parameter holding an ISO timestamp in one record and another date
format in the next. It lands in four arrival hours with events on two days; landing,
schema (synced to Glue) and cleaned run hour by hour, then the security mart day by day,
all through Dagster's `materialize`.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, ExecuteInProcessResult, materialize

from lake.committed import CommittedFiles
from lake.firehose import object_key, partition_key
from lake.storage import Storage, open_storage
from lake.streams import load_streams
from orchestration.definitions import ingest_assets, mart_assets
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3

CORPUS = Path(__file__).parents[1] / "corpus" / "cloudtrail"
STREAM, MART, GLUE_DATABASE = "cloudtrail", "security_events_daily", "ct_real_shapes"
JSON_TEXT_COLUMNS = ("requestparameters", "responseelements", "additionaleventdata")

# AWS's table for CloudTrail logs: Athena user guide, "Create a table for CloudTrail logs in
# Athena using manual partitioning" (docs.aws.amazon.com/athena/latest/ug/create-cloudtrail-table.html),
# its CREATE EXTERNAL TABLE cloudtrail_logs column list, names and types as printed there.
ATHENA_CLOUDTRAIL_COLUMNS: dict[str, str] = {
    "eventversion": "string",
    "useridentity": (
        "struct<type:string,principalid:string,arn:string,accountid:string,invokedby:string,"
        "accesskeyid:string,username:string,"
        "onbehalfof:struct<userid:string,identitystorearn:string>,"
        "sessioncontext:struct<attributes:struct<mfaauthenticated:string,creationdate:string>,"
        "sessionissuer:struct<type:string,principalid:string,arn:string,accountid:string,"
        "username:string>,ec2roledelivery:string,"
        "webidfederationdata:struct<federatedprovider:string,attributes:map<string,string>>>>"
    ),
    "eventtime": "string",
    "eventsource": "string",
    "eventname": "string",
    "awsregion": "string",
    "sourceipaddress": "string",
    "useragent": "string",
    "errorcode": "string",
    "errormessage": "string",
    "requestparameters": "string",
    "responseelements": "string",
    "additionaleventdata": "string",
    "requestid": "string",
    "eventid": "string",
    "resources": "array<struct<arn:string,accountid:string,type:string>>",
    "eventtype": "string",
    "apiversion": "string",
    "readonly": "string",
    "recipientaccountid": "string",
    "serviceeventdetails": "string",
    "sharedeventid": "string",
    "vpcendpointid": "string",
    "vpcendpointaccountid": "string",
    "eventcategory": "string",
    "addendum": (
        "struct<reason:string,updatedfields:string,originalrequestid:string,originaleventid:string>"
    ),
    "sessioncredentialfromconsole": "string",
    "edgedevicedetails": "string",
    "tlsdetails": "struct<tlsversion:string,ciphersuite:string,clientprovidedhostheader:string>",
}

HiveType = str | tuple[str, Any]  # "string" | ("struct", [(name, type)]) | ("array", type) | ...


# ---------------------------------------------------------------- the corpus, as landed


def corpus_objects() -> list[tuple[datetime, dict[str, Any]]]:
    """(Firehose write time, CloudTrail file) for every corpus file, in write order."""
    out = []
    for path in sorted(CORPUS.glob("cloudtrail-*.json")):
        written = datetime.strptime(path.stem.removeprefix("cloudtrail-"), "%Y-%m-%dT%H-%M-%S")
        out.append((written.replace(tzinfo=UTC), json.loads(path.read_text())))
    return out


def land(landing: Storage, objects: list[tuple[datetime, dict[str, Any]]]) -> list[datetime]:
    """Put each file gzip-compressed at Firehose's key; return the arrival hours, in order."""
    hours: set[datetime] = set()
    for i, (written, document) in enumerate(objects):
        key = object_key(STREAM, written, object_id=f"0000000{i}-ct00-4000-8000-real0shapes0")
        landing.write(key, gzip.compress(json.dumps(document).encode(), mtime=0))
        hours.add(written.replace(minute=0, second=0))
    return sorted(hours)


def raw_records(objects: list[tuple[datetime, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for _, document in objects for r in document["Records"]]


# ------------------------------------------------- what the mart must hold, from raw JSON


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 hex with the run's PII key (the `hash` mask of streams.yaml)."""
    key = os.environ["PII_HASH_KEY"].encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def masked_arn(arn: str) -> str:
    """The iam_user_arn rule: in user/, assumed-role/<role>/ and federated-user/ ARNs the
    person (the last path part) is hashed; account, role and path stay."""
    kinds = (":user/", ":assumed-role/", ":federated-user/")
    if arn.startswith("arn:aws:") and any(k in arn for k in kinds):
        head, _, person = arn.rpartition("/")
        return f"{head}/{keyed_hash(person)}"
    return arn


def security_kind(r: dict[str, Any]) -> str | None:
    response = r.get("responseElements") or {}
    if r["eventName"] == "ConsoleLogin" and response.get("ConsoleLogin") == "Failure":
        return "failed_console_login"
    if r["userIdentity"].get("type") == "Root":
        return "root_account_use"
    code = r.get("errorCode") or ""
    if "AccessDenied" in code or "Unauthorized" in code:
        return "access_denied"
    return None


def expected_security_rows(
    records: list[dict[str, Any]], arrival_hours: list[datetime]
) -> set[tuple]:
    """(dt, kind, source_ip, principal, event_name, events, suspected_brute_force); what a
    kind is not grouped by is None; fewer than 5 failed logins are "not suspected" only on
    a complete day (an arrival 24 hours, cloudtrail's allowed lateness, past its end)."""
    unique = {r["eventID"]: r for r in reversed(records)}  # a redelivery counts once
    groups: Counter[tuple[str, str, str | None, str | None, str]] = Counter()
    for r in unique.values():
        kind = security_kind(r)
        if kind is None:
            continue
        who = r["userIdentity"]
        principal = masked_arn(who["arn"]) if who.get("arn") else who.get("type")
        groups[
            (
                r["eventTime"][:10],
                kind,
                None if kind == "access_denied" else keyed_hash(r["sourceIPAddress"]),
                None if kind == "failed_console_login" else principal,
                r["eventName"],
            )
        ] += 1

    def suspected(day: str, kind: str, n: int) -> bool | None:
        if kind != "failed_console_login":
            return False
        complete_at = datetime.fromisoformat(f"{day}T00:00:00+00:00") + timedelta(days=2)
        return True if n >= 5 else (False if arrival_hours[-1] >= complete_at else None)

    return {(*group, n, suspected(group[0], group[1], n)) for group, n in groups.items()}


# ------------------------------------------------------------------- Hive type strings


def _split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside <...>."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_hive(text: str) -> HiveType:
    """A Hive/Glue type string as nested tuples (struct fields keep their names' case)."""
    text = text.strip()
    low = text.lower()
    for kind in ("struct", "array", "map"):
        if low.startswith(kind + "<") and text.endswith(">"):
            inner = text[len(kind) + 1 : -1]
            if kind == "array":
                return ("array", parse_hive(inner))
            if kind == "map":
                k, v = _split_top(inner, ",")
                return ("map", (parse_hive(k), parse_hive(v)))
            fields = []
            for part in _split_top(inner, ",") if inner.strip() else []:
                name, _, type_ = part.partition(":")
                fields.append((name.strip().strip("`"), parse_hive(type_)))
            return ("struct", fields)
    return low


def case_collisions(t: HiveType, where: str) -> list[str]:
    """Struct field names that are equal ignoring case, anywhere inside `t`."""
    if isinstance(t, str):
        return []
    kind, body = t
    if kind == "array":
        return case_collisions(body, where + "[]")
    if kind == "map":
        return case_collisions(body[1], where + "{}")
    seen = Counter(name.lower() for name, _ in body)
    found = [f"{where}.{name}" for name, n in seen.items() if n > 1]
    for name, sub in body:
        found += case_collisions(sub, f"{where}.{name}")
    return found


def data_paths(value: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Lower-cased key paths holding something (not null, not an empty object); `[]` for
    array elements."""
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            below = data_paths(v, (*prefix, k.lower()))
            if below:
                out |= below | {(*prefix, k.lower())}
        return out
    if isinstance(value, list):
        out = set()
        for item in value:
            out |= data_paths(item, (*prefix, "[]"))
        return out | ({prefix} if out else set())
    return set() if value is None else {prefix}


def type_mismatches(
    glue: HiveType, athena: HiveType, seen: set[tuple[str, ...]], path: tuple[str, ...]
) -> list[str]:
    """Where the Glue type differs from Athena's, judged on the parts the data has: a
    struct must hold exactly the reference's fields that the data fills, each matching."""
    where = ".".join(path)
    if isinstance(athena, str) or isinstance(glue, str) or glue[0] != athena[0]:
        return [] if glue == athena else [f"{where}: {render(glue)} != {render(athena)}"]
    kind, body = athena
    if kind == "array":
        return type_mismatches(glue[1], body, seen, (*path, "[]"))
    if kind == "map":
        return [] if glue == athena else [f"{where}: {render(glue)} != {render(athena)}"]
    ours = {name.lower(): sub for name, sub in glue[1]}
    theirs = {name.lower(): sub for name, sub in body}
    wanted = {n for n in theirs if (*path, n) in seen}
    out = [f"{where}.{n}: not in AWS's table" for n in sorted(set(ours) - set(theirs))]
    out += [f"{where}.{n}: in the data, missing" for n in sorted(wanted - set(ours))]
    for n in sorted(set(ours) & wanted):
        out += type_mismatches(ours[n], theirs[n], seen, (*path, n))
    return out


def render(t: HiveType) -> str:
    if isinstance(t, str):
        return t
    kind, body = t
    if kind == "array":
        return f"array<{render(body)}>"
    if kind == "map":
        return f"map<{render(body[0])},{render(body[1])}>"
    return "struct<" + ",".join(f"{n}:{render(s)}" for n, s in body) + ">"


# ------------------------------------------------------------------------ runs and reads


def check_failures(result: ExecuteInProcessResult) -> list[str]:
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]


def cleaned_metadata(result: ExecuteInProcessResult) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey(["cleaned", STREAM])
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def parquet_rows(lake: Storage, keys: list[str]) -> list[dict[str, Any]]:
    return [row for k in keys for row in pq.read_table(io.BytesIO(lake.read(k))).to_pylist()]


# ---------------------------------------------------------------------------------- test


def test_cloudtrail_in_the_shapes_of_aws_documentation(s3_bucket: str, tmp_path: Path) -> None:
    landing, lake = (open_storage(f"s3://{s3_bucket}/{p}") for p in ("landing", "lake"))
    objects = corpus_objects()
    records = raw_records(objects)
    hours = land(landing, objects)
    assert len(records) >= 60 and len(hours) == 4
    assert {r["eventTime"][:10] for r in records} == {"2026-11-21", "2026-11-22"}
    resources = s3_resources(s3_bucket, tmp_path / "warehouse.duckdb", glue_database=GLUE_DATABASE)
    spec = load_streams()[STREAM]

    # landing -> schema (+ Glue) -> cleaned, one run an arrival hour: none fails or blocks
    failures: dict[str, list[str]] = {}
    reports: dict[str, dict[str, Any]] = {}
    for hour in hours:
        key = partition_key(hour)
        result = materialize(
            ingest_assets(STREAM), partition_key=key, resources=resources, raise_on_error=False
        )
        assert result.success, f"run of {key} failed"
        failures[key] = check_failures(result)
        reports[key] = cleaned_metadata(result)
    for day in ("2026-11-21", "2026-11-22"):
        mart = materialize(
            [a for a in mart_assets if a.key == AssetKey(["marts", MART])],
            partition_key=day,
            resources=resources,
            raise_on_error=False,
        )
        assert mart.success, f"{MART} of {day} failed"
    # Each finding below is one assertion of the issue; all are gathered, so a failing run
    # names every one that does not hold.
    findings: dict[str, Any] = {}

    def expect(name: str, problems: Any) -> None:
        if problems:
            findings[name] = problems

    expect("asset checks passed", {k: v for k, v in failures.items() if v})

    # every record accounted for, none of these valid records quarantined
    expect(
        "records_in = cleaned + quarantined + duplicates, per hour",
        [
            (key, md["records_in"], md["records_cleaned"], md["records_quarantined"])
            for key, md in reports.items()
            if md["records_in"]
            != md["records_cleaned"] + md["records_quarantined"] + md["duplicates_dropped"]
        ],
    )
    expect(
        "no valid record quarantined",
        {
            k: md["batch_quarantined_by_reason"]
            for k, md in reports.items()
            if md["records_quarantined"]
        },
    )
    counted = (
        sum(md["records_in"] for md in reports.values()),
        sum(md["records_cleaned"] for md in reports.values()),
    )
    expect(
        "records in / cleaned over the run",
        counted != (len(records), len({r["eventID"] for r in records})) and counted,
    )

    # the Glue table: AWS's Athena columns and types where the data has them
    glue = boto3.client("glue").get_table(DatabaseName=GLUE_DATABASE, Name=STREAM)["Table"]
    columns = {c["Name"]: c["Type"] for c in glue["StorageDescriptor"]["Columns"]}
    expect(
        "no struct<> in the Glue table",
        sorted(n for n, t in columns.items() if "struct<>" in t.replace(" ", "").lower()),
    )
    expect(
        "no field names equal ignoring case",
        [c for n, t in columns.items() for c in case_collisions(parse_hive(t), n)]
        + [n for n, k in Counter(n.lower() for n in columns).items() if k > 1],
    )
    seen = set().union(*(data_paths(r) for r in records))
    present = sorted({path[0] for path in seen} & set(ATHENA_CLOUDTRAIL_COLUMNS))
    assert set(JSON_TEXT_COLUMNS) | {"serviceeventdetails"} <= set(present)
    by_lower = {n.lower(): t for n, t in columns.items()}
    mismatches = [f"{n}: missing" for n in present if n not in by_lower] + [
        m
        for n in present
        if n in by_lower
        for m in type_mismatches(
            parse_hive(by_lower[n]), parse_hive(ATHENA_CLOUDTRAIL_COLUMNS[n]), seen, (n,)
        )
    ]
    # a scalar typed more narrowly than AWS's STRING (a timestamp, boolean, date) is listed
    # apart from JSON fields and struct shapes, which must match whatever the scalar rule
    scalar = [m for m in mismatches if re.fullmatch(r"[\w.\[\]]+: [a-z]+ != string", m)]
    expect(
        "Glue = AWS's Athena table: names, JSON fields as string, struct fields",
        [m for m in mismatches if m not in scalar],
    )
    # the crawler types ISO times, dates and booleans where AWS's table says string
    # (docs/schema-rules.md, "Athena"): anything else would be a real difference
    expect(
        "Glue = AWS's Athena table: scalar types (AWS: string) only narrower",
        [m for m in scalar if not re.search(r": (timestamp|date|boolean) != string$", m)],
    )

    # cleaned Parquet: a modest column count, one type per column across files
    files = CommittedFiles(lake, STREAM).of_days("cleaned", None)
    assert len(files) >= 2
    types: dict[str, set[str]] = {}
    for k in files:
        for field in pq.read_schema(io.BytesIO(lake.read(k))):
            types.setdefault(field.name, set()).add(str(field.type))
    expect(
        f"cleaned columns < min(max_columns={spec.limits.max_columns}, 120)",
        len(types) >= min(spec.limits.max_columns, 120) and len(types),
    )
    expect(
        "one Parquet type per cleaned column across files",
        {c: sorted(t) for c, t in sorted(types.items()) if len(t) > 1},
    )

    # the security mart equals what the raw JSON says
    mart_rows = parquet_rows(
        lake, [o.key for o in lake.list(f"marts/{MART}/") if o.key.endswith(".parquet")]
    )
    got = {
        (
            str(r["dt"]),
            r["kind"],
            r["source_ip"],
            r["principal"],
            r["event_name"],
            r["events"],
            r["suspected_brute_force"],
        )
        for r in mart_rows
    }
    assert len(got) == len(mart_rows)
    expected = expected_security_rows(records, hours)
    assert {e[1] for e in expected} == {"failed_console_login", "root_account_use", "access_denied"}
    expect(
        "security_events_daily = raw JSON",
        got != expected
        and {"missing": sorted(expected - got), "unexpected": sorted(got - expected)},
    )

    assert findings == {}, json.dumps(findings, indent=1, default=str)
