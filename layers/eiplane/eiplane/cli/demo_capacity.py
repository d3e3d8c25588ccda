"""The capacity-matching part of `make demo`: a compressed demand trace through the deployed
MatchCapacity workflow on the embedded AWS.

Minute by minute, the fleet's demand goes into the embedded CloudWatch as its model server would
publish it (`eiplane/Inference` Requests, dimension Fleet); the engine evaluates the fleet's surge
alarm each minute and delivers the template's schedule every N minutes, exactly as EventBridge
would, and each MatchCapacity execution runs the real ASL and handlers. A scale-out is a real
ProvisionFleet execution (instances launched and validated by inference on this CPU); the demo
waits for it before the next minute, so on this compressed clock a launch is ready by the next
minute (on AWS it takes L, which the policy plans for). Demand is in multiples of the capacity
per instance the policy sizes with (the spec's figure, below what validation measures here), so
the run is the same on any machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eiplane.local.engine import EmbeddedAws
from eiplane.matching.fleet_view import measured_throughput
from eiplane.matching.observe import DIMENSION, NAMESPACE
from eiplane.models.launch import IN_PROGRESS

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # the demo's clock: the first minute of demand
MATCH = "MatchCapacityStateMachine"


def demo_trace(minutes: int = 100, seed: int = 4) -> list[float]:
    """Demand in instances' worth: a steady half hour, a surge that keeps rising, a plateau, a fall."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    shape = []
    for m in range(minutes):
        if m < 30:
            level = 1.2
        elif m < 40:
            level = 2.2 + 0.04 * (m - 30)  # a sudden step, then still rising
        elif m < 55:
            level = 2.6
        elif m < 65:
            level = 2.6 - (2.6 - 0.6) * (m - 55) / 10
        else:
            level = 0.6
        shape.append(level * (1 + rng.uniform(-0.02, 0.02)))
    return shape


@dataclass
class Minute:
    minute: int
    demand_rps: float
    ready: int
    launching: int
    desired: int
    decisions: str


def run_capacity_demo(aws: EmbeddedAws, fleet: str, out_dir: Path, schedule_minutes: int = 5) -> dict[str, Any]:
    spec = _registration(aws, fleet)["spec"]
    measured = [measured_throughput(r.get("validation"), spec["model"]["precisions"][0])
                for r in _slots(aws, fleet).values()]
    # what the policy sizes with: the configured figure, capped by what validation measured
    capacity = min([c for c in measured if c] + [spec["scaling"].get("capacity_per_instance_rps") or math.inf])
    trace = [level * capacity for level in demo_trace()]
    timeline: list[Minute] = []
    decisions: list[dict[str, Any]] = []
    provisions: list[dict[str, Any]] = []
    print(f"\n== capacity matching: {len(trace)} minutes of demand through MatchCapacity "
          f"({capacity:.0f} req/s per instance)")
    for minute, demand in enumerate(trace):
        at = START + timedelta(minutes=minute)
        aws.client("cloudwatch").put_metric_data(Namespace=NAMESPACE, MetricData=[{
            "MetricName": "Requests", "Dimensions": [{"Name": DIMENSION, "Value": fleet}], "Timestamp": at,
            "Value": demand * 60, "Unit": "Count"}])
        now = at + timedelta(minutes=1)
        started = aws.evaluate_alarms(now)
        if (minute + 1) % schedule_minutes == 0:
            started += aws.schedule_tick(now)
        said = []
        for arn in started:
            result = aws.wait(arn)
            tick = result.output["tick"] if result.output else {"trigger": "?"}
            # what the tick costs: Step Functions bills each state entered, Lambda each invocation
            cost = {"state_transitions": len(result.states_entered()),
                    "lambda_invocations": sum(e["type"] == "LambdaFunctionScheduled" for e in result.events),
                    "fleets": len((result.output or {}).get("outcomes", []))}
            for outcome in (result.output or {}).get("outcomes", []):
                if outcome["fleet"] != fleet:
                    continue
                decisions.append({"minute": minute + 1, "trigger": tick["trigger"], **cost, **outcome})
                said.append(f"{tick['trigger']}: {outcome.get('code')}")
                if outcome["action"] in ("scale_out", "scale_in"):
                    print(f"  minute {minute + 1:3d} ({tick['trigger']:8s}) {outcome['code']}: {outcome['reason']}")
                if outcome.get("execution_arn"):
                    provision = aws.wait(outcome["execution_arn"])
                    provisions.append({"minute": minute + 1, "execution_arn": provision.arn,
                                       "status": provision.status,
                                       "in_service": (provision.output or {}).get("in_service")})
        ready, launching, desired = _fleet_now(aws, fleet)
        timeline.append(Minute(minute + 1, demand, ready, launching, desired, "; ".join(said)))

    served = [row.ready * capacity for row in timeline]
    # the demand of minute m is served by what was ready at its start (the previous row)
    short = sum(demand > ready_rps + 1e-9 for demand, ready_rps in zip(trace[1:], served[:-1], strict=True))
    summary = {
        "capacity_per_instance_rps": capacity,
        "minutes": len(trace),
        "scale_outs": sum(d["action"] == "scale_out" for d in decisions),
        "scale_ins": sum(d["action"] == "scale_in" for d in decisions),
        "alarm_ticks": sum(d["trigger"] == "alarm" for d in decisions),
        "scale_outs_by_alarm": sum(d["trigger"] == "alarm" and d["action"] == "scale_out" for d in decisions),
        "instances_drained": sum(len(d.get("drained") or []) for d in decisions),
        "peak_ready": max(row.ready for row in timeline),
        "final_ready": timeline[-1].ready,
        "minutes_short_of_capacity": short,
        "provisions_succeeded": all(p["status"] == "SUCCEEDED" for p in provisions),
        # a tick that holds every fleet: the schedule's steady cost (docs/capacity-matching.md)
        "hold_tick": next(({k: d[k] for k in ("fleets", "state_transitions", "lambda_invocations")}
                           for d in decisions if d["action"] == "hold"), None),
        "only_in_service_running": _only_in_service_running(aws, fleet),
    }
    plot = plot_timeline(timeline, capacity, out_dir / "capacity-demo.png")
    print(f"  {summary['scale_outs']} scale-out(s) ({summary['scale_outs_by_alarm']} on a tick the surge alarm started; "
          f"{summary['alarm_ticks']} such tick(s) in all), "
          f"{summary['scale_ins']} scale-in(s) draining {summary['instances_drained']} instance(s); ready instances "
          f"peaked at {summary['peak_ready']}, ended at {summary['final_ready']}; "
          f"{short} minute(s) short of capacity; plot: {plot}")
    return {"summary": summary, "decisions": decisions, "provisions": provisions,
            "timeline": [asdict(row) for row in timeline], "plot": str(plot)}


