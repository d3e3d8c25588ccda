"""The fleet's endpoint: an internal Application Load Balancer in the fleet's subnets, a target group
of its instances health-checked on the model server's `GET /ping`, and one listener.

Each is found by its eiplane tags first and by its name as a fallback (a name-only match that is not
eiplane's is a PrerequisiteConflict: eiplane changes nothing it does not own), checked against the
spec and repaired in place where AWS allows it. What AWS does not let change in place (a target
group's port or VPC, a balancer's scheme) is a conflict that names what to delete: replacing a
balancer would change the endpoint's DNS name under its callers.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from eiplane import naming
from eiplane.aws import client, error_code, paginate
from eiplane.errors import PrerequisiteConflict, PrerequisiteNotReady
from eiplane.models.prerequisites import Placement
from eiplane.models.spec import FleetSpec
from eiplane.prerequisites.changes import Changes, Reconciler
from eiplane.prerequisites.endpoints import one_subnet_per_zone

PING_PATH = "/ping"
# TLS 1.3 and 1.2 only (ELB's recommended policy since 2023).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Requests go to the target with the fewest in flight: inference requests differ in cost, and
# round robin piles them on an instance that is busy with a large batch.
ALGORITHM = "least_outstanding_requests"
# AWS caps DescribeTags at 20 resources per call.
DESCRIBE_TAGS_BATCH = 20


class BalancerIds(NamedTuple):
    """ARNs and the DNS name; None while planning what does not exist yet."""

    load_balancer_arn: str | None
    target_group_arn: str | None
    listener_arn: str | None
    dns_name: str | None


def target_group_settings(spec: FleetSpec) -> dict[str, Any]:
    check = spec.serving.health_check
    return {
        "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port", "HealthCheckPath": PING_PATH,
        "HealthCheckEnabled": True, "HealthCheckIntervalSeconds": check.interval_s,
        "HealthCheckTimeoutSeconds": check.timeout_s, "HealthyThresholdCount": check.healthy_threshold,
        "UnhealthyThresholdCount": check.unhealthy_threshold, "Matcher": {"HttpCode": "200"},
    }


def target_group_attributes(spec: FleetSpec) -> dict[str, str]:
    return {"deregistration_delay.timeout_seconds": str(spec.serving.deregistration_delay_s),
            "load_balancing.algorithm.type": ALGORITHM}


def load_balancer_attributes() -> dict[str, str]:
    # Headers that are not valid HTTP are dropped, not forwarded to the model server (request smuggling).
    return {"routing.http.drop_invalid_header_fields.enabled": "true"}


def reconcile_load_balancer(spec: FleetSpec, placement: Placement, balancer_group: str | None,
                            reconciler: Reconciler) -> BalancerIds:
    elbv2 = client("elbv2", spec.region)
    target_group = _reconcile_target_group(elbv2, spec, placement, reconciler)
    balancer, dns_name = _reconcile_balancer(elbv2, spec, placement, balancer_group, reconciler)
    listener = _reconcile_listener(elbv2, spec, balancer, target_group, reconciler)
    return BalancerIds(balancer, target_group, listener, dns_name)


def check_active(region: str, load_balancer_arn: str) -> str:
    """The balancer's DNS name once it is active; PrerequisiteNotReady while it is provisioning."""
    balancer = client("elbv2", region).describe_load_balancers(LoadBalancerArns=[load_balancer_arn])["LoadBalancers"][0]
    state = balancer["State"]["Code"]
    if state != "active":
        raise PrerequisiteNotReady(f"load balancer {balancer['LoadBalancerName']} is {state}"
                                   + (f": {balancer['State'].get('Reason')}" if balancer["State"].get("Reason") else ""))
    return str(balancer["DNSName"])


# --- finding ------------------------------------------------------------------------------

def _find(elbv2: Any, spec: FleetSpec, kind: str, component: str) -> dict[str, Any] | None:
    """The fleet's balancer or target group: by its eiplane tags, else by its name (then it must be
    eiplane's). `kind` is "LoadBalancers" or "TargetGroups"."""
    name = naming.elb_name(spec.name)
    operation = "describe_load_balancers" if kind == "LoadBalancers" else "describe_target_groups"
    arn_key = "LoadBalancerArn" if kind == "LoadBalancers" else "TargetGroupArn"
    everything = list(paginate(elbv2, operation, kind))
    tags = _tags(elbv2, [item[arn_key] for item in everything])
    wanted = {naming.TAG_MANAGED_BY: naming.PROJECT, naming.TAG_COMPONENT: component, naming.TAG_FLEET: spec.name}
    tagged = [item for item in everything if wanted.items() <= tags[item[arn_key]].items()]
    if tagged:
        return {**sorted(tagged, key=lambda item: item[arn_key])[0], "Tags": tags[tagged[0][arn_key]]}
    named = [item for item in everything if item[kind.removesuffix("s") + "Name"] == name]
    if not named:
        return None
    item = named[0]
    if tags[item[arn_key]].get(naming.TAG_MANAGED_BY) != naming.PROJECT:
        raise PrerequisiteConflict(
            f"{kind[:-1]} {name} exists but is not eiplane's (no {naming.TAG_MANAGED_BY}={naming.PROJECT} tag): "
            "eiplane does not change what it does not own. Delete it, or hand it over by tagging it")
    return {**item, "Tags": tags[item[arn_key]]}


