"""The scaling policy (eiplane.capacity.policy): pure decisions, each with a reason."""

from __future__ import annotations

import math
import random

import pytest
from pydantic import ValidationError

from eiplane.capacity.policy import (
    MINUTES_PER_DAY,
    Observation,
    PolicySettings,
    ReasonCode,
    Slot,
    SlotState,
    forecast,
    instance_capacity,
    jumps_last,
    plan,
)

CAP = 100.0


def steady(level: float, minutes: int = 120, seed: int = 0) -> list[float | None]:
    rng = random.Random(seed)  # noqa: S311 - test data
    return [level * (1 + rng.uniform(-0.01, 0.01)) for _ in range(minutes)]


def observe(history: list[float | None], ready: int, launching: tuple[float, ...] = (), max_size: int = 100,
            min_size: int = 0, **extra: int | None) -> Observation:
    return Observation.simple(history, ready=ready, launching=launching, capacity_per_instance_rps=CAP, max_size=max_size,
                              min_size=min_size, **extra)


def test_steady_fleet_holds_with_a_reason() -> None:
    decision = plan(observe(steady(1000), ready=11))
    assert decision.code is ReasonCode.HOLD_STEADY
    assert decision.launch == 0 and decision.terminate == []
    assert "covers it" in decision.reason and decision.forecast is not None


def test_bounded_by_max_and_says_so() -> None:
    decision = plan(observe(steady(5000), ready=3, max_size=8))
    assert decision.code is ReasonCode.SCALE_OUT_FORECAST
    assert decision.desired == 8 and decision.launch == 5
    assert "capped at max 8" in decision.reason and decision.needed_launch is not None and decision.needed_launch > 8


def test_fleet_at_max_does_not_ask_for_more() -> None:
    decision = plan(observe(steady(5000), ready=8, max_size=8))
    assert decision.code is ReasonCode.HOLD_AT_MAX
    assert decision.launch == 0 and decision.desired == 8
    assert "at max 8" in decision.reason and "not asking for more" in decision.reason


def test_fleet_above_max_is_cut_even_while_warming_not_yet_ready_first() -> None:
    decision = plan(observe(steady(100), ready=6, launching=(2.0, 5.0), max_size=5, last_scale_out_minute=119))
    assert decision.code is ReasonCode.SCALE_IN_TO_MAX
    assert decision.terminate == ["launching-1", "launching-0", "ready-0"]


def test_bounded_by_min() -> None:
    decision = plan(observe(steady(0.0), ready=1, min_size=3))
    assert decision.code is ReasonCode.SCALE_OUT_MIN and decision.desired == 3 and decision.launch == 2
    idle = plan(observe(steady(0.0), ready=3, min_size=3))
    assert idle.terminate == [] and idle.desired == 3


def test_launching_capacity_counts_as_coming() -> None:
    first = plan(observe(steady(1000), ready=5))
    assert first.launch > 0
    launched = tuple(6.0 for _ in range(first.launch))
    again = plan(observe(steady(1000), ready=5, launching=launched))
    assert again.launch == 0, again.reason
    assert "launching (counted as coming)" in again.reason


def test_surge_scales_out_with_reason() -> None:
    history = [*steady(500), 2000.0]
    decision = plan(observe(history, ready=6))
    assert decision.code is ReasonCode.SCALE_OUT_SURGE
    assert decision.launch >= 20 - 6  # at least the newest minute's demand
    assert "surge" in decision.reason and "2000 req/s" in decision.reason


def test_scale_in_held_during_cooldown_after_scale_out() -> None:
    obs = observe(steady(300), ready=20, last_scale_out_minute=110)
    decision = plan(obs)
    assert decision.code is ReasonCode.HOLD_COOLDOWN and decision.terminate == []
    assert "cool-down" in decision.reason
    later = plan(observe(steady(300), ready=20, last_scale_out_minute=100))
    assert later.code is ReasonCode.SCALE_IN and len(later.terminate) == 20 - later.desired


