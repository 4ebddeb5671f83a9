"""The framing of a stream, from its declared `format` (streams.yaml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lake.framings.base import Framing
from lake.framings.concatenated_json import ConcatenatedJson
from lake.framings.ndjson import NdJson
from lake.framings.records_wrapped import RecordsWrapped

if TYPE_CHECKING:
    from lake.streams import StreamSpec

# The framings a stream may declare, by `format` (lake.streams.FORMATS names the same:
# it cannot import this module, whose framings need lake.record_limits, which needs it).
DECLARED: dict[str, type[Framing]] = {f.name: f for f in (ConcatenatedJson, NdJson, RecordsWrapped)}


def framing_of(spec: StreamSpec) -> Framing:
    """The framing the stream declares (lake.streams validated its name)."""
    return DECLARED[spec.format].for_stream(spec)