def _tags(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {arn: {} for arn in arns}
    for start in range(0, len(arns), DESCRIBE_TAGS_BATCH):
        for description in elbv2.describe_tags(ResourceArns=arns[start:start + DESCRIBE_TAGS_BATCH])["TagDescriptions"]:
            found[description["ResourceArn"]] = naming.from_aws_tags(description.get("Tags"))
    return found


def _retag(elbv2: Any, changes: Changes, arn: str, current: dict[str, str], wanted: dict[str, str]) -> None:
    missing = {k: v for k, v in wanted.items() if current.get(k) != v}
    if missing:
        changes.make(f"tag {', '.join(sorted(missing))}",
                     functools.partial(elbv2.add_tags, ResourceArns=[arn], Tags=naming.as_aws_tags(missing)))


def _attribute_changes(current: list[dict[str, str]], wanted: dict[str, str]) -> dict[str, str]:
    now = {a["Key"]: a["Value"] for a in current}
    return {k: v for k, v in wanted.items() if now.get(k) != v}


# --- target group -------------------------------------------------------------------------

def _reconcile_target_group(elbv2: Any, spec: FleetSpec, placement: Placement, reconciler: Reconciler) -> str | None:
    changes = reconciler.begin()
    name, settings = naming.elb_name(spec.name), target_group_settings(spec)
    tags = naming.tags_for(naming.TARGET_GROUP, spec)
    group = _find(elbv2, spec, "TargetGroups", naming.TARGET_GROUP)
    created = group is None
    if group is None:
        arn = changes.make(f"create target group {name} (HTTP {spec.serving.port}, health check GET {PING_PATH})",
                           lambda: _create_target_group(elbv2, spec, placement, name, settings, tags))
        current_attributes: list[dict[str, str]] = []
    else:
        arn = group["TargetGroupArn"]
        if (group.get("Port"), group.get("VpcId"), group.get("Protocol"), group.get("TargetType")) != (
                spec.serving.port, placement.vpc_id, "HTTP", "instance"):
            raise PrerequisiteConflict(
                f"target group {group['TargetGroupName']} is {group.get('Protocol')} {group.get('Port')} "
                f"({group.get('TargetType')} targets) in {group.get('VpcId')}; the fleet wants HTTP {spec.serving.port} "
                f"(instance targets) in {placement.vpc_id}, which AWS cannot change in place: delete the fleet's "
                "load balancer and target group, then apply again")
        _retag(elbv2, changes, arn, group["Tags"], tags)
        drift = {k: v for k, v in settings.items() if group.get(k) != v}
        if drift:
            changes.make(f"set {', '.join(sorted(drift))}",
                         functools.partial(elbv2.modify_target_group, TargetGroupArn=arn, **drift))
        current_attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    attributes = _attribute_changes(current_attributes, target_group_attributes(spec))
    if attributes:
        described = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
        changes.make(f"set {described}", lambda: elbv2.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(attributes.items())]))
    reconciler.done("target_group", name, arn, changes, created=created)
    return arn


def _create_target_group(elbv2: Any, spec: FleetSpec, placement: Placement, name: str, settings: dict[str, Any],
                         tags: dict[str, str]) -> str:
    try:
        return str(elbv2.create_target_group(
            Name=name, Protocol="HTTP", Port=spec.serving.port, VpcId=placement.vpc_id, TargetType="instance",
            Tags=naming.as_aws_tags(tags), **settings)["TargetGroups"][0]["TargetGroupArn"])
    except ClientError as exc:
        if error_code(exc) == "DuplicateTargetGroupName":  # another execution made it since the look-up
            raise PrerequisiteNotReady(f"target group {name} was created by another execution meanwhile") from exc
        raise


# --- load balancer ------------------------------------------------------------------------

