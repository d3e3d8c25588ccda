"""Which VPC endpoints a fleet wants, and where; and the Changes / Reconciler bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest

from eiplane.models.prerequisites import Placement, SubnetPlacement
from eiplane.models.spec import FleetSpec, parse_fleet_spec
from eiplane.prerequisites.changes import PLANNED_ID, Changes, Reconciler
from eiplane.prerequisites.endpoints import WantedEndpoint, _client_token, one_subnet_per_zone, wanted_endpoints

SSM_SERVICES = ("ssm", "ssmmessages", "ec2messages")


def spec(backend_type: str) -> FleetSpec:
    return parse_fleet_spec({"name": "demo", "region": "us-east-1", "backend": {"type": backend_type},
                             "model": {"name": "m", "version": "1"}})


def subnet(subnet_id: str, zone: str, route_table: str, internet: bool) -> SubnetPlacement:
    return SubnetPlacement(subnet_id=subnet_id, availability_zone=zone, route_table_id=route_table,
                           internet_route=internet)


def placement(*subnets: SubnetPlacement) -> Placement:
    return Placement(vpc_id="vpc-12345678", default_vpc=False, vpc_cidrs=["10.0.0.0/16"], subnets=list(subnets))


PUBLIC = placement(
    subnet("subnet-a1", "us-east-1a", "rtb-public", True),
    subnet("subnet-b1", "us-east-1b", "rtb-public", True),
)
PRIVATE = placement(
    subnet("subnet-a1", "us-east-1a", "rtb-a", False),
    subnet("subnet-a2", "us-east-1a", "rtb-a", False),
    subnet("subnet-b1", "us-east-1b", "rtb-b", False),
    subnet("subnet-c1", "us-east-1c", "rtb-a", False),
)
MIXED = placement(
    subnet("subnet-a-pub", "us-east-1a", "rtb-public", True),
    subnet("subnet-a-priv", "us-east-1a", "rtb-private", False),
    subnet("subnet-b-priv", "us-east-1b", "rtb-private-b", False),
)


# --- one_subnet_per_zone ---------------------------------------------------------------------

def test_one_subnet_per_zone_takes_the_first_of_each_zone_in_zone_order() -> None:
    subnets = [
        subnet("subnet-c1", "us-east-1c", "rtb", True),
        subnet("subnet-a2", "us-east-1a", "rtb", True),
        subnet("subnet-a1", "us-east-1a", "rtb", True),
        subnet("subnet-b1", "us-east-1b", "rtb", True),
    ]
    assert one_subnet_per_zone(subnets) == ("subnet-a2", "subnet-b1", "subnet-c1")


def test_one_subnet_per_zone_limited_to_zones() -> None:
    assert one_subnet_per_zone(PRIVATE.subnets, {"us-east-1b", "us-east-1c"}) == ("subnet-b1", "subnet-c1")
    assert one_subnet_per_zone(PRIVATE.subnets, {"us-east-1a", "us-east-1z"}) == ("subnet-a1",)
    assert one_subnet_per_zone(PRIVATE.subnets, set()) == ()
    assert one_subnet_per_zone([]) == ()


# --- wanted_endpoints ------------------------------------------------------------------------

@pytest.mark.parametrize("backend_type", ["gpu", "inferentia"])
def test_public_subnets_without_eia_want_nothing(backend_type: str) -> None:
    assert wanted_endpoints(spec(backend_type), PUBLIC, None) == []


def test_eia_in_public_subnets_wants_only_the_runtime_endpoint() -> None:
    assert wanted_endpoints(spec("eia"), PUBLIC, {"us-east-1a", "us-east-1b"}) == [
        WantedEndpoint("elastic-inference.runtime", True, subnets=("subnet-a1", "subnet-b1")),
    ]


def test_eia_runtime_endpoint_only_in_zones_offering_it() -> None:
    wanted = wanted_endpoints(spec("eia"), PUBLIC, {"us-east-1b"})
    assert wanted == [WantedEndpoint("elastic-inference.runtime", True, subnets=("subnet-b1",))]


def test_eia_without_zone_restriction_covers_every_zone() -> None:
    wanted = wanted_endpoints(spec("eia"), PUBLIC, None)
    assert wanted == [WantedEndpoint("elastic-inference.runtime", True, subnets=("subnet-a1", "subnet-b1"))]


@pytest.mark.parametrize("backend_type", ["gpu", "inferentia"])
def test_private_subnets_want_ssm_interfaces_and_s3_gateway(backend_type: str) -> None:
    wanted = wanted_endpoints(spec(backend_type), PRIVATE, None)
    zones = ("subnet-a1", "subnet-b1", "subnet-c1")
    assert wanted == [
        WantedEndpoint("ssm", True, subnets=zones),
        WantedEndpoint("ssmmessages", True, subnets=zones),
        WantedEndpoint("ec2messages", True, subnets=zones),
        WantedEndpoint("s3", False, route_tables=("rtb-a", "rtb-b")),  # each private table once, sorted
    ]
    assert all(not w.route_tables for w in wanted if w.interface)
    assert all(not w.subnets for w in wanted if not w.interface)


def test_eia_in_private_subnets_wants_all_five() -> None:
    wanted = wanted_endpoints(spec("eia"), PRIVATE, {"us-east-1a"})
    assert [(w.service, w.interface) for w in wanted] == [
        ("elastic-inference.runtime", True), ("ssm", True), ("ssmmessages", True), ("ec2messages", True),
        ("s3", False)]
    assert wanted[0].subnets == ("subnet-a1",)  # EI only where offered
    assert wanted[1].subnets == ("subnet-a1", "subnet-b1", "subnet-c1")  # SSM everywhere


def test_mixed_subnets_gateway_only_on_private_route_tables() -> None:
    wanted = {w.service: w for w in wanted_endpoints(spec("gpu"), MIXED, None)}
    assert set(wanted) == {*SSM_SERVICES, "s3"}
    assert wanted["s3"].route_tables == ("rtb-private", "rtb-private-b")
    assert "rtb-public" not in wanted["s3"].route_tables
    for service in SSM_SERVICES:
        assert len(wanted[service].subnets) == 2  # one per zone: us-east-1a, us-east-1b
        assert wanted[service].subnets[1] == "subnet-b-priv"


# --- _client_token ---------------------------------------------------------------------------

def test_client_token_is_deterministic_and_short() -> None:
    token = _client_token("vpc-0123456789abcdef0", "com.amazonaws.us-east-1.ssm")
    assert token == _client_token("vpc-0123456789abcdef0", "com.amazonaws.us-east-1.ssm")
    assert token.startswith("eiplane-")
    assert len(token) <= 64
    assert token.isascii() and token.replace("-", "").isalnum()


def test_client_token_differs_per_vpc_and_service() -> None:
    tokens = {
        _client_token(vpc, service)
        for vpc in ("vpc-11111111", "vpc-22222222")
        for service in ("com.amazonaws.us-east-1.ssm", "com.amazonaws.us-east-1.ssmmessages",
                        "com.amazonaws.us-east-1.s3", "com.amazonaws.us-west-2.ssm")
    }
    assert len(tokens) == 8


def test_client_token_stays_short_for_long_names() -> None:
    assert len(_client_token("vpc-" + "f" * 17, "com.amazonaws.ap-southeast-4.elastic-inference.runtime" * 3)) <= 64


# --- Changes and Reconciler ------------------------------------------------------------------

def test_planning_changes_records_but_never_calls() -> None:
    calls: list[str] = []
    changes = Changes(apply=False)

    def call() -> str:
        calls.append("called")
        return "sg-new"

    assert changes.make("create security group x", call) is None
    assert changes.make("allow ingress TCP 443", call) is None
    assert calls == []
    assert changes.descriptions == ["create security group x", "allow ingress TCP 443"]


def test_applying_changes_calls_and_returns_the_value() -> None:
    calls: list[str] = []
    changes = Changes(apply=True)

    def call() -> dict[str, Any]:
        calls.append("called")
        return {"GroupId": "sg-new"}

    assert changes.make("create security group x", call) == {"GroupId": "sg-new"}
    assert calls == ["called"]
    assert changes.descriptions == ["create security group x"]


def test_applying_a_failing_change_raises_and_keeps_the_description() -> None:
    changes = Changes(apply=True)
    with pytest.raises(RuntimeError, match="boom"):
        changes.make("create role r", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert changes.descriptions == ["create role r"]


@pytest.mark.parametrize("apply", [True, False])
def test_reconciler_outcomes(apply: bool) -> None:
    reconciler = Reconciler(apply=apply)

    created = reconciler.begin()
    assert created.apply is apply
    created.make("create role r", lambda: {"Arn": "arn:role"})
    reconciler.done("iam_role", "r", "arn:role" if apply else None, created, created=True)

    repaired = reconciler.begin()
    repaired.make("tag eiplane:fleet", lambda: None)
    reconciler.done("security_group", "g", "sg-1", repaired)

    found = reconciler.begin()
    reconciler.done("vpc_endpoint", "e", "vpce-1", found, billable=True)

    results = reconciler.results
    assert [(r.kind, r.name, r.outcome) for r in results] == [
        ("iam_role", "r", "created"), ("security_group", "g", "repaired"), ("vpc_endpoint", "e", "found")]
    assert results[0].id == ("arn:role" if apply else PLANNED_ID)
    assert results[0].changes == ["create role r"]
    assert results[1].changes == ["tag eiplane:fleet"]
    assert results[2].changes == [] and results[2].billable is True
    assert results[0].billable is False


def test_planned_id_is_new() -> None:
    assert PLANNED_ID == "(new)"
    reconciler = Reconciler(apply=False)
    reconciler.done("instance_profile", "p", None, reconciler.begin(), created=True)
    assert reconciler.results[0].id == "(new)"
    assert reconciler.results[0].outcome == "created"


def test_created_wins_over_repaired_and_changes_are_copied() -> None:
    reconciler = Reconciler(apply=True)
    changes = reconciler.begin()
    changes.make("create x", lambda: None)
    changes.make("tag x", lambda: None)
    reconciler.done("security_group", "x", "sg-1", changes, created=True)
    changes.descriptions.append("later")
    assert reconciler.results[0].outcome == "created"
    assert reconciler.results[0].changes == ["create x", "tag x"]
