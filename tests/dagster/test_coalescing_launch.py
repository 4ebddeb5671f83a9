"""Every documented start gets the instance settings that freshness relies on."""

from pathlib import Path

import pytest
from dagster import DagsterInstance

from orchestration import launch


def test_a_fresh_dagster_home_gets_the_projects_queue_and_sensor_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`make dev` (no DAGSTER_HOME) and the README's S3 section (a DAGSTER_HOME of one's own,
    empty) both start with the project's settings, read back by Dagster itself."""
    monkeypatch.setattr(launch, "DEFAULT_HOME", tmp_path / "default")
    for environ in ({}, {"DAGSTER_HOME": str(tmp_path / "fresh")}):
        home = launch.prepare_home(environ)
        with DagsterInstance.from_config(str(home)) as instance:
            coordinator = instance.run_coordinator
            assert coordinator.dequeue_interval_seconds == 1
            assert instance.get_settings("sensors") == {"use_threads": True, "num_workers": 4}


def test_an_operators_own_config_is_kept_and_each_missing_setting_named(
    tmp_path: Path, capsys: pytest.CaptureFixture
):
    own = tmp_path / "prod"
    own.mkdir()
    text = "concurrency:\n  pools:\n    default_limit: 1\n"
    (own / "dagster.yaml").write_text(text)
    launch.prepare_home({"DAGSTER_HOME": str(own)})
    assert (own / "dagster.yaml").read_text() == text
    err = capsys.readouterr().err
    assert "dequeue_interval_seconds" in err and "use_threads" in err
    assert "default_limit" not in err
