"""Partial states are repaired, never duplicated or crashed on: each case sets the embedded
AWS up the way an interrupted run, a hand edit or the original setup script leaves it."""

from __future__ import annotations

import json
from typing import Any

from eiplane.executions import ExecutionResult
from eiplane.local.engine import EmbeddedAws
from tests.integration.conftest import fleet_report, managed_inventory, outcomes, spec_for

ROLE = "eiplane-demo-gpu-instance"
EIA_ROLE = "eiplane-demo-eia-instance"


def _result_for(aws: EmbeddedAws, result: ExecutionResult, kind: str, name: str) -> dict[str, Any]:
    (item,) = [p for p in fleet_report(aws, result)["prerequisites"] if p["kind"] == kind and p["name"] == name]
    return item


def test_role_without_its_policy_gets_the_policy_back(aws: EmbeddedAws) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    iam = aws.client("iam")
    iam.delete_role_policy(RoleName=ROLE, PolicyName="eiplane-instance-access")

    result = aws.run(spec_for("gpu"), name="gpu-2")

    role = _result_for(aws, result, "iam_role", ROLE)
    assert role["outcome"] == "repaired"
    assert role["changes"] == ["put inline policy eiplane-instance-access"]
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["eiplane-instance-access"]
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    assert fleet_report(aws, result)["mutating_calls"] == ["iam:PutRolePolicy"]


def test_a_role_of_an_older_eiplane_loses_ssm_core_and_gets_the_boundary_first(aws: EmbeddedAws) -> None:
    """eiplane once attached AmazonSSMManagedInstanceCore (every SSM parameter of the region to every
    instance) and set no permissions boundary; its function may change a fleet role only under the
    boundary, so setting it is the first repair."""
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    iam = aws.client("iam")
    iam.delete_role_permissions_boundary(RoleName=ROLE)
    iam.attach_role_policy(RoleName=ROLE, PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")

    result = aws.run(spec_for("gpu"), name="gpu-2")

    assert result.status == "SUCCEEDED", result.cause
    role = _result_for(aws, result, "iam_role", ROLE)
    assert role["changes"] == ["set the fleet-instance permissions boundary",
                               "detach arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore (broader than the fleet needs)"]
    assert iam.list_attached_role_policies(RoleName=ROLE)["AttachedPolicies"] == []
    assert iam.get_role(RoleName=ROLE)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"].endswith(
        ":policy/eiplane/eiplane-local-fleet-instance-boundary")


def test_a_role_of_the_fleet_s_name_at_another_path_is_refused_not_adopted(aws: EmbeddedAws) -> None:
    iam = aws.client("iam")
    iam.create_role(RoleName=ROLE, Path="/team/", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))

    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "PrerequisiteConflict")
    assert f"role {ROLE} exists at path /team/, not eiplane's /eiplane/" in (result.error_message() or "")
    assert result.states_entered()[-1] == "PrerequisitesFailed" and "EnsureNetwork" not in result.states_entered()
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == []  # untouched


def test_broader_policies_on_the_role_are_removed(aws: EmbeddedAws) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    iam = aws.client("iam")
    # What the seed's policy allowed, and a hand-attached admin policy.
    iam.put_role_policy(RoleName=ROLE, PolicyName="Amazon-Elastic-Inference-Connect-Policy", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "elastic-inference:Connect", "iam:List*", "iam:Get*", "ec2:Describe*", "ec2:Get*"]}]}))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_role_policy(RoleName=ROLE, PolicyName="eiplane-instance-access",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))

    result = aws.run(spec_for("gpu"), name="gpu-2")

    assert _result_for(aws, result, "iam_role", ROLE)["changes"] == [
        "rewrite inline policy eiplane-instance-access",
        "delete inline policy Amazon-Elastic-Inference-Connect-Policy (broader than the fleet needs)",
        "detach arn:aws:iam::aws:policy/AdministratorAccess (broader than the fleet needs)",
    ]
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == ["eiplane-instance-access"]
    document = iam.get_role_policy(RoleName=ROLE, PolicyName="eiplane-instance-access")["PolicyDocument"]
    assert "s3:*" not in json.dumps(document)


def test_trust_policy_widened_by_hand_is_reset(aws: EmbeddedAws) -> None:
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    iam = aws.client("iam")
    iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))

    result = aws.run(spec_for("gpu"), name="gpu-2")

    assert _result_for(aws, result, "iam_role", ROLE)["changes"] == ["reset trust policy to ec2.amazonaws.com only"]
    principal = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "ec2.amazonaws.com"}


