"""`dagster dev`'s start, with and without bytecode (bench/README.md, "bytecode").

    PYTHONPATH=.:bench .venv/bin/python bench/devstart_bench.py --runs 2

Starts `python -m orchestration.launch dev` (as `make ui` does) on empty local folders with
a fresh DAGSTER_HOME, and times from the start to the webserver's first answer
(`/server_info`) and to the code location's assets in GraphQL (the UI can show them).
Runs alternate "no .pyc" (PYTHONPYCACHEPREFIX set to an empty folder: Python finds no
bytecode and, with PYTHONDONTWRITEBYTECODE, writes none, as in an environment uv installed
without --compile-bytecode) and "bytecode" (the environment as `make install` builds it).
The process's and its children's CPU seconds are read from /proc before the stop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from orchestration import dev_server

ASSETS = '{"query": "{ assetNodes { id } }"}'


def _assets_loaded(port: int) -> bool:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=ASSETS.encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(json.load(response).get("data", {}).get("assetNodes"))
    except (OSError, ValueError):
        return False


def _tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every process below it (utime + stime, /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    ticks, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            ticks += int(stats[p][11]) + int(stats[p][12])
        todo.extend(children.get(p, []))
    return ticks / os.sysconf("SC_CLK_TCK")


def start_once(bytecode: bool, bound_s: float = 600) -> tuple[float, float, float]:
    """Seconds to the webserver's answer and to the assets, and CPU seconds by then."""
    folder = Path(tempfile.mkdtemp(prefix="devstart-"))
    home = folder / "home"
    home.mkdir()
    env = {
        **os.environ,
        "LANDING_URI": (folder / "landing").as_uri(),
        "LAKE_URI": (folder / "lake").as_uri(),
        "WAREHOUSE_PATH": str(folder / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
    }
    env.pop("PYTHONPYCACHEPREFIX", None)
    if not bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(folder / "no-pyc")
    port = dev_server.free_port()
    began = time.monotonic()
    proc = dev_server.start(env, folder / "dev.log", port)
    try:
        up = dev_server.wait_until_up(port, bound_s)
        while not _assets_loaded(port):
            if time.monotonic() - began > bound_s:
                raise TimeoutError("no assets")
            time.sleep(0.5)
        loaded = time.monotonic() - began
        cpu = _tree_cpu(proc.pid)
    finally:
        dev_server.stop(proc)
        shutil.rmtree(folder, ignore_errors=True)
    return up, loaded, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for n in range(args.runs):
        for bytecode in (False, True):
            load = os.getloadavg()[0]
            up, loaded, cpu = start_once(bytecode)
            label = "bytecode" if bytecode else "no .pyc"
            print(
                f"{n} {label:8} (load {load:.1f}, {time.strftime('%H:%M:%S', time.gmtime())} UTC): "
                f"webserver up {up:.1f} s, assets {loaded:.1f} s, CPU of the process tree "
                f"{cpu:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
