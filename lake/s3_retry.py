"""GET bodies that survive a connection cut mid-stream.

botocore retries a GET that fails before its body starts (5xx, throttling, refused
connections), but a body cut off while it is read (IncompleteReadError,
ResponseStreamingError, a read timeout) is the caller's to retry. `ResumingBody` reads
an object (or a byte range of it) and, on such an error, issues the GET again from the
first byte it has not returned yet (`Range`), pinned to the object's ETag (`IfMatch`) so
the bytes always come from one version: an object replaced meanwhile is an error, not a
mix. A body gets at most `S3_READ_ATTEMPTS` GETs in all (default 5), with exponential
backoff between them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

from lake.settings import DEFAULTS

log = logging.getLogger(__name__)

BACKOFF_S = 0.2  # then 0.4, 0.8, ... capped at MAX_BACKOFF_S
MAX_BACKOFF_S = 5.0
TRANSIENT_READ_ERRORS: tuple[type[BaseException], ...] = (
    IncompleteReadError,
    ResponseStreamingError,
    ReadTimeoutError,
    ConnectionClosedError,
    EndpointConnectionError,
    ProtocolError,
    Urllib3ReadTimeout,
    ConnectionError,  # builtin: reset, aborted, broken pipe
)

Get = Callable[..., dict[str, Any]]  # client.get_object bound to Bucket and Key


class ReadFailed(IOError):
    """A GET body kept breaking off after every attempt."""


class ResumingBody(io.RawIOBase):
    """A read-only stream over `get` (bytes `start`..`end`, end inclusive, None = to
    the end of the object) that resumes where a broken read stopped."""

    def __init__(
        self,
        get: Get,
        start: int = 0,
        end: int | None = None,
        attempts: int = DEFAULTS.s3_read_attempts,
        sleep: Callable[[float], None] = time.sleep,
        etag: str | None = None,
    ) -> None:
        super().__init__()
        self._get, self._pos, self._end = get, start, end
        self._attempts, self._sleep = attempts, sleep
        self._etag = etag  # None: pinned to the version the first GET returns
        self._body: Any = None
        self._done = end is not None and end < start
        self.retries = 0  # GETs issued again after a broken read, at most attempts - 1
        if not self._done:
            self._open()  # the first GET now: a missing object fails here, not on read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done or len(buffer) == 0:
            return 0
        while True:
            try:
                if self._body is None:
                    self._open()
                chunk = self._body.read(len(buffer))
                break
            except TRANSIENT_READ_ERRORS as exc:
                self._drop_body()
                if self.retries + 1 >= self._attempts:
                    raise ReadFailed(f"GET body broke off {self.retries + 1} times: {exc}") from exc
                log.warning("GET body broke off at byte %d (%s); resuming", self._pos, exc)
                self._sleep(min(BACKOFF_S * 2**self.retries, MAX_BACKOFF_S))
                self.retries += 1
        if not chunk:
            self._done = True
            self._drop_body()
            return 0
        n = len(chunk)
        buffer[:n] = chunk
        self._pos += n
        return n

    def readall(self) -> bytes:
        """Everything left, read a MiB at a time (RawIOBase's default reads 8 KiB)."""
        parts, buffer = [], bytearray(1 << 20)
        while n := self.readinto(buffer):
            parts.append(bytes(buffer[:n]))
        return b"".join(parts)

    def _open(self) -> None:
        extra: dict[str, Any] = {}
        if self._pos > 0 or self._end is not None:
            extra["Range"] = f"bytes={self._pos}-{'' if self._end is None else self._end}"
        if self._etag is not None:
            extra["IfMatch"] = self._etag
        response = self._get(**extra)
        self._etag = self._etag or response.get("ETag")
        self._body = response["Body"]

    @property
    def etag(self) -> str | None:
        """The ETag of the version being read (every resumed GET is pinned to it)."""
        return self._etag

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close too
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


def resuming_reader(
    get: Get,
    start: int = 0,
    end: int | None = None,
    attempts: int = DEFAULTS.s3_read_attempts,
    etag: str | None = None,
) -> io.BufferedReader:
    """A buffered stream over a ResumingBody (what S3Storage.open returns)."""
    body = ResumingBody(get, start, end, attempts, etag=etag)
    return io.BufferedReader(body, buffer_size=1 << 20)
