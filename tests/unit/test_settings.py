"""Settings: every variable parsed and checked at run time, and the README's table in step."""

from __future__ import annotations

import re

import pytest

from lake.settings import REPO_ROOT, Settings, SettingsError, env_names


def readme_settings() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = (REPO_ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row.split("|")[1])}


def test_every_readme_variable_is_a_setting_and_every_setting_is_in_the_readme() -> None:
    documented = readme_settings()
    assert "LANDING_URI" in documented and "REDSHIFT_CLUSTER_ID" in documented  # parsed
    assert documented == set(env_names())


def test_the_environment_overrides_the_embedded_defaults() -> None:
    settings = Settings.from_env(
        {
            "LAKE_URI": "s3://lake/prefix",
            "MAX_OBJECTS_PER_TICK": " 10 ",
            "WAREHOUSE_LOCK_WAIT_SECONDS": "0.5",
            "PIPELINE_START_DATE": "2026-11-01",
            "S3_SSE": "aws:kms",
            "S3_SSE_KMS_KEY_ID": "alias/lake",
            "GLUE_DATABASE": "",  # empty is unset
        }
    )
    assert settings.lake_uri == "s3://lake/prefix"
    assert settings.max_objects_per_tick == 10
    assert settings.warehouse_lock_wait_seconds == 0.5
    assert settings.pipeline_start_date == "2026-11-01"
    assert (settings.s3_sse, settings.s3_sse_kms_key_id) == ("aws:kms", "alias/lake")
    assert settings.glue_database is None
    assert settings.clean_chunk_bytes == 128 * 1024 * 1024  # untouched default
    assert settings.landing_uri == (REPO_ROOT / "data" / "landing").as_uri()
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SENSOR_INTERVAL_SECONDS", "five", "whole number of at least 1"),
        ("MAX_OBJECTS_PER_TICK", "-3", "whole number of at least 1"),
        ("RECONCILE_DAYS", "0", "whole number of at least 1"),
        ("CLEAN_CHUNK_BYTES", "1.5", "whole number of at least 1"),
        ("S3_READ_ATTEMPTS", "2e3", "whole number of at least 1"),
        ("WAREHOUSE_LOCK_WAIT_SECONDS", "-1", "number above 0"),
        ("REDSHIFT_LOAD_TIMEOUT_SECONDS", "nan", "number above 0"),
        ("REDSHIFT_LOAD_TIMEOUT_SECONDS", "soon", "number above 0"),
        ("PIPELINE_START_DATE", "2026-13-01", "date like 2026-01-01"),
        ("CLEAN_MEMORY_LIMIT", "lots", "amount like 512MB"),
        ("S3_SSE", "AES-256", "one of AES256, aws:kms"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: value})
    assert str(raised.value).startswith(f"{name}={value!r}: ")
    assert message in str(raised.value)


def test_a_kms_key_without_kms_encryption_is_refused() -> None:
    with pytest.raises(SettingsError, match="S3_SSE_KMS_KEY_ID needs S3_SSE=aws:kms"):
        Settings.from_env({"S3_SSE_KMS_KEY_ID": "alias/lake"})


def test_the_pii_key_never_shows() -> None:
    settings = Settings.from_env({"PII_HASH_KEY": "canary-3f9a"})
    assert settings.pii_hash_key == "canary-3f9a"
    assert "canary-3f9a" not in repr(settings)
