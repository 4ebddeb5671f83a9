"""streams.yaml's owners and freshness settings, and the entry's version hash."""

import pytest

from lake.stream_operations import Operations, OperationsError, entry_version, parse_operations


def test_an_entry_without_settings_gets_the_documented_defaults() -> None:
    assert parse_operations({}, "s") == Operations(("team:data-platform",), 60, 30)


def test_warn_defaults_to_half_the_fail_window() -> None:
    ops = parse_operations({"owners": "ops@farm.example", "freshness": {"fail_minutes": 240}}, "s")
    assert ops == Operations(("ops@farm.example",), 240, 120)


@pytest.mark.parametrize(
    "body",
    [
        {"owners": ["data platform"]},  # neither team:<name> nor an e-mail address
        {"owners": []},
        {"freshness": {"fail_minutes": 0}},
        {"freshness": {"fail_minutes": 30, "warn_minutes": 30}},
        {"freshness": {"fail_after": 30}},
    ],
)
def test_bad_settings_are_refused_with_the_stream_named(body: dict) -> None:
    with pytest.raises(OperationsError, match="stream 'x'"):
        parse_operations(body, "stream 'x'")


def test_the_entry_version_ignores_key_order_and_sees_any_change() -> None:
    entry = {"format": "ndjson", "pii": {"user.email": "hash"}, "allowed_lateness_hours": 24}
    reordered = dict(reversed(entry.items()))
    assert entry_version(entry) == entry_version(reordered)
    assert entry_version(entry) != entry_version(entry | {"allowed_lateness_hours": 25})
    assert entry_version(entry) != entry_version(entry | {"pii": {"user.email": "redact"}})