def _reconcile_balancer(elbv2: Any, spec: FleetSpec, placement: Placement, balancer_group: str | None,
                        reconciler: Reconciler) -> tuple[str | None, str | None]:
    changes = reconciler.begin()
    name = naming.elb_name(spec.name)
    tags = naming.tags_for(naming.LOAD_BALANCER, spec)
    subnets = list(one_subnet_per_zone(placement.subnets))  # an ALB takes one subnet per zone
    group = balancer_group or "sg-(new)"
    balancer = _find(elbv2, spec, "LoadBalancers", naming.LOAD_BALANCER)
    created = balancer is None
    if balancer is None:
        arn = changes.make(
            f"create internal application load balancer {name} in {', '.join(subnets)} with {group}",
            lambda: _create_balancer(elbv2, name, subnets, group, tags))
        dns_name = None
        current_attributes: list[dict[str, str]] = []
    else:
        arn, dns_name = balancer["LoadBalancerArn"], balancer["DNSName"]
        if (balancer.get("Type"), balancer.get("Scheme"), balancer.get("VpcId")) != (
                "application", "internal", placement.vpc_id):
            raise PrerequisiteConflict(
                f"load balancer {name} is an {balancer.get('Scheme')} {balancer.get('Type')} balancer in "
                f"{balancer.get('VpcId')}; the fleet wants an internal application one in {placement.vpc_id}, "
                "which AWS cannot change in place: delete it, then apply again")
        _retag(elbv2, changes, arn, balancer["Tags"], tags)
        if set(balancer.get("SecurityGroups", [])) != {group}:
            changes.make(f"set security groups to {group}", functools.partial(
                elbv2.set_security_groups, LoadBalancerArn=arn, SecurityGroups=[group]))
        current_subnets = {z["SubnetId"] for z in balancer.get("AvailabilityZones", [])}
        if current_subnets != set(subnets):
            changes.make(f"set subnets to {', '.join(subnets)}", functools.partial(
                elbv2.set_subnets, LoadBalancerArn=arn, Subnets=subnets))
        current_attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    attributes = _attribute_changes(current_attributes, load_balancer_attributes())
    if attributes:
        described = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
        changes.make(f"set {described}", lambda: elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(attributes.items())]))
    reconciler.done("load_balancer", name, arn, changes, created=created, billable=True)
    return arn, dns_name


def _create_balancer(elbv2: Any, name: str, subnets: list[str], group: str, tags: dict[str, str]) -> str:
    try:
        return str(elbv2.create_load_balancer(
            Name=name, Type="application", Scheme="internal", IpAddressType="ipv4", Subnets=subnets,
            SecurityGroups=[group], Tags=naming.as_aws_tags(tags))["LoadBalancers"][0]["LoadBalancerArn"])
    except ClientError as exc:
        if error_code(exc) == "DuplicateLoadBalancerName":
            raise PrerequisiteNotReady(f"load balancer {name} was created by another execution meanwhile") from exc
        raise


# --- listener -----------------------------------------------------------------------------

def _reconcile_listener(elbv2: Any, spec: FleetSpec, balancer: str | None, target_group: str | None,
                        reconciler: Reconciler) -> str | None:
    changes = reconciler.begin()
    serving = spec.serving
    port, protocol = serving.effective_listener_port, serving.protocol
    wanted: dict[str, Any] = {"Port": port, "Protocol": protocol,
                              "DefaultActions": [{"Type": "forward", "TargetGroupArn": target_group or "(new)"}]}
    if protocol == "HTTPS":
        wanted.update(SslPolicy=TLS_POLICY, Certificates=[{"CertificateArn": serving.certificate_arn}])
    listeners = list(paginate(elbv2, "describe_listeners", "Listeners", LoadBalancerArn=balancer)) if balancer else []
    ours = [listener for listener in listeners if listener["Port"] == port]
    name = f"{protocol} {port}"
    created = not ours
    if not ours:
        arn = changes.make(f"create listener {name} forwarding to the fleet's target group",
                           lambda: str(elbv2.create_listener(LoadBalancerArn=balancer, Tags=naming.as_aws_tags(
                               naming.tags_for(naming.LISTENER, spec)), **wanted)["Listeners"][0]["ListenerArn"]))
    else:
        listener = ours[0]
        arn = listener["ListenerArn"]
        # An HTTP listener has no TLS policy (moto reports its default one anyway): compared for HTTPS only.
        drift = [key for key in ("Protocol", *(("SslPolicy",) if protocol == "HTTPS" else ()))
                 if listener.get(key) != wanted.get(key)]
        actions = [(a.get("Type"), a.get("TargetGroupArn")) for a in listener.get("DefaultActions", [])]
        if actions != [("forward", target_group)]:
            drift.append("DefaultActions")
        if protocol == "HTTPS" and [c.get("CertificateArn") for c in listener.get("Certificates", [])][:1] != [
                serving.certificate_arn]:
            drift.append("Certificates")
        if drift:
            changes.make(f"set {', '.join(drift)}", functools.partial(
                elbv2.modify_listener, ListenerArn=arn, **{k: v for k, v in wanted.items() if k != "Tags"}))
    # Other listeners (another port: the fleet's old listener_port) would keep serving where the
    # spec no longer says: removed.
    for stale in listeners:
        if stale["Port"] != port:
            changes.make(f"delete listener {stale['Protocol']} {stale['Port']}",
                         functools.partial(elbv2.delete_listener, ListenerArn=stale["ListenerArn"]))
    reconciler.done("listener", name, arn, changes, created=created)
    return arn
