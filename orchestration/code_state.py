"""What a preloaded code location was built from: the project's files and the environment.

The run launcher's forkserver imports the code location once (orchestration/warm_server.py),
so it holds the code and the settings of its start. `code_state` names both: every file
under the project's code folders and the stream settings (path, mtime_ns, size: a few ms
for the project's few hundred files) and the whole environment (Settings reads its
variables at import; boto3, DuckDB and Dagster read others). Two equal states load the
same code location.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

CODE_FOLDERS = ("lake", "assets", "orchestration", "sql")
SETTINGS_FILES = ("streams.yaml",)
SKIPPED = ("__pycache__",)  # bytecode follows the sources (launch.compile_project writes it)

FileStamp = tuple[str, int, int]


def code_state(root: Path, environ: Mapping[str, str]) -> tuple[tuple[FileStamp, ...], ...]:
    """The project's files under `root` and `environ`, comparable with ==."""
    files = [*_stamps(root, SETTINGS_FILES)]
    for folder in CODE_FOLDERS:
        files.extend(_walk(root / folder, folder))
    return tuple(sorted(files)), tuple(sorted(environ.items()))


def _stamps(root: Path, names: tuple[str, ...]) -> Iterator[FileStamp]:
    for name in names:
        try:
            stat = (root / name).stat()
        except OSError:  # a missing file is a state too
            yield name, -1, -1
        else:
            yield name, stat.st_mtime_ns, stat.st_size


def _walk(folder: Path, relative: str) -> Iterator[FileStamp]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        name = f"{relative}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in SKIPPED:
                yield from _walk(Path(entry.path), name)
            continue
        try:
            stat = entry.stat()
        except OSError:  # removed while walking: the next check sees it gone
            continue
        yield name, stat.st_mtime_ns, stat.st_size
