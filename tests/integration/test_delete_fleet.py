"""DeleteFleet on the embedded AWS: the real ASL and handlers, each call authorised as the function's role.
Afterwards nothing tagged with the fleet exists (read from the account directly and through the tagging
API), a VPC endpoint another fleet uses stays, a deletion that failed midway completes when run again,
and a dry run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eiplane.cli.demo_delete import tagged_with
from eiplane.executions import ExecutionResult
from eiplane.local.engine import EmbeddedAws
from eiplane.local.lambda_runtime import clear_handler_hooks
from tests.integration.conftest import Faults, failed_lambda_errors, spec_for
from tests.integration.test_capacity_matching import START, tick
from tests.integration.test_launch import fleet_spec, push_artifact, running_instances

DELETE = "DeleteFleetStateMachine"
DELETING_STATES = ["BeginDeletion", "PlanDeletion", "DrainFleet", "WaitForDrain", "TerminateInstances",
                   "DeleteLoadBalancer", "DeleteAlarms", "DeleteNetwork", "DeleteInstanceRole", "DeleteArtifacts",
                   "DeleteFleetState", "FinishDeletion", "FleetDeleted"]


def delete(aws: EmbeddedAws, fleet: str, name: str, **options: Any) -> ExecutionResult:
    return aws.run({"fleet": fleet, **options}, name=name, logical_id=DELETE)


def report(aws: EmbeddedAws, result: ExecutionResult) -> dict[str, Any]:
    where = result.output["report"]
    return dict(json.loads(aws.client("s3").get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read()))


def actions(aws: EmbeddedAws, result: ExecutionResult) -> dict[tuple[str, str], str]:
    return {(i["kind"], i["id"]): i["action"] for i in report(aws, result)["items"]}


NOTHING = {"instances": [], "security_groups": [], "load_balancers_and_target_groups": [], "roles": [],
           "instance_profiles": [], "alarms": [], "tagging_api": [], "state_items": []}


def live_endpoints(aws: EmbeddedAws) -> list[str]:
    return sorted(e["VpcEndpointId"] for e in aws.client("ec2").describe_vpc_endpoints()["VpcEndpoints"]
                  if e["State"].lower() not in ("deleted", "deleting"))


def test_a_served_fleet_with_a_warm_pool_and_a_surge_alarm_leaves_nothing_tagged_with_it(
        aws: EmbeddedAws, torchscript_artifact: Path) -> None:
    push_artifact(aws, "demo-gpu", torchscript_artifact)
    spec = fleet_spec("gpu", desired=1)
    spec["model"]["precisions"] = ["fp32"]
    spec["scaling"] = {"warm_pool_size": 1}  # one instance in service, one validated and stopped into the pool
    assert aws.run(spec, name="gpu-1").status == "SUCCEEDED"
    held = tick(aws, START, "tick-1")  # capacity matching sets the fleet's surge alarm
    assert held.status == "SUCCEEDED", held.cause
    assert tagged_with(aws, "demo-gpu")["alarms"] == ["eiplane-local-surge-demo-gpu"]
    before = tagged_with(aws, "demo-gpu")
    assert len(before["instances"]) == 2 and len(before["security_groups"]) == 2

    result = delete(aws, "demo-gpu", "delete-1")

    assert result.status == "SUCCEEDED", result.cause
    assert [s for s in result.states_entered() if s in DELETING_STATES] == DELETING_STATES
    drain = next(json.loads(e["stateEnteredEventDetails"]["input"]) for e in result.events
                 if e.get("stateEnteredEventDetails", {}).get("name") == "WaitForDrain")
    assert drain["drain"]["drain_seconds"] == 30  # the served instance drained for the target group's delay
    assert tagged_with(aws, "demo-gpu") == NOTHING
    assert running_instances(aws) == {}
    done = actions(aws, result)
    assert {done[("instance", i)] for i in before["instances"]} == {"deleted"}
    assert done[("alarm", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:eiplane-local-surge-demo-gpu")] == "deleted"
    # the artifacts stay (no purge_artifacts), and the report says so
    kept = [i for i in report(aws, result)["items"] if i["action"] == "kept"]
    assert [i["kind"] for i in kept] == ["artifacts"]
    bucket = aws.stack.outputs["ArtifactsBucketName"]
    assert aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="fleets/demo-gpu/models/")["KeyCount"] > 0
    assert result.output["message"].startswith(f"{result.output['deleted']} deleted, 1 kept, ")
    # and the same deletion again finds nothing left to do
    again = delete(aws, "demo-gpu", "delete-2")
    assert again.status == "SUCCEEDED" and again.output["deleted"] == 0, again.output


def test_an_endpoint_another_fleet_uses_is_kept_and_goes_with_the_last_fleet(aws: EmbeddedAws) -> None:
    # Two eia fleets in the default VPC share its Elastic Inference endpoint and the endpoint group.
    assert aws.run(spec_for("eia"), name="eia-a").status == "SUCCEEDED"
    assert aws.run(spec_for("eia", name="demo-eia-b"), name="eia-b").status == "SUCCEEDED"
    (endpoint,) = live_endpoints(aws)
    group = aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["eiplane-vpc-endpoints"]}])["SecurityGroups"][0]

    first = delete(aws, "demo-eia", "delete-a")

    assert first.status == "SUCCEEDED", first.cause
    assert live_endpoints(aws) == [endpoint]
    items = {(i["kind"], i["id"]): i for i in report(aws, first)["items"]}
    assert items[("vpc_endpoint", endpoint)]["action"] == "kept"
    assert items[("vpc_endpoint", endpoint)]["reason"] == "shared: fleet(s) demo-eia-b use it"
    assert items[("security_group", group["GroupId"])]["action"] == "kept"
    # the endpoint group admits only the remaining fleet's instances now
    rules = aws.client("ec2").describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0]["IpPermissions"]
    b_group = tagged_with(aws, "demo-eia-b")["security_groups"]
    assert {p["GroupId"] for r in rules for p in r["UserIdGroupPairs"]} <= set(b_group)
    assert tagged_with(aws, "demo-eia") == NOTHING

    second = delete(aws, "demo-eia-b", "delete-b")

    assert second.status == "SUCCEEDED", second.cause
    assert live_endpoints(aws) == []
    assert actions(aws, second)[("vpc_endpoint", endpoint)] == "deleted"
    assert aws.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["eiplane-vpc-endpoints"]}])["SecurityGroups"] == []
    assert tagged_with(aws, "demo-eia-b") == NOTHING


def test_a_deletion_that_fails_midway_leaves_the_fleet_marked_and_a_rerun_completes(aws: EmbeddedAws,
                                                                                   faults: Faults) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    # a refusal nothing retries, on the second kind deleted: the load balancer (after the instances)
    faults.fail("elbv2", "DeleteLoadBalancer", "OperationNotPermitted", times=None, message="injected refusal")

    failed = delete(aws, "demo-gpu", "delete-1")

    assert (failed.status, failed.error) == ("FAILED", "AwsCallFailed"), failed.cause
    assert "DeleteLoadBalancer failed (OperationNotPermitted)" in (failed.error_message() or "")
    assert failed.states_entered()[-2:] == ["DeleteLoadBalancer", "DeletionFailed"]
    left = tagged_with(aws, "demo-gpu")
    assert left["load_balancers_and_target_groups"] and left["security_groups"]
    # marked deleting: ProvisionFleet refuses the fleet, capacity matching leaves it alone
    refused = aws.run(spec_for("gpu"), name="gpu-2")
    assert (refused.status, refused.error) == ("FAILED", "FleetBusy"), refused.cause
    skipped = tick(aws, START, "tick-1", fleets=["demo-gpu"])
    assert skipped.status == "SUCCEEDED" and skipped.output["fleets"] == 0, skipped.output
    clear_handler_hooks()

    rerun = delete(aws, "demo-gpu", "delete-2")

    assert rerun.status == "SUCCEEDED", rerun.cause  # it took over the lease the failed deletion held
    assert tagged_with(aws, "demo-gpu") == NOTHING
    assert {a for (kind, _), a in actions(aws, rerun).items() if kind == "load_balancer"} == {"deleted"}
    assert aws.run(spec_for("gpu"), name="gpu-3").status == "SUCCEEDED"  # the name is free again


def test_a_group_still_in_use_is_waited_for(aws: EmbeddedAws, faults: Faults) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    # AWS refuses to delete a group a network interface still holds (moto never does): the Retry is the wait
    # (the instances' group, first: the balancer's goes in the same attempt)
    faults.fail("ec2", "DeleteSecurityGroup", "DependencyViolation", times=1)

    result = delete(aws, "demo-gpu", "delete-1")

    assert result.status == "SUCCEEDED", result.cause
    assert failed_lambda_errors(result) == ["ResourceStillInUse"]
    assert tagged_with(aws, "demo-gpu") == NOTHING
    groups = [a for (kind, _), a in actions(aws, result).items() if kind == "security_group"]
    assert groups == ["deleted", "deleted"]  # the retried step's report keeps what its first attempt deleted


def test_a_dry_run_changes_nothing_and_bad_input_is_refused(aws: EmbeddedAws) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    table = aws.stack.outputs["FleetStateTableName"]
    before = (tagged_with(aws, "demo-gpu"), aws.client("dynamodb").scan(TableName=table)["Items"])

    plan = delete(aws, "demo-gpu", "plan-1", dry_run=True)

    assert plan.status == "SUCCEEDED", plan.cause
    assert plan.states_entered() == ["BeginDeletion", "PlanDeletion", "ApplyOrPlanOnly", "ReportPlan", "PlanOnly"]
    after = (tagged_with(aws, "demo-gpu"), aws.client("dynamodb").scan(TableName=table)["Items"])
    assert after == before  # no lease taken, no mark, nothing deleted
    planned = report(aws, plan)
    assert planned["dry_run"] is True and {i["action"] for i in planned["items"]} == {"delete", "keep", "absent"}
    kinds = {i["kind"] for i in planned["items"] if i["action"] == "delete"}
    assert kinds == {"listener", "load_balancer", "target_group", "security_group", "instance_profile", "iam_role",
                     "state_items", "registry"}
    assert plan.output["message"].startswith(f"plan (dry run): {plan.output['deleted']} delete, 1 keep, ")

    for bad, problem in (({"fleet": "Not A Fleet"}, "is not a fleet name"),
                         ({"fleet": "demo-gpu", "purge": True}, "purge: Extra inputs are not permitted")):
        refused = aws.run(bad, name=f"bad-{len(problem)}", logical_id=DELETE)
        assert (refused.status, refused.error) == ("FAILED", "InvalidDeleteRequest"), refused.cause
        assert problem in (refused.cause or "")
    assert (tagged_with(aws, "demo-gpu"), aws.client("dynamodb").scan(TableName=table)["Items"]) == before


def test_purge_artifacts_deletes_every_version_of_the_fleet_s_prefix_only(aws: EmbeddedAws,
                                                                         torchscript_artifact: Path) -> None:
    push_artifact(aws, "demo-gpu", torchscript_artifact)
    push_artifact(aws, "demo-gpu", torchscript_artifact)  # a second version of every object
    push_artifact(aws, "other", torchscript_artifact)
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    s3, bucket = aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"]

    result = delete(aws, "demo-gpu", "delete-1", purge_artifacts=True)

    assert result.status == "SUCCEEDED", result.cause
    versions = s3.list_object_versions(Bucket=bucket, Prefix="fleets/")
    left = {v["Key"].split("/")[1] for v in [*versions.get("Versions", []), *versions.get("DeleteMarkers", [])]}
    assert left == {"other"}
    assert tagged_with(aws, "demo-gpu") == NOTHING
    # the report outlives the purge: it is kept outside the fleet's prefix
    assert report(aws, result)["purge_artifacts"] is True
