"""Cost of the PII text rules (lake.pii_rules) on one text column, against a plain copy.

    .venv/bin/python bench/mask_bench.py [--rows 1000000]

Runs the shipped CloudTrail entry's text rules (pii_keys and pii_values) as the cleaning
query runs them (one query stage per rule) over two columns of `--rows` values: text no
rule matches (`ec2.amazonaws.com DescribeInstances <n>`: it holds dots, so the ipv4 rule's
hint passes and its regex runs) and IAM user ARNs (every value rewritten and hashed).
Prints the best of three runs for each, and a plain `count(DISTINCT v)` for scale.
"""

import argparse
import time

import duckdb

from lake.cleaning.masking import _hmac_sql
from lake.pii import REDACTED, PIIKey, install_key
from lake.pii_rules import text_rule_stages
from lake.streams import load_streams


def masked_query(table: str, stages: list[str]) -> str:
    ctes = ", ".join(
        f"s{i} AS (SELECT {stage} FROM {table if i == 0 else f's{i - 1}'})"
        for i, stage in enumerate(stages)
    )
    return f"WITH {ctes} SELECT count(DISTINCT m) FROM s{len(stages) - 1}"


def best_of(con: duckdb.DuckDBPyConnection, sql: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    con = duckdb.connect()
    install_key(con, PIIKey(b"bench-key", "env"))
    rules = load_streams()["cloudtrail"].pii
    stages = text_rule_stages("v", "m", rules, _hmac_sql, REDACTED)
    texts = {
        "plain": "'ec2.amazonaws.com DescribeInstances ' || i",
        "arn": "'arn:aws:iam::111122223333:user/User' || i",
    }
    for table, text in texts.items():
        con.execute(f"CREATE TABLE {table} AS SELECT {text} AS v FROM range({rows}) r(i)")
        masked = best_of(con, masked_query(table, stages))
        copy = best_of(con, f"SELECT count(DISTINCT v) FROM {table}")
        print(f"{table}: masked {masked:.2f} s, copy {copy:.2f} s, {rows:,} values")


if __name__ == "__main__":
    main()