def _slots(aws: EmbeddedAws, fleet: str) -> dict[int, dict[str, Any]]:
    from eiplane.state import plain  # the state table's own decoding

    items = aws.client("dynamodb").query(
        TableName=aws.stack.outputs["FleetStateTableName"], KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
        ExpressionAttributeValues={":pk": {"S": f"FLEET#{fleet}"}, ":s": {"S": "SLOT#"}})["Items"]
    return {int(i["sk"]["S"][5:]): {k: plain(v) for k, v in i.items()} for i in items}


def _fleet_now(aws: EmbeddedAws, fleet: str) -> tuple[int, int, int]:
    reservations = aws.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    running = {i["InstanceId"] for r in reservations for i in r["Instances"]}
    records = [r for r in _slots(aws, fleet).values() if r.get("instance_id") in running]
    ready = sum(r.get("state") == "in_service" for r in records)
    launching = sum(r.get("state") in IN_PROGRESS for r in records)
    return ready, launching, int(_registration(aws, fleet)["desired"])


def _registration(aws: EmbeddedAws, fleet: str) -> dict[str, Any]:
    from eiplane.state import plain

    item = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                           Key={"pk": {"S": "REGISTRY"}, "sk": {"S": f"FLEET#{fleet}"}})["Item"]
    return {k: plain(v) for k, v in item.items()}


def _only_in_service_running(aws: EmbeddedAws, fleet: str) -> bool:
    """Every running instance of the fleet is in service: nothing drained was left running."""
    reservations = aws.client("ec2").describe_instances(Filters=[
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
        {"Name": "tag:eiplane:fleet", "Values": [fleet]}])["Reservations"]
    running = {i["InstanceId"] for r in reservations for i in r["Instances"]}
    return running == {r["instance_id"] for r in _slots(aws, fleet).values() if r.get("state") == "in_service"}


def plot_timeline(timeline: list[Minute], capacity: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    minutes = [row.minute for row in timeline]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    ax.plot(minutes, [row.demand_rps for row in timeline], color="tab:red", lw=1.4, label="demand (req/s)")
    ax.step(minutes, [row.ready * capacity for row in timeline], where="post", color="tab:blue", lw=1.6,
            label="ready capacity (in-service instances x req/s per instance)")
    for row in timeline:
        if "scale_out" in row.decisions:
            ax.axvline(row.minute, color="tab:green", ls=":", lw=1)
        if "scale_in" in row.decisions:
            ax.axvline(row.minute, color="tab:purple", ls=":", lw=1)
    top = max(max(r.demand_rps for r in timeline), max(r.ready for r in timeline) * capacity)
    ax.set_ylim(0, math.ceil(top / capacity + 0.5) * capacity)
    ax.set_xlabel("minute (compressed clock; dotted: green scale-out, purple scale-in)")
    ax.set_ylabel("requests / s")
    ax.set_title("make demo: MatchCapacity on the embedded AWS (schedule every 5 min + surge alarm)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
