"""Observe: demand from the load balancer's RequestCount, zero when the servers published and the
balancer did not (it publishes only while requests flow), None only for a broken or late signal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from eiplane.aws import reset_clients
from eiplane.matching.observe import BALANCER_NAMESPACE, NAMESPACE, Sources, balancer_dimension, observe

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
BALANCER = "app/eiplane-demo-gpu/0123456789abcdef"
INSTANCES = ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb")
SERVING = Sources(load_balancer=BALANCER, instance_ids=INSTANCES, healthy_targets=2)


@pytest.fixture
def cloudwatch() -> Iterator[object]:
    reset_clients()
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")
    reset_clients()


def balancer(cw: object, minute: int, requests: float, metric: str = "RequestCount", stat_value: float | None = None) -> None:
    cw.put_metric_data(Namespace=BALANCER_NAMESPACE, MetricData=[{  # type: ignore[attr-defined]
        "MetricName": metric, "Dimensions": [{"Name": "LoadBalancer", "Value": BALANCER}],
        "Timestamp": NOW - timedelta(minutes=minute), "Value": requests if stat_value is None else stat_value}])


def server(cw: object, minute: int, requests: float, instance: str = INSTANCES[0], metric: str = "Requests") -> None:
    cw.put_metric_data(Namespace=NAMESPACE, MetricData=[{  # type: ignore[attr-defined]
        "MetricName": metric, "Timestamp": NOW - timedelta(minutes=minute), "Value": requests,
        "Dimensions": [{"Name": "Fleet", "Value": "demo-gpu"}, {"Name": "InstanceId", "Value": instance}]}])


def test_demand_is_the_balancers_requests_per_second(cloudwatch: object) -> None:
    for minute, requests in ((1, 600.0), (2, 1200.0)):
        balancer(cloudwatch, minute, requests)
        server(cloudwatch, minute, requests / 2, INSTANCES[0])
        server(cloudwatch, minute, requests / 2, INSTANCES[1])
    history = observe("demo-gpu", "us-east-1", minutes=3, sources=SERVING, now=NOW)
    assert history.start == NOW - timedelta(minutes=3)
    assert history.demand_rps == [None, 20.0, 10.0] and history.broken is None


def test_a_minute_the_servers_published_and_the_balancer_did_not_is_zero_demand(cloudwatch: object) -> None:
    server(cloudwatch, 2, 0.0)  # idle servers still publish Requests = 0
    server(cloudwatch, 1, 0.0)
    history = observe("demo-gpu", "us-east-1", minutes=3, sources=SERVING, now=NOW)
    assert history.demand_rps == [None, 0.0, 0.0]  # minute 3: neither published: not known yet


def test_requests_the_servers_did_not_report_are_a_broken_signal(cloudwatch: object) -> None:
    balancer(cloudwatch, 2, 600.0)
    server(cloudwatch, 2, 600.0)
    balancer(cloudwatch, 1, 900.0)  # the servers' metrics stopped
    history = observe("demo-gpu", "us-east-1", minutes=2, sources=SERVING, now=NOW)
    assert history.demand_rps == [10.0, None]
    assert history.broken is not None and "did not report" in history.broken


@pytest.mark.parametrize(("sources", "why"), [
    (Sources(load_balancer=None, instance_ids=INSTANCES, healthy_targets=2), "no load balancer"),
    (Sources(load_balancer=BALANCER, instance_ids=INSTANCES, healthy_targets=0), "no target"),
])
def test_no_balancer_or_no_healthy_target_is_missing_data(cloudwatch: object, sources: Sources, why: str) -> None:
    balancer(cloudwatch, 1, 600.0)
    server(cloudwatch, 1, 600.0)
    history = observe("demo-gpu", "us-east-1", minutes=2, sources=sources, now=NOW)
    assert history.demand_rps == [None, None]
    assert history.broken is not None and why in history.broken


def test_latency_falls_back_to_the_servers_p99_and_utilisation_is_their_mean(cloudwatch: object) -> None:
    # (the balancer's own p99 needs percentile statistics, which bare moto lacks: the embedded AWS adds
    # them, and tests/integration/test_serving.py reads it there)
    balancer(cloudwatch, 1, 600.0)
    server(cloudwatch, 1, 600.0)
    server(cloudwatch, 1, 9.0, INSTANCES[0], metric="LatencyP99")
    server(cloudwatch, 1, 12.5, INSTANCES[1], metric="LatencyP99")
    server(cloudwatch, 1, 40.0, INSTANCES[0], metric="AcceleratorUtilization")
    server(cloudwatch, 1, 60.0, INSTANCES[1], metric="AcceleratorUtilization")
    history = observe("demo-gpu", "us-east-1", minutes=1, sources=SERVING, now=NOW)
    assert history.latency_p99_ms == [12.5] and history.utilization_pct == [50.0]


def test_the_balancer_dimension_is_the_arn_after_loadbalancer() -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/eiplane-demo-gpu/0123456789abcdef"
    assert balancer_dimension(arn) == BALANCER
