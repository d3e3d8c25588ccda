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
    # stop and terminate are wrapped (the instance's services shut down): they too read InstanceIds
    for operation in (InstanceResponse.stop_instances, InstanceResponse.terminate_instances):
        assert 'self._get_param("InstanceIds"' in inspect.getsource(operation)
    # put_metric_data is wrapped (no AWS/ namespace): it must still read Namespace itself
    from moto.cloudwatch.responses import CloudWatchResponse

    assert 'self._get_param("Namespace")' in inspect.getsource(CloudWatchResponse.put_metric_data)


def test_moto_still_takes_metrics_into_aws_namespaces_without_our_patch() -> None:
    """When this fails, moto refuses AWS/ namespaces itself: drop that patch."""
    with mock_aws():
        boto3.client("cloudwatch", region_name="us-east-1").put_metric_data(
            Namespace="AWS/ApplicationELB", MetricData=[{"MetricName": "RequestCount", "Value": 1}])


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


# --- eiplane/local/load_balancers.py: the ALB's data plane -------------------------------------------

def test_elbv2_and_cloudwatch_internals_that_load_balancers_replaces_still_have_their_shape() -> None:
    from moto.cloudwatch.models import CloudWatchBackend, Dimension, MetricDatumBase, Statistics
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeListener, FakeTargetGroup

    # The replaced functions, called as the patches expect...
    assert _parameters(ELBv2Backend.create_load_balancer) == [
        "self", "name", "security_groups", "subnet_ids", "subnet_mappings", "scheme", "loadbalancer_type",
        "ip_address_type", "tags"]
    assert 'dns_name = f"{name}-1.{self.region_name}.elb.amazonaws.com"' in inspect.getsource(
        ELBv2Backend.create_load_balancer)
    assert _parameters(FakeTargetGroup.register) == _parameters(FakeTargetGroup.deregister) == ["self", "targets"]
    assert "target_group.register(instances)" in inspect.getsource(ELBv2Backend.register_targets)
    assert "target_group.deregister(instances)" in inspect.getsource(ELBv2Backend.deregister_targets)
    assert _parameters(FakeTargetGroup.deregister_terminated_instances) == ["self", "instance_ids"]
    assert "deregister_terminated_instances(instance_ids)" in inspect.getsource(ELBv2Backend.notify_terminate_instances)
    assert _parameters(FakeTargetGroup.health_for) == ["self", "target", "ec2_backend"]
    describe = inspect.getsource(ELBv2Backend.describe_target_health)  # lists `targets`, draining ones included
    assert "list(target_group.targets.values())" in describe and "health_for(target, self.ec2_backend)" in describe
    assert _parameters(FakeHealthStatus.__init__) == [
        "self", "instance_id", "port", "health_port", "status", "reason", "description"]
    # ...and the model attributes the health checker and the proxy read.
    group_init = inspect.getsource(FakeTargetGroup.__init__)
    for attribute in ("self.targets", "self.deregistered_targets", "self.health_check_path", "self.health_check_port",
                      "self.health_check_interval_seconds", "self.health_check_timeout_seconds", "self.matcher",
                      "self.healthy_threshold_count", "self.unhealthy_threshold_count", "self.health_check_enabled",
                      '"deregistration_delay.timeout_seconds"', '"load_balancing.algorithm.type"'):
        assert attribute in group_init, attribute
    assert {"self.default_actions", "self.port", "self.protocol"} <= set(
        re.findall(r"self\.\w+", inspect.getsource(FakeListener.__init__)))
    assert "_default_rule" in inspect.getsource(FakeListener.rules.fget)  # type: ignore[attr-defined]

    assert _parameters(Statistics.get_statistics_for_type) == ["self", "stat"]
    data = inspect.getsource(CloudWatchBackend.get_metric_data)
    assert "stats.get_statistics_for_type(stat)" in data and "sorted(md.dimensions) == sorted(dimensions)" in data
    assert _parameters(Dimension.__lt__) == ["self", "other"]
    assert "are_dimensions_same(" in inspect.getsource(MetricDatumBase.filter)
    assert 'extended_statistics = self._get_param("ExtendedStatistics")' in inspect.getsource(
        CloudWatchResponse.get_metric_statistics)
    assert _parameters(CloudWatchBackend.get_metric_statistics) == [
        "self", "namespace", "metric_name", "start_time", "end_time", "period", "stats", "dimensions", "unit"]
    assert "md.filter(None, None, dimensions)" in inspect.getsource(CloudWatchBackend.get_metric_statistics)
    assert "self.metric_data" in inspect.getsource(Statistics.__init__)  # what each statistic is computed from


