"""parse_fleet_spec on generated specs: the samples in events/, each mutated with wrong types, values
pydantic's lax mode would coerce, huge strings, control characters, unknown regions and extra keys.
Whatever the input, the parser returns a spec or raises InvalidFleetSpec with a short message whose
every problem names a field; never any other exception. Deterministic (derandomize): CI cannot flake."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from eiplane.errors import MAX_MESSAGE_CHARS, InvalidFleetSpec
from eiplane.models.spec import REGION_PATTERN, FleetSpec, known_regions, location_part, parse_fleet_spec
from tests.conftest import load_event

SAMPLES = [load_event(f"provision_fleet_{backend}.json") for backend in ("gpu", "inferentia", "eia")]
# Fields a sample may leave out, so that mutations reach them too.
OPTIONAL_PATHS: list[tuple[str | int, ...]] = [
    ("network", "vpc_id"), ("network", "subnet_ids"), ("network", "subnet_ids", 0),
    ("backend", "image_parameter"), ("backend", "root_volume_gib"), ("backend", "accelerator"),
    ("backend", "fallback_instance_types", 0), ("backend", "type"),
    ("scaling", "enabled"), ("scaling", "capacity_per_instance_rps"), ("scaling", "target_utilisation"),
    ("scaling", "warm_pool_size"), ("scaling", "warm_pool_prefill"),
    ("model", "precisions", 0), ("tags", "team"), ("dry_run",), ("region",), ("name",),
]
FIELDS = set(FleetSpec.model_fields)


def paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a value inside a sample (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


ALL_PATHS = sorted({p for sample in SAMPLES for p in paths(sample)} | set(OPTIONAL_PATHS), key=repr)

huge_strings = st.builds(lambda unit, count: unit * count,
                         st.sampled_from(["a", "g5.xlarge", "\n", "\x00", "é", "\U0001F600", "us-east-1", "ami-0"]),
                         st.integers(min_value=300, max_value=300_000))
control_strings = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Cs"]), min_size=1, max_size=5).map(
    lambda bad: "ok" + bad + "ok")
unknown_regions = st.from_regex(REGION_PATTERN, fullmatch=True).filter(
    lambda region: all(region not in regions for regions in known_regions().values()))
coerced = st.sampled_from([True, False, None, "1", "0", 1, 0, 1.0, 0.5, -1, "no", "yes", "true", "", "null",
                           10**30, -(10**30), float("nan"), float("inf"), [], {}, ["1"], {"a": 1}])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
bad_values = st.one_of(coerced, huge_strings, control_strings, unknown_regions, json_values,
                       st.text(max_size=40))
extra_keys = st.one_of(st.text(max_size=12), huge_strings, control_strings, st.sampled_from(sorted(FIELDS)))


def set_path(spec: Any, path: tuple[str | int, ...], value: Any) -> None:
    """Put (a copy of) value at path, making the dicts on the way; skip where the way is not a dict or list."""
    value = copy.deepcopy(value)  # good_values' dicts are shared by every example
    target = spec
    for step in path[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(step, {} if not isinstance(step, int) else [])
        elif isinstance(target, list) and isinstance(step, int) and step < len(target):
            target = target[step]
        else:
            return
    last = path[-1]
    if isinstance(target, dict):
        target[last] = value
    elif isinstance(target, list) and isinstance(last, int):
        if last < len(target):
            target[last] = value
        else:
            target.append(value)


def delete_path(spec: Any, path: tuple[str | int, ...]) -> None:
    target = spec
    for step in path[:-1]:
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(target, dict):
        target.pop(path[-1], None)
    elif isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target):
        del target[path[-1]]


# Values the spec takes, so that generated specs are accepted too, not only refused.
good_values = st.sampled_from([
    (("region",), "eu-west-1"), (("region",), "us-gov-west-1"), (("region",), "cn-north-1"),
    (("capacity",), {"min": 0, "desired": 0, "max": 100}), (("capacity", "max"), 100),
    (("scaling", "capacity_per_instance_rps"), 50), (("scaling", "capacity_per_instance_rps"), 12.5),
    (("scaling", "target_utilisation"), 1), (("scaling", "enabled"), False), (("scaling", "warm_pool_size"), 3),
    (("tags", "Équipe"), "données"), (("tags", "cost center"), "a1 b2/c=3+d@e.f:g_h"), (("tags",), {}),
    (("backend", "image_parameter"), "/eiplane/ami/gpu"), (("backend", "root_volume_gib"), 4096),
    (("dry_run",), True), (("network", "subnet_ids"), ["subnet-12345678"]),
    (("model", "precisions"), ["bf16"]), (("name",), "a" * 32),
])

mutations = st.one_of(
    good_values.map(lambda pair: ("set", *pair)),
    st.tuples(st.just("set"), st.sampled_from(ALL_PATHS), bad_values),
    st.tuples(st.just("delete"), st.sampled_from(ALL_PATHS), st.none()),
    st.tuples(st.just("extra"), st.sampled_from([(), ("network",), ("backend",), ("capacity",), ("scaling",),
                                                 ("model",), ("tags",)]),
              st.tuples(extra_keys, bad_values)),
)


@st.composite
def generated_specs(draw: st.DrawFn) -> Any:
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        return draw(json_values)  # now and then not an object at all
    spec = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    for kind, path, value in draw(st.lists(mutations, min_size=1, max_size=4)):
        if kind == "set":
            set_path(spec, path, value)
        elif kind == "delete":
            delete_path(spec, path)
        else:
            key, extra = value
            set_path(spec, (*path, key), extra)
    return spec


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(generated_specs())
def test_a_generated_spec_parses_or_is_refused_with_a_short_message_naming_fields(raw: Any) -> None:
    try:
        spec = parse_fleet_spec(raw)
    except InvalidFleetSpec as exc:
        event("refused")
        message = str(exc)
        assert len(json.dumps(message)) <= MAX_MESSAGE_CHARS + 2  # the bound, as the Lambda error payload holds it
        assert re.match(r"fleet spec has \d+ problems?: ", message)
        assert exc.problems
        # Each problem starts with the field it is about: a field of the spec, or a key the input has.
        fields = [*FIELDS, *(location_part(key) for key in (raw if isinstance(raw, dict) else {}))]
        named = ("spec: ", *(f"{field}: " for field in fields), *(f"{field}." for field in fields))
        for problem in exc.problems:
            assert problem.startswith(named), problem
    else:
        # Accepted: the states after the first parse its dump again, and it round-trips.
        event("accepted")
        assert isinstance(spec, FleetSpec)
        assert any(spec.region in regions for regions in known_regions().values())
        assert FleetSpec.model_validate(json.loads(spec.model_dump_json())) == spec
