"""`eiplane fleet list`: every registered fleet, what it runs, where it answers and what it costs an hour.

Reads the stack's state table as the operator (the registry, each fleet's slots and prerequisites
record) and asks EC2, once per region, for the interface endpoints those records name (their zones
are what bills). The cost is an estimate at the list prices of eiplane.cli.prices (eiplane.cli.costs
says what it counts).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from botocore.client import BaseClient
from pydantic import BaseModel, ConfigDict

from eiplane.cli.commands import CommandError, aws_session, write_json
from eiplane.cli.costs import (
    CostEstimate,
    EndpointUse,
    billing_instance_types,
    describe_cost,
    endpoint_sharing,
    estimate,
)
from eiplane.cli.prices import PRICES, PriceTable
from eiplane.cli.serving import LOCAL_ONLY_ONE_COMMAND, _table
from eiplane.models.launch import IN_PROGRESS
from eiplane.prerequisites.endpoints import GONE_STATES
from eiplane.state import read_prerequisites, read_registrations, read_slots


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Model):
    url: str
    dns_name: str
    port: int


class FleetModel(_Model):
    name: str
    version: str


class FleetListing(_Model):
    fleet: str
    backend: str | None
    region: str | None
    model: FleetModel | None  # the spec's: each slot's own version is in `fleet status`
    desired: int | None
    in_service: int
    warm: int
    launching: int  # launching or being validated
    draining: int
    endpoint: Endpoint | None
    cost: CostEstimate


class PriceBasis(_Model):
    as_of: str
    currency: str
    sources: dict[str, str]
    not_included: tuple[str, ...]


class FleetList(_Model):
    prices: PriceBasis
    fleets: list[FleetListing]
    total_hourly_usd: float | None  # the fleets' sum; None if any fleet's is unknown
    unknown_fleets: list[str]


def endpoint_of(url: str | None) -> Endpoint | None:
    """The balancer's DNS name and listener port, from the URL the prerequisites stage recorded."""
    if not url:
        return None
    parts = urlsplit(url)
    return Endpoint(url=url, dns_name=parts.hostname or url, port=parts.port or (443 if parts.scheme == "https" else 80))


def interface_endpoint_ids(prerequisites: Mapping[str, Any]) -> list[str]:
    """The VPC endpoints the fleet's prerequisites stage found or created (its record's inventory)."""
    return sorted({str(item["id"]) for item in prerequisites.get("inventory") or []
                   if item.get("kind") == "vpc_endpoint" and item.get("id")})


def collect(dynamodb: BaseClient, table: str, ec2_in: Callable[[str], BaseClient],
            prices: PriceTable = PRICES) -> FleetList:
    registrations = read_registrations(dynamodb, table)
    slots = {name: read_slots(dynamodb, table, name) for name in registrations}
    prerequisites = {name: read_prerequisites(dynamodb, table, name) or {} for name in registrations}
    specs = {name: record.get("spec") or {} for name, record in registrations.items()}
    regions = {name: specs[name].get("region") or prerequisites[name].get("region") for name in registrations}
    endpoint_ids = {name: interface_endpoint_ids(prerequisites[name]) for name in registrations}
    sharing = endpoint_sharing(endpoint_ids)
    described = _describe_endpoints(ec2_in, {name: (regions[name], prerequisites[name].get("vpc_id"))
                                             for name in registrations if endpoint_ids[name]})
    fleets = []
    for name, registration in registrations.items():
        spec, records = specs[name], slots[name]
        backend = spec.get("backend") or {}
        states = [record.get("state") for record in records.values()]
        types, unpriced = billing_instance_types(records)
        endpoints = [EndpointUse(endpoint_id=i, service=_short_service(described[i]["ServiceName"]),
                                 zones=len(described[i].get("SubnetIds") or []), shared_by=sharing[i])
                     for i in endpoint_ids[name] if i in described]
        region = regions[name]
        if region:
            cost = estimate(str(region), types, backend.get("accelerator") if backend.get("type") == "eia" else None,
                            endpoints, bool(prerequisites[name].get("load_balancer_arn")), prices,
                            warm=states.count("warm"), unknown=unpriced)
        else:  # a registration always carries its spec's region; a hand-edited record may not
            cost = CostEstimate(hourly_usd=None, unknown=["no region recorded"], lines=[], not_priced=[])
        model = spec.get("model") or {}
        fleets.append(FleetListing(
            fleet=name, backend=backend.get("type") or prerequisites[name].get("backend"), region=region,
            model=FleetModel(name=model["name"], version=str(model["version"])) if model.get("name") else None,
            desired=registration.get("desired"), in_service=states.count("in_service"), warm=states.count("warm"),
            launching=sum(state in IN_PROGRESS for state in states), draining=states.count("draining"),
            endpoint=endpoint_of(prerequisites[name].get("endpoint_url")), cost=cost))
    unknown = [f.fleet for f in fleets if f.cost.hourly_usd is None]
    total = None if unknown else sum(f.cost.hourly_usd or 0.0 for f in fleets)
    return FleetList(prices=PriceBasis(as_of=prices.as_of, currency=prices.currency, sources=prices.sources,
                                       not_included=prices.not_included),
                     fleets=fleets, total_hourly_usd=total, unknown_fleets=unknown)


