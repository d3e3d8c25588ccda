"""The fleet's instance role, its policy and its instance profile.

The role may do exactly this: run the SSM agent for Run Command (its heartbeat and its message
channel; not AmazonSSMManagedInstanceCore, which would also let every instance read every SSM
parameter of the region), read the fleet's artifacts and write its validation results under the
fleet's prefix, and, for eia only, `elastic-inference:Connect`. The seed's policy also allowed
iam:List*, iam:Get*, ec2:Describe*, ec2:Get* on "*"; any policy on the role beyond ours is removed.

Every role is created under the stack's fleet-instance permissions boundary (the template's
FleetInstanceBoundary; the creating function may create no role without it), and only at eiplane's
IAM path: a role or profile of the fleet's name at another path is someone else's and is refused.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from botocore.exceptions import ClientError

from eiplane import naming
from eiplane.aws import client, error_code, paginate
from eiplane.errors import PrerequisiteConflict
from eiplane.models.spec import FleetSpec
from eiplane.prerequisites.changes import Reconciler
from eiplane.settings import get_settings

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}

SERVING_NAMESPACE = "eiplane/Inference"  # what the model server publishes (eiplane/agent/model_server.py)


def partition_of(region: str) -> str:
    for prefix, partition in (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"),
                              ("us-iso-", "aws-iso")):
        if region.startswith(prefix):
            return partition
    return "aws"


def instance_policy(spec: FleetSpec, bucket: str, account: str) -> dict[str, Any]:
    partition = partition_of(spec.region)
    prefix = naming.artifact_prefix(spec.name)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadFleetArtifacts",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*",
        },
        {
            "Sid": "ListFleetArtifacts",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:{partition}:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
        {
            "Sid": "WriteValidationResults",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}results/*",
        },
        {
            # The SSM agent's heartbeat, by which it registers ("Online").
            "Sid": "SsmAgentHeartbeat",
            "Effect": "Allow",
            "Action": "ssm:UpdateInstanceInformation",
            "Resource": f"arn:{partition}:ec2:{spec.region}:{account}:instance/*",
        },
        {
            # How the agent receives Run Command messages and answers them (Message Delivery Service).
            # These actions take no resource: AWS requires "*".
            "Sid": "SsmAgentMessages",
            "Effect": "Allow",
            "Action": ["ec2messages:GetMessages", "ec2messages:AcknowledgeMessage", "ec2messages:SendReply"],
            "Resource": "*",
        },
    ]
    statements.append({
        # The model server's own metrics (eiplane/Inference, dimensions Fleet and InstanceId), which capacity
        # matching reads. PutMetricData takes no resource, so AWS requires "*"; the namespace condition
        # keeps an instance from writing any other namespace (another fleet's alarms read theirs).
        "Sid": "PutServingMetrics",
        "Effect": "Allow",
        "Action": "cloudwatch:PutMetricData",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": SERVING_NAMESPACE}},
    })
    if spec.backend.type == "eia":
        statements.append({
            "Sid": "ConnectElasticInference",
            "Effect": "Allow",
            "Action": "elastic-inference:Connect",
            "Resource": f"arn:{partition}:elastic-inference:{spec.region}:{account}:elastic-inference-accelerator/*",
        })
    return {"Version": "2012-10-17", "Statement": statements}


def _canonical(document: Any) -> str:
    if isinstance(document, str):
        document = json.loads(document)
    return json.dumps(document, sort_keys=True)


def reconcile_iam(spec: FleetSpec, reconciler: Reconciler) -> tuple[str | None, str | None, str]:
    """Returns (role ARN, instance profile ARN, instance profile name); ARNs are None while
    planning something that does not exist yet."""
    iam = client("iam", spec.region)
    account = client("sts", spec.region).get_caller_identity()["Account"]
    role_arn = _reconcile_role(iam, spec, account, reconciler)
    profile_arn = _reconcile_profile(iam, spec, reconciler)
    return role_arn, profile_arn, naming.instance_profile_name(spec.name)


def get_or_none(call: Any, key: str, **kwargs: Any) -> dict[str, Any] | None:
    """`call(**kwargs)[key]`, or None where IAM answers NoSuchEntity."""
    try:
        return dict(call(**kwargs)[key])
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise


def _create_or_get(create: Any, get: Any, key: str, **kwargs: Any) -> dict[str, Any]:
    """Create; if another execution won the race, take what it made."""
    try:
        return dict(create()[key])
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists":
            raise
        return dict(get(**kwargs)[key])


def _at_eiplane_path(kind: str, found: dict[str, Any]) -> None:
    if found.get("Path") != naming.IAM_PATH:
        name = found.get("RoleName") or found.get("InstanceProfileName")
        raise PrerequisiteConflict(
            f"{kind} {name} exists at path {found.get('Path')}, not eiplane's {naming.IAM_PATH}: it is not "
            f"eiplane's, and eiplane neither adopts nor changes it; delete or rename it, or name the fleet otherwise")


def _reconcile_role(iam: Any, spec: FleetSpec, account: str, reconciler: Reconciler) -> str | None:
    name = naming.instance_role_name(spec.name)
    tags = naming.tags_for(naming.INSTANCE_ROLE, spec)
    boundary = get_settings().instance_boundary_arn
    if boundary is None:
        raise ValueError("EIPLANE_INSTANCE_BOUNDARY_ARN is not set: the template gives it to the functions that "
                         "plan and create fleet roles")
    changes = reconciler.begin()
    role = get_or_none(iam.get_role, "Role", RoleName=name)
    created = role is None
    if role is None:
        role = changes.make(f"create role {name} under the permissions boundary", lambda: _create_or_get(
            lambda: iam.create_role(
                RoleName=name, Path=naming.IAM_PATH, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
                Description=f"eiplane fleet {spec.name} instances", Tags=naming.as_aws_tags(tags),
                PermissionsBoundary=boundary),
            iam.get_role, "Role", RoleName=name))
        inline: list[str] = []
        attached: list[str] = []
    else:
        _at_eiplane_path("role", role)
        current_boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if current_boundary != boundary:
            # First: every other change to a fleet role is allowed only under this boundary.
            changes.make("set the fleet-instance permissions boundary", lambda: iam.put_role_permissions_boundary(
                RoleName=name, PermissionsBoundary=boundary))
        if _canonical(role["AssumeRolePolicyDocument"]) != _canonical(TRUST_POLICY):
            changes.make("reset trust policy to ec2.amazonaws.com only", lambda: iam.update_assume_role_policy(
                RoleName=name, PolicyDocument=json.dumps(TRUST_POLICY)))
        current_tags = naming.from_aws_tags(role.get("Tags"))  # GetRole returns the tags
        missing = {k: v for k, v in tags.items() if current_tags.get(k) != v}
        if missing:
            changes.make(f"tag {', '.join(sorted(missing))}",
                         lambda: iam.tag_role(RoleName=name, Tags=naming.as_aws_tags(missing)))
        inline = list(paginate(iam, "list_role_policies", "PolicyNames", RoleName=name))
        attached = [p["PolicyArn"] for p in paginate(iam, "list_attached_role_policies", "AttachedPolicies",
                                                     RoleName=name)]

    wanted = instance_policy(spec, get_settings().artifacts_bucket, account)
    if naming.INSTANCE_POLICY_NAME not in inline:
        changes.make(f"put inline policy {naming.INSTANCE_POLICY_NAME}", lambda: iam.put_role_policy(
            RoleName=name, PolicyName=naming.INSTANCE_POLICY_NAME, PolicyDocument=json.dumps(wanted)))
    else:
        current = iam.get_role_policy(RoleName=name, PolicyName=naming.INSTANCE_POLICY_NAME)["PolicyDocument"]
        if _canonical(current) != _canonical(wanted):
            changes.make(f"rewrite inline policy {naming.INSTANCE_POLICY_NAME}", lambda: iam.put_role_policy(
                RoleName=name, PolicyName=naming.INSTANCE_POLICY_NAME, PolicyDocument=json.dumps(wanted)))
    for extra in sorted(set(inline) - {naming.INSTANCE_POLICY_NAME}):
        changes.make(f"delete inline policy {extra} (broader than the fleet needs)",
                     functools.partial(iam.delete_role_policy, RoleName=name, PolicyName=extra))

    for extra in sorted(attached):  # managed policies (AmazonSSMManagedInstanceCore too) are all broader
        changes.make(f"detach {extra} (broader than the fleet needs)",
                     functools.partial(iam.detach_role_policy, RoleName=name, PolicyArn=extra))

    reconciler.done("iam_role", name, role["Arn"] if role else None, changes, created=created)
    return role["Arn"] if role else None


def _reconcile_profile(iam: Any, spec: FleetSpec, reconciler: Reconciler) -> str | None:
    name = naming.instance_profile_name(spec.name)
    role_name = naming.instance_role_name(spec.name)
    tags = naming.tags_for(naming.INSTANCE_PROFILE, spec)
    changes = reconciler.begin()
    profile = get_or_none(iam.get_instance_profile, "InstanceProfile", InstanceProfileName=name)
    created = profile is None
    roles: list[str] = []
    if profile is None:
        profile = changes.make(f"create instance profile {name}", lambda: _create_or_get(
            lambda: iam.create_instance_profile(InstanceProfileName=name, Path=naming.IAM_PATH,
                                                Tags=naming.as_aws_tags(tags)),
            iam.get_instance_profile, "InstanceProfile", InstanceProfileName=name))
    else:
        _at_eiplane_path("instance profile", profile)
        roles = [r["RoleName"] for r in profile.get("Roles", [])]
        current_tags = naming.from_aws_tags(profile.get("Tags"))  # so does GetInstanceProfile
        missing = {k: v for k, v in tags.items() if current_tags.get(k) != v}
        if missing:
            changes.make(f"tag {', '.join(sorted(missing))}", lambda: iam.tag_instance_profile(
                InstanceProfileName=name, Tags=naming.as_aws_tags(missing)))
    # A profile holds at most one role: a stale one (a deleted and re-created role, or
    # another role) must go before ours goes in.
    for stale in [r for r in roles if r != role_name]:
        changes.make(f"remove role {stale}", functools.partial(
            iam.remove_role_from_instance_profile, InstanceProfileName=name, RoleName=stale))
    if role_name not in roles:
        changes.make(f"add role {role_name}", lambda: iam.add_role_to_instance_profile(
            InstanceProfileName=name, RoleName=role_name))
    reconciler.done("instance_profile", name, profile["Arn"] if profile else None, changes, created=created)
    return profile["Arn"] if profile else None
