"""Which catalog holds the lake's tables, and where each table lives.

`LAKE_CATALOG=sql` (the embedded default) is pyiceberg's SqlCatalog on SQLite at
ICEBERG_CATALOG_URI (default: `iceberg.db` beside a local lake folder, so
`<repo>/data/iceberg.db` for the embedded default); `glue` is the AWS Glue Data Catalog,
reached with boto3's settings (AWS_ENDPOINT_URL, AWS_REGION, the credential chain).

A table's id is `<namespace>.<stream or mart>` (namespaces from CLEANED_NAMESPACE,
QUARANTINE_NAMESPACE, MARTS_NAMESPACE) and its location is the layer's folder under
LAKE_URI (`cleaned/<stream>`, `quarantine/<stream>`, `marts/<mart>`): data files stay in
their `dt=` folders and Iceberg's metadata sits beside them in `metadata/`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lake import layout
from lake.settings import DATA_DIR, Settings

# pyiceberg (and its SQL catalog's sqlalchemy) takes most of a second to import: it is
# imported where a catalog is opened, so loading the code location (every run process,
# the UI, the sensors) does not pay it for names and locations alone.
if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

CATALOG_NAME = "lake"
CLEANED, QUARANTINE, MARTS = layout.CLEANED, layout.QUARANTINE, "marts"
LAYERS = (CLEANED, QUARANTINE, MARTS)
LAKE_S3_IO = "lake.iceberg.metadata_io.LakeS3FileIO"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")  # Glue's and Athena's safe spelling


class TableNameError(ValueError):
    """A namespace or table name a catalog (Glue, Athena) would not take as it is."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise TableNameError(
            f"{name!r} is not a table or namespace name: use lower-case letters, digits and _"
        )
    return name


def default_catalog_uri(lake_uri: str) -> str:
    """`iceberg.db` beside a local lake folder; `<repo>/data/iceberg.db` for an S3 lake."""
    if lake_uri.startswith("file://"):
        folder = Path(lake_uri.removeprefix("file://")).parent
        return f"sqlite:///{folder / 'iceberg.db'}"
    return f"sqlite:///{DATA_DIR / 'iceberg.db'}"


def catalog_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg's properties for the configured catalog and its file IO."""
    properties = {"warehouse": settings.lake_uri}
    if settings.lake_uri.startswith("s3://"):
        # metadata files in one request each (lake.iceberg.metadata_io)
        properties |= s3_file_io_properties() | {"py-io-impl": LAKE_S3_IO}
        if settings.s3_sse:  # pyarrow's writes cannot ask for encryption: ours can
            from lake.iceberg.encrypted_io import SSE, SSE_KMS_KEY_ID

            properties |= {
                SSE: settings.s3_sse,
                **(
                    {SSE_KMS_KEY_ID: settings.s3_sse_kms_key_id}
                    if settings.s3_sse_kms_key_id
                    else {}
                ),
            }
    if settings.lake_catalog == "glue":
        return properties
    uri = settings.iceberg_catalog_uri or default_catalog_uri(settings.lake_uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return properties | {"uri": uri}


def s3_file_io_properties() -> dict[str, str]:
    """The endpoint and region boto3 uses, for pyiceberg's S3 FileIO (pyarrow's S3
    filesystem, which reads neither boto3's settings nor AWS_ENDPOINT_URL).

    With an endpoint (moto, MinIO, LocalStack) pyarrow addresses buckets path-style; without
    one it is AWS with virtual-hosted buckets. Credentials are not handed over: the AWS SDK
    inside pyarrow follows the same chain as boto3 (environment, profile, web identity,
    container and instance roles) and refreshes temporary credentials itself."""
    properties = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        properties["s3.endpoint"] = endpoint
    else:  # AWS: the bucket's own region (HeadBucket), whatever region the process runs in
        properties["s3.resolve-region"] = "true"
    import boto3

    region = os.environ.get("AWS_REGION") or boto3.Session().region_name  # profile's too
    if region:
        properties["s3.region"] = region  # signs for an endpoint; on AWS, if resolving fails
    return properties


def open_catalog(settings: Settings) -> Catalog:
    if settings.lake_catalog == "glue":
        import boto3
        from pyiceberg.catalog.glue import GlueCatalog

        from lake.glue_sync import DEFAULT_CONFIG as GLUE_CONFIG

        # the same client as the landing table's Glue sync: boto3's endpoint, region and
        # credential settings, adaptive retries
        client = boto3.client("glue", config=GLUE_CONFIG)
        return GlueCatalog(CATALOG_NAME, client=client, **catalog_properties(settings))
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(CATALOG_NAME, **catalog_properties(settings))


@dataclass
class LakeTables:
    """The configured catalog and the names and locations of the lake's tables."""

    settings: Settings

    @cached_property
    def catalog(self) -> Catalog:
        return open_catalog(self.settings)

    def namespace(self, layer: str) -> str:
        names = {
            CLEANED: self.settings.cleaned_namespace,
            QUARANTINE: self.settings.quarantine_namespace,
            MARTS: self.settings.marts_namespace,
        }
        return check_name(names[layer])

    def table_id(self, layer: str, name: str) -> str:
        return f"{self.namespace(layer)}.{check_name(name)}"

    def location(self, layer: str, name: str) -> str:
        """The table's folder: its layer's folder under LAKE_URI."""
        return f"{self.settings.lake_uri.rstrip('/')}/{layer}/{name}"

    def uri_of(self, key: str) -> str:
        return f"{self.settings.lake_uri.rstrip('/')}/{key}"

    def key_of(self, uri: str) -> str | None:
        """The lake key of a data file's URI (None: not under LAKE_URI)."""
        root = self.settings.lake_uri.rstrip("/") + "/"
        for candidate in (uri, _file_uri_variant(uri)):
            if candidate and candidate.startswith(root):
                return candidate[len(root) :]
        return None

    def load(self, layer: str, name: str) -> Table | None:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table(self.table_id(layer, name))
        except NoSuchTableError:
            return None


def _file_uri_variant(uri: str) -> str | None:
    """`file:/x` and `file:///x` name the same file; pyiceberg may write either."""
    if uri.startswith("file:///"):
        return None
    if uri.startswith("file:/"):
        return "file:///" + uri.removeprefix("file:/").lstrip("/")
    if uri.startswith("/"):
        return "file://" + uri
    return None
