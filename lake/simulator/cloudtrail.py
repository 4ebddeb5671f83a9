"""cloudtrail: the farm's AWS account as CloudTrail sees it.

Machines call steadily (Firehose writing landing objects, the ETL role reading them,
monitoring describing instances, role sessions refreshed through STS); people log in to
the console and call APIs in the daytime, some fail to log in and some are denied; now and
then someone tries a burst of console logins from one address.
"""

from __future__ import annotations

import math
import random
from typing import Any

from lake.simulator.identities import email_for, full_name, ipv4
from lake.simulator.scheduler import EventSource, Record
from lake.simulator.simtime import HOUR_MS, MINUTE_MS, SECOND_MS, from_ms, hour_of_day, iso_s

STREAM = "cloudtrail"
ACCOUNT = "210987654321"
REGION = "eu-west-1"
LANDING_BUCKET = "dairy017-landing"
REPORTS_BUCKET = "dairy017-reports"
MACHINE_CALLS_PER_HOUR = 100.0
HUMAN_CALLS_PER_HOUR = 15.0  # daily mean, mostly in office hours
LOGINS_PER_HOUR = 1.5  # daily mean, mostly in office hours
MEAN_BRUTE_FORCE_GAP_MS = 12 * HOUR_MS
BOTO_AGENT = (
    "Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.7 "
    "md/pyimpl#CPython cfg/retry-mode#adaptive Botocore/1.35.90"
)
CLI_AGENT = (
    "aws-cli/2.22.4 md/awscrt#0.23.4 ua/2.0 os/macos#24.1.0 md/arch#arm64 lang/python#3.12.6"
)
CONSOLE_AGENT = "AWS Internal"
BROWSER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# (role name, service that assumes it)
ROLES = (
    ("firehose-delivery", "firehose.amazonaws.com"),
    ("dagster-etl", "ecs-tasks.amazonaws.com"),
    ("monitoring", "lambda.amazonaws.com"),
)


def _office_hours(t: int) -> float:
    """A rate multiplier averaging about 1 over the day, high 07-17 UTC, low at night."""
    return max(0.1, 1.0 + 1.3 * math.sin((hour_of_day(t) - 6.0) / 24 * 2 * math.pi))


def _aws_date(t: int) -> str:
    """The `Nov 21, 2026, 8:01:02 AM` style some CloudTrail response elements use."""
    d = from_ms(t)
    hour12 = d.hour % 12 or 12
    return f"{d:%b} {d.day}, {d.year}, {hour12}:{d:%M:%S} {'AM' if d.hour < 12 else 'PM'}"


