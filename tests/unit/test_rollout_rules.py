"""The rollout's pure rules: what its guardrails call a bad bake."""

from __future__ import annotations

import copy
from typing import Any

from eiplane.models.spec import FleetSpec, parse_fleet_spec
from eiplane.rollout import MIN_REQUESTS_FOR_P99, guardrail_verdict, target_group_dimension
from tests.unit.test_spec import MINIMAL


def spec(**rollout: Any) -> FleetSpec:
    raw = copy.deepcopy(MINIMAL)
    raw["serving"] = {"latency_p99_ms": 100}
    raw["rollout"] = rollout
    return parse_fleet_spec(raw)


def test_a_bake_within_every_limit_passes() -> None:
    assert guardrail_verdict(spec(), requests=1000, errors_5xx=10, latency_p99_ms=99.0, alarms_in_alarm=[]) is None
    assert guardrail_verdict(spec(), requests=0, errors_5xx=0, latency_p99_ms=None, alarms_in_alarm=[]) is None


def test_5xx_above_the_spec_s_share_fires() -> None:
    reason = guardrail_verdict(spec(), requests=1000, errors_5xx=11, latency_p99_ms=50.0, alarms_in_alarm=[])
    assert reason is not None and "11 of 1000 requests answered 5xx (1.10%" in reason
    assert guardrail_verdict(spec(max_5xx_percent=2), requests=1000, errors_5xx=11, latency_p99_ms=50.0,
                             alarms_in_alarm=[]) is None
    # no allowance at all: a single 5xx fires
    assert guardrail_verdict(spec(max_5xx_percent=0), requests=1000, errors_5xx=1, latency_p99_ms=50.0,
                             alarms_in_alarm=[]) is not None


def test_p99_above_the_objective_fires_only_with_enough_requests_to_mean_something() -> None:
    reason = guardrail_verdict(spec(), requests=MIN_REQUESTS_FOR_P99, errors_5xx=0, latency_p99_ms=150.0,
                               alarms_in_alarm=[])
    assert reason is not None and "p99 latency 150.0 ms > serving.latency_p99_ms 100" in reason
    assert guardrail_verdict(spec(), requests=MIN_REQUESTS_FOR_P99 - 1, errors_5xx=0, latency_p99_ms=150.0,
                             alarms_in_alarm=[]) is None


def test_an_alarm_in_alarm_fires_and_every_reason_is_given() -> None:
    reason = guardrail_verdict(spec(alarms=["model-errors"]), requests=100, errors_5xx=50, latency_p99_ms=500.0,
                               alarms_in_alarm=["model-errors"])
    assert reason is not None
    assert reason.split("; ")[0] == "alarm(s) in ALARM: model-errors" and "5xx" in reason and "p99" in reason


def test_the_target_group_dimension_is_as_the_alb_names_it() -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/eiplane-demo/0123456789abcdef"
    assert target_group_dimension(arn) == "targetgroup/eiplane-demo/0123456789abcdef"
