"""The embedded Application Load Balancer (eiplane/local/load_balancers.py): health checks on the virtual
clock, a real HTTP proxy per listener, draining, security groups, and the AWS/ApplicationELB metrics.
The targets are stand-in HTTP servers started here, reached through the balancer's resolver."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eiplane.local.engine import EmbeddedAws

DEADLINE_S = 30.0  # generous: every wait below ends as soon as its condition holds
PORT = 8080


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


class StandIn(ThreadingHTTPServer):
    """A target's model server: /ping answers `ping`; /slow holds each request until `release` is set;
    /fail answers 500; anything else echoes the request. Every request but /ping is recorded."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.name = name
        self.ping = 200
        self.release = threading.Event()
        self.barrier: threading.Barrier | None = None
        self.seen: list[str] = []
        self.answered: list[str] = []
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: StandIn

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        if self.path == "/ping":
            return self._send(server.ping, b"")
        server.seen.append(self.path)
        if self.path == "/slow":
            server.release.wait(DEADLINE_S)
        if self.path == "/together" and server.barrier is not None:
            server.barrier.wait(DEADLINE_S)  # raises (500 below) unless all arrive side by side
        code = 500 if self.path == "/fail" else 200
        echo = {"server": server.name, "method": self.command, "path": self.path, "body": body.decode(),
                "forwarded_for": self.headers.get("X-Forwarded-For")}
        self._send(code, json.dumps(echo).encode())
        server.answered.append(self.path)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Fleet:
    aws: EmbeddedAws
    vpc: str
    subnets: list[str]
    balancer_sg: str
    instance_sg: str
    balancer: dict[str, Any]
    group: str
    listener: str
    instances: list[str] = field(default_factory=list)
    servers: dict[str, StandIn] = field(default_factory=dict)

    @property
    def elbv2(self) -> Any:
        return self.aws.client("elbv2")

    @property
    def url(self) -> str:
        return self.aws.load_balancers.url_for(self.balancer["DNSName"], 80)

    def launch(self, zone_index: int = 0, security_group: str | None = None) -> str:
        ec2 = self.aws.client("ec2")
        instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="g5.xlarge",
                                     SubnetId=self.subnets[zone_index],
                                     SecurityGroupIds=[security_group or self.instance_sg])["Instances"][0]["InstanceId"]
        self.instances.append(instance)
        self.servers[instance] = StandIn(instance)
        return str(instance)

    def register(self, *instances: str) -> None:
        self.elbv2.register_targets(TargetGroupArn=self.group, Targets=[{"Id": i, "Port": PORT} for i in instances])

    def health(self, instance: str | None = None) -> dict[str, dict[str, Any]]:
        targets = {"Targets": [{"Id": instance, "Port": PORT}]} if instance else {}
        described = self.elbv2.describe_target_health(TargetGroupArn=self.group, **targets)["TargetHealthDescriptions"]
        return {d["Target"]["Id"]: d["TargetHealth"] for d in described}

    def state(self, instance: str) -> str:
        return str(self.health(instance)[instance]["State"])

    def get(self, path: str = "/") -> tuple[int, dict[str, Any] | bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=DEADLINE_S) as response:  # noqa: S310 (loopback)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, body

    def healthy(self, *instances: str) -> None:
        """Two passing checks: the first at the next move of the clock, the second an interval later."""
        self.aws.clock.advance(5)
        assert {i: self.state(i) for i in instances} == dict.fromkeys(instances, "healthy")


