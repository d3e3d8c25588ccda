"""VPC DNS attributes and the three security groups.

The load balancer's group takes the listener port only from the callers the spec lists (the VPC's
own CIDR blocks if it lists none) and sends only the serving port, into the VPC. The instance
group takes only the serving port, only from the load balancer's group (SSM replaces SSH; the
health checks come from the balancer too), and sends only HTTPS out. The endpoint group, shared
by the fleets of a VPC, takes TCP 443 from fleet instance groups and nothing else. So no rule
anywhere opens ingress to 0.0.0.0/0 or ::/0 (the seed opened 22 and 443 to the world and put
instances and endpoint in one group).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from eiplane import naming
from eiplane.aws import client, error_code, paginate
from eiplane.errors import PrerequisiteConflict
from eiplane.models.prerequisites import Placement
from eiplane.models.spec import FleetSpec
from eiplane.prerequisites.changes import Changes, Reconciler

HTTPS = 443


class Rule(NamedTuple):
    """One permission, flattened: protocol, ports and a single peer (CIDR, group or prefix list)."""

    protocol: str
    from_port: int | None
    to_port: int | None
    peer: str

    def describe(self, direction: str = "ingress") -> str:
        if self.protocol == "-1":
            ports = "all traffic"
        elif self.from_port == self.to_port:
            ports = f"{self.protocol.upper()} {self.from_port}"
        else:
            ports = f"{self.protocol.upper()} {self.from_port}-{self.to_port}"
        return f"{ports} {'from' if direction == 'ingress' else 'to'} {self.peer}"

    def as_permission(self) -> dict[str, Any]:
        permission: dict[str, Any] = {"IpProtocol": self.protocol}
        if self.protocol != "-1":
            permission.update(FromPort=self.from_port, ToPort=self.to_port)
        if self.peer.startswith("sg-"):
            permission["UserIdGroupPairs"] = [{"GroupId": self.peer}]
        elif self.peer.startswith("pl-"):
            permission["PrefixListIds"] = [{"PrefixListId": self.peer}]
        elif ":" in self.peer:
            permission["Ipv6Ranges"] = [{"CidrIpv6": self.peer}]
        else:
            permission["IpRanges"] = [{"CidrIp": self.peer}]
        return permission


def flatten(permissions: list[dict[str, Any]]) -> set[Rule]:
    rules = set()
    for p in permissions:
        protocol = str(p["IpProtocol"])
        ports = (p.get("FromPort"), p.get("ToPort")) if protocol != "-1" else (None, None)
        peers = ([r["CidrIp"] for r in p.get("IpRanges", [])]
                 + [r["CidrIpv6"] for r in p.get("Ipv6Ranges", [])]
                 + [g["GroupId"] for g in p.get("UserIdGroupPairs", [])]
                 + [pl["PrefixListId"] for pl in p.get("PrefixListIds", [])])
        rules |= {Rule(protocol, ports[0], ports[1], peer) for peer in peers}
    return rules


def opens_to_world(rule: Rule) -> bool:
    return rule.peer in ("0.0.0.0/0", "::/0")


def needs_interface_endpoints(spec: FleetSpec, placement: Placement) -> bool:
    return spec.backend.type == "eia" or bool(placement.private_subnets)


class NetworkGroups(NamedTuple):
    """The groups' ids; None while planning what does not exist yet (and endpoint: when not needed)."""

    instance: str | None
    load_balancer: str | None
    endpoint: str | None


