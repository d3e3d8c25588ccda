"""Security group rules flattened from EC2 IpPermissions, and the internet-route test of a subnet."""

from __future__ import annotations

from typing import Any

import pytest

from eiplane.models.prerequisites import Placement, SubnetPlacement
from eiplane.models.spec import parse_fleet_spec
from eiplane.prerequisites.network import Rule, flatten, needs_interface_endpoints, opens_to_world
from eiplane.prerequisites.placement import has_internet_route

# --- flatten ---------------------------------------------------------------------------------


def test_flatten_ipv4_ranges() -> None:
    permissions = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                    "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "vpc"}, {"CidrIp": "0.0.0.0/0"}]}]
    assert flatten(permissions) == {Rule("tcp", 443, 443, "10.0.0.0/16"), Rule("tcp", 443, 443, "0.0.0.0/0")}


def test_flatten_every_peer_kind_of_one_permission() -> None:
    permissions = [{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": "192.168.0.0/24"}],
        "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
        "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0", "UserId": "123456789012"}],
        "PrefixListIds": [{"PrefixListId": "pl-63a5400a"}],
    }]
    assert flatten(permissions) == {
        Rule("tcp", 22, 22, "192.168.0.0/24"),
        Rule("tcp", 22, 22, "::/0"),
        Rule("tcp", 22, 22, "sg-0123456789abcdef0"),
        Rule("tcp", 22, 22, "pl-63a5400a"),
    }


