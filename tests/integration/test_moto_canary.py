"""The embedded AWS patches private parts of moto (eiplane/local/moto_gaps.py). These tests
fail loudly when a moto upgrade moves them, before anything else misbehaves quietly. So do
those of eiplane/local/sfn_strict.py (Step Functions made as strict as AWS)."""

from __future__ import annotations

import inspect
import json
import re

import boto3
import moto
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.vpcs import VPCs
from moto.iam.models import IAMBackend
from moto.stepfunctions.parser.asl.component.common.assign.assign_template_binding import (
    AssignTemplateBinding,
    AssignTemplateBindingStringExpressionSimple,
)
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
from moto.stepfunctions.parser.asl.component.common.parargs import Parargs
from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
    PayloadBinding,
    PayloadBindingStringExpressionSimple,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_func import ComparisonFunc
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_operator_type import (
    ComparisonOperatorType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_variable import ComparisonVariable
from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import NoSuchVariable, Variable
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_selector import ItemSelector
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils, state_task_lambda
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils.json_path import NoSuchJsonPathError
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from eiplane.local import moto_gaps, sfn_strict
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
        result = aws.wait(execution)

    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec")
    assert aws.clock.seconds == 3600 + 30
    assert [e["type"] for e in result.events].count("LambdaFunctionFailed") == 2


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_step_functions_internals_that_sfn_strict_replaces_still_have_their_shape() -> None:
    """eiplane/local/sfn_strict.py: one check for each moto internal it patches or relies on."""
    # payload_size: moto's own checks call the module-level is_within_size_quota(value)...
    for module in (state_module, state_task_service, state_task_lambda):
        assert _parameters(module.is_within_size_quota) == ["value"]
    assert "is_within_size_quota(value)" in inspect.getsource(state_module.CommonStateField._verify_size_quota)
    assert "self._verify_size_quota(env=env, value=env.states.get_input())" in inspect.getsource(
        state_module.CommonStateField._eval_body)
    assert "is_within_size_quota(value)" in inspect.getsource(state_task_service.StateTaskService._verify_size_quota)
    lambda_task = state_task_lambda.StateTaskLambda
    assert _parameters(lambda_task._verify_size_quota) == ["self", "env", "value"]
    assert "self._verify_size_quota(env=env, value=output)" in inspect.getsource(lambda_task._eval_execution)
    # ...a state's Parameters and a Map's ItemSelector leave their value on the stack...
    assert _parameters(Parargs._eval_body) == _parameters(ItemSelector._eval_body) == ["self", "env"]
    # ...and StartExecution reaches the parser backend with the raw input string.
    assert _parameters(StepFunctionsParserBackend.start_execution) == [
        "self", "state_machine_arn", "name", "execution_input", "trace_header"]

    # uncatchable: matching pops the error name and pushes a bool; branch errors are re-raised
    # through the module-level name CustomErrorName.
    source = inspect.getsource(ErrorEqualsDecl._eval_body)
    assert "env.stack.pop()" in source and "env.stack.append(res)" in source
    assert "self.error_names" in inspect.getsource(ErrorEqualsDecl.__init__)
    assert "CustomErrorName(error_name=error_name)" in inspect.getsource(iteration_worker)
    assert "CustomErrorName(error_name=exit_error_name)" in inspect.getsource(branches_decl)

    # choice_missing_path: a missing variable evaluates to NoSuchVariable; IsPresent is an operator.
    assert "NoSuchVariable(" in inspect.getsource(Variable._eval_body)
    assert "self.string_sampler" in inspect.getsource(Variable.__init__)
    assert {"self.variable", "self.comparison_function"} <= set(
        re.findall(r"self\.\w+", inspect.getsource(ComparisonVariable.__init__)))
    assert "self.operator_type" in inspect.getsource(ComparisonFunc.__init__)
    assert ComparisonOperatorType.IsPresent and NoSuchVariable

    # missing_field_path: the `.$` bindings evaluate through these, which raise NoSuchJsonPathError.
    assert _parameters(PayloadBindingStringExpressionSimple._eval_val) == ["self", "env"]
    assert _parameters(AssignTemplateBindingStringExpressionSimple._eval_value) == ["self", "env"]
    assert "self.field = field" in inspect.getsource(PayloadBinding.__init__)
    assert "self.identifier = identifier" in inspect.getsource(AssignTemplateBinding.__init__)
    assert {"json_path", "data"} <= set(inspect.signature(NoSuchJsonPathError).parameters)

    # lambda_errors: both Lambda task kinds map errors in _from_error; the optimized one already
    # builds AWS's Lambda.<Code> name and cause from a ClientError.
    assert _parameters(lambda_task._from_error) == _parameters(StateTaskServiceLambda._from_error) == [
        "self", "env", "ex"]
    assert "error = \"Exception\"" in inspect.getsource(lambda_task._from_error)
    assert _parameters(StateTaskServiceLambda._error_cause_from_client_error) == ["client_error"]
    assert "payload" in inspect.signature(lambda_eval_utils.LambdaFunctionErrorException).parameters

    # error_cause_limits: every failure is a FailureEvent built from these.
    assert _parameters(FailureEvent.__init__) == ["self", "env", "error_name", "event_type", "event_details"]

    # history_limit: one EventManager per execution, shared by its frames, numbering from 1.
    assert _parameters(EventManager.add_event) == [
        "self", "context", "event_type", "event_details", "timestamp", "update_source_event_id"]
    assert EventManager()._event_id_gen._next_id == 1
    assert "frame.event_manager = env.event_manager" in inspect.getsource(Environment.as_inner_frame_of)
    assert _parameters(Environment.set_error) == ["self", "error"]


def test_sfn_strict_patches_and_restores_moto() -> None:
    before = (ErrorEqualsDecl._eval_body, EventManager.add_event)
    with sfn_strict.strict_step_functions(disable={"history_limit"}):
        assert ErrorEqualsDecl._eval_body is not before[0] and EventManager.add_event is before[1]
        with sfn_strict.relaxed("uncatchable"):
            assert ErrorEqualsDecl._eval_body is before[0]
        assert ErrorEqualsDecl._eval_body is not before[0]
    assert (ErrorEqualsDecl._eval_body, EventManager.add_event) == before
    with pytest.raises(ValueError, match="unknown Step Functions patches"), \
            sfn_strict.strict_step_functions(disable={"no_such_patch"}):
        pass
