"""The embedded Application Load Balancer: the data plane that moto's elbv2 lacks.

moto 5.2.5 keeps load balancers, target groups and listeners as records only: the DNS name is a
string, a registered running instance is `healthy` at once (even with no listener), deregistration
is immediate, and nothing publishes AWS/ApplicationELB. Here:

- Health checks run on the virtual clock (VirtualClock.on_advance, or `tick()`): each registered
  target gets a real HTTP GET of the target group's HealthCheckPath every interval of virtual time,
  with the timeout, thresholds and matcher, and DescribeTargetHealth reports what AWS reports:
  `initial` until healthy_threshold passes (`healthy`) or unhealthy_threshold failures (`unhealthy`);
  `unused` when the instance is not running, no listener forwards to the group, or the instance's zone
  is not one of the balancer's; `draining` for the deregistration delay (virtual), then gone.
- Each listener is a real HTTP proxy on 127.0.0.1 (`url_for`), which forwards to the forward target
  group's `healthy` targets (round robin, or least outstanding requests as the group's
  load_balancing.algorithm.type says), fails open to all of them when every one is unhealthy, and
  answers as the ALB does: 503 with no target, 502 when the target refuses the connection, 504 when it
  does not answer within the balancer's idle timeout. A draining target gets no new request; while it
  still has requests in flight the clock is held busy, so a virtual Wait of the deregistration delay
  lasts until they are done. Security groups are enforced on the way: the instance's groups must let
  in the balancer's group (or a CIDR holding the balancer's subnets) on the target's port.
- Metrics of each minute with traffic go into the embedded CloudWatch (`publish_minute`), as the ALB
  publishes them: only while requests flow.

moto internals replaced here (each checked by tests/integration/test_moto_canary.py):
- elbv2 `ELBv2Backend.create_load_balancer`: an application load balancer needs subnets in at least
  two zones, one subnet per zone (moto accepts one subnet); the DNS name is AWS's
  (`internal-<name>-<number>.<region>.elb.amazonaws.com`); with no security group the VPC's default
  group is the balancer's, as on AWS.
- elbv2 `FakeTargetGroup.register`: an instance that does not exist or is in another VPC is
  InvalidTarget (moto registers it), the running-state check covers every target before any is
  registered, and a new target starts `initial`.
- elbv2 `FakeTargetGroup.deregister`: deregistering a target that is not registered succeeds (moto
  raises InvalidTarget); a registered one drains for deregistration_delay.timeout_seconds.
- elbv2 `FakeTargetGroup.deregister_terminated_instances`: a terminated instance's target stays
  registered and reports `unused` (Target.InvalidState) instead of moto's `draining` forever.
- elbv2 `FakeTargetGroup.health_for`: the states above instead of moto's instant `healthy`.
- cloudwatch `Statistics.get_statistics_for_type`: percentile statistics (`p99`, `p99.9`) of the
  values published with Values/Counts; moto returns None and GetMetricData crashes on it.
- cloudwatch `CloudWatchResponse.get_metric_statistics`: ExtendedStatistics (moto ignores them).
- cloudwatch `CloudWatchBackend.get_metric_statistics`: only the metric with exactly the dimensions
  asked for, as AWS matches them (moto adds up every metric whose dimensions include them, so the
  balancer's RequestCount would count the target group's again).
- cloudwatch `Dimension.__lt__`: GetMetricData matches a metric's dimensions whatever their order,
  as AWS does (moto's ordering compares a name with a value, so the order given decides).
- cloudwatch `are_dimensions_same`: ListMetrics lists a metric of two or more dimensions once, as AWS
  does (moto compares every dimension with every other, so it lists each datum).

How a reader gets the p99 latency, here and on AWS alike: GetMetricData with a MetricStat on
AWS/ApplicationELB TargetResponseTime (dimension LoadBalancer, or LoadBalancer and TargetGroup),
Period 60 and Stat "p99"; or GetMetricStatistics with ExtendedStatistics=["p99"]. The embedded ALB
publishes every request's time (Values/Counts), from which the percentile is computed.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import itertools
import json
import logging
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import urllib3
from moto.cloudwatch import models as cloudwatch_models
from moto.cloudwatch.models import CloudWatchBackend, Dimension, Statistics, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.elbv2.exceptions import InvalidConfigurationRequest, InvalidTargetError, TargetNotRunning, ValidationError
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeLoadBalancer, FakeTargetGroup, elbv2_backends
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from eiplane.local.moto_gaps import VirtualClock

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], tuple[str, int] | None]

NAMESPACE = "AWS/ApplicationELB"
DEFAULT_IDLE_TIMEOUT_S = 60  # the ALB's idle_timeout.timeout_seconds default
TARGET_CONNECT_TIMEOUT_S = 10  # the ALB gives up connecting to a target after 10 s
HEALTH_CHECK_WORKERS = 16  # targets checked side by side: one slow target does not hold up the others
VALUES_PER_DATUM = 150  # PutMetricData's limit of distinct values per metric datum
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "trailers", "transfer-encoding", "upgrade", "content-length", "host"})
_PASSED = ("", "")


@dataclass
class _Target:
    """One registered target, as the health checker and the proxy see it (moto keeps one port per id)."""

    group_arn: str
    target_id: str
    port: int
    next_check: float  # the virtual second the next health check falls due
    state: str = "initial"  # what the checks found: initial | healthy | unhealthy
    checks: int = 0
    passes: int = 0  # consecutive
    failures: int = 0  # consecutive
    reason: str | None = None
    description: str | None = None
    draining_until: float | None = None
    in_flight: int = 0
    picked: int = 0  # when the proxy last chose it: round robin, and the tie-break of least outstanding
    drain_hold: contextlib.ExitStack | None = None  # the clock held busy while it drains with requests in flight

    def reset(self, now: float) -> None:
        self.state, self.checks, self.passes, self.failures = "initial", 0, 0, 0
        self.reason = self.description = None
        self.next_check = now


@dataclass
class _Traffic:
    """What one minute's requests did, for one load balancer or one (load balancer, target group)."""

    seen: int = 0  # every request, including those the balancer answered itself
    requests: int = 0  # requests for which a target was chosen (RequestCount)
    target_codes: Counter[str] = field(default_factory=Counter)  # "2XX" -> count
    elb_5xx: int = 0
    connection_errors: int = 0
    response_times: list[float] = field(default_factory=list)


