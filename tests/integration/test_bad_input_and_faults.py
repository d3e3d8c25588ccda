"""Bad specs fail in the first state with one named error and nothing created; faults that
moto cannot produce are injected and the ASL's Retry / Catch handle them as designed."""

from __future__ import annotations

import json

import pytest

from eiplane.local.engine import EmbeddedAws
from tests.conftest import load_event
from tests.integration.conftest import (
    EMPTY_INVENTORY,
    Faults,
    failed_lambda_errors,
    managed_inventory,
    private_vpc,
    spec_for,
)


def test_invalid_spec_names_every_problem_and_creates_nothing(aws: EmbeddedAws) -> None:
    result = aws.run(load_event("provision_fleet_invalid.json"), name="bad-1")

    assert result.status == "FAILED"
    assert result.error == "InvalidFleetSpec"
    assert result.states_entered() == ["ValidateFleetSpec", "FleetSpecRejected"]
    message = result.error_message()
    assert message is not None and message.startswith("fleet spec has 5 problems")
    for fragment in ("name: String should match pattern", "backend.gpu.instance_type: 'm5.large' is not a gpu instance type",
                     "capacity: must satisfy min <= desired <= max", "tags: key 'eiplane:fleet' uses a reserved",
                     "colour: Extra inputs are not permitted"):
        assert fragment in message
    assert managed_inventory(aws) == EMPTY_INVENTORY


@pytest.mark.parametrize("execution_input", ['["not", "a", "spec"]', '"just a string"', "{}"])
def test_input_that_is_not_a_spec_at_all(aws: EmbeddedAws, execution_input: str) -> None:
    result = aws.run(execution_input, name="bad-1")

    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec")
    assert managed_inventory(aws) == EMPTY_INVENTORY


def test_unknown_subnets_and_subnets_of_another_vpc_are_named(aws: EmbeddedAws) -> None:
    other = private_vpc(aws)
    default_subnet = aws.client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]["SubnetId"]
    network = {"vpc_id": other["vpc_id"], "subnet_ids": [other["subnet_ids"][0], default_subnet, "subnet-0123456789abcdef0"]}
    result = aws.run(spec_for("gpu", network=network), name="bad-1")

    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec")
    message = result.error_message() or ""
    assert "subnet-0123456789abcdef0 does not exist" in message
    assert f"{default_subnet} is in vpc-" in message and f"not {other['vpc_id']}" in message
    assert managed_inventory(aws) == EMPTY_INVENTORY


def test_instance_type_not_offered_in_the_fleet_zones(aws: EmbeddedAws) -> None:
    # moto's offerings: g6e.xlarge is not offered in us-east-1f.
    subnet = aws.client("ec2").describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1f"]}])["Subnets"][0]["SubnetId"]
    spec = spec_for("gpu", network={"subnet_ids": [subnet]})
    spec["backend"] = {"type": "gpu", "instance_type": "g6e.xlarge"}
    result = aws.run(spec, name="bad-1")

    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec")
    assert "g6e.xlarge is not offered in the fleet's availability zones (us-east-1f)" in (result.error_message() or "")


def test_eia_on_real_aws_fails_fast_naming_the_alternatives(aws: EmbeddedAws) -> None:
    assert aws.runtime is not None
    for function in aws.runtime.functions.values():
        function.environment["EIPLANE_RUNTIME"] = "aws"  # as deployed by template.yaml
    result = aws.run(spec_for("eia"), name="eia-aws")

    assert (result.status, result.error) == ("FAILED", "BackendUnavailable")
    assert result.states_entered() == ["ValidateFleetSpec", "BackendUnavailable"]
    message = result.error_message() or ""
    assert "no longer available" in message and "'gpu'" in message and "'inferentia'" in message
    assert managed_inventory(aws) == EMPTY_INVENTORY


def test_region_without_elastic_inference_fails_in_the_plan_before_anything_is_created(
        aws: EmbeddedAws, faults: Faults) -> None:
    def drop_elastic_inference(parsed: dict) -> None:
        parsed["ServiceDetails"] = [s for s in parsed["ServiceDetails"] if "elastic-inference" not in s["ServiceName"]]

    faults.rewrite("ec2", "DescribeVpcEndpointServices", drop_elastic_inference)
    result = aws.run(spec_for("eia"), name="eia-1")

    assert (result.status, result.error) == ("FAILED", "BackendUnavailable")
    assert result.states_entered() == ["ValidateFleetSpec", "PlanPrerequisites", "BackendUnavailable"]
    assert "not offered in us-east-1" in (result.error_message() or "")
    assert managed_inventory(aws) == EMPTY_INVENTORY


