"""The DuckDB relations an hour's cleaning hands from step to step, named once here.

Every step of a pass returns a small dataclass naming the relation it made (see
lake.cleaning.passes); the relations live on the hour's one DuckDB connection.
"""

from __future__ import annotations

# staging (lake.cleaning.staging): (_object, _position, raw) of every record that reached DuckDB
STAGED = "staged_records"
RAW = "raw_records"  # (_object, raw) read by DuckDB's JSON reader, in rowid order
PYTHON_RECORDS = "python_records"  # records the Python splitter wrote
# typing (lake.cleaning.typed): typed columns, _reason, _shape, key halves, _dt
TYPED = "typed"
MASK_TEXTS = "mask_texts"  # (v): each text of a set of masked columns, once
OBJECTS = "objects"  # (_object, _source_key, _name, _arrival_hour): the pass's objects
# dedup (lake.cleaning.dedup)
FIRSTS = "firsts"  # (hi, lo, _object, rid, dt, copies): the records kept
# (hi, lo): the pass's keys kept before: in the window's key files or by earlier passes
SEEN_KEYS = "seen_keys"
# (dt, hi, lo, o): the keys this run kept, by its earlier passes too; o: CleaningRun.names index
NEW_KEYS = "new_keys"
RUN_KEYS = "run_keys"  # (h, o, dt, hi, lo): NEW_KEYS of a run of several hours, by hour
RUN_OBJECTS = "run_objects"  # (o, h): each of the run's objects' hour index
# quarantine (lake.cleaning.writing)
REJECTED = "rejected"  # what staging refused: (_object, _position, reason, raw)
QUARANTINED = "quarantined"  # every quarantined record of the pass, with its reason code

ROW_SPAN = 1 << 32  # record id = object index * span + position (positions stay below 2**32)