def test_moto_still_lacks_what_load_balancers_adds() -> None:
    """When one of these fails, moto does it itself: drop that part of eiplane/local/load_balancers.py."""
    import datetime

    from botocore.exceptions import ClientError

    with mock_aws():
        ec2, elbv2 = boto3.client("ec2", region_name="us-east-1"), boto3.client("elbv2", region_name="us-east-1")
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        subnet = ec2.describe_subnets()["Subnets"][0]
        balancer = elbv2.create_load_balancer(Name="one-zone", Subnets=[subnet["SubnetId"]])["LoadBalancers"][0]
        assert balancer["DNSName"] == "one-zone-1.us-east-1.elb.amazonaws.com"  # accepted, and not AWS's name
        group = elbv2.create_target_group(Name="g", Protocol="HTTP", Port=80, VpcId=subnet["VpcId"],
                                          HealthCheckPath="/ping")["TargetGroups"][0]["TargetGroupArn"]
        instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                     SubnetId=subnet["SubnetId"])["Instances"][0]["InstanceId"]
        elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
        health = elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
        assert [h["TargetHealth"]["State"] for h in health] == ["healthy"]  # at once, with no listener
        with pytest.raises(ClientError, match="InvalidTarget"):
            elbv2.deregister_targets(TargetGroupArn=group, Targets=[{"Id": "i-0123456789abcdef0"}])
        elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": "i-0123456789abcdef0"}])  # no such instance
        ec2.terminate_instances(InstanceIds=[instance])
        health = elbv2.describe_target_health(TargetGroupArn=group, Targets=[{"Id": instance}])
        assert health["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "draining"

        at = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
        dimensions = [{"Name": "LoadBalancer", "Value": "app/x/1"}, {"Name": "TargetGroup", "Value": "targetgroup/t/2"}]
        for _ in range(2):
            cloudwatch.put_metric_data(Namespace="N", MetricData=[
                {"MetricName": "T", "Dimensions": dimensions, "Timestamp": at, "Values": [0.1, 0.9], "Counts": [99, 1]}])

        def query(stat: str, order: list[dict[str, str]]) -> list[float]:
            return cloudwatch.get_metric_data(StartTime=at, EndTime=at + datetime.timedelta(minutes=1), MetricDataQueries=[
                {"Id": "q", "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "T", "Dimensions": order},
                                           "Period": 60, "Stat": stat}}])["MetricDataResults"][0]["Values"]

        with pytest.raises(TypeError):  # a percentile statistic is None, which the response cannot serialize
            query("p99", dimensions)
        assert query("Maximum", dimensions) == [0.9] and query("Maximum", dimensions[::-1]) == []
        assert len(cloudwatch.list_metrics(Namespace="N")["Metrics"]) > 1  # one per datum, not one per metric
        points = cloudwatch.get_metric_statistics(Namespace="N", MetricName="T", Dimensions=dimensions, StartTime=at,
                                                  EndTime=at + datetime.timedelta(minutes=1), Period=60,
                                                  ExtendedStatistics=["p99"])["Datapoints"]
        assert "ExtendedStatistics" not in points[0]
        points = cloudwatch.get_metric_statistics(Namespace="N", MetricName="T", Dimensions=dimensions[:1], StartTime=at,
                                                  EndTime=at + datetime.timedelta(minutes=1), Period=60,
                                                  Statistics=["SampleCount"])["Datapoints"]
        assert points[0]["SampleCount"] == 200  # a metric with more dimensions than asked for is counted too


def test_load_balancers_patches_and_restores_moto() -> None:
    from moto.cloudwatch import models as cloudwatch_models
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.elbv2.models import ELBv2Backend, FakeTargetGroup

    from eiplane.local.load_balancers import LoadBalancers

    def replaced() -> tuple[object, ...]:
        return (ELBv2Backend.create_load_balancer, FakeTargetGroup.register, FakeTargetGroup.deregister,
                FakeTargetGroup.deregister_terminated_instances, FakeTargetGroup.health_for,
                cloudwatch_models.Statistics.get_statistics_for_type, CloudWatchResponse.get_metric_statistics,
                CloudWatchBackend.get_metric_statistics,
                cloudwatch_models.Dimension.__lt__, cloudwatch_models.are_dimensions_same)

    before = replaced()
    with LoadBalancers(moto_gaps.VirtualClock(), lambda instance, port: None, "123456789012", "us-east-1").patched():
        assert all(now is not then for now, then in zip(replaced(), before, strict=True))
    assert replaced() == before


