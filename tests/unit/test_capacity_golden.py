"""The faster policy and simulator decide exactly as the code before the speed-up did, and a ForecastCache changes nothing.

The golden values were recorded with the code as it was before (commit 2c30395): every decision the same (the
digest covers desired, launch, terminate and reason code of every plan() call), and the floats the same to 1e-9
(the forecast now adds each window on its own, where it used running sums: the last digits of a sum may differ).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from eiplane.capacity import simulate as sim
from eiplane.capacity import traces
from eiplane.capacity.policy import Decision, ForecastCache, Observation, PolicySettings, plan

GOLDEN_RUNS: dict[str, dict[str, Any]] = {
    "diurnal_3d": {"instance_hours": 1819.9333333333334, "violation_minutes": 2, "launches": 124, "ticks": 866,
                   "alarm_ticks": 2, "unserved_pct": 0.0002469857776585991, "plan_calls": 866, "decisions": "62887deb6378d2ec"},
    "flash_crowd": {"instance_hours": 552.5333333333333, "violation_minutes": 22, "launches": 158, "ticks": 594,
                    "alarm_ticks": 18, "unserved_pct": 1.8327946708467997, "plan_calls": 594, "decisions": "c63e2324fc752d2e"},
    "diurnal_9d": {"instance_hours": 5444.9, "violation_minutes": 3, "launches": 414, "ticks": 2594,  # weekly and daily too
                   "alarm_ticks": 2, "unserved_pct": 0.00028671699412757454, "plan_calls": 2594, "decisions": "35bdbe0d75006025"},
}
# The rules as they were then: the defaults have changed since (a day of backtest, the daily method from the first
# day, jumps that did not last discounted, lasting surges carried on), each with its own tests in test_capacity_policy.
PREVIOUS_RULES = {"backtest_minutes": 240, "min_daily_lags": 3, "reactive_minutes": 1, "lasting_surge_extrapolation": 1.0}
GOLDEN_TRACES = {"diurnal_3d": lambda: traces.diurnal(days=3), "flash_crowd": traces.flash_crowd,
                 "diurnal_9d": lambda: traces.diurnal(days=9)}

# (history, end, robust_errors, desired, launch, terminate, code, needed_launch, needed_keep,
#  forecast: method, level_ratio, headroom, peak_launch_rps, peak_keep_rps, error_mean, error_sd, backtest_samples,
#  expected_now_rps)
GOLDEN_PLANS = [
    ('short', 150, True, 6, 1, [], 'scale_out_forecast', 6, 6,
     ('recent', 479.4839499999995, 0.053602577914805494, 479.4839499999995, 479.4839499999995,
      -0.025427149271269253, 0.025880822494416242, 25, 479.59464999999983)),
    ('short', 150, False, 6, 1, [], 'scale_out_forecast', 6, 6,
     ('recent', 479.4839499999995, 0.05205119926007007, 479.4839499999995, 479.4839499999995,
      -0.026082306212013556, 0.02560802928047473, 25, 479.59464999999983)),
    ('short', 260, True, 5, 0, [], 'hold_steady', 5, 5,
     ('recent', 460.60460000000023, 0.07032913636357208, 460.60460000000023, 460.60460000000023,
      -0.021022753045778053, 0.02966298609908759, 47, 460.6512000000017)),
    ('short', 260, False, 5, 0, [], 'hold_steady', 5, 5,
     ('recent', 460.60460000000023, 0.06419836767880827, 460.60460000000023, 460.60460000000023,
      -0.02008786480002679, 0.02743655804361373, 47, 460.6512000000017)),
    ('short', 440, True, 12, 0, [], 'hold_metrics_missing', None, None, None),
    ('short', 440, False, 12, 0, [], 'hold_metrics_missing', None, None, None),
    ('short', 687, True, 20, 0, ['launching-1', 'launching-0'], 'scale_in', 10, 10,
     ('recent', 836.5860000000015, 0.109142019495722, 836.5860000000015, 836.5860000000015,
      0.018140096615681382, 0.0284822214717479, 46, 838.6168000000005)),
    ('short', 687, False, 20, 0, ['launching-1', 'launching-0'], 'scale_in', 10, 10,
     ('recent', 836.5860000000015, 0.11575122849767294, 836.5860000000015, 836.5860000000015,
      0.018344316288050968, 0.030394536429867558, 46, 838.6168000000005)),
    ('long', 10380, True, 19, 0, ['ready-0'], 'scale_in', 19, 19,
     ('recent', 1727.8916499999991, 0.04638436005507662, 1727.8916499999991, 1727.8916499999991,
      -0.03449613644453834, 0.026612297207696797, 49, 1732.4997499999997)),
    ('long', 10380, False, 19, 0, ['ready-0'], 'scale_in', 19, 19,
     ('recent', 1727.8916499999991, 0.06251020039071564, 1727.8916499999991, 1727.8916499999991,
      -0.03390770483449988, 0.031513975657527935, 49, 1732.4997499999997)),
    ('long', 10399, True, 30, 0, ['launching-0'], 'scale_in', 19, 19,
     ('weekly', 1.0673308725947155, 0.08233110109245634, 1674.9745059348409, 1674.9745059348409,
      -0.007667106976273337, 0.028928082997640145, 49, 1684.196237875954)),
    ('long', 10399, False, 30, 0, ['launching-0'], 'scale_in', 19, 19,
     ('recent', 1704.9261250000054, 0.06342510445853677, 1704.9261250000054, 1704.9261250000054,
      -0.03283495568586374, 0.03144329507461791, 49, 1710.5558125000098)),
]


def recorded_decisions(monkeypatch: pytest.MonkeyPatch) -> list[Decision]:
    """The decision of every plan() call the simulator makes from now on."""
    decisions: list[Decision] = []

    def recording(observation: Observation, settings: PolicySettings | None = None,
                  cache: ForecastCache | None = None) -> Decision:
        decisions.append(plan(observation, settings, cache))
        return decisions[-1]

    monkeypatch.setattr(sim, "plan", recording)
    return decisions


def digest(decisions: list[Decision]) -> str:
    """Of every decision's desired size, launches, slots to terminate and reason code."""
    rows = [(d.desired, d.launch, tuple(d.terminate), d.code.value) for d in decisions]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", list(GOLDEN_RUNS))
