"""A pass's landed objects as files DuckDB reads from memory (no local copies).

DuckDB reads any fsspec filesystem registered on its connection
(`register_filesystem`) under the filesystem's protocol. `LandedFiles` is fsspec's
in-memory filesystem with a store of its own (not fsspec's global one), under the
protocol `landed://`, so the bytes lake.object_fetch decompressed into memory are read
where they are. Each name is `landed://<pass id>/<object index>`: DuckDB's
`parse_filename(filename, true)` gives the index back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import duckdb
from fsspec import AbstractFileSystem
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

PROTOCOL = "landed"


class LandedFiles(MemoryFileSystem):
    """Plain bytes by name, for DuckDB to read."""

    protocol: ClassVar[tuple[str, ...]] = (PROTOCOL,)  # type: ignore[misc]
    # a new instance each time: fsspec hands out one cached instance per class otherwise,
    # and a pass's end would clear another pass's files
    cachable = False
    # fsspec's memory filesystem strips only "memory://"; the generic one strips ours
    _strip_protocol = classmethod(AbstractFileSystem._strip_protocol.__func__)  # type: ignore[attr-defined]

    def __init__(self) -> None:
        super().__init__(global_store=False)
        self.folder = uuid.uuid4().hex

    def add(self, index: int, data: bytes) -> str:
        """Hold `data` (not copied) as the file of object `index`; its name for DuckDB."""
        name = f"{PROTOCOL}://{self.folder}/{index}"
        self.store[self._strip_protocol(name)] = _Held(name, data)
        return name

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        # fsspec's looks for a folder of that name first, scanning every stored name, and
        # DuckDB asks once per file: O(files²) a pass. Every name here is a file.
        name = self._strip_protocol(path)
        stored = self.store.get(name)
        if stored is None:
            return super().info(path, **kwargs)
        return {"name": name, "size": stored.size, "type": "file", "created": stored.created}

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> MemoryFile:
        # fsspec hands every open the one stored handle; DuckDB may read a file from
        # several threads, so each open gets a handle of its own over the same bytes
        if mode != "rb":
            raise PermissionError(f"{path}: landed files are read-only")
        return _Held(path, self.store[self._strip_protocol(path)].data)


class _Held(MemoryFile):
    """A handle over bytes held as they are. A BytesIO shares the bytes it starts from
    until it is written to or its buffer exported, which fsspec's `size`
    (`getbuffer().nbytes`) did: a copy of the whole object each time DuckDB asked."""

    def __init__(self, path: str, data: bytes) -> None:
        super().__init__(None, path, data)
        self.data = data

    @property
    def size(self) -> int:
        return len(self.data)


@contextmanager
def registered(con: duckdb.DuckDBPyConnection) -> Iterator[LandedFiles]:
    """A LandedFiles readable by `con` until the block ends (then its bytes can go)."""
    files = LandedFiles()
    con.register_filesystem(files)
    try:
        yield files
    finally:
        con.unregister_filesystem(PROTOCOL)
        files.store.clear()
