"""Observe: a fleet's demand, measured from the requests it receives, one value per minute.

Two sources, both in CloudWatch:
- its load balancer (`AWS/ApplicationELB`, dimension LoadBalancer=app/<name>/<id>): `RequestCount`
  (every request that reached the fleet), `TargetResponseTime` (p99), `HTTPCode_Target_5XX_Count`.
  The balancer publishes only in minutes when requests flow;
- its model servers (`eiplane/Inference`, dimensions Fleet and InstanceId, eiplane/agent/model_server.py):
  `Requests`, `LatencyP99`, `AcceleratorUtilization`, published every minute while they run (0 when idle).

A minute's demand is the balancer's RequestCount / 60. A minute with no balancer datapoint in which
the servers published is a minute with no requests through the balancer: zero demand (or what the
servers counted), not missing data. Missing (None: the policy holds rather than scale in) is a broken
signal: no load balancer, no healthy target, or requests through the balancer that the servers did not
report (their metrics stopped: a server that cannot publish, or a publisher that died); and a minute
from which neither has published yet (late: the servers publish every minute they run, so their
silence is never a quiet minute).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eiplane.aws import client

NAMESPACE = "eiplane/Inference"
BALANCER_NAMESPACE = "AWS/ApplicationELB"
# GetMetricData takes at most 500 queries a call: the balancer's 3, and 3 per instance.
MAX_INSTANCES_PER_CALL = 160


@dataclass(frozen=True)
class DemandHistory:
    start: datetime  # the first minute
    demand_rps: list[float | None]
    latency_p99_ms: list[float | None]
    utilization_pct: list[float | None]
    errors_5xx: list[float | None]
    broken: str | None = None  # why the newest minutes are missing, when they are

    @property
    def minutes(self) -> int:
        return len(self.demand_rps)


@dataclass(frozen=True)
class Sources:
    """Where the fleet's signals are: its balancer's CloudWatch dimension (app/<name>/<id>; None:
    the fleet has no load balancer), its in-service instances, and whether any target is healthy now."""

    load_balancer: str | None
    instance_ids: tuple[str, ...]
    healthy_targets: int


def balancer_dimension(load_balancer_arn: str) -> str:
    """arn:...:loadbalancer/app/<name>/<id> -> app/<name>/<id>, as AWS/ApplicationELB names it."""
    return load_balancer_arn.split(":loadbalancer/", 1)[1]


def observe(fleet: str, region: str, minutes: int, sources: Sources, now: datetime | None = None) -> DemandHistory:
    """The last `minutes` whole minutes of the fleet's signals (oldest first)."""
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes)
    grid = [start + timedelta(minutes=i) for i in range(minutes)]
    series = _fetch(fleet, region, sources, start, end)

    def values(key: str, scale: float = 1.0) -> dict[datetime, float]:
        return {t: v * scale for t, v in series.get(key, {}).items()}

    requests = values("requests")
    served = values("served")
    broken = None
    if sources.load_balancer is None:
        broken = "the fleet has no load balancer (its prerequisites stage has not recorded one)"
    elif sources.healthy_targets == 0:
        broken = "no target of the fleet's load balancer is healthy: nothing serves, demand is unknown"

    demand: list[float | None] = []
    for minute in grid:
        if broken:
            demand.append(None)
        elif minute in requests:
            # traffic the servers did not report: their metrics stopped (None); else what the balancer counted
            demand.append(None if requests[minute] > 0 and minute not in served else requests[minute] / 60)
        elif minute in served:
            demand.append(served[minute] / 60)  # the balancer publishes only while requests flow: none did
        else:
            demand.append(None)  # neither has published this minute (yet)
    if not broken and grid and grid[-1] in requests and requests[grid[-1]] > 0 and grid[-1] not in served:
        broken = "the balancer saw requests the model servers did not report: their metrics stopped"
    latency = values("balancer_p99", 1000.0)
    latency.update({t: v for t, v in values("server_p99").items() if t not in latency})
    return DemandHistory(
        start=start, demand_rps=demand, latency_p99_ms=[latency.get(t) for t in grid],
        utilization_pct=[series.get("utilization", {}).get(t) for t in grid],
        errors_5xx=[series.get("errors", {}).get(t) for t in grid], broken=broken)


def _fetch(fleet: str, region: str, sources: Sources, start: datetime, end: datetime) -> dict[str, dict[datetime, float]]:
    """{signal: {minute: value}}; the servers' signals summed (requests), maximised (p99) or averaged
    (utilisation) over the instances."""
    queries: list[dict[str, Any]] = []
    if sources.load_balancer:
        balancer = [{"Name": "LoadBalancer", "Value": sources.load_balancer}]
        for query_id, metric, stat in (("requests", "RequestCount", "Sum"), ("balancerp99", "TargetResponseTime", "p99"),
                                       ("errors", "HTTPCode_Target_5XX_Count", "Sum")):
            queries.append(_query(query_id, BALANCER_NAMESPACE, metric, balancer, stat))
    for n, instance in enumerate(sources.instance_ids[:MAX_INSTANCES_PER_CALL]):
        dimensions = [{"Name": "Fleet", "Value": fleet}, {"Name": "InstanceId", "Value": instance}]
        queries += [_query(f"served{n}", NAMESPACE, "Requests", dimensions, "Sum"),
                    _query(f"serverp99{n}", NAMESPACE, "LatencyP99", dimensions, "Maximum"),
                    _query(f"utilization{n}", NAMESPACE, "AcceleratorUtilization", dimensions, "Average")]
    raw: dict[str, dict[datetime, float]] = {}
    if queries:
        for page in client("cloudwatch", region).get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"):
            for result in page["MetricDataResults"]:
                column = raw.setdefault(result["Id"], {})
                for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                    column[stamp.astimezone(UTC).replace(second=0, microsecond=0)] = float(value)
    merged: dict[str, dict[datetime, float]] = {
        "requests": raw.get("requests", {}), "balancer_p99": raw.get("balancerp99", {}), "errors": raw.get("errors", {})}
    for prefix, key, combine in (("served", "served", sum), ("serverp99", "server_p99", max),
                                 ("utilization", "utilization", _mean)):
        by_minute: dict[datetime, list[float]] = {}
        for query_id, column in raw.items():
            if query_id.startswith(prefix) and query_id[len(prefix):].isdigit():
                for minute, value in column.items():
                    by_minute.setdefault(minute, []).append(value)
        merged[key] = {minute: float(combine(found)) for minute, found in by_minute.items()}
    return merged


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _query(query_id: str, namespace: str, metric: str, dimensions: list[dict[str, str]], stat: str) -> dict[str, Any]:
    return {"Id": query_id, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions}, "Period": 60, "Stat": stat}}
