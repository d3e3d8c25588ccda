"""eiplane.matching.fleet_view and the tick's input model: how slot records and EventBridge
events become what the policy and the workflow see (pure, no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eiplane.capacity.policy import SlotState
from eiplane.local.engine import event_matches
from eiplane.matching.fleet_view import measured_throughput, pending_slots, policy_slots, slot_id, slot_index
from eiplane.models.matching import Tick, TickEvent, TickRequest


def validation(fp32: dict[str, float], passed: bool = True, **extra: Any) -> dict[str, Any]:
    """A validation summary: per format, the fp32 batch-1 throughput."""
    return {"passed": passed, "formats": {
        fmt: {"precisions": {"fp32": {"passed": True, "latency": {"1": {"throughput_per_s": rate}, "8": {
            "throughput_per_s": rate * 10}}}, **extra}} for fmt, rate in fp32.items()}}


def test_measured_throughput_is_the_faster_format_at_batch_one_in_the_serving_precision() -> None:
    summary = validation({"torchscript": 900.0, "torch_export": 700.0})
    assert measured_throughput(summary) == 900.0
    assert measured_throughput(summary, "bf16") is None  # not validated in bf16
    assert measured_throughput(validation({"torchscript": 900.0}, passed=False)) is None
    assert measured_throughput(None) is None


RUNNING = {"i-ready", "i-driven", "i-orphan", "i-draining"}


def records() -> dict[int, dict[str, Any]]:
    return {
        0: {"state": "in_service", "instance_id": "i-ready", "validation": validation({"torchscript": 800.0})},
        1: {"state": "artifact_verified", "instance_id": "i-driven", "execution": "arn:running"},
        2: {"state": "registered", "instance_id": "i-orphan", "execution": "arn:stopped"},
        3: {"state": "draining", "instance_id": "i-draining"},
        4: {"state": "in_service", "instance_id": "i-gone"},  # terminated behind our back
        5: {"state": "warm", "instance_id": "i-stopped"},
        6: {"state": "failed", "instance_id": None},
        7: {"state": "planned", "execution": "arn:running"},  # reserved by a running execution
        8: {"state": "planned", "execution": "arn:stopped", "instance_id": "i-old"},  # its execution stopped
    }


def test_slots_are_classified_for_the_policy() -> None:
    slots = {s.id: s for s in [*policy_slots(records(), RUNNING, {"arn:running"}, launch_minutes=6),
                               *pending_slots(1, launch_minutes=6)]}
    assert slots["slot-0000"].state is SlotState.READY and slots["slot-0000"].throughput_rps == 800.0
    assert slots["slot-0001"].state is SlotState.VALIDATING  # its execution runs: never touched
    assert slots["slot-0002"].state is SlotState.LAUNCHING  # nothing drives it: may be cancelled
    assert slots["slot-0002"].minutes_until_ready > slots["slot-0001"].minutes_until_ready
    assert slots["slot-0007"].state is SlotState.VALIDATING  # planned by a running execution: coming
    assert slots["pending-0"].state is SlotState.VALIDATING  # a running scale-out's, not recorded yet
    # draining, gone, pooled, failed slots and plans of stopped executions are not capacity
    assert set(slots) == {"slot-0000", "slot-0001", "slot-0002", "slot-0007", "pending-0"}


def test_the_configured_capacity_caps_what_validation_measured() -> None:
    capped = policy_slots(records(), RUNNING, set(), launch_minutes=6, configured_rps=250.0)
    assert next(s for s in capped if s.id == "slot-0000").throughput_rps == 250.0
    above = policy_slots(records(), RUNNING, set(), launch_minutes=6, configured_rps=5000.0)
    assert next(s for s in above if s.id == "slot-0000").throughput_rps == 800.0


def test_slot_ids_round_trip_and_pending_slots_have_no_index() -> None:
    assert slot_index(slot_id(12)) == 12 and slot_index("pending-0") is None


SCHEDULED = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
             "time": "2026-11-27T13:05:00Z", "resources": ["arn:aws:events:us-east-1:1:rule/r"], "detail": {}}
ALARM = {"version": "0", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
         "time": "2026-11-27T13:06:00Z",
         "detail": {"alarmName": "prod-surge-demo-gpu", "state": {"value": "ALARM"}, "previousState": {"value": "OK"}}}


@pytest.mark.parametrize(("event", "trigger", "alarm"), [
    (SCHEDULED, "schedule", None),
    (ALARM, "alarm", "prod-surge-demo-gpu"),
    ({"fleets": ["demo-gpu"]}, "manual", None),
])
def test_tick_events_name_their_trigger(event: dict[str, Any], trigger: str, alarm: str | None) -> None:
    parsed = TickEvent.model_validate(event)
    assert parsed.trigger == trigger and parsed.alarm_name == alarm


def test_the_tick_takes_the_event_time_and_is_named_after_it() -> None:
    request = TickRequest(event=TickEvent.model_validate(SCHEDULED), context={"execution_id": "arn:x"})
    tick = Tick.of(request)
    assert tick.at == datetime(2026, 11, 27, 13, 5, tzinfo=UTC) and tick.id == "20261127T130500Z-schedule"
    assert tick.minute == int(tick.at.timestamp() // 60)
    manual = Tick.of(TickRequest(event=TickEvent(), context={"execution_id": "arn:x"}),
                     now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert manual.id == "20260102T030405Z-manual"


def test_the_engine_matches_the_templates_alarm_pattern() -> None:
    pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
               "detail": {"alarmName": [{"prefix": "prod-surge-"}], "state": {"value": ["ALARM"]}}}
    assert event_matches(pattern, ALARM)
    assert not event_matches(pattern, {**ALARM, "detail": {**ALARM["detail"], "state": {"value": "OK"}}})
    assert not event_matches(pattern, {**ALARM, "detail": {**ALARM["detail"], "alarmName": "other-alarm"}})
    assert not event_matches(pattern, SCHEDULED)
    with pytest.raises(ValueError, match="not supported"):
        event_matches({"source": [{"anything-but": "x"}]}, SCHEDULED)
