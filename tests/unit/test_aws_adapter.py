"""eiplane.aws: call recording, mutating-call classification, error translation, pagination.

No AWS and no moto: responses are served by a `before-send` handler on the client, so every
call goes through botocore's whole request path (parameter validation, before-call events,
signing with the fake credentials of tests/conftest.py, response parsing) and nothing leaves
the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ParamValidationError
from botocore.stub import Stubber

from eiplane import aws
from eiplane.errors import AwsAccessDenied, AwsCallFailed, AwsThrottled, AwsUnavailable, EiplaneError

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class FakeEc2:
    """Answers EC2 Query-API calls from a queue of XML bodies per action."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[str]] = {}
        self.sent: list[dict[str, list[str]]] = []
        self.errors: dict[str, tuple[str, str]] = {}

    def add(self, action: str, inner_xml: str) -> None:
        self.bodies.setdefault(action, []).append(
            f'<{action}Response xmlns="{EC2_NS}"><requestId>r-1</requestId>{inner_xml}</{action}Response>')

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        params = parse_qs(body)
        self.sent.append(params)
        action = params["Action"][0]
        if action in self.errors:
            code, message = self.errors[action]
            error = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                     "<RequestID>r-1</RequestID></Response>")
            return AWSResponse(request.url, 400, {}, _Raw(error.encode()))
        return AWSResponse(request.url, 200, {}, _Raw(self.bodies[action].pop(0).encode()))


@pytest.fixture(autouse=True, scope="module")
def _fresh_clients() -> Iterator[None]:
    # Module-scoped: building a client loads the service model, the slow part of these tests.
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def ec2() -> Iterator[tuple[Any, FakeEc2]]:
    client = aws.client("ec2", "us-east-1")
    fake = FakeEc2()
    client.meta.events.register("before-send", fake)
    yield client, fake
    client.meta.events.unregister("before-send", fake)


# --- is_mutating -----------------------------------------------------------------------------

@pytest.mark.parametrize("operation", [
    "DescribeVpcs", "DescribeSecurityGroups", "GetRole", "GetCallerIdentity", "ListRolePolicies",
    "ListAttachedRolePolicies", "HeadObject", "Query", "Scan", "LookupEvents", "SearchResources",
    "BatchGetItem", "GetParameter",
])
def test_read_operations(operation: str) -> None:
    assert aws.is_mutating(operation) is False


@pytest.mark.parametrize("operation", [
    "CreateRole", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupEgress",
    "ModifyVpcAttribute", "ModifyVpcEndpoint", "PutRolePolicy", "AttachRolePolicy", "DeleteRolePolicy",
    "TagRole", "CreateTags", "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile", "PutItem",
    "UpdateItem", "StartExecution", "RunInstances", "BatchWriteItem",
])
def test_mutating_operations(operation: str) -> None:
    assert aws.is_mutating(operation) is True


def test_api_call_log_mutating_filters_by_operation() -> None:
    log = aws.ApiCallLog(calls=["ec2:DescribeVpcs", "ec2:CreateTags", "iam:GetRole", "iam:PutRolePolicy",
                                "sts:GetCallerIdentity"])
    assert log.mutating == ["ec2:CreateTags", "iam:PutRolePolicy"]
    assert aws.ApiCallLog().mutating == []


# --- clients and recording -------------------------------------------------------------------

def test_clients_are_cached_per_service_and_region() -> None:
    first = aws.client("ec2", "us-east-1")
    assert aws.client("ec2", "us-east-1") is first
    assert aws.client("ec2", "us-west-2") is not first
    assert aws.client("iam", "us-east-1") is not first
    assert aws.client("ec2", "us-west-2").meta.region_name == "us-west-2"
    aws.reset_clients()
    assert aws.client("ec2", "us-east-1") is not first


