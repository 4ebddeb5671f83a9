"""The lake's tables as Apache Iceberg tables in a catalog (pyiceberg, no JVM).

Cleaning, quarantine and mart runs write their Parquet files where the layout says
(lake.layout) and then register them in one Iceberg transaction (lake.iceberg.commit):
a reader of the catalog sees all of a run or none of it. Readers plan the committed
snapshot's files (lake.iceberg.scan) and hand DuckDB literal file lists.

- catalog: which catalog (LAKE_CATALOG: a SQLite `sql` catalog, or AWS Glue), the
  namespaces, table names and locations;
- commit: create or evolve a table and commit a run's files (replacing what the run
  supersedes) with retries on a concurrent commit;
- scan: the committed files of a table, of some days.
"""
