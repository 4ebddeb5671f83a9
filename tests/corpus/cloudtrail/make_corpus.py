"""Write the CloudTrail corpus files of this folder (run once; the JSON files are committed).

Each builder follows a record shape of AWS's documentation (see README.md); names, ids and
addresses are the documentation's example ranges (111122223333, 192.0.2.0/24, 2001:db8::).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ACCOUNT, OTHER = "111122223333", "444455556666"
# RunInstances of one instance of one image
ONE_AMI = {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]}
TLS = {
    "tlsVersion": "TLSv1.3",
    "cipherSuite": "TLS_AES_128_GCM_SHA256",
    "clientProvidedHostHeader": "",
}
_n = 0


def _ids() -> tuple[str, str]:
    global _n
    _n += 1
    return f"ct{_n:06d}-0a1b-4c2d-9e3f-5a6b7c8d9e0f", f"REQ{_n:05d}EXAMPLEAB12CD"


def iam_user(name: str, key: str = "AKIAIOSFODNN7EXAMPLE") -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDACKCEVSQ6C2EXAMPLE",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
        "accountId": ACCOUNT,
        "accessKeyId": key,
        "userName": name,
    }


def assumed_role(role: str, session: str, created: str, mfa: str = "false") -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID1234:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEKEYID1234",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID1234",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": created, "mfaAuthenticated": mfa},
        },
    }


def federated_user(name: str, created: str) -> dict[str, Any]:
    return {
        "type": "FederatedUser",
        "principalId": f"{ACCOUNT}:{name}",
        "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/{name}",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEFEDKEY123",
        "sessionContext": {
            "sessionIssuer": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEBROKER123",
                "arn": f"arn:aws:iam::{ACCOUNT}:user/token-broker",
                "accountId": ACCOUNT,
                "userName": "token-broker",
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
        },
    }


def root(key: str = "") -> dict[str, Any]:
    ident = {
        "type": "Root",
        "principalId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:root",
        "accountId": ACCOUNT,
    }
    if key is not None:
        ident["accessKeyId"] = key
    return ident


def aws_service(service: str) -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": service}


def event(
    t: str,
    who: dict[str, Any],
    source: str,
    name: str,
    ip: str,
    *,
    region: str = "us-east-1",
    agent: str = "aws-cli/2.22.0 Python/3.12.6 Linux/6.1 exe/x86_64.amzn.2023",
    request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    read_only: bool = False,
    error: tuple[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One record in the field order of "CloudTrail record contents"."""
    event_id, request_id = _ids()
    out: dict[str, Any] = {
        "eventVersion": "1.10",
        "userIdentity": who,
        "eventTime": t,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
    }
    if error:
        out["errorCode"], out["errorMessage"] = error
    out["requestParameters"] = request
    out["responseElements"] = response
    out.update({k: v for k, v in extra.items() if k in ("additionalEventData",)})
    out["requestID"] = request_id
    out["eventID"] = event_id
    out["readOnly"] = read_only
    out.update({k: v for k, v in extra.items() if k not in ("additionalEventData",)})
    out.setdefault("eventType", "AwsApiCall")
    out.setdefault("managementEvent", True)
    out["recipientAccountId"] = ACCOUNT
    out.setdefault("eventCategory", "Management")
    if out["eventType"] == "AwsApiCall":
        out.setdefault("tlsDetails", {**TLS, "clientProvidedHostHeader": _host(source, region)})
    return out


def _host(source: str, region: str) -> str:
    service = source.split(".")[0]
    return (
        f"{service}.amazonaws.com"
        if service in ("iam", "sts")
        else f"{service}.{region}.amazonaws.com"
    )


BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
LOGIN_TO = "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB_us-east-1_example"


def console_login(
    t: str, who: dict[str, Any], ip: str, ok: bool, mfa: str = "No"
) -> dict[str, Any]:
    """Console sign-in events (AWS Management Console sign-in events page)."""
    extra: dict[str, Any] = {
        "additionalEventData": {"LoginTo": LOGIN_TO, "MobileVersion": "No", "MFAUsed": mfa},
        "eventType": "AwsConsoleSignIn",
    }
    rec = event(
        t,
        who,
        "signin.amazonaws.com",
        "ConsoleLogin",
        ip,
        agent=BROWSER,
        response={"ConsoleLogin": "Success" if ok else "Failure"},
        error=None if ok else None,
        **extra,
    )
    if not ok:  # a failure has errorMessage and no errorCode
        rec = {**rec}
        items = list(rec.items())
        i = [k for k, _ in items].index("requestParameters")
        items.insert(i, ("errorMessage", "Failed authentication"))
        rec = dict(items)
    rec["tlsDetails"] = {**TLS, "clientProvidedHostHeader": "signin.aws.amazon.com"}
    return rec


def failed_user(name: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDACKCEVSQ6C2EXAMPLE",
        "accountId": ACCOUNT,
        "accessKeyId": "",
        "userName": name,
    }


def role_doc(principal: str) -> str:
    return (
        "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow"
        f"%22%2C%22Principal%22%3A%7B%22Service%22%3A%22{principal}%22%7D%2C%22Action%22%3A"
        "%22sts%3AAssumeRole%22%7D%5D%7D"
    )


