"""deploy/ checked without the services it describes: the instance settings load with
Dagster's own schemas and keep the project's, the CloudFormation template's code-location
policy is docs/security.md's, and the Dockerfile copies what exists."""

from __future__ import annotations

import re
import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.ref import InstanceRef
from dagster._core.workspace.config_schema import process_workspace_config
from dagster._serdes import ConfigurableClassData
from dagster_postgres.utils import pg_url_from_config

from lake.settings import REPO_ROOT, env_names
from tests.iam_policy import load_policies

DEPLOY = REPO_ROOT / "deploy"
PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "6432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "s3cret",
}
LAUNCHER_ENV = {
    "LAKE_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/code-location",
    "LAKE_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/execution",
    "LAKE_LOG_GROUP": "/firehose-lake/runs",
    "DAGSTER_PG_PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pg",
}
# orchestration/dagster.yaml's settings that production keeps as they are
SHARED_SETTINGS = (
    "concurrency",
    "run_coordinator",
    "run_monitoring",
    "run_retries",
    "retention",
    "sensors",
    "telemetry",
)


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def deploy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in {**PG_ENV, **LAUNCHER_ENV}.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


def _class_config(data: ConfigurableClassData) -> tuple[type, dict[str, Any]]:
    """The class a ConfigurableClassData names and its config, processed by the class's own
    schema (env sources resolved), without constructing it (EcsRunLauncher calls AWS)."""
    module = __import__(data.module_name, fromlist=[data.class_name])
    klass = getattr(module, data.class_name)
    processed = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
    assert processed.success, (data.class_name, processed.errors)
    return klass, processed.value


def test_instance_settings_load_postgres_storage_and_the_ecs_launcher(deploy_home) -> None:
    from dagster import QueuedRunCoordinator
    from dagster_aws.ecs import EcsRunLauncher

    from orchestration.postgres_storage import ProjectPostgresStorage

    ref = InstanceRef.from_dir(str(deploy_home))  # validates against the instance schema

    storage, storage_config = _class_config(ref.storage_data)
    assert storage is ProjectPostgresStorage  # dagster-postgres's, its connections kept
    assert storage_config["pool_size"] >= 1
    assert pg_url_from_config(storage_config) == (
        "postgresql+psycopg2://dagster:s3cret@db.internal:6432/dagster?sslmode=require"
    )
    launcher, launcher_config = _class_config(ref.run_launcher_data)
    assert launcher is EcsRunLauncher
    assert launcher_config["task_definition"]["task_role_arn"] == LAUNCHER_ENV["LAKE_TASK_ROLE_ARN"]
    assert launcher_config["secrets"] == [
        {"name": "DAGSTER_PG_PASSWORD", "valueFrom": LAUNCHER_ENV["DAGSTER_PG_PASSWORD_SECRET_ARN"]}
    ]
    coordinator, coordinator_config = _class_config(ref.run_coordinator_data)
    assert coordinator is QueuedRunCoordinator
    assert coordinator_config["dequeue_interval_seconds"] == 1
    for data in (ref.event_storage_data, ref.run_storage_data, ref.schedule_storage_data):
        assert yaml.safe_load(data.config_yaml)["class_name"] == "ProjectPostgresStorage"


def test_storage_refuses_a_missing_database_setting(deploy_home, monkeypatch) -> None:
    """An unset variable stops the instance from loading, never a default database."""
    from orchestration.postgres_storage import ProjectPostgresStorage

    monkeypatch.delenv("DAGSTER_PG_HOST")
    data = InstanceRef.from_dir(str(deploy_home)).storage_data
    schema = resolve_to_config_type(ProjectPostgresStorage.config_type())
    processed = process_config(schema, data.config_dict)
    assert not processed.success
    assert "DAGSTER_PG_HOST" in str(processed.errors)


def test_production_keeps_the_projects_pools_queue_retries_and_retention() -> None:
    production = _yaml(DEPLOY / "dagster.yaml")
    project = _yaml(REPO_ROOT / "orchestration" / "dagster.yaml")
    for setting in SHARED_SETTINGS:
        assert production.get(setting) == project[setting], setting


def test_run_tasks_get_only_known_variables() -> None:
    """The launcher refuses every run when a listed variable is unset: no typos."""
    launcher = _yaml(DEPLOY / "dagster.yaml")["run_launcher"]["config"]
    known = {*env_names(), *PG_ENV, "AWS_REGION"}
    listed = [entry.split("=", 1)[0] for entry in launcher["env_vars"]]
    assert set(listed) <= known, set(listed) - known
    assert {"LANDING_URI", "LAKE_URI"} <= set(listed)
    assert "DAGSTER_PG_PASSWORD" not in listed  # an ECS secret, never a plain variable