def test_the_simulator_reproduces_the_golden_runs(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = recorded_decisions(monkeypatch)
    summary = sim.simulate(GOLDEN_TRACES[name](), sim.EiplanePolicy(PolicySettings(**PREVIOUS_RULES)), sim.SimConfig(),
                           keep_timeline=False).summary
    golden = GOLDEN_RUNS[name]
    assert (summary.violation_minutes, summary.launches, summary.ticks, summary.alarm_ticks, len(calls)) == (
        golden["violation_minutes"], golden["launches"], golden["ticks"], golden["alarm_ticks"], golden["plan_calls"])
    assert digest(calls) == golden["decisions"]
    assert summary.instance_hours == pytest.approx(golden["instance_hours"], rel=1e-9)
    assert summary.unserved_pct == pytest.approx(golden["unserved_pct"], rel=1e-9)


def gappy(values: list[float], gaps: list[tuple[int, int]]) -> list[float | None]:
    history: list[float | None] = list(values)
    for start, length in gaps:
        history[start:start + length] = [None] * length
    return history


GAPPY = {"short": gappy(traces.flash_crowd(days=1)[:700], [(50, 1), (200, 3), (420, 30), (690, 2)]),
         "long": gappy(traces.diurnal(days=8)[-10400:], [(100, 5), (1500, 60), (4000, 1), (10390, 4)])}
FLEETS = {150: (5, ()), 260: (4, (3.0,)), 440: (12, ()), 687: (20, (1.0, 5.0)), 10380: (20, ()), 10399: (30, (2.0,))}


@pytest.mark.parametrize("golden", GOLDEN_PLANS,
                         ids=[f"{row[0]}-{row[1]}-{'robust' if row[2] else 'sd'}" for row in GOLDEN_PLANS])
def test_plan_reproduces_the_golden_decisions_on_histories_with_missing_minutes(golden: tuple[Any, ...]) -> None:
    label, end, robust, *decided, golden_forecast = golden
    ready, launching = FLEETS[end]
    observation = Observation.simple(GAPPY[label][:end + 1], ready=ready, launching=list(launching),
                                     capacity_per_instance_rps=100.0, max_size=60, min_size=2)
    decision = plan(observation, PolicySettings(robust_errors=robust, **PREVIOUS_RULES))
    assert [decision.desired, decision.launch, decision.terminate, decision.code.value, decision.needed_launch,
            decision.needed_keep] == decided
    if golden_forecast is None:
        assert decision.forecast is None
        return
    fc = decision.forecast
    assert fc is not None
    assert (fc.method, fc.backtest_samples) == (golden_forecast[0], golden_forecast[7])
    got = [fc.level_ratio, fc.headroom, fc.peak_launch_rps, fc.peak_keep_rps, fc.error_mean, fc.error_sd, fc.expected_now_rps]
    expected = [*golden_forecast[1:7], golden_forecast[8]]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)  # abs: error_mean can be near 0


