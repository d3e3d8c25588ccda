"""The capacity evaluation: the trace families, their dev/test split, the equal-violation comparison and
`eiplane bench capacity` (eiplane.capacity.families and eiplane.capacity.evaluation), on tiny sets."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from eiplane.capacity import families
from eiplane.capacity.benchmark import CurvePoint
from eiplane.capacity.evaluation import (
    GRID,
    Evaluation,
    check_targets,
    cost_at_equal_violation,
    load_evaluation,
    plot_families,
    pool_size_for,
    render,
    run_evaluation,
    sweep_to,
)
from eiplane.capacity.families import FAMILIES, SHAPES, Trace, evaluation_set, make_trace, trace_ids
from eiplane.cli import main

# --- the split ---------------------------------------------------------------------------------


def test_the_split_is_disjoint_fixed_and_holds_the_legacy_traces_in_dev_only() -> None:
    dev, test = trace_ids("dev"), trace_ids("test")
    assert not set(dev) & set(test)
    assert len(test) == 8 * len(FAMILIES) and len(dev) == 8 * len(FAMILIES) + 3
    assert {i for i in dev if i.startswith("legacy/")} == {"legacy/diurnal", "legacy/flash_crowd", "legacy/weekly"}
    assert not any(i.startswith("legacy/") for i in test)
    for family in FAMILIES:
        assert [i for i in test if i.startswith(family + "/")] == [f"{family}/{s}" for s in range(1001, 1009)]
        assert [i for i in dev if i.startswith(family + "/")] == [f"{family}/{s}" for s in range(1, 9)]
    assert trace_ids("dev", ["flash-crowd"], limit=2) == ["legacy/flash_crowd", "flash-crowd/1"]
    assert trace_ids("test", ["low-volume", "bursty"], limit=1) == ["low-volume/1001", "bursty/1001"]
    with pytest.raises(ValueError, match="one of"):
        trace_ids("train")
    with pytest.raises(ValueError, match="unknown families"):
        trace_ids("test", ["periodic"])
    with pytest.raises(ValueError, match="unknown trace"):
        make_trace("periodic-daily/x")


def test_a_seed_gives_the_same_trace_every_time_golden_values() -> None:
    a, b = make_trace("low-volume/1001"), make_trace("low-volume/1001")
    assert a.demand == b.demand and a.params == b.params
    assert make_trace("low-volume/1002").demand != a.demand
    # pinned: a change here changes the evaluation sets (random.Random string seeding is the same on every Python)
    assert a.demand[:3] == [120.1, 115.5, 114.917]
    assert round(sum(a.demand), 3) == 1435557.769
    daily = make_trace("periodic-daily/1")
    assert daily.demand[:3] == [537.95, 510.083, 527.55] and daily.params["shape"]["kind"] == "double"
    legacy = make_trace("legacy/weekly")
    assert legacy.family == "periodic-weekly" and len(legacy.demand) == 14 * 1440
    short = evaluation_set("test", ["low-volume"], limit=1, max_minutes=100)
    assert len(short) == 1 and short[0].demand == a.demand[:100]


# --- the families stay within their documented ranges ------------------------------------------


@pytest.fixture(scope="module")
def sample() -> list[Trace]:
    """One development and one test trace of each family (the whole sets take too long for a unit test)."""
    return [make_trace(f"{family}/{seed}") for family in FAMILIES for seed in (2, 1003)]


def _within(value: float, lo: float, hi: float) -> bool:
    return lo - 1e-3 <= value <= hi + 1e-3


# family: (base peak instances lo, hi; peak-to-trough lo, hi; the largest factor above the base peak)
RANGES = {"periodic-daily": (3, 300, 1.5, 20, 1.0), "periodic-weekly": (3, 300, 1.5, 10, 1.3 * 1.02 ** 28),
          "regime-shift": (3, 200, 1.5, 8, 4 * 1.1), "flash-crowd": (3, 60, 1.5, 6, 10), "low-volume": (0.8, 2.8, 1.5, 20, 1),
          "bursty": (3, 150, 1.5, 6, 4)}


def test_every_family_stays_within_its_documented_ranges(sample: list[Trace]) -> None:
    for trace in sample:
        p, family = trace.params, trace.family
        lo, hi, ratio_lo, ratio_hi, factor = RANGES[family]
        assert trace.minutes == FAMILIES[family].days * 1440 == p["days"] * 1440, trace.id
        assert all(d >= 0 and math.isfinite(d) for d in trace.demand), trace.id
        assert _within(p["base_peak_rps"] / 100, lo, hi) and _within(p["peak_to_trough"], ratio_lo, ratio_hi), trace.id
        assert p["shape"]["kind"] in SHAPES and 0 <= p["shape"]["phase_minute"] < 1440
        # noise (jitter up to 1.2, slow and fast noise, Poisson) stays within a factor of 2 of the level
        assert 1 <= trace.peak_instances <= math.ceil(2 * hi * factor), trace.id
        assert min(trace.demand) > 0, trace.id
        if family == "low-volume":
            assert 1 <= trace.peak_instances <= 4
    weekly = next(t.params for t in sample if t.family == "periodic-weekly")
    assert _within(weekly["weekend_factor"], 0.3, 1.3) and _within(weekly["trend_per_day"], -0.01, 0.02)
    assert len(weekly["holidays"]) <= 2 and all(d >= 7 and d % 7 < 5 for d in weekly["holidays"])
    for t in (t for t in sample if t.family == "regime-shift"):
        assert 1 <= len(t.params["shifts"]) <= 3
        for shift in t.params["shifts"]:
            assert _within(abs(shift["factor"] - 1), 0.2, 0.6) and shift["start_minute"] >= 5 * 1440
            assert _within(shift["transition_minutes"], 1, 1440)
    for t in (t for t in sample if t.family == "flash-crowd"):
        p = t.params
        assert _within(p["spikes_per_day"], 0.5, 3) and len(p["spikes"]) == max(1, round(21 * p["spikes_per_day"]))
        for s in p["spikes"]:
            assert _within(s["factor"], 1.5, 10) and 1 <= s["ramp_minutes"] <= 30 and 5 <= s["hold_minutes"] <= 180
            assert _within(s["decay_minutes"], 5, 60)
        assert p["largest_spike_factor"] == max(s["factor"] for s in p["spikes"])
        assert pool_size_for(t) == math.ceil(1.25 * (p["largest_spike_factor"] - 1) * p["base_peak_rps"] / 100 - 1e-9)
    for t in (t for t in sample if t.family == "bursty"):
        p = t.params
        assert _within(p["burst_alpha"], 1.3, 2.5) and _within(p["burst_scale"], 0.1, 0.4) and p["largest_burst_factor"] <= 4
        assert _within(p["noise"]["t_dof"], 2.5, 5) and p["bursts"] == round(21 * p["bursts_per_day"])
    # volumes from about one instance to hundreds across the families
    peaks = [t.peak_instances for t in sample]
    assert min(peaks) <= 3 and max(peaks) >= 100


def test_daily_shapes_span_trough_to_peak() -> None:
    rng = random.Random(5)  # noqa: S311 - test data
    for kind in SHAPES:
        for _ in range(5):
            level = families.shape_function(families.draw_shape(rng, kind))
            values = [level(m) for m in range(1440)]
            assert all(-1e-9 <= v <= 1 + 1e-9 for v in values)
            assert max(values) == 1.0 and min(values) == 0.0, kind
    assert families.week_factor(5 * 1440 + 600, 0.4) == pytest.approx(0.4)  # Saturday
    assert families.week_factor(9 * 1440 + 600, 0.4, holidays=[9]) == pytest.approx(0.4)  # a holiday
    assert families.week_factor(8 * 1440 + 600, 0.4, holidays=[9]) == 1.0


def test_poisson_draws_have_the_right_mean_and_variance() -> None:
    rng = random.Random(7)  # noqa: S311 - test data
    for lam in (0.5, 4.0, 30.0, 6000.0):
        draws = [families.poisson(rng, lam) for _ in range(4000)]
        mean = sum(draws) / len(draws)
        variance = sum((d - mean) ** 2 for d in draws) / len(draws)
        assert min(draws) >= 0
        assert mean == pytest.approx(lam, rel=0.05, abs=0.05)
        assert variance == pytest.approx(lam, rel=0.12, abs=0.1)
    assert families.poisson(rng, 0.0) == 0


# --- equal violation ------------------------------------------------------------------------------


def _point(violation: float, cost: float, target: float = 0.0) -> CurvePoint:
    return CurvePoint("t", "p", "target", target, cost, violation, 0.0, 0.0)


def test_cost_at_equal_violation_interpolates_on_the_frontier() -> None:
    # (1.5, 1.6) is dominated by (1.0, 1.5): not on the frontier
    points = [_point(0.0, 2.0, 0.5), _point(1.0, 1.5, 0.7), _point(2.0, 1.2, 0.9), _point(1.5, 1.6, 0.8)]
    assert cost_at_equal_violation(points, 0.5).cost_vs_oracle == pytest.approx(1.75)
    assert cost_at_equal_violation(points, 0.5).status == "interpolated"
    assert cost_at_equal_violation(points, 1.5).cost_vs_oracle == pytest.approx(1.35)
    exact = cost_at_equal_violation(points, 1.0)
    assert (exact.cost_vs_oracle, exact.status, exact.target) == (1.5, "exact", 0.7)
    assert cost_at_equal_violation(points, 0.0).cost_vs_oracle == 2.0
    beyond = cost_at_equal_violation(points, 3.0)
    assert (beyond.cost_vs_oracle, beyond.status, beyond.target) == (1.2, "beyond", 0.9)
    missed = cost_at_equal_violation([_point(1.0, 1.5)], 0.5)
    assert (missed.cost_vs_oracle, missed.status) == (None, "not reached")


def test_the_sweep_extends_and_refines_around_eiplanes_violation() -> None:
    def linear(target: float) -> CurvePoint:  # violation 0 up to a target of 0.5, then 10% per 0.01; cost 2 - target
        return _point(max(0.0, (target - 0.5) * 1000), 2 - target, target)

    points = sweep_to(linear, 5.0)
    assert {p.value for p in points} >= set(GRID)
    assert {0.525, 0.5125, 0.50625} <= {p.value for p in points}  # three bisections of 0.50 .. 0.55
    assert cost_at_equal_violation(points, 5.0).cost_vs_oracle == pytest.approx(2 - 0.505)

    def never_safe(target: float) -> CurvePoint:
        return _point(1.0 + target, 2 - target, target)

    unsafe = sweep_to(never_safe, 0.5)
    assert {0.25, 0.2, 0.15, 0.1} <= {p.value for p in unsafe}
    assert cost_at_equal_violation(unsafe, 0.5).status == "not reached"

    def always_safe(target: float) -> CurvePoint:
        return _point(0.0 if target < 0.99 else 3.0, 2 - target, target)

    safe = sweep_to(always_safe, 1.0)
    assert {0.975, 1.0} <= {p.value for p in safe} and max(p.value for p in safe) == 1.0
    assert cost_at_equal_violation(safe, 1.0).status == "interpolated"


# --- the evaluation and the command, on a tiny set --------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> Evaluation:
    return run_evaluation("test", families=["flash-crowd", "low-volume"], limit=1, max_minutes=300, workers=1)


def test_the_evaluation_on_a_tiny_set(tiny: Evaluation) -> None:
    assert [r.id for r in tiny.results] == ["flash-crowd/1001", "low-volume/1001"]
    flash, low = tiny.results
    assert flash.minutes == 300 and set(flash.pool) == {"scale-in", "prefilled"} and not low.pool
    assert flash.pool_size == pool_size_for(make_trace("flash-crowd/1001"))
    for r in tiny.results:
        assert r.oracle_check["ok"], r.oracle_check
        assert set(r.sweeps) == {"target-tracking", "hpa"} and len(r.sweeps["hpa"]) >= len(GRID)
        for policy, eq in r.equal.items():
            assert eq.violation_pct == r.eiplane.violation_minutes_pct
            assert eq.status in ("interpolated", "exact", "not reached", "beyond")
            if eq.cost_vs_oracle is not None:
                assert r.ratio(policy) == pytest.approx(r.eiplane.cost_vs_oracle / eq.cost_vs_oracle)
    targets = {c["target"]: c for c in check_targets(tiny)}
    assert "flash-crowd: every trace's violation minutes <= 0.5%" in targets
    assert "eiplane + warm pool (prefilled): flash-crowd: every trace's cost <= 1.30x oracle" in targets
    assert "low-volume: at equal violation, mean cost <= 0.95x tuned target tracking's" in targets
    assert not any(t.startswith("periodic") for t in targets)
    text = render(tiny)
    assert "### flash-crowd" in text and "### low-volume" in text and "| flash-crowd/1001 |" in text
    assert "flash-crowd with a warm pool" in text and "| **mean (worst)** |" in text


def test_the_plot_has_a_panel_per_family(tiny: Evaluation, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plot_families(tiny, tmp_path / "curves.png")
    assert path.stat().st_size > 10_000


def test_bench_capacity_prints_a_table_per_family(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "capacity", "--families", "low-volume,bursty", "--limit", "1", "--max-minutes", "240",
            "--workers", "1", "--no-plot", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Capacity evaluation on the test set (2 traces" in out
    assert "### low-volume" in out and "### bursty" in out and "| low-volume/1001 |" in out
    assert "| target | reached | met |" in out and "bursty: every trace's launches/day <= 1.5x the oracle's" in out
    report = json.loads((tmp_path / "capacity-evaluation.json").read_text())
    assert report["set"] == "test" and report["cut"] == {"families": ["low-volume", "bursty"], "limit": 1,
                                                        "max_minutes": 240}
    assert report["split"] == {"dev_seeds": [1, 8], "test_seeds": [1001, 1008]}
    assert [t["id"] for t in report["traces"]] == ["low-volume/1001", "bursty/1001"]
    assert report["traces"][0]["params"]["family"] == "low-volume" and "peak_to_trough" in report["traces"][0]["params"]
    assert set(report["families"]) == {"low-volume", "bursty"}
    again = load_evaluation(tmp_path / "capacity-evaluation.json")
    assert render(again).split("\n", 1)[1] == out.split("\n", 1)[1].split("\n\nwrote ")[0]  # but the seconds
    assert main(["bench", "capacity", "--families", "nope", "--out", str(tmp_path)]) == 2


def test_bench_capacity_runs_eiplane_with_changed_settings_and_says_which(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "capacity", "--set", "dev", "--families", "low-volume", "--limit", "1", "--max-minutes", "240",
            "--workers", "1", "--no-plot", "--no-warm-pool", "--out", str(tmp_path)]
    assert main([*argv, "--setting", "backtest_minutes=240", "--setting", "min_daily_lags=3"]) == 0
    out = capsys.readouterr().out
    assert "eiplane's settings changed: min_daily_lags=3, backtest_minutes=240" in out.splitlines()[0]
    report = json.loads((tmp_path / "capacity-evaluation.json").read_text())
    assert report["settings_changed"] == {"min_daily_lags": 3, "backtest_minutes": 240}
    assert load_evaluation(tmp_path / "capacity-evaluation.json").settings_changed == report["settings_changed"]
    assert main(argv) == 0  # the defaults: nothing said changed
    assert "settings changed" not in capsys.readouterr().out
    assert json.loads((tmp_path / "capacity-evaluation.json").read_text())["settings_changed"] == {}
    assert main([*argv, "--setting", "no_such_setting=1"]) == 2
    assert main([*argv, "--setting", "backtest_minutes=-5"]) == 2
    assert "--setting: backtest_minutes" in capsys.readouterr().err
