"""MatchCapacity on the embedded AWS: the real ASL and handlers, demand in the embedded
CloudWatch, scale-out through ProvisionFleet (real instances validated by the real agent), scale-in
by draining then terminating, the lease, the surge alarm's fast path."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eiplane.executions import ExecutionResult
from eiplane.local.engine import ACCOUNT_ID, EmbeddedAws
from eiplane.matching.fleet_view import measured_throughput
from tests.integration.conftest import Faults, spec_for
from tests.integration.test_launch import fleet_spec, push_artifact, running_instances, slot_records

FLEET = "demo-gpu"
START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # the first minute of demand
MATCH = "MatchCapacityStateMachine"
SCALE_OUT = ("scale_out_surge", "scale_out_forecast")


def balancer_of(aws: EmbeddedAws, fleet: str = FLEET) -> str:
    """The fleet's balancer as AWS/ApplicationELB names it (app/<name>/<id>), from its prerequisites record."""
    item = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                           Key={"pk": {"S": f"FLEET#{fleet}"}, "sk": {"S": "PREREQUISITES"}})["Item"]
    return item["load_balancer_arn"]["S"].split(":loadbalancer/", 1)[1]


def put_demand(aws: EmbeddedAws, first: datetime, rps: list[float | None], fleet: str = FLEET) -> None:
    """What the fleet's load balancer and model servers publish for minutes of `rps` requests a
    second: the balancer's RequestCount (only in minutes with requests, as the ALB publishes), and each
    in-service server's Requests (its share; 0 when idle: a server publishes every minute it runs).
    None: neither published that minute (late or missing)."""
    balancer = [{"Name": "LoadBalancer", "Value": balancer_of(aws, fleet)}]
    instances = [str(r["instance_id"]) for r in in_service(aws, fleet).values()]
    balancer_data, server_data = [], []
    for i, value in enumerate(rps):
        if value is None:
            continue
        at = first + timedelta(minutes=i)
        if value > 0:
            balancer_data.append({"MetricName": "RequestCount", "Dimensions": balancer, "Timestamp": at,
                                  "Value": value * 60, "Unit": "Count"})
        server_data += [{"MetricName": "Requests", "Timestamp": at, "Value": value * 60 / len(instances), "Unit": "Count",
                         "Dimensions": [{"Name": "Fleet", "Value": fleet}, {"Name": "InstanceId", "Value": instance}]}
                        for instance in instances]
    # Only AWS publishes into AWS/ namespaces: the balancer's minutes go into the backend, as the embedded
    # load balancer writes its own (eiplane/local/load_balancers.py).
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[ACCOUNT_ID][aws.region]
    if balancer_data:
        backend.put_metric_data("AWS/ApplicationELB", [
            {**d, "Timestamp": d["Timestamp"].astimezone(UTC).replace(tzinfo=None)} for d in balancer_data])
    for chunk in range(0, len(server_data), 500):
        aws.client("cloudwatch").put_metric_data(Namespace="eiplane/Inference", MetricData=server_data[chunk:chunk + 500])


