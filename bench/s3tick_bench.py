"""Where a landing sensor tick's and a one-object run's seconds go, S3 against local folders.

    PYTHONPATH=.:bench .venv/bin/python bench/s3tick_bench.py [--ticks 6] [--profile 25]

For each storage (moto's S3 over HTTP in a thread of this process, then local folders): a
lake with objects earlier in the current hour, ingested by one sensor-started run; then,
`--ticks` times, one object lands and the stream's landing sensor ticks (evaluated by hand,
as the code server does, with the code location's resources), and the tick's run is
materialized step by step (landing, schema, cleaned; in process, the Iceberg metadata cache
emptied first as in a run's own process). Each tick and step is measured in CPU seconds of
this process (the steady figure on a shared machine), wall seconds, boto3 clients created,
botocore service models loaded and S3 requests served. `--profile N` prints the N costliest
functions (cumulative) of the ticks and of the steps on S3.

The code under test is the one on PYTHONPATH (`PYTHONPATH=/tmp/s3t-A:bench` for main).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.s3_requests import RequestLog, bench_bucket, moto_server

STREAM = "robot_telemetry"
PHASES = ("sensor tick", "landing", "schema", "cleaned")


class Counts:
    """boto3 clients created and botocore service models loaded, process-wide."""

    def __init__(self) -> None:
        self.clients = 0
        self.models = 0

    def install(self) -> None:
        import botocore.loaders
        import botocore.session

        create, load = (
            botocore.session.Session.create_client,
            botocore.loaders.Loader.load_service_model,
        )

        def counted_create(session: Any, *args: Any, **kwargs: Any) -> Any:
            self.clients += 1
            return create(session, *args, **kwargs)

        def counted_load(loader: Any, service: str, type_name: str, *args: Any, **kw: Any) -> Any:
            if type_name == "service-2":
                self.models += 1
            return load(loader, service, type_name, *args, **kw)

        botocore.session.Session.create_client = counted_create
        botocore.loaders.Loader.load_service_model = counted_load


class Meter:
    """Per phase: CPU and wall seconds, clients, models, S3 requests (one row a sample)."""

    def __init__(self, counts: Counts, log: RequestLog) -> None:
        self.counts, self.log = counts, log
        self.profiles: dict[str, cProfile.Profile] = {}  # "tick" | "steps", while profiling
        self.rows: dict[str, list[tuple[float, float, int, int, int]]] = defaultdict(list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.log.phase = name
        served = len(self.log.rows)
        clients, models = self.counts.clients, self.counts.models
        cpu, wall = time.process_time(), time.perf_counter()
        profile = self.profiles.get("tick" if name.endswith("tick") else "steps")
        if profile is not None:
            profile.enable()
        try:
            yield
        finally:
            if profile is not None:
                profile.disable()
            self.rows[name].append(
                (
                    time.process_time() - cpu,
                    time.perf_counter() - wall,
                    self.counts.clients - clients,
                    self.counts.models - models,
                    len(self.log.rows) - served,
                )
            )
            self.log.phase = "between"


def ingest(where: str, meter: Meter, work: Path, ticks: int, bucket: str | None) -> None:
    from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

    from lake.settings import DEFAULTS
    from lake.simulator import Simulator, SimulatorConfig
    from lake.storage import open_storage
    from orchestration.definitions import defs, ingest_assets
    from orchestration.resources import resources_from_env
    from tests.s3_resources import s3_resources

    if bucket:
        resources = s3_resources(bucket, work / "warehouse.duckdb")
        landing = open_storage(f"s3://{bucket}/landing")
    else:
        settings = replace(
            DEFAULTS,
            landing_uri=(work / "landing").as_uri(),
            lake_uri=(work / "lake").as_uri(),
            warehouse_path=str(work / "warehouse.duckdb"),
            iceberg_catalog_uri=f"sqlite:///{work / 'iceberg.db'}",
        )
        resources = resources_from_env(settings)
        landing = open_storage(settings.landing_uri)
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(f"{STREAM}_landing_sensor")
    assets = ingest_assets(STREAM)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sim = Simulator(SimulatorConfig(seed=2, streams=(STREAM,), object_interval_s=60))
    arrivals = [hour + timedelta(seconds=60 * i) for i in range(5 + ticks)]
    for arrival in arrivals[:5]:
        sim.write_object(landing, STREAM, arrival)

    def run_steps(request: Any, name: Callable[[str], str] | None) -> None:
        from lake.iceberg.metadata_io import CACHE

        CACHE.clear()  # a run is a process of its own
        for layer in ("landing", "schema", "cleaned"):
            with meter.phase(name(layer) if name else "setup"):
                result = materialize(
                    assets,
                    selection=[AssetKey([layer, STREAM])],
                    partition_key=request.partition_key,
                    tags=request.tags,
                    resources=resources,
                )
            assert result.success, layer

    with DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None) -> Any:
            with build_sensor_context(
                cursor=cursor, resources=resources, instance=instance, repository_def=repo
            ) as context:
                return sensor.evaluate_tick(context)

        result = tick(None)
        cursor = result.cursor
        run_steps(result.run_requests[-1], None)
        for arrival in arrivals[5:]:
            sim.write_object(landing, STREAM, arrival)
            with meter.phase(f"{where}: sensor tick"):
                result = tick(cursor)
            cursor = result.cursor
            [request] = result.run_requests
            assert request.tags["stream"] == STREAM, request.tags
            run_steps(request, lambda layer: f"{where}: {layer}")


def report(meter: Meter) -> str:
    lines = [
        "| phase | samples | CPU s (median) | wall s (median) | boto3 clients | service models | S3 requests |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in meter.rows.items():
        if name == "setup":
            continue
        cpu, wall, clients, models, requests = zip(*rows, strict=True)
        lines.append(
            f"| {name} | {len(rows)} | {statistics.median(cpu):.3f} | "
            f"{statistics.median(wall):.3f} | {statistics.median(clients):g} | "
            f"{statistics.median(models):g} | {statistics.median(requests):g} |"
        )
    return "\n".join(lines)


def run(ticks: int, profile_top: int) -> None:
    log, counts = RequestLog(), Counts()
    counts.install()
    meter = Meter(counts, log)
    profiles = {"tick": cProfile.Profile(), "steps": cProfile.Profile()} if profile_top else {}
    with moto_server(log) as endpoint:
        bucket = bench_bucket(endpoint, "s3tick-bench")
        meter.profiles = profiles
        ingest("S3", meter, Path(tempfile.mkdtemp(prefix="s3tick-")), ticks, bucket)
        meter.profiles = {}
        ingest("local", meter, Path(tempfile.mkdtemp(prefix="s3tick-")), ticks, None)
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    print(report(meter))
    for kind, profile in profiles.items():
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(profile_top)
        print(f"## S3 {kind}: costliest functions (cumulative)\n{out.getvalue()}")
        profile.dump_stats(f"{tempfile.gettempdir()}/s3tick-{kind}.prof")
    by_op = Counter(op for phase, op, _ in log.rows if phase == "S3: sensor tick")
    print(f"S3 requests of the S3 ticks: {dict(by_op)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=6, help="one-object ticks and runs a storage")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    args = parser.parse_args()
    run(args.ticks, args.profile)


if __name__ == "__main__":
    main()
