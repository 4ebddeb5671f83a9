"""From one botocore API call to the IAM actions it needs, on which resource ARNs, and the
values the policy's `${Placeholders}` take for it.

S3 resources come from Bucket/Key (never the endpoint, so moto on 127.0.0.1 gives the
same ARNs as AWS). The storage root (bucket and prefix of the lake.storage.S3Storage that
made the call) says which placeholders a key binds: `${LakeBucket}/${LakePrefix}` when the
root is the lake, `${LandingBucket}/${LandingPrefix}` when it is the landing zone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from lake.settings import DEFAULTS, env_name
from tests.iam_policy import Access

ACCOUNT = "123456789012"  # moto's account; AWS calls carry it in ARNs and queue URLs
# The lake's top folders (DESIGN.md's lake layout); any other key is a landing key.
LAKE_FOLDERS = ("catalog", "cleaned", "quarantine", "marts", "redshift", "_state")


@dataclass(frozen=True)
class StorageRoot:
    bucket: str
    prefix: str  # "" or "a/b/" as S3Storage keeps it
    kind: str | None = None  # "landing" | "lake" when known from how it was opened

    def bindings_for(self, full_key: str) -> dict[str, str]:
        kind = self.kind or self.kind_of(full_key)
        name = "Lake" if kind == "lake" else "Landing"
        return {f"{name}Bucket": self.bucket, f"{name}Prefix": self.prefix.rstrip("/")}

    def kind_of(self, full_key: str) -> str:
        rest = full_key[len(self.prefix) :] if full_key.startswith(self.prefix) else full_key
        return "lake" if rest.split("/", 1)[0] in LAKE_FOLDERS else "landing"


def _root_of_key(bucket: str, key: str) -> StorageRoot:
    """The storage root of a key a call names outside the storage adapter (a library's own
    S3 client, e.g. dagster-aws's Pipes context): the lake, its prefix what comes before
    the first lake folder of the key, when it has one; else the landing zone at the root."""
    parts = key.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in LAKE_FOLDERS:
            return StorageRoot(bucket, "/".join(parts[:i]) + "/" if i else "", "lake")
    return StorageRoot(bucket, "")


@dataclass
class CallAccess:
    """What one call needs: IAM accesses and the placeholder values that name its resources."""

    accesses: list[Access] = field(default_factory=list)
    bindings: dict[str, str] = field(default_factory=dict)

    def need(self, action: str, resource: str, **context: str) -> None:
        self.accesses.append(Access(action, resource, context))


def call_access(
    service: str, operation: str, params: Mapping[str, Any], region: str, root: StorageRoot | None
) -> CallAccess:
    out = CallAccess(bindings={"Region": region, "Account": ACCOUNT})
    handler = _HANDLERS.get(service)
    if handler is not None:
        handler(out, operation, params, region, root)
    else:
        out.need(f"{service}:{operation}", "*")
    return out


def response_access(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    response: Mapping[str, Any],
    region: str,
    out: CallAccess,
) -> None:
    """Permissions a call needed that only its answer shows."""
    if service != "s3" or operation not in ("GetObject", "HeadObject"):
        return
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == 404:
        # S3 answers 404 for a missing key only to a caller allowed to list it (403 otherwise),
        # and the code tells "missing" from "refused" by that answer.
        out.need(
            "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", **{"s3:prefix": params["Key"]}
        )
    if operation == "GetObject" and response.get("ServerSideEncryption") == "aws:kms":
        key = _kms_arn(str(response.get("SSEKMSKeyId", "*")), region)
        out.bindings.setdefault("KmsKey", key)
        out.need("kms:Decrypt", key, **{"kms:ViaService": f"s3.{region}.amazonaws.com"})


def _s3(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, root: StorageRoot | None
) -> None:
    bucket = params.get("Bucket", "")
    root = root or _root_of_key(bucket, params.get("Key") or params.get("Prefix") or "")

    def obj(key: str, bucket: str = bucket) -> str:
        out.bindings.update(root.bindings_for(key))
        return f"arn:aws:s3:::{bucket}/{key}"

    if op in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
        out.bindings.update(root.bindings_for(params.get("Prefix", "")))
        action = "s3:ListBucketVersions" if op == "ListObjectVersions" else "s3:ListBucket"
        out.need(action, f"arn:aws:s3:::{bucket}", **{"s3:prefix": params.get("Prefix", "")})
    elif op in ("GetObject", "HeadObject"):
        out.need("s3:GetObject", obj(params["Key"]))
    elif op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        out.need("s3:PutObject", obj(params["Key"]))
        if op in ("PutObject", "CreateMultipartUpload"):
            _sse_kms(out, params, region)
    elif op in ("CopyObject", "UploadPartCopy"):
        source = params["CopySource"]
        if isinstance(source, str):
            src_bucket, _, src_key = unquote(source.lstrip("/")).partition("/")
        else:
            src_bucket, src_key = source["Bucket"], source["Key"]
        out.need("s3:GetObject", obj(src_key.split("?versionId=")[0], src_bucket))
        out.need("s3:PutObject", obj(params["Key"]))
        _sse_kms(out, params, region)
    elif op == "DeleteObject":
        out.need("s3:DeleteObject", obj(params["Key"]))
    elif op == "DeleteObjects":
        for item in params["Delete"]["Objects"]:
            out.need("s3:DeleteObject", obj(item["Key"]))
    elif op == "AbortMultipartUpload":
        out.need("s3:AbortMultipartUpload", obj(params["Key"]))
    elif op == "HeadBucket":
        out.need("s3:ListBucket", f"arn:aws:s3:::{bucket}")
    else:
        out.need(f"s3:{op}", f"arn:aws:s3:::{bucket}")


def _sse_kms(out: CallAccess, params: Mapping[str, Any], region: str) -> None:
    """An SSE-KMS write asks KMS for a data key with the caller's credentials."""
    if params.get("ServerSideEncryption") != "aws:kms":
        return
    key = _kms_arn(str(params.get("SSEKMSKeyId", "alias/aws/s3")), region)
    out.bindings["KmsKey"] = key
    out.need("kms:GenerateDataKey", key, **{"kms:ViaService": f"s3.{region}.amazonaws.com"})


def _kms_arn(key_id: str, region: str) -> str:
    if key_id.startswith("arn:"):
        return key_id
    kind = "" if key_id.startswith("alias/") else "key/"
    return f"arn:aws:kms:{region}:{ACCOUNT}:{kind}{key_id}"


def _glue(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, _: StorageRoot | None
) -> None:
    base = f"arn:aws:glue:{region}:{ACCOUNT}"
    database = params.get("DatabaseName") or params.get("Name")
    if op in ("CreateDatabase", "UpdateDatabase"):
        database = params["DatabaseInput"]["Name"]
    out.bindings[_glue_placeholder(str(database))] = str(database)
    resources = [f"{base}:catalog", f"{base}:database/{database}"]
    table = params.get("TableName") or (params.get("TableInput") or {}).get("Name")
    if table is None and "DatabaseName" in params:
        table = params.get("Name")
    if table is not None:
        resources.append(f"{base}:table/{database}/{table}")
    for resource in resources:
        out.need(f"glue:{op}", resource)


def _glue_placeholder(database: str) -> str:
    """An Iceberg namespace (lake.iceberg) binds its own placeholder, any other database
    `${GlueDatabase}` (the landing tables' Glue sync): a policy that grants only the sync's
    database does not grant the table namespaces."""
    namespaces = {
        os.environ.get(env_name(field), getattr(DEFAULTS, field)): f"{layer.title()}Namespace"
        for layer in ("cleaned", "quarantine", "marts")
        if (field := f"{layer}_namespace")
    }
    return namespaces.get(database, "GlueDatabase")


_SQS_ACTIONS = {
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "SendMessageBatch": "SendMessage",
}


def _sqs(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, _: StorageRoot | None
) -> None:
    account, _, name = urlparse(params.get("QueueUrl", "")).path.strip("/").partition("/")
    out.bindings["QueueName"] = name
    arn = f"arn:aws:sqs:{region}:{account or ACCOUNT}:{name}"
    out.bindings["Account"] = account or ACCOUNT
    out.need(f"sqs:{_SQS_ACTIONS.get(op, op)}", arn)


def _sns(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, _: StorageRoot | None
) -> None:
    arn = params.get("TopicArn") or params.get("TargetArn") or "*"
    out.bindings["TopicName"] = arn.rsplit(":", 1)[-1]
    out.need(f"sns:{op}", arn)


def _secrets(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, _: StorageRoot | None
) -> None:
    out.need(f"secretsmanager:{op}", _secret(out, str(params.get("SecretId", "*")), region))


def _secret(out: CallAccess, secret_id: str, region: str) -> str:
    """A secret's full ARN: by name, AWS still checks the ARN, which ends in a random
    six-character suffix (hence `-??????` in policies)."""
    if secret_id.startswith("arn:"):
        out.bindings.setdefault("PiiKeySecret", secret_id.split(":secret:", 1)[-1][:-7])
        return secret_id
    out.bindings.setdefault("PiiKeySecret", secret_id)
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{secret_id}-AbCdEf"


def _redshift_data(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, _: StorageRoot | None
) -> None:
    if op not in ("ExecuteStatement", "BatchExecuteStatement"):
        out.need(f"redshift-data:{op}", "*")  # statement operations take no resource
        return
    if workgroup := params.get("WorkgroupName"):
        out.bindings["RedshiftWorkgroup"] = workgroup
        target = f"arn:aws:redshift-serverless:{region}:{ACCOUNT}:workgroup/{workgroup}"
    else:
        cluster = params["ClusterIdentifier"]
        out.bindings["RedshiftCluster"] = cluster
        target = f"arn:aws:redshift:{region}:{ACCOUNT}:cluster:{cluster}"
    out.need(f"redshift-data:{op}", target)
    # The Data API signs in to the database with the caller's permissions:
    database = params.get("Database", "dev")
    out.bindings["RedshiftDatabase"] = database
    if secret := params.get("SecretArn"):
        out.need("secretsmanager:GetSecretValue", secret)
        out.bindings["RedshiftSecret"] = secret.split(":secret:", 1)[-1][:-7]
    elif user := params.get("DbUser"):
        cluster = params["ClusterIdentifier"]
        out.bindings["RedshiftDbUser"] = user
        out.need(
            "redshift:GetClusterCredentials",
            f"arn:aws:redshift:{region}:{ACCOUNT}:dbuser:{cluster}/{user}",
        )
        out.need(
            "redshift:GetClusterCredentials",
            f"arn:aws:redshift:{region}:{ACCOUNT}:dbname:{cluster}/{database}",
        )
    elif workgroup:
        out.need("redshift-serverless:GetCredentials", target)
    else:
        cluster = params["ClusterIdentifier"]
        out.need(
            "redshift:GetClusterCredentialsWithIAM",
            f"arn:aws:redshift:{region}:{ACCOUNT}:dbname:{cluster}/{database}",
        )


def _kms(
    out: CallAccess, op: str, params: Mapping[str, Any], region: str, _: StorageRoot | None
) -> None:
    key = _kms_arn(str(params.get("KeyId", "*")), region)
    out.bindings["KmsKey"] = key
    out.need(f"kms:{op}", key)


_HANDLERS = {
    "s3": _s3,
    "glue": _glue,
    "sqs": _sqs,
    "sns": _sns,
    "secretsmanager": _secrets,
    "redshift-data": _redshift_data,
    "kms": _kms,
}
