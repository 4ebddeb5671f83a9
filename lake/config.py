"""Where things live: the three environment variables and their embedded defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"


@dataclass(frozen=True)
class Settings:
    """The pipeline's locations. `file://` URIs are local folders, `s3://bucket/prefix` is S3."""

    landing_uri: str
    lake_uri: str
    warehouse_path: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            landing_uri=env.get("LANDING_URI") or (DATA_DIR / "landing").as_uri(),
            lake_uri=env.get("LAKE_URI") or (DATA_DIR / "lake").as_uri(),
            warehouse_path=env.get("WAREHOUSE_PATH") or str(DATA_DIR / "warehouse.duckdb"),
        )