def reconcile_network(spec: FleetSpec, placement: Placement, reconciler: Reconciler) -> NetworkGroups:
    ec2 = client("ec2", spec.region)
    endpoints_needed = needs_interface_endpoints(spec, placement)
    if endpoints_needed:
        _reconcile_vpc_dns(ec2, placement.vpc_id, reconciler)

    serving = spec.serving
    listener, port = serving.effective_listener_port, serving.port
    callers = [*serving.allowed_cidrs, *serving.allowed_security_groups] or placement.vpc_cidrs
    balancer_group = _reconcile_group(
        ec2, reconciler, placement.vpc_id,
        name=naming.load_balancer_security_group_name(spec.name),
        description=f"eiplane fleet {spec.name} load balancer: TCP {listener} from its callers, TCP {port} into the VPC",
        tags=naming.tags_for(naming.LOAD_BALANCER_SECURITY_GROUP, spec),
        find_tags={naming.TAG_COMPONENT: naming.LOAD_BALANCER_SECURITY_GROUP, naming.TAG_FLEET: spec.name},
        desired_ingress=lambda _own: {Rule("tcp", listener, listener, caller) for caller in callers},
        # Requests and health checks go to the instances' serving port: the VPC's blocks, not the
        # instance group (which names this group: a cycle that a new fleet could not create).
        desired_egress={Rule("tcp", port, port, cidr) for cidr in placement.vpc_cidrs},
        keep_ingress=lambda _rule: False,
    )
    instance_group = _reconcile_group(
        ec2, reconciler, placement.vpc_id,
        name=naming.instance_security_group_name(spec.name),
        description=f"eiplane fleet {spec.name} instances: serving port from its load balancer only, HTTPS out",
        tags=naming.tags_for(naming.INSTANCE_SECURITY_GROUP, spec),
        find_tags={naming.TAG_COMPONENT: naming.INSTANCE_SECURITY_GROUP, naming.TAG_FLEET: spec.name},
        # While planning, the balancer's group may not exist yet: name it for the plan.
        desired_ingress=lambda _own: {Rule("tcp", port, port, balancer_group or "sg-(new)")},
        # SSM, S3 and the EI runtime are all HTTPS. IPv4 anywhere, because instances in
        # public subnets reach the regional SSM endpoints over the internet.
        desired_egress={Rule("tcp", HTTPS, HTTPS, "0.0.0.0/0")},
        keep_ingress=lambda _rule: False,
    )
    if not endpoints_needed:
        return NetworkGroups(instance_group, balancer_group, None)

    def endpoint_ingress(_own: str | None) -> set[Rule]:
        # While planning, the instance group may not exist yet: name it for the plan.
        return {Rule("tcp", HTTPS, HTTPS, instance_group or "sg-(new)")}

    endpoint_group = _reconcile_group(
        ec2, reconciler, placement.vpc_id,
        name=naming.ENDPOINT_SECURITY_GROUP_NAME,
        description="eiplane VPC endpoints: HTTPS from eiplane fleet instance groups only",
        tags=naming.tags_for(naming.ENDPOINT_SECURITY_GROUP),
        find_tags={naming.TAG_COMPONENT: naming.ENDPOINT_SECURITY_GROUP},
        desired_ingress=endpoint_ingress,
        desired_egress=set(),  # endpoints answer on the connection; they open none
        # Other fleets of this VPC own their own rules here; keep HTTPS-from-a-group rules.
        keep_ingress=lambda rule: rule.peer.startswith("sg-") and rule[:3] == ("tcp", HTTPS, HTTPS),
    )
    return NetworkGroups(instance_group, balancer_group, endpoint_group)


def _reconcile_vpc_dns(ec2: Any, vpc_id: str, reconciler: Reconciler) -> None:
    changes = reconciler.begin()
    # Private DNS on interface endpoints needs both attributes on (support first).
    for attribute in ("enableDnsSupport", "enableDnsHostnames"):
        key = attribute[0].upper() + attribute[1:]
        value = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"]
        if not value:
            changes.make(f"turn on {attribute}",
                         functools.partial(ec2.modify_vpc_attribute, VpcId=vpc_id, **{key: {"Value": True}}))
    reconciler.done("vpc_dns", f"DNS support and hostnames of {vpc_id}", vpc_id, changes)


def _find_group(ec2: Any, vpc_id: str, name: str, find_tags: dict[str, str]) -> dict[str, Any] | None:
    tag_filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in find_tags.items()]
    for filters in (tag_filters, [{"Name": "group-name", "Values": [name]}]):
        groups = list(paginate(ec2, "describe_security_groups", "SecurityGroups",
                               Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, *filters]))
        if groups:
            return sorted(groups, key=lambda g: g["GroupId"])[0]
    return None


