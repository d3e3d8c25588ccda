"""Integration fixtures: a fresh embedded AWS per test (template.yaml deployed on moto, the
real ASL, the real handlers), and fault injection for what moto cannot produce."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from eiplane.cli.demo_capacity import write_clock
from eiplane.executions import ExecutionResult
from eiplane.local.engine import EmbeddedAws
from eiplane.local.lambda_runtime import add_handler_hook, clear_handler_hooks, current_invocation, elapse
from tests.conftest import load_event

REGION = "us-east-1"


# The embedded instances' wall clock in tests: their model servers publish a minute's metrics only when a
# test moves this clock past it (publish_a_minute), never on this machine's own minutes.
INSTANCE_CLOCK_START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[EmbeddedAws]:
    with EmbeddedAws(region=REGION) as engine:
        assert engine.instances is not None
        engine.instances.clock_file = tmp_path / "instance-clock.txt"
        write_clock(engine.instances.clock_file, INSTANCE_CLOCK_START)
        yield engine


def publish_a_minute(aws: EmbeddedAws, instance_ids: list[str], deadline_s: float = 60.0) -> datetime:
    """Move the instances' clock one minute on and wait (by progress) until each named instance's model
    server has published that minute (PutMetricData as the instance's role). Returns the minute."""
    assert aws.instances is not None and aws.instances.clock_file is not None
    now = datetime.fromisoformat(aws.instances.clock_file.read_text().strip())
    write_clock(aws.instances.clock_file, now + timedelta(minutes=1))
    queries = [{"Id": f"i{n}", "ReturnData": True, "MetricStat": {"Metric": {
        "Namespace": "eiplane/Inference", "MetricName": "Requests",
        "Dimensions": [{"Name": "Fleet", "Value": fleet_of(aws, instance)}, {"Name": "InstanceId", "Value": instance}]},
        "Period": 60, "Stat": "Sum"}} for n, instance in enumerate(instance_ids)]
    deadline = time.monotonic() + deadline_s
    while True:
        results = aws.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries, StartTime=now, EndTime=now + timedelta(minutes=1))["MetricDataResults"]
        if all(r["Values"] for r in results):
            return now
        assert time.monotonic() < deadline, f"the servers of {instance_ids} did not publish {now.isoformat()}"
        time.sleep(0.05)  # polling the servers' progress


def fleet_of(aws: EmbeddedAws, instance_id: str) -> str:
    reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservations[0]["Instances"][0].get("Tags", [])}
    return tags["eiplane:fleet"]


def kill_server(aws: EmbeddedAws, instance_id: str) -> None:
    """The instance's model server dies for good (a hung device, a crash loop): its service and its
    supervisor are killed, so nothing restarts it and its port refuses connections."""
    assert aws.instances is not None
    run = aws.instances.root(instance_id) / "run"
    pids = [int(p.read_text()) for p in run.glob("*.pid")]
    assert pids, f"{instance_id} runs no service"
    for pid in pids:
        os.killpg(pid, signal.SIGKILL)
    for pid_file in run.glob("*.pid"):
        pid_file.unlink()