def test_a_client_belongs_to_the_credentials_it_was_built_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each function of the embedded AWS calls as itself; on Lambda the key never changes."""
    first = aws.client("ec2", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAOTHERFUNCTION")
    other = aws.client("ec2", "us-east-1")
    assert other is not first and other.meta.events is not first.meta.events
    assert other._request_signer._credentials.access_key == "ASIAOTHERFUNCTION"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    assert aws.client("ec2", "us-east-1") is first


def test_client_configuration() -> None:
    config = aws.client("ec2", "us-east-1").meta.config
    # botocore stores max_attempts=6 (retries) as total_max_attempts=7 (the first try included).
    assert config.retries == {"mode": "standard", "total_max_attempts": 7}
    assert "eiplane/0.1" in config.user_agent_extra


def test_record_api_calls_classifies_reads_and_writes(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    fake.add("DescribeVpcs", "<vpcSet><item><vpcId>vpc-12345678</vpcId></item></vpcSet>")
    fake.add("CreateTags", "<return>true</return>")
    fake.add("DescribeSecurityGroups", "<securityGroupInfo/>")

    with aws.record_api_calls() as log:
        vpcs = client.describe_vpcs()["Vpcs"]
        client.create_tags(Resources=["vpc-12345678"], Tags=[{"Key": "a", "Value": "b"}])
        client.describe_security_groups()

    assert [v["VpcId"] for v in vpcs] == ["vpc-12345678"]
    assert log.calls == ["ec2:DescribeVpcs", "ec2:CreateTags", "ec2:DescribeSecurityGroups"]
    assert log.mutating == ["ec2:CreateTags"]
    assert [p["Action"][0] for p in fake.sent] == ["DescribeVpcs", "CreateTags", "DescribeSecurityGroups"]


def test_calls_outside_the_block_are_not_recorded(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    for _ in range(3):
        fake.add("CreateTags", "<return>true</return>")
    client.create_tags(Resources=["vpc-12345678"], Tags=[{"Key": "a", "Value": "b"}])
    with aws.record_api_calls() as log:
        client.create_tags(Resources=["vpc-12345678"], Tags=[{"Key": "a", "Value": "b"}])
    client.create_tags(Resources=["vpc-12345678"], Tags=[{"Key": "a", "Value": "b"}])
    assert log.calls == ["ec2:CreateTags"]


def test_nested_recording_records_each_call_in_every_enclosing_log(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    for _ in range(3):
        fake.add("DescribeVpcs", "<vpcSet/>")
    with aws.record_api_calls() as outer:
        client.describe_vpcs()
        with aws.record_api_calls() as inner:
            client.describe_vpcs()
        client.describe_vpcs()
    assert outer.calls == ["ec2:DescribeVpcs", "ec2:DescribeVpcs", "ec2:DescribeVpcs"]
    assert inner.calls == ["ec2:DescribeVpcs"]


def test_invalid_parameters_are_not_recorded(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    with aws.record_api_calls() as log, pytest.raises(ParamValidationError):
        client.create_tags(Resources="not-a-list")
    # Parameter validation fails before the call is made: nothing reached AWS, nothing recorded.
    assert log.calls == []
    assert fake.sent == []


def test_a_call_aws_refuses_is_recorded_and_translated(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    fake.errors["CreateSecurityGroup"] = ("UnauthorizedOperation", "You are not authorized")
    with aws.record_api_calls() as log, pytest.raises(AwsAccessDenied) as caught, aws.aws_errors():
        client.create_security_group(GroupName="g", Description="d", VpcId="vpc-12345678")
    assert str(caught.value) == "CreateSecurityGroup denied (UnauthorizedOperation): You are not authorized"
    assert log.calls == ["ec2:CreateSecurityGroup"]
    assert log.mutating == ["ec2:CreateSecurityGroup"]


def test_stubbed_calls_bypass_the_recorder() -> None:
    """Documents a limit for test writers: botocore's Stubber answers on 'before-call.*.*', which
    botocore runs before the less specific 'before-call' handler the recorder uses, so calls
    answered by a Stubber are not recorded. (Real calls and moto go through the recorder.)"""
    client = aws.client("ec2", "us-east-1")
    with Stubber(client) as stubber, aws.record_api_calls() as log:
        stubber.add_response("create_tags", {}, {"Resources": ["vpc-12345678"],
                                                 "Tags": [{"Key": "a", "Value": "b"}]})
        client.create_tags(Resources=["vpc-12345678"], Tags=[{"Key": "a", "Value": "b"}])
        stubber.assert_no_pending_responses()
    assert log.calls == []


# --- paginate --------------------------------------------------------------------------------

def test_paginate_reads_every_page(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    fake.add("DescribeVpcs", "<vpcSet><item><vpcId>vpc-11111111</vpcId></item></vpcSet><nextToken>p2</nextToken>")
    fake.add("DescribeVpcs", "<vpcSet><item><vpcId>vpc-22222222</vpcId></item>"
                             "<item><vpcId>vpc-33333333</vpcId></item></vpcSet>")
    with aws.record_api_calls() as log:
        vpcs = list(aws.paginate(client, "describe_vpcs", "Vpcs"))
    assert [v["VpcId"] for v in vpcs] == ["vpc-11111111", "vpc-22222222", "vpc-33333333"]
    assert "NextToken" not in fake.sent[0]
    assert fake.sent[1]["NextToken"] == ["p2"]
    assert log.calls == ["ec2:DescribeVpcs", "ec2:DescribeVpcs"]
    assert log.mutating == []


def test_paginate_missing_key_yields_nothing(ec2: tuple[Any, FakeEc2]) -> None:
    client, fake = ec2
    fake.add("DescribeVpcs", "")
    assert list(aws.paginate(client, "describe_vpcs", "Vpcs")) == []


# --- translate -------------------------------------------------------------------------------

def client_error(code: str, message: str = "details", operation: str = "CreateRole") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize("code", sorted(aws.THROTTLING_CODES))
def test_throttling(code: str) -> None:
    error = aws.translate(client_error(code, operation="DescribeVpcs"))
    assert type(error) is AwsThrottled
    assert str(error) == f"DescribeVpcs was throttled after botocore's retries ({code})"


@pytest.mark.parametrize("code", sorted(aws.ACCESS_DENIED_CODES))
def test_access_denied(code: str) -> None:
    message = "User: arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: iam:CreateRole"
    error = aws.translate(client_error(code, message))
    assert type(error) is AwsAccessDenied
    assert str(error) == f"CreateRole denied ({code}): {message}"


@pytest.mark.parametrize("code", ["InternalFailure", "InternalError", "ServiceUnavailable"])
def test_server_errors_are_retried_by_the_asl(code: str) -> None:
    error = aws.translate(client_error(code, "what went wrong", "PutRolePolicy"))
    assert type(error) is AwsUnavailable
    assert str(error) == f"PutRolePolicy failed with a server error after botocore's retries ({code}): what went wrong"


def test_a_lost_answer_with_no_code_is_a_server_error_by_its_status() -> None:
    lost = ClientError({"Error": {"Code": "", "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "RunInstances")
    assert type(aws.translate(lost)) is AwsUnavailable


@pytest.mark.parametrize("service_codes", [("dynamodb", "ProvisionedThroughputExceededException"),
                                           ("ec2", "RequestLimitExceeded"), ("s3", "SlowDown"), ("iam", "Throttling"),
                                           ("ssm", "ThrottlingException"), ("ssm", "TooManyUpdates"),
                                           ("stepfunctions", "ThrottlingException"), ("cloudwatch", "Throttling"),
                                           ("lambda", "TooManyRequestsException"), ("sts", "Throttling")])
def test_every_throttling_code_of_every_service_eiplane_calls_is_throttling(service_codes: tuple[str, str]) -> None:
    _, code = service_codes
    assert type(aws.translate(client_error(code, "slow down", "Any"))) is AwsThrottled


@pytest.mark.parametrize("code", ["EntityAlreadyExists", "InvalidGroup.Duplicate", "ValidationError",
                                  "throttling", ""])
def test_other_errors(code: str) -> None:
    error = aws.translate(client_error(code, "what went wrong", "PutRolePolicy"))
    assert type(error) is AwsCallFailed
    assert str(error) == f"PutRolePolicy failed ({code}): what went wrong"


def test_translated_errors_are_eiplane_errors() -> None:
    for code in ("Throttling", "AccessDenied", "Other"):
        assert isinstance(aws.translate(client_error(code)), EiplaneError)


def test_error_without_message_or_code() -> None:
    error = aws.translate(ClientError({}, "GetRole"))
    assert type(error) is AwsCallFailed
    assert str(error) == "GetRole failed (): "
    assert aws.error_code(ClientError({}, "GetRole")) == ""
    assert aws.error_code(client_error("NoSuchEntity")) == "NoSuchEntity"


def test_aws_errors_translates_and_chains() -> None:
    original = client_error("AccessDenied", "no", "CreateSecurityGroup")
    with pytest.raises(AwsAccessDenied) as caught, aws.aws_errors():
        raise original
    assert caught.value.__cause__ is original
    assert str(caught.value) == "CreateSecurityGroup denied (AccessDenied): no"


def test_aws_errors_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), aws.aws_errors():
        raise KeyError("x")
    with aws.aws_errors():
        pass