def _reconcile_group(ec2: Any, reconciler: Reconciler, vpc_id: str, *, name: str, description: str,
                     tags: dict[str, str], find_tags: dict[str, str], desired_ingress: Any,
                     desired_egress: set[Rule], keep_ingress: Any) -> str | None:
    changes = reconciler.begin()
    group = _find_group(ec2, vpc_id, name, find_tags)
    created = group is None
    if group is None:
        group_id = changes.make(f"create security group {name}",
                                lambda: _create_group(ec2, vpc_id, name, description, tags))
        # A new group comes with one rule: all traffic out to 0.0.0.0/0.
        current_ingress: set[Rule] = set()
        current_egress = {Rule("-1", None, None, "0.0.0.0/0")}
    else:
        group_id = group["GroupId"]
        current_tags = naming.from_aws_tags(group.get("Tags"))
        if current_tags.get(naming.TAG_MANAGED_BY) != naming.PROJECT:
            # Found by name only. eiplane changes (and tags) only the groups that carry its tag: a group
            # anyone can make eiplane's could then be opened by it.
            raise PrerequisiteConflict(
                f"security group {group_id} in {vpc_id} is named {name} but is not eiplane's (no "
                f"{naming.TAG_MANAGED_BY}={naming.PROJECT} tag): eiplane does not change a group it does not own. "
                f"Delete it, or hand it over by tagging it {naming.TAG_MANAGED_BY}={naming.PROJECT}")
        missing_tags = {k: v for k, v in tags.items() if current_tags.get(k) != v}
        if missing_tags:
            changes.make(f"tag {', '.join(sorted(missing_tags))}", lambda: ec2.create_tags(
                Resources=[group_id], Tags=naming.as_aws_tags(missing_tags)))
        current_ingress = flatten(group.get("IpPermissions", []))
        current_egress = flatten(group.get("IpPermissionsEgress", []))

    wanted_ingress = desired_ingress(group_id)
    extra_ingress = _ordered(r for r in current_ingress - wanted_ingress if not keep_ingress(r))
    _change_rules(ec2, changes, group_id, "revoke", "ingress", extra_ingress)
    _change_rules(ec2, changes, group_id, "allow", "ingress", _ordered(wanted_ingress - current_ingress))
    _change_rules(ec2, changes, group_id, "allow", "egress", _ordered(desired_egress - current_egress))
    _change_rules(ec2, changes, group_id, "revoke", "egress", _ordered(current_egress - desired_egress))

    reconciler.done("security_group", name, group_id, changes, created=created)
    return group_id


def _ordered(rules: Any) -> list[Rule]:
    return sorted(rules, key=Rule.describe)


def _create_group(ec2: Any, vpc_id: str, name: str, description: str, tags: dict[str, str]) -> str:
    try:
        return str(ec2.create_security_group(
            GroupName=name, Description=description, VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": naming.as_aws_tags(tags)}],
        )["GroupId"])
    except ClientError as exc:
        # Another execution created it between our look-up and this call: use theirs.
        if error_code(exc) != "InvalidGroup.Duplicate":
            raise
        found = _find_group(ec2, vpc_id, name, {})
        if found is None:
            raise
        return str(found["GroupId"])


def _change_rules(ec2: Any, changes: Changes, group_id: str | None, verb: str, direction: str,
                  rules: list[Rule]) -> None:
    """One Authorize/Revoke call for all the rules of one kind; `verb` is "allow" or "revoke"."""
    if not rules:
        return
    call = getattr(ec2, f"{'authorize' if verb == 'allow' else 'revoke'}_security_group_{direction}")
    what = ", ".join(r.describe(direction) for r in rules)
    changes.make(f"{verb} {direction} {what}",
                 lambda: call(GroupId=group_id, IpPermissions=[r.as_permission() for r in rules]))
