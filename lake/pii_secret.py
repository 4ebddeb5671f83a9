"""The PII hash key from AWS Secrets Manager (one GetSecretValue on the secret's current
version; SecretString as UTF-8 bytes, verbatim, or SecretBinary as is).

boto3 makes the client, so AWS_ENDPOINT_URL, AWS_REGION and the credential chain apply
as for the project's S3 and Glue clients. No message raised here holds the secret's
value: errors name the secret id and give AWS's error code and message (no response to a
failed call carries the value).
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from lake.pii import SecretUnavailable


class _NoSecretBodies(logging.Filter):
    """Drops botocore's DEBUG log of a response body that holds a secret's value
    (GetSecretValue's SecretString/SecretBinary): with debug logging on, botocore would
    otherwise write the key to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        return not any(
            isinstance(a, bytes | str) and ("SecretString" in str(a) or "SecretBinary" in str(a))
            for a in args
        )


_FILTER = _NoSecretBodies()
logging.getLogger("botocore.parsers").addFilter(_FILTER)

DEFAULT_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})
# AWS error codes that another attempt cannot fix (a setting, a permission, the secret's state)
PERMANENT_ERRORS = {
    "ResourceNotFoundException": "does not exist or has no value (no AWSCURRENT version)",
    "AccessDeniedException": "may not be read by this identity (secretsmanager:GetSecretValue)",
    "DecryptionFailure": "cannot be decrypted: this identity needs kms:Decrypt on its KMS key",
    "InvalidRequestException": "cannot be read now (marked for deletion?)",
    "InvalidParameterException": "is not a valid secret id",
    "ValidationException": "is not a valid secret id",
    "UnrecognizedClientException": "cannot be read: the AWS credentials are not valid",
    "InvalidClientTokenId": "cannot be read: the AWS credentials are not valid",
    "ExpiredTokenException": "cannot be read: the AWS credentials have expired",
}


def secrets_client() -> Any:
    import boto3

    return boto3.client("secretsmanager", config=DEFAULT_CONFIG)


def fetch_secret(secret_id: str, client: Any | None = None) -> bytes:
    """The current value of secret `secret_id` (name or ARN) as key bytes.

    Raises SecretUnavailable, `retryable` only for errors another attempt may not meet
    (throttling or 5xx past botocore's retries, a lost connection)."""
    where = f"PII key secret {secret_id!r}"
    try:
        client = client if client is not None else secrets_client()
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        raise _unavailable(where, exc.response) from exc
    except (NoCredentialsError, NoRegionError) as exc:
        raise SecretUnavailable(f"{where} cannot be read: {exc}") from exc
    except BotoCoreError as exc:  # connection errors after botocore's own retries
        raise SecretUnavailable(f"{where} could not be read: {exc}", retryable=True) from exc
    value = response.get("SecretBinary")
    if value is None:
        text = response.get("SecretString")
        value = text.encode() if text is not None else None
    if not value or not bytes(value).strip():
        raise SecretUnavailable(f"{where} is empty: store the key as its SecretString")
    return bytes(value)


def _unavailable(where: str, response: dict[str, Any]) -> SecretUnavailable:
    """The error for a refused GetSecretValue: retryable for throttling and 5xx only (a
    403 whose body botocore could not parse still counts as a denial)."""
    error = response.get("Error", {})
    code = str(error.get("Code", "unknown"))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    detail = f"{code}: {str(error.get('Message', ''))[:300]}"
    why = PERMANENT_ERRORS.get(code) or (
        PERMANENT_ERRORS["AccessDeniedException"] if status == 403 else None
    )
    if why is not None:
        return SecretUnavailable(f"{where} {why} ({detail})")
    if 400 <= status < 500 and status != 429 and "Throttl" not in code:
        return SecretUnavailable(f"{where} was refused ({detail})")
    return SecretUnavailable(f"{where} could not be read ({detail})", retryable=True)