@pytest.fixture
def fleet(aws: EmbeddedAws) -> Iterator[Fleet]:
    """A VPC with two zones, the balancer's and the instances' security groups (the instances take the
    serving port only from the balancer's group), an internal ALB, a target group checking /ping every
    5 s (thresholds 2 and 2, least outstanding requests) and an HTTP listener forwarding to it."""
    ec2, elbv2 = aws.client("ec2"), aws.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.88.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.88.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate(("us-east-1a", "us-east-1b", "us-east-1c"))]
    balancer_sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    instance_sg = ec2.create_security_group(GroupName="fleet", Description="fleet", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=instance_sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "UserIdGroupPairs": [{"GroupId": balancer_sg}]}])
    balancer = elbv2.create_load_balancer(Name="fleet", Subnets=subnets[:2], SecurityGroups=[balancer_sg],
                                          Scheme="internal", Type="application")["LoadBalancers"][0]
    group = elbv2.create_target_group(
        Name="fleet", Protocol="HTTP", Port=PORT, VpcId=vpc, TargetType="instance", HealthCheckProtocol="HTTP",
        HealthCheckPath="/ping", HealthCheckPort="traffic-port", HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2, UnhealthyThresholdCount=2,
        Matcher={"HttpCode": "200"})["TargetGroups"][0]["TargetGroupArn"]
    elbv2.modify_target_group_attributes(TargetGroupArn=group, Attributes=[
        {"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"},
        {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
    listener = elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                     DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])["Listeners"][0]
    built = Fleet(aws, vpc, subnets, balancer_sg, instance_sg, balancer, group, listener["ListenerArn"])
    aws.load_balancers.resolve = lambda instance, port: (
        ("127.0.0.1", built.servers[instance].port) if instance in built.servers and port == PORT else None)
    yield built
    for server in built.servers.values():
        server.release.set()
        server.shutdown()
        server.server_close()


def test_a_new_target_is_initial_until_two_pings_pass(fleet: Fleet) -> None:
    instance = fleet.launch()
    fleet.register(instance)

    assert fleet.health(instance)[instance] == {"State": "initial", "Reason": "Elb.RegistrationInProgress",
                                                "Description": "Target registration is in progress"}
    fleet.aws.load_balancers.tick()  # the first check is due at registration
    assert fleet.health(instance)[instance] == {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                                                "Description": "Initial health checks in progress"}
    assert fleet.get("/")[0] == 503  # no target has passed its initial checks yet
    fleet.aws.clock.advance(5)  # the second check, an interval later
    assert fleet.health(instance)[instance] == {"State": "healthy"}
    status, echo = fleet.get("/hello")
    assert status == 200 and isinstance(echo, dict) and echo["server"] == instance and echo["path"] == "/hello"
    assert echo["forwarded_for"] == "127.0.0.1"


def test_a_failing_target_turns_unhealthy_and_the_healthy_one_gets_every_request(fleet: Fleet) -> None:
    good, bad = fleet.launch(0), fleet.launch(1)
    fleet.register(good, bad)
    fleet.healthy(good, bad)

    fleet.servers[bad].ping = 503
    fleet.aws.clock.advance(5)  # one failure: still healthy (threshold 2)
    assert fleet.state(bad) == "healthy"
    fleet.aws.clock.advance(5)
    assert fleet.health(bad)[bad] == {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
                                      "Description": "Health checks failed with these codes: [503]"}
    answers = [fleet.get(f"/r{n}") for n in range(6)]
    assert {echo["server"] for _, echo in answers if isinstance(echo, dict)} == {good}
    assert fleet.servers[bad].seen == []

    fleet.servers[good].ping = 503  # every target unhealthy: the balancer fails open to all of them
    fleet.aws.clock.advance(10)
    assert fleet.state(good) == fleet.state(bad) == "unhealthy"
    answers = [fleet.get(f"/open{n}") for n in range(4)]
    assert {echo["server"] for _, echo in answers if isinstance(echo, dict)} == {good, bad}


def test_requests_go_to_the_target_with_fewest_outstanding(fleet: Fleet) -> None:
    first, second = fleet.launch(0), fleet.launch(1)
    fleet.register(first, second)
    fleet.healthy(first, second)

    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = [pool.submit(fleet.get, "/slow")]
        busy = wait_until(lambda: [s for s in fleet.servers.values() if s.seen == ["/slow"]], "the first slow request")[0]
        idle = next(s for s in fleet.servers.values() if s is not busy)
        answers = [fleet.get(f"/fast{n}") for n in range(4)]  # round robin would send two of them to `busy`
        assert {echo["server"] for _, echo in answers if isinstance(echo, dict)} == {idle.name}
        slow.append(pool.submit(fleet.get, "/slow"))  # two slow requests at once: one on each target
        wait_until(lambda: "/slow" in idle.seen, "the second slow request on the other target")
        assert busy.seen == ["/slow"]
        for server in fleet.servers.values():
            server.release.set()
        assert [f.result()[0] for f in slow] == [200, 200]


def test_the_publisher_publishes_each_minute_that_ends(fleet: Fleet) -> None:
    instance = fleet.launch()
    fleet.register(instance)
    fleet.healthy(instance)
    assert fleet.get("/")[0] == 200
    # A clock just before 10:01: the publisher writes the minute 10:00 at once.
    fleet.aws.load_balancers.start_publisher(now=lambda: datetime(2026, 12, 1, 10, 0, 59, 990000, tzinfo=UTC))
    minute = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    cloudwatch = fleet.aws.client("cloudwatch")
    dimensions = [{"Name": "LoadBalancer", "Value": fleet.balancer["LoadBalancerArn"].split(":loadbalancer/")[1]}]
    points = wait_until(lambda: cloudwatch.get_metric_statistics(
        Namespace="AWS/ApplicationELB", MetricName="RequestCount", Dimensions=dimensions, StartTime=minute,
        EndTime=minute + timedelta(minutes=1), Period=60, Statistics=["Sum"])["Datapoints"], "the published minute")
    assert [p["Sum"] for p in points] == [1]


def test_the_proxy_serves_64_requests_side_by_side(fleet: Fleet) -> None:
    """Each stand-in answers only once all 64 requests have reached the targets: a proxy that served
    them one at a time would leave the first waiting for the rest (and fail on the barrier)."""
    targets = [fleet.launch(0), fleet.launch(1)]
    fleet.register(*targets)
    fleet.healthy(*targets)
    barrier = threading.Barrier(64)
    for server in fleet.servers.values():
        server.barrier = barrier

    with ThreadPoolExecutor(max_workers=64) as pool:
        answers = list(pool.map(lambda n: fleet.get("/together"), range(64)))

    assert [status for status, _ in answers] == [200] * 64
    assert [len(s.seen) for s in fleet.servers.values()] == [32, 32]  # least outstanding: evenly spread


def test_deregistration_drains_in_flight_requests_and_holds_the_virtual_wait(fleet: Fleet) -> None:
    # Round robin: a target with a request in flight would still get the next one, were it not draining.
    fleet.elbv2.modify_target_group_attributes(TargetGroupArn=fleet.group, Attributes=[
        {"Key": "load_balancing.algorithm.type", "Value": "round_robin"}])
    leaving, staying = fleet.launch(0), fleet.launch(1)
    fleet.register(leaving, staying)
    fleet.healthy(leaving, staying)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = wait_until(lambda: _slow_request_on(fleet, pool, leaving), "a slow request on the leaving target")

        fleet.elbv2.deregister_targets(TargetGroupArn=fleet.group, Targets=[{"Id": leaving, "Port": PORT}])
        assert fleet.health(leaving)[leaving] == {"State": "draining", "Reason": "Target.DeregistrationInProgress",
                                                  "Description": "Target deregistration is in progress"}
        assert set(fleet.health()) == {leaving, staying}  # listed while it drains
        answers = [fleet.get(f"/after{n}") for n in range(4)]
        assert {echo["server"] for _, echo in answers if isinstance(echo, dict)} == {staying}

        # The state machine's Wait of the deregistration delay: it lasts until the request is done.
        waiter = threading.Thread(target=fleet.aws.clock.sleep, args=(30,))
        before = fleet.aws.clock.seconds
        waiter.start()
        wait_until(lambda: fleet.aws.clock.seconds >= before + 30, "the Wait to begin")
        assert waiter.is_alive() and fleet.servers[leaving].answered == []
        fleet.servers[leaving].release.set()
        assert in_flight.result()[0] == 200
        waiter.join(DEADLINE_S)
        assert not waiter.is_alive()

    assert fleet.health(leaving)[leaving] == {"State": "unused", "Reason": "Target.NotRegistered",
                                              "Description": "Target is not registered to the target group"}
    assert set(fleet.health()) == {staying}


def _slow_request_on(fleet: Fleet, pool: ThreadPoolExecutor, instance: str) -> Any:
    """A slow request, sent until one lands on `instance` (least outstanding alternates between two)."""
    request = pool.submit(fleet.get, "/slow")
    arrived = wait_until(lambda: [s for s in fleet.servers.values() if "/slow" in s.seen], "the slow request")
    if arrived[0].name == instance:
        return request
    arrived[0].release.set()
    request.result()
    arrived[0].seen.clear()
    arrived[0].release.clear()
    return None


def test_a_target_whose_security_group_shuts_out_the_balancer_stays_unhealthy(fleet: Fleet) -> None:
    ec2 = fleet.aws.client("ec2")
    closed = ec2.create_security_group(GroupName="closed", Description="no ingress", VpcId=fleet.vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=closed, IpPermissions=[  # the serving port, but not from the ALB
        {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "IpRanges": [{"CidrIp": "10.88.200.0/24"}]}])
    shut_out = fleet.launch(security_group=closed)
    fleet.register(shut_out)
    fleet.aws.clock.advance(10)

    assert fleet.health(shut_out)[shut_out] == {"State": "unhealthy", "Reason": "Target.Timeout",
                                                "Description": "Request timed out"}
    assert fleet.get("/")[0] == 504  # failed open to it; the connection never gets through
    assert fleet.servers[shut_out].seen == []

    ec2.authorize_security_group_ingress(GroupId=closed, IpPermissions=[  # the VPC's CIDR holds the balancer
        {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "IpRanges": [{"CidrIp": "10.88.0.0/16"}]}])
    fleet.aws.clock.advance(10)
    assert fleet.state(shut_out) == "healthy"


def test_the_balancer_answers_503_with_no_target_502_when_refused_and_504_past_the_idle_timeout(fleet: Fleet) -> None:
    assert fleet.get("/")[0] == 503

    refusing = fleet.launch()
    fleet.register(refusing)
    fleet.healthy(refusing)
    port = fleet.servers[refusing].port
    fleet.aws.load_balancers.resolve = lambda instance, p: ("127.0.0.1", _closed_port())
    status, page = fleet.get("/")
    assert status == 502 and isinstance(page, bytes) and b"502 Bad Gateway" in page

    fleet.aws.load_balancers.resolve = lambda instance, p: ("127.0.0.1", port)
    fleet.elbv2.modify_load_balancer_attributes(LoadBalancerArn=fleet.balancer["LoadBalancerArn"], Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    assert fleet.get("/slow")[0] == 504  # held until `release`: past the idle timeout


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again on return: nothing listens there


def test_an_application_load_balancer_needs_two_zones(fleet: Fleet) -> None:
    with pytest.raises(ClientError) as one_zone:
        fleet.elbv2.create_load_balancer(Name="one-zone", Subnets=fleet.subnets[:1], Type="application")
    assert one_zone.value.response["Error"] == {
        "Code": "ValidationError", "Message": "At least two subnets in two different Availability Zones must be specified",
        "Type": "Sender"}
    ec2 = fleet.aws.client("ec2")
    same_zone = ec2.create_subnet(VpcId=fleet.vpc, CidrBlock="10.88.9.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    with pytest.raises(ClientError, match="cannot be attached to multiple subnets in the same Availability Zone"):
        fleet.elbv2.create_load_balancer(Name="same-zone", Subnets=[fleet.subnets[0], same_zone["SubnetId"]])
    default_sg = fleet.elbv2.create_load_balancer(Name="no-sg", Subnets=fleet.subnets[:2])["LoadBalancers"][0]
    assert default_sg["DNSName"].startswith("no-sg-") and default_sg["DNSName"].endswith(".us-east-1.elb.amazonaws.com")
    assert len(default_sg["SecurityGroups"]) == 1  # the VPC's default group, as AWS assigns it
    assert fleet.balancer["DNSName"].startswith("internal-fleet-")


def test_deregistering_an_unknown_target_succeeds_and_registering_needs_a_running_instance(fleet: Fleet) -> None:
    fleet.elbv2.deregister_targets(TargetGroupArn=fleet.group, Targets=[{"Id": "i-0123456789abcdef0", "Port": PORT}])

    stopped = fleet.launch()
    fleet.aws.client("ec2").stop_instances(InstanceIds=[stopped])
    with pytest.raises(ClientError) as refused:
        fleet.register(stopped)
    assert refused.value.response["Error"]["Code"] == "InvalidTarget"
    assert "not in a running state" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="InvalidTarget"):
        fleet.register("i-0123456789abcdef0")


def test_stopped_and_terminated_instances_targets_are_unused(fleet: Fleet) -> None:
    stopping, terminating = fleet.launch(0), fleet.launch(1)
    fleet.register(stopping, terminating)
    fleet.healthy(stopping, terminating)
    ec2 = fleet.aws.client("ec2")
    ec2.stop_instances(InstanceIds=[stopping])
    ec2.terminate_instances(InstanceIds=[terminating])

    assert fleet.health() == {
        stopping: {"State": "unused", "Reason": "Target.InvalidState", "Description": "Target is in the stopped state"},
        terminating: {"State": "unused", "Reason": "Target.InvalidState",
                      "Description": "Target is in the terminated state"}}
    assert fleet.get("/")[0] == 503

    ec2.start_instances(InstanceIds=[stopping])  # back in service only after its initial checks again
    assert fleet.health(stopping)[stopping]["State"] == "initial"
    fleet.healthy(stopping)


def test_a_target_outside_the_balancer_zones_or_with_no_listener_is_unused(fleet: Fleet) -> None:
    elsewhere = fleet.launch(zone_index=2)  # us-east-1c: not one of the balancer's zones
    fleet.register(elsewhere)
    assert fleet.health(elsewhere)[elsewhere] == {
        "State": "unused", "Reason": "Target.NotInUse",
        "Description": "Target is in an Availability Zone that is not enabled for the load balancer"}
    fleet.elbv2.delete_listener(ListenerArn=fleet.listener)
    assert fleet.health(elsewhere)[elsewhere]["Description"] == (
        "Target group is not configured to receive traffic from the load balancer")


def test_metrics_are_published_for_a_minute_with_traffic_and_p99_is_readable(fleet: Fleet) -> None:
    first, second = fleet.launch(0), fleet.launch(1)
    fleet.register(first, second)
    fleet.healthy(first, second)
    # One slow request, held while 99 others come and go: the slowest of 100, above the p99.
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(fleet.get, "/slow")
        wait_until(lambda: any("/slow" in s.seen for s in fleet.servers.values()), "the slow request")
        statuses = [fleet.get("/fail" if n < 3 else f"/r{n}")[0] for n in range(99)]
        for server in fleet.servers.values():
            server.release.set()
        assert slow.result()[0] == 200
    assert statuses.count(500) == 3

    minute = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert fleet.aws.load_balancers.publish_minute(minute) > 0
    assert fleet.aws.load_balancers.publish_minute(minute + timedelta(minutes=1)) == 0  # no traffic: nothing

    balancer = {"Name": "LoadBalancer", "Value": fleet.balancer["LoadBalancerArn"].split(":loadbalancer/")[1]}
    group = {"Name": "TargetGroup", "Value": fleet.group.rsplit(":", 1)[1]}
    assert balancer["Value"].startswith("app/fleet/") and group["Value"].startswith("targetgroup/fleet/")
    cloudwatch = fleet.aws.client("cloudwatch")

    def read(name: str, stat: str, *dimensions: dict[str, str], at: datetime = minute) -> list[float]:
        result = cloudwatch.get_metric_data(StartTime=at, EndTime=at + timedelta(minutes=1), MetricDataQueries=[
            {"Id": "m", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": name,
                                                  "Dimensions": list(dimensions)}, "Period": 60, "Stat": stat}}])
        return [float(v) for v in result["MetricDataResults"][0]["Values"]]

    assert read("RequestCount", "Sum", balancer) == [100]
    assert read("RequestCount", "Sum", group, balancer) == [100]  # either order of dimensions, as on AWS
    assert read("RequestCountPerTarget", "Sum", group) == read("RequestCountPerTarget", "Sum", balancer, group) == [50]
    assert read("HTTPCode_Target_5XX_Count", "Sum", balancer, group) == [3]
    assert read("HTTPCode_Target_2XX_Count", "Sum", balancer) == [97]
    assert read("HealthyHostCount", "Average", balancer, group) == [2]
    assert read("RequestCount", "Sum", balancer, at=minute + timedelta(minutes=1)) == []

    p99, p50, maximum = (read("TargetResponseTime", stat, balancer, group)[0] for stat in ("p99", "p50", "Maximum"))
    assert 0 < p50 <= p99 < maximum  # the p99 of 100 requests leaves out the slowest
    assert read("TargetResponseTime", "p100", balancer) == [maximum]
    statistics = cloudwatch.get_metric_statistics(
        Namespace="AWS/ApplicationELB", MetricName="TargetResponseTime", Dimensions=[balancer, group],
        StartTime=minute, EndTime=minute + timedelta(minutes=1), Period=60, ExtendedStatistics=["p99"])
    assert [p["ExtendedStatistics"]["p99"] for p in statistics["Datapoints"]] == [p99]
    listed = cloudwatch.list_metrics(Namespace="AWS/ApplicationELB", MetricName="RequestCount")["Metrics"]
    assert len(listed) == 2  # one per set of dimensions


def test_url_for_finds_the_listener_by_dns_name_or_arn(fleet: Fleet) -> None:
    balancers = fleet.aws.load_balancers
    by_dns = balancers.url_for(fleet.balancer["DNSName"], 80)
    assert by_dns == balancers.url_for(fleet.balancer["LoadBalancerArn"]) == balancers.listener_urls(
        fleet.balancer["DNSName"])[80]
    assert by_dns.startswith("http://127.0.0.1:")
    with pytest.raises(LookupError):
        balancers.url_for(fleet.balancer["DNSName"], 443)
    fleet.elbv2.delete_listener(ListenerArn=fleet.listener)
    assert balancers.listener_urls(fleet.balancer["DNSName"]) == {}
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        urllib.request.urlopen(by_dns, timeout=DEADLINE_S)  # noqa: S310 (loopback): the proxy is gone