def tick(aws: EmbeddedAws, at: datetime, name: str, fleets: list[str] | None = None) -> ExecutionResult:
    body: dict[str, Any] = {"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if fleets is not None:
        body["fleets"] = fleets
    return aws.run(body, name=name, logical_id=MATCH)


def outcome(result: ExecutionResult, fleet: str = FLEET) -> dict[str, Any]:
    assert result.status == "SUCCEEDED", result.cause
    return next(o for o in result.output["outcomes"] if o["fleet"] == fleet)


def decisions(aws: EmbeddedAws, fleet: str = FLEET) -> list[dict[str, Any]]:
    items = aws.client("dynamodb").query(
        TableName=aws.stack.outputs["FleetStateTableName"], KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
        ExpressionAttributeValues={":pk": {"S": f"FLEET#{fleet}"}, ":d": {"S": "DECISION#"}})["Items"]
    return [{k: next(iter(v.values())) for k, v in i.items()} for i in items]


def scale_out_executions(aws: EmbeddedAws) -> list[dict[str, Any]]:
    listed = aws.client("stepfunctions").list_executions(
        stateMachineArn=aws.state_machine_arn("ProvisionFleetStateMachine"))["executions"]
    return [e for e in listed if "-out-" in e["name"]]


def fleet_capacity(aws: EmbeddedAws, fleet: str = FLEET) -> float:
    """What the policy sizes the fleet with: the median of its in-service slots' batch-1 throughput,
    as each was measured at validation. (Measured on this machine's CPU, so it varies from one
    instance to the next with the machine's load: a test recomputes it whenever a slot is added.)"""
    rates = []
    for record in in_service(aws, fleet).values():
        validation = record["validation"]
        rate = measured_throughput(json.loads(validation) if isinstance(validation, str) else validation)
        assert rate is not None and rate > 0
        rates.append(rate)
    assert rates
    return statistics.median(rates)


def hold_lease(aws: EmbeddedAws, owner: str, fleet: str = FLEET) -> None:
    """Another tick's lease, as AcquireLease writes it (still valid for 10 minutes)."""
    expires = int(datetime.now(UTC).timestamp()) + 600
    aws.client("dynamodb").put_item(TableName=aws.stack.outputs["FleetStateTableName"], Item={
        "pk": {"S": f"FLEET#{fleet}"}, "sk": {"S": "LEASE"}, "owner": {"S": owner}, "expires_at": {"N": str(expires)}})


def lease_owner(aws: EmbeddedAws, fleet: str = FLEET) -> str | None:
    item = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                           Key={"pk": {"S": f"FLEET#{fleet}"}, "sk": {"S": "LEASE"}}).get("Item")
    return item["owner"]["S"] if item else None


def in_service(aws: EmbeddedAws, fleet: str = FLEET) -> dict[int, dict[str, Any]]:
    running = running_instances(aws)
    return {i: r for i, r in slot_records(aws, fleet).items() if r["state"] == "in_service" and r["instance_id"] in running}


@pytest.fixture
def fleet(aws: EmbeddedAws, torchscript_artifact: Path) -> Iterator[dict[str, Any]]:
    """A gpu fleet (min 1, max 2) with one instance validated and in service; its measured
    batch-1 throughput is what the policy sizes with."""
    push_artifact(aws, FLEET, torchscript_artifact)
    spec = fleet_spec("gpu", desired=1)
    spec["capacity"] = {"min": 1, "desired": 1, "max": 2}
    result = aws.run(spec, name="provision-1")
    assert result.status == "SUCCEEDED", result.cause
    yield {"spec": spec, "capacity": fleet_capacity(aws)}


def test_surge_scales_out_through_provision_fleet_holds_at_max_then_scales_in(aws: EmbeddedAws, fleet: dict) -> None:
    capacity = fleet["capacity"]
    # an hour at half an instance's capacity, then a surge to 2.4 instances' worth
    put_demand(aws, START, [0.5 * capacity] * 60 + [2.4 * capacity] * 3)
    surge_at = START + timedelta(minutes=63)
    result = tick(aws, surge_at, "tick-surge")

    out = outcome(result)
    # three minutes in, the recent level has caught up with part of the surge: a surge or a forecast
    assert out["action"] == "scale_out" and out["code"] in SCALE_OUT, out["reason"]
    assert out["desired"] == 2 and "capped at max 2" in out["reason"]
    assert result.states_entered().count("ScaleOut") == 1
    provision = aws.wait(out["execution_arn"])
    assert provision.status == "SUCCEEDED", provision.cause
    assert provision.output["in_service"] == 2 and len(in_service(aws)) == 2
    assert set(running_instances(aws)) == {r["instance_id"] for r in in_service(aws).values()}

    # still more demand: the fleet is at max and asks for nothing
    capacity = fleet_capacity(aws)  # the new slot's measurement counts too
    put_demand(aws, surge_at, [3 * capacity] * 5)
    out = outcome(tick(aws, surge_at + timedelta(minutes=5), "tick-at-max"))
    assert (out["action"], out["code"], out["desired"]) == ("hold", "hold_at_max", 2), out["reason"]
    assert "at max 2" in out["reason"] and len(scale_out_executions(aws)) == 1

    # demand falls to a third of an instance; after the cool-down the fleet drains to min
    put_demand(aws, surge_at + timedelta(minutes=5), [0.3 * capacity] * 35)
    result = tick(aws, surge_at + timedelta(minutes=40), "tick-quiet")
    out = outcome(result)
    assert (out["action"], out["code"]) == ("scale_in", "scale_in"), out["reason"]
    assert len(out["drained"]) == 1 and out["desired"] == 1
    entered = result.states_entered()
    assert entered.index("DrainSlots") < entered.index("WaitForDrain") < entered.index("TerminateDrained")
    records = slot_records(aws, FLEET)
    assert sorted(i for i, r in records.items() if r["state"] == "terminated") == sorted(out["drained"])
    assert len(in_service(aws)) == 1
    assert set(running_instances(aws)) == {r["instance_id"] for r in in_service(aws).values()}
    # each decision is recorded with its reason
    recorded = sorted(decisions(aws), key=lambda d: d["sk"])
    assert [d["code"] for d in recorded][1:] == ["hold_at_max", "scale_in"] and recorded[0]["code"] in SCALE_OUT
    assert all(d["reason"] for d in recorded)