@dataclass
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class LoadBalancers:
    """The embedded ALBs of one embedded AWS (one account and region).

    `resolve(instance_id, port)` says where a target's server listens on this machine (None: nothing
    does, as a stopped server refuses connections); it may be replaced, e.g. by a test's stand-ins."""

    def __init__(self, clock: VirtualClock, resolve: Resolver, account_id: str, region: str) -> None:
        self.clock = clock
        self.resolve = resolve
        self.account_id = account_id
        self.region = region
        self._lock = threading.RLock()  # targets' states, in-flight counts and traffic
        self._checking = threading.Lock()  # one round of health checks at a time
        self._targets: dict[tuple[str, str], _Target] = {}  # (target group ARN, target id)
        self._proxies: dict[str, _Proxy] = {}  # listener ARN -> its proxy
        self._pools: dict[tuple[str, int], urllib3.HTTPConnectionPool] = {}
        self._picks = itertools.count(1)
        self._balancer_traffic: dict[str, _Traffic] = {}
        self._group_traffic: dict[tuple[str, str], _Traffic] = {}
        self._executor = ThreadPoolExecutor(max_workers=HEALTH_CHECK_WORKERS, thread_name_prefix="alb-health")
        self._stop = threading.Event()
        self._publisher: threading.Thread | None = None
        # Faults a test injects that moto cannot produce: target id -> the status its server answers
        # every request with (None: it answers as it does), as a new version that fails on real traffic.
        self.target_fault: Callable[[str], int | None] | None = None
        # Set (a clock of wall-clock minutes): what the balancers did is published each time the virtual
        # clock moves, into the wall-clock minute: a Wait that lets a minute pass has seen its traffic.
        self.publish_as_clock_moves: Callable[[], datetime] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @contextlib.contextmanager
    def patched(self) -> Iterator[LoadBalancers]:
        """moto's elbv2 and CloudWatch with the data plane's behaviour; health checks on the clock."""
        with contextlib.ExitStack() as stack:
            for target, name, replacement in self._patches():
                stack.enter_context(mock.patch.object(target, name, replacement))
            stack.callback(self.close)
            stack.callback(self.clock.on_advance(self._on_advance))  # unsubscribed before closing
            yield self

    def close(self) -> None:
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(timeout=10)
        with self._lock:
            proxies, self._proxies = list(self._proxies.values()), {}
            holds = [t.drain_hold for t in self._targets.values() if t.drain_hold is not None]
            for target in self._targets.values():
                target.drain_hold = None
        for proxy in proxies:
            proxy.close()
        for hold in holds:
            hold.close()
        for pool in list(self._pools.values()):
            pool.close()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # --- what the CLI and tests reach -----------------------------------------------------

    def url_for(self, dns_name_or_arn: str, port: int | None = None) -> str:
        """The loopback URL that serves the balancer's listener on `port` (the only listener if None):
        its proxy, started the first time it is asked for."""
        urls = self.listener_urls(dns_name_or_arn)
        if port is None:
            if len(urls) != 1:
                raise LookupError(f"{dns_name_or_arn} has listeners on ports {sorted(urls)}: say which one")
            return next(iter(urls.values()))
        if int(port) not in urls:
            raise LookupError(f"{dns_name_or_arn} has no listener on port {port} (listeners: {sorted(urls)})")
        return urls[int(port)]

    def listener_urls(self, dns_name_or_arn: str) -> dict[int, str]:
        """Each listener's port on the balancer -> the loopback URL of its proxy."""
        balancer = self._find_balancer(dns_name_or_arn)
        with self._lock:
            self._close_orphan_proxies()
            urls = {}
            for listener in list(balancer.listeners.values()):
                if listener.arn not in self._proxies:
                    self._proxies[listener.arn] = _Proxy(self, listener.arn)
                urls[int(listener.port)] = self._proxies[listener.arn].url
            return urls

    def dns_table(self) -> dict[str, dict[str, str]]:
        """What the embedded AWS's DNS answers: each balancer's DNS name -> {listener port: proxy URL}
        (`eiplane local up` writes it for `eiplane fleet status` / `invoke` in other processes)."""
        table = {}
        for balancer in list(self._elbv2.load_balancers.values()):
            table[balancer.dns_name] = {str(port): url for port, url in self.listener_urls(balancer.arn).items()}
        return table

    def tick(self) -> None:
        """Run the health checks (and end the drains) that are due at the clock's present time."""
        self._run_due(self.clock.seconds)

    def publish_minute(self, minute_start: datetime) -> int:
        """Write what the balancers did since the last publish into the embedded CloudWatch as the
        minute starting at `minute_start`, as the ALB does: nothing for a balancer without requests.
        Returns the number of metric data written."""
        with self._lock:
            balancers, self._balancer_traffic = self._balancer_traffic, {}
            groups, self._group_traffic = self._group_traffic, {}
        stamp = minute_start.astimezone(UTC).replace(tzinfo=None) if minute_start.tzinfo else minute_start
        stamp = stamp.replace(second=0, microsecond=0)  # moto keeps timestamps as naive UTC
        data: list[dict[str, Any]] = []
        for balancer_arn, traffic in balancers.items():
            if not traffic.seen:
                continue
            dimensions = [{"Name": "LoadBalancer", "Value": _balancer_dimension(balancer_arn)}]
            data += _traffic_data(dimensions, traffic, stamp, balancer_level=True)
            for group in self._groups_of(balancer_arn):
                group_dimensions = [*dimensions, {"Name": "TargetGroup", "Value": _group_dimension(group.arn)}]
                healthy, unhealthy = self._host_counts(group)
                data.append(_datum("HealthyHostCount", group_dimensions, stamp, healthy, "Count"))
                data.append(_datum("UnHealthyHostCount", group_dimensions, stamp, unhealthy, "Count"))
                group_traffic = groups.get((balancer_arn, group.arn))
                if group_traffic is None or not group_traffic.seen:
                    continue
                data += _traffic_data(group_dimensions, group_traffic, stamp, balancer_level=False)
                # Sum of RequestCountPerTarget is the average per target (AWS divides by the healthy ones).
                per_target = group_traffic.requests / max(1, healthy or self._registered_count(group))
                for shape in (group_dimensions[1:], group_dimensions):
                    data.append(_datum("RequestCountPerTarget", shape, stamp, per_target, "Count"))
        if data:
            cloudwatch_backends[self.account_id][self.region].put_metric_data(NAMESPACE, data)
        return len(data)

    def start_publisher(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Publish every minute of real time, just after it ends (for `eiplane local up`)."""
        if self._publisher is not None:
            return

        def publish_each_minute() -> None:
            while True:
                current = now()
                next_minute = current.replace(second=0, microsecond=0) + timedelta(minutes=1)
                if self._stop.wait((next_minute - current).total_seconds()):
                    return
                try:
                    self.publish_minute(next_minute - timedelta(minutes=1))
                except Exception:  # one bad minute must not end the publishing of the next
                    logger.exception("publishing the load balancers' metrics failed")

        self._publisher = threading.Thread(target=publish_each_minute, daemon=True, name="alb-metrics")
        self._publisher.start()

    # --- moto patches ---------------------------------------------------------------------

    def _patches(self) -> list[tuple[Any, str, Any]]:
        original_create = ELBv2Backend.create_load_balancer
        original_register = FakeTargetGroup.register
        original_statistic = Statistics.get_statistics_for_type
        original_metric_statistics = CloudWatchResponse.get_metric_statistics
        original_backend_statistics = CloudWatchBackend.get_metric_statistics

        def create_load_balancer(backend: ELBv2Backend, name: str, security_groups: list[str], subnet_ids: list[str],
                                 subnet_mappings: list[dict[str, str]] | None = None, scheme: str = "internet-facing",
                                 loadbalancer_type: str | None = None, ip_address_type: str = "ipv4",
                                 tags: list[dict[str, str]] | None = None) -> FakeLoadBalancer:
            kind = loadbalancer_type or "application"
            if kind == "application":
                _check_zones(backend, [*(subnet_ids or []), *(m["SubnetId"] for m in subnet_mappings or [])])
            balancer = original_create(backend, name, security_groups, subnet_ids, subnet_mappings=subnet_mappings,
                                       scheme=scheme, loadbalancer_type=loadbalancer_type,
                                       ip_address_type=ip_address_type, tags=tags)
            number = int(balancer.arn.rsplit("/", 1)[1][:8], 16)  # AWS's names end in a number, not moto's "-1"
            internal = "internal-" if (scheme or "internet-facing") == "internal" else ""
            balancer.dns_name = f"{internal}{name}-{number}.{backend.region_name}.elb.amazonaws.com"
            if kind == "application" and not security_groups:
                default = backend.ec2_backend.get_default_security_group(balancer.vpc_id)
                balancer.security_groups = [default.id] if default is not None else []
            return balancer

        def register(group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            if group.target_type == "instance":
                for target in targets:  # all checked before any is registered: the call is all or nothing
                    instance = group.ec2_backend.get_instance_by_id(target["Id"])
                    if instance is None or instance.vpc_id != group.vpc_id:
                        raise InvalidTargetError()
                    if instance.state != "running":
                        raise TargetNotRunning(instance_id=target["Id"])
            original_register(group, targets)
            for target in targets:
                self._registered(group, target["Id"])

        def deregister(group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            for target in targets:
                current = group.targets.get(target["Id"])
                if current is None or ("Port" in target and int(target["Port"]) != int(current["Port"])):
                    continue  # AWS: "If the specified target does not exist, the action returns successfully."
                self._deregistered(group, target["Id"])

        def keep_terminated_targets(group: FakeTargetGroup, instance_ids: list[str]) -> None:
            """A terminated instance's target stays registered, `unused` (Target.InvalidState)."""

        def health_for(group: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
            return self._health(group, target)

        def statistic(stats: Statistics, stat: str) -> Any:
            if _percentile_rank(stat) is None:
                return original_statistic(stats, stat)
            return _percentile(stats.metric_single_values_list, stat)

        def get_metric_statistics(response: CloudWatchResponse) -> Any:
            result: Any = original_metric_statistics(response)
            extended = response._get_param("ExtendedStatistics") or []
            if extended:
                datapoints: list[Any] = result.result["Datapoints"]
                for point in datapoints:
                    values = point.metric_single_values_list
                    point.extended_statistics = {name: value for name in extended
                                                 if (value := _percentile(values, name)) is not None}
            return result

        def exact_statistics(backend: CloudWatchBackend, namespace: str, metric_name: str, start_time: datetime,
                             end_time: datetime, period: int, stats: list[str], dimensions: list[dict[str, str]],
                             unit: str | None = None) -> list[Statistics]:
            points = original_backend_statistics(backend, namespace, metric_name, start_time, end_time, period, stats,
                                                 dimensions, unit=unit)
            wanted = sorted((d["Name"], d.get("Value")) for d in dimensions or [])
            for point in points:  # each statistic is computed from metric_data when it is read
                point.metric_data = [m for m in point.metric_data
                                     if sorted((d.name, d.value) for d in m.dimensions) == wanted]
            return [point for point in points if point.metric_data]

        def dimension_before(one: Dimension, other: Dimension) -> bool:
            return (one.name or "", one.value or "") < (other.name or "", other.value or "")

        def same_dimensions(these: list[Dimension], those: list[Dimension]) -> bool:
            return sorted((d.name, d.value) for d in these) == sorted((d.name, d.value) for d in those)

        return [
            (ELBv2Backend, "create_load_balancer", create_load_balancer),
            (FakeTargetGroup, "register", register),
            (FakeTargetGroup, "deregister", deregister),
            (FakeTargetGroup, "deregister_terminated_instances", keep_terminated_targets),
            (FakeTargetGroup, "health_for", health_for),
            (Statistics, "get_statistics_for_type", statistic),
            (CloudWatchResponse, "get_metric_statistics", get_metric_statistics),
            (CloudWatchBackend, "get_metric_statistics", exact_statistics),
            (Dimension, "__lt__", dimension_before),
            (cloudwatch_models, "are_dimensions_same", same_dimensions),
        ]

    # --- registration and draining --------------------------------------------------------

    def _record(self, group: FakeTargetGroup, target_id: str) -> _Target:
        """The target's record (call with the lock held); one registered before this engine began
        (or by a path that bypassed `register`) starts as a new registration would."""
        key = (group.arn, target_id)
        record = self._targets.get(key)
        port = int(group.targets[target_id]["Port"]) if target_id in group.targets else int(group.port or 0)
        if record is None or record.port != port:
            record = self._targets[key] = _Target(group.arn, target_id, port, next_check=self.clock.seconds)
        return record

    def _registered(self, group: FakeTargetGroup, target_id: str) -> None:
        with self._lock:
            record = self._targets.get((group.arn, target_id))
            if record is not None and record.draining_until is not None:
                # Registered again while draining: a new registration; its in-flight requests finish.
                self._release_hold(record)
                del self._targets[(group.arn, target_id)]
            self._record(group, target_id)

    def _deregistered(self, group: FakeTargetGroup, target_id: str) -> None:
        delay = float(str(group.attributes.get("deregistration_delay.timeout_seconds", 300)))
        with self._lock:
            record = self._record(group, target_id)
            if record.draining_until is not None:
                return
            record.draining_until = self.clock.seconds + delay
            if record.in_flight:
                record.drain_hold = contextlib.ExitStack()
                record.drain_hold.enter_context(self.clock.busy())
            if delay <= 0:
                self._drained(group, record)

    def _drained(self, group: FakeTargetGroup, record: _Target) -> None:
        """The deregistration delay has passed: the target is gone (call with the lock held)."""
        current = group.targets.pop(record.target_id, None)
        if current is not None:
            group.deregistered_targets[record.target_id] = current
        if self._targets.get((group.arn, record.target_id)) is record:
            del self._targets[(group.arn, record.target_id)]
        self._release_hold(record)

    def _release_hold(self, record: _Target) -> None:
        hold, record.drain_hold = record.drain_hold, None
        if hold is not None:
            hold.close()

    def _end_drains(self, now: float) -> None:
        with self._lock:
            for record in list(self._targets.values()):
                if record.draining_until is not None and record.draining_until <= now:
                    group = self._group(record.group_arn)
                    if group is None:
                        del self._targets[(record.group_arn, record.target_id)]
                        self._release_hold(record)
                    else:
                        self._drained(group, record)

    # --- what DescribeTargetHealth says ---------------------------------------------------

    def _health(self, group: FakeTargetGroup, target: dict[str, Any]) -> FakeHealthStatus:
        target_id = target["Id"]
        current = group.targets.get(target_id)
        port = target.get("Port") or (current["Port"] if current else group.port)
        health_port = str(port) if group.health_check_port in (None, "traffic-port") else group.health_check_port

        def status(state: str, reason: str | None = None, description: str | None = None) -> FakeHealthStatus:
            return FakeHealthStatus(target_id, port, health_port, state, reason, description)

        if current is None or ("Port" in target and int(target["Port"]) != int(current["Port"])):
            return status("unused", "Target.NotRegistered", "Target is not registered to the target group")
        with self._lock:
            record = self._record(group, target_id)
            if record.draining_until is not None:
                if record.draining_until <= self.clock.seconds:
                    self._drained(group, record)
                    return status("unused", "Target.NotRegistered", "Target is not registered to the target group")
                return status("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
            unused = self._unused(group, record)
            if unused is not None:
                return status("unused", *unused)
            if not group.health_check_enabled:
                return status("unavailable", "Target.HealthCheckDisabled", "Health checks disabled")
            if record.state == "initial":
                if record.checks == 0:
                    return status("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
                return status("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
            if record.state == "unhealthy":
                return status("unhealthy", record.reason, record.description)
            return status("healthy")

    def _unused(self, group: FakeTargetGroup, record: _Target) -> tuple[str, str] | None:
        """Why the balancer does not use a registered target, as AWS words it; None if it does. A target
        seen unused starts afresh (`initial`) when it is used again, e.g. its instance started again."""
        reason = self._unused_reason(group, record)
        if reason is not None:
            record.reset(self.clock.seconds)
        return reason

    def _unused_reason(self, group: FakeTargetGroup, record: _Target) -> tuple[str, str] | None:
        instance = None
        if group.target_type == "instance":
            instance = group.ec2_backend.get_instance_by_id(record.target_id)
            if instance is None:
                return "Target.InvalidState", "Target is in the terminated state"
            if instance.state != "running":
                return "Target.InvalidState", f"Target is in the {instance.state} state"
        balancers = self._balancers_using(group)
        if not balancers:
            return "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
        if instance is not None:
            zone = instance.placement.zone
            if not any(zone in {subnet.availability_zone for subnet in balancer.subnets} for balancer in balancers):
                return "Target.NotInUse", "Target is in an Availability Zone that is not enabled for the load balancer"
        return None

    # --- health checks --------------------------------------------------------------------

    def _on_advance(self, before: float, after: float) -> None:
        try:
            self._run_due(self.clock.seconds)
            if self.publish_as_clock_moves is not None and after > before:
                self.publish_minute(self.publish_as_clock_moves())
        except Exception:  # a failed round must not fail the state machine whose Wait moved the clock
            logger.exception("the embedded load balancers' health checks failed")

    def _run_due(self, now: float) -> None:
        with self._checking:
            self._end_drains(now)
            plan: list[tuple[FakeTargetGroup, _Target, int]] = []
            with self._lock:
                for group in list(self._elbv2.target_groups.values()):
                    interval = float(group.health_check_interval_seconds)
                    # A long sleep needs only the last few checks: they alone decide the state.
                    most = max(int(group.healthy_threshold_count), int(group.unhealthy_threshold_count))
                    for target_id in list(group.targets):
                        record = self._record(group, target_id)
                        if record.draining_until is not None:
                            continue
                        if not group.health_check_enabled or self._unused(group, record) is not None:
                            continue
                        if record.next_check > now:
                            continue
                        due = int((now - record.next_check) // interval) + 1
                        record.next_check += due * interval
                        plan.append((group, record, min(due, most)))
            if len(plan) == 1:
                outcomes = [self._checks(*plan[0])]
            else:
                outcomes = [future.result() for future in [self._executor.submit(self._checks, *p) for p in plan]]
            with self._lock:
                for (group, record, _), results in zip(plan, outcomes, strict=True):
                    if self._targets.get((group.arn, record.target_id)) is record and record.draining_until is None:
                        for result in results:
                            _apply(group, record, result)

    def _checks(self, group: FakeTargetGroup, record: _Target, count: int) -> list[tuple[str, str]]:
        return [self._check(group, record) for _ in range(count)]

    def _check(self, group: FakeTargetGroup, record: _Target) -> tuple[str, str]:
        """One health check: ("", "") when it passed, else (reason, description) as AWS reports them."""
        port = record.port if group.health_check_port in (None, "traffic-port") else int(group.health_check_port)
        instance = group.ec2_backend.get_instance_by_id(record.target_id) if group.target_type == "instance" else None
        balancers = self._balancers_using(group)
        if instance is not None and not all(_allows(group.ec2_backend, balancer, instance, port) for balancer in balancers):
            # The instance's security groups drop the balancer's packets: the check times out. Not waited
            # for in real time: nothing could answer.
            return "Target.Timeout", "Request timed out"
        address = self.resolve(record.target_id, port)
        if address is None:
            return "Target.FailedHealthChecks", "Health checks failed"
        # HTTPS health checks are plain HTTP here too: every target server is on loopback.
        connection = http.client.HTTPConnection(address[0], address[1], timeout=float(group.health_check_timeout_seconds))
        try:
            connection.request("GET", group.health_check_path or "/", headers={"User-Agent": "ELB-HealthChecker/2.0"})
            response = connection.getresponse()
            response.read()
            code = response.status
        except TimeoutError:
            return "Target.Timeout", "Request timed out"
        except (OSError, http.client.HTTPException):
            return "Target.FailedHealthChecks", "Health checks failed"
        finally:
            connection.close()
        if _matches(code, group.matcher):
            return _PASSED
        return "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{code}]"

    # --- the proxy ------------------------------------------------------------------------

    def _serve(self, listener_arn: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes,
               client: str) -> _Answer | None:
        """One request that reached a listener's proxy; None: the listener is gone (the connection closes)."""
        found = self._listener(listener_arn)
        if found is None:
            return None
        balancer, listener = found
        action = next((a for a in listener.default_actions if a.type in ("forward", "fixed-response")), None)
        if action is not None and action.type == "fixed-response":
            config = action.data.get("FixedResponseConfig", {})
            self._count(balancer.arn, None, elb_code=None)
            return _Answer(int(config.get("StatusCode", 200)), "", [
                ("Server", "awselb/2.0"), ("Content-Type", config.get("ContentType", "text/plain"))],
                str(config.get("MessageBody", "")).encode())
        group = self._forward_group(action.data) if action is not None else None
        record = self._choose(group) if group is not None else None
        if group is None or record is None:
            self._count(balancer.arn, group.arn if group is not None else None, elb_code=503)
            return _elb_error(503)
        try:
            return self._forward(balancer, listener, group, record, method, path, headers, body, client)
        finally:
            self._finished(record)

    def _forward(self, balancer: FakeLoadBalancer, listener: Any, group: FakeTargetGroup, record: _Target,
                 method: str, path: str, headers: list[tuple[str, str]], body: bytes, client: str) -> _Answer:
        instance = group.ec2_backend.get_instance_by_id(record.target_id) if group.target_type == "instance" else None
        if instance is not None and not _allows(group.ec2_backend, balancer, instance, record.port):
            # Dropped by the instance's security groups: the connection attempt times out (not waited for).
            self._count(balancer.arn, group.arn, elb_code=504, chosen=True, connection_error=True)
            return _elb_error(504)
        address = self.resolve(record.target_id, record.port)
        if address is None:
            self._count(balancer.arn, group.arn, elb_code=502, chosen=True, connection_error=True)
            return _elb_error(502)
        injected = self.target_fault(record.target_id) if self.target_fault is not None else None
        if injected is not None:
            self._count(balancer.arn, group.arn, elb_code=None, chosen=True, target_code=injected, elapsed=0.001)
            return _Answer(injected, "Injected", [("Content-Type", "application/json")],
                           json.dumps({"error": "injected by the test"}).encode())
        idle = float(balancer.attrs.get("idle_timeout.timeout_seconds") or DEFAULT_IDLE_TIMEOUT_S)
        forwarded = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP
                     and not k.lower().startswith("x-forwarded-")]
        host = next((v for k, v in headers if k.lower() == "host"), balancer.dns_name)
        prior = next((v for k, v in headers if k.lower() == "x-forwarded-for"), None)
        forwarded += [("Host", host), ("X-Forwarded-For", f"{prior}, {client}" if prior else client),
                      ("X-Forwarded-Proto", listener.protocol.lower()), ("X-Forwarded-Port", str(listener.port)),
                      ("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}")]
        pool = self._pool(address)
        started = time.monotonic()
        try:
            response = pool.urlopen(method, path, body=body or None, headers=dict(_merged(forwarded)), retries=False,
                                    redirect=False, preload_content=False, assert_same_host=False,
                                    timeout=urllib3.Timeout(connect=min(TARGET_CONNECT_TIMEOUT_S, idle), read=idle))
            elapsed = time.monotonic() - started  # TargetResponseTime: until the target's headers came
            try:
                data = response.read()
            finally:
                response.release_conn()
        except NewConnectionError:  # refused: nothing listens on the target's port
            self._count(balancer.arn, group.arn, elb_code=502, chosen=True, connection_error=True)
            return _elb_error(502)
        except ConnectTimeoutError:
            self._count(balancer.arn, group.arn, elb_code=504, chosen=True, connection_error=True)
            return _elb_error(504)
        except ReadTimeoutError:  # the target did not answer within the idle timeout
            self._count(balancer.arn, group.arn, elb_code=504, chosen=True)
            return _elb_error(504)
        except HTTPError:  # the target closed the connection or answered something that is not HTTP
            self._count(balancer.arn, group.arn, elb_code=502, chosen=True)
            return _elb_error(502)
        self._count(balancer.arn, group.arn, elb_code=None, chosen=True, target_code=response.status, elapsed=elapsed)
        answer_headers = [(k, v) for k, v in response.headers.iteritems() if k.lower() not in _HOP_BY_HOP]
        return _Answer(response.status, response.reason or "", answer_headers, data)

    def _choose(self, group: FakeTargetGroup) -> _Target | None:
        """The target for a new request (its in-flight count taken), or None: no target to send it to."""
        with self._lock:
            candidates = []
            for target_id in list(group.targets):
                record = self._record(group, target_id)
                if record.draining_until is None and self._unused(group, record) is None:
                    candidates.append(record)
            if group.health_check_enabled:
                routable = [r for r in candidates if r.state == "healthy"]
                if not routable and candidates and all(r.state == "unhealthy" for r in candidates):
                    routable = candidates  # every target unhealthy: the ALB fails open to all of them
            else:
                routable = candidates
            if not routable:
                return None
            if group.attributes.get("load_balancing.algorithm.type") == "least_outstanding_requests":
                chosen = min(routable, key=lambda r: (r.in_flight, r.picked))
            else:
                chosen = min(routable, key=lambda r: r.picked)
            chosen.picked = next(self._picks)
            chosen.in_flight += 1
            return chosen

    def _finished(self, record: _Target) -> None:
        with self._lock:
            record.in_flight -= 1
            if record.in_flight == 0 and record.draining_until is not None:
                self._release_hold(record)

    def _pool(self, address: tuple[str, int]) -> urllib3.HTTPConnectionPool:
        """Keep-alive connections to one target server, reused across requests (as the ALB does)."""
        with self._lock:
            if address not in self._pools:
                self._pools[address] = urllib3.HTTPConnectionPool(address[0], address[1], maxsize=128, block=False,
                                                                  retries=False)
            return self._pools[address]

    def _count(self, balancer_arn: str, group_arn: str | None, *, elb_code: int | None, chosen: bool = False,
               connection_error: bool = False, target_code: int | None = None, elapsed: float | None = None) -> None:
        with self._lock:
            ledgers = [self._balancer_traffic.setdefault(balancer_arn, _Traffic())]
            if group_arn is not None:
                ledgers.append(self._group_traffic.setdefault((balancer_arn, group_arn), _Traffic()))
            for ledger in ledgers:
                ledger.seen += 1
                ledger.requests += chosen
                ledger.connection_errors += connection_error
                if elb_code is not None and elb_code >= 500:
                    ledger.elb_5xx += 1
                if target_code is not None:
                    ledger.target_codes[f"{target_code // 100}XX"] += 1
                if elapsed is not None:
                    ledger.response_times.append(elapsed)

    def _close_orphan_proxies(self) -> None:
        """Proxies of listeners (or balancers) that were deleted (call with the lock held)."""
        for arn in [arn for arn in self._proxies if self._listener(arn) is None]:
            self._proxies.pop(arn).close()

    # --- moto lookups ---------------------------------------------------------------------

    @property
    def _elbv2(self) -> ELBv2Backend:
        return elbv2_backends[self.account_id][self.region]

    def _group(self, arn: str) -> FakeTargetGroup | None:
        return self._elbv2.target_groups.get(arn)

    def _find_balancer(self, dns_name_or_arn: str) -> FakeLoadBalancer:
        wanted = dns_name_or_arn.lower().rstrip(".")
        for balancer in list(self._elbv2.load_balancers.values()):
            if wanted in (balancer.arn.lower(), balancer.dns_name.lower()):
                return balancer
        raise LookupError(f"no load balancer has the DNS name or ARN {dns_name_or_arn}")

    def _listener(self, listener_arn: str) -> tuple[FakeLoadBalancer, Any] | None:
        for balancer in list(self._elbv2.load_balancers.values()):
            listener = balancer.listeners.get(listener_arn)
            if listener is not None:
                return balancer, listener
        return None

    def _forward_group(self, action: dict[str, Any]) -> FakeTargetGroup | None:
        """The target group a forward action sends this request to (weighted, with ForwardConfig)."""
        weighted = [(tg["TargetGroupArn"], int(tg.get("Weight", 1)))
                    for tg in action.get("ForwardConfig", {}).get("TargetGroups", [])]
        if "TargetGroupArn" in action:
            weighted = [(action["TargetGroupArn"], 1)]
        total = sum(weight for _, weight in weighted)
        if total <= 0:
            return None
        pick = secrets.randbelow(total)
        for arn, weight in weighted:
            if pick < weight:
                return self._group(arn)
            pick -= weight
        return None

    def _balancers_using(self, group: FakeTargetGroup) -> list[FakeLoadBalancer]:
        """The balancers with a listener (default action or rule) that forwards to the group."""
        backend = elbv2_backends[group.account_id][group.region_name]
        using = []
        for balancer in list(backend.load_balancers.values()):
            actions = [a for listener in list(balancer.listeners.values()) for rule in listener.rules.values()
                       for a in rule.actions]
            if any(group.arn in _forward_arns(a.data) for a in actions):
                using.append(balancer)
        return using

    def _groups_of(self, balancer_arn: str) -> list[FakeTargetGroup]:
        return [g for g in list(self._elbv2.target_groups.values())
                if any(b.arn == balancer_arn for b in self._balancers_using(g))]

    def _host_counts(self, group: FakeTargetGroup) -> tuple[int, int]:
        with self._lock:
            records = [self._record(group, t) for t in list(group.targets)]
            used = [r for r in records if r.draining_until is None and self._unused(group, r) is None]
            return sum(r.state == "healthy" for r in used), sum(r.state == "unhealthy" for r in used)

    def _registered_count(self, group: FakeTargetGroup) -> int:
        with self._lock:
            return sum(self._record(group, t).draining_until is None for t in list(group.targets))


class _Proxy:
    """One listener's proxy: a threaded HTTP server on 127.0.0.1 (a thread per connection, so requests
    are served side by side). An HTTPS listener is served as plain HTTP too: loopback needs no TLS."""

    def __init__(self, owner: LoadBalancers, listener_arn: str) -> None:
        handler = type("ListenerHandler", (_ProxyHandler,), {"owner": owner, "listener_arn": listener_arn})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                       name=f"alb-{listener_arn[-8:]}")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # socketserver's 5 would turn a burst of clients away


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of an ALB expect
    server_version = "awselb/2.0"
    sys_version = ""
    timeout = DEFAULT_IDLE_TIMEOUT_S  # an idle client connection is closed, as the ALB does
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle plus delayed ACKs would add 40 ms
    owner: LoadBalancers
    listener_arn: str

    def _handle(self) -> None:
        body = _read_body(self)
        answer = self.owner._serve(self.listener_arn, self.command, self.path, list(self.headers.items()), body,
                                   self.client_address[0])
        if answer is None:
            self.close_connection = True
            return
        # The target's own Server and Date pass through (send_response would add a second of each).
        self.send_response_only(answer.status, answer.reason or None)
        for name, value in answer.headers:
            self.send_header(name, value)
        if not any(name.lower() == "date" for name, _ in answer.headers):
            self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr."""


# --- helpers ---------------------------------------------------------------------------------

def _check_zones(backend: ELBv2Backend, subnet_ids: list[str]) -> None:
    zones = []
    for subnet_id in subnet_ids:
        try:
            zones.append(backend.ec2_backend.get_subnet(subnet_id).availability_zone)
        except Exception:
            return  # moto itself refuses an unknown subnet
    if len(set(zones)) != len(zones):
        raise InvalidConfigurationRequest("A load balancer cannot be attached to multiple subnets in the same Availability Zone")
    if len(zones) < 2:
        raise ValidationError("At least two subnets in two different Availability Zones must be specified")


def _apply(group: FakeTargetGroup, record: _Target, result: tuple[str, str]) -> None:
    record.checks += 1
    if result == _PASSED:
        record.passes, record.failures = record.passes + 1, 0
        if record.state != "healthy" and record.passes >= int(group.healthy_threshold_count):
            record.state, record.reason, record.description = "healthy", None, None
        return
    record.passes, record.failures = 0, record.failures + 1
    if record.state != "unhealthy" and record.failures >= int(group.unhealthy_threshold_count):
        record.state = "unhealthy"
    if record.state == "unhealthy":
        record.reason, record.description = result


def _matches(code: int, matcher: dict[str, Any] | None) -> bool:
    """The target group's Matcher HttpCode: "200", "200,202" or "200-299"."""
    for part in str((matcher or {}).get("HttpCode") or "200").split(","):
        low, _, high = part.strip().partition("-")
        if int(low) <= code <= int(high or low):
            return True
    return False


def _allows(ec2: Any, balancer: FakeLoadBalancer, instance: Any, port: int) -> bool:
    """Whether the instance's security groups let the balancer's nodes in on `port`: a rule that
    names one of the balancer's groups, or a CIDR that holds every subnet of the balancer (its nodes
    have addresses there)."""
    balancer_groups = set(balancer.security_groups or [])
    networks = [ipaddress.ip_network(subnet.cidr_block) for subnet in balancer.subnets]
    for group in instance.security_groups:
        group = ec2.get_security_group_from_id(group) if isinstance(group, str) else group
        for rule in getattr(group, "ingress_rules", []):
            if rule.ip_protocol not in ("-1", "tcp") or (
                    rule.ip_protocol == "tcp" and not int(rule.from_port) <= port <= int(rule.to_port)):
                continue
            source = rule.source_group or {}
            source_id = source.get("GroupId")
            if source_id is None and source.get("GroupName"):
                named = ec2.get_security_group_from_name(source["GroupName"], instance.vpc_id)
                source_id = named.id if named is not None else None
            if source_id in balancer_groups:
                return True
            cidr = (rule.ip_range or {}).get("CidrIp")
            if cidr and networks and all(n.subnet_of(ipaddress.ip_network(cidr, strict=False)) for n in networks):  # type: ignore[arg-type]
                return True
    return False


def _forward_arns(action: dict[str, Any]) -> list[str]:
    if action.get("Type") != "forward":
        return []
    if "TargetGroupArn" in action:
        return [action["TargetGroupArn"]]
    return [tg["TargetGroupArn"] for tg in action.get("ForwardConfig", {}).get("TargetGroups", [])]


def _balancer_dimension(arn: str) -> str:
    return arn.split(":loadbalancer/", 1)[1]  # app/<name>/<id>


def _group_dimension(arn: str) -> str:
    return arn.rsplit(":", 1)[1]  # targetgroup/<name>/<id>


def _datum(name: str, dimensions: list[dict[str, str]], stamp: datetime, value: float, unit: str) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": dimensions, "Timestamp": stamp, "Value": float(value), "Unit": unit}


def _counted(name: str, dimensions: list[dict[str, str]], stamp: datetime, count: int) -> dict[str, Any]:
    """A count as the ALB publishes it: one sample of 1 per event, so Sum is the count and
    Minimum, Maximum and Average are 1."""
    return {"MetricName": name, "Dimensions": dimensions, "Timestamp": stamp, "Values": [1.0], "Counts": [float(count)],
            "Unit": "Count"}


def _traffic_data(dimensions: list[dict[str, str]], traffic: _Traffic, stamp: datetime,
                  balancer_level: bool) -> list[dict[str, Any]]:
    # RequestCount is reported whenever requests flow (0 when the balancer answered them all itself);
    # the other counts only when they are not zero.
    data = [_counted("RequestCount", dimensions, stamp, traffic.requests) if traffic.requests
            else _datum("RequestCount", dimensions, stamp, 0, "Count")]
    for code_class, count in sorted(traffic.target_codes.items()):
        data.append(_counted(f"HTTPCode_Target_{code_class}_Count", dimensions, stamp, count))
    if balancer_level and traffic.elb_5xx:
        data.append(_counted("HTTPCode_ELB_5XX_Count", dimensions, stamp, traffic.elb_5xx))
    if traffic.connection_errors:
        data.append(_counted("TargetConnectionErrorCount", dimensions, stamp, traffic.connection_errors))
    # Every request's time, as values with counts (at most 150 values a datum): percentiles stay computable.
    times = sorted(Counter(round(t, 6) for t in traffic.response_times).items())
    for start in range(0, len(times), VALUES_PER_DATUM):
        chunk = times[start:start + VALUES_PER_DATUM]
        data.append({"MetricName": "TargetResponseTime", "Dimensions": dimensions, "Timestamp": stamp,
                     "Values": [v for v, _ in chunk], "Counts": [float(c) for _, c in chunk], "Unit": "Seconds"})
    return data


def _percentile_rank(stat: str) -> float | None:
    """99.0 for "p99", 99.9 for "p99.9"; None for any other statistic."""
    if len(stat) < 2 or stat[0] != "p":
        return None
    try:
        rank = float(stat[1:])
    except ValueError:
        return None
    return rank if 0 <= rank <= 100 else None


def _percentile(values: list[float], stat: str) -> float | None:
    """The nearest-rank percentile of the values (None when there are none, or `stat` is not pNN)."""
    rank = _percentile_rank(stat)
    if rank is None or not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def _merged(headers: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Repeated request headers joined with commas (RFC 9110), for a client that takes a mapping."""
    joined: dict[str, tuple[str, str]] = {}
    for name, value in headers:
        key = name.lower()
        joined[key] = (joined[key][0], f"{joined[key][1]}, {value}") if key in joined else (name, value)
    yield from joined.values()


def _elb_error(status: int) -> _Answer:
    """The balancer's own error page, as the ALB sends it."""
    reason = http.client.responses.get(status, "")
    page = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n")
    return _Answer(status, reason, [("Server", "awselb/2.0"), ("Content-Type", "text/html")], page.encode())


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""
