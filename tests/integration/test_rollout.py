"""RolloutFleet on the embedded AWS: a two-instance serving fleet rolled from one model version to the
next under steady traffic, and the ways a rollout must roll back (a version that fails validation, a
guardrail that fires during the bake, no capacity for the new instances), each asserted on the
execution's history and on the account afterwards.

One fleet serves the whole module (each validated instance costs seconds of CPU): every test starts
from the fleet at full size on the version the previous one left it serving, and says which."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eiplane.cli.demo_capacity import write_clock
from eiplane.cli.traffic import Traffic, steady_traffic
from eiplane.executions import ExecutionResult
from eiplane.local.engine import EmbeddedAws
from eiplane.local.lambda_runtime import add_handler_hook, clear_handler_hooks
from tests.integration.conftest import (
    INSTANCE_CLOCK_START,
    REGION,
    Faults,
    artifact_as_version,
    failing_artifact,
    fleet_report,
)
from tests.integration.test_launch import fleet_spec, push_artifact, running_instances, slot_records
from tests.integration.test_serving import REQUEST, endpoint, in_service_instances, target_states

FLEET = "demo-gpu"
ROLLOUT = "RolloutFleetStateMachine"


def spec_of(version: str, **rollout: Any) -> dict[str, Any]:
    spec = fleet_spec("gpu", desired=2)
    spec["model"] = {"name": "tiny-cnn", "version": version, "precisions": ["fp32"]}
    spec["capacity"] = {"min": 1, "desired": 2, "max": 2}
    # a generous latency objective: this machine's load must not look like a bad version
    spec["serving"] = {"deregistration_delay_s": 20, "latency_p99_ms": 5000}
    spec["rollout"] = {"bake_seconds": 60, **rollout}
    return spec


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory, torchscript_artifact: Path) -> Iterator[EmbeddedAws]:
    """The module's embedded AWS with fleet demo-gpu serving version 1 on two instances, and the
    artifacts of versions 2 (good), 3 (fails validation), 4 (answers 5xx, see the test) and 5 pushed."""
    tmp = tmp_path_factory.mktemp("rollout")
    with EmbeddedAws(region=REGION) as engine:
        assert engine.instances is not None
        engine.instances.clock_file = tmp / "instance-clock.txt"
        write_clock(engine.instances.clock_file, INSTANCE_CLOCK_START)
        # what the balancer served is in CloudWatch as soon as a Wait has let time pass (the bake's checks)
        engine.load_balancers.publish_as_clock_moves = lambda: datetime.now(UTC)
        push_artifact(engine, FLEET, torchscript_artifact, version="1")
        for version in ("2", "4", "5"):
            push_artifact(engine, FLEET, artifact_as_version(torchscript_artifact, tmp, version), version=version)
        push_artifact(engine, FLEET, failing_artifact(torchscript_artifact, tmp, "3"), version="3")
        result = engine.run(spec_of("1"), name="provision-v1")
        assert result.status == "SUCCEEDED", result.cause
        yield engine


@pytest.fixture(autouse=True)
def _no_faults_left(aws: EmbeddedAws) -> Iterator[None]:
    yield
    clear_handler_hooks()
    aws.load_balancers.target_fault = None


def steady(aws: EmbeddedAws) -> contextlib.AbstractContextManager[Traffic]:
    """40 requests a second through the fleet's endpoint while the block runs."""
    return steady_traffic(endpoint(aws, FLEET), json.dumps(REQUEST).encode())


def states_entered(result: ExecutionResult) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in result.events if e["type"].endswith("StateEntered")]


def serving_versions(aws: EmbeddedAws) -> dict[str, str]:
    """Each in-service instance's version, as its slot record and its tag say (they must agree)."""
    running = running_instances(aws)
    versions = {}
    for record in slot_records(aws, FLEET).values():
        if record["state"] == "in_service" and record["instance_id"] in running:
            tags = {t["Key"]: t["Value"] for t in running[record["instance_id"]]["Tags"]}
            assert tags["eiplane:model-version"] == record["model_version"]
            versions[str(record["instance_id"])] = str(record["model_version"])
    return versions


def registered_version(aws: EmbeddedAws) -> tuple[str, int]:
    item = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                           Key={"pk": {"S": "REGISTRY"}, "sk": {"S": f"FLEET#{FLEET}"}})["Item"]
    return json.loads(item["spec"]["S"])["model"]["version"], int(item["desired"]["N"])