def test_a_forecast_cache_changes_no_decision() -> None:
    """Tick after tick over a fixed history, on the schedule's grid and off it (alarm ticks), with missing minutes,
    a late datapoint, and the seasonal methods arriving as the history grows: the same decisions, to the bit."""
    demand: list[float | None] = list(traces.weekly(days=15))
    demand[11_000:11_004] = [None] * 4  # missing minutes inside what the tick sees
    settings = PolicySettings()
    cache = ForecastCache()
    ends = [*range(4319, 4400, 5), 4402, 4403, *range(4404, 4460, 5),  # daily from 4340 on; two alarm ticks
            *range(10_099, 10_200, 5), 10_203,  # weekly from 10_100 on
            *range(10_999, 11_100, 5),  # the missing minutes
            *range(21_004, 21_060, 5)]  # the history (20_435 minutes) no longer starts at the trace's start
    # and histories of about 3 days, starting at irregular minutes, so that the oldest lag's windows are cut by the
    # history's start differently from one tick to the next (those minutes must not be reused)
    starts = {end: end - 4_400 - 3 * (end % 7) for end in range(8_004, 8_100, 5)}
    ends += list(starts)
    compared = 0
    for end in ends:
        history = demand[starts.get(end, max(0, end - 20_434)):end + 1]  # a fixed trace: minute m is always demand[m]
        for late in (0, 1):
            observation = Observation.simple(history, ready=12, launching=[3.0], capacity_per_instance_rps=100.0,
                                             max_size=60, min_size=1, history_end_minute=end, now_minute=end + late)
            assert plan(observation, settings, cache) == plan(observation, settings), (end, late)
            compared += 1
    assert compared == 2 * len(ends)
    assert cache.method(settings, []).backtests  # it was used


def test_the_simulator_decides_the_same_without_its_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    demand = traces.flash_crowd(days=4)[:4 * 1440 + 300]  # the daily method from day 3 on; alarm ticks off the grid
    runs = []
    for cache in (True, False):
        calls = recorded_decisions(monkeypatch)
        result = sim.simulate(demand, sim.EiplanePolicy(cache=cache), sim.SimConfig(warm_pool_size=10), keep_timeline=False)
        runs.append((result.summary, calls))
    (with_cache, cached_calls), (without, uncached_calls) = runs
    assert with_cache.alarm_ticks > 0 and cached_calls == uncached_calls
    assert with_cache == without


def test_a_controller_replaying_another_trace_starts_its_cache_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = traces.diurnal(days=2), traces.flash_crowd(days=1)
    later = replace(sim.SimConfig(), start_minute=len(first) - 240)  # its first minutes are the first trace's last
    reused = sim.EiplanePolicy()
    sim.simulate(first, reused, sim.SimConfig(), keep_timeline=False)
    reused.last_out = reused.last_in = None  # the cool-downs carry over (as ever): only the cache is under test
    again = recorded_decisions(monkeypatch)
    sim.simulate(second, reused, later, keep_timeline=False)
    fresh = recorded_decisions(monkeypatch)
    sim.simulate(second, sim.EiplanePolicy(cache=False), later, keep_timeline=False)
    assert again == fresh
