"""Observe: a fleet's demand signals from CloudWatch, one value per minute.

The fleet's model server (or the user) publishes, in namespace `eiplane/Inference` with the
dimension `Fleet` = the fleet's name:
- `Requests` (Count): requests served, summed per minute (demand = Sum / 60 requests per second);
- `LatencyP99` (Milliseconds): the server's own p99 over each minute;
- `AcceleratorUtilization` (Percent): average over the fleet's instances.
A minute with no datapoint is None (missing or late): the policy holds rather than scale in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eiplane.aws import client

NAMESPACE = "eiplane/Inference"
DIMENSION = "Fleet"
SIGNALS = {  # field -> (metric name, statistic)
    "requests": ("Requests", "Sum"),
    "latency_p99_ms": ("LatencyP99", "Maximum"),
    "utilization_pct": ("AcceleratorUtilization", "Average"),
}


@dataclass(frozen=True)
class DemandHistory:
    start: datetime  # the first minute
    demand_rps: list[float | None]
    latency_p99_ms: list[float | None]
    utilization_pct: list[float | None]

    @property
    def minutes(self) -> int:
        return len(self.demand_rps)


def observe(fleet: str, region: str, minutes: int, now: datetime | None = None) -> DemandHistory:
    """The last `minutes` whole minutes of the fleet's signals (oldest first)."""
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes)
    queries: list[dict[str, Any]] = [{
        "Id": field.replace("_", ""),
        "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                                  "Dimensions": [{"Name": DIMENSION, "Value": fleet}]},
                       "Period": 60, "Stat": stat},
        "ReturnData": True,
    } for field, (metric, stat) in SIGNALS.items()]
    series: dict[str, dict[datetime, float]] = {q["Id"]: {} for q in queries}
    for page in client("cloudwatch", region).get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"):
        for result in page["MetricDataResults"]:
            for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                series[result["Id"]][stamp.astimezone(UTC).replace(second=0, microsecond=0)] = float(value)
    grid = [start + timedelta(minutes=i) for i in range(minutes)]

    def column(field: str, scale: float = 1.0) -> list[float | None]:
        values = series[field.replace("_", "")]
        return [values[t] * scale if t in values else None for t in grid]

    return DemandHistory(start=start, demand_rps=column("requests", 1 / 60),
                         latency_p99_ms=column("latency_p99_ms"), utilization_pct=column("utilization_pct"))
