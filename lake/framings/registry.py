"""The framing of a stream, from its declared `format` (streams.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lake.framings.base import Framing
from lake.framings.concatenated_json import ConcatenatedJson
from lake.framings.ndjson import NdJson
from lake.framings.records_wrapped import RecordsWrapped

if TYPE_CHECKING:
    from lake.streams import StreamSpec

# streams.yaml `format` -> the stream's framing (lake.streams.FORMATS names the same)
DECLARED: dict[str, Callable[[StreamSpec], Framing]] = {
    ConcatenatedJson.name: lambda spec: ConcatenatedJson(),
    NdJson.name: lambda spec: NdJson(),
    RecordsWrapped.name: lambda spec: RecordsWrapped(spec.records_key or "Records"),
}


def framing_of(spec: StreamSpec) -> Framing:
    """The framing the stream declares (lake.streams validated its name)."""
    return DECLARED[spec.format](spec)
