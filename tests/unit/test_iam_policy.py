"""The IAM evaluator and the operation -> action mapping behind the policy check
(tests/aws_calls.py): it must be able to say no."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aws_calls import Call, Recorder
from tests.iam_actions import StorageRoot, call_access, response_access
from tests.iam_policy import Access, is_allowed, load_policies, placeholders

POLICIES = load_policies()
LAKE = {"LakeBucket": "acme-lake", "LakePrefix": "lake", "Region": "eu-west-1"}
LANDING = {"LandingBucket": "acme-landing", "LandingPrefix": "firehose"}
KNOWN = {
    *LAKE,
    *LANDING,
    "Account",
    "GlueDatabase",
    "CleanedNamespace",
    "QuarantineNamespace",
    "MartsNamespace",
    "QueueName",
    "TopicName",
    "RedshiftCluster",
    "RedshiftWorkgroup",
    "RedshiftDatabase",
    "RedshiftDbUser",
    "RedshiftSecret",
    "PiiKeySecret",
    "KmsKey",
    "WorkerCluster",
    "WorkerTaskFamily",
    "WorkerTaskRole",
    "WorkerExecutionRole",
}


def allowed(role: str, action: str, resource: str, bindings: dict[str, str], **ctx: str) -> bool:
    return is_allowed(POLICIES[role], Access(action, resource, ctx), bindings)


def test_the_doc_has_a_policy_per_role_with_known_placeholders() -> None:
    assert set(POLICIES) == {"code-location", "producer", "analyst", "quarantine-reviewer"}
    for role, policy in POLICIES.items():
        assert placeholders(policy) <= KNOWN, role


@pytest.mark.parametrize("folder", ["quarantine", "_state", "redshift"])
def test_the_analyst_cannot_read_or_list_quarantine_or_state(folder: str) -> None:
    key = f"arn:aws:s3:::acme-lake/lake/{folder}/robot_telemetry/dt=2026-11-21/x.parquet"
    assert not allowed("analyst", "s3:GetObject", key, LAKE)
    prefix = {"s3:prefix": f"lake/{folder}/"}
    assert not allowed("analyst", "s3:ListBucket", "arn:aws:s3:::acme-lake", LAKE, **prefix)
    assert not allowed("analyst", "s3:ListBucket", "arn:aws:s3:::acme-lake", LAKE)  # no prefix


def test_the_analyst_reads_cleaned_and_marts() -> None:
    for folder in ("cleaned", "marts"):
        key = f"arn:aws:s3:::acme-lake/lake/{folder}/t/dt=2026-11-21/x.parquet"
        assert allowed("analyst", "s3:GetObject", key, LAKE)
        assert allowed(
            "analyst",
            "s3:ListBucket",
            "arn:aws:s3:::acme-lake",
            LAKE,
            **{"s3:prefix": f"lake/{folder}/t/"},
        )
    assert not allowed("analyst", "s3:PutObject", "arn:aws:s3:::acme-lake/lake/marts/m/x", LAKE)


def test_only_the_reviewer_and_the_pipeline_read_quarantine() -> None:
    key = "arn:aws:s3:::acme-lake/lake/quarantine/s/dt=2026-11-21/x.parquet"
    assert allowed("quarantine-reviewer", "s3:GetObject", key, LAKE)
    assert allowed("code-location", "s3:GetObject", key, LAKE)
    assert not allowed(
        "quarantine-reviewer", "s3:GetObject", key.replace("quarantine", "cleaned"), LAKE
    )
    assert not allowed("producer", "s3:GetObject", key, {**LAKE, **LANDING})


def test_the_code_location_cannot_write_or_delete_landing() -> None:
    key = "arn:aws:s3:::acme-landing/firehose/robot_telemetry/2026/11/21/08/x.gz"
    bindings = {**LANDING, **LAKE}
    assert allowed("code-location", "s3:GetObject", key, bindings)
    assert not allowed("code-location", "s3:PutObject", key, bindings)
    assert not allowed("code-location", "s3:DeleteObject", key, bindings)
    assert allowed("producer", "s3:PutObject", key, bindings)
    assert not allowed("producer", "s3:GetObject", key, bindings)


def test_the_code_location_writes_only_the_lakes_folders() -> None:
    assert allowed("code-location", "s3:PutObject", "arn:aws:s3:::acme-lake/lake/_state/a", LAKE)
    assert not allowed("code-location", "s3:PutObject", "arn:aws:s3:::acme-lake/lake/other/a", LAKE)
    assert not allowed("code-location", "s3:PutObject", "arn:aws:s3:::acme-lake/elsewhere/a", LAKE)
    assert not allowed(
        "code-location", "s3:PutObject", "arn:aws:s3:::other-bucket/lake/cleaned/a", LAKE
    )
    assert not allowed(
        "code-location", "s3:DeleteObject", "arn:aws:s3:::acme-lake/lake/catalog/a", LAKE
    )


def test_list_conditions_and_an_empty_prefix() -> None:
    root = {"LakeBucket": "b", "LakePrefix": ""}
    assert allowed(
        "code-location", "s3:ListBucket", "arn:aws:s3:::b", root, **{"s3:prefix": "cleaned/s/"}
    )
    assert allowed("code-location", "s3:PutObject", "arn:aws:s3:::b/cleaned/x", root)
    assert not allowed(
        "code-location", "s3:ListBucket", "arn:aws:s3:::b", LAKE, **{"s3:prefix": "x/"}
    )


def test_wildcards_placeholders_and_deny() -> None:
    policy: dict[str, Any] = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::${B}/a?/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::${B}/ax/*"},
        ]
    }
    assert is_allowed(policy, Access("S3:GETOBJECT", "arn:aws:s3:::b*/ab/k"), {"B": "b*"})
    assert not is_allowed(policy, Access("s3:GetObject", "arn:aws:s3:::bb/ab/k"), {"B": "b*"})
    assert not is_allowed(policy, Access("s3:GetObject", "arn:aws:s3:::b/ax/k"), {"B": "b"})
    assert not is_allowed(policy, Access("s3:GetObject", "arn:aws:s3:::b/abc/k"), {"B": "b"})
    assert not is_allowed(policy, Access("s3:GetObject", "arn:aws:s3:::b/ab/k"), {})  # unbound


def test_kms_only_through_s3() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/k"
    bindings = {**LAKE, "KmsKey": key}
    via = {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert allowed("code-location", "kms:GenerateDataKey", key, bindings, **via)
    assert not allowed("code-location", "kms:GenerateDataKey", key, bindings)
    assert not allowed("analyst", "kms:GenerateDataKey", key, bindings, **via)


def test_s3_operations_map_to_their_iam_actions() -> None:
    root = StorageRoot("bkt", "lake/")
    listing = call_access(
        "s3", "ListObjectsV2", {"Bucket": "bkt", "Prefix": "lake/cleaned/"}, "r", root
    )
    assert listing.accesses == [
        Access("s3:ListBucket", "arn:aws:s3:::bkt", {"s3:prefix": "lake/cleaned/"})
    ]
    assert listing.bindings["LakePrefix"] == "lake"
    head = call_access("s3", "HeadObject", {"Bucket": "bkt", "Key": "lake/_state/x"}, "r", root)
    assert [a.action for a in head.accesses] == ["s3:GetObject"]
    response_access(
        "s3",
        "HeadObject",
        {"Bucket": "bkt", "Key": "lake/_state/x"},
        {"ResponseMetadata": {"HTTPStatusCode": 404}},
        "r",
        head,
    )
    assert head.accesses[-1] == Access(
        "s3:ListBucket", "arn:aws:s3:::bkt", {"s3:prefix": "lake/_state/x"}
    )
    copy = call_access(
        "s3",
        "CopyObject",
        {"Bucket": "bkt", "Key": "lake/marts/b", "CopySource": "src/a%20b"},
        "r",
        root,
    )
    assert copy.accesses == [
        Access("s3:GetObject", "arn:aws:s3:::src/a b"),
        Access("s3:PutObject", "arn:aws:s3:::bkt/lake/marts/b"),
    ]
    deletes = call_access(
        "s3",
        "DeleteObjects",
        {"Bucket": "bkt", "Delete": {"Objects": [{"Key": "k1"}, {"Key": "k2"}]}},
        "r",
        None,
    )
    assert [a.action for a in deletes.accesses] == ["s3:DeleteObject"] * 2
    put = call_access(
        "s3",
        "PutObject",
        {
            "Bucket": "bkt",
            "Key": "lake/cleaned/x",
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": "k",
        },
        "r",
        root,
    )
    assert put.accesses[1] == Access(
        "kms:GenerateDataKey",
        "arn:aws:kms:r:123456789012:key/k",
        {"kms:ViaService": "s3.r.amazonaws.com"},
    )


def test_a_storage_root_tells_landing_from_lake() -> None:
    root = StorageRoot("b", "")
    assert root.bindings_for("cleaned/s/x") == {"LakeBucket": "b", "LakePrefix": ""}
    assert root.bindings_for("robot_telemetry/2026/11/21/08/x") == {
        "LandingBucket": "b",
        "LandingPrefix": "",
    }
    tagged = StorageRoot("b", "raw/", "landing")
    assert tagged.bindings_for("raw/cleaned/x") == {"LandingBucket": "b", "LandingPrefix": "raw"}


def test_a_library_calls_key_under_a_lake_prefix_binds_that_prefix() -> None:
    # dagster-aws's Pipes context injector calls S3 itself: no storage root on the stack
    put = {"Bucket": "b", "Key": "prod/lake/_state/pipes/abc/context.json", "Body": b"{}"}
    access = call_access("s3", "PutObject", put, "us-east-1", None)
    assert access.bindings["LakePrefix"] == "prod/lake"
    policy = load_policies()["code-location"]
    assert all(is_allowed(policy, a, access.bindings) for a in access.accesses)
    landing = call_access("s3", "GetObject", {"Bucket": "b", "Key": "raw/s/x.gz"}, "r", None)
    assert landing.bindings["LandingPrefix"] == ""


def test_other_services_map_to_their_arns() -> None:
    sqs = call_access(
        "sqs",
        "DeleteMessageBatch",
        {"QueueUrl": "http://127.0.0.1:5000/123456789012/q", "Entries": []},
        "us-east-1",
        None,
    )
    assert sqs.accesses == [Access("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:q")]
    glue = call_access(
        "glue", "UpdateTable", {"DatabaseName": "db", "TableInput": {"Name": "t"}}, "r", None
    )
    assert [a.resource for a in glue.accesses] == [
        "arn:aws:glue:r:123456789012:catalog",
        "arn:aws:glue:r:123456789012:database/db",
        "arn:aws:glue:r:123456789012:table/db/t",
    ]
    secret = call_access("secretsmanager", "GetSecretValue", {"SecretId": "pii-key"}, "r", None)
    assert secret.accesses == [
        Access(
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:r:123456789012:secret:pii-key-AbCdEf",
        )
    ]


def test_a_disallowed_call_is_reported() -> None:
    recorder = Recorder()
    access = call_access(
        "s3",
        "PutObject",
        {"Bucket": "b", "Key": "landing/robot_telemetry/2026/x"},
        "us-east-1",
        StorageRoot("b", "landing/"),
    )
    recorder.calls.append(Call("code-location", "s3", "PutObject", access, "t::x"))
    [problem] = recorder.violations(POLICIES)
    assert "needs s3:PutObject on arn:aws:s3:::b/landing/robot_telemetry/2026/x" in problem
    assert "code-location: s3.PutObject in t::x" in problem


def test_the_code_location_starts_only_its_pipes_workers_tasks() -> None:
    names = {
        "Region": "r",
        "Account": "1",
        "WorkerCluster": "workers",
        "WorkerTaskFamily": "lake-worker",
        "WorkerTaskRole": "lake-code",
        "WorkerExecutionRole": "lake-exec",
    }
    ecs = "arn:aws:ecs:r:1"
    assert allowed("code-location", "ecs:RunTask", f"{ecs}:task-definition/lake-worker:7", names)
    assert not allowed("code-location", "ecs:RunTask", f"{ecs}:task-definition/other:1", names)
    assert allowed("code-location", "ecs:StopTask", f"{ecs}:task/workers/abc", names)
    assert not allowed("code-location", "ecs:StopTask", f"{ecs}:task/dagster-runs/abc", names)
    to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    role = "arn:aws:iam::1:role/lake-code"
    assert allowed("code-location", "iam:PassRole", role, names, **to_ecs)
    assert not allowed("code-location", "iam:PassRole", role, names)  # to another service
    assert not allowed(
        "code-location", "iam:PassRole", "arn:aws:iam::1:role/admin", names, **to_ecs
    )
