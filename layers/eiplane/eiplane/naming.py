"""Names, paths and tags of everything eiplane creates. Resources are found by these tags
first and by these names as a fallback."""

from __future__ import annotations

import hashlib

from eiplane.models.spec import FleetSpec

PROJECT = "eiplane"
TAG_MANAGED_BY = "eiplane:managed-by"
TAG_FLEET = "eiplane:fleet"
TAG_COMPONENT = "eiplane:component"
IAM_PATH = "/eiplane/"

INSTANCE_SECURITY_GROUP = "instance-security-group"
LOAD_BALANCER_SECURITY_GROUP = "load-balancer-security-group"
LOAD_BALANCER = "load-balancer"
TARGET_GROUP = "target-group"
LISTENER = "listener"
ENDPOINT_SECURITY_GROUP = "endpoint-security-group"
INSTANCE_ROLE = "instance-role"
INSTANCE_PROFILE = "instance-profile"
VPC_ENDPOINT = "vpc-endpoint"

# Shared by every fleet in a VPC: one interface endpoint per service per VPC can own the
# private DNS name, so endpoints and their security group are VPC-scoped, not per fleet.
ENDPOINT_SECURITY_GROUP_NAME = "eiplane-vpc-endpoints"


def instance_security_group_name(fleet: str) -> str:
    return f"eiplane-{fleet}-instances"


def load_balancer_security_group_name(fleet: str) -> str:
    return f"eiplane-{fleet}-load-balancer"


def elb_name(fleet: str) -> str:
    """The load balancer's and the target group's name: at most 32 characters of letters, digits and
    hyphens. eiplane-<fleet> when it fits; else a prefix of the fleet's name and a digest of all of it,
    so two long names that share a prefix do not collide."""
    name = f"eiplane-{fleet}"
    if len(name) <= 32:
        return name
    digest = hashlib.sha256(fleet.encode()).hexdigest()[:8]
    return f"eiplane-{fleet[:15].rstrip('-')}-{digest}"


def instance_role_name(fleet: str) -> str:
    return f"eiplane-{fleet}-instance"


instance_profile_name = instance_role_name
INSTANCE_POLICY_NAME = "eiplane-instance-access"


def artifact_prefix(fleet: str) -> str:
    return f"fleets/{fleet}/"


def model_prefix(fleet: str, name: str, version: str) -> str:
    """Where `eiplane artifact push` puts a model and PlanLaunch reads its manifest."""
    return f"{artifact_prefix(fleet)}models/{name}/{version}/"


def endpoint_service_name(region: str, service: str) -> str:
    return f"com.amazonaws.{region}.{service}"


def tags_for(component: str, spec: FleetSpec | None = None) -> dict[str, str]:
    """The user's tags plus eiplane's own; shared resources carry no fleet tag."""
    tags = dict(spec.tags) if spec else {}
    tags[TAG_MANAGED_BY] = PROJECT
    tags[TAG_COMPONENT] = component
    if spec is not None:
        tags[TAG_FLEET] = spec.name
    return tags


# What an instance validated and serves: on its tags (the EC2 console), its slot record and the report.
TAG_MODEL, TAG_MODEL_VERSION, TAG_MANIFEST = "eiplane:model", "eiplane:model-version", "eiplane:manifest-sha256"


def model_tags(model_name: str, model_version: str, manifest_sha256: str) -> dict[str, str]:
    return {TAG_MODEL: model_name, TAG_MODEL_VERSION: model_version, TAG_MANIFEST: manifest_sha256}


def as_aws_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def from_aws_tags(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}
