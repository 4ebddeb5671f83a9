"""The shipped marts transpiled to Athena (trino) and Redshift: what cannot run is named,
the docs list it, and what can run gives the original's rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lake.cleaning.columns import columns_from_table
from lake.mart_build import InputColumns, build_mart
from lake.mart_transpile import docs_table, main, read_back, transpile_all, transpile_mart
from lake.simulator import Simulator, SimulatorConfig
from tests.integration.test_marts_golden import MART_ORDER, Pipeline

DOCS = Path(__file__).parents[2] / "docs" / "marts.md"
DAY = date(2026, 11, 20)


def test_the_docs_list_what_the_code_finds() -> None:
    assert docs_table() in DOCS.read_text()


def test_marts_the_targets_cannot_run_are_named_with_their_reason() -> None:
    trino = {t.mart: t for t in transpile_all("trino")}
    redshift = {t.mart: t for t in transpile_all("redshift")}
    assert trino["security_events_daily"].passes and redshift["security_events_daily"].passes
    assert any("IGNORE NULLS FILTER" in p for p in trino["clickstream_sessions_daily"].problems)
    assert trino["clickstream_funnel_daily"].problems == (
        "reads marts.clickstream_sessions_daily, which cannot run on Athena (engine v3)",
    )
    assert [p for p in trino["robot_health_hourly"].problems if p.startswith("GROUP BY ALL")]
    assert any("MICROSECOND" in p for p in trino["robot_anomalies"].problems)
    assert any(
        p.startswith("aggregate FILTER") for p in redshift["clickstream_funnel_daily"].problems
    )
    assert any(p.startswith("arg_max") for p in redshift["milking_per_cow_daily"].problems)
    assert any("ROWS only" in p for p in redshift["robot_anomalies"].problems)
    assert "MAX_BY(robot_id, ts)" in trino["milking_per_cow_daily"].sql


def test_with_input_types_a_concatenated_count_is_named_for_trino(built) -> None:
    pipeline, schema = built
    t = transpile_mart(pipeline.marts["robot_anomalies"], "trino", schema=schema)
    [concat] = [p for p in t.problems if p.startswith("|| over")]
    assert "cows_due" in concat and "in_window" in concat


def test_the_day_and_completeness_are_bound(built) -> None:
    pipeline, _ = built
    spec = pipeline.marts["milking_per_cow_daily"]
    bound = transpile_mart(spec, "trino", DAY, complete=True).sql
    assert "getvariable" not in bound.lower() and "dt = CAST('2026-11-20' AS DATE)" in bound
    assert ":mart_day" in transpile_mart(spec, "redshift").sql


def input_columns(pipeline: Pipeline) -> InputColumns:
    """The cleaned inputs typed from the catalog, as the marts asset reads them."""
    return {
        name: [
            (c.name, c.duck_type) for c in columns_from_table(pipeline.catalog.get_table(name), s)
        ]
        for name, s in pipeline.streams.streams.items()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, dict]:
    """Eighteen simulated hours, with a breakdown, cleaned and built into every mart."""
    sim = Simulator(
        SimulatorConfig(
            seed=5,
            object_interval_s=600,
            breakdowns=(("R02", datetime(2026, 11, 20, 9, 0, tzinfo=UTC), 3.0),),
            random_breakdowns=False,
        )
    )
    pipeline = Pipeline(tmp_path_factory.mktemp("transpile"))
    start, end = datetime(2026, 11, 20, 0, 0, tzinfo=UTC), datetime(2026, 11, 20, 18, tzinfo=UTC)
    pipeline.run(list(sim.write_range(pipeline.landing, start, end)))
    schema: dict = {}
    for name in MART_ORDER:
        b = build_mart(pipeline.marts[name], DAY, pipeline.lake, input_columns(pipeline))
        for layer, tables in b.input_schema.items():
            schema.setdefault(layer, {}).update(tables)
    return pipeline, schema


@pytest.mark.parametrize("dialect", ["trino", "redshift"])
def test_what_passes_gives_the_original_rows_when_read_back(built, dialect: str) -> None:
    pipeline, schema = built
    checked = []
    for name in MART_ORDER:
        spec = pipeline.marts[name]
        t = transpile_mart(spec, dialect, DAY, complete=False, schema=schema)
        if not t.passes:
            continue
        original = build_mart(spec, DAY, pipeline.lake, input_columns(pipeline)).result
        back = build_mart(
            replace(spec, sql=read_back(t)), DAY, pipeline.lake, input_columns(pipeline)
        )
        assert original is not None and original.num_rows > 0, name
        assert back.result is not None
        key = list(spec.unique_key)
        assert back.result.sort_by([(k, "ascending") for k in key]).to_pylist() == (
            original.sort_by([(k, "ascending") for k in key]).to_pylist()
        ), name
        checked.append(name)
    assert checked  # at least one mart per engine was checked for meaning


def test_the_command_writes_each_mart_and_marks_what_cannot_run(tmp_path: Path) -> None:
    assert main(["--dialect", "redshift", "--out", str(tmp_path)]) == 0
    files = {p.stem: p.read_text() for p in tmp_path.glob("*.sql")}
    assert set(files) == {t.mart for t in transpile_all("redshift")}
    assert files["milking_per_cow_daily"].startswith("-- cannot run: arg_max")
    assert not files["security_events_daily"].startswith("-- cannot run")
    assert "FROM cleaned.cloudtrail" in files["security_events_daily"]
