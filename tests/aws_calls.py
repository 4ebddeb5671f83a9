"""A pytest plugin that records every AWS call the pipeline's own code makes during the test
session, and fails the session when docs/security.md's policy for the caller's role does
not allow one (so the documented least-privilege policy stays true).

Every botocore session made in this process registers two handlers: one before a call's
parameters are built (it sees the API parameters, and runs for Stubber-answered calls
too) and one after the call (the answer shows a 404 or an SSE-KMS object). A call is the
pipeline's when its call stack runs through the repo's lake/, assets/ or orchestration/:
the producer's if through lake/simulator/, the code location's otherwise. Calls made only
by test code are not the pipeline's; neither are calls that reach the storage adapter
(lake/storage.py) straight from a test, since the test chose their keys. Runs in other
processes (the `dagster dev` and CLI tests) are not seen.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import botocore.session
import pytest

from tests.iam_actions import CallAccess, StorageRoot, call_access, response_access
from tests.iam_policy import is_allowed, load_policies

REPO = Path(__file__).resolve().parents[1]
_PIPELINE = ("lake/", "assets/", "orchestration/")
_PRODUCER = "lake/simulator/"
_ADAPTER = ("lake/storage.py", "lake/s3_retry.py")  # keys and prefixes come from the caller
CODE_LOCATION, PRODUCER = "code-location", "producer"
_CONTEXT_KEY = "iam_call"


@dataclass
class Call:
    role: str
    service: str
    operation: str
    access: CallAccess
    test: str

    def __str__(self) -> str:
        return f"{self.role}: {self.service}.{self.operation} in {self.test}"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.adapter_calls = 0  # the storage adapter called by a test: seen, not checked
        self.test = "(session setup)"
        self.moto_tests = 0

    # botocore handlers -------------------------------------------------------------
    def before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        role, root = _caller(sys._getframe(1))
        if role is None:
            return
        if role == "adapter":
            self.adapter_calls += 1
            return
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        region = context.get("client_region") or "us-east-1"
        access = call_access(service, model.name, params, region, root)
        call = Call(role, service, model.name, access, self.test)
        context[_CONTEXT_KEY] = (call, params)
        self.calls.append(call)

    def after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if _CONTEXT_KEY not in context:
            return
        call, params = context[_CONTEXT_KEY]
        region = context.get("client_region") or "us-east-1"
        response_access(call.service, call.operation, params, parsed or {}, region, call.access)

    def register(self, session: botocore.session.Session) -> None:
        session.register("before-parameter-build", self.before, unique_id="iam-recorder-before")
        session.register("after-call", self.after, unique_id="iam-recorder-after")

    # the check ---------------------------------------------------------------------
    def violations(self, policies: dict[str, dict[str, Any]]) -> list[str]:
        found: dict[str, None] = {}  # ordered and deduplicated
        for call in self.calls:
            policy = policies.get(call.role)
            for access in call.access.accesses:
                if policy is None or not is_allowed(policy, access, call.access.bindings):
                    bound = ", ".join(f"{k}={v}" for k, v in sorted(call.access.bindings.items()))
                    found[f"{call}\n    needs {access}\n    with {bound}"] = None
        return list(found)

    def actions_per_role(self) -> Counter[tuple[str, str]]:
        return Counter((c.role, a.action) for c in self.calls for a in c.access.accesses)


def _caller(frame: FrameType | None) -> tuple[str | None, StorageRoot | None]:
    """(role, storage root) of a call from its stack; role None: not the pipeline's."""
    pipeline: str | None = None
    adapter = False
    root: StorageRoot | None = None
    while frame is not None:
        rel = _repo_path(frame.f_code.co_filename)
        if rel is not None:
            if rel.startswith(_PRODUCER):
                pipeline = PRODUCER
            elif rel in _ADAPTER:
                adapter = True
                root = root or _storage_root(frame)
            elif rel.startswith(_PIPELINE) and pipeline is None:
                pipeline = CODE_LOCATION
        frame = frame.f_back
    if pipeline is None:
        return ("adapter" if adapter else None), root
    return pipeline, root


@functools.lru_cache(maxsize=4096)
def _repo_path(filename: str) -> str | None:
    try:
        return Path(filename).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return None


def _storage_root(frame: FrameType) -> StorageRoot | None:
    storage = frame.f_locals.get("self")
    if storage is None or not hasattr(storage, "bucket") or not hasattr(storage, "prefix"):
        return None
    return StorageRoot(storage.bucket, storage.prefix, getattr(storage, "iam_kind", None))