def _short_service(service_name: str) -> str:
    """com.amazonaws.<region>.elastic-inference.runtime -> elastic-inference.runtime (as backends.py names them)."""
    parts = service_name.split(".")
    return ".".join(parts[3:]) if service_name.startswith("com.amazonaws.") and len(parts) > 3 else service_name


def _describe_endpoints(ec2_in: Callable[[str], BaseClient],
                        where: Mapping[str, tuple[str | None, str | None]]) -> dict[str, dict[str, Any]]:
    """The interface endpoints of the fleets' VPCs that still exist, by id: one DescribeVpcEndpoints per
    region, filtered by VPC (an endpoint id the account no longer has is an error when asked by id)."""
    vpcs_by_region: dict[str, set[str]] = {}
    for region, vpc in where.values():
        if region and vpc:
            vpcs_by_region.setdefault(region, set()).add(vpc)
    found: dict[str, dict[str, Any]] = {}
    for region, vpcs in sorted(vpcs_by_region.items()):
        pages = ec2_in(region).get_paginator("describe_vpc_endpoints").paginate(
            Filters=[{"Name": "vpc-id", "Values": sorted(vpcs)}])
        for endpoint in (e for page in pages for e in page["VpcEndpoints"]):
            if endpoint.get("VpcEndpointType") == "Interface" and endpoint["State"].lower() not in GONE_STATES:
                found[endpoint["VpcEndpointId"]] = endpoint
    return found



def render(listing: FleetList) -> list[str]:
    """The human table."""
    basis = f"list prices as of {listing.prices.as_of} (eiplane/cli/prices.py)"
    if not listing.fleets:
        return [f"no fleets in this stack's state table (`eiplane fleet apply SPEC` provisions one); {basis}"]
    rows = [("fleet", "backend", "region", "model", "desired", "in service", "warm", "endpoint", "$/hour")]
    for fleet in listing.fleets:
        rows.append((fleet.fleet, fleet.backend or "-", fleet.region or "-",
                     f"{fleet.model.name} {fleet.model.version}" if fleet.model else "-",
                     "-" if fleet.desired is None else str(fleet.desired),
                     str(fleet.in_service) + (f" (+{fleet.launching} launching)" if fleet.launching else "")
                     + (f" (+{fleet.draining} draining)" if fleet.draining else ""),
                     str(fleet.warm),
                     f"{fleet.endpoint.dns_name}:{fleet.endpoint.port}" if fleet.endpoint else "-",
                     describe_cost(fleet.cost)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    total = (f"${listing.total_hourly_usd:,.4f} an hour" if listing.total_hourly_usd is not None else
             f"unknown (no list price for part of {', '.join(listing.unknown_fleets)})")
    lines.append(f"{len(listing.fleets)} fleet(s), {total}: estimated from {basis}")
    lines += textwrap.wrap(
        "counted: running instances (launching, in service, draining) at the type each was launched as, EI "
        "accelerators, interface endpoint zone-hours (an endpoint shared by fleets split evenly among them), one "
        "load balancer hour each; not included: " + "; ".join(listing.prices.not_included),
        width=120, initial_indent="  ", subsequent_indent="  ")
    return lines


def fleet_list(args: argparse.Namespace) -> int:
    if args.local:
        raise CommandError(LOCAL_ONLY_ONE_COMMAND)
    session = aws_session(args.region, args.endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=args.endpoint_url)
    listing = collect(dynamodb, _table(session, dynamodb, args),
                      lambda region: session.client("ec2", region_name=region, endpoint_url=args.endpoint_url))
    document = listing.model_dump(mode="json")
    if args.json == "-":
        print(json.dumps(document, indent=2))
        return 0
    print("\n".join(render(listing)))
    if args.json:
        write_json(args.json, document)
    return 0
