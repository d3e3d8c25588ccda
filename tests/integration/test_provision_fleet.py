"""ProvisionFleet's prerequisites stage, end to end: the real ASL, the real handlers, the
embedded AWS; assertions on execution histories and on what exists afterwards."""

from __future__ import annotations

import json

from eiplane.local.engine import EmbeddedAws
from tests.integration.conftest import EMPTY_INVENTORY, fleet_report, managed_inventory, outcomes, private_vpc, spec_for

APPLY_STATES = [
    "ValidateFleetSpec", "PlanPrerequisites", "ApplyOrPlanOnly", "EnsureNetwork", "EnsureInstanceRole",
    "EnsureVpcEndpoints", "EnsureLoadBalancer", "AwaitVpcEndpoints", "AwaitLoadBalancer", "RecordPrerequisites",
    "PlanLaunch", "ProvisionSlots",
    "SummarizeFleet", "FleetComplete", "FleetReady",
]


def _group(aws: EmbeddedAws, group_id: str) -> dict:
    return aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def test_gpu_fleet_in_public_subnets_gets_group_role_and_profile_and_no_endpoints(aws: EmbeddedAws) -> None:
    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered() == APPLY_STATES
    assert outcomes(aws, result) == {
        ("security_group", "eiplane-demo-gpu-load-balancer"): "created",
        ("security_group", "eiplane-demo-gpu-instances"): "created",
        ("iam_role", "eiplane-demo-gpu-instance"): "created",
        ("instance_profile", "eiplane-demo-gpu-instance"): "created",
        ("target_group", "eiplane-demo-gpu"): "created",
        ("load_balancer", "eiplane-demo-gpu"): "created",
        ("listener", "HTTP 80"): "created",
    }
    report = fleet_report(aws, result)
    group = _group(aws, report["instance_security_group_id"])
    balancer_group = next(p["id"] for p in report["prerequisites"] if p["name"] == "eiplane-demo-gpu-load-balancer")
    # the serving port, from the load balancer's group only
    assert [(p["IpProtocol"], p["FromPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in group["IpPermissions"]] == [("tcp", 8080, [balancer_group], [])]
    assert [(p["IpProtocol"], p.get("FromPort"), p["IpRanges"]) for p in group["IpPermissionsEgress"]] == [
        ("tcp", 443, [{"CidrIp": "0.0.0.0/0"}])]
    tags = {t["Key"]: t["Value"] for t in group["Tags"]}
    assert tags["eiplane:fleet"] == "demo-gpu" and tags["team"] == "ml-platform"
    assert aws.client("ec2").describe_vpc_endpoints()["VpcEndpoints"] == []
    profile = aws.client("iam").get_instance_profile(InstanceProfileName="eiplane-demo-gpu-instance")
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == ["eiplane-demo-gpu-instance"]
    assert fleet_report(aws, result)["state_record"] == "written"


def test_the_fleet_endpoint_is_an_internal_balancer_callable_only_from_the_vpc(aws: EmbeddedAws) -> None:
    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    report = fleet_report(aws, result)
    elbv2 = aws.client("elbv2")
    (balancer,) = elbv2.describe_load_balancers()["LoadBalancers"]
    assert (balancer["Scheme"], balancer["Type"], balancer["State"]["Code"]) == ("internal", "application", "active")
    assert len({z["ZoneName"] for z in balancer["AvailabilityZones"]}) >= 2
    assert report["endpoint"]["url"] == f"http://{balancer['DNSName']}"
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    (target_group,) = elbv2.describe_target_groups()["TargetGroups"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": target_group["TargetGroupArn"],
                                           **({"Order": listener["DefaultActions"][0]["Order"]}
                                              if "Order" in listener["DefaultActions"][0] else {}),
                                           **({"ForwardConfig": listener["DefaultActions"][0]["ForwardConfig"]}
                                              if "ForwardConfig" in listener["DefaultActions"][0] else {})}]
    assert (target_group["Port"], target_group["HealthCheckPath"], target_group["HealthCheckIntervalSeconds"],
            target_group["HealthCheckTimeoutSeconds"], target_group["HealthyThresholdCount"]) == (8080, "/ping", 10, 5, 2)
    attributes = {a["Key"]: a["Value"] for a in elbv2.describe_target_group_attributes(
        TargetGroupArn=target_group["TargetGroupArn"])["Attributes"]}
    assert attributes["deregistration_delay.timeout_seconds"] == "30"
    assert attributes["load_balancing.algorithm.type"] == "least_outstanding_requests"
    # callers: the VPC's own CIDR block (the spec lists none), on the listener's port; nothing from the world
    (group,) = [_group(aws, g) for g in balancer["SecurityGroups"]]
    assert [(p["FromPort"], p["IpRanges"]) for p in group["IpPermissions"]] == [(80, [{"CidrIp": "172.31.0.0/16"}])]
    assert [(p["FromPort"], p["IpRanges"]) for p in group["IpPermissionsEgress"]] == [(8080, [{"CidrIp": "172.31.0.0/16"}])]


def test_rerun_finds_everything_and_makes_no_mutating_call(aws: EmbeddedAws) -> None:
    first = aws.run(spec_for("eia"), name="eia-1")
    before = managed_inventory(aws)
    second = aws.run(spec_for("eia"), name="eia-2")

    assert first.status == second.status == "SUCCEEDED"
    assert fleet_report(aws, first)["mutating_calls"], "the first run must have created something"
    assert set(outcomes(aws, second).values()) == {"found"}
    assert fleet_report(aws, second)["mutating_calls"] == []
    assert fleet_report(aws, second)["state_record"] == "unchanged"
    assert managed_inventory(aws) == before
    assert {(p["kind"], p["id"]) for p in fleet_report(aws, first)["prerequisites"]} == \
        {(p["kind"], p["id"]) for p in fleet_report(aws, second)["prerequisites"]}


def test_eia_fleet_gets_private_dns_endpoint_with_separate_https_only_group(aws: EmbeddedAws) -> None:
    result = aws.run(spec_for("eia"), name="eia-1")

    assert result.status == "SUCCEEDED", result.cause
    ec2 = aws.client("ec2")
    (endpoint,) = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    assert endpoint["ServiceName"] == "com.amazonaws.us-east-1.elastic-inference.runtime"
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["PrivateDnsEnabled"] is True
    zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=endpoint["SubnetIds"])["Subnets"]}
    assert len(zones) == len(endpoint["SubnetIds"]), "one subnet per availability zone"
    instance_group = fleet_report(aws, result)["instance_security_group_id"]
    (endpoint_group_id,) = [g["GroupId"] for g in endpoint["Groups"]]
    assert endpoint_group_id != instance_group
    endpoint_group = _group(aws, endpoint_group_id)
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in endpoint_group["IpPermissions"]] == [("tcp", 443, 443, [instance_group], [])]
    assert endpoint_group["IpPermissionsEgress"] == []
    assert ("region_support", "Elastic Inference offered in 6 of the fleet's zones") in outcomes(aws, result)