def test_a_held_lease_skips_the_fleet_and_overlapping_ticks_launch_once(aws: EmbeddedAws, fleet: dict) -> None:
    capacity = fleet["capacity"]
    put_demand(aws, START, [0.5 * capacity] * 60 + [2.4 * capacity] * 3)
    at = START + timedelta(minutes=63)
    hold_lease(aws, "arn:another-tick")  # e.g. a slow tick still draining

    out = outcome(tick(aws, at, "tick-held"))
    assert (out["status"], out["code"]) == ("skipped", "lease_held")
    assert "arn:another-tick" in out["reason"]
    assert scale_out_executions(aws) == [] and decisions(aws) == []
    assert lease_owner(aws) == "arn:another-tick"  # not released by a tick that did not hold it

    # the other tick ends; two ticks now start at once (the schedule and the surge alarm, say)
    aws.client("dynamodb").delete_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                       Key={"pk": {"S": f"FLEET#{FLEET}"}, "sk": {"S": "LEASE"}})
    first = aws.start_execution({"time": at.isoformat()}, "tick-a", MATCH)
    second = aws.start_execution({"time": at.isoformat()}, "tick-b", MATCH)
    codes = sorted(outcome(aws.wait(arn))["code"] for arn in (first, second))
    # one launched; the other found the lease held or, if it came after, the launch on its way
    assert codes[1] in SCALE_OUT and codes[0] in ("lease_held", "hold_at_max"), codes
    (execution,) = scale_out_executions(aws)
    assert aws.wait(execution["executionArn"]).status == "SUCCEEDED"
    assert len(running_instances(aws)) == 2
    assert lease_owner(aws) is None


def test_missing_or_late_metrics_hold_and_scale_in_never_touches_a_slot_being_validated(
        aws: EmbeddedAws, fleet: dict, faults: Faults) -> None:
    # two instances in service, demand near zero: a scale-in, were the data there
    spec = {**fleet["spec"], "capacity": {"min": 1, "desired": 2, "max": 2}}
    provision = aws.run(spec, name="provision-2")
    assert provision.status == "SUCCEEDED"
    history: list[float | None] = [0.05 * fleet["capacity"]] * 60
    history[-5:] = [None] * 5  # the newest 5 minutes never came
    put_demand(aws, START, history)

    missing = outcome(tick(aws, START + timedelta(minutes=60), "tick-missing"))
    # late: the next tick comes 9 minutes after the newest datapoint's minute
    late = outcome(tick(aws, START + timedelta(minutes=64), "tick-late"))
    for out, age in ((missing, 5), (late, 9)):
        assert (out["action"], out["code"]) == ("hold", "hold_metrics_missing"), out["reason"]
        assert f"datapoint is {age} minutes old" in out["reason"] and "never scaling in" in out["reason"]
    assert len(in_service(aws)) == 2 and scale_out_executions(aws) == []

    # The data arrives, but slot 1 has gone back to mid-validation (its instance verified the
    # artifact; the inference check runs) and the execution driving it is still running.
    put_demand(aws, START + timedelta(minutes=55), [0.05 * fleet["capacity"]] * 15)
    table = aws.stack.outputs["FleetStateTableName"]
    aws.client("dynamodb").update_item(
        TableName=table, Key={"pk": {"S": f"FLEET#{FLEET}"}, "sk": {"S": "SLOT#0001"}},
        UpdateExpression="SET #s = :s, execution = :e", ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "artifact_verified"}, ":e": {"S": provision.arn}})
    faults.rewrite("stepfunctions", "DescribeExecution", lambda parsed: parsed.update(status="RUNNING"))
    validating = slot_records(aws, FLEET)[1]["instance_id"]

    out = outcome(tick(aws, START + timedelta(minutes=70), "tick-validating"))
    assert (out["action"], out["code"]) == ("hold", "hold_warming_up"), out["reason"]
    assert validating in running_instances(aws)

    # the act checks again: a plan naming that slot (made before its validation started) skips it
    event = {"fleet": FLEET, "context": {"execution_id": "arn:manual"},
             "tick": {"at": "2026-11-27T13:10:00Z", "trigger": "manual", "id": "x", "execution_id": "arn:manual"},
             "plan": {"action": "scale_in", "code": "scale_in", "reason": "test", "desired": 1, "desired_before": 2,
                      "ready": 1, "launching": 1, "terminate": [1]}}
    answer = aws.client("lambda").invoke(FunctionName=aws.stack.functions["DrainSlotsFunction"],
                                         Payload=json.dumps(event).encode())
    drained = json.loads(answer["Payload"].read())
    assert drained["draining"] == [] and drained["cancelled"] == []
    assert drained["skipped"] == ["slot 1: artifact_verified (an execution is validating it)"]
    assert validating in running_instances(aws)
    assert slot_records(aws, FLEET)[1]["state"] == "artifact_verified"