def lease_holder(aws: EmbeddedAws) -> str | None:
    item = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                           Key={"pk": {"S": f"FLEET#{FLEET}"}, "sk": {"S": "LEASE"}}).get("Item")
    return item["owner"]["S"] if item else None


def healthy_floor_tracker(aws: EmbeddedAws) -> list[int]:
    """After every deregistration a handler makes: how many targets are still healthy (the fleet's
    serving size at its lowest moments)."""
    seen: list[int] = []

    def count(**_: Any) -> None:
        seen.append(sum(state == "healthy" for state in target_states(aws, FLEET).values()))

    add_handler_hook("after-call", "elastic-load-balancing-v2", "DeregisterTargets", count)
    return seen


def test_a_rollout_under_steady_traffic_replaces_every_instance_with_no_failed_request(aws: EmbeddedAws) -> None:
    before = serving_versions(aws)
    assert sorted(before.values()) == ["1", "1"]
    with steady(aws) as traffic:
        result = aws.run(spec_of("2"), name="rollout-v2", logical_id=ROLLOUT)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["outcome"] == "succeeded"
    assert (result.output["version_before"], result.output["version_after"]) == ("tiny-cnn:1", "tiny-cnn:2")
    assert (result.output["batches"], result.output["replaced"]) == (2, 2)  # batch_percent 50 of two
    entered = states_entered(result)
    assert entered.count("LaunchBatch") == 2 and entered.count("RetireOld") == 2
    assert entered.count("CheckGuardrails") == 2 * 2  # bake_seconds 60, a check every 30 s, per batch
    assert "TakeOutFirst" not in entered and "RollBack" not in entered  # max_surge 1: beside the old ones
    assert entered[-1] == "RolloutSucceeded"
    # every request answered, while the old instances drained and the new ones came in
    assert len(traffic.outcomes) > 40 and [o for o in traffic.outcomes if not o.ok] == []
    after = serving_versions(aws)
    assert sorted(after.values()) == ["2", "2"] and not set(after) & set(before)
    assert not set(before) & set(running_instances(aws))  # the old ones terminated, not left running
    assert registered_version(aws) == ("2", 2)  # capacity matching scales version 2 from here
    # registered by the rollout's end, not by a batch (whose ProvisionFleet must not register its spec:
    # a rollback would find the fleet registered with the version it rolls back)
    registry = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                               Key={"pk": {"S": "REGISTRY"}, "sk": {"S": f"FLEET#{FLEET}"}})["Item"]
    assert registry["registered_by"]["S"] == result.arn
    assert lease_holder(aws) is None
    # each batch's report (ProvisionFleet's) names the version and manifest its new instance validated
    (batch,) = fleet_report(aws, aws.wait(batch_executions(result)[-1]))["instances"][-1:]
    assert (batch["model_name"], batch["model_version"]) == ("tiny-cnn", "2") and len(batch["manifest_sha256"]) == 64


def batch_executions(result: ExecutionResult) -> list[str]:
    """The ProvisionFleet executions a rollout started (its LaunchBatch steps' outputs)."""
    outputs = [json.loads(e["lambdaFunctionSucceededEventDetails"]["output"]) for e in result.events
               if e["type"] == "LambdaFunctionSucceeded"]
    return [o["execution_arn"] for o in outputs if o.get("purpose") == "batch" and "started" in o]


def test_provision_fleet_refuses_another_version_outside_a_rollout(aws: EmbeddedAws) -> None:
    """Applying version 1 again over a fleet serving 2 would serve two versions side by side."""
    instances = set(running_instances(aws))
    result = aws.run(spec_of("1"), name="apply-v1-over-v2")
    assert (result.status, result.error) == ("FAILED", "RolloutRequired")
    assert "serves tiny-cnn:2" in str(result.cause)
    assert set(running_instances(aws)) == instances
    assert registered_version(aws) == ("2", 2)


