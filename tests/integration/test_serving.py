"""A fleet that serves, on the embedded AWS: the model server the validation command started on each
instance, the fleet's load balancer (a real proxy on this machine, health checks on the virtual
clock), registration only once healthy, draining on scale-in, replacement of a dead server, and
capacity matching on the requests the fleet receives."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eiplane.cli.traffic import post, steady_traffic
from eiplane.local.engine import EmbeddedAws
from eiplane.local.instances import instance_credentials
from tests.integration.conftest import Faults, kill_server, publish_a_minute
from tests.integration.test_capacity_matching import START, outcome, put_demand, tick
from tests.integration.test_launch import fleet_spec, push_artifact, running_instances, slot_records

FLEET = "demo-gpu"
REQUEST = json.loads((Path(__file__).parents[2] / "events" / "invoke_tiny_cnn.json").read_text())


def endpoint(aws: EmbeddedAws, fleet: str = FLEET) -> str:
    """The fleet's endpoint as its DNS name resolves in the embedded AWS: the balancer's proxy."""
    (balancer,) = [b for b in aws.client("elbv2").describe_load_balancers()["LoadBalancers"]
                   if b["LoadBalancerName"] == f"eiplane-{fleet}"]
    return aws.load_balancers.url_for(balancer["DNSName"], 80)


def target_states(aws: EmbeddedAws, fleet: str = FLEET) -> dict[str, str]:
    (group,) = [g for g in aws.client("elbv2").describe_target_groups()["TargetGroups"]
                if g["TargetGroupName"] == f"eiplane-{fleet}"]
    described = aws.client("elbv2").describe_target_health(TargetGroupArn=group["TargetGroupArn"])
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described["TargetHealthDescriptions"]}


def in_service_instances(aws: EmbeddedAws, fleet: str = FLEET) -> list[str]:
    running = running_instances(aws)
    return sorted(str(r["instance_id"]) for r in slot_records(aws, fleet).values()
                  if r["state"] == "in_service" and r["instance_id"] in running)


def invoke(url: str, payload: Any) -> tuple[int, Any]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, answer, _ = post(url, body)
    return status, json.loads(answer) if answer else None


@pytest.fixture
def serving(aws: EmbeddedAws, torchscript_artifact: Path) -> Iterator[dict[str, Any]]:
    """A gpu fleet of two instances in service behind its load balancer (min 1, max 2)."""
    push_artifact(aws, FLEET, torchscript_artifact)
    spec = fleet_spec("gpu", desired=2)
    spec["model"]["precisions"] = ["fp32"]
    spec["capacity"] = {"min": 1, "desired": 2, "max": 2}
    spec["serving"] = {"deregistration_delay_s": 20}
    result = aws.run(spec, name="provision-1")
    assert result.status == "SUCCEEDED", result.cause
    yield {"spec": spec, "result": result}


def check_in_service_only_once_its_target_passed_its_health_checks(aws: EmbeddedAws, serving: dict) -> None:
    result = serving["result"]
    # PutInService found each new target still in its initial health checks first, and waited (Retry)
    waits = [e for e in result.events if e["type"] == "LambdaFunctionFailed"
             and e["lambdaFunctionFailedEventDetails"]["error"] == "TargetNotHealthy"]
    assert len(waits) >= 2, "each of the two slots waited for its target's health checks"
    assert "initial" in waits[0]["lambdaFunctionFailedEventDetails"]["cause"]
    instances = in_service_instances(aws)
    assert len(instances) == 2
    assert target_states(aws) == {instance: "healthy" for instance in instances}
    # the server that answers is the one validation started and load-tested: its capacity is on record
    for record in slot_records(aws, FLEET).values():
        validation = json.loads(record["validation"]) if isinstance(record["validation"], str) else record["validation"]
        # (the rate it held depends on this machine's load at that moment: 0 when even the first step missed)
        assert validation["serving"]["ready"] is True and validation["serving"]["latency_objective_ms"] == 100
        assert validation["serving"]["capacity_rps"] >= 0 and validation["serving"]["error"] is None


def check_the_endpoint_answers_and_a_wrong_request_gets_400_with_its_reason(aws: EmbeddedAws) -> None:
    url = endpoint(aws)
    status, answer = invoke(url, REQUEST)
    assert status == 200
    assert len(answer["outputs"]) == 1 and len(answer["outputs"][0]) == 10  # one row, the model's ten logits
    status, answer = invoke(url, {"inputs": [[[0.0] * 32] * 32]})  # one image of 32x32: a channel short
    assert status == 400 and "shape" in answer["error"]
    status, answer = invoke(url, b"not json")
    assert status == 400 and answer["error"]
    status, answer = invoke(url, {"input": REQUEST["inputs"]})
    assert status == 400 and "inputs" in answer["error"]


def test_scale_in_under_steady_traffic_drops_no_request(aws: EmbeddedAws, serving: dict) -> None:
    before = in_service_instances(aws)
    put_demand(aws, START, [0.1] * 40)  # a quiet forty minutes: one instance is enough
    with steady_traffic(endpoint(aws), json.dumps(REQUEST).encode()) as traffic:
        # traffic flows before the tick starts and goes on until one more batch is answered after it ended
        decision = outcome(tick(aws, START + timedelta(minutes=40), "tick-quiet"))
    assert decision["action"] == "scale_in" and decision["drained"]
    outcomes = traffic.outcomes
    assert len({o.minute for o in outcomes}) >= 2, "traffic flowed before and after the scale-in"
    assert [o for o in outcomes if not o.ok] == []
    after = in_service_instances(aws)
    assert len(after) == 1 and set(after) < set(before)
    (drained,) = set(before) - set(after)
    assert drained not in running_instances(aws)  # terminated once it had drained
    assert drained not in target_states(aws) or target_states(aws)[drained] == "unused"


def test_a_dead_server_is_found_deregistered_and_replaced_while_the_other_serves(aws: EmbeddedAws,
                                                                                serving: dict) -> None:
    first, second = in_service_instances(aws)
    kill_server(aws, first)
    aws.clock.advance(60)  # the balancer's health checks run: two failures in a row
    assert target_states(aws)[first] == "unhealthy" and target_states(aws)[second] == "healthy"
    url = endpoint(aws)
    assert [invoke(url, REQUEST)[0] for _ in range(10)] == [200] * 10  # the healthy one takes them all

    replaced = outcome(tick(aws, START + timedelta(minutes=1), "tick-replace"))
    assert replaced["action"] == "replace" and replaced["code"] == "unhealthy_targets"
    assert aws.wait(replaced["execution_arn"]).status == "SUCCEEDED"
    now = in_service_instances(aws)
    assert len(now) == 2 and second in now and first not in now
    assert first not in running_instances(aws)
    assert all(target_states(aws)[i] == "healthy" for i in now)
    assert [invoke(url, REQUEST)[0] for _ in range(10)] == [200] * 10


def check_a_crashed_server_is_restarted_by_its_service_manager(aws: EmbeddedAws) -> None:
    instance = in_service_instances(aws)[0]
    assert aws.instances is not None
    supervisor = int(next((aws.instances.root(instance) / "run").glob("*.pid")).read_text())
    server = int(Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()[0])
    os.kill(server, signal.SIGKILL)  # the process dies; its unit says Restart=always
    deadline = time.monotonic() + 120
    while True:  # progress: the supervisor starts a new process, which loads and warms up
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        address = aws.instances.serving_address(instance, 8080)
        if children and int(children[0]) != server and address is not None:
            try:
                if invoke(f"http://{address[0]}:{address[1]}", REQUEST)[0] == 200:
                    break
            except OSError:
                pass
        assert time.monotonic() < deadline, "the server was not restarted"
        time.sleep(0.2)
    aws.clock.advance(60)
    assert target_states(aws)[instance] == "healthy"


def test_a_shut_out_balancer_leaves_targets_unhealthy_and_an_idle_fleet_scales_in_to_min(aws: EmbeddedAws,
                                                                                        serving: dict) -> None:
    ec2 = aws.client("ec2")
    (group,) = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["eiplane-demo-gpu-instances"]}])["SecurityGroups"]
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
    aws.clock.advance(60)
    assert set(target_states(aws).values()) == {"unhealthy"}
    # the prerequisites stage puts the rule back; the next health checks pass
    assert aws.run(serving["spec"], name="provision-2").status == "SUCCEEDED"
    aws.clock.advance(60)
    assert set(target_states(aws).values()) == {"healthy"}

    # and with no traffic on this healthy fleet, capacity matching scales it in to capacity.min: the servers
    # publish every minute they run (Requests 0 when idle), the balancer publishes nothing
    put_demand(aws, START, [0.0] * 40)
    decision = outcome(tick(aws, START + timedelta(minutes=40), "tick-idle"))
    assert decision["action"] == "scale_in" and decision["desired"] == 1
    assert len(in_service_instances(aws)) == 1


def check_servers_publish_their_minutes_as_their_instance_role_into_their_namespace_only(aws: EmbeddedAws) -> None:
    instances = in_service_instances(aws)
    url = endpoint(aws)
    for _ in range(6):
        assert invoke(url, REQUEST)[0] == 200
    minute = publish_a_minute(aws, instances)
    cloudwatch = aws.client("cloudwatch")
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="eiplane/Inference")["Metrics"]}
    assert {"Requests", "LatencyP50", "LatencyP99", "QueueDepth", "BatchSize", "Errors"} <= names
    served = sum(cloudwatch.get_metric_statistics(
        Namespace="eiplane/Inference", MetricName="Requests", StartTime=minute, EndTime=minute + timedelta(minutes=1),
        Period=60, Statistics=["Sum"], Dimensions=[{"Name": "Fleet", "Value": FLEET}, {"Name": "InstanceId", "Value": i}],
    )["Datapoints"][0]["Sum"] for i in instances)
    assert served >= 6  # the requests above (and the load test's, made before this minute, are not in it)
    # the instance role may put metrics into eiplane/Inference and nowhere else
    as_instance = aws.client("cloudwatch", access_key=instance_credentials(instances[0])["AWS_ACCESS_KEY_ID"])
    as_instance.put_metric_data(Namespace="eiplane/Inference", MetricData=[{"MetricName": "Requests", "Value": 1}])
    with pytest.raises(ClientError) as denied:
        as_instance.put_metric_data(Namespace="Other", MetricData=[{"MetricName": "Requests", "Value": 1}])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # and nobody may write into an AWS/ namespace, as on AWS
    with pytest.raises(ClientError) as refused:
        cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=[{"MetricName": "RequestCount", "Value": 1}])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"


def check_the_balancers_own_metrics_follow_the_requests_it_served(aws: EmbeddedAws) -> None:
    aws.load_balancers.publish_minute(START + timedelta(days=1, minutes=-1))  # what came before: an earlier minute
    url = endpoint(aws)
    for _ in range(12):
        assert invoke(url, REQUEST)[0] == 200
    minute = START + timedelta(days=1)
    assert aws.load_balancers.publish_minute(minute) > 0
    (balancer,) = aws.client("elbv2").describe_load_balancers()["LoadBalancers"]
    dimension = [{"Name": "LoadBalancer", "Value": balancer["LoadBalancerArn"].split(":loadbalancer/", 1)[1]}]
    end = minute + timedelta(minutes=1)
    results = aws.client("cloudwatch").get_metric_data(StartTime=minute, EndTime=end, MetricDataQueries=[
        {"Id": "requests", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                                                     "Dimensions": dimension}, "Period": 60, "Stat": "Sum"}},
        {"Id": "p99", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
                                                "Dimensions": dimension}, "Period": 60, "Stat": "p99"}}])["MetricDataResults"]
    by_id = {r["Id"]: r["Values"] for r in results}
    assert by_id["requests"] == [12.0] and by_id["p99"] and by_id["p99"][0] > 0
    assert aws.load_balancers.publish_minute(minute + timedelta(minutes=1)) == 0  # no requests: nothing published


def test_a_provisioned_fleet_serves(aws: EmbeddedAws, serving: dict) -> None:
    """One fleet, checked in turn (each provisioning costs seconds): in service only once healthy; the
    endpoint's answers and 400s; the balancer's and the servers' metrics, the latter as the instance's
    role into its namespace only; a crashed server restarted by its service manager."""
    check_in_service_only_once_its_target_passed_its_health_checks(aws, serving)
    check_the_endpoint_answers_and_a_wrong_request_gets_400_with_its_reason(aws)
    check_the_balancers_own_metrics_follow_the_requests_it_served(aws)
    check_servers_publish_their_minutes_as_their_instance_role_into_their_namespace_only(aws)
    check_a_crashed_server_is_restarted_by_its_service_manager(aws)



def test_a_target_never_healthy_by_the_deadline_fails_its_slot_and_leaves_nothing(
        aws: EmbeddedAws, torchscript_artifact: Path, faults: Faults) -> None:
    push_artifact(aws, FLEET, torchscript_artifact)
    spec = fleet_spec("gpu", desired=1)
    spec["model"]["precisions"] = ["fp32"]
    spec["serving"] = {"healthy_deadline_s": 60}
    # the balancer never finds the instance's server healthy (a hung device: /ping never answers 200)
    faults.rewrite("elbv2", "DescribeTargetHealth", lambda parsed: [d["TargetHealth"].update(
        State="unhealthy", Reason="Target.Timeout", Description="Request timed out")
        for d in parsed["TargetHealthDescriptions"]], function="PutInServiceFunction")
    result = aws.run(spec, name="provision-1")

    assert (result.status, result.error) == ("FAILED", "FleetIncomplete")
    waits = [e["lambdaFunctionFailedEventDetails"]["error"] for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert waits.count("TargetNotHealthy") == 6 and waits.count("TargetNeverHealthy") == 1  # 6 x 10 s, then given up
    (record,) = slot_records(aws, FLEET).values()
    assert record["state"] == "failed" and "TargetNeverHealthy" in record["reason"]
    assert running_instances(aws) == {}
    assert target_states(aws) == {} or set(target_states(aws).values()) <= {"draining", "unused"}