def test_surge_alarm_starts_a_tick_at_once(aws: EmbeddedAws, fleet: dict) -> None:
    capacity = fleet["capacity"]
    put_demand(aws, START, [0.5 * capacity] * 60)
    # a scheduled tick holds and sets the fleet's surge alarm at its ready capacity
    scheduled = aws.schedule_tick(START + timedelta(minutes=60))
    assert len(scheduled) == 1
    out = outcome(aws.wait(scheduled[0]))
    assert out["code"] == "hold_steady"
    alarm = aws.client("cloudwatch").describe_alarms(AlarmNamePrefix="eiplane-local-surge-")["MetricAlarms"]
    assert [a["AlarmName"] for a in alarm] == [f"eiplane-local-surge-{FLEET}"]
    assert math.isclose(alarm[0]["Threshold"], round(capacity * 60, 1))
    assert aws.evaluate_alarms(START + timedelta(minutes=60)) == []  # below the threshold: OK, no tick

    # one minute above the ready capacity: the alarm fires and its rule starts MatchCapacity
    put_demand(aws, START + timedelta(minutes=60), [2.4 * capacity])
    started = aws.evaluate_alarms(START + timedelta(minutes=61))
    assert len(started) == 1
    result = aws.wait(started[0])
    started_by = aws.client("stepfunctions").describe_execution(executionArn=result.arn)["input"]
    assert json.loads(started_by)["source"] == "aws.cloudwatch"
    out = outcome(result)
    assert (out["action"], out["code"]) == ("scale_out", "scale_out_surge"), out["reason"]
    assert result.output["tick"]["trigger"] == "alarm"
    provision = aws.wait(out["execution_arn"])
    assert provision.status == "SUCCEEDED" and provision.output["in_service"] == 2


