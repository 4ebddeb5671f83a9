"""The heavy steps on a Dagster Pipes worker: the cleaning step (CLEAN_COMPUTE=subprocess|ecs)
and the crawl (CRAWL_COMPUTE, at the end): the client, what the worker is told (extras), and
what comes back (results and per-hour metadata)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import boto3
import pyarrow as pa
from dagster import AssetExecutionContext, PipesClientCompletedInvocation, PipesSubprocessClient

from lake import layout
from lake.cleaning.handoff import batches_doc, drop_handoff, handoff_uri, load_chunk
from lake.cleaning.parallel import ChunkRunner, HeldCommit
from lake.cleaning.report import HourReport
from lake.cleaning.run import HOURS_MESSAGE, RunOptions
from lake.crawl_run import CrawlOptions
from lake.s3_clients import shared_client
from lake.settings import REPO_ROOT, Settings, SettingsError
from lake.storage import ObjectInfo, Storage
from lake.streams import StreamSpec
from orchestration.resources import PIIKeyResource

WORKER_MODULE = "workers.clean"
S3_MESSAGES_INTERVAL = 2.0  # seconds between the S3 message reader's polls


def worker_extras(
    context: AssetExecutionContext,
    settings: Settings,
    spec: StreamSpec,
    database: str,
    options: RunOptions | CrawlOptions,
) -> dict[str, Any]:
    """What the worker needs: the step's hours (dagster 1.13's Pipes context holds a
    partition window for one partition only, none for a range run), the stream, settings
    and options. The PII key
    is left out: the worker reads PII_HASH_KEY from its environment, or fetches the secret
    PII_HASH_KEY_SECRET_ID names."""
    window = context.partition_time_window
    return {
        "window": [window.start.isoformat(), window.end.isoformat()],
        "stream": spec.name,
        "code_version": spec.code_version,
        "database": database,
        "settings": settings.as_env(),
        "options": asdict(options),
    }


def clean_on_pipes(
    context: AssetExecutionContext,
    settings: Settings,
    spec: StreamSpec,
    database: str,
    options: RunOptions,
    pii_key: PIIKeyResource,
) -> PipesClientCompletedInvocation:
    """Run the cleaning of the step's hours on the worker CLEAN_COMPUTE names."""
    extras = worker_extras(context, settings, spec, database, options)
    env = cleaning_env(pii_key)
    return run_worker(context, settings, settings.clean_compute, WORKER_MODULE, extras, env)


def cleaning_env(pii_key: PIIKeyResource) -> dict[str, str]:
    """A cleaning worker's environment on top of the run's: the resource's key, not a
    PII_HASH_KEY the run's environment may hold."""
    return {"PII_HASH_KEY": pii_key.key or ""}


class ChunkWorkers:
    """For CLEAN_WORKERS > 1 on Pipes (CLEAN_COMPUTE=subprocess|ecs): what
    lake.cleaning.run.clean_run takes to clean each chunk of the run's hours on a worker of
    its own (`python -m workers.clean`: a subprocess or an ECS task, one Pipes session each,
    started from the parallel run's threads), handed back uncommitted through the lake
    (lake.cleaning.handoff). `extras`: worker_extras's. `drop_handoffs` deletes what the
    workers handed back: the step calls it when the run ends, committed or not."""

    def __init__(
        self,
        context: AssetExecutionContext,
        settings: Settings,
        extras: dict[str, Any],
        pii_key: PIIKeyResource,
    ) -> None:
        self.context, self.settings, self.extras, self.pii_key = context, settings, extras, pii_key
        self.handoffs: list[tuple[Storage, str]] = []

    def __call__(self, table: dict[str, Any] | None) -> ChunkRunner:
        def run_chunk(
            batches: dict[datetime, list[ObjectInfo]], hidden: frozenset[str], held: HeldCommit
        ) -> tuple[dict[datetime, HourReport], pa.Table]:
            assert held.lake is not None
            folder = layout.chunk_handoff_folder(held.spec.name, held.token, min(batches))
            self.handoffs.append((held.lake, folder))
            chunk = {
                "hours": batches_doc(batches),
                "hidden": sorted(hidden),
                "token": held.token,
                "table": table,
                "handoff": folder,
            }
            labels = chunk_labels(batches, handoff_uri(held.lake, folder))
            env = {**cleaning_env(self.pii_key), **labels}
            extras = {**self.extras, "chunk": chunk}
            compute = self.settings.clean_compute
            run_worker(self.context, self.settings, compute, WORKER_MODULE, extras, env, labels)
            return load_chunk(held.lake, folder, held, batches)

        return run_chunk

    def drop_handoffs(self) -> None:
        for lake, folder in self.handoffs:
            try:
                drop_handoff(lake, folder)
            except Exception as e:  # noqa: BLE001 - a leftover is harmless; the run is not
                self.context.log.warning(
                    f"chunk handoff {handoff_uri(lake, folder)} not removed ({e}): harmless, "
                    "no run reads it (docs/operations.md, 'Leftover chunk handoffs')"
                )