class CloudTrail(EventSource):
    resolution_ms = SECOND_MS

    def __init__(self, rng: random.Random, origin_ms: int) -> None:
        super().__init__(rng, origin_ms)
        self.people = []
        for i in range(5):
            name = full_name(rng)
            user_name = email_for(name, rng, "x").split("@")[0]
            self.people.append(
                {
                    "userName": user_name,
                    "principalId": self._key_id("AIDA"),
                    "accessKeyId": self._key_id("AKIA"),
                    "ip": ipv4(rng),
                    "admin": i == 0,
                }
            )
        self.roles = {
            name: {"principalId": self._key_id("AROA"), "service": service, "expires": 0}
            for name, service in ROLES
        }
        self.instances = [f"i-0{self.hex_id(16)}" for _ in range(4)]
        self.etl_ip = ipv4(rng)

        o = self.origin_ms
        self.at(o + rng.expovariate(MACHINE_CALLS_PER_HOUR / HOUR_MS), self._machine_call)
        self.at(o + rng.expovariate(HUMAN_CALLS_PER_HOUR / HOUR_MS), self._human_call)
        self.at(o + rng.expovariate(LOGINS_PER_HOUR / HOUR_MS), self._console_login)
        self.at(o + rng.expovariate(1 / MEAN_BRUTE_FORCE_GAP_MS), self._brute_force)

    def _key_id(self, prefix: str) -> str:
        return prefix + "".join(self.rng.choice(_ALNUM) for _ in range(16))

    # -- identities ------------------------------------------------------------------------

    def _user_identity(self, person: dict[str, Any], t: int, console: bool) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "type": "IAMUser",
            "principalId": person["principalId"],
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{person['userName']}",
            "accountId": ACCOUNT,
            "accessKeyId": self._key_id("ASIA") if console else person["accessKeyId"],
            "userName": person["userName"],
        }
        if console:
            identity["sessionContext"] = {
                "attributes": {
                    "creationDate": iso_s(t - 20 * MINUTE_MS),
                    "mfaAuthenticated": "true",
                }
            }
        return identity

    def _role_identity(self, role: str, t: int) -> dict[str, Any]:
        """The role's current session, refreshed (with an AssumeRole event) once an hour."""
        state = self.roles[role]
        if t >= state["expires"]:
            state["session"] = f"{role}-{self.hex_id(8)}"
            state["accessKeyId"] = self._key_id("ASIA")
            state["created"] = t
            state["expires"] = t + HOUR_MS
            self._assume_role(role, t)
        pid = state["principalId"]
        return {
            "type": "AssumedRole",
            "principalId": f"{pid}:{state['session']}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{state['session']}",
            "accountId": ACCOUNT,
            "accessKeyId": state["accessKeyId"],
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": pid,
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                    "accountId": ACCOUNT,
                    "userName": role,
                },
                "webIdFederationData": {},
                "attributes": {
                    "creationDate": iso_s(state["created"]),
                    "mfaAuthenticated": "false",
                },
            },
        }

    # -- records ---------------------------------------------------------------------------

    def _record(
        self,
        t: int,
        *,
        source: str,
        name: str,
        identity: dict[str, Any],
        ip: str,
        agent: str,
        request: dict[str, Any] | None,
        response: dict[str, Any] | None = None,
        read_only: bool,
        error: tuple[str | None, str] | None = None,
        additional: dict[str, Any] | None = None,
        resources: list[dict[str, Any]] | None = None,
        event_type: str = "AwsApiCall",
        data_event: bool = False,
        region: str = REGION,
    ) -> Record:
        rec: Record = {
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": iso_s(t),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": agent,
        }
        if error is not None:
            code, message = error
            if code is not None:
                rec["errorCode"] = code
            rec["errorMessage"] = message
        rec["requestParameters"] = request
        rec["responseElements"] = response
        if additional is not None:
            rec["additionalEventData"] = additional
        rec["requestID"] = self.uuid()
        rec["eventID"] = self.uuid()
        rec["readOnly"] = read_only
        if resources is not None:
            rec["resources"] = resources
        rec["eventType"] = event_type
        rec["managementEvent"] = not data_event
        rec["recipientAccountId"] = ACCOUNT
        rec["eventCategory"] = "Data" if data_event else "Management"
        if event_type == "AwsApiCall" and not ip.endswith(".amazonaws.com"):
            host = f"{source.split('.')[0]}.{region}.amazonaws.com"
            rec["tlsDetails"] = {**TLS, "clientProvidedHostHeader": host}
        return rec

    def _s3(
        self,
        t: int,
        name: str,
        bucket: str,
        key: str | None,
        identity: dict[str, Any],
        ip: str,
        agent: str,
        denied: bool = False,
    ) -> Record:
        request: dict[str, Any] = {
            "bucketName": bucket,
            "Host": f"{bucket}.s3.{REGION}.amazonaws.com",
        }
        resources: list[dict[str, Any]] = []
        if key is None:
            stream = self.rng.choice(("robot_telemetry", "clickstream", "cloudtrail"))
            request.update({"list-type": "2", "prefix": f"{stream}/{from_ms(t):%Y/%m/%d/%H}/"})
        else:
            request["key"] = key
            resources.append({"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
        resources.append(
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}
        )
        size = int(self.rng.lognormvariate(10.5, 0.6))
        additional = {
            "SignatureVersion": "SigV4",
            "AuthenticationMethod": "AuthHeader",
            "bytesTransferredIn": size if name == "PutObject" and not denied else 0,
            "bytesTransferredOut": size if name == "GetObject" and not denied else 0,
        }
        return self._record(
            t,
            source="s3.amazonaws.com",
            name=name,
            identity=identity,
            ip=ip,
            agent=agent,
            request=request,
            read_only=name != "PutObject",
            error=("AccessDenied", "Access Denied") if denied else None,
            additional=additional,
            resources=resources,
            data_event=True,
        )

    def _landing_key(self, t: int) -> str:
        stream = self.rng.choice(("robot_telemetry", "clickstream", "cloudtrail"))
        d = from_ms(t)
        return f"{stream}/{d:%Y/%m/%d/%H}/{stream}-1-{d:%Y-%m-%d-%H-%M-%S}-{self.uuid()}.gz"

    def _denied_message(self, arn: str, action: str, resource: str) -> str:
        return (
            f"User: {arn} is not authorized to perform: {action} on resource: {resource} "
            f"because no identity-based policy allows the {action} action"
        )

    # -- processes -------------------------------------------------------------------------

    def _assume_role(self, role: str, t: int) -> None:
        state = self.roles[role]
        service = state["service"]
        arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{state['session']}"
        self.emit(
            t,
            self._record(
                t,
                source="sts.amazonaws.com",
                name="AssumeRole",
                identity={"type": "AWSService", "invokedBy": service},
                ip=service,
                agent=service,
                request={
                    "roleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                    "roleSessionName": state["session"],
                    "durationSeconds": 3600,
                },
                response={
                    "credentials": {
                        "accessKeyId": state["accessKeyId"],
                        "sessionToken": "IQoJb3JpZ2luX2VjE" + self.hex_id(32),
                        "expiration": _aws_date(state["expires"]),
                    },
                    "assumedRoleUser": {
                        "assumedRoleId": f"{state['principalId']}:{state['session']}",
                        "arn": arn,
                    },
                },
                read_only=True,
            ),
        )

    def _machine_call(self, t: int) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            identity = self._role_identity("firehose-delivery", t)
            rec = self._s3(
                t,
                "PutObject",
                LANDING_BUCKET,
                self._landing_key(t),
                identity,
                "firehose.amazonaws.com",
                "firehose.amazonaws.com",
            )
        elif roll < 0.75:
            identity = self._role_identity("dagster-etl", t)
            rec = self._s3(
                t,
                "GetObject",
                LANDING_BUCKET,
                self._landing_key(t),
                identity,
                self.etl_ip,
                BOTO_AGENT,
                denied=rng.random() < 0.01,
            )
        elif roll < 0.85:
            identity = self._role_identity("dagster-etl", t)
            rec = self._s3(
                t, "ListObjects", LANDING_BUCKET, None, identity, self.etl_ip, BOTO_AGENT
            )
        else:
            identity = self._role_identity("monitoring", t)
            ids = rng.sample(self.instances, rng.randint(1, len(self.instances)))
            rec = self._record(
                t,
                source="ec2.amazonaws.com",
                name="DescribeInstances",
                identity=identity,
                ip=self.etl_ip,
                agent=BOTO_AGENT,
                request={
                    "instancesSet": {"items": [{"instanceId": i} for i in ids]},
                    "filterSet": {
                        "items": [{"name": "tag:env", "valueSet": {"items": [{"value": "prod"}]}}]
                    },
                },
                read_only=True,
            )
        self.emit(t, rec)
        self.at(t + rng.expovariate(MACHINE_CALLS_PER_HOUR / HOUR_MS), self._machine_call)

    def _human_call(self, t: int) -> None:
        rng = self.rng
        person = rng.choice(self.people)
        console = rng.random() < 0.5
        identity = self._user_identity(person, t, console)
        agent = CONSOLE_AGENT if console else CLI_AGENT
        arn = identity["arn"]
        roll = rng.random()
        if roll < 0.45:
            key = f"reports/{from_ms(t):%Y-%m-%d}/milk-yield.parquet"
            rec = self._s3(
                t,
                "GetObject",
                REPORTS_BUCKET,
                key,
                identity,
                person["ip"],
                agent,
                denied=rng.random() < 0.08,
            )
        elif roll < 0.7:
            denied = rng.random() < 0.08
            error = None
            if denied:
                error = ("AccessDenied", self._denied_message(arn, "ec2:DescribeInstances", "*"))
            rec = self._record(
                t,
                source="ec2.amazonaws.com",
                name="DescribeInstances",
                identity=identity,
                ip=person["ip"],
                agent=agent,
                request={"instancesSet": {}, "filterSet": {}},
                read_only=True,
                error=error,
            )
        elif roll < 0.92:
            rec = self._record(
                t,
                source="iam.amazonaws.com",
                name="ListUsers",
                identity=identity,
                ip=person["ip"],
                agent=agent,
                request=None,
                read_only=True,
                region="us-east-1",
            )
        else:
            new_user = email_for(full_name(rng), rng, "x").split("@")[0]
            target = f"arn:aws:iam::{ACCOUNT}:user/{new_user}"
            request = {"userName": new_user, "tags": [{"key": "team", "value": "farm-ops"}]}
            if person["admin"]:
                response = {
                    "user": {
                        "path": "/",
                        "userName": new_user,
                        "userId": self._key_id("AIDA"),
                        "arn": target,
                        "createDate": _aws_date(t),
                    }
                }
                error = None
            else:
                response = None
                error = ("AccessDenied", self._denied_message(arn, "iam:CreateUser", target))
            rec = self._record(
                t,
                source="iam.amazonaws.com",
                name="CreateUser",
                identity=identity,
                ip=person["ip"],
                agent=agent,
                request=request,
                response=response,
                read_only=False,
                error=error,
                region="us-east-1",
            )
        self.emit(t, rec)
        rate = HUMAN_CALLS_PER_HOUR * _office_hours(t) / HOUR_MS
        self.at(t + rng.expovariate(rate), self._human_call)

    def _login_record(
        self, t: int, identity: dict[str, Any], ip: str, success: bool, mfa: bool
    ) -> Record:
        return self._record(
            t,
            source="signin.amazonaws.com",
            name="ConsoleLogin",
            identity=identity,
            ip=ip,
            agent=BROWSER_AGENT,
            request=None,
            response={"ConsoleLogin": "Success" if success else "Failure"},
            read_only=False,
            # CloudTrail reports a failed console login with errorMessage but no errorCode.
            error=None if success else (None, "Failed authentication"),
            additional={
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes" if mfa else "No",
            },
            event_type="AwsConsoleSignIn",
        )

    def _console_login(self, t: int) -> None:
        rng = self.rng
        person = rng.choice(self.people)
        identity = self._user_identity(person, t, console=False)
        del identity["accessKeyId"]
        success = rng.random() > 0.12
        self.emit(t, self._login_record(t, identity, person["ip"], success, mfa=success))
        rate = LOGINS_PER_HOUR * _office_hours(t) / HOUR_MS
        self.at(t + rng.expovariate(rate), self._console_login)

    def _brute_force(self, t: int) -> None:
        rng = self.rng
        ip = ipv4(rng)
        identity = {
            "type": "IAMUser",
            "principalId": "",
            "accountId": ACCOUNT,
            "accessKeyId": "",
            "userName": "HIDDEN_DUE_TO_SECURITY_REASONS",
        }
        attempt = t
        for _ in range(rng.randint(5, 15)):
            attempt += int(rng.uniform(3, 20) * SECOND_MS)
            self.emit(attempt, self._login_record(attempt, dict(identity), ip, False, mfa=False))
        self.at(t + rng.expovariate(1 / MEAN_BRUTE_FORCE_GAP_MS), self._brute_force)
