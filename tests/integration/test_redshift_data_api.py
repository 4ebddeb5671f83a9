"""The Redshift Data API loader against moto's redshift-data over HTTP on 127.0.0.1.

moto records statements and lets them be cancelled, but never finishes one and has no
BatchExecuteStatement: these tests cover what it can show (what is sent, a statement that
does not finish in time, an aborted one surfaced with its SQL); the finished and batch
paths are answered by botocore's Stubber.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lake.redshift_data_api import RedshiftLoader, RedshiftLoadError
from orchestration.aws_resources import RedshiftResource

pytestmark = pytest.mark.s3

SCRIPT = """CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE IF NOT EXISTS marts."m" ("dt" DATE, "n" BIGINT) DISTSTYLE AUTO;
BEGIN;
CREATE TEMP TABLE "stage_m" (LIKE marts."m");
COPY "stage_m" FROM 's3://lake/redshift/m/dt=2026-11-21/manifest.json' IAM_ROLE default FORMAT AS PARQUET MANIFEST;
DELETE FROM marts."m" WHERE dt = DATE '2026-11-21';
INSERT INTO marts."m" SELECT * FROM "stage_m";
DROP TABLE "stage_m";
COMMIT;
"""


@pytest.fixture
def client(aws_env: str) -> Any:
    return boto3.client("redshift-data")


def loader_for(client: Any, timeout_s: float) -> RedshiftLoader:
    target = {"ClusterIdentifier": "farm", "Database": "dev", "DbUser": "loader"}
    return RedshiftLoader(target, client=client, poll_s=0.05, timeout_s=timeout_s)


def test_off_unless_a_cluster_or_workgroup_is_configured(aws_env: str) -> None:
    assert RedshiftResource().loader() is None
    assert RedshiftResource(database="farm_db", db_user="loader").loader() is None
    loader = RedshiftResource(cluster_id="farm", db_user="loader").loader()
    assert loader is not None
    assert loader.target == {"Database": "dev", "ClusterIdentifier": "farm", "DbUser": "loader"}
    serverless = RedshiftResource(workgroup="wg", secret_arn="arn:secret", timeout_seconds=7)
    loader = serverless.loader()
    assert loader is not None and loader.timeout_s == 7
    assert loader.target == {"Database": "dev", "WorkgroupName": "wg", "SecretArn": "arn:secret"}


def test_a_statement_that_never_finishes_fails_the_load_with_its_sql(client: Any) -> None:
    loader = loader_for(client, timeout_s=0.2)
    with pytest.raises(
        RedshiftLoadError, match="still STARTED .*CREATE SCHEMA IF NOT EXISTS marts"
    ):
        loader.run_script(SCRIPT)


def test_an_aborted_statement_is_reported_with_the_statement(client: Any) -> None:
    loader = loader_for(client, timeout_s=10)
    sent: list[str] = []
    real_execute = client.execute_statement

    def execute(**kwargs: Any) -> dict[str, Any]:
        response = real_execute(**kwargs)
        sent.append(response["Id"])
        return response

    client.execute_statement = execute

    def cancel_soon() -> None:  # an operator cancels the statement in the console
        while not sent:
            time.sleep(0.01)
        client.cancel_statement(Id=sent[0])

    threading.Thread(target=cancel_soon, daemon=True).start()
    with pytest.raises(RedshiftLoadError, match="ABORTED") as failure:
        loader.run_script(SCRIPT)
    assert "CREATE SCHEMA IF NOT EXISTS marts" in str(failure.value)
    described = client.describe_statement(Id=sent[0])
    assert described["QueryString"] == "CREATE SCHEMA IF NOT EXISTS marts"
    assert described["ClusterIdentifier"] == "farm" and described["DbUser"] == "loader"


def test_the_finished_path_runs_the_transaction_as_one_batch(client: Any) -> None:
    """moto never finishes a statement and has no BatchExecuteStatement: botocore's Stubber
    answers here (the calls still go through the client, so the IAM check sees them)."""
    loader = loader_for(client, timeout_s=10)
    with Stubber(client) as stub:
        for n in (1, 2):  # the two setup statements, one by one
            stub.add_response("execute_statement", {"Id": f"s{n}"})
            stub.add_response("describe_statement", {"Id": f"s{n}", "Status": "FINISHED"})
        stub.add_response("batch_execute_statement", {"Id": "b1"})
        stub.add_response("describe_statement", {"Id": "b1", "Status": "FINISHED"})
        assert loader.run_script(SCRIPT) == ["s1", "s2", "b1"]
        stub.assert_no_pending_responses()
