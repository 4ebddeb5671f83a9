"""The test PostgreSQL server's setup refuses clearly where it cannot install the package."""

import pytest

from tests import postgres_server as postgres


def test_a_user_who_cannot_install_postgresql_is_told_how(monkeypatch) -> None:
    monkeypatch.setattr(postgres, "bin_dir", lambda: None)
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 1000)
    with pytest.raises(postgres.Unavailable, match="apt-get install -y postgresql"):
        postgres.ensure_installed()


@pytest.mark.parametrize(
    ("value", "fails"), [("true", True), ("1", True), ("TRUE", True), ("", False), ("0", False)]
)
def test_ci_fails_where_a_laptop_skips(value: str, fails: bool) -> None:
    assert postgres.in_ci({"CI": value}) is fails
    assert postgres.in_ci({}) is False
