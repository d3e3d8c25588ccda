"""The capacity-matching part of `make demo`: real requests through the fleet's load balancer,
following a compressed demand trace, and the deployed MatchCapacity workflow sizing the fleet
from the balancer's metrics of those requests, on the embedded AWS.

Minute by minute, an open-loop client sends that minute's requests (Poisson arrivals) to the
endpoint, the embedded load balancer's proxy, which spreads them over the healthy model servers
(real processes on this machine). At the minute's end the balancer publishes `AWS/ApplicationELB`
RequestCount and TargetResponseTime for it and each model server its own `eiplane/Inference`
metrics (the instances' clock is the demo's: EIPLANE_CLOCK_FILE); the engine evaluates the fleet's
surge alarm and delivers the template's schedule every N minutes, as EventBridge would, and each
MatchCapacity execution runs the real ASL and handlers while the next minute's requests flow. A
scale-out is a real ProvisionFleet execution (instances launched, validated, started, registered
and health-checked); the demo waits for it before the next minute, so on this compressed clock a
launch is ready by the next minute (on AWS it takes L, which the policy plans for). A scale-in
deregisters, drains and terminates while requests flow: no request may fail then.

The clock is compressed: a minute of demand is sent in MINUTE_SECONDS of real time, so the
per-minute rates CloudWatch sees are 60 / MINUTE_SECONDS times lower than the real request rate, and
the fleet declares its capacity per instance on that scale (DEMO_CAPACITY_RPS in cli/demo.py): the
run is the same on any machine.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eiplane.cli.traffic import OpenLoopClient, Outcome, percentile
from eiplane.local.engine import EmbeddedAws
from eiplane.matching.observe import NAMESPACE
from eiplane.models.launch import IN_PROGRESS

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # the demo's clock: the first minute of demand
MATCH = "MatchCapacityStateMachine"
MINUTE_SECONDS = 0.6  # real seconds in which a minute's requests are sent
METRICS_DEADLINE_S = 60.0  # how long the servers may take to publish a minute (they usually take < 1 s)


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
    demand_rps: float  # what the trace asked for
    served_rps: float | None  # what the balancer counted (RequestCount / 60)
    ready: int
    launching: int
    desired: int
    requests_failed: int
    decisions: str


def write_clock(path: Path, at: datetime) -> None:
    """The instances' wall clock (EIPLANE_CLOCK_FILE): their servers publish each minute it passes."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(at.isoformat() + "\n")
    temporary.replace(path)


def demo_request(aws: EmbeddedAws, fleet: str) -> bytes:
    """One request of the shape the model takes: {"inputs": [one 3x32x32 image]}."""
    rng = random.Random(11)  # noqa: S311 - demo data
    image = [[[round(rng.uniform(-1, 1), 3) for _ in range(32)] for _ in range(32)] for _ in range(3)]
    return json.dumps({"inputs": [image]}).encode()


def endpoint_url(aws: EmbeddedAws, fleet: str) -> str:
    """The fleet's endpoint as its prerequisites stage recorded it, resolved as the embedded AWS's
    DNS would: the load balancer's proxy on this machine."""
    from eiplane.state import plain

    item = aws.client("dynamodb").get_item(TableName=aws.stack.outputs["FleetStateTableName"],
                                           Key={"pk": {"S": f"FLEET#{fleet}"}, "sk": {"S": "PREREQUISITES"}})["Item"]
    record = {k: plain(v) for k, v in item.items()}
    return aws.load_balancers.url_for(str(record["load_balancer_arn"]))


