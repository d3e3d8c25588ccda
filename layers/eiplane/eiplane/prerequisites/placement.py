"""The first state: validate the spec, then check what it names (its image, the region the fleet
already runs in) and resolve where the fleet runs. Read-only: every problem is an InvalidFleetSpec
raised before anything exists."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from eiplane import backends
from eiplane.aws import aws_errors, client, error_code, paginate
from eiplane.errors import BackendUnavailable, FleetBusy, InvalidFleetSpec
from eiplane.models.prerequisites import Placement, SubnetPlacement, ValidatedFleet
from eiplane.models.spec import FleetSpec, looks_like_ami_id, parse_fleet_spec
from eiplane.observability import logger
from eiplane.settings import get_settings
from eiplane.state import fleet_key, registry_key

# A 0.0.0.0/0 route through one of these reaches the internet (and so the public SSM and
# S3 endpoints); anything else, or none, means the subnet needs VPC endpoints.
_INTERNET_TARGETS = ("GatewayId", "NatGatewayId", "TransitGatewayId", "NetworkInterfaceId", "InstanceId")


def validate_fleet(raw_spec: Any) -> ValidatedFleet:
    spec = parse_fleet_spec(raw_spec)
    if spec.backend.type == "eia" and get_settings().runtime == "aws":
        raise BackendUnavailable(
            "backend 'eia' (Amazon Elastic Inference) is no longer available from AWS: "
            + backends.ALTERNATIVES_TO_EIA
            + ". The eia backend runs only on the embedded AWS (eiplane local)."
        )
    with aws_errors():
        refuse_if_deleting(spec.name)
        problems = region_problems(spec) + image_problems(spec)
        try:
            placement = resolve_placement(spec)
        except InvalidFleetSpec as exc:
            raise InvalidFleetSpec(problems + exc.problems) from None
    if problems:
        raise InvalidFleetSpec(problems)
    logger.info(f"fleet spec accepted: {spec.name} ({spec.backend.type}) in {placement.vpc_id}", extra={
        "fleet": spec.name, "backend": spec.backend.type, "instance_types": spec.backend.instance_types,
        "subnets": [s.subnet_id for s in placement.subnets],
        "private_subnets": [s.subnet_id for s in placement.private_subnets]})
    return ValidatedFleet(spec=spec, placement=placement)


def refuse_if_deleting(fleet: str) -> None:
    """A fleet that DeleteFleet has marked is not provisioned again (nor scaled out) until that deletion
    has removed its registry item: what this execution created would be left behind."""
    settings = get_settings()
    item = client("dynamodb", settings.region).get_item(
        TableName=settings.state_table, Key=registry_key(fleet), ConsistentRead=True).get("Item") or {}
    if item.get("status", {}).get("S") == "deleting":
        by = item.get("deleting_by", {}).get("S", "unknown")
        raise FleetBusy(f"fleet {fleet} is being deleted (by execution {by}): apply it again once that deletion "
                        "has finished, or re-run the deletion if it failed")


def region_problems(spec: FleetSpec) -> list[str]:
    """State is keyed by the fleet's name alone, so the same name applied in another region would
    orphan the instances of the first: the fleet's registry item (what ProvisionFleet applied) and
    its prerequisites record (written before any instance exists) say where it runs."""
    settings = get_settings()
    dynamodb = client("dynamodb", settings.region)
    for key, verb, region_of in (
        (registry_key(spec.name), "registered", _registered_region),
        (fleet_key(spec.name, "PREREQUISITES"), "recorded", _recorded_region),
    ):
        item = dynamodb.get_item(TableName=settings.state_table, Key=key, ConsistentRead=True).get("Item") or {}
        region = region_of(item)
        if region is not None and region != spec.region:
            by = item.get(f"{verb}_by", {}).get("S", "unknown")
            return [f"region: fleet {spec.name} runs in {region} ({verb} by execution {by}); "
                    "a fleet cannot move regions: delete it there first, or give this one another name"]
    return []


def _registered_region(item: dict[str, Any]) -> str | None:
    try:
        region = json.loads(item["spec"]["S"])["region"]
    except (KeyError, TypeError, ValueError):
        return None
    return region if isinstance(region, str) else None


def _recorded_region(item: dict[str, Any]) -> str | None:
    region = item.get("region", {}).get("S")
    return region if isinstance(region, str) else None


def image_problems(spec: FleetSpec) -> list[str]:
    """The backend's image parameter exists, holds an AMI id, and that image exists: what PlanLaunch
    needs, checked before anything is created. The value is never quoted unless it is an AMI id (a
    parameter of the account may hold anything)."""
    parameter = spec.backend.resolved_image_parameter
    named = f"backend.image_parameter: SSM parameter {parameter}" + (
        "" if spec.backend.image_parameter else f" (the {spec.backend.type} backend's default)")
    try:
        value = client("ssm", spec.region).get_parameter(Name=parameter)["Parameter"].get("Value")
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return [f"{named} does not exist in {spec.region}: AWS retires framework-versioned image names; "
                    "set backend.image_parameter to a current one"]
        raise
    if not looks_like_ami_id(value):
        return [f"{named} does not hold an AMI id ('ami-' and hex digits); its value is not shown"]
    try:
        images = client("ec2", spec.region).describe_images(ImageIds=[value])["Images"]
    except ClientError as exc:
        if not error_code(exc).startswith("InvalidAMIID."):
            raise
        images = []
    if not images:
        return [f"{named} names {value}, which does not exist in {spec.region} (or is not shared with this account)"]
    state = images[0].get("State", "available")
    if state != "available":
        return [f"{named} names {value}, which is {state}, not available"]
    return []


def resolve_placement(spec: FleetSpec) -> Placement:
    ec2 = client("ec2", spec.region)
    network = spec.network
    problems: list[str] = []

    if network.vpc_id is None and not network.subnet_ids:
        default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        if not default:
            raise InvalidFleetSpec([
                f"network: region {spec.region} has no default VPC; give network.vpc_id and network.subnet_ids"
            ])
        vpc_id = default[0]["VpcId"]
        subnets = list(paginate(ec2, "describe_subnets", "Subnets", Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "default-for-az", "Values": ["true"]}]))
        if not subnets:
            raise InvalidFleetSpec([f"network: the default VPC {vpc_id} has no default subnets"])
    else:
        # A filter, not SubnetIds=: an unknown id then is simply absent, so every missing
        # subnet can be named at once instead of the first one failing the call.
        subnets = list(paginate(ec2, "describe_subnets", "Subnets", Filters=[
            {"Name": "subnet-id", "Values": list(network.subnet_ids)}]))
        known = {s["SubnetId"] for s in subnets}
        problems += [f"network.subnet_ids: {s} does not exist in {spec.region}"
                     for s in network.subnet_ids if s not in known]
        vpc_ids = sorted({s["VpcId"] for s in subnets})
        vpc_id = network.vpc_id or (vpc_ids[0] if vpc_ids else "")
        if network.vpc_id:
            found = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [network.vpc_id]}])["Vpcs"]
            if not found:
                problems.append(f"network.vpc_id: {network.vpc_id} does not exist in {spec.region}")
        problems += [f"network.subnet_ids: {s['SubnetId']} is in {s['VpcId']}, not {vpc_id}"
                     for s in subnets if vpc_id and s["VpcId"] != vpc_id]
    subnets.sort(key=lambda s: (s["AvailabilityZone"], s["SubnetId"]))

    zones = sorted({s["AvailabilityZone"] for s in subnets})
    problems += _instance_type_problems(spec, zones)
    if subnets and len(zones) < 2:
        problems.append(f"network.subnet_ids: the fleet's load balancer needs subnets in at least two availability zones "
                        f"(these are all in {', '.join(zones)})")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"] if vpc_id else []
    vpc_cidrs = sorted({a["CidrBlock"] for v in vpcs for a in v.get("CidrBlockAssociationSet", [])
                        if a.get("CidrBlockState", {}).get("State", "associated") == "associated"}
                       | {v["CidrBlock"] for v in vpcs if v.get("CidrBlock")})
    problems += _caller_group_problems(ec2, spec, vpc_id)
    if problems:
        raise InvalidFleetSpec(problems)

    route_tables = _route_tables_by_subnet(spec.region, vpc_id)
    return Placement(
        vpc_id=vpc_id,
        default_vpc=network.vpc_id is None and not network.subnet_ids,
        vpc_cidrs=vpc_cidrs,
        subnets=[
            SubnetPlacement(
                subnet_id=s["SubnetId"],
                availability_zone=s["AvailabilityZone"],
                route_table_id=route_tables[s["SubnetId"]]["RouteTableId"],
                internet_route=has_internet_route(route_tables[s["SubnetId"]]),
            )
            for s in subnets
        ],
    )


def _caller_group_problems(ec2: Any, spec: FleetSpec, vpc_id: str) -> list[str]:
    """serving.allowed_security_groups must be groups of the fleet's VPC: a rule can name a group
    of another VPC only across a peering, which an internal load balancer's callers do not use."""
    wanted = list(spec.serving.allowed_security_groups)
    if not wanted or not vpc_id:
        return []
    found = {g["GroupId"]: g["VpcId"] for g in paginate(ec2, "describe_security_groups", "SecurityGroups",
                                                         Filters=[{"Name": "group-id", "Values": wanted}])}
    return [f"serving.allowed_security_groups: {g} does not exist in {spec.region}" if g not in found else
            f"serving.allowed_security_groups: {g} is in {found[g]}, not the fleet's VPC {vpc_id}"
            for g in wanted if found.get(g) != vpc_id]