def test_throttling_is_retried_by_the_state_machine_with_backoff(aws: EmbeddedAws, faults: Faults) -> None:
    faults.fail("ec2", "CreateSecurityGroup", "RequestLimitExceeded", times=2)
    waited_before = aws.clock.seconds
    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result) == ["AwsThrottled", "AwsThrottled"]
    assert result.states_entered().count("EnsureNetwork") == 1  # retries stay inside the state
    assert aws.clock.seconds - waited_before > 0, "retry intervals were not applied"
    groups = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["eiplane-demo-gpu-instances"]}])["SecurityGroups"]
    assert len(groups) == 1


def test_endpoint_pending_is_waited_for_by_retry(aws: EmbeddedAws, faults: Faults) -> None:
    def pending(parsed: dict) -> None:
        for endpoint in parsed["VpcEndpoints"]:
            endpoint["State"] = "pending"

    faults.rewrite("ec2", "DescribeVpcEndpoints", pending, times=None)  # never becomes available
    waited_before = aws.clock.seconds
    result = aws.run(spec_for("eia"), name="eia-1")

    assert result.status == "FAILED"
    assert result.error == "PrerequisiteNotReady"
    assert result.states_entered()[-2:] == ["AwaitVpcEndpoints", "PrerequisitesNotReady"]
    assert failed_lambda_errors(result).count("PrerequisiteNotReady") == 13  # first try + 12 retries
    waited = aws.clock.seconds - waited_before
    assert 9 * 60 < waited < 12 * 60, f"the endpoint wait should last about 10 minutes, not {waited:.0f} s"


def test_endpoint_that_becomes_available_after_two_checks(aws: EmbeddedAws, faults: Faults) -> None:
    calls = {"n": 0}

    def pending_twice(parsed: dict) -> None:
        if len(parsed["VpcEndpoints"]) == 1 and calls["n"] < 2:  # the by-id check of one endpoint
            calls["n"] += 1
            parsed["VpcEndpoints"][0]["State"] = "pending"

    faults.rewrite("ec2", "DescribeVpcEndpoints", pending_twice)
    result = aws.run(spec_for("eia"), name="eia-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result) == ["PrerequisiteNotReady", "PrerequisiteNotReady"]


def test_access_denied_fails_with_the_action_named_and_rerun_completes(aws: EmbeddedAws, faults: Faults) -> None:
    faults.fail("iam", "CreateRole", "AccessDenied", times=1,
                message="User is not authorized to perform: iam:CreateRole")
    failed = aws.run(spec_for("gpu"), name="gpu-1")

    assert (failed.status, failed.error) == ("FAILED", "AwsAccessDenied")
    assert failed.states_entered()[-2:] == ["EnsureInstanceRole", "PrerequisitesFailed"]
    assert "CreateRole" in (failed.error_message() or "")
    # What EnsureNetwork created is tagged and found again: the re-run completes, no duplicate.
    rerun = aws.run(spec_for("gpu"), name="gpu-2")
    assert rerun.status == "SUCCEEDED", rerun.cause
    by_kind = {p["kind"]: p["outcome"] for p in rerun.output["prerequisites"]}
    assert by_kind == {"security_group": "found", "iam_role": "created", "instance_profile": "created"}


def test_concurrent_executions_for_one_fleet_create_one_of_each(aws: EmbeddedAws) -> None:
    arns = [aws.start_execution(spec_for("eia"), name=f"eia-{i}") for i in range(3)]
    results = [aws.wait(arn) for arn in arns]

    assert [r.status for r in results] == ["SUCCEEDED"] * 3
    inventory = managed_inventory(aws)
    assert len(inventory["security_groups"]) == 2  # instance group + endpoint group
    assert len(inventory["vpc_endpoints"]) == 1
    assert inventory["roles"] == ["eiplane-demo-eia-instance"]
    assert json.dumps(inventory).count("PREREQUISITES") == 1
