"""The generated definitions (asset keys, deps, partitions, checks, jobs, sensors) change
only when someone means them to: the snapshot's diff is reviewed with the change."""

import difflib
from pathlib import Path

from orchestration.definitions import defs
from tests.dagster.definitions_snapshot import render

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
REGENERATE = (
    "python -m tests.dagster.definitions_snapshot > tests/dagster/definitions_snapshot.json"
)


def test_generated_definitions_match_the_reviewed_snapshot() -> None:
    expected, actual = SNAPSHOT.read_text(), render(defs)
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), "snapshot", "generated"
        )
    )
    assert not diff, f"the definitions changed; if intended, run `{REGENERATE}`\n{diff}"


def test_the_snapshot_names_every_stream_and_mart() -> None:
    """The snapshot itself is read from streams.yaml and sql/marts, not only from the code."""
    import yaml

    from lake.settings import REPO_ROOT

    streams = yaml.safe_load((REPO_ROOT / "streams.yaml").read_text())["streams"]
    marts = [p.stem for p in (REPO_ROOT / "sql" / "marts").glob("*.sql")]
    text = SNAPSHOT.read_text()
    for stream in streams:
        for layer in ("landing", "schema", "cleaned"):
            assert f'"{layer}/{stream}"' in text
    for mart in marts:
        assert f'"marts/{mart}"' in text