def instance_state(aws: EmbeddedAws, instance_id: str) -> str:
    reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def test_warm_pool_prefilled_resumed_on_scale_out_and_refilled_by_scale_in(aws: EmbeddedAws,
                                                                            torchscript_artifact: Path) -> None:
    push_artifact(aws, FLEET, torchscript_artifact)
    spec = fleet_spec("gpu", desired=1)
    spec["capacity"] = {"min": 1, "desired": 1, "max": 2}
    spec["scaling"] = {"warm_pool_size": 1}
    provision = aws.run(spec, name="provision-pool")

    # a new fleet: one instance in service, one validated and stopped into the pool
    assert provision.status == "SUCCEEDED", provision.cause
    assert (provision.output["in_service"], provision.output["warm_pool"]) == (1, 1)
    assert provision.states_entered().count("PutInWarmPool") == 1
    warm = next(r for r in slot_records(aws, FLEET).values() if r["state"] == "warm")
    assert instance_state(aws, warm["instance_id"]) == "stopped"
    launched = {i["InstanceId"] for r in aws.client("ec2").describe_instances()["Reservations"] for i in r["Instances"]}

    # a surge: the scale-out starts the pooled instance (validated again) instead of launching one
    capacity = fleet_capacity(aws)
    put_demand(aws, START, [0.5 * capacity] * 60 + [2.4 * capacity] * 3)
    out = outcome(tick(aws, START + timedelta(minutes=63), "tick-surge"))
    assert out["action"] == "scale_out", out["reason"]
    scale_out = aws.wait(out["execution_arn"])
    assert scale_out.status == "SUCCEEDED" and scale_out.output["in_service"] == 2
    assert warm["instance_id"] in {r["instance_id"] for r in in_service(aws).values()}
    after = {i["InstanceId"] for r in aws.client("ec2").describe_instances()["Reservations"] for i in r["Instances"]}
    assert after == launched  # no instance launched
    assert scale_out.states_entered().count("AwaitValidation") >= 1  # validated again before service

    # quiet: the drained instance goes back into the pool (it has room), not terminated
    capacity = fleet_capacity(aws)  # the resumed slot's measurement counts too
    put_demand(aws, START + timedelta(minutes=63), [0.3 * capacity] * 40)
    out = outcome(tick(aws, START + timedelta(minutes=103), "tick-quiet"))
    assert out["action"] == "scale_in" and len(out["pooled"]) == 1 and out["pooled"] == out["drained"]
    pooled = slot_records(aws, FLEET)[out["pooled"][0]]
    assert pooled["state"] == "warm" and instance_state(aws, pooled["instance_id"]) == "stopped"
    assert len(in_service(aws)) == 1


def test_a_pooled_instance_that_cannot_start_is_terminated_and_its_slot_launched_anew(
        aws: EmbeddedAws, torchscript_artifact: Path, faults: Faults) -> None:
    push_artifact(aws, FLEET, torchscript_artifact)
    spec = fleet_spec("gpu", desired=1)
    spec["capacity"] = {"min": 1, "desired": 1, "max": 2}
    spec["scaling"] = {"warm_pool_size": 1}
    assert aws.run(spec, name="provision-pool").status == "SUCCEEDED"
    warm = next(r for r in slot_records(aws, FLEET).values() if r["state"] == "warm")
    faults.fail("ec2", "StartInstances", "InsufficientInstanceCapacity", times=1)

    grown = aws.run({**spec, "capacity": {"min": 1, "desired": 2, "max": 2}}, name="grow-1")

    assert (grown.status, grown.error) == ("FAILED", "FleetIncomplete")
    assert "warm-pool instance" in (grown.error_message() or "") and "could not start" in (grown.error_message() or "")
    assert instance_state(aws, warm["instance_id"]) in ("shutting-down", "terminated")  # not left stopped, unused
    assert len(in_service(aws)) == 1
    regrown = aws.run({**spec, "capacity": {"min": 1, "desired": 2, "max": 2}}, name="grow-2")
    assert regrown.status == "SUCCEEDED" and regrown.output["in_service"] == 2, regrown.cause


def lambda_input(result: ExecutionResult, function: str) -> dict[str, Any]:
    """What the execution passed to a function (its first invocation)."""
    scheduled = next(e["lambdaFunctionScheduledEventDetails"] for e in result.events
                     if e["type"] == "LambdaFunctionScheduled"
                     and e["lambdaFunctionScheduledEventDetails"]["resource"].endswith(f"-{function}"))
    return dict(json.loads(scheduled["input"]))


def test_a_second_scale_out_counts_the_slots_the_first_has_planned_but_not_launched(
        aws: EmbeddedAws, fleet: dict, faults: Faults) -> None:
    provision = aws.run(fleet["spec"], name="provision-again")  # a run to borrow PlanLaunch's input from
    planned = lambda_input(provision, "PlanLaunchFunction")
    planned["spec"]["capacity"] = {"min": 1, "desired": 2, "max": 2}

    def plan_launch(execution_id: str) -> dict[str, Any]:
        event = {**planned, "context": {"execution_id": execution_id}}
        answer = aws.client("lambda").invoke(FunctionName=aws.stack.functions["PlanLaunchFunction"],
                                             Payload=json.dumps(event).encode())
        return dict(json.loads(answer["Payload"].read()))

    first = plan_launch(provision.arn)  # the first scale-out plans slot 1 ...
    assert [s["index"] for s in first["slots"]] == [1]
    assert slot_records(aws, FLEET)[1]["state"] == "planned"
    # ... and is still running, about to launch it, when a second one plans
    faults.rewrite("stepfunctions", "DescribeExecution", lambda parsed: parsed.update(status="RUNNING"))
    second = plan_launch(f"{provision.arn}-second")
    assert second["slots"] == [] and second["shared"] is None
    assert set(running_instances(aws)) == {r["instance_id"] for r in in_service(aws).values()}  # nothing launched