def test_scale_in_held_while_instances_warm_up() -> None:
    strict = PolicySettings(cancel_surplus_launches=False)
    decision = plan(observe(steady(300), ready=20, launching=(3.0,)), strict)
    assert decision.code is ReasonCode.HOLD_WARMING_UP and decision.terminate == []
    assert "warm up" in decision.reason
    # by default only the not-yet-ready slot goes; no ready instance is drained while one warms up
    default = plan(observe(steady(300), ready=20, launching=(3.0,)))
    assert default.terminate == ["launching-0"]
    assert "held while slots warm up" in default.reason


def test_scale_in_chooses_not_yet_ready_slots_first() -> None:
    decision = plan(observe(steady(1000), ready=11, launching=(1.0, 4.0, 2.0)))
    assert decision.code is ReasonCode.SCALE_IN
    assert decision.terminate == ["launching-1", "launching-2", "launching-0"]  # furthest from ready first


def test_scale_in_never_touches_a_slot_mid_validation() -> None:
    validating = [Slot(id=f"v{i}", state=SlotState.VALIDATING, minutes_until_ready=2.0) for i in range(3)]
    ready = [Slot(id=f"r{i}", state=SlotState.READY) for i in range(11)]
    obs = Observation(history=steady(300), history_end_minute=119, slots=[*ready, *validating],
                      capacity_per_instance_rps=CAP, max_size=20)
    decision = plan(obs)
    # far too many for 300 req/s, but the only not-yet-ready slots are being validated: nothing is cancelled,
    # and no ready instance is drained while they warm up
    assert decision.code is ReasonCode.HOLD_WARMING_UP and decision.terminate == []
    assert decision.launching == 3
    # a cancellable launching slot goes, the validating ones stay
    launching = Slot(id="l0", state=SlotState.LAUNCHING, minutes_until_ready=5.0)
    mixed = plan(obs.model_copy(update={"slots": [*ready, *validating, launching]}))
    assert mixed.code is ReasonCode.SCALE_IN and mixed.terminate == ["l0"]


def test_cut_to_max_skips_slots_mid_validation() -> None:
    validating = [Slot(id=f"v{i}", state=SlotState.VALIDATING, minutes_until_ready=1.0) for i in range(2)]
    ready = [Slot(id=f"r{i}", state=SlotState.READY) for i in range(5)]
    obs = Observation(history=steady(100), history_end_minute=119, slots=[*ready, *validating],
                      capacity_per_instance_rps=CAP, max_size=4)
    decision = plan(obs)
    assert decision.code is ReasonCode.SCALE_IN_TO_MAX
    assert decision.terminate == ["r0", "r1", "r2"] and decision.desired == 4
    assert not set(decision.terminate) & {"v0", "v1"}


def test_scale_in_drains_ready_least_throughput_first() -> None:
    slots = [Slot(id=f"r{i}", state=SlotState.READY, throughput_rps=tp) for i, tp in enumerate((120.0, 80.0, 100.0, 100.0))]
    obs = Observation(history=steady(100), history_end_minute=119, slots=slots, capacity_per_instance_rps=CAP, max_size=10)
    decision = plan(obs)
    assert decision.code is ReasonCode.SCALE_IN
    assert decision.terminate[0] == "r1"


@pytest.mark.parametrize("history", [[*steady(300)[:-1], None], [*steady(300)[:-3], None, None, None]])
def test_missing_metrics_hold_and_never_scale_in(history: list[float | None]) -> None:
    decision = plan(observe(history, ready=20))
    assert decision.code is ReasonCode.HOLD_METRICS_MISSING
    assert decision.terminate == [] and decision.launch == 0 and decision.desired == 20
    assert "missing" in decision.reason and "never scaling in" in decision.reason


def test_late_metrics_hold_and_never_scale_in() -> None:
    history = steady(300)
    obs = Observation.simple(history, ready=20, capacity_per_instance_rps=CAP, max_size=100, history_end_minute=1000)
    late = obs.model_copy(update={"now_minute": 1010})
    decision = plan(late)
    assert decision.code is ReasonCode.HOLD_METRICS_MISSING and decision.terminate == []
    assert "10 minutes old" in decision.reason


