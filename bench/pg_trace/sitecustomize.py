"""Records every PostgreSQL connect and statement of a process (bench/pg_calls.py).

Imported at the start of every Python process whose PYTHONPATH holds this folder
(`latency_bench.py --pg-trace`: dagster dev, its daemon, webserver, code server and run
workers) when PG_TRACE_DIR is set: one JSON line per connect (psycopg2.connect, timed) and
per statement (SQLAlchemy's cursor events, timed) into PG_TRACE_DIR/<pid>.jsonl, with the
thread's name. Installed once dagster_postgres is imported, so other processes pay nothing
but an import hook that stops looking after that.
"""

import builtins
import json
import os
import sys
import threading
import time

_DIR = os.environ.get("PG_TRACE_DIR")


def _writer():
    state = {"pid": None, "file": None}
    lock = threading.Lock()

    def write(record):
        with lock:
            if state["pid"] != os.getpid():  # a fork writes a file of its own
                state["pid"] = os.getpid()
                path = os.path.join(_DIR, f"{state['pid']}.jsonl")
                state["file"] = open(path, "a", buffering=1)  # noqa: SIM115
                head = {"k": "proc", "pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[:6]}
                state["file"].write(json.dumps(head) + "\n")
            record["th"] = threading.current_thread().name
            record["t"] = time.time()
            state["file"].write(json.dumps(record) + "\n")

    return write


def _install(write):
    import psycopg2
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    connect = psycopg2.connect

    def timed_connect(*args, **kwargs):
        began = time.perf_counter()
        try:
            return connect(*args, **kwargs)
        finally:
            write({"k": "connect", "d": time.perf_counter() - began})

    psycopg2.connect = timed_connect

    def before(conn, cursor, statement, params, context, executemany):
        conn.info.setdefault("_pg_trace", []).append(time.perf_counter())

    def after(conn, cursor, statement, params, context, executemany):
        took = time.perf_counter() - conn.info["_pg_trace"].pop()
        write({"k": "stmt", "d": took, "s": " ".join(statement.split())[:80]})

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)


if _DIR:
    _import = builtins.__import__
    _done = []

    def _watching_import(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        if not _done and name.startswith("dagster_postgres"):
            _done.append(True)
            _install(_writer())
        return module

    builtins.__import__ = _watching_import