def run_capacity_demo(aws: EmbeddedAws, fleet: str, out_dir: Path, clock_file: Path,
                      schedule_minutes: int = 5) -> dict[str, Any]:
    spec = registration(aws, fleet)["spec"]
    capacity = float(spec["scaling"]["capacity_per_instance_rps"])
    trace = [level * capacity for level in demo_trace()]
    url = endpoint_url(aws, fleet)
    client = OpenLoopClient(url, demo_request(aws, fleet))
    timeline: list[Minute] = []
    decisions: list[dict[str, Any]] = []
    provisions: list[dict[str, Any]] = []
    scale_in_minutes: set[int] = set()
    print(f"\n== capacity matching: {len(trace)} minutes of real requests through {url} "
          f"(a minute in {MINUTE_SECONDS:g} s; {capacity:g} req/s per instance on that clock)")
    started: list[str] = []
    try:
        for minute, demand in enumerate(trace):
            at = START + timedelta(minutes=minute)
            # This minute's requests go out while the ticks started at its beginning run.
            futures = client.send_minute(minute, round(demand * 60), MINUTE_SECONDS)
            said = _follow_ticks(aws, fleet, started, minute, decisions, provisions, scale_in_minutes)
            for future in futures:
                future.result()
            now = at + timedelta(minutes=1)
            write_clock(clock_file, now)
            aws.load_balancers.publish_minute(at)
            _wait_for_server_metrics(aws, fleet, at)
            started = aws.evaluate_alarms(now)
            if (minute + 1) % schedule_minutes == 0:
                started += aws.schedule_tick(now)
            ready, launching, desired = _fleet_now(aws, fleet)
            failed = sum(not o.ok for o in client.traffic.of_minutes({minute}))
            timeline.append(Minute(minute + 1, demand, _served(aws, url, at), ready, launching, desired, failed,
                                   "; ".join(said)))
        _follow_ticks(aws, fleet, started, len(trace), decisions, provisions, scale_in_minutes)
    finally:
        client.close()

    outcomes = client.traffic.outcomes
    served = [row.ready * capacity for row in timeline]
    # the demand of minute m is served by what was ready at its start (the previous row)
    short = sum(demand > ready_rps + 1e-9 for demand, ready_rps in zip(trace[1:], served[:-1], strict=True))
    failures = [o for o in outcomes if not o.ok]
    latencies = [o.latency_ms for o in outcomes if o.ok]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    serving: dict[str, Any] = {
        "endpoint": url,
        "requests_ok": len(outcomes) - len(failures),
        "requests_failed": len(failures),
        "latency_ms": {"p50": p50, "p99": p99},
        "failed_during_scale_in": sum(o.minute in scale_in_minutes for o in failures),
        "minutes_with_a_scale_in": sorted(scale_in_minutes),
        "failures": _failure_kinds(failures),
        "minute_seconds": MINUTE_SECONDS,
    }
    summary = {
        "capacity_per_instance_rps": capacity,
        "minutes": len(trace),
        "scale_outs": sum(d["action"] == "scale_out" for d in decisions),
        "scale_ins": sum(d["action"] == "scale_in" for d in decisions),
        "replacements": sum(d["action"] == "replace" for d in decisions),
        "alarm_ticks": sum(d["trigger"] == "alarm" for d in decisions),
        "scale_outs_by_alarm": sum(d["trigger"] == "alarm" and d["action"] == "scale_out" for d in decisions),
        "instances_drained": sum(len(d.get("drained") or []) for d in decisions),
        "peak_ready": max(row.ready for row in timeline),
        "final_ready": _fleet_now(aws, fleet)[0],  # after the last minute's ticks
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
    print(f"  served {serving['requests_ok']} requests through the load balancer, {serving['requests_failed']} failed "
          f"({serving['failed_during_scale_in']} during a scale-in); client-side latency p50 "
          f"{p50 or 0:.1f} ms, p99 {p99 or 0:.1f} ms")
    return {"summary": summary, "serving": serving, "decisions": decisions, "provisions": provisions,
            "timeline": [asdict(row) for row in timeline], "plot": str(plot)}


def _follow_ticks(aws: EmbeddedAws, fleet: str, started: list[str], minute: int, decisions: list[dict[str, Any]],
                  provisions: list[dict[str, Any]], scale_in_minutes: set[int]) -> list[str]:
    """Wait for the ticks started at this minute's beginning (and any scale-out they started)."""
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
            decisions.append({"minute": minute, "trigger": tick["trigger"], **cost, **outcome})
            said.append(f"{tick['trigger']}: {outcome.get('code')}")
            if outcome["action"] in ("scale_out", "scale_in", "replace"):
                print(f"  minute {minute:3d} ({tick['trigger']:8s}) {outcome['code']}: {outcome['reason']}")
            if outcome["action"] in ("scale_in", "replace"):
                scale_in_minutes.add(minute)  # its drain and termination ran while this minute's requests flowed
            if outcome.get("execution_arn"):
                provision = aws.wait(outcome["execution_arn"])
                provisions.append({"minute": minute, "execution_arn": provision.arn, "status": provision.status,
                                   "in_service": (provision.output or {}).get("in_service")})
    return said


def _wait_for_server_metrics(aws: EmbeddedAws, fleet: str, minute: datetime) -> None:
    """Until every in-service instance's server has published `minute` (each publishes as soon as
    its clock passes it): the tick that follows reads both sources, as a tick a minute later would."""
    instances = [str(r["instance_id"]) for r in _slots(aws, fleet).values() if r.get("state") == "in_service"]
    if not instances:
        return
    queries = [{"Id": f"i{n}", "ReturnData": True, "MetricStat": {"Metric": {
        "Namespace": NAMESPACE, "MetricName": "Requests",
        "Dimensions": [{"Name": "Fleet", "Value": fleet}, {"Name": "InstanceId", "Value": instance}]},
        "Period": 60, "Stat": "Sum"}} for n, instance in enumerate(instances)]
    deadline = time.monotonic() + METRICS_DEADLINE_S
    cloudwatch = aws.client("cloudwatch")
    while True:
        results = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=minute,
                                             EndTime=minute + timedelta(minutes=1))["MetricDataResults"]
        if all(r["Values"] for r in results) or time.monotonic() > deadline:
            return  # a server that never publishes shows as a broken signal in the tick, as it would on AWS
        time.sleep(0.1)  # polling for the servers' publish: progress, not a fixed wait


