"""The original setup script's weaknesses (../shared/AWS-FACTS.md, "The seed's setup
script"), each as a test case that must NOT hold for eiplane."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from eiplane.local.engine import EmbeddedAws
from tests.conftest import ROOT
from tests.integration.conftest import EMPTY_INVENTORY, Faults, fleet_report, managed_inventory, spec_for

WORLD = ("0.0.0.0/0", "::/0")
PACKAGE = ROOT / "layers" / "eiplane" / "eiplane"


def _all_groups(aws: EmbeddedAws) -> list[dict]:
    return [g for g in aws.client("ec2").describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]


@pytest.mark.parametrize("backend", ["eia", "gpu", "inferentia"])
def test_no_ingress_from_the_world_and_no_ssh(aws: EmbeddedAws, backend: str) -> None:
    """Seed: opened TCP 22 and 443 to 0.0.0.0/0."""
    assert aws.run(spec_for(backend), name=f"{backend}-1").status == "SUCCEEDED"
    for group in _all_groups(aws):
        for permission in group["IpPermissions"]:
            assert not {r["CidrIp"] for r in permission.get("IpRanges", [])} & set(WORLD), group["GroupName"]
            assert not {r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])} & set(WORLD), group["GroupName"]
            assert permission.get("FromPort") != 22


def test_instances_and_endpoint_in_separate_groups(aws: EmbeddedAws) -> None:
    """Seed: one group for the instances and the endpoint."""
    result = aws.run(spec_for("eia"), name="eia-1")
    (endpoint,) = aws.client("ec2").describe_vpc_endpoints()["VpcEndpoints"]
    assert fleet_report(aws, result)["instance_security_group_id"] not in {g["GroupId"] for g in endpoint["Groups"]}


def test_instance_policy_grants_no_list_get_describe_on_everything(aws: EmbeddedAws) -> None:
    """Seed: iam:List*, iam:Get*, ec2:Describe*, ec2:Get* on * beside elastic-inference:Connect."""
    assert aws.run(spec_for("eia"), name="eia-1").status == "SUCCEEDED"
    document = aws.client("iam").get_role_policy(RoleName="eiplane-demo-eia-instance",
                                                 PolicyName="eiplane-instance-access")["PolicyDocument"]
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if a.split(":")[0] in ("iam", "ec2") or "*" in a]
        # "*" only where AWS allows nothing else: the SSM agent's message actions take no resource, nor does
        # PutMetricData (held to the serving namespace by its condition)
        assert statement["Resource"] != "*" or all(a.startswith("ec2messages:") for a in actions) or (
            actions == ["cloudwatch:PutMetricData"]
            and statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "eiplane/Inference"}})


def test_nothing_billable_exists_before_every_check_has_passed(aws: EmbeddedAws, faults: Faults) -> None:
    """Seed: created the (hourly-billed) endpoint before its confirmation step."""
    plan = aws.run(spec_for("eia", dry_run=True), name="plan")
    assert [p["billable"] for p in plan.output["results"] if p["kind"] == "vpc_endpoint"] == [True]
    assert managed_inventory(aws) == EMPTY_INVENTORY  # the plan is the confirmation step
    # A check that fails in the plan (here: EI not offered) stops the run before any create.
    faults.rewrite("ec2", "DescribeVpcEndpointServices",
                   lambda parsed: parsed.update(ServiceDetails=[]))
    failed = aws.run(spec_for("eia"), name="eia-1")
    assert failed.error == "BackendUnavailable"
    assert managed_inventory(aws) == EMPTY_INVENTORY


def test_role_without_policy_is_repaired(aws: EmbeddedAws) -> None:
    """Seed: a role without its policy was never repaired."""
    assert aws.run(spec_for("eia"), name="eia-1").status == "SUCCEEDED"
    aws.client("iam").delete_role_policy(RoleName="eiplane-demo-eia-instance", PolicyName="eiplane-instance-access")
    assert aws.run(spec_for("eia"), name="eia-2").status == "SUCCEEDED"
    assert aws.client("iam").list_role_policies(RoleName="eiplane-demo-eia-instance")["PolicyNames"] == [
        "eiplane-instance-access"]


def test_leftover_policy_profile_and_group_do_not_crash(aws: EmbeddedAws) -> None:
    """Seed: crashed on "already exists" for a leftover policy, profile or group."""
    iam, ec2 = aws.client("iam"), aws.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    iam.create_role(RoleName="eiplane-demo-eia-instance", Path="/eiplane/", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName="eiplane-demo-eia-instance", PolicyName="eiplane-instance-access",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::old/*"}]}))
    iam.create_instance_profile(InstanceProfileName="eiplane-demo-eia-instance", Path="/eiplane/")
    # Left by an earlier eiplane run that died before tagging them fully: eiplane's, by their managed-by tag.
    mine = [{"ResourceType": "security-group", "Tags": [{"Key": "eiplane:managed-by", "Value": "eiplane"}]}]
    ec2.create_security_group(GroupName="eiplane-demo-eia-instances", Description="leftover", VpcId=vpc,
                              TagSpecifications=mine)
    ec2.create_security_group(GroupName="eiplane-vpc-endpoints", Description="leftover", VpcId=vpc,
                              TagSpecifications=mine)

    result = aws.run(spec_for("eia"), name="eia-1")

    assert result.status == "SUCCEEDED", result.cause
    outcomes = {p["name"]: p["outcome"] for p in fleet_report(aws, result)["prerequisites"]
                if p["kind"] not in ("vpc_endpoint", "region_support", "vpc_dns")}
    # the leftovers adopted and repaired; the fleet's endpoint (load balancer and its group) created
    assert outcomes == {"eiplane-demo-eia-instances": "repaired", "eiplane-vpc-endpoints": "repaired",
                        "eiplane-demo-eia-instance": "repaired", "eiplane-demo-eia-load-balancer": "created",
                        "eiplane-demo-eia": "created", "HTTP 80": "created"}
    assert len(_all_groups(aws)) == 3  # the two leftovers, reused, and the load balancer's


def test_role_beyond_the_first_page_of_roles_is_found(aws: EmbeddedAws) -> None:
    """Seed: read only the first page of ListRoles, so it re-created (and crashed on) roles."""
    iam = aws.client("iam")
    for i in range(150):  # ListRoles pages hold 100
        iam.create_role(RoleName=f"eiplane-aaa-decoy-{i:03}", Path="/eiplane/", AssumeRolePolicyDocument="{}")
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    second = aws.run(spec_for("gpu"), name="gpu-2")
    assert {p["outcome"] for p in fleet_report(aws, second)["prerequisites"]} == {"found"}


def test_reruns_launch_nothing_and_change_nothing(aws: EmbeddedAws) -> None:
    """Seed: every run launched another instance."""
    for i in range(3):
        assert aws.run(spec_for("gpu"), name=f"gpu-{i}").status == "SUCCEEDED"
    assert aws.client("ec2").describe_instances()["Reservations"] == []
    assert aws.run(spec_for("gpu"), name="gpu-3").output["mutating_call_count"] == 0


def test_everything_created_is_tagged(aws: EmbeddedAws) -> None:
    """Seed: nothing was tagged."""
    assert aws.run(spec_for("eia"), name="eia-1").status == "SUCCEEDED"
    ec2, iam = aws.client("ec2"), aws.client("iam")
    tagged = [g["Tags"] for g in _all_groups(aws)]
    tagged += [e["Tags"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]]
    tagged.append(iam.get_role(RoleName="eiplane-demo-eia-instance")["Role"]["Tags"])
    tagged.append(iam.get_instance_profile(InstanceProfileName="eiplane-demo-eia-instance")["InstanceProfile"]["Tags"])
    for tags in tagged:
        keys = {t["Key"]: t["Value"] for t in tags}
        assert keys["eiplane:managed-by"] == "eiplane" and "eiplane:component" in keys


def test_retries_and_waits_for_the_endpoint(aws: EmbeddedAws, faults: Faults) -> None:
    """Seed: no retries, no wait for endpoint availability."""
    faults.fail("ec2", "CreateVpcEndpoint", "RequestLimitExceeded", times=1)
    faults.rewrite("ec2", "DescribeVpcEndpoints",
                   lambda parsed: [e.update(State="pendingAcceptance") for e in parsed["VpcEndpoints"]], times=2)
    result = aws.run(spec_for("eia"), name="eia-1")
    assert result.status == "SUCCEEDED", result.cause
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert "AwsThrottled" in errors


def test_no_key_pair_anywhere(aws: EmbeddedAws) -> None:
    """Seed: needed an EC2 key pair (SSM replaces SSH)."""
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []
    sources = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    assert "KeyName" not in sources and "key_pair" not in sources


def test_no_distutils_and_the_package_compiles_on_312_and_313() -> None:
    """Seed: broke on Python 3.12 (distutils)."""
    files = sorted(str(p) for p in [*PACKAGE.rglob("*.py"), *(ROOT / "functions").rglob("*.py")])
    assert not [f for f in files if "distutils" in Path(f).read_text()]
    ran = 0
    for version in ("3.12", "3.13"):
        interpreter = shutil.which(f"python{version}")
        if interpreter is None:
            continue
        env = {**os.environ, "PYENV_VERSION": ":".join(v for v in ("3.12.1", "3.13.0", "3.11.7"))}
        completed = subprocess.run([interpreter, "-c", "import sys, py_compile; [py_compile.compile(f, doraise=True) "
                                    "for f in sys.argv[1:]]", *files], env=env, capture_output=True, text=True,
                                   check=False)
        assert completed.returncode == 0, completed.stderr
        ran += 1
    if not ran:
        pytest.skip("no python3.12 or python3.13 on PATH to compile with")