def test_missing_metrics_still_honour_min() -> None:
    decision = plan(observe([None, None], ready=0, min_size=2))
    assert decision.code is ReasonCode.SCALE_OUT_MIN and decision.launch == 2


def test_missing_minutes_inside_history_are_skipped() -> None:
    history = steady(1000)
    history[50:60] = [None] * 10
    decision = plan(observe(history, ready=11))
    assert decision.code is ReasonCode.HOLD_STEADY


def test_measured_throughput_sets_instance_capacity() -> None:
    slots = [Slot(id=f"r{i}", state=SlotState.READY, throughput_rps=200.0) for i in range(3)]
    slots.append(Slot(id="d", state=SlotState.DRAINING, throughput_rps=10.0))
    obs = Observation(history=steady(1000), history_end_minute=119, slots=slots, capacity_per_instance_rps=CAP, max_size=100)
    assert instance_capacity(obs) == 200.0
    decision = plan(obs)
    assert decision.capacity_per_instance_rps == 200.0
    assert 5 <= decision.desired <= 7  # 1000 req/s at 200 each, plus headroom
    assert "200 req/s per instance" in decision.reason


def test_seasonal_forecast_launches_ahead_of_a_daily_ramp() -> None:
    # every day demand steps from 1000 to 3000 at 10:00; now is 09:54 on day 4
    def demand(minute: int) -> float:
        return 3000.0 if 600 <= minute % MINUTES_PER_DAY < 1200 else 1000.0

    now = 3 * MINUTES_PER_DAY + 594
    history: list[float | None] = [demand(m) * (1 + 0.01 * math.sin(m)) for m in range(now + 1)]
    decision = plan(observe(history, ready=11))
    assert decision.forecast is not None and decision.forecast.method == "daily"
    assert decision.code is ReasonCode.SCALE_OUT_FORECAST
    assert decision.desired >= 30, decision.reason
    assert "daily forecast" in decision.reason
    # the recent level alone cannot see it coming
    blind = plan(observe(history, ready=11), PolicySettings(seasonal=False))
    assert blind.desired < 15


def with_jumps(minutes: int, every: int, lasting: int, level: float = 1000.0, factor: float = 2.0) -> list[float | None]:
    """A steady level with a jump to `factor` x every `every` minutes that lasts `lasting` minutes."""
    history = steady(level, minutes)
    for start in range(every, minutes - every, every):
        for minute in range(start, min(minutes, start + lasting)):
            history[minute] = level * factor
    return history


def test_jumps_last_tells_flash_crowds_from_bursts() -> None:
    s = PolicySettings()  # L = 6: a jump lasted if it was still up 7 minutes on
    crowds = jumps_last(with_jumps(1440, every=120, lasting=40), s)
    bursts = jumps_last(with_jumps(1440, every=120, lasting=3), s)
    assert crowds == (True, 10, 10)
    assert bursts == (False, 10, 0)
    # too few jumps to learn from: taken to last (react at once, as before any history)
    assert jumps_last(with_jumps(300, every=120, lasting=3), s)[0] is True
    # a missing minute leaves out only the jumps whose reference minutes it falls in: before the first jump here,
    # it leaves every one of them counted
    gappy = with_jumps(1440, every=120, lasting=3)
    gappy[100] = None
    assert jumps_last(gappy, s) == (False, 10, 0)
    gappy[115] = None  # in the first jump's reference minutes (110-119)
    assert jumps_last(gappy, s) == (False, 9, 0)


def test_a_burst_where_bursts_never_last_is_sized_for_what_has_lasted_of_it() -> None:
    # bursts of 3 minutes at 2x every 2 hours for a day; now a new one's first minute, at 2x, beyond 11 instances
    history = [*with_jumps(1440, every=120, lasting=3), 2000.0]
    decision = plan(observe(history, ready=11))
    assert decision.desired < 15, decision.reason  # not the 20+ the newest minute alone would need
    assert "the least of the last 2 min" in decision.reason and "0 lasted the 7 min a launch takes" in decision.reason
    # the same minute after a day of flash crowds that lasted: launched for at once, rise carried on until ready
    crowds = [*with_jumps(1440, every=120, lasting=40), 2000.0]
    surge = plan(observe(crowds, ready=11))
    assert surge.code is ReasonCode.SCALE_OUT_SURGE
    assert surge.desired >= 20 + 7 * 10, surge.reason  # 2000 req/s rising ~1000 a minute, 7 minutes of it
    assert "7 min of the rise" in surge.reason


