"""Resources: where the landing zone, the lake and the warehouse are (from the environment)."""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource, Failure
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from lake.config import Settings
from lake.pii import SECRET_ID_ENV, PIIKey, PIIKeyError, resolve_key
from lake.storage import Storage, open_storage


class LakeResource(ConfigurableResource):
    """The landing zone and the lake: `file://` folders or `s3://bucket/prefix`."""

    landing_uri: str
    lake_uri: str
    s3: S3Resource

    def landing(self) -> Storage:
        return open_storage(self.landing_uri, self._client_for(self.landing_uri))

    def lake(self) -> Storage:
        return open_storage(self.lake_uri, self._client_for(self.lake_uri))

    def _client_for(self, uri: str) -> Any:
        return self.s3.get_client() if uri.startswith("s3://") else None


class PIIKeyResource(ConfigurableResource):
    """The PII hash key: PII_HASH_KEY, else the Secrets Manager secret `secret_id` (name
    or ARN), else the development key (local folders only); see lake.pii."""

    secret_id: str | None = None

    def key_for(self, *uris: str) -> PIIKey:
        """The key for masking data of `uris`; a Dagster Failure (no retry when another
        attempt cannot help) when there is none."""
        try:
            return resolve_key(*uris, secret_id=self.secret_id or None)
        except PIIKeyError as exc:
            raise Failure(str(exc), allow_retries=exc.retryable) from exc


def resources_from_env() -> dict[str, Any]:
    settings = Settings.from_env()
    s3 = S3Resource(max_attempts=10)  # boto3 reads AWS_ENDPOINT_URL / AWS_REGION itself
    return {
        "lake": LakeResource(landing_uri=settings.landing_uri, lake_uri=settings.lake_uri, s3=s3),
        "warehouse": DuckDBResource(database=settings.warehouse_path),
        "pii_key": PIIKeyResource(secret_id=os.environ.get(SECRET_ID_ENV) or None),
    }