def test_flatten_all_traffic_drops_ports() -> None:
    # AWS may report FromPort/ToPort as -1 (or omit them) for protocol -1; the rule has no ports.
    permissions = [{"IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                   {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}]
    assert flatten(permissions) == {Rule("-1", None, None, "0.0.0.0/0"), Rule("-1", None, None, "::/0")}


def test_flatten_port_ranges_and_protocols_stay_distinct() -> None:
    permissions = [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "udp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "tcp", "FromPort": 1024, "ToPort": 65535, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
    ]
    assert flatten(permissions) == {
        Rule("tcp", 443, 443, "10.0.0.0/8"),
        Rule("udp", 443, 443, "10.0.0.0/8"),
        Rule("tcp", 1024, 65535, "10.0.0.0/8"),
    }


def test_flatten_merges_duplicates_and_handles_empty() -> None:
    same = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": "sg-1"}]}
    assert flatten([same, dict(same)]) == {Rule("tcp", 443, 443, "sg-1")}
    assert flatten([]) == set()
    assert flatten([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}]) == set()  # no peer, no rule


def test_flatten_protocol_number_is_a_string() -> None:
    assert flatten([{"IpProtocol": 6, "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "1.2.3.4/32"}]}]) == {
        Rule("6", 80, 80, "1.2.3.4/32")}


# --- as_permission ---------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "permission"), [
    (Rule("tcp", 443, 443, "0.0.0.0/0"),
     {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    (Rule("tcp", 443, 443, "2001:db8::/32"),
     {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}]}),
    (Rule("tcp", 443, 443, "sg-0abc"),
     {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": "sg-0abc"}]}),
    (Rule("udp", 53, 53, "pl-12345678"),
     {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "PrefixListIds": [{"PrefixListId": "pl-12345678"}]}),
    (Rule("-1", None, None, "0.0.0.0/0"), {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}),
    (Rule("-1", None, None, "::/0"), {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}),
])
def test_as_permission_shape_and_round_trip(rule: Rule, permission: dict[str, Any]) -> None:
    assert rule.as_permission() == permission
    assert flatten([rule.as_permission()]) == {rule}


def test_round_trip_of_a_whole_group() -> None:
    permissions = [
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "10.0.0.0/16"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
         "UserIdGroupPairs": [{"GroupId": "sg-1"}, {"GroupId": "sg-2"}],
         "PrefixListIds": [{"PrefixListId": "pl-1"}]},
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    ]
    rules = flatten(permissions)
    assert len(rules) == 6
    assert flatten([r.as_permission() for r in rules]) == rules


def test_describe() -> None:
    assert Rule("tcp", 443, 443, "sg-1").describe() == "TCP 443 from sg-1"
    assert Rule("tcp", 1024, 65535, "10.0.0.0/8").describe("egress") == "TCP 1024-65535 to 10.0.0.0/8"
    assert Rule("-1", None, None, "0.0.0.0/0").describe() == "all traffic from 0.0.0.0/0"


@pytest.mark.parametrize(("peer", "world"), [
    ("0.0.0.0/0", True), ("::/0", True), ("10.0.0.0/8", False), ("0.0.0.0/1", False),
    ("sg-0123", False), ("pl-0123", False), ("2001:db8::/32", False),
])
def test_opens_to_world(peer: str, world: bool) -> None:
    assert opens_to_world(Rule("tcp", 443, 443, peer)) is world
    assert opens_to_world(Rule("-1", None, None, peer)) is world


# --- needs_interface_endpoints ---------------------------------------------------------------

def _spec(backend_type: str) -> Any:
    return parse_fleet_spec({"name": "demo", "region": "us-east-1", "backend": {"type": backend_type},
                             "model": {"name": "m", "version": "1"}})


def _placement(*internet: bool) -> Placement:
    return Placement(vpc_id="vpc-1", default_vpc=False, vpc_cidrs=["10.0.0.0/16"], subnets=[
        SubnetPlacement(subnet_id=f"subnet-{i}", availability_zone=f"us-east-1{'abc'[i]}",
                        route_table_id=f"rtb-{i}", internet_route=route)
        for i, route in enumerate(internet)
    ])


@pytest.mark.parametrize(("backend_type", "internet", "needed"), [
    ("eia", (True, True), True),          # the EI runtime endpoint, whatever the routes
    ("eia", (False,), True),
    ("gpu", (True, True), False),
    ("inferentia", (True,), False),
    ("gpu", (True, False), True),         # one private subnet is enough
    ("inferentia", (False, False), True),
])
def test_needs_interface_endpoints(backend_type: str, internet: tuple[bool, ...], needed: bool) -> None:
    assert needs_interface_endpoints(_spec(backend_type), _placement(*internet)) is needed


# --- has_internet_route ----------------------------------------------------------------------

LOCAL = {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}


def _table(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"RouteTableId": "rtb-1", "Routes": [LOCAL, *routes]}


@pytest.mark.parametrize(("route", "internet"), [
    ({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-0123", "State": "active"}, True),
    ({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-0123"}, True),  # no State reported
    ({"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0123", "State": "active"}, True),
    ({"DestinationCidrBlock": "0.0.0.0/0", "TransitGatewayId": "tgw-0123", "State": "active"}, True),
    ({"DestinationCidrBlock": "0.0.0.0/0", "InstanceId": "i-0123", "NetworkInterfaceId": "eni-0123",
      "State": "active"}, True),  # a NAT instance
    ({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-0123", "State": "blackhole"}, False),
    ({"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0123", "State": "blackhole"}, False),
    ({"DestinationCidrBlock": "0.0.0.0/0", "VpcPeeringConnectionId": "pcx-0123", "State": "active"}, False),
    ({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "vgw-0123", "State": "active"}, False),
    ({"DestinationCidrBlock": "10.1.0.0/16", "GatewayId": "igw-0123", "State": "active"}, False),  # not default
    ({"DestinationCidrBlock": "10.1.0.0/16", "NatGatewayId": "nat-0123", "State": "active"}, False),
    ({"DestinationIpv6CidrBlock": "::/0", "EgressOnlyInternetGatewayId": "eigw-0123", "State": "active"}, False),
])
def test_has_internet_route(route: dict[str, Any], internet: bool) -> None:
    assert has_internet_route(_table(route)) is internet


def test_only_local_route_or_no_routes_is_private() -> None:
    assert has_internet_route(_table()) is False
    assert has_internet_route({"RouteTableId": "rtb-1"}) is False
    assert has_internet_route({"RouteTableId": "rtb-1", "Routes": []}) is False


def test_any_usable_default_route_is_enough() -> None:
    blackhole = {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-dead", "State": "blackhole"}
    nat = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-0123", "State": "active"}
    assert has_internet_route(_table(blackhole, nat)) is True