def test_a_version_that_fails_validation_rolls_back_with_the_old_one_at_full_size(aws: EmbeddedAws) -> None:
    before = serving_versions(aws)
    result = aws.run(spec_of("3"), name="rollout-v3", logical_id=ROLLOUT)
    assert (result.status, result.error) == ("FAILED", "RolledBack")
    assert "BatchFailed" in str(result.cause) and "ValidationFailed" in str(result.cause)
    entered = states_entered(result)
    assert "CheckGuardrails" not in entered and "RetireOld" not in entered
    assert entered.index("RollBack") > entered.index("AwaitBatch")
    assert serving_versions(aws) == before  # version 2, both instances, untouched
    assert set(running_instances(aws)) == set(before)  # the failed new instance terminated
    assert registered_version(aws) == ("2", 2) and lease_holder(aws) is None
    assert all(target_states(aws, FLEET)[i] == "healthy" for i in before)


def test_max_surge_0_replaces_the_fleet_without_going_below_min_healthy(aws: EmbeddedAws) -> None:
    floor = healthy_floor_tracker(aws)
    with steady(aws) as traffic:
        result = aws.run(spec_of("5", max_surge=0, min_healthy_percent=50), name="rollout-v5", logical_id=ROLLOUT)
    assert result.status == "SUCCEEDED", result.cause
    entered = states_entered(result)
    assert entered.count("TakeOutFirst") == 2  # an old instance out first, one batch at a time
    assert floor and min(floor) == 1  # one of two (50%) served throughout, never none
    assert [o for o in traffic.outcomes if not o.ok] == []
    assert sorted(serving_versions(aws).values()) == ["5", "5"]


def test_a_guardrail_that_fires_during_the_bake_rolls_back(aws: EmbeddedAws) -> None:
    """Version 4 validates, turns healthy and answers every request with 500 (injected at its targets).
    After the rollouts that must succeed: the balancer's metrics are per minute, and a bake that starts in
    the minute these 5xx were served counts them (on AWS, a batch takes minutes to launch and validate)."""
    before = serving_versions(aws)

    versions: dict[str, str | None] = {}  # (an instance's version never changes: asked once, not per request)

    def version_4_fails(instance_id: str) -> int | None:
        if instance_id not in versions:
            tags = {t["Key"]: t["Value"] for t in running_instances(aws).get(instance_id, {}).get("Tags", [])}
            versions[instance_id] = tags.get("eiplane:model-version")
        return 500 if versions[instance_id] == "4" else None

    aws.load_balancers.target_fault = version_4_fails
    with steady(aws) as traffic:
        # (a longer bake: twenty checks, each seeing the 5xx served since the bake started)
        result = aws.run(spec_of("4", bake_seconds=600), name="rollout-v4", logical_id=ROLLOUT)
    assert (result.status, result.error) == ("FAILED", "RolledBack")
    assert "GuardrailFired" in str(result.cause) and "answered 5xx" in str(result.cause)
    entered = states_entered(result)
    assert "CheckGuardrails" in entered and "RetireOld" not in entered  # fired in the first batch's bake
    assert [o for o in traffic.outcomes if not o.ok], "version 4 answered 5xx while it was in service"
    assert serving_versions(aws) == before
    assert set(running_instances(aws)) == set(before)  # version 4's instance drained and terminated
    assert registered_version(aws) == ("5", 2) and lease_holder(aws) is None


def test_no_capacity_for_the_new_version_keeps_the_fleet_at_its_minimum_healthy_size(aws: EmbeddedAws) -> None:
    """Last (it leaves the fleet smaller): max_surge 0 takes one instance out, then no launch succeeds in
    any zone or type, nor does the restore of the old version: one of two (50%) still serves."""
    floor = healthy_floor_tracker(aws)
    Faults().fail("ec2", "RunInstances", "InsufficientInstanceCapacity", times=None)
    result = aws.run(spec_of("1", max_surge=0, min_healthy_percent=50), name="rollout-no-capacity",
                     logical_id=ROLLOUT)
    assert (result.status, result.error) == ("FAILED", "RolledBack")
    assert "InsufficientInstanceCapacity" in str(result.cause) or "capacity" in str(result.cause).lower()
    entered = states_entered(result)
    assert "TakeOutFirst" in entered and "RestoreOld" in entered
    assert min(floor) == 1
    assert sorted(serving_versions(aws).values()) == ["5"]  # min_healthy_percent 50 of 2, never below
    assert len(in_service_instances(aws, FLEET)) == 1
    assert registered_version(aws) == ("5", 2) and lease_holder(aws) is None
