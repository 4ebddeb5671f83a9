"""An object's bytes for sampling, inflated as they stream when they start with gzip."""

from __future__ import annotations

import zlib
from typing import BinaryIO

from lake.framings.base import GZIP_MAGIC

CHUNK = 64 * 1024
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


class SampleSource:
    """An object's bytes, inflated on the fly when they start with the gzip magic."""

    def __init__(self, stream: BinaryIO, head: bytes) -> None:
        self.compression = "gzip" if head.startswith(GZIP_MAGIC) else "none"
        self.raw_bytes_read = len(head)
        self.error: str | None = None  # why a gzip stream ended early
        self._stream = stream
        self._input = head
        self._inflater = zlib.decompressobj(GZIP_WBITS) if self.compression == "gzip" else None
        self._taken = bytearray()
        self._ahead = b""
        self._ended = False

    @property
    def consumed(self) -> int:
        """Stored bytes that went into what was decoded so far (read-ahead excluded)."""
        return self.raw_bytes_read - len(self._input)

    def take(self, n: int) -> bytes:
        """The object's first n uncompressed bytes (fewer when it is shorter)."""
        while len(self._taken) < n and (data := self._read(n - len(self._taken))):
            self._taken += data
        return bytes(self._taken)

    def at_end(self) -> bool:
        """Whether the bytes taken so far are all there is."""
        if not self._ahead:
            self._ahead = self._read(1)
        return not self._ahead

    def _read(self, n: int) -> bytes:
        if self._ahead:
            data, self._ahead = self._ahead[:n], self._ahead[n:]
            return data
        while not self._ended:
            if not self._input and not self._refill():
                self._finish()
            elif data := self._decompress(n):
                return data
        return b""

    def _refill(self) -> bool:
        self._input = self._stream.read(CHUNK)
        self.raw_bytes_read += len(self._input)
        return bool(self._input)

    def _decompress(self, n: int) -> bytes:
        if self._inflater is None:
            data, self._input = self._input[:n], self._input[n:]
            return data
        if self._inflater.eof:  # gzip allows several members back to back
            self._inflater = zlib.decompressobj(GZIP_WBITS)
        try:
            # Bounded output: a small, highly compressed input cannot balloon in memory.
            data = self._inflater.decompress(self._input, n)
        except zlib.error as exc:
            self.error = f"the gzip stream is corrupt ({exc})"
            self._ended = True
            return b""
        self._input = self._inflater.unconsumed_tail or self._inflater.unused_data
        return data

    def _finish(self) -> None:
        self._ended = True
        if self._inflater is not None and not self._inflater.eof:
            self.error = "the gzip stream is truncated"
