"""Loading a mart partition into Redshift through the Redshift Data API (optional).

Off unless REDSHIFT_WORKGROUP (Serverless) or REDSHIFT_CLUSTER_ID (provisioned) is set,
with REDSHIFT_DATABASE and, for a cluster, REDSHIFT_DB_USER or REDSHIFT_SECRET_ARN
(orchestration.aws_resources.RedshiftResource builds the loader and its client). The
load script of lake.redshift runs in two parts: the setup statements (schema, table,
VARCHAR widening: Redshift will not alter a column inside a transaction) one by one, then
the statements between BEGIN and COMMIT as one BatchExecuteStatement, which Redshift runs
as a single transaction. Each call is polled until it finishes; a failure raises with the
failing statement and Redshift's error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from lake.settings import DEFAULTS

POLL_S = 1.0
_DONE = {"FINISHED", "FAILED", "ABORTED"}


class RedshiftLoadError(RuntimeError):
    """A statement of a load failed, was aborted, or did not finish in time."""


@dataclass
class RedshiftLoader:
    target: dict[str, str]  # WorkgroupName or ClusterIdentifier, Database, DbUser/SecretArn
    client: Any
    poll_s: float = POLL_S
    timeout_s: float = DEFAULTS.redshift_load_timeout_seconds
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def run_script(self, script: str, log: Any = None) -> list[str]:
        """Run a load script; return the statement ids."""
        setup, transaction = split_script(script)
        ids = [self._execute(statement, log) for statement in setup]
        if transaction:
            ids.append(self._batch(transaction, log))
        return ids

    def _execute(self, statement: str, log: Any) -> str:
        sid = self.client.execute_statement(Sql=statement, **self.target)["Id"]
        self._wait(sid, [statement], log)
        return sid

    def _batch(self, statements: list[str], log: Any) -> str:
        sid = self.client.batch_execute_statement(Sqls=statements, **self.target)["Id"]
        self._wait(sid, statements, log)
        return sid

    def _wait(self, sid: str, statements: list[str], log: Any) -> None:
        waited = 0.0
        while True:
            d = self.client.describe_statement(Id=sid)
            if d["Status"] in _DONE:
                break
            if waited >= self.timeout_s:
                raise RedshiftLoadError(
                    f"statement {sid} still {d['Status']} after {waited:.0f} s: {statements[0][:200]}"
                )
            self.sleep(self.poll_s)
            waited += self.poll_s
        if d["Status"] == "FINISHED":
            if log is not None:
                log.info(f"redshift: {len(statements)} statement(s) finished ({sid})")
            return
        failing = next(
            (s for s in d.get("SubStatements") or [] if s.get("Status") in ("FAILED", "ABORTED")),
            None,
        )
        query = (failing or {}).get("QueryString") or d.get("QueryString") or statements[0]
        error = (failing or {}).get("Error") or d.get("Error") or d["Status"]
        raise RedshiftLoadError(f"redshift statement {d['Status']}: {error}\n  in: {query}")


def redshift_target(
    database: str,
    workgroup: str | None = None,
    cluster_id: str | None = None,
    db_user: str | None = None,
    secret_arn: str | None = None,
) -> dict[str, str]:
    """The Data API's target: a Serverless workgroup, else a provisioned cluster (signing
    in with a Secrets Manager secret, else as a database user)."""
    target = {"Database": database}
    if workgroup:
        target["WorkgroupName"] = workgroup
    elif cluster_id:
        target["ClusterIdentifier"] = cluster_id
    else:
        raise ValueError("a Redshift target needs a workgroup or a cluster id")
    if secret_arn:
        target["SecretArn"] = secret_arn
    elif db_user:
        target["DbUser"] = db_user
    return target


def split_script(script: str) -> tuple[list[str], list[str]]:
    """(setup statements, statements between BEGIN and COMMIT) of a load script."""
    setup: list[str] = []
    transaction: list[str] = []
    current = setup
    for statement in sqlglot.parse(script, read="redshift"):
        if statement is None:
            continue
        if isinstance(statement, exp.Transaction):
            current = transaction
        elif isinstance(statement, exp.Commit):
            current = setup
        else:
            current.append(statement.sql(dialect="redshift"))
    return setup, transaction
