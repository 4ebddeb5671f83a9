"""How Athena (Hive, Glue ETL) reads a crawled table: input format, SerDe, its parameters.

- JSON documents one after another (concatenated_json, ndjson): TextInputFormat and the
  OpenX JsonSerDe, whose `mapping.<column>` reads a top-level column from a key spelled
  otherwise (`eventTime`, `a-b`). `case.insensitive` stays FALSE: with TRUE, a document
  holding `URL` and `Url` fails the whole query ("Duplicate key"), and mapping values must
  then be lower case.
- json_records with records_key `Records` (CloudTrail): AWS's reference `cloudtrail_logs`
  table, i.e. CloudTrailInputFormat (one row per element of `Records`; TextInputFormat would
  make a one-line `{"Records":[...]}` file one row) and the Hive JSON SerDe, which matches
  keys ignoring case and has no `mapping.*`.
- json_records with any other key: no Athena input format unwraps it. The table is still
  written (Glue ETL, Spark and our cleaning read it), marked `athenaReadable=false` with a
  note, rather than pretending.

`athenaUnreadableFields` lists the catalog paths the SerDe cannot find in the JSON (their
key is not the column name but for case, and no mapping applies): they read as NULL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lake.framings.registry import framing_of
from lake.hive_types import CatalogField, Struct, catalog_fields
from lake.streams import StreamSpec

TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
OPENX_JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
HIVE_JSON_SERDE = "org.apache.hive.hcatalog.data.JsonSerDe"
CLOUDTRAIL_INPUT = "com.amazon.emr.cloudtrail.CloudTrailInputFormat"
CLOUDTRAIL_RECORDS_KEY = "Records"
# ISO-8601 as the crawler types it (docs/schema-rules.md section 3); Joda patterns.
TIMESTAMP_FORMATS = ",".join(
    [
        "yyyy-MM-dd'T'HH:mm:ss'Z'",
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
        "yyyy-MM-dd'T'HH:mm:ssZZ",
        "yyyy-MM-dd'T'HH:mm:ss.SSSZZ",
        "yyyy-MM-dd'T'HH:mm:ss",
        "yyyy-MM-dd HH:mm:ss",
    ]
)
_BY_CLASSIFICATION = {
    "json": (TEXT_INPUT, TEXT_OUTPUT, OPENX_JSON_SERDE),
    "csv": (TEXT_INPUT, TEXT_OUTPUT, "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"),
    "parquet": (
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
    ),
}


@dataclass(frozen=True)
class TableFormat:
    input_format: str
    output_format: str
    serde: str
    serde_parameters: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)  # table Parameters to add


def table_format(
    spec: StreamSpec,
    classification: str,
    schema: Struct,
    name_map: dict[str, str],
    columns: list[tuple[str, str]],
    csv_delimiter: str | None = None,
) -> TableFormat:
    if classification == "csv":
        return TableFormat(*_BY_CLASSIFICATION["csv"], {"field.delim": csv_delimiter or ","})
    if classification != "json":
        return TableFormat(*_BY_CLASSIFICATION.get(classification, _BY_CLASSIFICATION["json"]))
    records_key = framing_of(spec).records_key
    if records_key == CLOUDTRAIL_RECORDS_KEY:
        unreadable = [f.path for f in catalog_fields(schema) if not _hive_reads(f)]
        return TableFormat(
            CLOUDTRAIL_INPUT,
            TEXT_OUTPUT,
            HIVE_JSON_SERDE,
            {"timestamp.formats": TIMESTAMP_FORMATS},
            {"athenaUnreadableFields": json.dumps(unreadable)},
        )
    # OpenX reads a top-level column from a differently named key via mapping.<col>
    serde_params = {"paths": ",".join(name for name, _ in columns), "case.insensitive": "FALSE"}
    serde_params.update({f"mapping.{n}": o for n, o in name_map.items() if "." not in n})
    if records_key is not None:
        note = (
            f"each object wraps its records in {records_key!r}; Athena has no input "
            f"format that unwraps it (CloudTrailInputFormat unwraps only "
            f"{CLOUDTRAIL_RECORDS_KEY!r}): query cleaned/{spec.name} instead"
        )
        params = {"athenaReadable": "false", "athenaNote": note}
        return TableFormat(TEXT_INPUT, TEXT_OUTPUT, OPENX_JSON_SERDE, serde_params, params)
    unreadable = [f.path for f in catalog_fields(schema) if not _openx_reads(f)]
    params = {"athenaUnreadableFields": json.dumps(unreadable)}
    return TableFormat(TEXT_INPUT, TEXT_OUTPUT, OPENX_JSON_SERDE, serde_params, params)


def _hive_reads(f: CatalogField) -> bool:
    return f.name == f.originals[0].lower()


def _openx_reads(f: CatalogField) -> bool:
    # case.insensitive=FALSE: a top-level column is mapped to its key, a nested field
    # must be spelled exactly as its key
    return f.top_level or f.name in f.originals