def test_workspace_reaches_the_code_location_over_grpc(monkeypatch) -> None:
    monkeypatch.setenv("CODE_SERVER_HOST", "code.internal")
    workspace = _yaml(DEPLOY / "workspace.yaml")
    processed = process_workspace_config(workspace)
    assert processed.success, processed.errors
    server = processed.value["load_from"][0]["grpc_server"]
    location = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert server["host"] == "code.internal"
    assert server["location_name"] == location["code_location_name"]
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    assert f"-m {location['module_name']}" in entrypoint
    assert f"--location-name {location['code_location_name']}" in entrypoint
    assert f"-p {server['port']}" in entrypoint


# CloudFormation's short tags, read as their long forms
class _CfnLoader(yaml.SafeLoader):
    pass


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    else:
        value = loader.construct_sequence(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)
TEMPLATE = DEPLOY / "aws" / "resources.yaml"
_AWS_NAMES = {"AWS::Region": "Region", "AWS::AccountId": "Account"}


def _template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


def _as_policy_text(value: Any) -> Any:
    """A template value as docs/security.md writes it: !Sub text with `${Region}` and
    `${Account}` for CloudFormation's pseudo parameters."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        for pseudo, name in _AWS_NAMES.items():
            text = text.replace(f"${{{pseudo}}}", f"${{{name}}}")
        return text
    if isinstance(value, dict):
        return {key: _as_policy_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_policy_text(item) for item in value]
    return value


def test_template_code_location_policy_is_the_security_doc() -> None:
    resources = _template()["Resources"]
    statements = resources["CodeLocationPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert _as_policy_text(statements) == load_policies()["code-location"]["Statement"]
    role = resources["CodeLocationRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Ref": "CodeLocationPolicy"}]


def _references(value: Any) -> set[str]:
    """Names a template value refers to: Ref, GetAtt and `${Name}` in Sub text."""
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            if key == "Ref":
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found |= {n.split(".")[0] for n in re.findall(r"\$\{([\w:.]+)\}", text)}
            else:
                found |= _references(item)
        return found
    if isinstance(value, list):
        return set().union(*(_references(item) for item in value)) if value else set()
    return set()


def test_template_refers_only_to_its_parameters_and_resources() -> None:
    template = _template()
    defined = {*template["Parameters"], *template["Resources"]}
    pseudo = {n for n in _references(template) if n.startswith("AWS::")}
    assert _references(template) - pseudo <= defined, _references(template) - pseudo - defined


def test_template_sends_landing_events_to_the_queue() -> None:
    resources = _template()["Resources"]
    bucket = resources["LandingBucketResource"]
    assert bucket["DependsOn"] == "LandingQueuePolicy"  # S3 checks it can send at creation
    (notification,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]}
    (grant,) = resources["LandingQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Principal"] == {"Service": "s3.amazonaws.com"}
    assert grant["Action"] == "sqs:SendMessage"
    assert grant["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:aws:s3:::${LandingBucket}"
    }
    glue = resources["GlueDatabaseResource"]["Properties"]["DatabaseInput"]
    assert glue["Name"] == {"Ref": "GlueDatabase"}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_copies_what_exists_and_installs_from_pyproject() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copies = [shlex.split(args) for op, args in instructions if op == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert (REPO_ROOT / source).exists(), source
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "pip install -e ." in runs  # the Makefile's install, without the dev extras
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("CMD", '["code-server"]') in instructions
    copied = {Path(s).parts[0] for *sources, _ in copies for s in sources}
    # every package pyproject.toml installs (the Pipes workers' `workers` too: an ECS task of
    # this image runs `python -m workers.clean`), and the files read at run time
    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {name.rstrip("*") for name in find["packages"]["find"]["include"]}
    assert packages >= {"lake", "assets", "orchestration", "workers"}
    assert packages | {"sql", "streams.yaml"} <= copied
    compiled = next(args for op, args in instructions if op == "RUN" and "compileall" in args)
    assert packages <= set(compiled.split("compileall", 1)[1].split())


def test_launcher_warns_of_a_storage_opening_a_connection_per_call(tmp_path, capsys) -> None:
    """An operator's own dagster.yaml is kept; one on dagster-postgres's own storage class
    (a connection per storage call) gets a warning, deploy/dagster.yaml's none."""
    from orchestration import launch

    home = tmp_path / "home"
    home.mkdir()
    deploy = _yaml(DEPLOY / "dagster.yaml")
    own = {**deploy, "storage": {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}}
    for settings, warned in ((own, True), (deploy, False)):
        (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
        launch.prepare_home({"DAGSTER_HOME": str(home)})
        err = capsys.readouterr().err
        assert ("`storage: postgres` opens a new PostgreSQL connection" in err) is warned, err
        assert yaml.safe_load((home / "dagster.yaml").read_text()) == settings  # kept
