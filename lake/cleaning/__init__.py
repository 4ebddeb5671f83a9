"""Cleaning: an arrival hour's landed records -> typed, masked, deduplicated Parquet, and
quarantine for the records that cannot be cleaned (docs/cleaning.md).

    hour.clean_hours       the entry point (clean_hour: one hour): picks the hours' objects,
                           runs the passes over them, saves each hour's dedup keys, keeps
                           the ledger (lake.ledger)
    passes.CleaningRun     one pass over some objects (of one or more hours), step by step:
      staging              raw records into DuckDB (DuckDB's reader, or lake.framings)
      typed                typing them (typing_query: the SQL; columns: the catalog's
                           leaves; masking: the PII hook; new_fields: key lists and
                           fields the catalog lacks)
      dedup                duplicates dropped within the run and against earlier runs
      writing              cleaned files per object and event date, quarantine files
    reasons                quarantine reason codes
    report                 counts per object and per run
    tables                 the DuckDB relations the steps hand over, named once

Import from the modules (no re-exports here).
"""
