"""`make test` runs the suite on pytest-xdist workers (-n): the IAM policy check
(tests/aws_calls.py) must still fail the run when a worker recorded a call its role's
policy does not allow (a worker's own exit status never reaches the controller)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lake.settings import REPO_ROOT

A_FORBIDDEN_CALL = """
from tests.aws_calls import RECORDER, Call
from tests.iam_actions import StorageRoot, call_access


def test_the_pipeline_writes_into_landing():
    params = {"Bucket": "b", "Key": "landing/robot_telemetry/2026/x"}
    access = call_access("s3", "PutObject", params, "us-east-1", StorageRoot("b", "landing/"))
    RECORDER.calls.append(Call("code-location", "s3", "PutObject", access, "t::x"))


def test_a_neighbour():
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "two-workers"])
def test_a_forbidden_call_fails_the_run(tmp_path: Path, workers: list[str]) -> None:
    (tmp_path / "test_forbidden.py").write_text(A_FORBIDDEN_CALL)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    command = [sys.executable, "-m", "pytest", str(tmp_path), "-c", str(tmp_path / "pytest.ini")]
    command += ["-p", "tests.aws_calls", "-p", "no:cacheprovider", *workers]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "IAM policy check FAILED" in result.stdout
    assert "needs s3:PutObject on arn:aws:s3:::b/landing/robot_telemetry/2026/x" in result.stdout
