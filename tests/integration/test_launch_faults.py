"""A slot generation launches at most one instance, and no fault leaves an instance running that
is not in service, at the latest after a re-run: the faults of an outside review's fault matrix,
each injected where moto cannot produce it (an answer lost after RunInstances took effect, the state
write right after the launch, a compensation whose termination fails, a Lambda that times out right
after RunInstances, DynamoDB throttling, DescribeInstances not yet showing a new instance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eiplane.local.engine import EmbeddedAws
from eiplane.local.lambda_runtime import clear_handler_hooks
from tests.integration.conftest import Faults, failed_lambda_errors, spec_for
from tests.integration.test_launch import (
    assert_only_in_service_instances_run,
    push_artifact,
    running_instances,
    slot_records,
)

FLEET = "demo-gpu"


@pytest.fixture
def gpu_fleet_1(aws: EmbeddedAws, torchscript_artifact: Path) -> dict[str, Any]:
    """One gpu instance validating the quickest artifact (TorchScript, batch 1, fp32)."""
    push_artifact(aws, FLEET, torchscript_artifact)
    spec = spec_for("gpu", desired=1)
    spec["model"] = {"name": "tiny-cnn", "version": "1", "precisions": ["fp32"]}
    return spec


def launched(aws: EmbeddedAws, slot: int = 0) -> list[str]:
    """Every instance ever launched for the slot, terminated ones included."""
    reservations = aws.client("ec2").describe_instances(Filters=[
        {"Name": "tag:eiplane:fleet", "Values": [FLEET]}, {"Name": "tag:eiplane:slot", "Values": [str(slot)]}])
    return sorted(i["InstanceId"] for r in reservations["Reservations"] for i in r["Instances"])


def writes_launching(params: dict[str, Any]) -> bool:
    """The state write right after the launch (the slot's state set to launching)."""
    body = params.get("body", b"")
    return '{"S": "launching"}' in (body.decode() if isinstance(body, bytes) else str(body))


def not_yet_visible(faults: Faults, times: int) -> None:
    """DescribeInstances is eventually consistent: right after a launch it may not list the new
    instance to LaunchInstance's look-up. Only the ClientToken then keeps a retried launch from
    launching again."""
    def hide(parsed: dict[str, Any]) -> None:
        parsed["Reservations"] = []
    faults.rewrite("ec2", "DescribeInstances", hide, times=times, function="LaunchInstanceFunction")


def test_a_lost_runinstances_answer_launches_nothing_twice(aws: EmbeddedAws, gpu_fleet_1: dict,
                                                           faults: Faults) -> None:
    faults.lose_response("ec2", "RunInstances", times=1)
    not_yet_visible(faults, times=2)  # the tag look-up of both runs of the step sees nothing
    result = aws.run(gpu_fleet_1, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result).count("AwsUnavailable") == 1  # the ASL retried the step
    assert len(launched(aws)) == 1  # the retried RunInstances carried the same token: the same instance
    assert_only_in_service_instances_run(aws, FLEET)


def test_a_retried_launch_resumes_at_its_candidate_not_the_first(aws: EmbeddedAws, gpu_fleet_1: dict,
                                                                  faults: Faults) -> None:
    """The first candidate had no capacity, the second launched and its answer was lost; by the
    time the step runs again the first has capacity: it must not launch there too."""
    faults.fail("ec2", "RunInstances", "InsufficientInstanceCapacity", times=1)
    faults.lose_response("ec2", "RunInstances", times=1)
    not_yet_visible(faults, times=2)
    result = aws.run(gpu_fleet_1, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert len(launched(aws)) == 1
    assert_only_in_service_instances_run(aws, FLEET)


def test_the_state_write_after_a_launch_fails_the_instance_is_found_by_its_tags(aws: EmbeddedAws, gpu_fleet_1: dict,
                                                                                faults: Faults) -> None:
    faults.fail("dynamodb", "UpdateItem", "ValidationException", times=1,
                when=writes_launching)
    result = aws.run(gpu_fleet_1, name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    (instance,) = launched(aws)
    assert aws.client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
        "State"]["Name"] in ("shutting-down", "terminated")
    assert running_instances(aws) == {}
    assert aws.run(gpu_fleet_1, name="gpu-2").status == "SUCCEEDED"
    assert_only_in_service_instances_run(aws, FLEET)


def test_dynamodb_throttling_is_retried_not_failed(aws: EmbeddedAws, gpu_fleet_1: dict, faults: Faults) -> None:
    faults.fail("dynamodb", "UpdateItem", "ProvisionedThroughputExceededException", times=1, status=400,
                when=writes_launching)
    result = aws.run(gpu_fleet_1, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result).count("AwsThrottled") == 1  # (beside the waits' own AgentNotReady...)
    assert len(launched(aws)) == 1


def test_a_failed_compensation_is_cleaned_up_by_the_rerun_not_added_to(aws: EmbeddedAws, gpu_fleet_1: dict,
                                                                        faults: Faults) -> None:
    faults.rewrite("ssm", "DescribeInstanceInformation", lambda parsed: parsed.update(InstanceInformationList=[]))
    faults.fail("ec2", "TerminateInstances", "InternalError", times=None, status=400)
    failed = aws.run(gpu_fleet_1, name="gpu-1")
    assert "CompensationFailed" in failed.states_entered() and failed.status == "FAILED"
    (orphan,) = running_instances(aws)
    clear_handler_hooks()  # the faults pass

    rerun = aws.run({**gpu_fleet_1, "capacity": {"min": 0, "desired": 2, "max": 2}}, name="gpu-2")

    assert rerun.status == "SUCCEEDED", rerun.cause
    assert orphan not in running_instances(aws)  # found by its tags and terminated, not kept beside two new ones
    assert len(running_instances(aws)) == 2
    assert_only_in_service_instances_run(aws, FLEET)


def test_a_lambda_timeout_right_after_runinstances_is_retried_and_launches_once(aws: EmbeddedAws, gpu_fleet_1: dict,
                                                                                 faults: Faults) -> None:
    faults.delay("ec2", "RunInstances", 121, function="LaunchInstanceFunction", after=True)  # Timeout 120
    not_yet_visible(faults, times=1)
    result = aws.run(gpu_fleet_1, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert "Sandbox.Timedout" in failed_lambda_errors(result)
    assert len(launched(aws)) == 1
    assert_only_in_service_instances_run(aws, FLEET)


def test_a_lambda_timeout_with_no_retry_left_compensates_by_tags(aws: EmbeddedAws, gpu_fleet_1: dict,
                                                                 faults: Faults) -> None:
    faults.delay("ec2", "RunInstances", 121, function="LaunchInstanceFunction", after=True)
    faults.delay("ec2", "DescribeInstances", 121, function="LaunchInstanceFunction", after=True)  # every retry times out
    result = aws.run(gpu_fleet_1, name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    assert running_instances(aws) == {}
    records = slot_records(aws, FLEET)
    assert records[0]["state"] == "failed" and records[0]["reason"].startswith("Sandbox.Timedout")


def test_two_executions_of_one_spec_started_together_both_report_the_fleet_truthfully(
        aws: EmbeddedAws, gpu_fleet_1: dict) -> None:
    spec = {**gpu_fleet_1, "capacity": {"min": 0, "desired": 2, "max": 2}}
    first = aws.start_execution(spec, name="gpu-a")
    second = aws.start_execution(spec, name="gpu-b")
    results = [aws.wait(first), aws.wait(second)]

    for result in results:
        assert result.status == "SUCCEEDED", result.cause
        assert (result.output["in_service"], result.output["complete"]) == (2, True)
    assert sum(r.output["provisioned"] for r in results) == 2  # each slot launched by one of them
    assert len(running_instances(aws)) == 2
    assert_only_in_service_instances_run(aws, FLEET)
