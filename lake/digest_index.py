"""Which keys, in which version, a large state document holds, without parsing it: two
sorted arrays of 64-bit digests, of each entry's key and of its (key, ETag, size), kept
in the document's header line (lake.crawl_record, lake.hour_totals).

A digest found may be a clash (about 1 in 10^15 for 10,000 keys): callers treat "holds"
as a reason to read the entry, or accept that a clashing object is taken as recorded in
its version until the next whole crawl or listing."""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class DigestIndex:
    keys: array = field(default_factory=lambda: array("Q"))
    versions: array = field(default_factory=lambda: array("Q"))

    @classmethod
    def of(cls, entries: Iterable[tuple[str, str, int]]) -> DigestIndex:
        """The index of (key, ETag, size) entries."""
        listed = list(entries)
        return cls(
            array("Q", sorted(_digest(k) for k, _, _ in listed)),
            array("Q", sorted(version_digest(*e) for e in listed)),
        )

    def holds(self, key: str, etag: str, size: int) -> bool:
        return _contains(self.versions, version_digest(key, etag, size))

    def may_hold_key(self, key: str) -> bool:
        """False when no entry has `key` (True may be a clash)."""
        return _contains(self.keys, _digest(key))

    def added(self, entries: Iterable[tuple[str, str, int]]) -> DigestIndex:
        """A copy with new keys' entries added (O(added) inserts into the sorted arrays)."""
        keys, versions = array("Q", self.keys), array("Q", self.versions)
        for key, etag, size in entries:
            bisect.insort(keys, _digest(key))
            bisect.insort(versions, version_digest(key, etag, size))
        return DigestIndex(keys, versions)

    def packed(self) -> dict[str, str]:
        return {"keys": _packed(self.keys), "versions": _packed(self.versions)}

    @classmethod
    def unpacked(cls, header: dict) -> DigestIndex:
        return cls(_unpacked(header["keys"]), _unpacked(header["versions"]))


def _digest(text: str) -> int:
    data = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def version_digest(key: str, etag: str, size: int) -> int:
    return _digest(json.dumps([key, etag, size]))


def _contains(digests: array, value: int) -> bool:
    i = bisect.bisect_left(digests, value)
    return i < len(digests) and digests[i] == value


def _packed(digests: array) -> str:
    """Little-endian 8-byte digests, base64."""
    if sys.byteorder == "big":
        digests = array("Q", digests)
        digests.byteswap()
    return base64.b64encode(digests.tobytes()).decode()


def _unpacked(text: str) -> array:
    digests = array("Q")
    digests.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        digests.byteswap()
    return digests
