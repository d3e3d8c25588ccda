"""Least privilege that works: every AWS call each function makes, across the flows and
repairs of the tests below, is an action its template policy allows. (Resources and
conditions are reviewed in template.yaml and by tests/static; this catches the action a
policy forgot, which on AWS would be an AccessDenied at 3 a.m.)"""

from __future__ import annotations

import fnmatch
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from eiplane.artifacts.push import push
from eiplane.local.engine import EmbeddedAws
from eiplane.local.template import load_template
from tests.conftest import ROOT
from tests.integration.conftest import Faults, private_vpc, spec_for
from tests.integration.test_capacity_matching import START, fleet_capacity, outcome, put_demand, tick

# API operations whose IAM action has another name, or that need no permission at all.
ACTION_OF = {"s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket"}
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}
SERVICE_PREFIX = {"stepfunctions": "states"}


def allowed_actions(template: dict[str, Any], logical_id: str) -> list[str]:
    actions: list[str] = []
    for policy in template["Resources"][logical_id]["Properties"].get("Policies", []):
        assert "Statement" in policy, f"{logical_id}: only inline statements are checked here, not {list(policy)}"
        for statement in policy["Statement"]:
            if statement["Effect"] == "Allow":
                listed = statement["Action"]
                actions += listed if isinstance(listed, list) else [listed]
    return actions


def iam_action(call: str) -> str:
    service, operation = call.split(":", 1)
    return ACTION_OF.get(call, f"{SERVICE_PREFIX.get(service, service)}:{operation}")


def _exercise_everything(aws: EmbeddedAws, faults: Faults, artifact: Path) -> None:
    iam, ec2 = aws.client("iam"), aws.client("ec2")
    # Repairs: a leftover profile holding another role, broad policies, a widened trust policy.
    iam.create_role(RoleName="other", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="eiplane-demo-eia-instance", Path="/eiplane/")
    iam.add_role_to_instance_profile(InstanceProfileName="eiplane-demo-eia-instance", RoleName="other")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc, SubnetIds=[subnet], PrivateDnsEnabled=False,
                            ServiceName="com.amazonaws.us-east-1.elastic-inference.runtime")
    assert aws.run(spec_for("eia"), name="eia-1").status == "SUCCEEDED"
    role = "eiplane-demo-eia-instance"
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_role_policy(RoleName=role, PolicyName="extra", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}))
    iam.untag_role(RoleName=role, TagKeys=["team"])
    assert aws.run(spec_for("eia"), name="eia-2").status == "SUCCEEDED"
    # Private subnets: SSM and S3 endpoints, VPC DNS.
    assert aws.run(spec_for("inferentia", network=private_vpc(aws)), name="inf2-1").status == "SUCCEEDED"
    # Launch and validate an instance, and a slot that fails and is compensated.
    push(aws.client("s3"), aws.stack.outputs["ArtifactsBucketName"], "fleets/demo-gpu/models/tiny-cnn/1/", artifact)
    gpu = spec_for("gpu", desired=1)
    gpu["model"] = {"name": "tiny-cnn", "version": "1"}
    gpu["capacity"] = {"min": 0, "desired": 1, "max": 2}
    gpu["scaling"] = {"warm_pool_size": 1}  # prefilled: one instance validated, then stopped
    assert aws.run(gpu, name="gpu-1").status == "SUCCEEDED"
    # Capacity matching: a surge scales out through ProvisionFleet (starting the pooled instance),
    # a quiet hour scales in (stopping one back into the pool).
    capacity = fleet_capacity(aws)
    put_demand(aws, START, [0.5 * capacity] * 60 + [2.4 * capacity] * 3)
    surge = outcome(tick(aws, START + timedelta(minutes=63), "tick-surge"))
    assert surge["action"] == "scale_out" and aws.wait(surge["execution_arn"], timeout_s=300).status == "SUCCEEDED"
    put_demand(aws, START + timedelta(minutes=63), [0.3 * capacity] * 40)
    assert outcome(tick(aws, START + timedelta(minutes=103), "tick-quiet"))["action"] == "scale_in"
    faults.rewrite("ssm", "DescribeInstanceInformation", lambda parsed: parsed.update(InstanceInformationList=[]))
    assert aws.run({**gpu, "capacity": {"min": 0, "desired": 2, "max": 2}}, name="gpu-2").error == "FleetIncomplete"


def test_every_call_each_function_makes_is_allowed_by_its_policy(aws: EmbeddedAws, faults: Faults,
                                                                 tiny_cnn_artifact: Path) -> None:
    _exercise_everything(aws, faults, tiny_cnn_artifact)
    assert aws.runtime is not None
    template = load_template(ROOT / "template.yaml")
    prefix = f"{aws.stack_name}-"

    denied: dict[str, list[str]] = {}
    for function, calls in aws.runtime.calls_by_function.items():
        logical_id = function.removeprefix(prefix)
        allowed = allowed_actions(template, logical_id)
        for call in sorted(calls - NO_PERMISSION_NEEDED):
            action = iam_action(call)
            if not any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in allowed):
                denied.setdefault(logical_id, []).append(action)
    assert denied == {}
    functions = {n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert {f.removeprefix(prefix) for f in aws.runtime.calls_by_function} == functions, "every function ran"
