"""Observe reads one value per minute per signal; a minute without data is None."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from eiplane.aws import reset_clients
from eiplane.matching.observe import NAMESPACE, observe

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def cloudwatch() -> Iterator[object]:
    reset_clients()
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")
    reset_clients()


def _put(cw: object, metric: str, minute: int, value: float, fleet: str = "demo-gpu") -> None:
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{  # type: ignore[attr-defined]
        "MetricName": metric, "Dimensions": [{"Name": "Fleet", "Value": fleet}],
        "Timestamp": NOW - timedelta(minutes=minute), "Value": value}])


def test_demand_is_requests_per_second_and_gaps_are_none(cloudwatch: object) -> None:
    for minute in (1, 2, 4):  # minute 3 is missing
        _put(cloudwatch, "Requests", minute, 600.0 * minute)
    _put(cloudwatch, "Requests", 2, 999.0, fleet="other-fleet")
    _put(cloudwatch, "AcceleratorUtilization", 1, 55.0)
    _put(cloudwatch, "LatencyP99", 1, 12.5)

    history = observe("demo-gpu", "us-east-1", minutes=5, now=NOW)

    assert history.start == NOW - timedelta(minutes=5)
    assert history.demand_rps == [None, 40.0, None, 20.0, 10.0]
    assert history.utilization_pct == [None, None, None, None, 55.0]
    assert history.latency_p99_ms[-1] == 12.5 and history.minutes == 5


def test_no_data_at_all_is_all_none(cloudwatch: object) -> None:
    assert observe("demo-gpu", "us-east-1", minutes=3, now=NOW).demand_rps == [None, None, None]
