"""`python -m orchestration.launch dev` writes the project's bytecode once when Python
would not (PYTHONDONTWRITEBYTECODE): each run is a new process that imports ~100 of our
modules, and without a .pyc every one of them compiled all of them from source."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import launch


def make_packages(root: Path) -> list[Path]:
    sources = []
    for package in launch.PACKAGES:
        (root / package / "sub").mkdir(parents=True)
        for path in (root / package / "__init__.py", root / package / "sub" / "mod.py"):
            path.write_text("VALUE = 1\n")
            sources.append(path)
    return sources


def test_without_bytecode_writing_the_packages_are_compiled(tmp_path, monkeypatch):
    sources = make_packages(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    launch.compile_project(tmp_path)
    assert [p for p in sources if not Path(importlib.util.cache_from_source(p)).exists()] == []


def test_a_process_that_writes_no_bytecode_loads_the_written_one(tmp_path, monkeypatch):
    sources = make_packages(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    launch.compile_project(tmp_path)
    # same size and time as the compiled source: only the .pyc can say VALUE = 1
    stat = sources[1].stat()
    sources[1].write_text("VALUE = 2\n")
    os.utime(sources[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    out = subprocess.run(
        [sys.executable, "-c", "import lake.sub.mod as m; print(m.VALUE)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert out == "1"


def test_with_bytecode_writing_python_does_it_itself(tmp_path, monkeypatch):
    sources = make_packages(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    launch.compile_project(tmp_path)
    assert [p for p in sources if Path(importlib.util.cache_from_source(p)).exists()] == []


@pytest.mark.parametrize("args", [["dev"], ["asset", "materialize", "--select", "x"]])
def test_every_command_compiles_before_dagster_starts(tmp_path, monkeypatch, args):
    calls: list[str] = []
    monkeypatch.chdir(os.getcwd())  # main() changes to the repository root
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(launch, "compile_project", lambda: calls.append("compile"))
    monkeypatch.setattr(launch, "supervise", lambda *a: calls.append("dagster") or 0)
    monkeypatch.setattr(launch.os, "execve", lambda *a: calls.append("dagster"))
    with contextlib.suppress(SystemExit):
        launch.main(args)
    assert calls == ["compile", "dagster"]


def test_compile_only_compiles(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(launch, "compile_project", lambda: calls.append("compile"))
    monkeypatch.setattr(launch.os, "execve", lambda *a: calls.append("dagster"))
    launch.main(["compile"])
    assert calls == ["compile"]
    assert not (tmp_path / "home").exists()


# counts, in a new interpreter that writes no bytecode, the modules Python compiles from
# source while it imports the code location (SourceLoader.source_to_code runs only when
# no current .pyc exists)
COUNT_COMPILED = """
import json, sys
from importlib import _bootstrap_external as ext
compiled = []
original = ext.SourceLoader.source_to_code
def counting(self, data, path, *, _optimize=-1):
    compiled.append(str(path))
    return original(self, data, path, _optimize=_optimize)
ext.SourceLoader.source_to_code = counting
import orchestration.definitions
print(json.dumps(compiled))
"""


def test_a_new_process_compiles_nothing_from_source():
    """`make install` writes the libraries' bytecode (uv's --compile-bytecode) and the
    launcher the project's: with PYTHONDONTWRITEBYTECODE set, a process that imports the code
    location would otherwise compile Dagster and everything else from source, ~15 s of a CLI
    start on a 2-core machine (bench/README.md, "bytecode")."""
    repo = Path(launch.REPO_ROOT)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        [sys.executable, "-m", "orchestration.launch", "compile"], cwd=repo, env=env, check=True
    )
    out = subprocess.run(
        [sys.executable, "-c", COUNT_COMPILED],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    compiled = json.loads(out.strip().splitlines()[-1])
    assert compiled == [], (
        f"{len(compiled)} modules compiled from source, e.g. {compiled[:3]}: an environment"
        " from before `--compile-bytecode`? rm -rf .venv .venv-core && make install"
    )
