"""Local paths DuckDB reads literally, whatever the keys they stand for.

DuckDB treats `*`, `?` and `[...]` in every path it is given as a glob, even inside a
list of files, so a key holding them would read other files or none. Each file is handed
over as a link named by its index in a fresh folder under the scratch directory, kept in
its `dt=<date>` folder when it has one so Hive partitioning still reads the date.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from lake.storage import Storage, local_path

GLOB_CHARACTERS = frozenset("*?[]{}")
_DT_FOLDER = re.compile(r"/(dt=\d{4}-\d{2}-\d{2})/[^/]+$")


class UnsafeScratchPath(ValueError):
    """A scratch directory whose own path DuckDB would read as a glob."""


def literal_links(storage: Storage, keys: list[str], scratch: Path) -> list[Path]:
    """One link a key (same order), each path free of glob characters."""
    folder = Path(tempfile.mkdtemp(dir=scratch, prefix="links-"))
    if GLOB_CHARACTERS & set(str(folder)):
        raise UnsafeScratchPath(f"scratch folder {folder} holds a glob character (TMPDIR?)")
    copies = Path(tempfile.mkdtemp(dir=scratch, prefix="copies-"))
    links = []
    for i, key in enumerate(keys):
        dt = _DT_FOLDER.search(key)
        parent = folder / dt.group(1) if dt else folder
        parent.mkdir(exist_ok=True)
        link = parent / f"{i}.parquet"
        link.symlink_to(local_path(storage, key, copies).resolve())
        links.append(link)
    return links
