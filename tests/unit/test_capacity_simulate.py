"""The capacity simulator, its oracle, the baselines and the benchmark traces (eiplane.capacity)."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from pathlib import Path

import pytest

from eiplane.capacity import traces
from eiplane.capacity.benchmark import (
    CurvePoint,
    check_targets,
    cost_at_violation,
    pool_sizing,
    render_pool_sizing,
    render_table,
    run_benchmark,
    simulator_speed,
)
from eiplane.capacity.policy import PolicySettings
from eiplane.capacity.simulate import (
    Action,
    EiplanePolicy,
    FleetView,
    HpaLike,
    Schedule,
    SimConfig,
    SimResult,
    TargetTracking,
    TraceError,
    oracle,
    read_trace,
    simulate,
    simulate_file,
    write_timeline,
    write_trace,
)

SMALL = SimConfig(launch_minutes=2, interval_minutes=5, drain_minutes=1, capacity_rps=100, min_size=0, initial_utilisation=1.0)


class Script:
    """Launches / terminates what it is told, at the end of the given minutes."""

    name = "script"

    def __init__(self, launches: dict[int, int] | None = None, stops: dict[int, int] | None = None):
        self.launches, self.stops = launches or {}, stops or {}
        self.seen: list[tuple[int, int, int]] = []
        self.views: list[tuple[int, int, list[tuple[str, int]]]] = []  # (minute, warm pool, launching (id, s to ready))

    def ticks(self, minute: int, alarm: bool) -> str | None:
        return "minute"

    def decide(self, view: FleetView) -> Action:
        self.seen.append((view.minute, len(view.ready), len(view.launching)))
        self.views.append((view.minute, view.warm_pool, [(s.id, s.ready_s - view.now_s) for s in view.launching]))
        victims = sorted(view.launching, key=lambda s: s.id) + sorted(view.ready, key=lambda s: s.id)
        return Action(launch=self.launches.get(view.minute, 0),
                      terminate=tuple(s.id for s in victims[:self.stops.get(view.minute, 0)]))


# --- oracle ----------------------------------------------------------------------------------


def test_oracle_keeps_an_instance_through_a_gap_of_at_most_l_plus_drain() -> None:
    # L + D = 3: one instance, idle for 3 minutes, kept: billed 5 minutes, no launch
    result = oracle([100, 0, 0, 0, 100], SMALL)
    assert result.required == [1, 0, 0, 0, 1]
    assert result.launches == 0
    assert result.instance_hours == pytest.approx(5 * 60 / 3600)


def test_oracle_relaunches_after_a_longer_gap() -> None:
    # gap of 4 > 3: drain 1 after minute 0 (billed 0..2), relaunch 2 minutes before minute 5 (billed 3..6)
    result = oracle([100, 0, 0, 0, 0, 100], SMALL)
    assert result.launches == 1
    assert result.runs == [(0, 0, True), (5, 5, False)]
    assert result.instance_hours == pytest.approx((2 + 3) * 60 / 3600)  # keeping it would be 6 minutes


def test_oracle_layers_and_ceiling() -> None:
    # 150 req/s needs 2; the second instance is idle for 2 minutes (kept), the third is launched once
    result = oracle([150, 100, 100, 200, 250, 0], SMALL)
    assert result.required == [2, 1, 1, 2, 3, 0]
    assert result.launches == 1
    assert result.runs == [(0, 4, True), (0, 4, True), (4, 4, False)]
    # layers 1 and 2: minutes 0..4, drained to 6 (the trace ends at 6): 6 each; layer 3: launched at 2, ends at 6: 4
    assert result.instance_hours == pytest.approx((6 + 6 + 4) * 60 / 3600)


def test_oracle_replayed_through_the_simulator_costs_the_same_and_never_violates() -> None:
    rng = random.Random(11)  # noqa: S311 - test data
    demand = [900.0] * 4 + [rng.choice([0, 80, 150, 310, 420, 640, 880]) for _ in range(200)]
    best = oracle(demand, SMALL)
    result = simulate(demand, Schedule(best.runs, SMALL), SMALL, oracle_result=best)
    assert result.summary.violation_minutes == 0
    assert result.summary.launches == best.launches
    assert result.summary.instance_hours == pytest.approx(best.instance_hours, abs=1e-3)
    assert result.summary.cost_vs_oracle == pytest.approx(1.0)


def test_the_oracle_never_goes_below_the_fleets_minimum() -> None:
    # no demand at all: the minimum of 2 instances, kept the whole 90 minutes (exactly 3 instance-hours), no launch
    idle = oracle([0.0] * 90, replace(SMALL, min_size=2))
    assert idle.required == [2] * 90 and idle.launches == 0
    assert idle.instance_hours == 2 * 90 / 60
    # a burst among idle minutes: 2 instances throughout, a third only for the burst (launched L = 2 before it,
    # drained D = 1 after it)
    burst = oracle([0.0] * 10 + [250.0] + [0.0] * 10, replace(SMALL, min_size=2))
    assert burst.required == [2] * 10 + [3] + [2] * 10
    assert burst.runs == [(0, 20, True), (0, 20, True), (10, 10, False)]
    assert burst.instance_hours == pytest.approx((2 * 21 + (2 + 1 + 1)) * 60 / 3600)


def test_cost_against_the_oracle_on_idle_minutes_counts_the_minimum_on_both_sides() -> None:
    result = simulate([0.0] * 60, EiplanePolicy(), SimConfig(min_size=2))
    assert result.summary.instance_hours == pytest.approx(2.0)
    assert result.summary.oracle_instance_hours == pytest.approx(2.0)
    assert result.summary.cost_vs_oracle == pytest.approx(1.0)  # infinite when the oracle ignored the minimum


def test_the_oracle_with_a_minimum_replayed_through_the_simulator() -> None:
    cfg = replace(SMALL, min_size=2)
    rng = random.Random(5)  # noqa: S311 - test data
    demand = [0.0] * 3 + [rng.choice([0, 0, 0, 80, 150, 310, 420]) for _ in range(200)]
    best = oracle(demand, cfg)
    result = simulate(demand, Schedule(best.runs, cfg), cfg, oracle_result=best)
    assert result.timeline[0].ready == best.required[0] == 2  # the simulator's first fleet is the oracle's
    assert min(row.ready for row in result.timeline) == 2
    assert result.summary.violation_minutes == 0
    assert result.summary.launches == best.launches
    assert result.summary.cost_vs_oracle == pytest.approx(1.0)


# --- simulator mechanics ----------------------------------------------------------------------


def test_launch_is_ready_after_l_minutes_and_draining_is_billed_but_not_ready() -> None:
    demand = [100.0] * 12
    result = simulate(demand, Script(launches={1: 1}, stops={7: 1}), SMALL)
    ready = [row.ready for row in result.timeline]
    launching = [row.launching for row in result.timeline]
    # launched at the end of minute 1 (t = 120 s), ready from minute 1 + 1 + L = 4
    assert ready[:4] == [1, 1, 1, 1] and launching[2:4] == [1, 1] and ready[4] == 2
    # the first slot (by id: the initial one) drains from the end of minute 7 for 1 minute
    assert ready[8] == 1 and result.timeline[8].draining == 1 and result.timeline[9].draining == 0
    # initial: 0..8 min + 1 drain = 9 min; launched: 120 s to the end (720 s) = 10 min
    assert result.summary.instance_hours == pytest.approx((9 + 10) * 60 / 3600)
    assert result.summary.launches == 1


def test_billing_has_a_60_second_minimum() -> None:
    # launched at the end of the last minute: a zero-second lifetime bills 60 s
    demand = [100.0, 100.0, 100.0]
    result = simulate(demand, Script(launches={2: 1}), SMALL)
    assert result.summary.instance_hours == pytest.approx((180 + 60) / 3600)


def test_not_yet_ready_slot_terminates_at_once() -> None:
    demand = [100.0] * 6
    result = simulate(demand, Script(launches={0: 1}, stops={1: 1}), SMALL)  # the launching slot sorts first
    assert all(row.launching == 0 for row in result.timeline[2:]) and all(row.draining == 0 for row in result.timeline)
    assert result.summary.instance_hours == pytest.approx((360 + 60) / 3600)  # launched at 60 s, gone at 120 s


def test_violation_and_unserved_accounting() -> None:
    demand = [100.0, 250.0, 100.0, 0.0]
    result = simulate(demand, Script(), SMALL)
    assert [row.violation for row in result.timeline] == [False, True, False, False]
    assert result.summary.violation_minutes == 1
    assert result.summary.violation_minutes_pct == pytest.approx(25.0)
    assert result.summary.unserved_pct == pytest.approx(100 * 150 / 450, rel=1e-3)


def test_alarm_fast_path_ticks_at_once_and_at_most_once_a_minute() -> None:
    demand = [500.0] * 30 + [1500.0] * 10
    cfg = SimConfig(launch_minutes=6, interval_minutes=5, capacity_rps=100, initial_utilisation=0.9)
    controller = EiplanePolicy(PolicySettings(launch_minutes=6, interval_minutes=5))
    result = simulate(demand, controller, cfg)
    ticks = {row.minute: row.tick for row in result.timeline if row.tick}
    assert ticks[30] == "alarm"  # minute 30 is not on the 5-minute schedule (29, 34, ...)
    assert result.summary.alarm_ticks >= 1
    assert result.summary.ticks <= len(demand)  # one decision per minute at most
    # the surge launch made at the end of minute 30 serves from minute 37, and nothing was launched twice for it
    assert result.timeline[37].ready * 100 >= 1500
    assert result.summary.violation_minutes == 7
    assert [code for minute, code, _ in controller.decisions if minute == 30] == ["scale_out_surge"]
    no_alarm = simulate(demand, EiplanePolicy(PolicySettings()), SimConfig(launch_minutes=6, capacity_rps=100,
                                                                            initial_utilisation=0.9, alarm_threshold=None))
    assert no_alarm.summary.alarm_ticks == 0 and no_alarm.summary.violation_minutes > 7


def test_eiplane_policy_scales_in_after_demand_falls_without_flapping() -> None:
    demand = [2000.0] * 60 + [600.0] * 120
    cfg = SimConfig(launch_minutes=6, interval_minutes=5, capacity_rps=100)
    controller = EiplanePolicy()
    result = simulate(demand, controller, cfg)
    assert result.timeline[-1].ready <= 8
    assert result.summary.violation_minutes == 0
    outs = [m for m, code, _ in controller.decisions if code.startswith("scale_out")]
    ins = [m for m, code, _ in controller.decisions if code == "scale_in"]
    assert len(ins) >= 4
    assert all(not any(0 <= m - out < 15 for out in outs) for m in ins)  # cool-down after every scale-out
    assert all(b - a >= 5 for a, b in itertools.pairwise(ins))  # and between scale-ins


# --- warm pool ----------------------------------------------------------------------------------

POOLED = SimConfig(launch_minutes=2, interval_minutes=5, drain_minutes=1, capacity_rps=100, min_size=0, initial_utilisation=1.0,
                   warm_pool_size=2, resume_minutes=1)


def test_default_config_has_no_warm_pool_and_terminates_drained_instances() -> None:
    cfg = SimConfig()
    assert (cfg.warm_pool_size, cfg.resume_minutes, cfg.warm_cost_fraction, cfg.warm_pool_prefill) == (0, 2, 0.011, False)
    demand = [200.0] * 10
    script = Script(launches={6: 1}, stops={1: 1})
    result = simulate(demand, script, SMALL)
    assert all(row.warm_pool == 0 for row in result.timeline)
    assert result.summary.launches == 1 and result.summary.resumes == 0
    assert result.summary.warm_pool_hours == 0 and result.summary.warm_pool_instance_hours == 0
    assert result.summary.label == "script"
    # launched at the end of minute 6: L = 2 minutes away, not W
    assert [launching for minute, _, launching in script.views if minute == 7] == [[("i-000003", 60)]]
    # the drained instance is terminated after its drain: 0..180 s; the other 600 s; the launch 420..600 s
    assert result.summary.instance_hours == pytest.approx((180 + 600 + 180) / 3600)


def test_a_resumed_warm_instance_serves_after_w_minutes_and_is_launching_until_then() -> None:
    demand = [200.0] * 12
    script = Script(launches={5: 1}, stops={1: 1})  # stops i-000001 (by id) at the end of minute 1
    result = simulate(demand, script, POOLED)
    rows = result.timeline
    # draining 120..180 s, stopped into the pool at 180 s (minute 3)
    assert [row.draining for row in rows[1:4]] == [0, 1, 0]
    assert [row.warm_pool for row in rows[2:7]] == [0, 1, 1, 1, 0]
    # resumed at the end of minute 5 (360 s): to the controller a not-yet-ready slot, ready at 360 + 60 W = 420 s
    # (a launch would be at 480 s), so at the end of minute 6 it has 0 s to go
    assert [v for v in script.views if v[0] in (5, 6)] == [(5, 1, []), (6, 0, [("i-000001", 0)])]
    # it serves from minute 5 + 1 + W = 7, not 5 + 1 + L = 8
    assert [row.ready for row in rows[5:9]] == [1, 1, 2, 2] and rows[6].launching == 1
    assert result.summary.resumes == 1 and result.summary.launches == 0
    assert result.summary.resumes_per_day == pytest.approx(1440 / 12)


def test_warm_pool_billing_at_the_fraction_and_a_new_running_period_per_resume() -> None:
    cfg = replace(POOLED, warm_cost_fraction=0.5)
    result = simulate([200.0] * 12, Script(launches={6: 1}, stops={1: 1}), cfg)
    # i-000002 runs 0..720 s; i-000001 runs 0..180 s, is stopped 180..420 s, runs again 420..720 s
    stopped = 240
    assert result.summary.warm_pool_hours == pytest.approx(stopped / 3600)
    assert result.summary.warm_pool_instance_hours == pytest.approx(0.5 * stopped / 3600)
    assert result.summary.instance_hours == pytest.approx((720 + 180 + 300 + 0.5 * stopped) / 3600)
    # the default fraction: a g5.xlarge's 100 GiB gp3 root volume, 0.011 of its hourly price
    default = simulate([200.0] * 12, Script(launches={6: 1}, stops={1: 1}), POOLED)
    assert default.summary.instance_hours == pytest.approx((720 + 180 + 300 + 0.011 * stopped) / 3600)
    # a resume at the end of the trace's last minute is a new period: billed 60 s, its minimum
    late = simulate([200.0] * 12, Script(launches={11: 1}, stops={1: 1}), cfg)
    assert late.summary.instance_hours == pytest.approx((720 + 180 + 60 + 0.5 * (720 - 180)) / 3600)
    # still stopped at the end of the trace: pool time to the end, nothing more
    kept = simulate([200.0] * 12, Script(stops={1: 1}), cfg)
    assert kept.summary.instance_hours == pytest.approx((720 + 180 + 0.5 * (720 - 180)) / 3600)


def test_the_pool_cap_is_respected_and_the_excess_terminated() -> None:
    demand = [400.0] + [100.0] * 11  # 4 ready; 3 drained at once into a pool of 2
    script = Script(launches={6: 3}, stops={1: 3})
    result = simulate(demand, script, POOLED)
    rows = result.timeline
    assert rows[3].warm_pool == 2 and rows[3].ready == 1 and rows[3].draining == 0
    # scale-out of 3: the 2 pooled are resumed (ready after W = 1), the third launched (after L = 2)
    assert result.summary.resumes == 2 and result.summary.launches == 1
    # at the end of minute 7 the resumes (from 420 s) are W = 60 s old and ready now, the launch has 60 s to go
    assert sorted(seconds for _, seconds in next(v for v in script.views if v[0] == 7)[2]) == [0, 0, 60]
    assert [row.ready for row in rows[7:10]] == [1, 3, 4]
    # the third drained instance (i-000003, the highest id) was terminated at 180 s, the pooled two ran again from 420 s
    assert result.summary.instance_hours == pytest.approx((720 + 180 + 2 * (180 + 300) + 300 + 0.011 * 2 * 240) / 3600)


def test_cancelled_not_yet_ready_slots_are_terminated_never_pooled() -> None:
    cfg = replace(POOLED, warm_pool_size=5)
    # a launch cancelled before it is ready
    launched = simulate([100.0] * 8, Script(launches={0: 1}, stops={1: 1}), cfg)
    assert all(row.warm_pool == 0 for row in launched.timeline)
    assert launched.summary.instance_hours == pytest.approx((480 + 60) / 3600)
    # a resume cancelled before it is ready: terminated, the pool is empty afterwards
    script = Script(launches={4: 1}, stops={1: 1, 5: 1})  # the resumed slot is not ready at minute 5: it sorts first
    resumed = simulate([200.0] * 10, script, cfg)
    assert [row.warm_pool for row in resumed.timeline[2:8]] == [0, 1, 1, 0, 0, 0]
    assert resumed.timeline[6].launching == 0 and resumed.timeline[6].ready == 1
    # i-000002 0..600 s; i-000001 0..180 s running, 180..300 s stopped, 300..360 s resumed then cancelled
    assert resumed.summary.instance_hours == pytest.approx((600 + 180 + 60 + 0.011 * 120) / 3600)


def test_the_prefilled_variant_bills_each_instance_l_minutes_and_its_pool_time() -> None:
    cfg = replace(POOLED, warm_pool_size=3, warm_pool_prefill=True, warm_cost_fraction=0.5)
    idle = simulate([100.0] * 10, Script(), cfg)
    assert idle.timeline[0].warm_pool == 3
    assert idle.summary.launches == 0 and idle.summary.resumes == 0
    assert idle.summary.prefill_instance_hours == pytest.approx(3 * 2 * 60 / 3600)  # L = 2 minutes each
    assert idle.summary.instance_hours == pytest.approx((600 + 3 * 120 + 0.5 * 3 * 600) / 3600)
    assert idle.summary.label == "script + warm pool (prefilled)"
    # one resumed at the end of minute 3: ready after W, no launch
    used = simulate([100.0] * 10, Script(launches={3: 1}), cfg)
    assert used.summary.resumes == 1 and used.summary.launches == 0
    assert used.timeline[4].warm_pool == 2 and used.timeline[5].ready == 2
    assert used.summary.instance_hours == pytest.approx((600 + 3 * 120 + 360 + 0.5 * (2 * 600 + 240)) / 3600)
    # a 1-minute launch time still bills the 60-second minimum for each prefilled instance
    short = simulate([100.0] * 10, Script(), replace(cfg, launch_minutes=0))
    assert short.summary.prefill_instance_hours == pytest.approx(3 * 60 / 3600)


def test_the_real_policy_with_a_warm_pool_misses_w_plus_one_minutes_of_a_step() -> None:
    demand = [500.0] * 30 + [1500.0] * 10
    settings = PolicySettings(launch_minutes=6, interval_minutes=5)

    def run(size: int = 0, prefill: bool = False, resume: int = 2) -> SimResult:
        cfg = SimConfig(launch_minutes=6, interval_minutes=5, capacity_rps=100, initial_utilisation=0.9, warm_pool_size=size,
                        warm_pool_prefill=prefill, resume_minutes=resume)
        return simulate(demand, EiplanePolicy(settings), cfg)

    assert run().summary.violation_minutes == 7  # L + 1
    pooled = run(20, prefill=True, resume=2)
    assert pooled.summary.violation_minutes == 3  # W + 1: the alarm at the end of minute 30 resumes, ready at 33
    assert pooled.summary.resumes == 20 and pooled.timeline[33].ready * 100 >= 1500
    # W = L: the pool makes capacity no sooner, so it misses as much as no pool
    assert run(20, prefill=True, resume=6).summary.violation_minutes == 7
    # the scale-in-only pool is empty at the step: no help
    assert run(20).summary.violation_minutes == 7


def test_sim_config_rejects_a_negative_pool() -> None:
    with pytest.raises(ValueError, match="warm_pool_size"):
        SimConfig(warm_pool_size=-1)


# --- baselines ----------------------------------------------------------------------------------


def test_target_tracking_scales_out_after_three_high_minutes_warm_up_aware() -> None:
    demand = [700.0] * 20 + [1400.0] * 40
    cfg = SimConfig(launch_minutes=6, capacity_rps=100)  # initial fleet: 700 / 70 = 10
    result = simulate(demand, TargetTracking(0.7), cfg)
    rows = result.timeline
    assert rows[0].ready == 10
    # high at minutes 20, 21, 22 -> launch 10 at the end of 22 -> ready from minute 29
    assert rows[22].launching == 0 and rows[23].launching == 10
    assert rows[28].ready == 10 and rows[29].ready == 20
    assert result.summary.launches == 10  # the warming capacity counted as coming: no second launch
    assert result.summary.violation_minutes == 9  # minutes 20..28


def test_target_tracking_scales_in_after_fifteen_low_minutes() -> None:
    demand = [1400.0] * 10 + [560.0] * 40  # 560 / 2000 = 28% < 63%
    result = simulate(demand, TargetTracking(0.7), SimConfig(launch_minutes=6, capacity_rps=100))
    rows = result.timeline
    assert rows[24].ready == 20  # low at 10..24: the 15th low minute is 24, acted on at its end
    assert rows[25].ready == 8 and rows[25].draining == 12  # ceil(560 / 70)
    assert result.summary.launches == 0


def test_hpa_tolerance_and_scale_down_stabilisation() -> None:
    cfg = SimConfig(launch_minutes=6, capacity_rps=100)  # initial 10 at 700 req/s
    inside = simulate([700.0] * 5 + [760.0] * 30, HpaLike(0.7), cfg)  # 760 / 1000 / 0.7 = 1.086: within 10%
    assert inside.summary.launches == 0 and inside.timeline[-1].ready == 10
    down = simulate([700.0] * 5 + [350.0] * 30, HpaLike(0.7), cfg)
    rows = down.timeline
    # recommendation 5 from the end of minute 5; the 5-minute window (5..9) is all low only at the end of minute 9
    first_drop = next(row.minute for row in rows if row.ready < 10)
    assert first_drop == 10
    assert rows[first_drop].ready == 5 and rows[first_drop].draining == 5
    up = simulate([700.0] * 5 + [1400.0] * 30, HpaLike(0.7), cfg)
    assert up.timeline[6].launching == 10  # immediate scale-up at the end of minute 5
    assert up.summary.launches == 10  # not-yet-ready pods count as 0% busy: no second launch


# --- traces and files ---------------------------------------------------------------------------


def test_traces_are_deterministic_per_seed() -> None:
    assert traces.flash_crowd(seed=2) == traces.flash_crowd(seed=2)
    assert traces.flash_crowd(seed=2) != traces.flash_crowd(seed=5)
    assert traces.diurnal(seed=1, days=1) == traces.diurnal(seed=1, days=1)
    assert len(traces.diurnal(days=1)) == 1440


def test_trace_shapes() -> None:
    day = traces.diurnal(days=2)
    hourly = [sum(day[h * 60:(h + 1) * 60]) / 60 for h in range(48)]
    assert 3.2 < max(hourly) / min(hourly) < 4.8  # about 4x peak to trough
    assert min(day) / traces.CAPACITY_RPS >= 5 and max(day) / traces.CAPACITY_RPS <= 45
    spikes = traces.flash_spikes(random.Random(0), 2)  # noqa: S311 - test data
    assert len(spikes) == 3 and all(2.0 <= s.factor <= 5.0 and s.rise <= 2 for s in spikes)
    assert traces.weekend_factor(5 * 1440 + 600) == pytest.approx(0.6)  # Saturday 10:00
    assert traces.weekend_factor(2 * 1440 + 600) == 1.0


def test_trace_and_timeline_files(tmp_path: Path) -> None:
    path = write_trace([1.5, 2.0, 0.0], tmp_path / "t.csv")
    assert path.read_text().splitlines()[0] == "demand_rps"
    assert read_trace(path) == [1.5, 2.0, 0.0]
    result = simulate([100.0, 300.0], Script(), SMALL)
    out = write_timeline(result.timeline, tmp_path / "timeline.csv")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("minute,demand_rps,ready,launching,draining,violation") and len(lines) == 3


# --- reading a trace ----------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "column", "expected"), [
    ("demand_rps\n10\n20.5\n", None, [10.0, 20.5]),
    ("requests per second\n10\n20.5\n", None, [10.0, 20.5]),  # a header of any name
    ("10\n\n20.5\n\n", None, [10.0, 20.5]),  # no header; blank lines skipped
    ("\ufeffdemand\n 7 \n", None, [7.0]),  # a spreadsheet's byte-order mark; spaces around a value
    ("timestamp,requests_per_second\n2024-01-01T00:00,10\n2024-01-01T00:01,12\n", None, [10.0, 12.0]),  # the numeric one
    ("2024-01-01T00:00,10\n2024-01-01T00:01,12\n", None, [10.0, 12.0]),  # so without a header too
    ("minute,rps,p99_ms\n0,10,31\n1,12,30\n", "rps", [10.0, 12.0]),  # by name
    ("minute,rps,p99_ms\n0,10,31\n1,12,30\n", "1", [10.0, 12.0]),  # by 0-based index, as the CLI passes it
    ("minute,rps,p99_ms\n0,10,31\n1,12,30\n", 2, [31.0, 30.0]),
    ("0,10\n1,12\n", "1", [10.0, 12.0]),
])
def test_read_trace(content: str, column: int | str | None, expected: list[float], tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(content, encoding="utf-8")
    assert read_trace(path, column) == expected


@pytest.mark.parametrize(("content", "column", "message"), [
    ("", None, "trace.csv: no demand values (the file is empty)"),
    ("\n\n", None, "trace.csv: no demand values (the file is empty)"),
    ("demand\n", None, "trace.csv: no demand values (only a header row)"),
    ("demand\n10\nlots\n", None, "trace.csv:3: not a number: 'lots'"),
    ("ts,rps\n0,10\n1,\n", "rps", "trace.csv:3: not a number (column 'rps'): ''"),
    ("demand\n10\n-5\n", None, "trace.csv:3: demand must be a finite number >= 0, got '-5'"),
    ("10\nnan\n", None, "trace.csv:2: demand must be a finite number >= 0, got 'nan'"),
    ("10\ninf\n", None, "trace.csv:2: demand must be a finite number >= 0, got 'inf'"),
    ("ts,rps\n0,10\n1\n", None, "trace.csv:3: a ragged row: 1 cell(s) where the header has 2"),
    ("0,10\n1,12,14\n", "1", "trace.csv:2: a ragged row: 3 cell(s) where the first row has 2"),
    ("ts,rps\n0,10\n", "qps", "trace.csv: no column 'qps'; its columns: 0 'ts', 1 'rps': choose the demand with --column"),
    ("ts,rps\n0,10\n", "2", "trace.csv: no column '2'; its columns: 0 'ts', 1 'rps'"),
    ("0,10\n", "-1", "trace.csv: no column '-1'; its columns: 0, 1 (no header row)"),
    ("minute,rps\n0,10\n1,12\n", None, "trace.csv: 2 columns: 0 'minute', 1 'rps'; 2 of them all numbers (0 'minute', "
                                          "1 'rps'): choose the demand with --column NAME or a 0-based INDEX"),
    ("host,zone\na,b\n", None, "trace.csv: 2 columns: 0 'host', 1 'zone'; none of them all numbers: choose the demand"),
    ("rps,rps\n1,2\n", "rps", "trace.csv: the header names 'rps' 2 times: choose it by its 0-based index with --column"),
])
def test_read_trace_errors_say_where_and_what(content: str, column: str | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TraceError) as raised:
        read_trace(path, column)
    assert str(raised.value).startswith(str(tmp_path / message))


def test_read_trace_of_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(TraceError, match="not a text file"):
        read_trace(path)


# --- benchmark plumbing (on a short trace: the real benchmark is not a test) ---------------------


def test_benchmark_table_and_targets_on_a_short_trace() -> None:
    short = {"diurnal": traces.diurnal(days=1)[:600], "flash_crowd": traces.flash_crowd(days=1)[:600]}
    result = run_benchmark(6, 5, traces=short, warm_pool_size=7)
    table = render_table(result)
    assert "| diurnal | eiplane |" in table and "| flash_crowd | target-tracking-70 |" in table
    assert "| flash_crowd | eiplane + warm pool |" in table
    assert "| diurnal | target-tracking-70 + warm pool (prefilled) |" in table
    assert "at most 7 stopped instances" in table
    assert result.summary("flash_crowd", "eiplane").warm_pool_size == 0
    assert result.summary("flash_crowd", "eiplane", "prefilled").warm_pool_prefill
    assert {c["target"] for c in check_targets(result)} >= {
        "diurnal: cost <= 1.20x oracle", "flash_crowd: violation minutes <= 0.5%",
        "eiplane + warm pool (scale-in): flash_crowd: violation minutes <= 0.5%",
        "eiplane + warm pool (prefilled): flash_crowd: violation minutes <= 0.5%"}
    plain = run_benchmark(6, 5, traces={"flash_crowd": short["flash_crowd"]}, warm_pool_size=0)
    assert [s.policy for s in plain.summaries] == ["eiplane", "target-tracking-70", "hpa-70"]
    with pytest.raises(ValueError, match="warm_pool_size"):
        run_benchmark(6, 5, traces=short, config=replace(SimConfig(), warm_pool_size=3))


def test_pool_sizing_table_on_a_short_trace() -> None:
    short = {"flash_crowd": traces.flash_crowd(days=1)[:400]}
    points = pool_sizing(6, 5, traces=short, sizes=(0, 10), resume_minutes=(1, 2), size=10)
    assert {(p.fill, p.size, p.resume_minutes) for p in points} == {
        (fill, n, w) for fill in ("scale-in", "prefilled") for n, w in ((0, 2), (10, 2), (10, 1))}
    text = render_pool_sizing(points, 10, 2)
    assert "| pool size | scale-in: cost / oracle |" in text and "| W (min) |" in text
    assert len([line for line in text.splitlines() if line.startswith("| 10 |")]) == 1


def test_simulator_speed_replays_the_eiplane_policy_alone() -> None:
    demand = traces.flash_crowd(days=1)[:600]
    speed = simulator_speed(demand, "short")
    assert (speed.minutes, speed.cache, speed.summary.policy) == (600, True, "eiplane")
    assert speed.plan_calls == speed.summary.ticks >= 120 and speed.wall_seconds > 0
    assert speed.year_seconds == pytest.approx(365 * 1440 / speed.minutes_per_second)
    without = simulator_speed(demand, "short", cache=False)
    assert without.summary == speed.summary  # the cache saves time, and changes nothing else
    assert "a year of minutes in" in speed.render() and "without a ForecastCache" in without.render()


def test_cost_at_equal_violation_interpolates_the_frontier() -> None:
    def point(v: float, c: float) -> CurvePoint:
        return CurvePoint("t", "p", "k", 0, c, v, 0, 0)

    points = [point(0.0, 2.0), point(1.0, 1.5), point(2.0, 1.2), point(1.5, 1.6)]
    assert cost_at_violation(points, 1.5) == pytest.approx(1.35)
    assert cost_at_violation(points, 5.0) == pytest.approx(1.2)
    assert cost_at_violation([point(1.0, 1.5)], 0.5) is None


def test_simulate_file_writes_a_timeline_per_policy_and_a_summary(tmp_path: Path) -> None:
    trace = write_trace(traces.flash_crowd(days=1)[:300], tmp_path / "surge.csv")
    summaries = simulate_file(trace, tmp_path / "out", SimConfig())
    assert [s.policy for s in summaries] == ["eiplane", "target-tracking-70", "hpa-70"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["summary.json", "timeline-eiplane.csv", "timeline-hpa-70.csv", "timeline-target-tracking-70.csv"]
    assert all(s.trace == "surge" and s.minutes == 300 for s in summaries)


def test_instances_needed_before_a_launch_could_be_ready_are_the_oracles_first_fleet() -> None:
    # L = 2: a launch made at the end of minute 0 serves from minute 3, so a need at minutes 1 and 2 must be met by
    # the first fleet (billed from 0), and one at minute 3 by a launch; the replay follows it exactly
    demand = [100.0, 250.0, 300.0, 400.0] + [100.0] * 20
    best = oracle(demand, SMALL)
    assert [initial for _, _, initial in best.runs].count(True) == 3
    assert best.launches == 1
    replayed = replace(SMALL, initial_size=3)
    result = simulate(demand, Schedule(best.runs, replayed), replayed, oracle_result=best)
    assert result.summary.violation_minutes == 0
    assert result.summary.cost_vs_oracle == pytest.approx(1.0)