def chunk_labels(batches: dict[datetime, list[ObjectInfo]], handoff: str) -> dict[str, str]:
    """A chunk worker's environment naming its chunk and handoff (an ECS task's overrides:
    which task cleans which hours shows in the console); the worker reads its extras."""
    return {
        "LAKE_CLEAN_CHUNK": f"{min(batches):%Y-%m-%dT%H}..{max(batches):%Y-%m-%dT%H}",
        "LAKE_CLEAN_HANDOFF": handoff,
    }


def hours_metadata(invocation: PipesClientCompletedInvocation) -> dict[str, dict[str, Any]]:
    """The per-hour metadata the worker sent (partition key -> metadata, Pipes wire form)."""
    hours: dict[str, dict[str, Any]] = {}
    for message in invocation.get_custom_messages():
        if isinstance(message, dict) and HOURS_MESSAGE in message:
            hours.update(message[HOURS_MESSAGE])
    return hours


def lake_bucket(settings: Settings) -> tuple[str, str]:
    """The lake's bucket and prefix: an ECS worker's context and messages go there."""
    parsed = urlparse(settings.lake_uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise SettingsError(
            f"a Pipes worker on ECS needs LAKE_URI on S3, not {settings.lake_uri!r}"
        )
    return parsed.netloc, parsed.path.strip("/")


def ecs_client(settings: Settings, s3_client: Any = None, ecs: Any = None) -> Any:
    """A PipesECSClient whose context and messages go through the lake's `_state/pipes/`
    (the code location's role may write there, not at the bucket's root)."""
    from dagster_aws.pipes import PipesECSClient, PipesS3ContextInjector

    bucket, prefix = lake_bucket(settings)
    pipes_prefix = f"{prefix}/_state/pipes/".lstrip("/")
    s3_client = s3_client or shared_client("s3")
    return PipesECSClient(
        client=ecs or boto3.client("ecs"),
        context_injector=PipesS3ContextInjector(
            bucket=bucket, client=s3_client, key_prefix=pipes_prefix
        ),
        message_reader=_lake_message_reader(bucket, pipes_prefix, s3_client),
    )


def _lake_message_reader(bucket: str, key_prefix: str, s3_client: Any) -> Any:
    """dagster-aws's PipesS3MessageReader, its messages under `key_prefix` of the bucket:
    its own puts them under a random name at the bucket's root."""
    from dagster_aws.pipes import PipesS3MessageReader

    class LakeS3MessageReader(PipesS3MessageReader):
        @contextmanager
        def get_params(self) -> Iterator[dict[str, Any]]:
            with super().get_params() as params:
                yield {**params, "key_prefix": f"{key_prefix}messages/{params['key_prefix']}"}

    return LakeS3MessageReader(bucket=bucket, client=s3_client, interval=S3_MESSAGES_INTERVAL)


def ecs_task_params(
    settings: Settings, command: Sequence[str], environment: dict[str, str] | None = None
) -> dict[str, Any]:
    """ECS RunTask's arguments: one Fargate task of the lake's image running the worker,
    with `environment` on top of the task definition's."""
    override: dict[str, Any] = {"name": settings.clean_ecs_container, "command": list(command)}
    if environment:
        override["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    return {
        "cluster": settings.clean_ecs_cluster,
        "taskDefinition": settings.clean_ecs_task_definition,
        "launchType": "FARGATE",
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(settings.clean_ecs_subnets),
                "assignPublicIp": "DISABLED",
            }
        },
        "overrides": {"containerOverrides": [override]},
    }


# The crawl (schema/<stream>) on a Pipes worker (CRAWL_COMPUTE=subprocess|ecs): the same
# extras, clients and per-hour messages as the cleaning step, its own worker module.
CRAWL_WORKER_MODULE = "workers.crawl"


def crawl_on_pipes(
    context: AssetExecutionContext,
    settings: Settings,
    spec: StreamSpec,
    database: str,
    options: CrawlOptions,
) -> PipesClientCompletedInvocation:
    """Run the crawl of the step's hours on the worker CRAWL_COMPUTE names."""
    extras = worker_extras(context, settings, spec, database, options)
    return run_worker(context, settings, settings.crawl_compute, CRAWL_WORKER_MODULE, extras)


def run_worker(
    context: AssetExecutionContext,
    settings: Settings,
    compute: str,
    module: str,
    extras: dict[str, Any],
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> PipesClientCompletedInvocation:
    """Run `python -m <module>` on `compute` (subprocess: here, with `env` on top of the
    run's environment; ecs: a task of the CLEAN_ECS_* definition, with `labels` in its
    environment: never `env`, whose PII key a task's overrides would show)."""
    command = [sys.executable, "-m", module]
    if compute == "subprocess":
        return PipesSubprocessClient(cwd=str(REPO_ROOT)).run(
            context=context, command=command, extras=extras, env=env
        )
    return ecs_client(settings).run(
        context=context,
        run_task_params=ecs_task_params(settings, ["python", *command[1:]], labels),
        extras=extras,
    )
