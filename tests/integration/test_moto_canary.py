"""The embedded AWS patches private parts of moto (eiplane/local/moto_gaps.py). These tests
fail loudly when a moto upgrade moves them, before anything else misbehaves quietly."""

from __future__ import annotations

import inspect
import json

import boto3
import moto
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.vpcs import VPCs
from moto.iam.models import IAMBackend
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from eiplane.local import moto_gaps
from eiplane.local.engine import EmbeddedAws


def test_moto_is_the_pinned_version() -> None:
    assert moto.__version__ == moto_gaps.SUPPORTED_MOTO


def test_patched_moto_internals_still_have_the_shape_we_replace() -> None:
    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]
    assert list(inspect.signature(WaitFunction._wait_interval).parameters) == ["self", "env", "wait_seconds"]
    assert "time.sleep(interval_seconds)" in inspect.getsource(retrier_decl.RetrierDecl)
    assert "PrivateDnsEnabled" not in inspect.getsource(VPCs.modify_vpc_endpoint)
    assert callable(IAMBackend._init_aws_policies)
    # parse is cached by definition: it must still return (program, tree) from the ANTLR tree
    source = inspect.getsource(AmazonStateLanguageParser.parse)
    assert "preprocessor.visit(tree)" in source and "return program, tree" in source
    # start_instances is wrapped (the agent boots again): it must still read InstanceIds itself
    assert 'self._get_param("InstanceIds"' in inspect.getsource(InstanceResponse.start_instances)


def test_moto_still_ignores_private_dns_on_modify_without_our_patch() -> None:
    """When this fails, moto applies PrivateDnsEnabled itself: drop that patch."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        endpoint = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.ssm",
                                           VpcEndpointType="Interface", PrivateDnsEnabled=False)["VpcEndpoint"]
        ec2.modify_vpc_endpoint(VpcEndpointId=endpoint["VpcEndpointId"], PrivateDnsEnabled=True)
        after = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint["VpcEndpointId"]])["VpcEndpoints"][0]
        assert after["PrivateDnsEnabled"] is False


def test_engine_runs_handlers_fast_forwards_waits_and_names_errors() -> None:
    definition = {"StartAt": "Hour", "States": {
        "Hour": {"Type": "Wait", "Seconds": 3600, "Next": "Check"},
        "Check": {"Type": "Task", "Resource": "${Fn}", "Retry": [
            {"ErrorEquals": ["InvalidFleetSpec"], "IntervalSeconds": 30, "MaxAttempts": 1}], "End": True}}}
    with EmbeddedAws() as aws:
        function_arn = aws.client("lambda").get_function(
            FunctionName=aws.stack.functions["ValidateFleetSpecFunction"])["Configuration"]["FunctionArn"]
        sfn = aws.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="canary", roleArn="arn:aws:iam::123456789012:role/x",
            definition=json.dumps(definition).replace("${Fn}", function_arn))["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="c1", input=json.dumps({"spec": [], "context": {
            "execution_id": "arn:aws:states:us-east-1:123456789012:execution:canary:c1"}}))["executionArn"]
        result = aws.wait(execution, timeout_s=20)

    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec")
    assert aws.clock.seconds == 3600 + 30
    assert [e["type"] for e in result.events].count("LambdaFunctionFailed") == 2