def test_eia_instance_role_may_connect_to_elastic_inference_and_nothing_broader(aws: EmbeddedAws) -> None:
    assert aws.run(spec_for("eia"), name="eia-1").status == "SUCCEEDED"
    iam = aws.client("iam")
    role = "eiplane-demo-eia-instance"
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["eiplane-instance-access"]
    document = iam.get_role_policy(RoleName=role, PolicyName="eiplane-instance-access")["PolicyDocument"]
    resources = {a: st["Resource"] for st in document["Statement"]
                 for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    assert resources["elastic-inference:Connect"] == (
        "arn:aws:elastic-inference:us-east-1:123456789012:elastic-inference-accelerator/*")
    assert all("*" not in action for action in resources)
    bucket = aws.stack.outputs["ArtifactsBucketName"]
    assert resources["s3:GetObject"] == f"arn:aws:s3:::{bucket}/fleets/demo-eia/*"
    # The SSM agent's own heartbeat and messages, not AmazonSSMManagedInstanceCore (every parameter of the region)
    assert resources["ssm:UpdateInstanceInformation"] == "arn:aws:ec2:us-east-1:123456789012:instance/*"
    assert {a for a, r in resources.items() if r == "*"} == {  # no resource to name: AWS requires "*"
        "ec2messages:GetMessages", "ec2messages:AcknowledgeMessage", "ec2messages:SendReply", "cloudwatch:PutMetricData"}
    assert not any(a.startswith("ssm:GetParameter") for a in resources)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    described = iam.get_role(RoleName=role)["Role"]
    assert described["PermissionsBoundary"]["PermissionsBoundaryArn"] == (
        "arn:aws:iam::123456789012:policy/eiplane/eiplane-local-fleet-instance-boundary")
    assert described["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_gpu_role_has_no_elastic_inference_permission(aws: EmbeddedAws) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    document = aws.client("iam").get_role_policy(RoleName="eiplane-demo-gpu-instance",
                                                 PolicyName="eiplane-instance-access")["PolicyDocument"]
    assert "elastic-inference:Connect" not in json.dumps(document)


def test_inferentia_fleet_in_private_subnets_gets_ssm_and_s3_endpoints_and_vpc_dns(aws: EmbeddedAws) -> None:
    network = private_vpc(aws, dns_hostnames=False)
    result = aws.run(spec_for("inferentia", network=network), name="inf2-1")

    assert result.status == "SUCCEEDED", result.cause
    found = outcomes(aws, result)
    assert found[("vpc_dns", f"DNS support and hostnames of {network['vpc_id']}")] == "repaired"
    ec2 = aws.client("ec2")
    hostnames = ec2.describe_vpc_attribute(VpcId=network["vpc_id"], Attribute="enableDnsHostnames")
    assert hostnames["EnableDnsHostnames"]["Value"] is True
    endpoints = {e["ServiceName"].rsplit(".", 1)[-1]: e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
    assert set(endpoints) == {"ssm", "ssmmessages", "ec2messages", "s3"}
    for service in ("ssm", "ssmmessages", "ec2messages"):
        assert endpoints[service]["PrivateDnsEnabled"] is True
        assert sorted(endpoints[service]["SubnetIds"]) == sorted(network["subnet_ids"])
    assert endpoints["s3"]["VpcEndpointType"] == "Gateway"
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [network["vpc_id"]]}])["RouteTables"]
    assert endpoints["s3"]["RouteTableIds"] == [tables[0]["RouteTableId"]]
    billable = {p["name"] for p in fleet_report(aws, result)["prerequisites"] if p["billable"]}
    assert billable == {f"com.amazonaws.us-east-1.{s} (interface)" for s in ("ssm", "ssmmessages", "ec2messages")} | {
        "eiplane-demo-inf2"}  # and its load balancer