def _served(aws: EmbeddedAws, url: str, minute: datetime) -> float | None:
    """The balancer's RequestCount of the minute, as requests per second."""
    from eiplane.matching.observe import BALANCER_NAMESPACE

    found = [m for m in aws.client("cloudwatch").list_metrics(Namespace=BALANCER_NAMESPACE, MetricName="RequestCount")[
        "Metrics"] if [d["Name"] for d in m["Dimensions"]] == ["LoadBalancer"]]
    if not found:
        return None
    values = aws.client("cloudwatch").get_metric_statistics(
        Namespace=BALANCER_NAMESPACE, MetricName="RequestCount", Dimensions=found[0]["Dimensions"], StartTime=minute,
        EndTime=minute + timedelta(minutes=1), Period=60, Statistics=["Sum"])["Datapoints"]
    return values[0]["Sum"] / 60 if values else 0.0


def _failure_kinds(failures: list[Outcome]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for failure in failures:
        key = f"HTTP {failure.status}" if failure.status else (failure.error or "no answer").split(":", 1)[0]
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


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
    return ready, launching, int(registration(aws, fleet)["desired"])


def registration(aws: EmbeddedAws, fleet: str) -> dict[str, Any]:
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
    ax.plot(minutes, [row.demand_rps for row in timeline], color="tab:red", lw=1, ls="--", alpha=0.6,
            label="demand asked of the client (req/s)")
    ax.plot(minutes, [row.served_rps if row.served_rps is not None else math.nan for row in timeline],
            color="tab:red", lw=1.6, label="served: the load balancer's RequestCount / 60")
    ax.step(minutes, [row.ready * capacity for row in timeline], where="post", color="tab:blue", lw=1.6,
            label="ready capacity (healthy in-service instances x req/s per instance)")
    for row in timeline:
        if "scale_out" in row.decisions:
            ax.axvline(row.minute, color="tab:green", ls=":", lw=1)
        if "scale_in" in row.decisions:
            ax.axvline(row.minute, color="tab:purple", ls=":", lw=1)
        if row.requests_failed:
            ax.plot([row.minute], [0], marker="x", color="black")
    top = max(max(r.demand_rps for r in timeline), max(r.ready for r in timeline) * capacity)
    ax.set_ylim(0, math.ceil(top / capacity + 0.5) * capacity)
    ax.set_xlabel("minute (compressed clock; dotted: green scale-out, purple scale-in; x: a failed request)")
    ax.set_ylabel("requests / s (on the compressed clock)")
    ax.set_title("make demo: real requests through the embedded load balancer, MatchCapacity on their metrics")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
