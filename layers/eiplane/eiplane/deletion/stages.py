"""Each kind of the fleet's resources: found (by the fleet's tags and by its state records), then deleted,
kept (and why) or found absent. A `Deleter` that does not apply only records what it would do: the plan."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eiplane import naming
from eiplane.aws import client, error_code, paginate
from eiplane.errors import InstancesNotTerminated, ResourceStillInUse
from eiplane.matching.surge_alarm import surge_alarm_name
from eiplane.models.deletion import Action, DeletionItem, Kind
from eiplane.observability import logger
from eiplane.prerequisites.iam import get_or_none
from eiplane.prerequisites.load_balancer import _tags as elb_tags
from eiplane.prerequisites.network import flatten
from eiplane.provisioning.plan import instance_states
from eiplane.settings import get_settings
from eiplane.state import fleet_key, load_prerequisites, load_slots, registered_fleets, registry_key

NOT_EIPLANES = f"not eiplane's (no {naming.TAG_MANAGED_BY}={naming.PROJECT} tag): eiplane deletes only what it owns"
# Instances in these states still exist (and an EBS volume of a stopped one bills).
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
# A step deletes at most this many artifact versions or state items per invocation: the ASL runs it again.
PAGE = 500


@dataclass
class Deleter:
    """Collects one item per resource; applying, it makes each deletion call."""

    apply: bool
    items: list[DeletionItem] = field(default_factory=list)

    def delete(self, kind: Kind, name: str, resource_id: str, call: Callable[[], Any] | None = None,
               reason: str | None = None) -> None:
        if self.apply and call is not None:
            call()
        self._add(kind, name, resource_id, "deleted" if self.apply else "delete", reason)

    def keep(self, kind: Kind, name: str, resource_id: str, reason: str) -> None:
        self._add(kind, name, resource_id, "kept" if self.apply else "keep", reason)

    def absent(self, kind: Kind, name: str, resource_id: str, reason: str | None = None) -> None:
        self._add(kind, name, resource_id, "absent", reason)

    def _add(self, kind: Kind, name: str, resource_id: str, action: Action, reason: str | None) -> None:
        item = DeletionItem(kind=kind, name=name, id=resource_id, action=action, reason=reason)
        self.items.append(item)
        logger.info(f"{kind} {name} {resource_id}: {action}" + (f" ({reason})" if reason else ""),
                    extra={"deletion": item.model_dump()})


@dataclass(frozen=True)
class Fleet:
    """The fleet as the steps see it: its name, region and what its state records say."""

    name: str
    region: str
    execution_id: str
    record: dict[str, Any]  # the prerequisites record ({} when there is none)

    @property
    def inventory(self) -> list[dict[str, str]]:
        return list(self.record.get("inventory") or [])

    def recorded(self, kind: str) -> list[dict[str, str]]:
        return [entry for entry in self.inventory if entry.get("kind") == kind]

    @property
    def marker(self) -> str:
        """Written on what this deletion terminated: a re-run of it reports them deleted, not absent."""
        return f"deleted by {self.execution_id}"


def fleet_of(name: str, region: str, execution_id: str) -> Fleet:
    return Fleet(name, region, execution_id, load_prerequisites(name) or {})


def _owned(tags: dict[str, str]) -> bool:
    return tags.get(naming.TAG_MANAGED_BY) == naming.PROJECT


# --- instances --------------------------------------------------------------------------------

def fleet_instance_states(fleet: Fleet) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Every instance tagged with the fleet that still exists (warm pool's stopped ones included), and the
    instances the slot records name, whatever their state: id -> state, and id -> tags."""
    states: dict[str, str] = {}
    tags: dict[str, dict[str, str]] = {}
    for page in client("ec2", fleet.region).get_paginator("describe_instances").paginate(Filters=[
            {"Name": f"tag:{naming.TAG_FLEET}", "Values": [fleet.name]},
            {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                states[instance["InstanceId"]] = instance["State"]["Name"]
                tags[instance["InstanceId"]] = naming.from_aws_tags(instance.get("Tags"))
    return states, tags


def drain(fleet: Fleet) -> int:
    """Deregister every target of the fleet's target group(s): the balancer sends them nothing new and lets
    their requests finish for the deregistration delay, which is returned (0: nothing was registered)."""
    elbv2 = client("elbv2", fleet.region)
    delay = 0
    for group in _target_groups(fleet):
        if not _owned(group["Tags"]):
            continue
        arn = group["TargetGroupArn"]
        targets = [d["Target"] for d in elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
                   if d["TargetHealth"]["State"] not in ("unused", "draining")]
        if not targets:
            continue
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=targets)
        attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        delay = max(delay, int(next((a["Value"] for a in attributes
                                     if a["Key"] == "deregistration_delay.timeout_seconds"), "300")))
        logger.info(f"{fleet.name}: deregistered {len(targets)} target(s) of {group['TargetGroupName']}: draining "
                    f"for {delay} s")
    return delay


def instances(fleet: Fleet, deleter: Deleter) -> None:
    """Every instance of the fleet (in service, drained, warm or stopped, on its way): terminated in one call;
    InstancesNotTerminated while any is still shutting down (the ASL's Retry is the wait)."""
    states, tags = fleet_instance_states(fleet)
    slots = load_slots(fleet.name)
    recorded = {str(r["instance_id"]): r for r in slots.values() if r.get("instance_id")}
    states |= instance_states(sorted(set(recorded) - set(states)), fleet.region)
    to_terminate, shutting_down = [], []
    for instance_id in sorted(set(states) | set(recorded)):
        state = states.get(instance_id)
        name = f"slot {recorded[instance_id]['sk'].removeprefix('SLOT#')}" if instance_id in recorded else "no slot"
        if state is None or state == "terminated":
            ours = recorded.get(instance_id, {}).get("reason") == fleet.marker
            if ours:
                deleter.delete("instance", name, instance_id, reason="terminated")
            elif state is None:
                deleter.absent("instance", name, instance_id, reason="the slot record names it; EC2 does not")
            continue
        if instance_id in tags and not _owned(tags[instance_id]):
            deleter.keep("instance", name, instance_id, f"tagged {naming.TAG_FLEET}={fleet.name} by hand, {NOT_EIPLANES}")
            continue
        if state == "shutting-down":
            shutting_down.append(instance_id)
            deleter.delete("instance", name, instance_id, reason="shutting down")
            continue
        to_terminate.append(instance_id)
        deleter.delete("instance", name, instance_id, reason=f"was {state}")
    if not deleter.apply:
        return
    if to_terminate:
        for instance_id in to_terminate:  # recorded first: a re-run of this deletion reports it as its own
            slot = recorded.get(instance_id)
            if slot is not None:
                _mark_slot(fleet, str(slot["sk"]), fleet.marker)
        ec2 = client("ec2", fleet.region)
        for start in range(0, len(to_terminate), 1000):  # TerminateInstances takes up to 1,000 ids
            ec2.terminate_instances(InstanceIds=to_terminate[start:start + 1000])
    after = instance_states(to_terminate + shutting_down, fleet.region)
    waiting = sorted(i for i, state in after.items() if state != "terminated")
    if waiting:
        raise InstancesNotTerminated(f"{len(waiting)} instance(s) of {fleet.name} still shutting down: "
                                     f"{', '.join(waiting[:10])}" + (" ..." if len(waiting) > 10 else ""))


def _mark_slot(fleet: Fleet, sort_key: str, reason: str) -> None:
    settings = get_settings()
    client("dynamodb", settings.region).update_item(
        TableName=settings.state_table, Key=fleet_key(fleet.name, sort_key),
        UpdateExpression="SET #state = :terminated, #reason = :reason",
        ExpressionAttributeNames={"#state": "state", "#reason": "reason"},
        ExpressionAttributeValues={":terminated": {"S": "terminated"}, ":reason": {"S": reason}})


# --- load balancer ----------------------------------------------------------------------------

def _by_tags_or_record(fleet: Fleet, operation: str, key: str, arn_key: str, component: str,
                       recorded_arn: str | None) -> list[dict[str, Any]]:
    elbv2 = client("elbv2", fleet.region)
    everything = list(paginate(elbv2, operation, key))
    tags = elb_tags(elbv2, [item[arn_key] for item in everything])
    found = [{**item, "Tags": tags[item[arn_key]]} for item in everything
             if (tags[item[arn_key]].get(naming.TAG_FLEET) == fleet.name
             and tags[item[arn_key]].get(naming.TAG_COMPONENT, component) == component)
             or item[arn_key] == recorded_arn]
    return sorted(found, key=lambda item: item[arn_key])


def _target_groups(fleet: Fleet) -> list[dict[str, Any]]:
    return _by_tags_or_record(fleet, "describe_target_groups", "TargetGroups", "TargetGroupArn", naming.TARGET_GROUP,
                              fleet.record.get("target_group_arn"))


def load_balancer(fleet: Fleet, deleter: Deleter) -> None:
    """Listeners, then the balancer, then its target group: AWS refuses to delete a target group a listener
    still forwards to (ResourceInUse, retried by the ASL until the balancer is gone)."""
    elbv2 = client("elbv2", fleet.region)
    balancers = _by_tags_or_record(fleet, "describe_load_balancers", "LoadBalancers", "LoadBalancerArn",
                                   naming.LOAD_BALANCER, fleet.record.get("load_balancer_arn"))
    recorded = fleet.record.get("load_balancer_arn")
    if recorded and recorded not in {b["LoadBalancerArn"] for b in balancers}:
        deleter.absent("load_balancer", naming.elb_name(fleet.name), str(recorded), "recorded, no longer exists")
    for balancer in balancers:
        arn, name = balancer["LoadBalancerArn"], balancer["LoadBalancerName"]
        if not _owned(balancer["Tags"]):
            deleter.keep("load_balancer", name, arn, NOT_EIPLANES)
            continue
        for listener in paginate(elbv2, "describe_listeners", "Listeners", LoadBalancerArn=arn):
            deleter.delete("listener", f"{listener['Protocol']} {listener['Port']}", listener["ListenerArn"],
                           functools.partial(elbv2.delete_listener, ListenerArn=listener["ListenerArn"]))
        deleter.delete("load_balancer", name, arn, functools.partial(elbv2.delete_load_balancer, LoadBalancerArn=arn),
                       reason="internal Application Load Balancer (billed hourly)")
    in_use = []
    for group in _target_groups(fleet):
        arn, name = group["TargetGroupArn"], group["TargetGroupName"]
        if not _owned(group["Tags"]):
            deleter.keep("target_group", name, arn, NOT_EIPLANES)
            continue
        try:
            deleter.delete("target_group", name, arn, functools.partial(elbv2.delete_target_group, TargetGroupArn=arn))
        except ClientError as exc:
            if error_code(exc) != "ResourceInUse":
                raise
            in_use.append(name)
    if in_use:
        raise ResourceStillInUse(f"target group(s) {', '.join(in_use)} still in use while the load balancer is "
                                 "being deleted")


# --- alarms -----------------------------------------------------------------------------------

def alarms(fleet: Fleet, deleter: Deleter) -> None:
    """The fleet's surge alarm (the only alarm eiplane creates for a fleet)."""
    name = surge_alarm_name(fleet.name)
    cloudwatch = client("cloudwatch", fleet.region)
    found = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    if not found:
        deleter.absent("alarm", name, name, "no surge alarm (capacity matching had not set one)")
        return
    deleter.delete("alarm", name, found[0]["AlarmArn"], lambda: cloudwatch.delete_alarms(AlarmNames=[name]))


# --- network: VPC endpoints and security groups --------------------------------------------------

def _other_fleets_inventory(fleet: Fleet) -> dict[str, list[str]]:
    """Resource id -> the other fleets whose prerequisites records name it (shared endpoints and their group)."""
    users: dict[str, list[str]] = {}
    for other in registered_fleets(include_deleting=True):
        if other == fleet.name:
            continue
        for entry in (load_prerequisites(other) or {}).get("inventory") or []:
            users.setdefault(entry.get("id", ""), []).append(other)
    return users


def network(fleet: Fleet, deleter: Deleter) -> None:
    """The VPC endpoints the fleet's record names that no other fleet's does, the fleet's rule in the VPC's
    shared endpoint group, the fleet's groups (instances' before the balancer's, which the instances' names),
    and the endpoint group once no fleet and no endpoint uses it. AWS refuses to delete a group a network
    interface still holds (an instance shutting down, a balancer or an endpoint being deleted):
    DependencyViolation, and the ASL retries until they are gone."""
    ec2 = client("ec2", fleet.region)
    others = _other_fleets_inventory(fleet)
    endpoint_ids = sorted({e["id"] for e in fleet.recorded("vpc_endpoint")})
    # By the VPC, not by id: DescribeVpcEndpoints fails on an id that is gone (and moto has no id filter).
    in_vpc = [{"Name": "vpc-id", "Values": [fleet.record["vpc_id"]]}] if fleet.record.get("vpc_id") else []
    endpoints = {e["VpcEndpointId"]: e for e in paginate(ec2, "describe_vpc_endpoints", "VpcEndpoints", Filters=in_vpc)
                 if e["VpcEndpointId"] in endpoint_ids} if endpoint_ids else {}
    for endpoint_id in endpoint_ids:
        endpoint = endpoints.get(endpoint_id)
        name = next(e["name"] for e in fleet.recorded("vpc_endpoint") if e["id"] == endpoint_id)
        if endpoint is None or endpoint["State"].lower() in ("deleted", "deleting"):
            deleter.absent("vpc_endpoint", name, endpoint_id, endpoint["State"].lower() if endpoint else "gone")
        elif others.get(endpoint_id):
            deleter.keep("vpc_endpoint", name, endpoint_id, f"shared: fleet(s) {', '.join(others[endpoint_id])} use it")
        elif not _owned(naming.from_aws_tags(endpoint.get("Tags"))):
            deleter.keep("vpc_endpoint", name, endpoint_id, NOT_EIPLANES)
        else:
            deleter.delete("vpc_endpoint", name, endpoint_id,
                           functools.partial(ec2.delete_vpc_endpoints, VpcEndpointIds=[endpoint_id]),
                           reason="interface endpoints bill per AZ-hour" if endpoint.get("VpcEndpointType") ==
                           "Interface" else None)

    groups = _security_groups(fleet)
    instance_group = next((g["GroupId"] for g in groups if g["Tags"].get(naming.TAG_COMPONENT) ==
                           naming.INSTANCE_SECURITY_GROUP), fleet.record.get("instance_security_group_id"))
    blocked: list[str] = []
    endpoint_group = _endpoint_group(fleet)
    if endpoint_group is not None:
        _endpoint_group_rule(fleet, deleter, endpoint_group, instance_group)
    for group in groups:
        group_id, name = group["GroupId"], group["GroupName"]
        if not _owned(group["Tags"]):
            deleter.keep("security_group", name, group_id, NOT_EIPLANES)
            continue
        _delete_group(ec2, deleter, name, group_id, blocked)
    for recorded in ("instance_security_group_id", "load_balancer_security_group_id"):
        group_id = fleet.record.get(recorded)
        if group_id and group_id not in {g["GroupId"] for g in groups}:
            deleter.absent("security_group", recorded.removesuffix("_id").replace("_", " "), str(group_id))
    if endpoint_group is not None:
        group_id = endpoint_group["GroupId"]
        users = others.get(group_id, [])
        # (endpoints this deletion deletes, or found being deleted, release the group once they are gone)
        going = {i.id for i in deleter.items if i.kind == "vpc_endpoint" and i.action in ("delete", "deleted", "absent")}
        still = [e["VpcEndpointId"] for e in paginate(ec2, "describe_vpc_endpoints", "VpcEndpoints", Filters=[
            {"Name": "vpc-id", "Values": [endpoint_group["VpcId"]]}]) if e["State"].lower() not in ("deleted",)
            and group_id in {g["GroupId"] for g in e.get("Groups", [])} and e["VpcEndpointId"] not in going]
        if users:
            deleter.keep("security_group", naming.ENDPOINT_SECURITY_GROUP_NAME, group_id,
                         f"shared: fleet(s) {', '.join(users)} use it")
        elif still:
            deleter.keep("security_group", naming.ENDPOINT_SECURITY_GROUP_NAME, group_id,
                         f"endpoint(s) {', '.join(still)} not deleted by eiplane use it")
        elif not _owned(naming.from_aws_tags(endpoint_group.get("Tags"))):
            deleter.keep("security_group", naming.ENDPOINT_SECURITY_GROUP_NAME, group_id, NOT_EIPLANES)
        else:
            _delete_group(ec2, deleter, naming.ENDPOINT_SECURITY_GROUP_NAME, group_id, blocked)
    if blocked:
        raise ResourceStillInUse(f"security group(s) {', '.join(blocked)} still in use (DependencyViolation): network "
                                 "interfaces of instances, the load balancer or endpoints being deleted still hold them")


def _security_groups(fleet: Fleet) -> list[dict[str, Any]]:
    """The fleet's own groups (tagged with it, or recorded), the instances' first."""
    ec2 = client("ec2", fleet.region)
    found = {g["GroupId"]: g for g in paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=[
        {"Name": f"tag:{naming.TAG_FLEET}", "Values": [fleet.name]}])}
    recorded = [fleet.record.get(k) for k in ("instance_security_group_id", "load_balancer_security_group_id")]
    missing = [str(g) for g in recorded if g and g not in found]
    if missing:
        found |= {g["GroupId"]: g for g in paginate(ec2, "describe_security_groups", "SecurityGroups", Filters=[
            {"Name": "group-id", "Values": missing}])}
    order = {naming.INSTANCE_SECURITY_GROUP: 0, naming.LOAD_BALANCER_SECURITY_GROUP: 1}
    groups = [{**g, "Tags": naming.from_aws_tags(g.get("Tags"))} for g in found.values()]
    return sorted(groups, key=lambda g: (order.get(g["Tags"].get(naming.TAG_COMPONENT, ""), 2), g["GroupId"]))


def _endpoint_group(fleet: Fleet) -> dict[str, Any] | None:
    recorded = next((e["id"] for e in fleet.recorded("security_group")
                     if e.get("name") == naming.ENDPOINT_SECURITY_GROUP_NAME), None)
    if recorded is None:
        return None
    groups = list(paginate(client("ec2", fleet.region), "describe_security_groups", "SecurityGroups",
                           Filters=[{"Name": "group-id", "Values": [recorded]}]))
    return {**groups[0]} if groups else None


def _endpoint_group_rule(fleet: Fleet, deleter: Deleter, group: dict[str, Any], instance_group: str | None) -> None:
    """The shared endpoint group's rule that admits this fleet's instances: it names the instance group, which
    AWS will not delete while another group's rule names it."""
    if not instance_group:
        return
    rules = [r for r in flatten(group.get("IpPermissions", [])) if r.peer == instance_group]
    if not rules:
        return
    ec2 = client("ec2", fleet.region)
    description = ", ".join(r.describe() for r in rules)
    if not _owned(naming.from_aws_tags(group.get("Tags"))):
        deleter.keep("security_group_rule", description, group["GroupId"], NOT_EIPLANES)
        return
    deleter.delete("security_group_rule", description, group["GroupId"], lambda: ec2.revoke_security_group_ingress(
        GroupId=group["GroupId"], IpPermissions=[r.as_permission() for r in rules]),
        reason=f"in the shared {naming.ENDPOINT_SECURITY_GROUP_NAME} group")


def _delete_group(ec2: Any, deleter: Deleter, name: str, group_id: str, blocked: list[str]) -> None:
    try:
        deleter.delete("security_group", name, group_id, lambda: ec2.delete_security_group(GroupId=group_id))
    except ClientError as exc:
        if error_code(exc) == "DependencyViolation":
            blocked.append(group_id)
            deleter.keep("security_group", name, group_id, "still in use (DependencyViolation): retried")
        elif error_code(exc) == "InvalidGroup.NotFound":
            deleter.absent("security_group", name, group_id)
        else:
            raise


# --- IAM --------------------------------------------------------------------------------------

def iam(fleet: Fleet, deleter: Deleter) -> None:
    """The instance profile (its role removed first), then the role (its inline policies deleted and managed
    ones detached first: AWS refuses to delete a role that has any). Only at eiplane's path."""
    client_ = client("iam", fleet.region)
    name = naming.instance_profile_name(fleet.name)
    profile = get_or_none(client_.get_instance_profile, "InstanceProfile", InstanceProfileName=name)
    if profile is None:
        deleter.absent("instance_profile", name, name)
    elif profile.get("Path") != naming.IAM_PATH:
        deleter.keep("instance_profile", name, profile["Arn"], f"at path {profile.get('Path')}, not eiplane's "
                     f"{naming.IAM_PATH}")
    else:
        def delete_profile() -> None:
            for role in profile.get("Roles", []):
                client_.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
            client_.delete_instance_profile(InstanceProfileName=name)
        deleter.delete("instance_profile", name, profile["Arn"], delete_profile)
    role_name = naming.instance_role_name(fleet.name)
    role = get_or_none(client_.get_role, "Role", RoleName=role_name)
    if role is None:
        deleter.absent("iam_role", role_name, role_name)
        return
    if role.get("Path") != naming.IAM_PATH:
        deleter.keep("iam_role", role_name, role["Arn"], f"at path {role.get('Path')}, not eiplane's {naming.IAM_PATH}")
        return

    def delete_role() -> None:
        for policy in list(paginate(client_, "list_role_policies", "PolicyNames", RoleName=role_name)):
            client_.delete_role_policy(RoleName=role_name, PolicyName=policy)
        for attached in list(paginate(client_, "list_attached_role_policies", "AttachedPolicies", RoleName=role_name)):
            client_.detach_role_policy(RoleName=role_name, PolicyArn=attached["PolicyArn"])
        client_.delete_role(RoleName=role_name)
    deleter.delete("iam_role", role_name, role["Arn"], delete_role)


# --- artifacts and state ----------------------------------------------------------------------

def artifacts(fleet: Fleet, deleter: Deleter, purge: bool) -> bool:
    """With purge, up to PAGE versions (and delete markers) under fleets/<fleet>/ per call: True while more
    remain. Without, the artifacts stay."""
    settings = get_settings()
    s3 = client("s3", settings.region)
    prefix = naming.artifact_prefix(fleet.name)
    if not purge:
        listed = s3.list_objects_v2(Bucket=settings.artifacts_bucket, Prefix=prefix, MaxKeys=PAGE)
        count = f"{listed.get('KeyCount', 0)}{'+' if listed.get('IsTruncated') else ''} object(s)"
        deleter.keep("artifacts", f"s3://{settings.artifacts_bucket}/{prefix}", count,
                     "kept: models, agent and reports (DeleteFleet with purge_artifacts deletes them)")
        return False
    page = s3.list_object_versions(Bucket=settings.artifacts_bucket, Prefix=prefix, MaxKeys=PAGE)
    versions = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
    where = f"s3://{settings.artifacts_bucket}/{prefix}"
    if not versions:
        deleter.absent("artifacts", where, "0 versions")
        return False

    def delete_versions() -> None:
        for version in versions:  # one call each: DeleteObjects would need Content-MD5 and says less when refused
            s3.delete_object(Bucket=settings.artifacts_bucket, **version)
    truncated = bool(page.get("IsTruncated"))
    deleter.delete("artifacts", where, f"{len(versions)}{'+' if truncated and not deleter.apply else ''} version(s)",
                   delete_versions, reason="every version and delete marker (the bucket is versioned)")
    return truncated and deleter.apply


def state_items(fleet: Fleet, deleter: Deleter) -> bool:
    """Up to PAGE of the fleet's items (slots, prerequisites, decisions) per call: True while more remain.
    Then the lease, and the registry item last, so a failure before it leaves the fleet marked as being
    deleted (refused by ProvisionFleet, skipped by capacity matching) until a re-run finishes."""
    settings = get_settings()
    dynamodb = client("dynamodb", settings.region)
    page = dynamodb.query(TableName=settings.state_table, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": fleet_key(fleet.name, "")["pk"]},
                          ProjectionExpression="pk, sk", Limit=PAGE, ConsistentRead=True)
    keys = [{"pk": i["pk"], "sk": i["sk"]} for i in page["Items"] if i["sk"]["S"] != "LEASE"]
    more = "LastEvaluatedKey" in page
    counts: dict[str, int] = {}
    for key in keys:
        kind = key["sk"]["S"].split("#", 1)[0] + ("#" if "#" in key["sk"]["S"] else "")
        counts[kind] = counts.get(kind, 0) + 1
    def delete_kind(kind: str) -> None:
        for key in keys:
            if key["sk"]["S"].startswith(kind):
                dynamodb.delete_item(TableName=settings.state_table, Key=key)

    for kind, count in sorted(counts.items()):
        deleter.delete("state_items", kind, f"{count}{'+' if more and not deleter.apply else ''} item(s)",
                       functools.partial(delete_kind, kind))
    if more and deleter.apply:
        return True
    if deleter.apply:
        # the lease, if still this deletion's; then the registry item
        try:
            dynamodb.delete_item(TableName=settings.state_table, Key=fleet_key(fleet.name, "LEASE"),
                                 ConditionExpression="attribute_not_exists(pk) OR #owner = :own",
                                 ExpressionAttributeNames={"#owner": "owner"},
                                 ExpressionAttributeValues={":own": {"S": fleet.execution_id}})
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            logger.warning(f"{fleet.name}: the lease is held by another execution by now: left to expire")
    registered = dynamodb.get_item(TableName=settings.state_table, Key=registry_key(fleet.name),
                                   ConsistentRead=True).get("Item")
    if registered is None:
        deleter.absent("registry", fleet.name, "REGISTRY")
    elif "spec" not in registered:  # only this deletion's own mark: the fleet was not registered
        if deleter.apply:
            dynamodb.delete_item(TableName=settings.state_table, Key=registry_key(fleet.name))
        deleter.absent("registry", fleet.name, "REGISTRY", "not registered (the deletion's own mark is removed)")
    else:
        deleter.delete("registry", fleet.name, "REGISTRY", lambda: dynamodb.delete_item(
            TableName=settings.state_table, Key=registry_key(fleet.name)),
            reason="last: until here the fleet stays marked deleting")
    return False
