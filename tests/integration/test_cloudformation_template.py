"""deploy/aws/resources.yaml checked for real: cfn-lint (AWS's resource schemas and rules)
finds no error in it, and the stack creates on moto's CloudFormation over HTTP with the
queue, buckets, topic, log group and roles it declares, their references resolved.

moto 5.2.5's CloudFormation does not model AWS::SQS::QueuePolicy and AWS::Glue::Database
(it skips them), nor a bucket's NotificationConfiguration and PublicAccessBlockConfiguration
or a role's ManagedPolicyArns (it ignores them): those are checked by cfn-lint only.
"""

from __future__ import annotations

import ast
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode

from lake.settings import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "aws" / "resources.yaml"
PG_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dagster-pg"
NOT_MODELED_BY_MOTO = {"AWS::SQS::QueuePolicy", "AWS::Glue::Database"}


def test_cfn_lint_finds_no_error_or_warning() -> None:
    matches = lint_file(Path(TEMPLATE))
    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches] == []


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    """Clients of the session's moto server. Not `aws_env`: these are the test's own calls,
    not the pipeline's (tests/aws_calls.py holds a moto test without any against it)."""
    return lambda service: boto3.client(
        service,
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stack(aws: Callable[[str], Any]) -> dict:
    """The template created as a stack with fresh names; its parameters and outputs."""
    suffix = uuid.uuid4().hex[:12]
    parameters = {
        "LandingBucket": f"landing-{suffix}",
        "LakeBucket": f"lake-{suffix}",
        "QueueName": f"landing-{suffix}",
        "TopicName": f"alerts-{suffix}",
        "DagsterPgPasswordSecret": PG_SECRET,
    }
    cloudformation = aws("cloudformation")
    name = f"firehose-lake-{suffix}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    return {"name": name, "parameters": parameters, "outputs": outputs}


def _role(iam: Any, arn: str) -> dict:
    return iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]


def _document(value: dict | str) -> dict:
    """A policy document as moto answers it: parsed, URL-encoded JSON, or (a policy its
    CloudFormation created) the text of a Python dict."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(unquote(value))
    except ValueError:
        return ast.literal_eval(value)


def _trusts_ecs_tasks(role: dict) -> bool:
    document = _document(role["AssumeRolePolicyDocument"])
    return [s["Principal"] for s in document["Statement"]] == [
        {"Service": "ecs-tasks.amazonaws.com"}
    ]


def _inline_policy(iam: Any, role: dict, name: str) -> dict:
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)
    return _document(policy["PolicyDocument"])


@pytest.mark.s3
@pytest.mark.filterwarnings("ignore:Tried to parse AWS::")  # moto, of each type it skips
def test_the_stack_creates_the_queue_buckets_topic_log_group_and_roles(
    aws: Callable[[str], Any], stack: dict
) -> None:
    parameters, outputs = stack["parameters"], stack["outputs"]
    template, errors = decode(TEMPLATE)
    assert not errors
    declared = {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] not in NOT_MODELED_BY_MOTO
    }
    summaries = aws("cloudformation").list_stack_resources(StackName=stack["name"])
    created = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in summaries["StackResourceSummaries"]
        if r["PhysicalResourceId"] and r["ResourceStatus"] == "CREATE_COMPLETE"
    }
    assert set(created) == declared

    queue = aws("sqs").get_queue_url(QueueName=parameters["QueueName"])["QueueUrl"]
    attributes = aws("sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["MessageRetentionPeriod", "VisibilityTimeout"]
    )["Attributes"]
    assert attributes == {"MessageRetentionPeriod": "1209600", "VisibilityTimeout": "120"}
    assert outputs["LandingQueueUrl"].endswith(f"/{parameters['QueueName']}")

    s3 = aws("s3")
    for bucket in (parameters["LandingBucket"], parameters["LakeBucket"]):
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    topics = [t["TopicArn"] for t in aws("sns").list_topics()["Topics"]]
    assert outputs["AlertsTopicArn"] in topics
    assert outputs["AlertsTopicArn"].endswith(f":{parameters['TopicName']}")
    groups = aws("logs").describe_log_groups(logGroupNamePrefix="/firehose-lake/runs")
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups["logGroups"]] == [
        (outputs["RunLogGroupName"], 30)
    ]

    iam = aws("iam")
    code_location = _role(iam, outputs["CodeLocationRoleArn"])
    execution = _role(iam, outputs["TaskExecutionRoleArn"])
    launcher = _role(iam, outputs["DagsterLauncherRoleArn"])
    assert all(_trusts_ecs_tasks(r) for r in (code_location, execution, launcher))
    policy = created["CodeLocationPolicy"]
    version = iam.get_policy(PolicyArn=policy)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy, VersionId=version)
    text = json.dumps(document["PolicyVersion"]["Document"])
    assert f"arn:aws:s3:::{parameters['LandingBucket']}/landing/*" in unquote(text)

    secret = _inline_policy(iam, execution, "dagster-postgres-password")["Statement"]
    assert [s["Resource"] for s in secret] == [PG_SECRET]
    launcher_statements = _inline_policy(iam, launcher, "ecs-run-launcher")["Statement"]
    passed = next(s["Resource"] for s in launcher_statements if s["Sid"] == "PassRunRoles")
    assert sorted(passed) == sorted([code_location["Arn"], execution["Arn"]])
