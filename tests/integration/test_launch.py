"""Launch, validation by real inference over (embedded) SSM, and the lifecycle of each slot:
the real ASL and handlers on the embedded AWS, the real agent on this machine's CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eiplane.artifacts.push import push
from eiplane.cli.fleet_list import FleetList, FleetModel, collect
from eiplane.cli.prices import PRICES
from eiplane.local.engine import EmbeddedAws
from tests.integration.conftest import Faults, failed_lambda_errors, fleet_report, spec_for

SLOT_STATES = ["LaunchInstance", "AwaitAgent", "SendValidation", "AwaitValidation", "PutInService"]


@pytest.fixture
def artifact_dir(tiny_cnn_artifact: Path) -> Path:
    """Both formats, batch sizes 1 and 4: for the tests about what validation checks."""
    return tiny_cnn_artifact


def push_artifact(aws: EmbeddedAws, fleet: str, directory: Path, name: str = "tiny-cnn", version: str = "1") -> dict:
    return push(aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"],
                f"fleets/{fleet}/models/{name}/{version}/", directory)


def fleet_spec(backend: str, desired: int, **overrides: Any) -> dict[str, Any]:
    spec = spec_for(backend, desired=desired, **overrides)
    spec["model"] = {"name": "tiny-cnn", "version": "1", "precisions": ["fp32", "bf16"]}
    return spec


def running_instances(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    reservations = aws.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    return {i["InstanceId"]: i for r in reservations for i in r["Instances"]}


def slot_records(aws: EmbeddedAws, fleet: str) -> dict[int, dict[str, Any]]:
    items = aws.client("dynamodb").query(
        TableName=aws.stack.outputs["FleetStateTableName"], KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
        ExpressionAttributeValues={":pk": {"S": f"FLEET#{fleet}"}, ":s": {"S": "SLOT#"}})["Items"]
    return {int(i["sk"]["S"][5:]): {k: next(iter(v.values())) for k, v in i.items()} for i in items}


def fleet_list(aws: EmbeddedAws) -> FleetList:
    """What `eiplane fleet list` prints, read from the embedded AWS as the operator."""
    return collect(aws.client("dynamodb"), aws.stack.outputs["FleetStateTableName"], lambda region: aws.client("ec2"))


def assert_only_in_service_instances_run(aws: EmbeddedAws, fleet: str) -> None:
    in_service = {r["instance_id"] for r in slot_records(aws, fleet).values() if r["state"] == "in_service"}
    assert set(running_instances(aws)) == in_service


@pytest.fixture
def gpu_fleet(aws: EmbeddedAws, artifact_dir: Path) -> Iterator[dict[str, Any]]:
    push_artifact(aws, "demo-gpu", artifact_dir)
    yield fleet_spec("gpu", desired=2)


@pytest.fixture
def launch_fleet(aws: EmbeddedAws, torchscript_artifact: Path) -> Iterator[dict[str, Any]]:
    """One slot of the quickest artifact to validate, for the tests about how instances are launched
    (zones, types, retries, compensation), not about what validation checks."""
    push_artifact(aws, "demo-gpu", torchscript_artifact)
    yield fleet_spec("gpu", desired=1)


def test_two_instances_validated_by_inference_and_put_in_service(aws: EmbeddedAws, gpu_fleet: dict) -> None:
    result = aws.run(gpu_fleet, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    summary = result.output  # the execution's output: counts and where the whole report is
    assert (summary["desired"], summary["in_service"], summary["complete"]) == (2, 2, True)
    report = fleet_report(aws, result)
    for slot_state in SLOT_STATES:
        assert result.states_entered().count(slot_state) == 2
    instances = running_instances(aws)
    assert sorted(instances) == sorted(i["instance_id"] for i in report["instances"])
    for outcome in report["instances"]:
        assert outcome["state"] == "in_service"
        validation = outcome["validation"]
        assert validation["passed"] is True
        assert validation["device"] == "cpu" and validation["requested_device"] == "cuda"
        for fmt in validation["formats"].values():
            for precision in ("fp32", "bf16"):
                numbers = fmt["precisions"][precision]
                assert numbers["passed"] is True and numbers["max_rel_error"] <= numbers["tolerance"]
                assert set(numbers["latency"]) == {"1", "4"}
                assert all(v["p50_ms"] > 0 and v["p99_ms"] >= v["p50_ms"] for v in numbers["latency"].values())
        instance = instances[outcome["instance_id"]]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["eiplane:state"] == "in_service" and tags["eiplane:fleet"] == "demo-gpu"
        # what it validated and serves, on the instance, its record and in the report
        served = ("tiny-cnn", "1", report["artifact_manifest_sha256"])
        assert (tags["eiplane:model"], tags["eiplane:model-version"], tags["eiplane:manifest-sha256"]) == served
        assert (outcome["model_name"], outcome["model_version"], outcome["manifest_sha256"]) == served
        assert instance["MetadataOptions"]["HttpTokens"] == "required"
        assert instance["ImageId"] == report["image_id"]
        assert instance["IamInstanceProfile"]["Arn"] == report["instance_profile_arn"]
    zones = {o["availability_zone"] for o in report["instances"]}
    assert len(zones) == 2, "slots are spread across zones"
    volumes = aws.client("ec2").describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": list(instances)}])
    assert volumes["Volumes"] and all(v["Encrypted"] for v in volumes["Volumes"])
    records = slot_records(aws, "demo-gpu")
    assert {r["state"] for r in records.values()} == {"in_service"}
    assert all(r["image_id"] == report["image_id"] for r in records.values())
    assert {(r["model_name"], r["model_version"], r["manifest_sha256"]) for r in records.values()} == {
        ("tiny-cnn", "1", report["artifact_manifest_sha256"])}


def test_rerun_adds_no_instance_and_makes_no_mutating_call(aws: EmbeddedAws, launch_fleet: dict) -> None:
    two = {**launch_fleet, "capacity": {"min": 0, "desired": 2, "max": 2}}
    first = aws.run(two, name="gpu-1")
    second = aws.run(two, name="gpu-2")

    assert first.status == second.status == "SUCCEEDED"
    assert fleet_report(aws, second)["mutating_calls"] == [] and second.output["mutating_call_count"] == 0
    assert sorted(running_instances(aws)) == sorted(i["instance_id"] for i in fleet_report(aws, first)["instances"])
    assert [i["instance_id"] for i in fleet_report(aws, second)["instances"]] == [
        i["instance_id"] for i in fleet_report(aws, first)["instances"]]
    assert "LaunchInstance" not in second.states_entered()


def test_eia_instances_carry_their_accelerator(aws: EmbeddedAws, artifact_dir: Path) -> None:
    push_artifact(aws, "demo-eia", artifact_dir)
    result = aws.run(fleet_spec("eia", desired=1), name="eia-1")

    assert result.status == "SUCCEEDED", result.cause
    (instance,) = running_instances(aws).values()
    (association,) = instance["ElasticInferenceAcceleratorAssociations"]
    assert association["ElasticInferenceAcceleratorAssociationState"] == "associated"

    # fleet list: the fleet as registered, its endpoint, and an hour of its host, accelerator, EI runtime
    # endpoint in each of its zones and load balancer at list prices
    (listed,) = fleet_list(aws).fleets
    assert (listed.fleet, listed.backend, listed.region, listed.desired, listed.in_service, listed.warm) == (
        "demo-eia", "eia", "us-east-1", 1, 1, 0)
    assert listed.model == FleetModel(name="tiny-cnn", version="1")
    endpoint = fleet_report(aws, result)["endpoint"]
    assert listed.endpoint is not None
    assert (listed.endpoint.url, listed.endpoint.dns_name, listed.endpoint.port) == (
        endpoint["url"], endpoint["dns_name"], endpoint["port"])
    (ei_endpoint,) = aws.client("ec2").describe_vpc_endpoints()["VpcEndpoints"]
    zones = len(ei_endpoint["SubnetIds"])
    prices = PRICES.regions["us-east-1"]
    assert zones >= 2 and prices.interface_endpoint_az_hour and prices.load_balancer_hour
    assert listed.cost.hourly_usd == pytest.approx(
        prices.instances[instance["InstanceType"]] + prices.eia_accelerators["eia2.medium"]
        + zones * prices.interface_endpoint_az_hour + prices.load_balancer_hour)
    assert fleet_report(aws, result)["instances"][0]["validation"]["requested_device"] == "eia"


def test_tampered_artifact_is_rejected_before_loading_and_the_instance_terminated(
        aws: EmbeddedAws, gpu_fleet: dict) -> None:
    bucket = aws.stack.outputs["ArtifactsBucketName"]
    aws.client("s3").put_object(Bucket=bucket, Key="fleets/demo-gpu/models/tiny-cnn/1/model.pt", Body=b"not the model")
    result = aws.run({**gpu_fleet, "capacity": {"min": 0, "desired": 1, "max": 1}}, name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    assert "ArtifactRejected" in failed_lambda_errors(result)
    (outcome,) = fleet_report(aws, result)["instances"]
    assert outcome["state"] == "failed" and "model.pt" in outcome["reason"]
    assert running_instances(aws) == {}
    assert slot_records(aws, "demo-gpu")[0]["state"] == "failed"


def test_outputs_beyond_tolerance_fail_validation(aws: EmbeddedAws, artifact_dir: Path, tmp_path: Path) -> None:
    import torch

    from eiplane.artifacts.manifest import load_manifest, sha256_file, write_manifest

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for item in artifact_dir.iterdir():
        (wrong / item.name).write_bytes(item.read_bytes())
    examples = torch.load(wrong / "examples.pt", weights_only=True)
    examples["outputs"] = [t * 1.5 for t in examples["outputs"]]  # not what the model computes
    torch.save(examples, wrong / "examples.pt")
    manifest = load_manifest(wrong)
    write_manifest(manifest.model_copy(update={"files": {**manifest.files, "examples.pt": sha256_file(wrong / "examples.pt")}}),
                   wrong)
    push_artifact(aws, "demo-gpu", wrong)
    result = aws.run(fleet_spec("gpu", desired=1), name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    (outcome,) = fleet_report(aws, result)["instances"]
    assert outcome["reason"].startswith("ValidationFailed:")
    assert running_instances(aws) == {}


def test_agent_that_never_registers_is_terminated(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.rewrite("ssm", "DescribeInstanceInformation", lambda parsed: parsed.update(InstanceInformationList=[]))
    before = aws.clock.seconds
    result = aws.run(launch_fleet, name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    assert failed_lambda_errors(result).count("AgentNotReady") == 13
    assert 9 * 60 < aws.clock.seconds - before < 13 * 60
    (outcome,) = fleet_report(aws, result)["instances"]
    assert outcome["reason"].startswith("AgentNotReady:")
    assert running_instances(aws) == {}
    assert "SendValidation" not in result.states_entered()


def test_capacity_error_in_the_first_zone_moves_to_the_next(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    first_zone_subnets = {s["SubnetId"] for s in aws.client("ec2").describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])["Subnets"]}
    faults.fail("ec2", "RunInstances", "InsufficientInstanceCapacity", times=None,
                when=lambda params: params["body"].get("SubnetId") in first_zone_subnets)
    result = aws.run(launch_fleet, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    (outcome,) = fleet_report(aws, result)["instances"]
    assert outcome["availability_zone"] != "us-east-1a"
    assert outcome["attempts"] == ["g5.xlarge in us-east-1a: InsufficientInstanceCapacity"]
    assert_only_in_service_instances_run(aws, "demo-gpu")


def test_no_capacity_anywhere_moves_to_the_next_instance_type(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.fail("ec2", "RunInstances", "InsufficientInstanceCapacity", times=None,
                when=lambda params: params["body"].get("InstanceType") == "g5.xlarge")
    result = aws.run(launch_fleet, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    (outcome,) = fleet_report(aws, result)["instances"]
    assert outcome["instance_type"] == "g6.xlarge"
    assert len(outcome["attempts"]) == 5  # g5.xlarge in each of the five zones offering it
    assert_only_in_service_instances_run(aws, "demo-gpu")
    # fleet list prices the type the slot was launched as, not the spec's first
    (listed,) = fleet_list(aws).fleets
    prices = PRICES.regions["us-east-1"]
    assert [(line.item, line.what, line.quantity) for line in listed.cost.lines] == [
        ("instance", "g6.xlarge", 1), ("load_balancer", "application load balancer", 1)]
    assert listed.cost.hourly_usd == pytest.approx(prices.instances["g6.xlarge"] + (prices.load_balancer_hour or 0))


def test_quota_error_fails_fast_and_names_the_quota(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.fail("ec2", "RunInstances", "VcpuLimitExceeded", times=None,
                message="You have requested more vCPU capacity than your current vCPU limit of 0 allows")
    result = aws.run(launch_fleet, name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    assert failed_lambda_errors(result) == ["QuotaExceeded"]  # no retry
    assert faults.triggered["ec2:RunInstances:VcpuLimitExceeded"] == 1  # no other zone or type tried
    (outcome,) = fleet_report(aws, result)["instances"]
    assert "Running On-Demand G and VT instances" in outcome["reason"]
    assert running_instances(aws) == {}


def test_throttled_launch_is_retried_with_backoff(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.fail("ec2", "RunInstances", "RequestLimitExceeded", times=2)
    result = aws.run(launch_fleet, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result).count("AwsThrottled") == 2
    assert len(running_instances(aws)) == 1
    assert_only_in_service_instances_run(aws, "demo-gpu")


def test_instance_profile_not_yet_visible_is_retried_briefly(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.fail("ec2", "RunInstances", "InvalidParameterValue", times=1,
                message="Value (arn:aws:iam::123456789012:instance-profile/eiplane/x) for parameter "
                        "iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN")
    result = aws.run(launch_fleet, name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result).count("InstanceProfileNotReady") == 1
    assert_only_in_service_instances_run(aws, "demo-gpu")


def test_missing_artifact_fails_before_any_launch(aws: EmbeddedAws) -> None:
    result = aws.run(fleet_spec("gpu", desired=1), name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "ArtifactNotFound")
    assert result.states_entered()[-2:] == ["PlanLaunch", "ProvisioningFailed"]
    assert "eiplane artifact push" in (result.error_message() or "")
    assert running_instances(aws) == {}


def test_a_failed_slot_is_provisioned_again_by_a_rerun(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.fail("ec2", "RunInstances", "VcpuLimitExceeded", times=1)
    one = launch_fleet
    assert aws.run(one, name="gpu-1").error == "FleetIncomplete"

    rerun = aws.run(one, name="gpu-2")

    assert rerun.status == "SUCCEEDED", rerun.cause
    records = slot_records(aws, "demo-gpu")
    assert records[0]["state"] == "in_service" and int(records[0]["generation"]) == 1
    assert_only_in_service_instances_run(aws, "demo-gpu")


def test_compensation_that_fails_fails_the_execution_loudly(aws: EmbeddedAws, launch_fleet: dict, faults: Faults) -> None:
    faults.rewrite("ssm", "DescribeInstanceInformation", lambda parsed: parsed.update(InstanceInformationList=[]))
    faults.fail("ec2", "TerminateInstances", "UnauthorizedOperation", times=None)
    result = aws.run(launch_fleet, name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "AwsAccessDenied")
    assert result.states_entered()[-3:] == ["TerminateSlot", "CompensationFailed", "ProvisioningFailed"]
    assert "TerminateInstances" in (result.error_message() or "")
