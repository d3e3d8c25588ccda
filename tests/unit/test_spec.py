"""parse_fleet_spec: defaults, every problem at once, and the per-backend instance type rules."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from eiplane.errors import InvalidFleetSpec
from eiplane.models.spec import (
    EiaBackend,
    FleetSpec,
    GpuBackend,
    InferentiaBackend,
    parse_fleet_spec,
)
from tests.conftest import load_event

MINIMAL: dict[str, Any] = {
    "name": "demo-fleet",
    "region": "us-east-1",
    "backend": {"type": "gpu"},
    "model": {"name": "resnet50", "version": "1.0"},
}


def raw(**overrides: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL)
    spec.update(overrides)
    return spec


def backend(**fields: Any) -> dict[str, Any]:
    return raw(backend=fields)


def problems(spec: Any) -> list[str]:
    with pytest.raises(InvalidFleetSpec) as caught:
        parse_fleet_spec(spec)
    return caught.value.problems


def only_problem(spec: Any) -> str:
    found = problems(spec)
    assert len(found) == 1, found
    return found[0]


# --- valid specs and defaults ----------------------------------------------------------------

@pytest.mark.parametrize(
    ("backend_type", "model_class", "instance_type", "image_suffix"),
    [
        ("eia", EiaBackend, "m5.large", "/al2023-ami-kernel-default-x86_64"),
        ("gpu", GpuBackend, "g5.xlarge", "/ami-id"),
        ("inferentia", InferentiaBackend, "inf2.xlarge", "/image_id"),
    ],
)
def test_minimal_spec_per_backend_gets_defaults(backend_type: str, model_class: type[Any], instance_type: str,
                                                image_suffix: str) -> None:
    spec = parse_fleet_spec(backend(type=backend_type))

    assert isinstance(spec, FleetSpec)
    assert type(spec.backend) is model_class
    assert spec.backend.type == backend_type
    assert spec.backend.instance_type == instance_type
    assert spec.backend.fallback_instance_types == ()
    assert spec.backend.instance_types == [instance_type]
    assert spec.backend.image_parameter is None
    assert spec.backend.resolved_image_parameter.endswith(image_suffix)
    assert spec.network.vpc_id is None and spec.network.subnet_ids == ()
    assert (spec.capacity.min, spec.capacity.desired, spec.capacity.max) == (1, 1, 1)
    assert spec.tags == {}
    assert spec.dry_run is False


def test_eia_default_accelerator_is_eia2_medium() -> None:
    spec = parse_fleet_spec(backend(type="eia"))
    assert isinstance(spec.backend, EiaBackend)
    assert spec.backend.accelerator == "eia2.medium"


def test_gpu_and_inferentia_have_no_accelerator_field() -> None:
    for backend_type in ("gpu", "inferentia"):
        assert "accelerator" in problems(backend(type=backend_type, accelerator="eia2.medium"))[0]


def test_full_valid_spec_round_trips() -> None:
    full = raw(
        network={"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbb"]},
        backend={"type": "inferentia", "instance_type": "inf2.8xlarge", "fallback_instance_types": ["inf2.xlarge"],
                 "image_parameter": "/eiplane/my/ami", "root_volume_gib": 200},
        capacity={"min": 0, "desired": 2, "max": 100},
        scaling={"enabled": True, "capacity_per_instance_rps": 250.0, "target_utilisation": 0.8,
                 "warm_pool_size": 4, "warm_pool_prefill": False},
        model={"name": "resnet50", "version": "1.0", "precisions": ["fp32", "bf16"]},
        serving={"port": 9000, "listener_port": 8443,
                 "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012",
                 "allowed_cidrs": ["10.1.0.0/16"], "allowed_security_groups": ["sg-0123456789abcdef0"],
                 "health_check": {"interval_s": 15, "timeout_s": 6, "healthy_threshold": 3, "unhealthy_threshold": 4},
                 "deregistration_delay_s": 120, "healthy_deadline_s": 900, "max_batch_size": 16,
                 "max_queue_delay_ms": 2.5, "max_queue": 128, "latency_p99_ms": 250.0},
        rollout={"batch_percent": 25, "max_surge": 0, "min_healthy_percent": 75, "bake_seconds": 600,
                 "max_5xx_percent": 0.5, "alarms": ["model-errors"]},
        tags={"team": "ml", "cost-center": "a1 b2/c=3+d@e.f:g_h"},
        dry_run=True,
    )
    spec = parse_fleet_spec(full)
    assert spec.backend.instance_types == ["inf2.8xlarge", "inf2.xlarge"]
    assert spec.backend.fallback_instance_types == ("inf2.xlarge",)
    assert spec.network.subnet_ids == ("subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbb")
    assert spec.backend.resolved_image_parameter == "/eiplane/my/ami"
    # The parsed spec holds tuples; its JSON form holds lists again, exactly as given.
    assert spec.model_dump(mode="json", exclude_none=True) == full
    assert json.loads(spec.model_dump_json(exclude_none=True)) == full
    assert parse_fleet_spec(spec.model_dump(mode="json")) == spec


# --- every problem at once -------------------------------------------------------------------

def test_several_problems_reported_together() -> None:
    spec = raw(
        name="Bad_Name",
        backend={"type": "gpu", "instance_type": "m5.large"},
        capacity={"min": 3, "desired": 1, "max": 5},
        surprise=True,
    )
    with pytest.raises(InvalidFleetSpec) as caught:
        parse_fleet_spec(spec)
    found = caught.value.problems

    assert len(found) == 4, found
    assert found[0].startswith("name: String should match pattern")
    assert found[1] == "backend.gpu.instance_type: 'm5.large' is not a gpu instance type; use g4dn, g5, g6 or g6e"
    assert found[2] == "capacity: must satisfy min <= desired <= max (got min=3, desired=1, max=5)"
    assert found[3] == "surprise: Extra inputs are not permitted"
    message = str(caught.value)
    assert message.startswith("fleet spec has 4 problems: ")
    for problem in found:
        assert problem in message


def test_single_problem_message_uses_singular() -> None:
    with pytest.raises(InvalidFleetSpec) as caught:
        parse_fleet_spec(raw(region="nowhere"))
    assert str(caught.value).startswith("fleet spec has 1 problem: region: ")


def test_missing_required_fields_are_all_named() -> None:
    found = problems({})
    assert sorted(p.split(":")[0] for p in found) == ["backend", "model", "name", "region"]
    assert all(p.endswith("Field required") for p in found)


def test_every_bad_instance_type_is_reported() -> None:
    found = problems(backend(type="gpu", instance_type="m5.large", fallback_instance_types=["p4d.24xlarge"]))
    assert found == [
        "backend.gpu.instance_type: 'm5.large' is not a gpu instance type; use g4dn, g5, g6 or g6e",
        "backend.gpu.fallback_instance_types: 'p4d.24xlarge' is not a gpu instance type; use g4dn, g5, g6 or g6e",
    ]


# --- input that is not an object -------------------------------------------------------------

@pytest.mark.parametrize(("value", "type_name"), [([], "list"), ("spec", "str"), (None, "NoneType"),
                                                  (42, "int"), ([MINIMAL], "list")])
def test_non_object_input_is_one_clear_problem(value: Any, type_name: str) -> None:
    with pytest.raises(InvalidFleetSpec) as caught:
        parse_fleet_spec(value)
    assert caught.value.problems == [f"spec: must be a JSON object, got {type_name}"]
    assert str(caught.value) == f"fleet spec has 1 problem: spec: must be a JSON object, got {type_name}"


# --- backend type and accelerator ------------------------------------------------------------

def test_unknown_backend_type_names_valid_tags() -> None:
    problem = only_problem(backend(type="tpu"))
    assert problem.startswith("backend: ")
    assert "'tpu'" in problem
    assert "'eia', 'gpu', 'inferentia'" in problem


def test_backend_without_type() -> None:
    assert only_problem(backend(instance_type="g5.xlarge")) == (
        "backend: Unable to extract tag using discriminator 'type'")


@pytest.mark.parametrize("accelerator", ["eia2.medium", "eia2.large", "eia2.xlarge"])
def test_eia_accepts_eia2_accelerators(accelerator: str) -> None:
    assert parse_fleet_spec(backend(type="eia", accelerator=accelerator)).backend.accelerator == accelerator


@pytest.mark.parametrize("accelerator", ["eia1.medium", "eia2.2xlarge", "EIA2.MEDIUM", "", "medium"])
def test_eia_rejects_other_accelerators(accelerator: str) -> None:
    assert only_problem(backend(type="eia", accelerator=accelerator)) == (
        "backend.eia.accelerator: Input should be 'eia2.medium', 'eia2.large' or 'eia2.xlarge'")


@pytest.mark.parametrize("instance_type", ["m5.large", "m5.24xlarge", "c5.large", "c5.9xlarge", "c5.18xlarge"])
def test_eia_accepts_m5_and_c5_hosts(instance_type: str) -> None:
    assert parse_fleet_spec(backend(type="eia", instance_type=instance_type)).backend.instance_type == instance_type


@pytest.mark.parametrize("instance_type", ["g5.xlarge", "inf2.xlarge", "t3.large"])
def test_eia_rejects_non_host_families(instance_type: str) -> None:
    assert only_problem(backend(type="eia", instance_type=instance_type)) == (
        f"backend.eia.instance_type: '{instance_type}' is not an Elastic Inference host (m5 / c5); use m5 or c5")


@pytest.mark.parametrize("instance_type", [
    "g4dn.xlarge", "g4dn.metal", "g4dn.16xlarge", "g5.xlarge", "g5.48xlarge",
    "g6.xlarge", "g6.24xlarge", "g6e.xlarge", "g6e.48xlarge",
])
def test_gpu_accepts_g_families(instance_type: str) -> None:
    assert parse_fleet_spec(backend(type="gpu", instance_type=instance_type)).backend.instance_type == instance_type


@pytest.mark.parametrize("instance_type", ["inf2.xlarge", "p4d.24xlarge", "m5.large", "p5.48xlarge", "g4ad.xlarge"])
def test_gpu_rejects_other_families(instance_type: str) -> None:
    assert only_problem(backend(type="gpu", instance_type=instance_type)) == (
        f"backend.gpu.instance_type: '{instance_type}' is not a gpu instance type; use g4dn, g5, g6 or g6e")


@pytest.mark.parametrize(("instance_type", "family", "sizes"), [
    ("g5.metal", "g5", "g5.xlarge, g5.2xlarge, g5.4xlarge, g5.8xlarge, g5.12xlarge, g5.16xlarge, g5.24xlarge, "
                       "g5.48xlarge"),
    ("g4dn.24xlarge", "g4dn", "g4dn.xlarge, g4dn.2xlarge, g4dn.4xlarge, g4dn.8xlarge, g4dn.12xlarge, "
                              "g4dn.16xlarge, g4dn.metal"),
])
def test_gpu_wrong_size_lists_sizes(instance_type: str, family: str, sizes: str) -> None:
    assert only_problem(backend(type="gpu", instance_type=instance_type)) == (
        f"backend.gpu.instance_type: '{instance_type}' is not a size of {family}; use one of {sizes}")


@pytest.mark.parametrize("instance_type", ["inf2.xlarge", "inf2.8xlarge", "inf2.24xlarge", "inf2.48xlarge"])
def test_inferentia_accepts_inf2_sizes(instance_type: str) -> None:
    spec = parse_fleet_spec(backend(type="inferentia", instance_type=instance_type))
    assert spec.backend.instance_type == instance_type


@pytest.mark.parametrize("instance_type", ["inf2.2xlarge", "inf2.4xlarge", "inf2.large", "inf2"])
def test_inferentia_wrong_size_names_valid_sizes(instance_type: str) -> None:
    assert only_problem(backend(type="inferentia", instance_type=instance_type)) == (
        f"backend.inferentia.instance_type: '{instance_type}' is not a size of inf2; "
        "use one of inf2.xlarge, inf2.8xlarge, inf2.24xlarge, inf2.48xlarge")


@pytest.mark.parametrize("instance_type", ["inf1.xlarge", "trn1.2xlarge", "g5.xlarge", "INF2.XLARGE"])
def test_inferentia_rejects_other_families(instance_type: str) -> None:
    assert only_problem(backend(type="inferentia", instance_type=instance_type)) == (
        f"backend.inferentia.instance_type: '{instance_type}' is not an inferentia instance type; use inf2")


# --- fallback instance types -----------------------------------------------------------------

def test_fallbacks_follow_the_instance_type() -> None:
    spec = parse_fleet_spec(backend(type="gpu", instance_type="g6.xlarge",
                                    fallback_instance_types=["g5.xlarge", "g4dn.xlarge"]))
    assert spec.backend.instance_types == ["g6.xlarge", "g5.xlarge", "g4dn.xlarge"]


@pytest.mark.parametrize(("backend_type", "fallback", "expected"), [
    ("gpu", "inf2.xlarge", "backend.gpu.fallback_instance_types: 'inf2.xlarge' is not a gpu instance type; "
                           "use g4dn, g5, g6 or g6e"),
    ("inferentia", "inf2.2xlarge", "backend.inferentia.fallback_instance_types: 'inf2.2xlarge' is not a size of "
                                   "inf2; use one of inf2.xlarge, inf2.8xlarge, inf2.24xlarge, inf2.48xlarge"),
    ("eia", "g5.xlarge", "backend.eia.fallback_instance_types: 'g5.xlarge' is not an Elastic Inference host "
                         "(m5 / c5); use m5 or c5"),
])
def test_fallbacks_validated_like_the_instance_type(backend_type: str, fallback: str, expected: str) -> None:
    assert only_problem(backend(type=backend_type, fallback_instance_types=[fallback])) == expected


def test_every_bad_fallback_is_reported_in_one_problem() -> None:
    fallbacks = ["p4d.24xlarge", "g5.metal", "g6.xlarge", "g6.xlarge"]
    assert only_problem(backend(type="gpu", fallback_instance_types=fallbacks)) == (
        "backend.gpu.fallback_instance_types: "
        "'p4d.24xlarge' is not a gpu instance type; use g4dn, g5, g6 or g6e; "
        "'g5.metal' is not a size of g5; use one of g5.xlarge, g5.2xlarge, g5.4xlarge, g5.8xlarge, g5.12xlarge, "
        "g5.16xlarge, g5.24xlarge, g5.48xlarge; "
        "repeats an instance type")


@pytest.mark.parametrize("fallbacks", [["g5.2xlarge", "g5.2xlarge"], ["g6.xlarge", "g5.2xlarge", "g6.xlarge"]])
def test_fallbacks_must_not_repeat(fallbacks: list[str]) -> None:
    assert only_problem(backend(type="gpu", instance_type="g5.xlarge", fallback_instance_types=fallbacks)) == (
        "backend.gpu.fallback_instance_types: repeats an instance type")


@pytest.mark.parametrize("fallbacks", [["g5.xlarge"], ["g6.xlarge", "g5.xlarge"]])
def test_fallbacks_must_not_repeat_the_instance_type(fallbacks: list[str]) -> None:
    assert only_problem(backend(type="gpu", instance_type="g5.xlarge", fallback_instance_types=fallbacks)) == (
        "backend.gpu: fallback_instance_types repeats instance_type g5.xlarge")


def test_fallback_repeating_the_default_instance_type() -> None:
    assert only_problem(backend(type="inferentia", fallback_instance_types=["inf2.xlarge"])) == (
        "backend.inferentia: fallback_instance_types repeats instance_type inf2.xlarge")


def test_at_most_five_fallbacks() -> None:
    five = ["g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.12xlarge", "g5.16xlarge"]
    assert parse_fleet_spec(backend(type="gpu", fallback_instance_types=five)).backend.instance_types[1:] == five
    assert only_problem(backend(type="gpu", fallback_instance_types=[*five, "g5.24xlarge"])) == (
        "backend.gpu.fallback_instance_types: Tuple should have at most 5 items after validation, not 6")


# --- network ---------------------------------------------------------------------------------

def test_subnets_without_vpc_are_valid() -> None:
    spec = parse_fleet_spec(raw(network={"subnet_ids": ["subnet-12345678"]}))
    assert spec.network.vpc_id is None
    assert spec.network.subnet_ids == ("subnet-12345678",)


def test_vpc_without_subnets_rejected() -> None:
    assert only_problem(raw(network={"vpc_id": "vpc-12345678"})) == (
        "network: subnet_ids must list the fleet's subnets when vpc_id is given")


def test_repeated_subnet_rejected() -> None:
    network = {"vpc_id": "vpc-12345678", "subnet_ids": ["subnet-12345678", "subnet-87654321", "subnet-12345678"]}
    assert only_problem(raw(network=network)) == "network: subnet_ids repeats a subnet"


@pytest.mark.parametrize("vpc_id", ["vpc-1234567", "vpc-0123456789abcdef01", "vpc-ABCDEF12", "vpc_12345678",
                                    "12345678", "subnet-12345678"])
def test_malformed_vpc_id(vpc_id: str) -> None:
    problem = only_problem(raw(network={"vpc_id": vpc_id, "subnet_ids": ["subnet-12345678"]}))
    assert problem.startswith("network.vpc_id: String should match pattern")


@pytest.mark.parametrize("subnet_id", ["subnet-1234", "sub-12345678", "subnet-XYZ12345", "vpc-12345678"])
def test_malformed_subnet_id_names_its_position(subnet_id: str) -> None:
    problem = only_problem(raw(network={"subnet_ids": ["subnet-12345678", subnet_id]}))
    assert problem.startswith("network.subnet_ids.1: String should match pattern")


def test_at_most_sixteen_subnets() -> None:
    subnets = [f"subnet-{i:08x}" for i in range(17)]
    assert only_problem(raw(network={"subnet_ids": subnets})) == (
        "network.subnet_ids: Tuple should have at most 16 items after validation, not 17")
    assert parse_fleet_spec(raw(network={"subnet_ids": subnets[:16]})).network.subnet_ids == tuple(subnets[:16])


# --- capacity --------------------------------------------------------------------------------

@pytest.mark.parametrize("capacity", [
    {"min": 0, "desired": 0, "max": 1},
    {"min": 1, "desired": 1, "max": 1},
    {"min": 2, "desired": 5, "max": 100},
    {"min": 100, "desired": 100, "max": 100},
    {"desired": 1},
])
def test_ordered_capacity_accepted(capacity: dict[str, int]) -> None:
    spec = parse_fleet_spec(raw(capacity=capacity))
    assert spec.capacity.model_dump() == {"min": 1, "desired": 1, "max": 1, **capacity}


@pytest.mark.parametrize(("capacity", "got"), [
    ({"min": 2, "desired": 1, "max": 3}, "min=2, desired=1, max=3"),
    ({"min": 1, "desired": 4, "max": 3}, "min=1, desired=4, max=3"),
    ({"min": 5, "desired": 5, "max": 4}, "min=5, desired=5, max=4"),
    ({"desired": 2}, "min=1, desired=2, max=1"),
])
def test_unordered_capacity_rejected(capacity: dict[str, int], got: str) -> None:
    assert only_problem(raw(capacity=capacity)) == f"capacity: must satisfy min <= desired <= max (got {got})"


@pytest.mark.parametrize(("capacity", "expected"), [
    ({"max": 101}, "capacity.max: Input should be less than or equal to 100"),
    ({"min": 0, "desired": 0, "max": 0}, "capacity.max: Input should be greater than or equal to 1"),
    ({"min": -1}, "capacity.min: Input should be greater than or equal to 0"),
    ({"desired": 101, "max": 100}, "capacity.desired: Input should be less than or equal to 100"),
])
def test_capacity_bounds(capacity: dict[str, int], expected: str) -> None:
    assert only_problem(raw(capacity=capacity)) == expected


# --- tags ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["aws:owner", "AWS:owner", "eiplane:fleet", "EiPlane:x"])
def test_reserved_tag_prefixes_rejected(key: str) -> None:
    assert only_problem(raw(tags={key: "v"})) == f"tags: key {key!r} uses a reserved prefix (aws:, eiplane:)"


def test_every_reserved_key_is_named_in_one_problem() -> None:
    assert only_problem(raw(tags={"aws:a": "1", "ok": "2", "eiplane:b": "3"})) == (
        "tags: key 'aws:a' uses a reserved prefix (aws:, eiplane:); "
        "key 'eiplane:b' uses a reserved prefix (aws:, eiplane:)")


def test_forty_tags_allowed_forty_one_rejected() -> None:
    forty = {f"k{i}": "v" for i in range(40)}
    assert parse_fleet_spec(raw(tags=forty)).tags == forty
    assert only_problem(raw(tags={**forty, "k40": "v"})) == "tags: at most 40 tags (got 41)"


@pytest.mark.parametrize(("tags", "expected"), [
    ({"": "v"}, "tags: key '' must be 1-128 characters"),
    ({"k" * 129: "v"}, f"tags: key {'k' * 80!r}... (129 characters) must be 1-128 characters"),
    ({"k": "v" * 257}, "tags: value of 'k' is longer than 256 characters"),
    ({"k": "semi;colon"}, "tags: tag 'k' has characters EC2 and IAM tags do not allow: ';' "
                          "(allowed: letters, numbers, spaces and _ . : / = + - @)"),
])
def test_tag_key_value_rules(tags: dict[str, str], expected: str) -> None:
    assert only_problem(raw(tags=tags)) == expected


def test_longest_tag_key_and_value_allowed() -> None:
    tags = {"k" * 128: "v" * 256}
    assert parse_fleet_spec(raw(tags=tags)).tags == tags


# --- name, region, model ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["abc", "a-b", "fleet-1", "a" * 32, "a1-2-3"])
def test_valid_fleet_names(name: str) -> None:
    assert parse_fleet_spec(raw(name=name)).name == name


@pytest.mark.parametrize("name", ["ab", "a" * 33, "1abc", "-abc", "abc-", "Abc", "a_bc", "a.bc", "a bc"])
def test_invalid_fleet_names(name: str) -> None:
    assert only_problem(raw(name=name)).startswith("name: String should match pattern")


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1",
                                    "us-iso-east-1", "us-isob-east-1", "me-central-1"])
def test_valid_regions(region: str) -> None:
    assert parse_fleet_spec(raw(region=region)).region == region


@pytest.mark.parametrize("region", ["US-EAST-1", "us-east", "useast1", "us-east-12", "us_east_1", "", "global"])
def test_invalid_regions(region: str) -> None:
    assert only_problem(raw(region=region)).startswith("region: String should match pattern")


@pytest.mark.parametrize("slug", ["a", "resnet50", "ResNet_50.v2-final", "1", "x" * 63])
def test_valid_model_slugs(slug: str) -> None:
    spec = parse_fleet_spec(raw(model={"name": slug, "version": slug}))
    assert (spec.model.name, spec.model.version) == (slug, slug)


@pytest.mark.parametrize("slug", ["", "-x", ".x", "_x", "a b", "a/b", "x" * 64, "ü"])
def test_invalid_model_slugs_report_name_and_version(slug: str) -> None:
    found = problems(raw(model={"name": slug, "version": slug}))
    assert [p.split(":")[0] for p in found] == ["model.name", "model.version"]
    assert all("String should" in p for p in found)


# --- strictness ------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "location"), [
    ({"extra": 1}, "extra"),
    ({"network": {"security_groups": []}}, "network.security_groups"),
    ({"backend": {"type": "gpu", "ami": "ami-1"}}, "backend.gpu.ami"),
    ({"backend": {"type": "eia", "gpu": True}}, "backend.eia.gpu"),
    ({"backend": {"type": "inferentia", "cores": 2}}, "backend.inferentia.cores"),
    ({"capacity": {"min": 1, "spare": 1}}, "capacity.spare"),
    ({"model": {"name": "m", "version": "1", "uri": "s3://x"}}, "model.uri"),
])
def test_extra_keys_forbidden_at_every_level(overrides: dict[str, Any], location: str) -> None:
    assert only_problem(raw(**overrides)) == f"{location}: Extra inputs are not permitted"


def test_spec_is_frozen_at_every_level() -> None:
    spec = parse_fleet_spec(raw(network={"subnet_ids": ["subnet-12345678"]}))
    for target, field, value in [
        (spec, "name", "other"),
        (spec, "dry_run", True),
        (spec.backend, "instance_type", "g6.xlarge"),
        (spec.network, "vpc_id", "vpc-12345678"),
        (spec.capacity, "max", 50),
        (spec.model, "version", "2"),
    ]:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(target, field, value)
    assert spec.name == "demo-fleet" and spec.backend.instance_type == "g5.xlarge"


def test_spec_sequences_are_tuples_not_the_callers_lists() -> None:
    subnets = ["subnet-12345678"]
    fallbacks = ["g5.2xlarge"]
    spec = parse_fleet_spec(raw(network={"subnet_ids": subnets},
                                backend={"type": "gpu", "fallback_instance_types": fallbacks}))
    assert spec.network.subnet_ids == ("subnet-12345678",)
    assert spec.backend.fallback_instance_types == ("g5.2xlarge",)
    subnets.append("subnet-87654321")
    fallbacks.append("g5.4xlarge")
    assert spec.network.subnet_ids == ("subnet-12345678",)
    assert spec.backend.instance_types == ["g5.xlarge", "g5.2xlarge"]


@pytest.mark.parametrize(("model_class", "fields", "location", "message"), [
    (GpuBackend, {"instance_type": "m5.large"}, ("instance_type",),
     "Value error, 'm5.large' is not a gpu instance type; use g4dn, g5, g6 or g6e"),
    (EiaBackend, {"fallback_instance_types": ["g5.xlarge"]}, ("fallback_instance_types",),
     "Value error, 'g5.xlarge' is not an Elastic Inference host (m5 / c5); use m5 or c5"),
    (InferentiaBackend, {"fallback_instance_types": ["inf2.xlarge"]}, (),
     "Value error, fallback_instance_types repeats instance_type inf2.xlarge"),
])
def test_backend_models_locate_instance_type_problems(model_class: type[Any], fields: dict[str, Any],
                                                      location: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model_class(type=model_class.BACKEND, **fields)
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [(location, message)]


def test_validation_returns_new_object_not_the_input() -> None:
    source = raw()
    parse_fleet_spec(source)
    assert source == MINIMAL  # defaults are not written back into the caller's dict


# --- generated-spec review: regions that do not exist ----------------------------------------

@pytest.mark.parametrize(("region", "partition", "listed"), [
    ("xx-nowhere-9", "aws", "its regions: af-south-1, "),
    ("us-east-9", "aws", "its us- regions: us-east-1, us-east-2, us-west-1, us-west-2; "),
    ("eu-nowhere-1", "aws", "its eu- regions: eu-central-1, "),
    ("cn-south-7", "aws-cn", "its cn- regions: cn-north-1, cn-northwest-1; 2 in all"),
    ("us-gov-north-4", "aws-us-gov", "us-gov-east-1, us-gov-west-1"),
    ("us-isob-north-3", "aws-iso-b", "us-isob-east-1"),
])
def test_region_of_no_partition_is_named_with_the_partitions_regions(region: str, partition: str,
                                                                     listed: str) -> None:
    problem = only_problem(raw(region=region))
    assert problem.startswith(f"region: {region!r} is not a region of the {partition} partition (")
    assert listed in problem
    assert "botocore" in problem and len(problem) < 700


def test_region_of_a_partition_eiplane_writes_no_arns_for() -> None:
    assert only_problem(raw(region="eu-isoe-west-1")) == (
        "region: 'eu-isoe-west-1' is in the aws-iso-e partition, which eiplane does not support "
        "(aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b)")


# --- generated-spec review: no lax coercion --------------------------------------------------

@pytest.mark.parametrize(("overrides", "location", "message"), [
    ({"capacity": {"min": True}}, "capacity.min", "Input should be a valid integer"),
    ({"capacity": {"desired": "1"}}, "capacity.desired", "Input should be a valid integer"),
    ({"capacity": {"max": 1.0}}, "capacity.max", "Input should be a valid integer"),
    ({"capacity": {"max": None}}, "capacity.max", "Input should be a valid integer"),
    ({"dry_run": "no"}, "dry_run", "Input should be a valid boolean"),
    ({"dry_run": 0}, "dry_run", "Input should be a valid boolean"),
    ({"scaling": {"enabled": "yes"}}, "scaling.enabled", "Input should be a valid boolean"),
    ({"scaling": {"warm_pool_prefill": 1}}, "scaling.warm_pool_prefill", "Input should be a valid boolean"),
    ({"scaling": {"warm_pool_size": 2.0}}, "scaling.warm_pool_size", "Input should be a valid integer"),
    ({"scaling": {"capacity_per_instance_rps": "50"}}, "scaling.capacity_per_instance_rps",
     "Input should be a valid number"),
    ({"scaling": {"capacity_per_instance_rps": True}}, "scaling.capacity_per_instance_rps",
     "Input should be a valid number"),
    ({"scaling": {"target_utilisation": "0.5"}}, "scaling.target_utilisation", "Input should be a valid number"),
    ({"scaling": {"target_utilisation": float("nan")}}, "scaling.target_utilisation",
     "Input should be a finite number"),
    ({"scaling": {"capacity_per_instance_rps": float("inf")}}, "scaling.capacity_per_instance_rps",
     "Input should be a finite number"),
    ({"backend": {"type": "gpu", "root_volume_gib": "200"}}, "backend.gpu.root_volume_gib",
     "Input should be a valid integer"),
    ({"backend": {"type": "gpu", "root_volume_gib": 200.0}}, "backend.gpu.root_volume_gib",
     "Input should be a valid integer"),
    ({"model": {"name": "m", "version": 1}}, "model.version", "Input should be a valid string"),
    ({"tags": {"team": 7}}, "tags.team", "Input should be a valid string"),
])
def test_scalars_are_strict(overrides: dict[str, Any], location: str, message: str) -> None:
    assert only_problem(raw(**overrides)) == f"{location}: {message}"


def test_numbers_take_json_integers_and_tuples_take_json_arrays() -> None:
    spec = parse_fleet_spec(raw(scaling={"capacity_per_instance_rps": 50, "target_utilisation": 1},
                                network={"subnet_ids": ["subnet-12345678"]},
                                backend={"type": "gpu", "fallback_instance_types": ["g6.xlarge"]},
                                model={"name": "m", "version": "1", "precisions": ["fp16"]}))
    assert spec.scaling.capacity_per_instance_rps == 50.0 and spec.scaling.target_utilisation == 1.0
    assert spec.network.subnet_ids == ("subnet-12345678",)
    assert spec.backend.fallback_instance_types == ("g6.xlarge",)
    assert spec.model.precisions == ("fp16",)


@pytest.mark.parametrize("event", ["provision_fleet_gpu.json", "provision_fleet_inferentia.json",
                                   "provision_fleet_eia.json"])
def test_a_dumped_spec_parses_again_strictly(event: str) -> None:
    """The states after the first parse a dump of the valid spec (python and JSON mode alike)."""
    spec = parse_fleet_spec(load_event(event))
    assert FleetSpec.model_validate(spec.model_dump(mode="json")) == spec
    assert FleetSpec.model_validate(json.loads(spec.model_dump_json())) == spec
    assert FleetSpec.model_validate_json(spec.model_dump_json()) == spec


# --- generated-spec review: tag characters ---------------------------------------------------

@pytest.mark.parametrize(("tags", "shown"), [
    ({"team\n": "ml"}, "'\\n'"),
    ({"team": "a\tb"}, "'\\t'"),
    ({"team": "\x0b"}, "'\\x0b'"),
    ({"team": "nul\x00"}, "'\\x00'"),
    ({"te\x7fam": "x"}, "'\\x7f'"),
    ({"team": "bidi\u202eoverride"}, "'\\u202e'"),
    ({"team": "a;b<c>"}, "';<>'"),
])
def test_tag_control_and_other_characters_rejected(tags: dict[str, str], shown: str) -> None:
    problem = only_problem(raw(tags=tags))
    assert problem.startswith("tags: tag ")
    assert f"has characters EC2 and IAM tags do not allow: {shown} " in problem


@pytest.mark.parametrize("tags", [
    {"Équipe": "données", "チーム": "機械学習", "команда": "ml"},
    {"cost center": "4711 / ops", "a_b.c:d/e=f+g-h@i": ""},
    {"k": "٣٤"},  # numbers of any script (\p{N})
])
def test_tag_characters_aws_allows(tags: dict[str, str]) -> None:
    assert parse_fleet_spec(raw(tags=tags)).tags == tags


# --- generated-spec review: image parameter paths --------------------------------------------

@pytest.mark.parametrize("parameter", ["/aws/service/deeplearning/ami/x86_64/base/latest/ami-id",
                                       "/eiplane/images/gpu", "/eiplane/a.b_c-d"])
def test_image_parameter_under_what_plan_launch_reads(parameter: str) -> None:
    spec = parse_fleet_spec(backend(type="gpu", image_parameter=parameter))
    assert spec.backend.resolved_image_parameter == parameter


@pytest.mark.parametrize("parameter", ["/my/ami", "ami-0123456789abcdef0", "/aws/servicex/a", "/eiplane/",
                                       "/eiplane//a", "/eiplane/a b", "/eiplane/a:1", "eiplane/a", ""])
def test_image_parameter_elsewhere_is_refused(parameter: str) -> None:
    assert only_problem(backend(type="gpu", image_parameter=parameter)) == (
        f"backend.gpu.image_parameter: {parameter!r} is not an SSM parameter under /aws/service/ or /eiplane/ "
        "(what PlanLaunch may read), named of letters, digits and _ . - /")


# --- generated-spec review: bounded messages -------------------------------------------------

MESSAGE_BOUND = 8_192


def message_of(spec: Any) -> str:
    with pytest.raises(InvalidFleetSpec) as caught:
        parse_fleet_spec(spec)
    return str(caught.value)


@pytest.mark.parametrize("spec", [
    raw(name="a" * 1_000_000),
    raw(**{"x" * 1_000_000: 1}),
    raw(**{f"extra_{i}": i for i in range(5_000)}),
    raw(tags={f"k{i}\n": "v" * 300 for i in range(2_000)}),
    raw(tags={"k" * 1_000_000: "v" * 1_000_000}),
    raw(backend={"type": "t" * 1_000_000}),
    raw(backend={"type": "gpu", "instance_type": "g" * 1_000_000}),
    raw(backend={"type": "gpu", "fallback_instance_types": ["g" * 1_000_000] * 5}),
    raw(region="us-east-1" + "\U0001F600" * 100_000),
    raw(model={"name": "m", "version": "1", "precisions": ["x" * 1_000_000] * 1000}),
    raw(tags={"\U0001F600" * 100 + str(i): "\U0001F600" * 300 for i in range(40)}),
])
def test_a_giant_input_makes_a_short_message(spec: dict[str, Any]) -> None:
    message = message_of(spec)
    assert len(json.dumps(message)) < MESSAGE_BOUND
    assert message.startswith("fleet spec has ")


def test_problems_beyond_twenty_are_counted() -> None:
    message = message_of(raw(**{f"extra_{i:04d}": i for i in range(5_000)}))
    assert message.startswith("fleet spec has 5000 problems: extra_0000: Extra inputs are not permitted; ")
    assert message.endswith("; extra_0019: Extra inputs are not permitted; and 4980 more")


def test_a_long_value_is_quoted_at_most_eighty_characters() -> None:
    problem = only_problem(raw(backend={"type": "tpu" * 1000}))
    assert problem == (f"backend: Input tag {('tpu' * 1000)[:80]!r}... (3000 characters) found using 'type' does not "
                       "match any of the expected tags: 'eia', 'gpu', 'inferentia'")
    # at most 80 characters, and at most 240 once JSON-escaped (é: 6)
    assert only_problem(raw(**{"é" * 100: 1})) == f"{'é' * 40!r}... (100 characters): Extra inputs are not permitted"
    assert only_problem(raw(**{"a\nb": 1})) == "'a\\nb': Extra inputs are not permitted"


# --- serving ---------------------------------------------------------------------------------

def test_serving_defaults_are_documented_values() -> None:
    serving = parse_fleet_spec(raw()).serving
    assert (serving.port, serving.effective_listener_port, serving.protocol) == (8080, 80, "HTTP")
    assert (serving.deregistration_delay_s, serving.latency_p99_ms, serving.max_queue) == (30, 100, 64)
    assert (serving.health_check.interval_s, serving.health_check.timeout_s) == (10, 5)


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_an_endpoint_open_to_the_internet_is_refused(cidr: str) -> None:
    assert only_problem(raw(serving={"allowed_cidrs": ["10.0.0.0/8", cidr]})) == (
        f"serving.allowed_cidrs: {cidr} opens the endpoint to the whole internet: list the networks that call it")


def test_a_cidr_with_host_bits_is_not_a_cidr_block() -> None:
    assert only_problem(raw(serving={"allowed_cidrs": ["10.0.0.1/8"]})) == (
        "serving.allowed_cidrs: '10.0.0.1/8' is not a CIDR block (address/prefix, host bits zero)")


def test_a_health_check_timeout_must_be_below_its_interval() -> None:
    assert only_problem(raw(serving={"health_check": {"interval_s": 5, "timeout_s": 5}})) == (
        "serving.health_check: timeout_s (5) must be less than interval_s (5)")


def test_a_certificate_makes_the_listener_https_on_443_and_must_be_of_the_region() -> None:
    certificate = "arn:aws:acm:{}:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    serving = parse_fleet_spec(raw(serving={"certificate_arn": certificate.format("us-east-1")})).serving
    assert (serving.protocol, serving.effective_listener_port) == ("HTTPS", 443)
    assert only_problem(raw(serving={"certificate_arn": certificate.format("eu-west-1")})) == (
        "spec: serving.certificate_arn is in eu-west-1, the fleet in us-east-1: a load balancer takes a "
        "certificate of its own region")


def test_the_serving_port_may_not_be_one_the_instance_uses() -> None:
    assert only_problem(raw(serving={"port": 25888})) == (
        "serving.port: 25888 is reserved on the instances (22, 25888)")


def test_a_rollout_that_could_never_take_an_instance_out_is_refused() -> None:
    problem = only_problem(raw(rollout={"max_surge": 0}))  # min_healthy_percent 100 by default
    assert problem.startswith("rollout: ") and "min_healthy_percent" in problem
    assert parse_fleet_spec(raw(rollout={"max_surge": 0, "min_healthy_percent": 50})).rollout.max_surge == 0
    assert "batch_percent" in only_problem(raw(rollout={"batch_percent": 0}))
    assert "alarms" in only_problem(raw(rollout={"alarms": ["bad\nname"]}))