def test_leftover_instance_profile_without_role_is_reused(aws: EmbeddedAws) -> None:
    # An earlier run stopped between CreateInstanceProfile and AddRoleToInstanceProfile,
    # and the role itself is gone.
    aws.client("iam").create_instance_profile(InstanceProfileName=ROLE, Path="/eiplane/")

    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    profile = _result_for(aws, result, "instance_profile", ROLE)
    assert profile["outcome"] == "repaired"
    assert profile["changes"] == ["tag cost-center, eiplane:component, eiplane:fleet, eiplane:managed-by, team",
                                  f"add role {ROLE}"]
    roles = aws.client("iam").get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]["Roles"]
    assert [r["RoleName"] for r in roles] == [ROLE]
    assert _result_for(aws, result, "iam_role", ROLE)["outcome"] == "created"


def test_profile_holding_another_role_gets_the_fleet_role(aws: EmbeddedAws) -> None:
    iam = aws.client("iam")
    iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName=ROLE, Path="/eiplane/")
    iam.add_role_to_instance_profile(InstanceProfileName=ROLE, RoleName="someone-elses-role")

    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert result.status == "SUCCEEDED", result.cause
    assert "remove role someone-elses-role" in _result_for(aws, result, "instance_profile", ROLE)["changes"]
    roles = iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]["Roles"]
    assert [r["RoleName"] for r in roles] == [ROLE]


def test_leftover_untagged_group_is_refused_until_handed_over_then_locked_down(aws: EmbeddedAws) -> None:
    """A group of eiplane's name without eiplane's tag may be anyone's: eiplane neither tags nor
    changes it (its role may not: that would let it open any group) and says how to hand it over."""
    ec2 = aws.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    group = ec2.create_security_group(GroupName="eiplane-demo-gpu-instances", Description="leftover", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])

    refused = aws.run(spec_for("gpu"), name="gpu-1")

    assert (refused.status, refused.error) == ("FAILED", "PrerequisiteConflict")
    assert f"security group {group} in {vpc} is named eiplane-demo-gpu-instances but is not eiplane's" in (
        refused.error_message() or "")
    assert "EnsureNetwork" not in refused.states_entered()  # the plan found it: nothing was created
    assert managed_inventory(aws)["roles"] == []
    ec2.create_tags(Resources=[group], Tags=[{"Key": "eiplane:managed-by", "Value": "eiplane"}])  # handed over

    result = aws.run(spec_for("gpu"), name="gpu-2")

    assert result.status == "SUCCEEDED", result.cause
    item = _result_for(aws, result, "security_group", "eiplane-demo-gpu-instances")
    assert (item["outcome"], item["id"]) == ("repaired", group)
    assert "revoke ingress TCP 22 from 0.0.0.0/0, TCP 443 from ::/0" in item["changes"]
    after = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    # locked down to the one rule the fleet needs: its serving port, from its load balancer's group only
    balancer_group = _result_for(aws, result, "security_group", "eiplane-demo-gpu-load-balancer")["id"]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in after["IpPermissions"]] == [("tcp", 8080, 8080, [balancer_group], [])]
    assert {t["Key"] for t in after["Tags"]} >= {"eiplane:managed-by", "eiplane:fleet", "eiplane:component"}
    assert len(managed_inventory(aws)["security_groups"]) == 2  # the handed-over group and the balancer's


