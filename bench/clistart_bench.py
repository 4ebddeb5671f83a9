"""The CLI range run's seconds before its run starts, phase by phase (bench/README.md, "clistart").

    PYTHONPATH=.:bench .venv/bin/python bench/clistart_bench.py --dir /tmp/bb-typing [--code C]

Runs `dagster asset materialize -m orchestration.definitions --select landing/..,schema/..,
cleaned/.. --partition-range` of the hours29 case (as backfill_bench.py `ours` does, fresh
DAGSTER_HOME and lake). First the launcher as the bench's CLI starts it (`python -m
orchestration.launch asset materialize ...`: it prepares DAGSTER_HOME, then would exec
`dagster`; here its exec is a no-op and its own wall and CPU seconds are timed), then
`dagster` in a child process that stamps wall and CPU seconds at each phase:
`dagster`'s CLI imported, the instance opened, the code location loaded, the run created
(job subset, execution plan, snapshots, run record) and its planned events stored; the
child then ends before the first step (os._exit): only the wall before RUN_START is timed.
With CLISTART_PROFILE=F in the environment the child writes cProfile stats of those phases to F.
`--code` runs another checkout (A/B: `git archive main | tar -x -C /tmp/clistart-A`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# what `python -m orchestration.launch <args>` does up to its exec of `dagster`; it prints
# the variables it adds to the environment `dagster` gets (the child gets them too)
LAUNCHER = (
    "import json, os, sys\nfrom orchestration import launch\n"
    "os.execve = lambda path, args, env: print(json.dumps("
    "{k: v for k, v in env.items() if k not in os.environ}))\n"
    "launch.main(sys.argv[1:])"
)
PHASES = ("cli imported", "instance", "code location", "run created", "planned events")


def _process_start() -> float:
    """Epoch seconds at which this process started (Linux /proc)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def child(argv: list[str]) -> None:
    """`dagster <argv>` in this process, stamping each phase and ending at RUN_START."""
    started = _process_start()
    profiler = None
    if os.environ.get("CLISTART_PROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    stamps: list[tuple[str, float, float]] = []

    def stamp(name: str) -> None:
        stamps.append((name, time.time() - started, time.process_time()))

    import dagster._cli as cli

    stamp("cli imported")
    from dagster._cli.workspace import cli_target
    from dagster._core.instance import DagsterInstance
    from dagster._core.instance.runs.run_domain import RunDomain

    def after(fn, name):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            stamp(name)
            return out

        return wrapped

    DagsterInstance.get = staticmethod(after(DagsterInstance.get, "instance"))
    cli_target.get_loadable_targets = after(cli_target.get_loadable_targets, "code location")
    planned = RunDomain._log_asset_planned_events

    def log_planned(self, *args, **kwargs):
        stamp("run created")
        planned(self, *args, **kwargs)
        stamp("planned events")
        print(json.dumps(stamps), flush=True)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.environ["CLISTART_PROFILE"])
        os._exit(0)

    RunDomain._log_asset_planned_events = log_planned
    sys.argv = ["dagster", *argv]
    cli.main()


def measure(root: Path, code: Path) -> dict[str, tuple[float, float]]:
    """One launcher and one child run of hours29's CLI range run from `code`: "launcher" ->
    its (wall, CPU) seconds, each phase of the child -> (wall, CPU) seconds since it started."""
    sys.path.insert(0, str(REPO / "bench"))
    from backfill_bench import CASES, SPEC, cli_env, partition_key

    first, hours, _, _ = CASES["hours29"]
    run = root / "clistart"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    env = cli_env(root, run, code)
    last = first + timedelta(hours=hours - 1)
    argv = ["asset", "materialize", "--select"]
    argv += [",".join(f"{layer}/{SPEC.name}" for layer in ("landing", "schema", "cleaned"))]
    argv += ["--partition-range", f"{partition_key(first)}...{partition_key(last)}"]
    cpu_before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    launched = _output([sys.executable, "-c", LAUNCHER, *argv], code, env)
    launcher_s = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("ru_utime", "ru_stime"))
    argv += ["-m", "orchestration.definitions"]
    env |= json.loads(launched)  # what the launcher adds, e.g. DAGSTER_EVENT_BATCH_SIZE
    stamps = json.loads(_output([sys.executable, __file__, "_child", *argv], code, env))
    return {"launcher": (launcher_s, cpu), **{name: (wall, cpu) for name, wall, cpu in stamps}}


def _output(command: list[str], code: Path, env: dict[str, str]) -> str:
    """The last line `command` prints, run from `code` with `env`."""
    out = subprocess.run(command, cwd=code, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    if sys.argv[1:2] == ["_child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bb-typing"))
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to run")
    args = parser.parse_args()
    phases = measure(args.dir, args.code.resolve())
    shown = ", ".join(f"{p} {phases[p][0]:.2f}/{phases[p][1]:.2f}" for p in PHASES)
    launcher = "launcher {:.2f}/{:.2f} s".format(*phases["launcher"])
    print(f"{args.code} (load {os.getloadavg()[0]:.1f}): {launcher}; then `dagster`, s since")
    print(f"  its start (wall/CPU): {shown}")


if __name__ == "__main__":
    main()