# pytest wiring -------------------------------------------------------------------------
RECORDER = Recorder()
_real_init = botocore.session.Session.__init__


def _init_and_register(self: botocore.session.Session, *args: Any, **kwargs: Any) -> None:
    _real_init(self, *args, **kwargs)
    RECORDER.register(self)


def install() -> None:
    """Every botocore session from now on records (boto3's default session included)."""
    botocore.session.Session.__init__ = _init_and_register  # type: ignore[method-assign]
    import boto3

    if boto3.DEFAULT_SESSION is not None:
        RECORDER.register(boto3.DEFAULT_SESSION._session)
    _tag_lake_resource()


def _tag_lake_resource() -> None:
    """Storages the Dagster resource opens are known to be the landing zone or the lake;
    others (opened by tests) are told apart by their keys (tests/iam_actions.py). Without
    Dagster (the core's unit tests) there is no resource to tag."""
    try:
        from orchestration.resources import LakeResource
    except ImportError:
        return

    def tagged(method: Any, kind: str) -> Any:
        def open_and_tag(self: LakeResource) -> Any:
            storage = method(self)
            if hasattr(storage, "bucket"):
                storage.iam_kind = kind
            return storage

        return open_and_tag

    LakeResource.landing = tagged(LakeResource.landing, "landing")  # type: ignore[method-assign]
    LakeResource.lake = tagged(LakeResource.lake, "lake")  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    RECORDER.test = item.nodeid  # fixtures' calls count as the test's
    if "aws_env" in getattr(item, "fixturenames", ()):
        RECORDER.moto_tests += 1
    try:
        return (yield)
    finally:
        RECORDER.test = "(between tests)"


_problems: list[str] = []
_totals: dict[str, Any] = {}  # every process's tally, merged
_SHOWN = 40
_TALLY = "aws_calls_tally"
_worker_tallies: list[dict[str, Any]] = []  # pytest-xdist: each worker records its own calls


def _tally() -> dict[str, Any]:
    """This process's record in plain values, the form an xdist worker sends its controller."""
    return {
        "moto_tests": RECORDER.moto_tests,
        "calls": len(RECORDER.calls),
        "adapter_calls": RECORDER.adapter_calls,
        "violations": RECORDER.violations(load_policies()) if RECORDER.calls else [],
        "actions": [[role, action, n] for (role, action), n in RECORDER.actions_per_role().items()],
    }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The controller of `pytest -n`: keep a finished worker's tally (a worker's own exit
    status does not reach the controller, so the check is made here on all of them)."""
    tally = getattr(node, "workeroutput", {}).get(_TALLY)
    if tally is not None:
        _worker_tallies.append(tally)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its controller judges
        workeroutput[_TALLY] = _tally()
        return
    _totals.update(_merge([_tally(), *_worker_tallies]))
    _problems[:] = problems(_totals)
    if _problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _merge(tallies: list[dict[str, Any]]) -> dict[str, Any]:
    actions: Counter[tuple[str, str]] = Counter()
    for tally in tallies:
        actions.update({(role, action): n for role, action, n in tally["actions"]})
    return {
        **{k: sum(t[k] for t in tallies) for k in ("moto_tests", "calls", "adapter_calls")},
        "violations": list(dict.fromkeys(v for t in tallies for v in t["violations"])),
        "actions": actions,
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _problems:
        terminalreporter.section("IAM policy check FAILED (docs/security.md)", red=True)
        for problem in _problems[:_SHOWN]:
            terminalreporter.line(problem)
        if len(_problems) > _SHOWN:
            terminalreporter.line(f"... and {len(_problems) - _SHOWN} more")
    elif _totals.get("calls"):
        terminalreporter.section("IAM policy check (docs/security.md)", green=True)
        terminalreporter.line(
            f"{_totals['calls']} AWS calls of the pipeline, all allowed; (role, action): calls"
        )
        for (role, action), n in sorted(_totals["actions"].items()):
            terminalreporter.line(f"  {role:14} {action:40} {n}")


def problems(totals: dict[str, Any]) -> list[str]:
    """What fails the session: a call its role's policy does not allow, or a run on moto
    that recorded no call at all (the check would prove nothing)."""
    found: list[str] = []
    if totals["moto_tests"] and not totals["calls"] and not totals["adapter_calls"]:
        found.append(
            f"{totals['moto_tests']} test(s) ran against moto but no AWS call of the pipeline "
            "was recorded: the recorder is not working, so the IAM check would prove nothing"
        )
    return found + totals["violations"]
