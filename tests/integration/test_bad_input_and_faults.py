"""Bad specs fail in the first state with one named error and nothing created; faults that
moto cannot produce are injected and the ASL's Retry / Catch handle them as designed."""

from __future__ import annotations

import json

import boto3
import pytest

from eiplane.errors import ImageNotFound
from eiplane.executions import ExecutionResult
from eiplane.local.engine import EmbeddedAws, seed_images
from eiplane.models.spec import parse_fleet_spec
from eiplane.provisioning.plan import resolve_image, root_device_name
from tests.conftest import load_event
from tests.integration.conftest import (
    EMPTY_INVENTORY,
    Faults,
    failed_lambda_errors,
    fleet_report,
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
    by_kind = {p["kind"]: p["outcome"] for p in fleet_report(aws, rerun)["prerequisites"]}
    assert by_kind == {"security_group": "found", "iam_role": "created", "instance_profile": "created",
                       "target_group": "created", "load_balancer": "created", "listener": "created"}


def test_concurrent_executions_for_one_fleet_create_one_of_each(aws: EmbeddedAws) -> None:
    arns = [aws.start_execution(spec_for("eia"), name=f"eia-{i}") for i in range(3)]
    results = [aws.wait(arn) for arn in arns]

    assert [r.status for r in results] == ["SUCCEEDED"] * 3
    inventory = managed_inventory(aws)
    assert len(inventory["security_groups"]) == 3  # instance group, load balancer group, endpoint group
    assert len(inventory["vpc_endpoints"]) == 1
    elbv2 = aws.client("elbv2")  # one endpoint: one balancer, one target group, one listener
    balancers = elbv2.describe_load_balancers()["LoadBalancers"]
    assert len(balancers) == 1 and len(elbv2.describe_target_groups()["TargetGroups"]) == 1
    assert len(elbv2.describe_listeners(LoadBalancerArn=balancers[0]["LoadBalancerArn"])["Listeners"]) == 1
    assert inventory["roles"] == ["eiplane-demo-eia-instance"]
    assert json.dumps(inventory).count("PREREQUISITES") == 1


# --- rejected in ValidateFleetSpec, before anything exists (generated-spec review) ------------

def assert_rejected_first(result: ExecutionResult, aws: EmbeddedAws) -> str:
    """The execution failed in its first state with InvalidFleetSpec, and nothing exists."""
    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec"), (result.error, result.cause)
    assert result.states_entered() == ["ValidateFleetSpec", "FleetSpecRejected"]
    assert managed_inventory(aws) == EMPTY_INVENTORY
    message = result.error_message() or ""
    assert message.startswith("fleet spec has ")
    return message


@pytest.mark.parametrize("region", ["xx-nowhere-9", "us-east-9", "cn-south-7", "us-gov-north-4"])
def test_region_that_does_not_exist_is_named(aws: EmbeddedAws, region: str) -> None:
    message = assert_rejected_first(aws.run(spec_for("gpu", region=region), name="bad-1"), aws)
    assert f"region: {region!r} is not a region of the " in message
    assert "us-east-1" in message or "cn-north-1" in message or "us-gov-west-1" in message


def test_missing_image_parameter_is_rejected_before_anything_is_created(aws: EmbeddedAws) -> None:
    spec = spec_for("gpu", desired=1)
    spec["backend"] = {"type": "gpu", "image_parameter": "/aws/service/deeplearning/ami/x86_64/pytorch-1.13/ami-id"}
    message = assert_rejected_first(aws.run(spec, name="bad-1"), aws)
    assert "backend.image_parameter: SSM parameter /aws/service/deeplearning/ami/x86_64/pytorch-1.13/ami-id " \
           "does not exist in us-east-1" in message
    assert "AWS retires framework-versioned" in message


def test_image_parameter_value_that_is_not_an_ami_is_never_echoed(aws: EmbeddedAws) -> None:
    secret = "db-password-hunter2-do-not-print"
    aws.client("ssm").put_parameter(Name="/eiplane/team/settings", Value=secret, Type="String")
    spec = spec_for("gpu", desired=1)
    spec["backend"] = {"type": "gpu", "image_parameter": "/eiplane/team/settings"}
    result = aws.run(spec, name="bad-1")
    assert secret not in json.dumps(result.events, default=str)  # not in the cause, nor in any state's output
    message = assert_rejected_first(result, aws)
    assert "backend.image_parameter: SSM parameter /eiplane/team/settings does not hold an AMI id" in message


def test_image_parameter_naming_an_image_that_does_not_exist(aws: EmbeddedAws) -> None:
    aws.client("ssm").put_parameter(Name="/eiplane/ami/gone", Value="ami-0123456789abcdef0", Type="String")
    spec = spec_for("gpu", desired=1)
    spec["backend"] = {"type": "gpu", "image_parameter": "/eiplane/ami/gone"}
    message = assert_rejected_first(aws.run(spec, name="bad-1"), aws)
    assert ("backend.image_parameter: SSM parameter /eiplane/ami/gone names ami-0123456789abcdef0, which does not "
            "exist in us-east-1") in message


def test_image_parameter_outside_what_plan_launch_may_read(aws: EmbeddedAws) -> None:
    spec = spec_for("gpu", desired=1)
    spec["backend"] = {"type": "gpu", "image_parameter": "/team/ami"}
    message = assert_rejected_first(aws.run(spec, name="bad-1"), aws)
    assert "backend.gpu.image_parameter: '/team/ami' is not an SSM parameter under /aws/service/ or /eiplane/ " \
           "(what PlanLaunch may read)" in message


def test_image_parameter_of_the_account_is_used(aws: EmbeddedAws) -> None:
    image = aws.client("ec2").register_image(Name="team-dlami", RootDeviceName="/dev/sda1")["ImageId"]
    aws.client("ssm").put_parameter(Name="/eiplane/ami/team", Value=image, Type="String")
    spec = spec_for("gpu", dry_run=True)
    spec["backend"] = {"type": "gpu", "image_parameter": "/eiplane/ami/team"}
    result = aws.run(spec, name="gpu-1")
    assert result.status == "SUCCEEDED", result.cause


@pytest.mark.parametrize(("field", "value"), [
    ("capacity", {"min": True, "desired": "1", "max": 8.0}),
    ("dry_run", "no"),
    ("scaling", {"enabled": "no", "capacity_per_instance_rps": "50", "warm_pool_prefill": 1}),
    ("tags", {"team\n": "ml", "cost": "a\tb"}),
])
def test_coerced_values_and_control_characters_are_rejected(aws: EmbeddedAws, field: str, value: object) -> None:
    message = assert_rejected_first(aws.run(spec_for("gpu", **{field: value}), name="bad-1"), aws)
    assert f"{field}" in message


def test_a_huge_spec_fails_with_a_short_message(aws: EmbeddedAws) -> None:
    spec = spec_for("gpu", **{f"extra_{i:05d}": 0 for i in range(8000)})  # about 150 KB of input
    spec["tags"] = {f"t{i}\n": "v" * 300 for i in range(50)}
    message = assert_rejected_first(aws.run(spec, name="bad-1"), aws)
    assert len(message) < 8_192
    assert "more" in message and "extra_00000: Extra inputs are not permitted" in message


def test_a_fleet_cannot_move_regions(aws: EmbeddedAws) -> None:
    first = aws.run(spec_for("gpu"), name="gpu-1")
    assert first.status == "SUCCEEDED", first.cause
    before = managed_inventory(aws)
    elsewhere = boto3.client("ec2", region_name="eu-west-1")
    seed_images(elsewhere, "eu-west-1")  # the public image parameters exist there too: only the region is wrong
    groups_before = elsewhere.describe_security_groups()["SecurityGroups"]
    gpu_in_eu = {"type": "gpu", "instance_type": "g5.xlarge", "fallback_instance_types": ["g4dn.xlarge"]}

    moved = aws.run({**spec_for("gpu", region="eu-west-1"), "backend": gpu_in_eu}, name="gpu-2")

    assert (moved.status, moved.error) == ("FAILED", "InvalidFleetSpec"), moved.cause
    assert moved.states_entered() == ["ValidateFleetSpec", "FleetSpecRejected"]
    message = moved.error_message() or ""
    assert message == (f"fleet spec has 1 problem: region: fleet demo-gpu runs in us-east-1 (registered by execution "
                       f"{first.arn}); a fleet cannot move regions: delete it there first, or give this one another name")
    assert managed_inventory(aws) == before
    assert elsewhere.describe_security_groups()["SecurityGroups"] == groups_before
    # The same region, and another name in the other region, pass.
    assert aws.run(spec_for("gpu", dry_run=True), name="gpu-3").status == "SUCCEEDED"
    other = aws.run({**spec_for("gpu", name="demo-gpu-eu", region="eu-west-1", dry_run=True), "backend": gpu_in_eu},
                    name="gpu-4")
    assert other.status == "SUCCEEDED", other.cause


def test_a_fleet_whose_prerequisites_were_recorded_elsewhere_cannot_move(aws: EmbeddedAws, faults: Faults) -> None:
    """Its prerequisites record is written before any instance exists: a first run that failed after
    it (here in PlanLaunch) has no registry item yet, and still holds the name to its region."""
    faults.fail("s3", "GetObject", "AccessDenied", times=None)  # the artifact cannot be read
    first = aws.run(spec_for("gpu", desired=1), name="gpu-1")
    assert first.status == "FAILED" and "RecordPrerequisites" in first.states_entered()
    seed_images(boto3.client("ec2", region_name="eu-west-1"), "eu-west-1")

    moved = aws.run({**spec_for("gpu", region="eu-west-1"), "backend": {"type": "gpu"}}, name="gpu-2")

    assert (moved.status, moved.error) == ("FAILED", "InvalidFleetSpec"), moved.cause
    assert moved.states_entered() == ["ValidateFleetSpec", "FleetSpecRejected"]
    assert (f"region: fleet demo-gpu runs in us-east-1 (recorded by execution {first.arn}); a fleet cannot "
            "move regions") in (moved.error_message() or "")


def test_plan_launch_never_quotes_a_parameter_value_that_is_not_an_ami(aws: EmbeddedAws) -> None:
    """PlanLaunch's own check, behind ValidateFleetSpec's: the parameter may change in between."""
    secret = "db-password-hunter2-do-not-print"
    aws.client("ssm").put_parameter(Name="/eiplane/team/settings", Value=secret, Type="String")
    spec = parse_fleet_spec({**spec_for("gpu"), "backend": {"type": "gpu", "image_parameter": "/eiplane/team/settings"}})

    with pytest.raises(ImageNotFound) as caught:
        resolve_image(spec)
    assert str(caught.value) == ("SSM parameter /eiplane/team/settings in us-east-1 does not hold an AMI id ('ami-' and "
                                 "hex digits); its value is not shown")
    with pytest.raises(ImageNotFound) as caught:
        root_device_name(spec, secret)
    assert secret not in str(caught.value)
    assert "names a value that is not an AMI id (not shown), which does not exist" in str(caught.value)
    with pytest.raises(ImageNotFound) as caught:
        root_device_name(spec, "ami-0123456789abcdef0")
    assert "/eiplane/team/settings names ami-0123456789abcdef0, which does not exist in us-east-1" in str(caught.value)