def s3_transfer(bytes_in: int, bytes_out: int, id2: str, sse: str = "") -> dict[str, Any]:
    """additionalEventData of an S3 data or bucket call."""
    data: dict[str, Any] = {
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": bytes_in,
    }
    if sse:
        data["SSEApplied"] = sse
    return data | {
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": id2,
        "bytesTransferredOut": bytes_out,
    }


def s3_resources(
    bucket: str, key: str, account: str = ACCOUNT, account_key: str = "accountId"
) -> list[dict[str, Any]]:
    """The resources of an S3 object call: the object, then its bucket."""
    return [
        {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
        {account_key: account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
    ]


def lambda_function(
    name: str,
    role: str,
    handler: str,
    *,
    size: int,
    timeout: int,
    memory: int,
    modified: str,
    version: str,
) -> dict[str, Any]:
    """responseElements of Lambda's CreateFunction: the new function's configuration."""
    return {
        "functionName": name,
        "functionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}",
        "runtime": "python3.12",
        "role": f"arn:aws:iam::{ACCOUNT}:role/{role}",
        "handler": handler,
        "codeSize": size,
        "timeout": timeout,
        "memorySize": memory,
        "lastModified": modified,
        "version": version,
        "environment": {},
        "tracingConfig": {"mode": "PassThrough"},
        "state": "Pending",
        "architectures": ["x86_64"],
        "ephemeralStorage": {"size": 512},
    }


def batches() -> dict[str, list[dict[str, Any]]]:
    """Objects by Firehose write time (YYYY-MM-DDTHH-MM-SS): 8 objects in 4 arrival hours."""
    alice = iam_user("Alice")
    admin = assumed_role("Admin", "alice-console", "2026-11-21T21:58:40Z", mfa="true")
    deployer = assumed_role("GitHubDeploy", "gha-run-8812", "2026-11-21T22:10:02Z")
    lambda_role = assumed_role("lambda-ex", "resize-images", "2026-11-22T00:20:11Z")
    bob_fed = federated_user("Bob", "2026-11-21T23:30:00Z")
    ssm_role = assumed_role(
        "AmazonSSMRoleForInstancesQuickSetup", "i-0abcd1234efgh5678", "2026-11-22T01:00:00Z"
    )
    brute_ip, ct_ip, home_ip = "203.0.113.57", "198.51.100.10", "192.0.2.44"
    v6 = "2001:db8:85a3::8a2e:370:7334"
    out: dict[str, list[dict[str, Any]]] = {}

    # arrival 22:00-23:00, events of 2026-11-21
    out["2026-11-21T22-06-30"] = [
        console_login("2026-11-21T22:00:41Z", alice, home_ip, ok=True, mfa="Yes"),
        console_login("2026-11-21T22:01:05Z", failed_user("Carol"), brute_ip, ok=False),
        console_login("2026-11-21T22:01:17Z", failed_user("Carol"), brute_ip, ok=False),
        console_login(
            "2026-11-21T22:01:29Z",
            failed_user("HIDDEN_DUE_TO_SECURITY_REASONS"),
            brute_ip,
            ok=False,
        ),
        event(
            "2026-11-21T22:02:10Z",
            alice,
            "iam.amazonaws.com",
            "CreateUser",
            home_ip,
            request={"userName": "Dave", "path": "/engineering/"},
            response={
                "user": {
                    "path": "/engineering/",
                    "userName": "Dave",
                    "userId": "AIDAEXAMPLEDAVE12345",
                    "arn": f"arn:aws:iam::{ACCOUNT}:user/engineering/Dave",
                    "createDate": "Nov 21, 2026, 10:02:10 PM",
                }
            },
        ),
        event(
            "2026-11-21T22:03:44Z",
            alice,
            "iam.amazonaws.com",
            "CreateAccessKey",
            home_ip,
            request={"userName": "Dave"},
            response={
                "accessKey": {
                    "accessKeyId": "AKIAEXAMPLEDAVEKEY01",
                    "status": "Active",
                    "userName": "Dave",
                    "createDate": "Nov 21, 2026, 10:03:44 PM",
                }
            },
        ),
        event(
            "2026-11-21T22:04:02Z",
            iam_user("Dave", "AKIAEXAMPLEDAVEKEY01"),
            "iam.amazonaws.com",
            "ListUsers",
            ct_ip,
            read_only=True,
            error=(
                "AccessDenied",
                f"User: arn:aws:iam::{ACCOUNT}:user/engineering/Dave is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ because no identity-based policy allows the iam:ListUsers action",
            ),
        ),
        event(
            "2026-11-21T22:04:30Z",
            alice,
            "iam.amazonaws.com",
            "CreateRole",
            home_ip,
            request={
                "roleName": "lambda-ex",
                "assumeRolePolicyDocument": role_doc("lambda.amazonaws.com"),
                "description": "Lambda execution role",
            },
            response={
                "role": {
                    "path": "/",
                    "roleName": "lambda-ex",
                    "roleId": "AROAEXAMPLELAMBDA123",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/lambda-ex",
                    "createDate": "Nov 21, 2026, 10:04:30 PM",
                    "assumeRolePolicyDocument": role_doc("lambda.amazonaws.com"),
                }
            },
        ),
    ]
    out["2026-11-21T22-14-02"] = [
        console_login("2026-11-21T22:08:01Z", failed_user("Carol"), brute_ip, ok=False),
        console_login("2026-11-21T22:08:13Z", failed_user("Carol"), brute_ip, ok=False),
        console_login("2026-11-21T22:08:25Z", root(), brute_ip, ok=False),
        event(
            "2026-11-21T22:10:02Z",
            aws_service("sts.amazonaws.com"),
            "sts.amazonaws.com",
            "AssumeRoleWithWebIdentity",
            "20.51.13.7",
            agent="aws-sdk-js/3.679.0",
            request={
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/GitHubDeploy",
                "roleSessionName": "gha-run-8812",
                "durationSeconds": 3600,
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLEKEYID1234",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLETOKEN",
                    "expiration": "Nov 21, 2026, 11:10:02 PM",
                },
                "subjectFromWebIdentityToken": "repo:example-org/example-repo:ref:refs/heads/main",
                "assumedRoleUser": {
                    "assumedRoleId": "AROAEXAMPLEROLEID1234:gha-run-8812",
                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/GitHubDeploy/gha-run-8812",
                },
                "provider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
                "audience": "sts.amazonaws.com",
            },
            additionalEventData={"identityProviderConnectionVerificationMethod": "IAMTrustStore"},
            resources=[
                {
                    "ARN": f"arn:aws:iam::{ACCOUNT}:role/GitHubDeploy",
                    "accountId": ACCOUNT,
                    "type": "AWS::IAM::Role",
                }
            ],
        ),
        event(
            "2026-11-21T22:11:40Z",
            deployer,
            "lambda.amazonaws.com",
            "CreateFunction20150331",
            "20.51.13.7",
            agent="aws-sdk-js/3.679.0",
            request={
                "functionName": "resize-images",
                "runtime": "python3.12",
                "role": f"arn:aws:iam::{ACCOUNT}:role/lambda-ex",
                "handler": "app.handler",
                "code": {},
                "environment": {},
                "timeout": 30,
                "memorySize": 256,
                "publish": True,
            },
            response=lambda_function(
                "resize-images",
                "lambda-ex",
                "app.handler",
                size=4213,
                timeout=30,
                memory=256,
                modified="2026-11-21T22:11:40.512+0000",
                version="1",
            ),
            apiVersion="2015-03-31",
        ),
        event(
            "2026-11-21T22:12:05Z",
            deployer,
            "lambda.amazonaws.com",
            "AddPermission20150331v2",
            "20.51.13.7",
            agent="aws-sdk-js/3.679.0",
            request={
                "functionName": "resize-images",
                "statementId": "s3-invoke",
                "action": "lambda:InvokeFunction",
                "principal": "s3.amazonaws.com",
                "sourceArn": "arn:aws:s3:::example-uploads",
            },
            response={
                "statement": '{"Sid":"s3-invoke","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction"}'
            },
            apiVersion="2015-03-31",
        ),
        event(
            "2026-11-21T22:12:59Z",
            deployer,
            "iam.amazonaws.com",
            "AttachRolePolicy",
            "20.51.13.7",
            agent="aws-sdk-js/3.679.0",
            request={
                "roleName": "Admin",
                "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess",
            },
            error=(
                "AccessDenied",
                f"User: arn:aws:sts::{ACCOUNT}:assumed-role/GitHubDeploy/gha-run-8812 is not authorized to perform: iam:AttachRolePolicy on resource: role Admin because no identity-based policy allows the iam:AttachRolePolicy action",
            ),
        ),
    ]
    # arrival 23:00-00:00, events of 2026-11-21
    out["2026-11-21T23-05-51"] = [
        console_login("2026-11-21T22:58:31Z", failed_user("Carol"), brute_ip, ok=False),
        console_login("2026-11-21T23:00:02Z", root(), v6, ok=True, mfa="Yes"),
        event(
            "2026-11-21T23:01:15Z",
            root(key="ASIAEXAMPLEROOTKEY12"),
            "iam.amazonaws.com",
            "CreateAccessKey",
            v6,
            agent="AWS Internal",
            request={},
            response={
                "accessKey": {
                    "accessKeyId": "AKIAEXAMPLEROOTKEY99",
                    "status": "Active",
                    "createDate": "Nov 21, 2026, 11:01:15 PM",
                }
            },
            sessionCredentialFromConsole="true",
        ),
        event(
            "2026-11-21T23:02:40Z",
            root(key="ASIAEXAMPLEROOTKEY12"),
            "ec2.amazonaws.com",
            "DescribeRegions",
            v6,
            agent="AWS Internal",
            read_only=True,
            request={"regionSet": {}, "allRegions": True},
            response=None,
            sessionCredentialFromConsole="true",
        ),
        event(
            "2026-11-21T23:03:03Z",
            admin,
            "ec2.amazonaws.com",
            "RunInstances",
            home_ip,
            request={
                "instancesSet": ONE_AMI,
                "instanceType": "t3.micro",
                "blockDeviceMapping": {},
                "monitoring": {"enabled": False},
                "disableApiTermination": False,
                "disableApiStop": False,
                "clientToken": "e7a3b9e2-6f0b-4b0c-8e55-EXAMPLE",
            },
            response={
                "requestId": "e7a3b9e2-6f0b-4b0c-8e55-EXAMPLE0001",
                "reservationId": "r-0abcd1234example",
                "ownerId": ACCOUNT,
                "groupSet": {},
                "instancesSet": {
                    "items": [
                        {
                            "instanceId": "i-0abcd1234efgh5678",
                            "imageId": "ami-0abcdef1234567890",
                            "instanceState": {"code": 0, "name": "pending"},
                            "privateDnsName": "ip-10-0-0-12.ec2.internal",
                            "amiLaunchIndex": 0,
                            "productCodes": {},
                            "instanceType": "t3.micro",
                            "launchTime": 1795820583000,
                            "placement": {"availabilityZone": "us-east-1a", "tenancy": "default"},
                            "monitoring": {"state": "disabled"},
                            "subnetId": "subnet-0example1",
                            "vpcId": "vpc-0example1",
                            "privateIpAddress": "10.0.0.12",
                            "stateReason": {"code": "pending", "message": "pending"},
                            "architecture": "x86_64",
                            "rootDeviceType": "ebs",
                            "rootDeviceName": "/dev/xvda",
                            "blockDeviceMapping": {},
                            "virtualizationType": "hvm",
                            "hypervisor": "xen",
                            "groupSet": {
                                "items": [{"groupId": "sg-0example1", "groupName": "default"}]
                            },
                            "sourceDestCheck": True,
                            "networkInterfaceSet": {},
                            "ebsOptimized": False,
                            "enaSupport": True,
                            "cpuOptions": {"coreCount": 1, "threadsPerCore": 2},
                            "capacityReservationSpecification": {
                                "capacityReservationPreference": "open"
                            },
                            "enclaveOptions": {"enabled": False},
                            "metadataOptions": {
                                "state": "pending",
                                "httpTokens": "required",
                                "httpPutResponseHopLimit": 2,
                                "httpEndpoint": "enabled",
                            },
                        }
                    ]
                },
            },
            agent="AWS Internal",
        ),
        event(
            "2026-11-21T23:04:10Z",
            iam_user("Dave", "AKIAEXAMPLEDAVEKEY01"),
            "ec2.amazonaws.com",
            "RunInstances",
            ct_ip,
            request={
                "instancesSet": ONE_AMI,
                "instanceType": "p5.48xlarge",
            },
            error=(
                "Client.UnauthorizedOperation",
                "You are not authorized to perform this operation. User: arn:aws:iam::111122223333:user/engineering/Dave is not authorized to perform: ec2:RunInstances",
            ),
        ),
        event(
            "2026-11-21T23:05:00Z",
            iam_user("Dave", "AKIAEXAMPLEDAVEKEY01"),
            "ec2.amazonaws.com",
            "DescribeSpotPriceHistory",
            ct_ip,
            read_only=True,
            request={
                "startTime": "2026-11-21T20:00:00Z",
                "endTime": "2026-11-21T23:00:00Z",
                "instanceTypeSet": {"items": [{"instanceType": "p5.48xlarge"}]},
                "productDescriptionSet": {},
            },
        ),
    ]
    out["2026-11-21T23-29-12"] = [
        event(
            "2026-11-21T23:20:33Z",
            admin,
            "s3.amazonaws.com",
            "PutBucketPolicy",
            home_ip,
            agent="[S3Console/0.4]",
            request={
                "bucketName": "example-uploads",
                "Host": "example-uploads.s3.us-east-1.amazonaws.com",
                "policy": "",
            },
            additionalEventData=s3_transfer(312, 0, "EXAMPLEid2abcdEXAMPLE="),
            resources=[
                {
                    "accountId": ACCOUNT,
                    "type": "AWS::S3::Bucket",
                    "ARN": "arn:aws:s3:::example-uploads",
                }
            ],
        ),
        event(
            "2026-11-21T23:21:02Z",
            bob_fed,
            "s3.amazonaws.com",
            "GetObject",
            "198.51.100.201",
            agent="[aws-sdk-java/2.29.0 Linux/6.1 OpenJDK_64-Bit_Server_VM/21]",
            read_only=True,
            request={
                "bucketName": "example-reports",
                "Host": "example-reports.s3.us-east-1.amazonaws.com",
                "key": "q3/summary.csv",
            },
            error=("AccessDenied", "Access Denied"),
            additionalEventData=s3_transfer(0, 243, "EXAMPLEid2efghEXAMPLE="),
            resources=s3_resources("example-reports", "q3/summary.csv", account=OTHER),
            eventType="AwsApiCall",
            managementEvent=False,
            eventCategory="Data",
        ),
        event(
            "2026-11-21T23:22:45Z",
            admin,
            "s3.amazonaws.com",
            "PutObject",
            home_ip,
            agent="[aws-cli/2.22.0]",
            request={
                "bucketName": "example-uploads",
                "Host": "example-uploads.s3.us-east-1.amazonaws.com",
                "key": "in/cat.jpg",
            },
            response={"x-amz-server-side-encryption": "AES256"},
            additionalEventData=s3_transfer(
                48213, 0, "EXAMPLEid2ijklEXAMPLE=", sse="Default_SSE_S3"
            ),
            resources=s3_resources("example-uploads", "in/cat.jpg"),
            managementEvent=False,
            eventCategory="Data",
            vpcEndpointId="vpce-1a2b3c4d",
            vpcEndpointAccountId=ACCOUNT,
        ),
        event(
            "2026-11-21T23:22:46Z",
            aws_service("s3.amazonaws.com"),
            "lambda.amazonaws.com",
            "Invoke",
            "s3.amazonaws.com",
            agent="s3.amazonaws.com",
            request={
                "functionName": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:resize-images",
                "sourceArn": "arn:aws:s3:::example-uploads",
            },
            additionalEventData={
                "functionVersion": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:resize-images:$LATEST"
            },
            resources=[
                {
                    "accountid": ACCOUNT,
                    "type": "AWS::Lambda::Function",
                    "ARN": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:resize-images",
                }
            ],
            managementEvent=False,
            eventCategory="Data",
            sharedEventID="0f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19",
        ),
        event(
            "2026-11-21T23:24:00Z",
            iam_user("token-broker", "AKIAEXAMPLEBROKERK01"),
            "sts.amazonaws.com",
            "GetFederationToken",
            "192.0.2.200",
            request={
                "name": "Bob",
                "durationSeconds": 43200,
                "policyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLEFEDKEY123",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLEFEDTOKEN",
                    "expiration": "Nov 22, 2026, 11:24:00 AM",
                },
                "federatedUser": {
                    "federatedUserId": f"{ACCOUNT}:Bob",
                    "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/Bob",
                },
                "packedPolicySize": 6,
            },
        ),
        event(
            "2026-11-21T23:25:31Z",
            bob_fed,
            "ec2.amazonaws.com",
            "DescribeInstances",
            "198.51.100.201",
            read_only=True,
            request={"instancesSet": {}, "filterSet": {}},
        ),
    ]
    # arrival 00:00-01:00, events of 2026-11-21 (late) and 2026-11-22
    out["2026-11-22T00-04-07"] = [
        console_login("2026-11-21T23:57:12Z", failed_user("Carol"), brute_ip, ok=False),
        event(
            "2026-11-21T23:58:00Z",
            aws_service("ec2.amazonaws.com"),
            "sts.amazonaws.com",
            "AssumeRole",
            "ec2.amazonaws.com",
            agent="ec2.amazonaws.com",
            request={
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/AmazonSSMRoleForInstancesQuickSetup",
                "roleSessionName": "i-0abcd1234efgh5678",
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLESSMKEY123",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLESSMTOKEN",
                    "expiration": "Nov 22, 2026, 6:10:33 AM",
                },
                "assumedRoleUser": {
                    "assumedRoleId": "AROAEXAMPLEROLEID1234:i-0abcd1234efgh5678",
                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AmazonSSMRoleForInstancesQuickSetup/i-0abcd1234efgh5678",
                },
            },
            resources=[
                {
                    "accountId": ACCOUNT,
                    "type": "AWS::IAM::Role",
                    "ARN": f"arn:aws:iam::{ACCOUNT}:role/AmazonSSMRoleForInstancesQuickSetup",
                }
            ],
            sharedEventID="3c9b1a7e-2f4d-4e8a-9b6c-1d2e3f4a5b6c",
        ),
        event(
            "2026-11-22T00:00:20Z",
            admin,
            "sts.amazonaws.com",
            "AssumeRole",
            home_ip,
            request={
                "roleArn": f"arn:aws:iam::{OTHER}:role/AuditReadOnly",
                "roleSessionName": "alice-audit",
                "durationSeconds": 3600,
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLEAUDITK123",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLEAUDITTOKEN",
                    "expiration": "Nov 22, 2026, 1:00:20 AM",
                },
                "assumedRoleUser": {
                    "assumedRoleId": "AROAEXAMPLEAUDIT1234:alice-audit",
                    "arn": f"arn:aws:sts::{OTHER}:assumed-role/AuditReadOnly/alice-audit",
                },
            },
            resources=[
                {
                    "accountId": OTHER,
                    "type": "AWS::IAM::Role",
                    "ARN": f"arn:aws:iam::{OTHER}:role/AuditReadOnly",
                }
            ],
        ),
        event(
            "2026-11-22T00:01:02Z",
            admin,
            "sts.amazonaws.com",
            "GetCallerIdentity",
            home_ip,
            read_only=True,
            request=None,
            response=None,
        ),
        event(
            "2026-11-22T00:02:30Z",
            ssm_role,
            "ssm.amazonaws.com",
            "UpdateInstanceInformation",
            "10.0.0.12",
            agent="aws-sdk-go/1.55.5 (go1.22.7; linux; amd64) amazon-ssm-agent/3.3.1142.0",
            request={
                "instanceId": "i-0abcd1234efgh5678",
                "agentVersion": "3.3.1142.0",
                "agentStatus": "Active",
                "platformType": "Linux",
                "platformName": "Amazon Linux",
                "platformVersion": "2023",
                "iPAddress": "10.0.0.12",
                "computerName": "ip-10-0-0-12.ec2.internal",
                "agentName": "amazon-ssm-agent",
                "availabilityZone": "us-east-1a",
                "availabilityZoneId": "use1-az4",
            },
            response=None,
        ),
        event(
            "2026-11-22T00:03:15Z",
            alice,
            "ssm.amazonaws.com",
            "SendCommand",
            home_ip,
            request={
                "instanceIds": ["i-0abcd1234efgh5678"],
                "documentName": "AWS-RunShellScript",
                "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
                "interactive": False,
            },
            response={
                "command": {
                    "commandId": "3a1e7b2c-9d8f-4e6a-b5c4-EXAMPLE00001",
                    "documentName": "AWS-RunShellScript",
                    "documentVersion": "$DEFAULT",
                    "comment": "",
                    "expiresAfter": "Nov 22, 2026, 2:03:15 AM",
                    "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS",
                    "instanceIds": ["i-0abcd1234efgh5678"],
                    "targets": [],
                    "requestedDateTime": "Nov 22, 2026, 12:03:15 AM",
                    "status": "Pending",
                    "statusDetails": "Pending",
                    "outputS3Region": "us-east-1",
                    "outputS3BucketName": "",
                    "outputS3KeyPrefix": "",
                    "maxConcurrency": "50",
                    "maxErrors": "0",
                    "targetCount": 1,
                    "completedCount": 0,
                    "errorCount": 0,
                    "deliveryTimedOutCount": 0,
                    "serviceRole": "",
                    "notificationConfig": {
                        "notificationArn": "",
                        "notificationEvents": [],
                        "notificationType": "",
                    },
                    "cloudWatchOutputConfig": {
                        "cloudWatchLogGroupName": "",
                        "cloudWatchOutputEnabled": False,
                    },
                    "interactive": False,
                    "timeoutSeconds": 3600,
                }
            },
        ),
    ]
    out["2026-11-22T00-28-44"] = [
        event(
            "2026-11-22T00:20:11Z",
            aws_service("lambda.amazonaws.com"),
            "sts.amazonaws.com",
            "AssumeRole",
            "lambda.amazonaws.com",
            agent="lambda.amazonaws.com",
            request={
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/lambda-ex",
                "roleSessionName": "resize-images",
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLELAMBDAK12",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLELAMBDATOKEN",
                    "expiration": "Nov 22, 2026, 12:20:11 PM",
                },
                "assumedRoleUser": {
                    "assumedRoleId": "AROAEXAMPLELAMBDA123:resize-images",
                    "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/lambda-ex/resize-images",
                },
            },
            resources=[
                {
                    "accountId": ACCOUNT,
                    "type": "AWS::IAM::Role",
                    "ARN": f"arn:aws:iam::{ACCOUNT}:role/lambda-ex",
                }
            ],
        ),
        event(
            "2026-11-22T00:20:13Z",
            lambda_role,
            "s3.amazonaws.com",
            "GetObject",
            "3.94.12.7",
            agent="[Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#5.10 lang/python#3.12.6 exec-env/AWS_Lambda_python3.12]",
            read_only=True,
            request={
                "bucketName": "example-uploads",
                "Host": "example-uploads.s3.us-east-1.amazonaws.com",
                "key": "in/cat.jpg",
            },
            additionalEventData=s3_transfer(0, 48213, "EXAMPLEid2mnopEXAMPLE="),
            resources=s3_resources("example-uploads", "in/cat.jpg"),
            managementEvent=False,
            eventCategory="Data",
        ),
        event(
            "2026-11-22T00:20:15Z",
            lambda_role,
            "s3.amazonaws.com",
            "PutObject",
            "3.94.12.7",
            agent="[Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#5.10 lang/python#3.12.6 exec-env/AWS_Lambda_python3.12]",
            request={
                "bucketName": "example-thumbnails",
                "Host": "example-thumbnails.s3.us-east-1.amazonaws.com",
                "key": "out/cat.jpg",
            },
            error=("AccessDenied", "Access Denied"),
            additionalEventData=s3_transfer(9120, 243, "EXAMPLEid2qrstEXAMPLE="),
            resources=[
                {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::example-thumbnails/out/cat.jpg"},
                {
                    "accountid": ACCOUNT,
                    "type": "AWS::S3::Bucket",
                    "ARN": "arn:aws:s3:::example-thumbnails",
                },
            ],
            managementEvent=False,
            eventCategory="Data",
        ),
        event(
            "2026-11-22T00:21:30Z",
            deployer,
            "lambda.amazonaws.com",
            "UpdateFunctionConfiguration20150331v2",
            "20.51.13.7",
            agent="aws-sdk-js/3.679.0",
            request={
                "functionName": "resize-images",
                "role": f"arn:aws:iam::{ACCOUNT}:role/lambda-ex",
                "environment": {},
                "timeout": 60,
            },
            response={
                "functionName": "resize-images",
                "functionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:resize-images",
                "runtime": "python3.12",
                "role": f"arn:aws:iam::{ACCOUNT}:role/lambda-ex",
                "handler": "app.handler",
                "codeSize": 4213,
                "timeout": 60,
                "memorySize": 256,
                "lastModified": "2026-11-22T00:21:30.118+0000",
                "version": "$LATEST",
                "environment": {},
                "tracingConfig": {"mode": "PassThrough"},
                "state": "Active",
                "lastUpdateStatus": "InProgress",
                "architectures": ["x86_64"],
                "ephemeralStorage": {"size": 512},
            },
            apiVersion="2015-03-31",
        ),
        event(
            "2026-11-22T00:22:02Z",
            deployer,
            "lambda.amazonaws.com",
            "DeleteFunction20150331",
            "20.51.13.7",
            agent="aws-sdk-js/3.679.0",
            request={"functionName": "legacy-thumbnailer"},
            error=(
                "AccessDeniedException",
                f"User: arn:aws:sts::{ACCOUNT}:assumed-role/GitHubDeploy/gha-run-8812 is not authorized to perform: lambda:DeleteFunction on resource: arn:aws:lambda:us-east-1:{ACCOUNT}:function:legacy-thumbnailer because no identity-based policy allows the lambda:DeleteFunction action",
            ),
            apiVersion="2015-03-31",
        ),
        event(
            "2026-11-22T00:25:40Z",
            bob_fed,
            "ssm.amazonaws.com",
            "GetParameter",
            "198.51.100.201",
            read_only=True,
            request={"name": "/prod/db/password", "withDecryption": True},
            error=(
                "AccessDeniedException",
                f"User: arn:aws:sts::{ACCOUNT}:federated-user/Bob is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/prod/db/password because no identity-based policy allows the ssm:GetParameter action",
            ),
        ),
    ]
    # arrival 01:00-02:00, events of 2026-11-22
    out["2026-11-22T01-07-19"] = [
        console_login("2026-11-22T01:00:05Z", failed_user("Carol"), v6, ok=False),
        console_login("2026-11-22T01:00:30Z", iam_user("Carol", ""), v6, ok=True, mfa="Yes"),
        event(
            "2026-11-22T01:01:12Z",
            root(key="ASIAEXAMPLEROOTKEY34"),
            "s3.amazonaws.com",
            "ListBuckets",
            "192.0.2.9",
            agent="[S3Console/0.4]",
            read_only=True,
            request={"Host": "s3.us-east-1.amazonaws.com"},
            additionalEventData=s3_transfer(0, 1024, "EXAMPLEid2uvwxEXAMPLE="),
            sessionCredentialFromConsole="true",
        ),
        event(
            "2026-11-22T01:02:00Z",
            root(key="ASIAEXAMPLEROOTKEY34"),
            "iam.amazonaws.com",
            "DeleteAccessKey",
            "192.0.2.9",
            agent="AWS Internal",
            request={"accessKeyId": "AKIAEXAMPLEROOTKEY99"},
            sessionCredentialFromConsole="true",
        ),
        event(
            "2026-11-22T01:03:30Z",
            iam_user("Carol", "AKIAEXAMPLECAROLK001"),
            "iam.amazonaws.com",
            "CreateRole",
            "192.0.2.45",
            request={
                "roleName": "ssm-automation",
                "assumeRolePolicyDocument": role_doc("ssm.amazonaws.com"),
                "maxSessionDuration": 3600,
            },
            response={
                "role": {
                    "path": "/",
                    "roleName": "ssm-automation",
                    "roleId": "AROAEXAMPLESSMAUTO12",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/ssm-automation",
                    "createDate": "Nov 22, 2026, 1:03:30 AM",
                    "assumeRolePolicyDocument": role_doc("ssm.amazonaws.com"),
                    "maxSessionDuration": 3600,
                }
            },
        ),
        event(
            "2026-11-22T01:04:41Z",
            iam_user("Carol", "AKIAEXAMPLECAROLK001"),
            "lambda.amazonaws.com",
            "GetFunction20150331v2",
            "192.0.2.45",
            read_only=True,
            request={"functionName": "resize-images"},
            response=None,
            apiVersion="2015-03-31",
        ),
    ]
    out["2026-11-22T01-33-02"] = [
        event(
            "2026-11-22T01:25:09Z",
            iam_user("Carol", "AKIAEXAMPLECAROLK001"),
            "lambda.amazonaws.com",
            "CreateFunction20150331",
            "192.0.2.45",
            request={
                "functionName": "rotate-keys",
                "runtime": "python3.12",
                "role": f"arn:aws:iam::{ACCOUNT}:role/ssm-automation",
                "handler": "main.handler",
                "code": {},
                "environment": {},
            },
            response=lambda_function(
                "rotate-keys",
                "ssm-automation",
                "main.handler",
                size=1022,
                timeout=3,
                memory=128,
                modified="2026-11-22T01:25:09.903+0000",
                version="$LATEST",
            ),
            apiVersion="2015-03-31",
        ),
        event(
            "2026-11-22T01:26:40Z",
            alice,
            "ssm.amazonaws.com",
            "StartSession",
            home_ip,
            request={"target": "i-0abcd1234efgh5678"},
            response={
                "sessionId": "Alice-0a1b2c3d4e5f67890",
                "tokenValue": "Value hidden due to security reasons.",
                "streamUrl": "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/Alice-0a1b2c3d4e5f67890?role=publish_subscribe",
            },
        ),
        event(
            "2026-11-22T01:27:12Z",
            bob_fed,
            "ssm.amazonaws.com",
            "StartSession",
            "198.51.100.201",
            request={"target": "i-0abcd1234efgh5678"},
            error=(
                "AccessDeniedException",
                f"User: arn:aws:sts::{ACCOUNT}:federated-user/Bob is not authorized to perform: ssm:StartSession on resource: arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0abcd1234efgh5678 because no identity-based policy allows the ssm:StartSession action",
            ),
        ),
        event(
            "2026-11-22T01:28:00Z",
            iam_user("Dave", "AKIAEXAMPLEDAVEKEY01"),
            "ec2.amazonaws.com",
            "TerminateInstances",
            ct_ip,
            request={"instancesSet": {"items": [{"instanceId": "i-0abcd1234efgh5678"}]}},
            error=(
                "Client.UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            ),
        ),
        event(
            "2026-11-22T01:29:31Z",
            admin,
            "ec2.amazonaws.com",
            "CreateSecurityGroup",
            home_ip,
            request={
                "groupName": "ssh-from-office",
                "groupDescription": "ssh from the office",
                "vpcId": "vpc-0example1",
            },
            response={
                "requestId": "b7c3d9e1-EXAMPLE-0002",
                "_return": True,
                "groupId": "sg-0example2",
                "securityGroupArn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-0example2",
            },
        ),
        event(
            "2026-11-22T01:30:05Z",
            admin,
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            home_ip,
            request={
                "groupId": "sg-0example2",
                "ipPermissions": {
                    "items": [
                        {
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "groups": {},
                            "ipRanges": {"items": [{"cidrIp": "192.0.2.0/24"}]},
                            "ipv6Ranges": {},
                            "prefixListIds": {},
                        }
                    ]
                },
            },
            response={
                "requestId": "b7c3d9e1-EXAMPLE-0003",
                "_return": True,
                "securityGroupRuleSet": {
                    "items": [
                        {
                            "groupOwnerId": ACCOUNT,
                            "groupId": "sg-0example2",
                            "securityGroupRuleId": "sgr-0example1",
                            "isEgress": False,
                            "ipProtocol": "tcp",
                            "fromPort": 22,
                            "toPort": 22,
                            "cidrIpv4": "192.0.2.0/24",
                        }
                    ]
                },
            },
        ),
        event(
            "2026-11-22T01:31:00Z",
            aws_service("ec2.amazonaws.com"),
            "ec2.amazonaws.com",
            "SharedSnapshotVolumeCreated",
            "ec2.amazonaws.com",
            agent="ec2.amazonaws.com",
            request=None,
            response=None,
            eventType="AwsServiceEvent",
            serviceEventDetails={
                "snapshotId": "snap-0example1",
                "volumeId": "vol-0example1",
                "createTime": "2026-11-22T01:30:58Z",
            },
        ),
    ]
    out["2026-11-22T01-52-40"] = [
        event(
            "2026-11-22T01:40:02Z",
            admin,
            "cloudtrail.amazonaws.com",
            "LookupEvents",
            home_ip,
            agent="AWS Internal",
            read_only=True,
            request={
                "startTime": "Nov 21, 2026, 11:00:00 PM",
                "endTime": "Nov 22, 2026, 1:40:00 AM",
                "lookupAttributes": [
                    {"attributeKey": "EventName", "attributeValue": "ConsoleLogin"}
                ],
                "maxResults": 50,
            },
        ),
        console_login("2026-11-22T01:41:10Z", failed_user("Erin"), "198.51.100.77", ok=False),
        console_login("2026-11-22T01:41:40Z", failed_user("Erin"), "198.51.100.77", ok=False),
        console_login("2026-11-22T01:42:05Z", failed_user("Erin"), "198.51.100.77", ok=False),
        event(
            "2026-11-22T01:43:00Z",
            iam_user("Erin", "AKIAEXAMPLEERINKEY01"),
            "sts.amazonaws.com",
            "GetSessionToken",
            "198.51.100.77",
            request={
                "durationSeconds": 3600,
                "serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/Erin",
                "tokenCode": "***",
            },
            response={
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLEERINSES12",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLEERINTOKEN",
                    "expiration": "Nov 22, 2026, 2:43:00 AM",
                }
            },
        ),
        event(
            "2026-11-22T01:44:21Z",
            bob_fed,
            "iam.amazonaws.com",
            "GetUser",
            "198.51.100.201",
            read_only=True,
            request={"userName": "Alice"},
            error=(
                "AccessDenied",
                f"User: arn:aws:sts::{ACCOUNT}:federated-user/Bob is not authorized to perform: iam:GetUser on resource: user Alice because no identity-based policy allows the iam:GetUser action",
            ),
        ),
        event(
            "2026-11-22T01:45:50Z",
            root(key="ASIAEXAMPLEROOTKEY34"),
            "ec2.amazonaws.com",
            "StopInstances",
            "192.0.2.9",
            agent="AWS Internal",
            request={
                "instancesSet": {"items": [{"instanceId": "i-0abcd1234efgh5678"}]},
                "force": False,
            },
            response={
                "requestId": "b7c3d9e1-EXAMPLE-0004",
                "instancesSet": {
                    "items": [
                        {
                            "instanceId": "i-0abcd1234efgh5678",
                            "currentState": {"code": 64, "name": "stopping"},
                            "previousState": {"code": 16, "name": "running"},
                        }
                    ]
                },
            },
            sessionCredentialFromConsole="true",
        ),
    ]
    # CloudTrail delivers at least once: the first AssumeRole of 00:20 again, in the next object
    dup = next(r for r in out["2026-11-22T00-28-44"] if r["eventName"] == "AssumeRole")
    out["2026-11-22T01-33-02"].append(json.loads(json.dumps(dup)))
    return out


def main() -> None:
    for old in HERE.glob("*.json"):
        old.unlink()
    for written_at, records in batches().items():
        path = HERE / f"cloudtrail-{written_at}.json"
        path.write_text(json.dumps({"Records": records}, indent=1) + "\n")


if __name__ == "__main__":
    main()
