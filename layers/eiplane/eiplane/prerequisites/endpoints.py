"""VPC endpoints: the Elastic Inference runtime (eia), SSM and S3 (subnets without internet).

Endpoints are VPC-scoped: one interface endpoint per service per VPC can own the private DNS
name, so an existing one, eiplane's or not, is reused and repaired (missing subnet, security
group or private DNS), never duplicated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from eiplane import backends, naming
from eiplane.aws import client, paginate
from eiplane.errors import BackendUnavailable, PrerequisiteConflict, PrerequisiteNotReady
from eiplane.models.prerequisites import Placement, SubnetPlacement
from eiplane.models.spec import FleetSpec
from eiplane.prerequisites.changes import Reconciler

# An endpoint in one of these states is gone: it is not reused, and it bills no more.
GONE_STATES = {"deleted", "deleting", "rejected", "failed", "expired"}


@dataclass(frozen=True)
class WantedEndpoint:
    service: str  # short name, e.g. "ssm"
    interface: bool
    subnets: tuple[str, ...] = ()  # interface: one per availability zone
    route_tables: tuple[str, ...] = ()  # gateway


def one_subnet_per_zone(subnets: list[SubnetPlacement], zones: set[str] | None = None) -> tuple[str, ...]:
    """An interface endpoint takes at most one subnet per availability zone."""
    chosen: dict[str, str] = {}
    for subnet in subnets:
        if zones is None or subnet.availability_zone in zones:
            chosen.setdefault(subnet.availability_zone, subnet.subnet_id)
    return tuple(chosen[z] for z in sorted(chosen))


def elastic_inference_zones(spec: FleetSpec, placement: Placement) -> set[str]:
    """Zones of the fleet's subnets where the EI runtime endpoint service is offered.
    Raises BackendUnavailable, naming the alternatives, where there are none."""
    ec2 = client("ec2", spec.region)
    service = naming.endpoint_service_name(spec.region, backends.ELASTIC_INFERENCE_SERVICE)
    # ServiceNames=, not a service-name Filter (which moto 5.2.5 answers with an HTTP 500).
    details = [d for d in paginate(ec2, "describe_vpc_endpoint_services", "ServiceDetails") if
               d["ServiceName"] == service]
    if not details:
        raise BackendUnavailable(
            f"Elastic Inference is not offered in {spec.region} ({service} is not an endpoint service "
            f"there): {backends.ALTERNATIVES_TO_EIA}"
        )
    offered = set(details[0].get("AvailabilityZones", [])) & set(placement.availability_zones)
    if not offered:
        raise BackendUnavailable(
            f"Elastic Inference is offered in {spec.region} only in "
            f"{', '.join(sorted(details[0].get('AvailabilityZones', [])))}, none of the fleet's zones "
            f"({', '.join(placement.availability_zones)}): choose subnets there, or "
            + backends.ALTERNATIVES_TO_EIA
        )
    return offered


def wanted_endpoints(spec: FleetSpec, placement: Placement, ei_zones: set[str] | None) -> list[WantedEndpoint]:
    wanted = []
    if spec.backend.type == "eia":
        wanted.append(WantedEndpoint(backends.ELASTIC_INFERENCE_SERVICE, True,
                                     subnets=one_subnet_per_zone(placement.subnets, ei_zones)))
    private = placement.private_subnets
    if private:
        zones = one_subnet_per_zone(placement.subnets)
        wanted += [WantedEndpoint(s, True, subnets=zones) for s in backends.SSM_INTERFACE_SERVICES]
        wanted.append(WantedEndpoint("s3", False,
                                     route_tables=tuple(sorted({s.route_table_id for s in private}))))
    return wanted


def reconcile_endpoints(spec: FleetSpec, placement: Placement, endpoint_group: str | None,
                        ei_zones: set[str] | None, reconciler: Reconciler) -> list[str]:
    ec2 = client("ec2", spec.region)
    existing = [e for e in paginate(ec2, "describe_vpc_endpoints", "VpcEndpoints",
                                    Filters=[{"Name": "vpc-id", "Values": [placement.vpc_id]}])
                if e["State"].lower() not in GONE_STATES]
    subnet_zone = _subnet_zones(ec2, existing, placement)
    ids = []
    for wanted in wanted_endpoints(spec, placement, ei_zones):
        endpoint_id = _reconcile_endpoint(ec2, spec, placement, wanted, endpoint_group, existing,
                                          subnet_zone, reconciler)
        if endpoint_id:
            ids.append(endpoint_id)
    return ids


def _subnet_zones(ec2: Any, endpoints: list[dict[str, Any]], placement: Placement) -> dict[str, str]:
    zones = {s.subnet_id: s.availability_zone for s in placement.subnets}
    others = sorted({s for e in endpoints for s in e.get("SubnetIds", []) if s not in zones})
    if others:
        for subnet in paginate(ec2, "describe_subnets", "Subnets", Filters=[{"Name": "subnet-id", "Values": others}]):
            zones[subnet["SubnetId"]] = subnet["AvailabilityZone"]
    return zones


def _reconcile_endpoint(ec2: Any, spec: FleetSpec, placement: Placement, wanted: WantedEndpoint,
                        endpoint_group: str | None, existing: list[dict[str, Any]],
                        subnet_zone: dict[str, str], reconciler: Reconciler) -> str | None:
    service_name = naming.endpoint_service_name(spec.region, wanted.service)
    kind_word = "interface" if wanted.interface else "gateway"
    label = f"{service_name} ({kind_word})"
    changes = reconciler.begin()
    matches = sorted((e for e in existing if e["ServiceName"] == service_name),
                     key=lambda e: (naming.TAG_MANAGED_BY not in naming.from_aws_tags(e.get("Tags")),
                                    e["VpcEndpointId"]))
    if not matches:
        tags = naming.tags_for(naming.VPC_ENDPOINT)
        request: dict[str, Any] = {
            "VpcEndpointType": "Interface" if wanted.interface else "Gateway",
            "VpcId": placement.vpc_id,
            "ServiceName": service_name,
            "TagSpecifications": [{"ResourceType": "vpc-endpoint", "Tags": naming.as_aws_tags(tags)}],
            # Same request, same token: a retried step cannot create a second endpoint.
            "ClientToken": _client_token(placement.vpc_id, service_name),
        }
        if wanted.interface:
            request.update(SubnetIds=list(wanted.subnets), SecurityGroupIds=[endpoint_group or "sg-(new)"],
                           PrivateDnsEnabled=True)
        else:
            request.update(RouteTableIds=list(wanted.route_tables))
        endpoint = changes.make(f"create {kind_word} endpoint {service_name}",
                                lambda: ec2.create_vpc_endpoint(**request)["VpcEndpoint"])
        endpoint_id = endpoint["VpcEndpointId"] if endpoint else None
        reconciler.done("vpc_endpoint", label, endpoint_id, changes, created=True, billable=wanted.interface)
        return endpoint_id

    endpoint = matches[0]
    endpoint_id = endpoint["VpcEndpointId"]
    modify: dict[str, Any] = {}
    repairs: list[str] = []
    if wanted.interface:
        covered = {subnet_zone.get(s) for s in endpoint.get("SubnetIds", [])}
        add_subnets = [s for s in wanted.subnets if subnet_zone[s] not in covered]
        if add_subnets:
            modify["AddSubnetIds"] = add_subnets
            repairs.append(f"add subnets {', '.join(add_subnets)}")
        groups = {g["GroupId"] for g in endpoint.get("Groups", [])}
        if endpoint_group and endpoint_group not in groups:
            modify["AddSecurityGroupIds"] = [endpoint_group]
            repairs.append(f"add security group {endpoint_group}")
        if not endpoint.get("PrivateDnsEnabled"):
            modify["PrivateDnsEnabled"] = True
            repairs.append("turn on private DNS")
    else:
        missing_tables = sorted(set(wanted.route_tables) - set(endpoint.get("RouteTableIds", [])))
        if missing_tables:
            modify["AddRouteTableIds"] = missing_tables
            repairs.append(f"add route tables {', '.join(missing_tables)}")
    if modify and naming.from_aws_tags(endpoint.get("Tags")).get(naming.TAG_MANAGED_BY) != naming.PROJECT:
        # An endpoint eiplane did not create (the seed's, say) is used as it is, never changed.
        raise PrerequisiteConflict(
            f"VPC endpoint {endpoint_id} ({label}) in {placement.vpc_id} is not eiplane's (no "
            f"{naming.TAG_MANAGED_BY}={naming.PROJECT} tag) and the fleet needs it changed: {'; '.join(repairs)}. "
            f"Make these changes yourself, or hand the endpoint over by tagging it "
            f"{naming.TAG_MANAGED_BY}={naming.PROJECT} and run again")
    if modify:
        # One ModifyVpcEndpoint call carries every repair of this endpoint.
        changes.make("; ".join(repairs), lambda: ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, **modify))
    reconciler.done("vpc_endpoint", label, endpoint_id, changes, billable=wanted.interface)
    return endpoint_id


def _client_token(vpc_id: str, service_name: str) -> str:
    return "eiplane-" + hashlib.sha256(f"{vpc_id}/{service_name}".encode()).hexdigest()[:40]


def check_available(region: str, endpoint_ids: list[str]) -> list[str]:
    """Raise PrerequisiteNotReady until every endpoint is available; the ASL retries."""
    if not endpoint_ids:
        return []
    ec2 = client("ec2", region)
    endpoints = list(paginate(ec2, "describe_vpc_endpoints", "VpcEndpoints", VpcEndpointIds=endpoint_ids))
    waiting = sorted(f"{e['VpcEndpointId']} ({e['State']})" for e in endpoints
                     if e["State"].lower() != "available")
    if waiting:
        raise PrerequisiteNotReady(f"VPC endpoints not available yet: {', '.join(waiting)}")
    return sorted(endpoint_ids)
