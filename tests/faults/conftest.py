"""Fixtures of the fault-injection suite (the kit itself: fault_kit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fault_kit import FaultProxy


@pytest.fixture
def proxy(moto_endpoint: str, aws_env: str) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_endpoint)
    yield p
    p.close()
