"""`eiplane fleet list`'s cost estimate: the arithmetic (eiplane.cli.costs), the shipped price table
(eiplane.cli.prices), the listing built from the state table and EC2 (botocore Stubber's answers: no AWS
here) and its human form."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from eiplane.backends import EIA_ACCELERATORS, FAMILIES
from eiplane.cli import build_parser, fleet_list, main
from eiplane.cli.costs import EndpointUse, billing_instance_types, describe_cost, endpoint_sharing, estimate
from eiplane.cli.fleet_list import collect, endpoint_of, render
from eiplane.cli.prices import PRICES, PriceTable, RegionPrices

# A table of round numbers, so each expected sum is plain arithmetic.
TABLE = PriceTable(
    as_of="2030-01-02", sources={"instances": "https://example.invalid"}, notes=(), not_included=("EBS",),
    regions={"us-east-1": RegionPrices(instances={"g5.xlarge": 1.0, "g6.xlarge": 0.5, "m5.large": 0.1},
                                       eia_accelerators={"eia2.medium": 0.2},
                                       interface_endpoint_az_hour=0.01, load_balancer_hour=0.02)})


def slots(*states_and_types: tuple[str, str | None]) -> dict[int, dict[str, Any]]:
    return {i: {"state": state, "instance_id": f"i-{i}", **({"instance_type": kind} if kind else {})}
            for i, (state, kind) in enumerate(states_and_types)}


def test_instances_that_bill_are_counted_at_the_type_each_was_launched_as() -> None:
    records = slots(("in_service", "g5.xlarge"), ("in_service", "g6.xlarge"),  # slot 1 fell back to g6
                    ("launching", "g5.xlarge"), ("validated", "g5.xlarge"), ("draining", "g6.xlarge"),
                    ("warm", "g5.xlarge"), ("failed", "g5.xlarge"), ("terminated", "g5.xlarge"), ("planned", None))

    types, unknown = billing_instance_types(records)

    assert types == Counter({"g5.xlarge": 3, "g6.xlarge": 2}) and unknown == []
    cost = estimate("us-east-1", types, None, [], load_balancer=True, prices=TABLE, warm=1)
    assert cost.hourly_usd == pytest.approx(3 * 1.0 + 2 * 0.5 + 0.02)
    assert [(line.item, line.what, line.quantity) for line in cost.lines] == [
        ("instance", "g5.xlarge", 3), ("instance", "g6.xlarge", 2), ("load_balancer", "application load balancer", 1)]


def test_the_warm_pool_is_named_but_not_priced() -> None:
    cost = estimate("us-east-1", Counter(), None, [], load_balancer=True, prices=TABLE, warm=2)

    assert cost.hourly_usd == pytest.approx(0.02)  # the balancer only: stopped instances bill EBS, left out
    assert cost.not_priced == ["2 warm-pool instance(s): stopped, they bill their EBS volume only (not included)"]


def test_a_billing_slot_without_a_recorded_type_makes_the_estimate_unknown() -> None:
    types, unknown = billing_instance_types(slots(("in_service", "g5.xlarge"), ("launching", None)))
    cost = estimate("us-east-1", types, None, [], load_balancer=False, prices=TABLE, unknown=unknown)

    assert cost.hourly_usd is None
    assert cost.unknown == ["slot 1 (launching, i-1) records no instance type"]


@pytest.mark.parametrize(("region", "instance_type", "reason"), [
    ("us-east-1", "g6e.xlarge", "no list price for g6e.xlarge in us-east-1"),  # a type the table lacks
    ("ap-south-1", "g5.xlarge", "no list price for g5.xlarge in ap-south-1"),  # a region it lacks
])
def test_a_type_or_region_without_a_price_is_unknown_never_zero(region: str, instance_type: str, reason: str) -> None:
    cost = estimate(region, Counter({instance_type: 1}), None, [], load_balancer=True, prices=TABLE)

    assert cost.hourly_usd is None
    assert cost.unknown[0] == reason
    assert describe_cost(cost).startswith(f"unknown ({reason}")


def test_eia_adds_its_accelerator_per_running_instance() -> None:
    cost = estimate("us-east-1", Counter({"m5.large": 2}), "eia2.medium", [], load_balancer=False, prices=TABLE)

    assert cost.hourly_usd == pytest.approx(2 * (0.1 + 0.2))
    unpriced = estimate("us-east-1", Counter({"m5.large": 1}), "eia2.xlarge", [], load_balancer=False, prices=TABLE)
    assert unpriced.unknown == ["no list price for Elastic Inference eia2.xlarge in us-east-1"]


def test_a_shared_endpoint_is_split_evenly_among_the_fleets_that_use_it() -> None:
    sharing = endpoint_sharing({"a": ["vpce-ei", "vpce-ssm"], "b": ["vpce-ei"], "c": []})
    assert sharing == {"vpce-ei": 2, "vpce-ssm": 1}

    def endpoint_cost(endpoint_ids: list[str]) -> float:
        uses = [EndpointUse(endpoint_id=i, service="x", zones=3, shared_by=sharing[i]) for i in endpoint_ids]
        cost = estimate("us-east-1", Counter(), None, uses, load_balancer=False, prices=TABLE)
        assert cost.hourly_usd is not None
        return cost.hourly_usd

    assert endpoint_cost(["vpce-ei", "vpce-ssm"]) == pytest.approx(3 * 0.01 / 2 + 3 * 0.01)
    # what the fleets carry adds up to the endpoints' bill: 2 endpoints x 3 zones, once each
    assert endpoint_cost(["vpce-ei", "vpce-ssm"]) + endpoint_cost(["vpce-ei"]) == pytest.approx(2 * 3 * 0.01)


def test_the_shipped_table_prices_every_type_each_backend_launches_in_us_regions() -> None:
    every_type = {f"{family.name}.{size}" for families in FAMILIES.values() for family in families
                  for size in family.sizes}
    for region in ("us-east-1", "us-east-2", "us-west-2"):
        prices = PRICES.regions[region]
        assert sorted(every_type - set(prices.instances)) == [], region
        assert set(prices.eia_accelerators) == set(EIA_ACCELERATORS), region
    for region, prices in PRICES.regions.items():
        assert prices.interface_endpoint_az_hour and prices.load_balancer_hour, region
        assert all(0 < price < 100 for price in [*prices.instances.values(), *prices.eia_accelerators.values()])
        assert set(prices.instances) <= every_type, f"{region}: a type no backend launches"
    assert {"us-east-1", "us-west-2", "eu-west-1"} <= set(PRICES.regions)
    assert all(url.startswith("https://aws.amazon.com/") for url in PRICES.sources.values())
    assert any("EBS" in item for item in PRICES.not_included) and any("LCU" in item for item in PRICES.not_included)
    assert any("data processing" in item for item in PRICES.not_included)


def test_the_shipped_table_says_unknown_where_it_has_no_price() -> None:
    cost = estimate("eu-west-1", Counter({"g6e.xlarge": 1}), None, [], load_balancer=True, prices=PRICES)
    assert cost.unknown == ["no list price for g6e.xlarge in eu-west-1"]


def test_endpoint_is_the_balancers_dns_name_and_listener_port() -> None:
    assert endpoint_of("http://internal-x.elb.amazonaws.com").model_dump() == {  # type: ignore[union-attr]
        "url": "http://internal-x.elb.amazonaws.com", "dns_name": "internal-x.elb.amazonaws.com", "port": 80}
    assert endpoint_of("https://internal-x.elb.amazonaws.com:8443").port == 8443  # type: ignore[union-attr]
    assert endpoint_of(None) is None


# --- the listing, from the state table and EC2 --------------------------------------------------

TABLE_NAME = "eiplane-FleetStateTable"


def _item(**fields: Any) -> dict[str, Any]:
    def attribute(value: Any) -> dict[str, Any]:
        if isinstance(value, int):
            return {"N": str(value)}
        return {"S": value if isinstance(value, str) else json.dumps(value)}
    return {k: attribute(v) for k, v in fields.items()}


def _registration(name: str, backend: dict[str, Any], desired: int) -> dict[str, Any]:
    spec = {"name": name, "region": "us-east-1", "backend": backend, "model": {"name": "m", "version": "7"}}
    return _item(pk="REGISTRY", sk=f"FLEET#{name}", spec=spec, desired=desired)


def _prerequisites(name: str, endpoint_ids: list[str]) -> dict[str, Any]:
    inventory = [{"kind": "vpc_endpoint", "name": f"svc-{i} (interface)", "id": i} for i in endpoint_ids]
    inventory.append({"kind": "load_balancer", "name": f"eiplane-{name}", "id": f"arn:lb/{name}"})
    return {"Item": _item(pk=f"FLEET#{name}", sk="PREREQUISITES", region="us-east-1", vpc_id="vpc-1",
                          load_balancer_arn=f"arn:lb/{name}", endpoint_url=f"http://internal-{name}.elb",
                          inventory=inventory)}


def test_collect_lists_each_fleet_and_splits_the_endpoint_two_fleets_share() -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(dynamodb) as tables, Stubber(ec2) as endpoints:
        tables.add_response("query", {"Items": [
            _registration("eia-a", {"type": "eia", "instance_type": "m5.large", "accelerator": "eia2.medium"}, 1),
            _registration("gpu-b", {"type": "gpu", "instance_type": "g5.xlarge"}, 2)]})
        tables.add_response("query", {"Items": [
            _item(pk="FLEET#eia-a", sk="SLOT#0000", state="in_service", instance_type="m5.large")]})
        tables.add_response("query", {"Items": [
            _item(pk="FLEET#gpu-b", sk="SLOT#0000", state="in_service", instance_type="g6.xlarge"),
            _item(pk="FLEET#gpu-b", sk="SLOT#0001", state="warm", instance_type="g5.xlarge")]})
        tables.add_response("get_item", _prerequisites("eia-a", ["vpce-ei", "vpce-ssm", "vpce-old"]))  # old: deleted
        tables.add_response("get_item", _prerequisites("gpu-b", ["vpce-ssm"]))
        endpoints.add_response("describe_vpc_endpoints", {"VpcEndpoints": [
            {"VpcEndpointId": "vpce-ei", "VpcEndpointType": "Interface", "State": "available",
             "ServiceName": "com.amazonaws.us-east-1.elastic-inference.runtime", "SubnetIds": ["s-a", "s-b"]},
            {"VpcEndpointId": "vpce-ssm", "VpcEndpointType": "Interface", "State": "available",
             "ServiceName": "com.amazonaws.us-east-1.ssm", "SubnetIds": ["s-a", "s-b", "s-c", "s-d"]},
            {"VpcEndpointId": "vpce-old", "VpcEndpointType": "Interface", "State": "deleted",
             "ServiceName": "com.amazonaws.us-east-1.ssm", "SubnetIds": ["s-a"]}]},
            {"Filters": [{"Name": "vpc-id", "Values": ["vpc-1"]}]})

        listing = collect(dynamodb, TABLE_NAME, lambda region: ec2, prices=TABLE)

    eia, gpu = listing.fleets
    assert (eia.fleet, eia.backend, eia.desired, eia.in_service, eia.warm) == ("eia-a", "eia", 1, 1, 0)
    assert (gpu.fleet, gpu.backend, gpu.desired, gpu.in_service, gpu.warm) == ("gpu-b", "gpu", 2, 1, 1)
    assert gpu.model is not None and (gpu.model.name, gpu.model.version) == ("m", "7")
    assert gpu.endpoint is not None and (gpu.endpoint.dns_name, gpu.endpoint.port) == ("internal-gpu-b.elb", 80)
    # eia-a: its host and accelerator, its own EI endpoint (2 zones), half the shared ssm one (4 zones), its balancer
    assert eia.cost.hourly_usd == pytest.approx(0.1 + 0.2 + 2 * 0.01 + 4 * 0.01 / 2 + 0.02)
    # gpu-b: the g6 it fell back to (not the spec's g5), the other half, its balancer; the warm g5 is not priced
    assert gpu.cost.hourly_usd == pytest.approx(0.5 + 4 * 0.01 / 2 + 0.02)
    assert listing.total_hourly_usd == pytest.approx(0.1 + 0.2 + 0.5 + 6 * 0.01 + 2 * 0.02)
    assert listing.prices.as_of == "2030-01-02"
    assert [line.what for line in eia.cost.lines if line.item == "interface_endpoint"] == [
        "vpce-ei (elastic-inference.runtime)", "vpce-ssm (ssm)"]


def test_render_prints_a_row_per_fleet_and_the_tables_date() -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(dynamodb) as tables:
        tables.add_response("query", {"Items": [_registration("gpu-b", {"type": "gpu", "instance_type": "g6e.xlarge"}, 1)]})
        tables.add_response("query", {"Items": [
            _item(pk="FLEET#gpu-b", sk="SLOT#0000", state="in_service", instance_type="g6e.xlarge")]})
        tables.add_response("get_item", _prerequisites("gpu-b", []))
        listing = collect(dynamodb, TABLE_NAME, lambda region: pytest.fail("no endpoint to describe"), prices=TABLE)

    header, row, footer, *_ = render(listing)
    assert header.split() == ["fleet", "backend", "region", "model", "desired", "in", "service", "warm", "endpoint",
                              "$/hour"]
    assert row.split()[:8] == ["gpu-b", "gpu", "us-east-1", "m", "7", "1", "1", "0"]
    assert row.endswith("internal-gpu-b.elb:80  unknown (no list price for g6e.xlarge in us-east-1)")
    assert footer == ("1 fleet(s), unknown (no list price for part of gpu-b): estimated from list prices as of "
                      "2030-01-02 (eiplane/cli/prices.py)")


def test_an_empty_account_says_so() -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(dynamodb) as tables:
        tables.add_response("query", {"Items": []})
        listing = collect(dynamodb, TABLE_NAME, lambda region: pytest.fail("no fleet, no EC2 call"), prices=TABLE)

    assert listing.fleets == [] and listing.total_hourly_usd == 0
    assert render(listing) == ["no fleets in this stack's state table (`eiplane fleet apply SPEC` provisions one); "
                               "list prices as of 2030-01-02 (eiplane/cli/prices.py)"]


# --- the command ---------------------------------------------------------------------------------

def test_fleet_list_takes_the_other_fleet_commands_options() -> None:
    args = build_parser().parse_args(["fleet", "list", "--endpoint-url", "http://127.0.0.1:4566", "--stack-name", "s",
                                      "--region", "eu-west-1", "--json"])

    assert args.handler is fleet_list.fleet_list
    assert (args.endpoint_url, args.stack_name, args.region, args.json) == ("http://127.0.0.1:4566", "s", "eu-west-1", "-")
    assert build_parser().parse_args(["fleet", "list", "--json", "out.json"]).json == "out.json"


def test_fleet_list_local_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "list", "--local"]) == 2
    assert capsys.readouterr().err.startswith("eiplane: --local starts an embedded AWS of its own for this one command")


def test_fleet_list_json_of_an_empty_stack_on_stdout(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

    class Session:
        region_name = "us-east-1"

        def client(self, service: str, **_: Any) -> Any:
            assert service == "dynamodb", "an empty stack needs no other service"
            return dynamodb

    monkeypatch.setattr(fleet_list, "aws_session", lambda region, endpoint_url: Session())
    with Stubber(dynamodb) as tables:
        tables.add_response("list_tables", {"TableNames": ["eiplane-local-FleetStateTable-X"]})
        tables.add_response("query", {"Items": []})
        assert main(["fleet", "list", "--endpoint-url", "http://127.0.0.1:4566", "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["fleets"] == [] and document["total_hourly_usd"] == 0
    assert document["prices"]["as_of"] == PRICES.as_of and document["prices"]["not_included"]