def break_the_balancer(aws: EmbeddedAws, fleet: str) -> None:
    """Drift on every part of a fleet's endpoint that the prerequisites stage repairs."""
    elbv2, ec2 = aws.client("elbv2"), aws.client("ec2")
    balancer = next(b for b in elbv2.describe_load_balancers()["LoadBalancers"] if b["LoadBalancerName"] == f"eiplane-{fleet}")
    group = next(g for g in elbv2.describe_target_groups()["TargetGroups"] if g["TargetGroupName"] == f"eiplane-{fleet}")
    elbv2.remove_tags(ResourceArns=[balancer["LoadBalancerArn"]], TagKeys=["team"])
    elbv2.modify_target_group(TargetGroupArn=group["TargetGroupArn"], HealthCheckPath="/")
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    elbv2.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}])
    elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=8081, DefaultActions=[
        {"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}])
    default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [balancer["VpcId"]]},
                                                    {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    elbv2.set_security_groups(LoadBalancerArn=balancer["LoadBalancerArn"], SecurityGroups=[default["GroupId"]])
    zones = balancer["AvailabilityZones"]
    elbv2.set_subnets(LoadBalancerArn=balancer["LoadBalancerArn"], Subnets=[z["SubnetId"] for z in zones[:2]])


class Faults:
    """Errors and responses moto cannot produce, injected into the AWS calls the handlers make
    (whichever function, client and credentials make them; the test's own calls are untouched).

    A `before-call` hook that returns a response short-circuits the call, as AWS would
    answer it; botocore then raises the ClientError the handler sees."""

    def __init__(self) -> None:
        self.triggered: dict[str, int] = {}

    def fail(self, service: str, operation: str, code: str, times: int | None = 1, message: str = "injected",
             status: int = 400, when: Callable[[dict[str, Any]], bool] | None = None) -> None:
        key = f"{service}:{operation}:{code}"
        self.triggered[key] = 0

        def answer(params: dict[str, Any], **_: Any) -> Any:
            if when is not None and not when(params):
                return None
            if times is not None and self.triggered[key] >= times:
                return None
            self.triggered[key] += 1
            response = AWSResponse(url="https://injected", status_code=status, headers={}, raw=None)
            return response, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}

        add_handler_hook("before-call", _event_service(service), operation, answer)

    def rewrite(self, service: str, operation: str, change: Callable[[dict[str, Any]], None],
                times: int | None = None, function: str | None = None) -> None:
        """Change a real response in place (e.g. an endpoint still 'pending'); `function`: only in that
        function's calls."""
        key = f"{service}:{operation}:rewrite"
        self.triggered[key] = 0

        def after(parsed: dict[str, Any], **_: Any) -> None:
            if function is not None and not _in_function(function):
                return
            if times is not None and self.triggered[key] >= times:
                return
            self.triggered[key] += 1
            change(parsed)

        add_handler_hook("after-call", _event_service(service), operation, after)


    def lose_response(self, service: str, operation: str, times: int | None = 1, status: int = 500,
                      code: str = "InternalError") -> None:
        """The call reaches AWS and takes effect, but its answer is lost: the caller gets a server
        error (as when every one of botocore's retries lost its answer)."""
        key = f"{service}:{operation}:lost"
        self.triggered[key] = 0

        def lose(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
            if http_response.status_code >= 300 or (times is not None and self.triggered[key] >= times):
                return  # only a call that took effect can lose its answer
            self.triggered[key] += 1
            http_response.status_code = status
            parsed.clear()
            parsed.update({"Error": {"Code": code, "Message": "injected: the answer was lost"},
                           "ResponseMetadata": {"HTTPStatusCode": status}})

        add_handler_hook("after-call", _event_service(service), operation, lose)

    def delay(self, service: str, operation: str, seconds: float, function: str | None = None,
              after: bool = False) -> None:
        """The call takes `seconds` of the calling handler's time (virtual: no test waits for it),
        before it is sent, or `after` its answer came back; `function`: only in that function."""
        def wait(**_: Any) -> None:
            if function is None or _in_function(function):
                elapse(seconds)

        add_handler_hook("after-call" if after else "before-call", _event_service(service), operation, wait)


def _in_function(logical_id: str) -> bool:
    invocation = current_invocation()
    return invocation is not None and invocation.function.name.endswith(logical_id)


def _event_service(service: str) -> str:
    return {"stepfunctions": "sfn", "elbv2": "elastic-load-balancing-v2"}.get(service, service)


@pytest.fixture
def faults(aws: EmbeddedAws) -> Iterator[Faults]:
    yield Faults()
    clear_handler_hooks()


def spec_for(backend: str, desired: int = 0, **overrides: Any) -> dict[str, Any]:
    """The backend's sample spec. desired=0 (the default here) runs the prerequisites stage
    and launches nothing: the launch tests ask for instances and push an artifact first."""
    spec = load_event(f"provision_fleet_{backend}.json")
    spec["capacity"] = {"min": 0, "desired": desired, "max": max(desired, 1)}
    spec.update(overrides)
    return spec


def artifact_as_version(source: Path, into: Path, version: str) -> Path:
    """The same packed model as another version (its manifest names the version: another digest)."""
    import shutil

    from eiplane.artifacts.manifest import load_manifest, write_manifest

    target = into / f"{source.name}-as-{version}"
    shutil.copytree(source, target)
    write_manifest(load_manifest(target).model_copy(update={"version": version}), target)
    return target


def failing_artifact(source: Path, into: Path, version: str) -> Path:
    """A version whose golden outputs are not what its model computes: its validation fails (parity)."""
    import torch

    from eiplane.artifacts.manifest import load_manifest, sha256_file, write_manifest

    target = artifact_as_version(source, into, version)
    examples = torch.load(target / "examples.pt", weights_only=True)
    examples["outputs"] = [t * 1.5 for t in examples["outputs"]]
    torch.save(examples, target / "examples.pt")
    manifest = load_manifest(target)
    write_manifest(manifest.model_copy(update={"files": {**manifest.files,
                                                          "examples.pt": sha256_file(target / "examples.pt")}}), target)
    return target


def outcomes(aws: EmbeddedAws, result: ExecutionResult) -> dict[tuple[str, str], str]:
    return {(p["kind"], p["name"]): p["outcome"] for p in fleet_report(aws, result)["prerequisites"]}


def failed_lambda_errors(result: ExecutionResult) -> list[str]:
    return [e["lambdaFunctionFailedEventDetails"]["error"] for e in result.events
            if e["type"] == "LambdaFunctionFailed"]


def managed_inventory(aws: EmbeddedAws) -> dict[str, list[str]]:
    """Everything eiplane could have created, read from the embedded AWS directly."""
    ec2, iam, dynamodb = aws.client("ec2"), aws.client("iam"), aws.client("dynamodb")
    groups = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
    return {
        "security_groups": sorted(g["GroupId"] for g in groups),
        "vpc_endpoints": sorted(e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]),
        "roles": sorted(r["RoleName"] for r in iam.list_roles(PathPrefix="/eiplane/")["Roles"]),
        "instance_profiles": sorted(p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "state_items": sorted(json.dumps(i, sort_keys=True) for i in dynamodb.scan(
            TableName=aws.stack.outputs["FleetStateTableName"])["Items"]),
    }


EMPTY_INVENTORY = {"security_groups": [], "vpc_endpoints": [], "roles": [], "instance_profiles": [], "state_items": []}


def private_vpc(aws: EmbeddedAws, dns_hostnames: bool = False) -> dict[str, Any]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": dns_hostnames})
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for i, zone in enumerate(("us-east-1a", "us-east-1b"))]
    return {"vpc_id": vpc, "subnet_ids": subnets}


def fleet_report(aws: EmbeddedAws, result: ExecutionResult) -> dict[str, Any]:
    """The whole report of a ProvisionFleet execution, read from S3: its output (or, when it failed as
    FleetIncomplete, SummarizeFleet's) is the fleet's summary, which names it."""
    from eiplane.cli.progress import fleet_summary_from_history, full_report

    summary = result.output if result.status == "SUCCEEDED" else fleet_summary_from_history(result)
    report = full_report(aws.client("s3"), summary)
    assert report is not None, f"{result.arn} has no fleet report ({result.status} {result.error})"
    return report
