"""A fleet's estimated hourly cost at list prices (eiplane.cli.prices): pure functions, no AWS calls.

What is counted, per fleet:
- each instance that bills: a slot launching, being validated, in service or draining (its instance
  runs), at the hourly price of the type it was actually launched as (a slot may have fallen back to
  another allowed type on a capacity error), plus, for eia, the fleet's accelerator per such instance;
- its interface VPC endpoints, per zone-hour. An endpoint belongs to its VPC, and every fleet of that
  VPC that needs the service uses the same one (eiplane.prerequisites.endpoints), so its cost is split
  equally among the listed fleets whose prerequisites name it: the fleets' estimates add up to the
  endpoints' bill, and a fleet alone in its VPC carries all of it. Gateway endpoints (S3) are free;
- one load balancer hour, if the fleet has its balancer.
Warm-pool instances are stopped: they bill their EBS volume only, which is left out for every
instance (the table's `not_included`), so they are counted and named, not priced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from eiplane.cli.prices import PriceTable
from eiplane.models.launch import IN_PROGRESS

# Slot states whose instance runs (eiplane.models.launch.SlotState): what EC2 bills by the hour.
BILLING_STATES = frozenset({*IN_PROGRESS, "in_service", "draining"})


class CostLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: Literal["instance", "accelerator", "interface_endpoint", "load_balancer"]
    what: str  # the instance type, the accelerator, the endpoint's id and service, "application load balancer"
    quantity: float  # instances; zones x this fleet's share of the endpoint; 1 balancer
    unit_usd: float | None  # a price from the table; None: it has none
    hourly_usd: float | None
    unknown: str | None = None  # why there is no price: "no list price for X in Y"


class CostEstimate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hourly_usd: float | None  # None when any line has no price: never a partial sum that looks whole
    unknown: list[str]
    lines: list[CostLine]
    not_priced: list[str]  # what bills but is left out on purpose (the warm pool's volumes)


class EndpointUse(BaseModel):
    """An interface endpoint a fleet uses, as EC2 describes it now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_id: str
    service: str
    zones: int  # an interface endpoint has one network interface (one subnet) per zone: each bills
    shared_by: int  # the listed fleets whose prerequisites name it (>= 1)


def no_price(what: str, region: str) -> str:
    return f"no list price for {what} in {region}"


def billing_instance_types(slots: Mapping[int, Mapping[str, Any]]) -> tuple[Counter[str], list[str]]:
    """The types of the fleet's instances that bill, counted; and why any could not be priced (a billing
    slot whose record names no type)."""
    types: Counter[str] = Counter()
    unknown = []
    for index, record in sorted(slots.items()):
        if record.get("state") not in BILLING_STATES:
            continue
        instance_type = record.get("instance_type")
        if instance_type:
            types[str(instance_type)] += 1
        else:
            unknown.append(f"slot {index} ({record.get('state')}, {record.get('instance_id') or 'no instance'}) "
                           "records no instance type")
    return types, unknown


def endpoint_sharing(endpoints_by_fleet: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """How many of the listed fleets use each endpoint id."""
    counts: Counter[str] = Counter()
    for endpoint_ids in endpoints_by_fleet.values():
        counts.update(set(endpoint_ids))
    return dict(counts)


def estimate(region: str, instance_types: Mapping[str, int], accelerator: str | None,
             endpoints: Iterable[EndpointUse], load_balancer: bool, prices: PriceTable,
             warm: int = 0, unknown: Iterable[str] = ()) -> CostEstimate:
    """The fleet's cost for one hour as it stands. `unknown`: reasons found before pricing (a slot with no type)."""
    table = prices.regions.get(region)
    lines: list[CostLine] = []

    def line(item: Any, what: str, quantity: float, unit: float | None, priced_as: str) -> None:
        lines.append(CostLine(item=item, what=what, quantity=quantity, unit_usd=unit,
                              hourly_usd=None if unit is None else quantity * unit,
                              unknown=no_price(priced_as, region) if unit is None else None))

    for instance_type, count in sorted(instance_types.items()):
        line("instance", instance_type, count, table.instances.get(instance_type) if table else None, instance_type)
    running = sum(instance_types.values())
    if accelerator and running:
        line("accelerator", accelerator, running, table.eia_accelerators.get(accelerator) if table else None,
             f"Elastic Inference {accelerator}")
    for endpoint in sorted(endpoints, key=lambda e: e.endpoint_id):
        line("interface_endpoint", f"{endpoint.endpoint_id} ({endpoint.service})", endpoint.zones / endpoint.shared_by,
             table.interface_endpoint_az_hour if table else None, "an interface VPC endpoint AZ-hour")
    if load_balancer:
        line("load_balancer", "application load balancer", 1, table.load_balancer_hour if table else None,
             "an application load balancer hour")
    reasons = [*unknown, *(entry.unknown for entry in lines if entry.unknown)]
    total = None if reasons else sum(entry.hourly_usd or 0.0 for entry in lines)
    not_priced = [f"{warm} warm-pool instance(s): stopped, they bill their EBS volume only (not included)"] if warm else []
    return CostEstimate(hourly_usd=total, unknown=reasons, lines=lines, not_priced=not_priced)


def describe_cost(cost: CostEstimate) -> str:
    """The human form: a dollar figure, or why there is none."""
    if cost.hourly_usd is None:
        return "unknown (" + "; ".join(dict.fromkeys(cost.unknown)) + ")"
    return f"${cost.hourly_usd:,.4f}"