def test_reconcile_terminates_an_orphan_and_provisions_a_slot_whose_instance_is_gone(aws: EmbeddedAws,
                                                                                       fleet: dict) -> None:
    ec2 = aws.client("ec2")
    (serving,) = in_service(aws).values()
    described = ec2.describe_instances(InstanceIds=[serving["instance_id"]])["Reservations"][0]["Instances"][0]

    def tagged(slot: str | None) -> str:
        """An instance with the fleet's tags that no slot record names (a slot's: as a launch whose answer was
        lost leaves behind; no slot tag: someone's own instance, tagged by hand)."""
        tags = {"eiplane:fleet": FLEET, "eiplane:managed-by": "eiplane",
                **({"eiplane:slot": slot, "eiplane:generation": "0"} if slot else {})}
        return str(ec2.run_instances(
            ImageId=described["ImageId"], InstanceType="g5.xlarge", MinCount=1, MaxCount=1, SubnetId=described["SubnetId"],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )["Instances"][0]["InstanceId"])

    orphan = tagged("7")
    by_hand = tagged(None)  # left alone
    ec2.terminate_instances(InstanceIds=[serving["instance_id"]])  # the slot's instance is gone

    result = tick(aws, START + timedelta(minutes=5), "tick-reconcile")

    out = outcome(result)
    assert (out["action"], out["code"]) == ("replace", "reconcile"), out["reason"]
    assert out["orphans_terminated"] == [orphan] and out["replaced"] == [0]
    assert "their instance is gone" in out["reason"] and orphan in out["reason"]
    assert result.states_entered().count("ScaleOut") == 1
    assert aws.wait(out["execution_arn"]).status == "SUCCEEDED"
    running = running_instances(aws)
    assert orphan not in running and by_hand in running
    (again,) = in_service(aws).values()  # slot 0, on a new instance
    assert again["instance_id"] != serving["instance_id"]
    assert any(d["code"] == "reconcile" and d.get("orphans_terminated") and d.get("replaced") for d in decisions(aws))

    # An orphan alone: terminated, and nothing provisioned.
    second = tagged("8")
    result = tick(aws, START + timedelta(minutes=10), "tick-orphan")
    out = outcome(result)
    assert out["orphans_terminated"] == [second] and out["replaced"] == [] and out["execution_arn"] is None
    assert "ScaleOut" not in result.states_entered() and "RecordDecision" in result.states_entered()
    assert second not in running_instances(aws)


def test_a_fleet_that_keeps_its_size_is_not_scaled_but_still_reconciled(aws: EmbeddedAws) -> None:
    spec = spec_for("gpu", scaling={"enabled": False})  # prerequisites only: no instance to validate
    assert aws.run(spec, name="kept").status == "SUCCEEDED"
    assert outcome(tick(aws, START, "tick-kept"))["code"] == "scaling_disabled"

    ec2 = aws.client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    orphan = ec2.run_instances(ImageId=image, InstanceType="g5.xlarge", MinCount=1, MaxCount=1, SubnetId=subnet,
                               TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                   {"Key": "eiplane:fleet", "Value": FLEET}, {"Key": "eiplane:managed-by", "Value": "eiplane"},
                                   {"Key": "eiplane:slot", "Value": "3"}, {"Key": "eiplane:generation", "Value": "0"}]}],
                               )["Instances"][0]["InstanceId"]
    out = outcome(tick(aws, START + timedelta(minutes=5), "tick-kept-orphan"))
    assert (out["action"], out["code"], out["orphans_terminated"]) == ("replace", "reconcile", [orphan])
    assert out["execution_arn"] is None and orphan not in running_instances(aws)