def test_two_fleets_in_one_vpc_share_the_endpoint_and_its_group(aws: EmbeddedAws) -> None:
    first = aws.run(spec_for("eia"), name="eia-1")
    second = aws.run(spec_for("eia", name="other-eia"), name="eia-2")

    assert first.status == second.status == "SUCCEEDED"
    (endpoint,) = aws.client("ec2").describe_vpc_endpoints()["VpcEndpoints"]
    (group,) = endpoint["Groups"]
    peers = {g["GroupId"] for p in _group(aws, group["GroupId"])["IpPermissions"] for g in p["UserIdGroupPairs"]}
    assert peers == {fleet_report(aws, first)["instance_security_group_id"],
                     fleet_report(aws, second)["instance_security_group_id"]}
    assert outcomes(aws, second)[("security_group", "eiplane-vpc-endpoints")] == "repaired"


def test_dry_run_plans_and_creates_nothing(aws: EmbeddedAws) -> None:
    result = aws.run(spec_for("eia", dry_run=True), name="plan-1")

    assert result.status == "SUCCEEDED", result.cause
    assert result.states_entered() == ["ValidateFleetSpec", "PlanPrerequisites", "ApplyOrPlanOnly", "PlanOnly"]
    assert result.output["dry_run"] is True
    assert result.output["to_create"] == 9
    assert result.output["mutating_calls"] == []
    assert managed_inventory(aws) == EMPTY_INVENTORY


def test_state_record_holds_what_later_stages_use(aws: EmbeddedAws) -> None:
    result = aws.run(spec_for("gpu"), name="gpu-1")
    item = aws.client("dynamodb").get_item(
        TableName=aws.stack.outputs["FleetStateTableName"],
        Key={"pk": {"S": "FLEET#demo-gpu"}, "sk": {"S": "PREREQUISITES"}})["Item"]

    assert item["instance_profile_arn"]["S"] == fleet_report(aws, result)["instance_profile_arn"]
    assert item["instance_security_group_id"]["S"] == fleet_report(aws, result)["instance_security_group_id"]
    assert item["recorded_by"]["S"] == result.arn


def test_function_logs_carry_the_execution_arn_as_correlation_id(aws: EmbeddedAws) -> None:
    result = aws.run(spec_for("gpu"), name="gpu-1")
    events = aws.client("logs").filter_log_events(logGroupName=aws.stack.outputs["FunctionLogGroupName"])["events"]
    records = [json.loads(e["message"]) for e in events if e["message"].startswith("{")]

    assert records, "the functions logged nothing"
    assert {r.get("correlation_id") for r in records if "level" in r} == {result.arn}
    assert any(r.get("message") == "prerequisites ready" for r in records)
