"""PostgreSQL connects and statements per process role and thread, from bench/pg_trace.

    PYTHONPATH=.:bench .venv/bin/python bench/pg_calls.py TRACE_DIR [--since EPOCH] [--top 15]

Reads the files bench/pg_trace/sitecustomize.py wrote (latency_bench.py --pg-trace) and
prints, for the window: connects (count, seconds) and statements (count, seconds) per
process role (daemon, webserver, code server, run worker, ...) and thread, the same per
run worker process (one a run), and the most frequent statements.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path


def _role(argv: list[str], parent: list[str]) -> str:
    line = " ".join(argv)
    if "_daemon" in line:  # run workers are forked from a server the daemon started
        return "daemon" if " dev " in " ".join(parent) else "run worker"
    for marker, role in (
        ("dagster_webserver", "webserver"),
        ("api grpc", "code server"),
        ("code-server", "code proxy"),
        ("latency_bench", "bench"),
        (" dev ", "dagster dev"),
    ):
        if marker in line:
            return role
    return "run worker" if argv[:1] == ["-c"] else line[:40]


def _events(trace: Path) -> list[tuple[str, dict]]:
    """(role, event) for every connect and statement recorded under `trace`."""
    heads, found = {}, []
    files = sorted(trace.glob("*.jsonl"))
    for path in files:
        with path.open() as lines:
            head = json.loads(lines.readline())
        heads[head["pid"]] = head
    for path in files:
        role, pid = None, None
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut off by a killed process
            if event["k"] == "proc":
                pid = event["pid"]
                parent = heads.get(event["ppid"], {}).get("argv", [])
                role = _role(event["argv"], parent)
                continue
            event["pid"] = pid
            found.append((role, event))
    return found


def report(trace: Path, since: float = 0.0, top: int = 15) -> str:
    by_thread: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0, 0.0])
    workers: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0.0])
    statements: Counter = Counter()
    for role, event in _events(trace):
        if event["t"] < since:
            continue
        thread = re.sub(r"\d+", "N", event["th"])
        slot = 0 if event["k"] == "connect" else 2
        for totals in [by_thread[role, thread]] + (
            [workers[event["pid"]]] if role == "run worker" else []
        ):
            totals[slot] += 1
            totals[slot + 1] += event["d"]
        if event["k"] == "stmt":
            statements[role, re.sub(r"\d+", "N", event["s"][:60])] += 1
    lines = [f"{'role':12} {'thread':40} {'connects':>8} {'s':>7} {'statements':>10} {'s':>7}"]
    for (role, thread), (c, cs, n, ns) in sorted(
        by_thread.items(), key=lambda kv: -kv[1][1] - kv[1][3]
    ):
        lines.append(f"{role:12} {thread[:40]:40} {c:8.0f} {cs:7.2f} {n:10.0f} {ns:7.2f}")
    if workers:
        per = [sum(w[i] for w in workers.values()) / len(workers) for i in range(4)]
        lines.append(
            f"per run worker ({len(workers)}): {per[0]:.1f} connects ({per[1]:.2f} s), "
            f"{per[2]:.0f} statements ({per[3]:.2f} s)"
        )
    lines.append("most frequent statements:")
    lines += [f"  {role:12} {n:6d}  {text}" for (role, text), n in statements.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path)
    parser.add_argument("--since", type=float, default=0.0)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(report(args.trace, args.since, args.top))


if __name__ == "__main__":
    main()