def test_metric_stat_data_answers_as_moto_does_where_moto_is_right() -> None:
    """moto_gaps.metric_stat_data replaces moto's GetMetricData for MetricStat queries (moto scans every
    datapoint for every period): on data where moto's matching is right (one dimension set per metric),
    both give the same answer; and moto still scans period by period (else drop the patch)."""
    from datetime import UTC, datetime, timedelta

    from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

    assert "period_start_time <= period_md.timestamp < period_end_time" in inspect.getsource(
        CloudWatchBackend.get_metric_data)
    start = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        for minute in range(5):
            cloudwatch.put_metric_data(Namespace="eiplane/Inference", MetricData=[
                {"MetricName": "Requests", "Dimensions": [{"Name": "Fleet", "Value": "f"}],
                 "Timestamp": start + timedelta(minutes=minute, seconds=s), "Value": float(minute + s)}
                for s in (0, 20) if minute != 2])
        queries = [{"Id": f"q{n}", "MetricStat": {"Metric": {"Namespace": "eiplane/Inference", "MetricName": "Requests",
                                                             "Dimensions": [{"Name": "Fleet", "Value": "f"}]},
                                                  "Period": period, "Stat": stat}}
                   for n, (period, stat) in enumerate([(60, "Sum"), (120, "Maximum"), (60, "SampleCount")])]
        backend = cloudwatch_backends["123456789012"]["us-east-1"]
        first = start.replace(tzinfo=None)  # moto keeps (and its API passes) naive UTC
        last = first + timedelta(minutes=6)
        for scan_by in ("TimestampAscending", "TimestampDescending"):
            ours = moto_gaps.metric_stat_data(backend, queries, first, last, scan_by)
            theirs = CloudWatchBackend.get_metric_data(backend, queries, first, last, scan_by)
            assert ours == theirs


def test_execution_end_that_eventbridge_patches_still_has_its_shape() -> None:
    """eiplane/local/eventbridge.py replaces BaseExecutionWorkerCommunication.terminated and reads the program state
    as moto's _reflect_execution_status does."""
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    assert list(inspect.signature(BaseExecutionWorkerCommunication.terminated).parameters) == ["self"]
    source = inspect.getsource(BaseExecutionWorkerCommunication._reflect_execution_status)
    for state in ("ProgramEnded", "ProgramStopped", "ProgramError", "ProgramTimedOut"):
        assert state in source


def test_moto_still_lacks_what_eventbridge_adds() -> None:
    """When one of these fails, moto does it itself: drop that part of eiplane/local/eventbridge.py."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[call-overload]
        events, sns = boto3.client("events", region_name="us-east-1"), boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        events.put_rule(Name="r", EventPattern=json.dumps({"source": ["aws.states"]}))
        events.put_targets(Rule="r", Targets=[{"Id": "t", "Arn": topic}])
        with pytest.raises(NotImplementedError):  # no SNS target
            events.put_events(Entries=[{"Source": "aws.states", "DetailType": "x", "Detail": "{}"}])
    from moto.events.utils import EventTemplateParser

    event = {"detail": {"cause": 'a "quoted" cause'}, "ingestion-time": 0}
    with pytest.raises(ValueError):  # a value pasted into a string unescaped
        EventTemplateParser.parse('"<cause>"', {"cause": "$.detail.cause"}, event)  # type: ignore[arg-type]
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[call-overload]
        from eiplane.executions import wait_for_execution

        sfn, events, sqs = (boto3.client(s, region_name="us-east-1") for s in ("stepfunctions", "events", "sqs"))
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventPattern=json.dumps({"source": ["aws.states"]}))
        events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": queue_arn}])
        machine = sfn.create_state_machine(name="m", roleArn="arn:aws:iam::123456789012:role/r", definition=json.dumps(
            {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E"}}}))["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="e")["executionArn"]
        assert wait_for_execution(sfn, execution, 30).status == "FAILED"
        assert "Messages" not in sqs.receive_message(QueueUrl=queue)  # no status-change event reached the bus