def test_world_open_rule_added_to_the_endpoint_group_is_revoked(aws: EmbeddedAws) -> None:
    first = aws.run(spec_for("eia"), name="eia-1")
    endpoint_group = _result_for(aws, first, "security_group", "eiplane-vpc-endpoints")["id"]
    ec2 = aws.client("ec2")
    ec2.authorize_security_group_ingress(GroupId=endpoint_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    result = aws.run(spec_for("eia"), name="eia-2")

    assert _result_for(aws, result, "security_group", "eiplane-vpc-endpoints")["changes"] == [
        "revoke ingress TCP 443 from 0.0.0.0/0"]
    rules = ec2.describe_security_groups(GroupIds=[endpoint_group])["SecurityGroups"][0]["IpPermissions"]
    assert all(p["IpRanges"] == [] and p.get("Ipv6Ranges", []) == [] for p in rules)


def test_endpoint_missing_subnet_group_and_private_dns_is_repaired_not_duplicated(aws: EmbeddedAws) -> None:
    # As the seed left it: one subnet, the default group, no private DNS, no tags.
    ec2 = aws.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]},
                                           {"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    existing = ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc, SubnetIds=[subnet],
                                       ServiceName="com.amazonaws.us-east-1.elastic-inference.runtime",
                                       PrivateDnsEnabled=False)["VpcEndpoint"]["VpcEndpointId"]

    refused = aws.run(spec_for("eia"), name="eia-0")

    # Not eiplane's: its repairs are named, it is not changed, nothing is created.
    assert (refused.status, refused.error) == ("FAILED", "PrerequisiteConflict")
    message = refused.error_message() or ""
    assert f"VPC endpoint {existing}" in message and "add subnets" in message and "turn on private DNS" in message
    assert "hand the endpoint over by tagging it eiplane:managed-by=eiplane" in message
    assert managed_inventory(aws)["security_groups"] == []
    ec2.create_tags(Resources=[existing], Tags=[{"Key": "eiplane:managed-by", "Value": "eiplane"}])

    result = aws.run(spec_for("eia"), name="eia-1")

    assert result.status == "SUCCEEDED", result.cause
    item = _result_for(aws, result, "vpc_endpoint", "com.amazonaws.us-east-1.elastic-inference.runtime (interface)")
    assert (item["outcome"], item["id"]) == ("repaired", existing)
    (change,) = item["changes"]
    assert change.startswith("add subnets ") and "add security group sg-" in change and "turn on private DNS" in change
    (endpoint,) = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    assert endpoint["PrivateDnsEnabled"] is True
    assert len(endpoint["SubnetIds"]) == 6
    endpoint_group = _result_for(aws, result, "security_group", "eiplane-vpc-endpoints")["id"]
    assert endpoint_group in {g["GroupId"] for g in endpoint["Groups"]}
    assert outcomes(aws, aws.run(spec_for("eia"), name="eia-2"))[
        ("vpc_endpoint", "com.amazonaws.us-east-1.elastic-inference.runtime (interface)")] == "found"


def test_s3_gateway_endpoint_missing_a_route_table_gets_it(aws: EmbeddedAws) -> None:
    from tests.integration.conftest import private_vpc

    network = private_vpc(aws, dns_hostnames=True)
    ec2 = aws.client("ec2")
    # The second subnet gets a route table of its own, which the existing S3 endpoint lacks.
    table = ec2.create_route_table(VpcId=network["vpc_id"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=network["subnet_ids"][1])
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [network["vpc_id"]]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    s3 = ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=network["vpc_id"],
                                 ServiceName="com.amazonaws.us-east-1.s3", RouteTableIds=[main["RouteTableId"]],
                                 TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": [
                                     {"Key": "eiplane:managed-by", "Value": "eiplane"}]}])["VpcEndpoint"]["VpcEndpointId"]

    result = aws.run(spec_for("inferentia", network=network), name="inf2-1")

    assert result.status == "SUCCEEDED", result.cause
    item = _result_for(aws, result, "vpc_endpoint", "com.amazonaws.us-east-1.s3 (gateway)")
    assert (item["outcome"], item["id"], item["changes"]) == ("repaired", s3, [f"add route tables {table}"])
    endpoint = ec2.describe_vpc_endpoints(VpcEndpointIds=[s3])["VpcEndpoints"][0]
    assert sorted(endpoint["RouteTableIds"]) == sorted([main["RouteTableId"], table])


def test_removed_tags_are_put_back(aws: EmbeddedAws) -> None:
    first = aws.run(spec_for("gpu"), name="gpu-1")
    group = fleet_report(aws, first)["instance_security_group_id"]
    aws.client("ec2").delete_tags(Resources=[group], Tags=[{"Key": "eiplane:fleet"}, {"Key": "team"}])
    aws.client("iam").untag_role(RoleName=ROLE, TagKeys=["eiplane:managed-by"])

    result = aws.run(spec_for("gpu"), name="gpu-2")

    assert _result_for(aws, result, "security_group", "eiplane-demo-gpu-instances")["changes"] == [
        "tag eiplane:fleet, team"]
    assert _result_for(aws, result, "iam_role", ROLE)["changes"] == ["tag eiplane:managed-by"]
    assert _result_for(aws, result, "security_group", "eiplane-demo-gpu-instances")["id"] == group