def test_a_minute_within_the_fleet_is_never_discounted() -> None:
    history = [*with_jumps(1440, every=120, lasting=3), 1050.0]
    decision = plan(observe(history, ready=11))
    assert "the least of the last" not in decision.reason


def test_the_headroom_remembers_the_days_forecast_errors_not_only_the_last_hours() -> None:
    # a quiet night after a day of swings (18 hours of it, ending 7 hours ago): a day of backtest knows how wrong
    # forecasts were then, four quiet hours do not
    history = steady(1000, 1500)
    for minute in range(0, 1080):
        history[minute] = 1000.0 * (1.3 if (minute // 7) % 2 else 0.8)
    day = forecast(observe(history, ready=11), PolicySettings(seasonal=False))
    hours = forecast(observe(history, ready=11), PolicySettings(seasonal=False, backtest_minutes=240))
    assert day is not None and hours is not None
    assert day.headroom > hours.headroom + 0.05, (day.headroom, hours.headroom)


def test_the_daily_method_is_tried_from_the_first_day_of_history() -> None:
    # a day and a bit of a sharp daily step at 10:00: yesterday already shows it
    def demand(minute: int) -> float:
        return 3000.0 if 600 <= minute % MINUTES_PER_DAY < 1200 else 1000.0

    now = MINUTES_PER_DAY + 594
    history: list[float | None] = [demand(m) * (1 + 0.01 * math.sin(m)) for m in range(now + 1)]
    decision = plan(observe(history, ready=11))
    assert decision.forecast is not None and decision.forecast.method == "daily", decision.reason
    assert decision.desired >= 30, decision.reason
    waiting = plan(observe(history, ready=11), PolicySettings(min_daily_lags=3))  # the rule before: 3 days first
    assert waiting.desired < 15


def test_decisions_are_deterministic() -> None:
    history = steady(1500, minutes=400, seed=3)
    obs = observe(history, ready=10, launching=(2.0,))
    assert plan(obs).model_dump() == plan(obs).model_dump()


def test_every_decision_has_a_reason() -> None:
    rng = random.Random(7)  # noqa: S311 - test data
    codes = set()
    for _ in range(150):
        history: list[float | None] = [rng.uniform(0, 3000) for _ in range(rng.randrange(0, 90))]
        if history and rng.random() < 0.2:
            history[-1] = None
        low = rng.randrange(0, 5)
        launching = tuple(rng.uniform(0, 6) for _ in range(rng.randrange(3)))
        obs = observe(history or [None], ready=rng.randrange(0, 40), launching=launching,
                      min_size=low, max_size=low + rng.randrange(0, 50),
                      last_scale_out_minute=rng.choice([None, len(history) - 3]))
        decision = plan(obs, PolicySettings(cancel_surplus_launches=rng.random() < 0.5))
        assert decision.reason.strip() and decision.code
        assert obs.min_size <= decision.desired <= obs.max_size or decision.code is ReasonCode.HOLD_METRICS_MISSING
        codes.add(decision.code)
    assert len(codes) >= 6


def test_observation_validates() -> None:
    with pytest.raises(ValidationError):
        Observation(history=[1.0], history_end_minute=0, capacity_per_instance_rps=CAP, min_size=5, max_size=2)
    with pytest.raises(ValidationError):
        Observation(history=[-1.0], history_end_minute=0, capacity_per_instance_rps=CAP, max_size=2)
    with pytest.raises(ValidationError):
        Observation(history=[1.0], history_end_minute=10, now_minute=5, capacity_per_instance_rps=CAP, max_size=2)