def offered_zones(spec: FleetSpec, zones: list[str]) -> dict[str, set[str]]:
    """For each of the backend's instance types, the zones (of those given) that offer it."""
    offered: dict[str, set[str]] = {}
    for offering in paginate(client("ec2", spec.region), "describe_instance_type_offerings", "InstanceTypeOfferings",
                             LocationType="availability-zone",
                             Filters=[{"Name": "instance-type", "Values": spec.backend.instance_types},
                                      {"Name": "location", "Values": zones}]):
        offered.setdefault(offering["InstanceType"], set()).add(offering["Location"])
    return offered


def _instance_type_problems(spec: FleetSpec, zones: list[str]) -> list[str]:
    if not zones:
        return []
    offered = offered_zones(spec, zones)
    return [
        f"backend.instance_type: {t} is not offered in the fleet's availability zones ({', '.join(zones)})"
        for t in spec.backend.instance_types if not offered.get(t)
    ]


def _route_tables_by_subnet(region: str, vpc_id: str) -> dict[str, dict[str, Any]]:
    """Each subnet's route table: its explicit association, else the VPC's main table."""
    ec2 = client("ec2", region)
    tables = list(paginate(ec2, "describe_route_tables", "RouteTables",
                           Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]))
    main = next(t for t in tables if any(a.get("Main") for a in t.get("Associations", [])))
    by_subnet: dict[str, dict[str, Any]] = {}
    for table in tables:
        for association in table.get("Associations", []):
            if association.get("SubnetId"):
                by_subnet[association["SubnetId"]] = table
    subnets = paginate(ec2, "describe_subnets", "Subnets", Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    return {s["SubnetId"]: by_subnet.get(s["SubnetId"], main) for s in subnets}


def has_internet_route(route_table: dict[str, Any]) -> bool:
    for route in route_table.get("Routes", []):
        if route.get("DestinationCidrBlock") != "0.0.0.0/0" or route.get("State") == "blackhole":
            continue
        gateway = route.get("GatewayId", "")
        if gateway.startswith("igw-") or any(route.get(k) for k in _INTERNET_TARGETS if k != "GatewayId"):
            return True
    return False
