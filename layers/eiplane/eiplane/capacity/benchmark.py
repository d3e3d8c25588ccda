"""The capacity benchmark: three generated traces x (eiplane, target tracking 70%, HPA-like 70%).

A benchmark, not a timed test: `run_benchmark()` takes about 4 s on one core, `sweep()` about 15
(pass `workers=2` or more to spread either); `simulator_speed()` times the simulator itself. The
sweep varies each policy's aggressiveness knob (eiplane: `headroom_sigmas`; the baselines: their
target utilisation) so that policies can be compared at equal violation rates
(`cost_at_violation`), never one setting against another.

The warm pool (see `eiplane.capacity.simulate`) is a configuration of the fleet, not of the
policy: the table adds eiplane and target tracking with a pool of `WARM_POOL_SIZE` beside the
rows without one, once filled by scale-in only and once also prefilled before the trace;
`pool_sizing()` justifies the size (and shows the resume time W's weight) on the flash crowd.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eiplane.capacity.policy import PolicySettings
from eiplane.capacity.simulate import (
    Controller,
    EiplanePolicy,
    HpaLike,
    OracleResult,
    SimConfig,
    Summary,
    TargetTracking,
    oracle,
    simulate,
)
from eiplane.capacity.traces import CAPACITY_RPS, benchmark_traces

PERIODIC = ("diurnal", "weekly")
EIPLANE_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
BASELINE_TARGETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# The benchmark's warm pool: the instances the flash crowd's largest surge adds within W minutes, about
# (5x - 1) x its ~10-instance daily peak, plus the surge sizing's extrapolation; `pool_sizing()` shows the choice.
WARM_POOL_SIZE = 50
POOL_SIZES = (0, 10, 20, 30, 40, 50, 60, 80)
RESUME_MINUTES = (0, 1, 2, 3, 4, 6)
POOL_FILLS = ("scale-in", "prefilled")  # filled by scale-in only; and, in addition, full at minute 0
POOL_SWEEP_TRACE = "flash_crowd"


def pool_config(config: SimConfig, size: int, fill: str, **overrides: Any) -> SimConfig:
    """config with a warm pool of `size` filled by scale-in ("scale-in") or also prefilled ("prefilled")."""
    if fill not in POOL_FILLS:
        raise ValueError(f"fill must be one of {POOL_FILLS}, got {fill!r}")
    return replace(config, warm_pool_size=size, warm_pool_prefill=fill == "prefilled", **overrides)


@dataclass
class BenchmarkResult:
    config: SimConfig  # without a pool: the pool rows use pool_config(config, warm_pool_size, fill)
    summaries: list[Summary]
    seconds: float
    trace_minutes: dict[str, int] = field(default_factory=dict)
    warm_pool_size: int = 0

    def summary(self, trace: str, policy_prefix: str, fill: str | None = None) -> Summary:
        """The row of a policy on a trace: without a pool (fill None) or with the benchmark's pool, filled so."""
        return next(s for s in self.summaries if s.trace == trace and s.policy.startswith(policy_prefix)
                    and _fill(s) == fill)

    def fills(self) -> list[str]:
        return [fill for fill in POOL_FILLS if any(_fill(s) == fill for s in self.summaries)]

    def as_dict(self) -> dict[str, Any]:
        return {"config": vars(self.config), "warm_pool_size": self.warm_pool_size, "seconds": round(self.seconds, 2),
                "trace_minutes": self.trace_minutes, "summaries": [{"label": s.label, **s.as_dict()} for s in self.summaries],
                "targets": check_targets(self)}


def _fill(summary: Summary) -> str | None:
    if not summary.warm_pool_size:
        return None
    return "prefilled" if summary.warm_pool_prefill else "scale-in"


@dataclass(frozen=True)
class CurvePoint:
    trace: str
    policy: str  # "eiplane", "target-tracking", "hpa"
    knob: str
    value: float
    cost_vs_oracle: float
    violation_minutes_pct: float
    unserved_pct: float
    launches_per_day: float

    @classmethod
    def of(cls, summary: Summary, policy: str, knob: str, value: float) -> CurvePoint:
        """The point a run at this setting of its knob reached."""
        return cls(trace=summary.trace, policy=policy, knob=knob, value=value, cost_vs_oracle=summary.cost_vs_oracle,
                   violation_minutes_pct=summary.violation_minutes_pct, unserved_pct=summary.unserved_pct,
                   launches_per_day=summary.launches_per_day)


def pyplot(user: str) -> Any:
    """matplotlib's pyplot on the Agg backend (files only, no display); RuntimeError naming `user` without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"{user} needs matplotlib: pip install matplotlib") from exc
    return plt


def save_figure(plt: Any, fig: Any, path: str | Path, dpi: int) -> Path:
    """The figure written to `path` (its folder made) and closed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=dpi)
    plt.close(fig)
    return target


def bench_config(launch_minutes: int = 6, interval_minutes: int = 5, **overrides: Any) -> SimConfig:
    return SimConfig(launch_minutes=launch_minutes, interval_minutes=interval_minutes, capacity_rps=CAPACITY_RPS, **overrides)


def eiplane_settings(config: SimConfig, **overrides: Any) -> PolicySettings:
    return PolicySettings(launch_minutes=config.launch_minutes, interval_minutes=config.interval_minutes,
                          drain_minutes=config.drain_minutes, **overrides)


def _controller(policy: str, settings: PolicySettings) -> Controller:
    if policy == "eiplane":
        return EiplanePolicy(settings)
    if policy == "target-tracking":
        return TargetTracking(0.7)
    return HpaLike(0.7)


_Job = tuple[str, list[float], OracleResult, str, SimConfig, PolicySettings]


def _run_one(job: _Job) -> Summary:
    trace, demand, best, policy, cfg, settings = job
    return simulate(demand, _controller(policy, settings), cfg, trace=trace, oracle_result=best, keep_timeline=False).summary


def _run_all(jobs: Sequence[_Job], workers: int) -> list[Summary]:
    """The jobs' summaries, in the jobs' order; across processes the longest first (eiplane costs ~50x a baseline)."""
    if workers <= 1:
        return [_run_one(job) for job in jobs]
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][1]) * (50 if jobs[i][3] == "eiplane" else 1))
    with ProcessPoolExecutor(workers) as pool:
        done = dict(zip(order, pool.map(_run_one, [jobs[i] for i in order]), strict=True))
    return [done[i] for i in range(len(jobs))]


def run_benchmark(L: int = 6, N: int = 5, *, settings: PolicySettings | None = None,
                  traces: dict[str, list[float]] | None = None, config: SimConfig | None = None,
                  warm_pool_size: int = WARM_POOL_SIZE, workers: int = 1) -> BenchmarkResult:
    """Per trace: eiplane, target tracking 70% and HPA-like 70% without a pool; then, if warm_pool_size > 0, eiplane
    and target tracking with a pool of that size filled by scale-in only, and the same prefilled."""
    cfg = config or bench_config(L, N)
    if cfg.warm_pool_size or cfg.warm_pool_prefill:
        raise ValueError("give the pool as warm_pool_size: the base config compares against no pool")
    chosen = settings or eiplane_settings(cfg)
    data = traces or benchmark_traces()
    started = time.perf_counter()
    jobs: list[_Job] = []
    for name, demand in data.items():
        best = oracle(demand, cfg)
        jobs += [(name, demand, best, policy, cfg, chosen) for policy in ("eiplane", "target-tracking", "hpa")]
        if warm_pool_size:
            jobs += [(name, demand, best, policy, pool_config(cfg, warm_pool_size, fill), chosen)
                     for fill in POOL_FILLS for policy in ("eiplane", "target-tracking")]
    summaries = _run_all(jobs, workers)
    return BenchmarkResult(config=cfg, summaries=summaries, seconds=time.perf_counter() - started,
                           trace_minutes={name: len(d) for name, d in data.items()}, warm_pool_size=warm_pool_size)


def check_targets(result: BenchmarkResult) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure reached and whether it holds: for eiplane without a pool (the
    targets as set), then the same for eiplane with the benchmark's pool, per fill (prefixed "eiplane + warm pool")."""
    checks: list[dict[str, Any]] = []
    for fill in (None, *result.fills()):
        prefix = "" if fill is None else f"eiplane + warm pool ({fill}): "
        periodic = [t for t in PERIODIC if t in result.trace_minutes]
        if periodic:
            costs = [result.summary(t, "eiplane", fill).cost_vs_oracle for t in periodic]
            mean = sum(costs) / len(costs)
            checks.append({"target": f"{prefix}periodic: mean cost <= 1.15x oracle", "value": round(mean, 4),
                           "met": mean <= 1.15})
            for trace in periodic:
                s = result.summary(trace, "eiplane", fill)
                checks.append({"target": f"{prefix}{trace}: cost <= 1.20x oracle", "value": round(s.cost_vs_oracle, 4),
                               "met": s.cost_vs_oracle <= 1.20})
                checks.append({"target": f"{prefix}{trace}: violation minutes <= 0.1%",
                               "value": round(s.violation_minutes_pct, 4), "met": s.violation_minutes_pct <= 0.1})
        if "flash_crowd" in result.trace_minutes:
            s = result.summary("flash_crowd", "eiplane", fill)
            checks.append({"target": f"{prefix}flash_crowd: violation minutes <= 0.5%",
                           "value": round(s.violation_minutes_pct, 4), "met": s.violation_minutes_pct <= 0.5})
            checks.append({"target": f"{prefix}flash_crowd: cost <= 1.30x oracle", "value": round(s.cost_vs_oracle, 4),
                           "met": s.cost_vs_oracle <= 1.30})
        for trace in result.trace_minutes:
            mine, theirs = result.summary(trace, "eiplane", fill), result.summary(trace, "target-tracking", fill)
            if fill is None:
                what, ours, base = "launches/day", mine.launches_per_day, theirs.launches_per_day
            else:  # a resume is a start too (StartInstances can fail for capacity like RunInstances)
                what = "launches+resumes/day"
                ours = mine.launches_per_day + mine.resumes_per_day
                base = theirs.launches_per_day + theirs.resumes_per_day
            ratio = ours / base if base else float("inf")
            checks.append({"target": f"{prefix}{trace}: {what} <= 1.5x target tracking's", "value": round(ratio, 3),
                           "met": ratio <= 1.5})
    return checks


def render_table(result: BenchmarkResult) -> str:
    cfg = result.config
    lines = [f"Capacity benchmark: L = {cfg.launch_minutes} min, N = {cfg.interval_minutes} min, drain {cfg.drain_minutes} min, "
             f"{cfg.capacity_rps:.0f} req/s per instance, alarm fast path at "
             f"{'off' if cfg.alarm_threshold is None else f'{cfg.alarm_threshold:.0%} of ready capacity'}, per-second billing "
             f"(60 s minimum); {result.seconds:.1f} s"]
    if result.warm_pool_size:
        lines.append(f"Warm pool rows: at most {result.warm_pool_size} stopped instances, resumed ready in W = "
                     f"{cfg.resume_minutes} min, a stopped instance-hour billed as {cfg.warm_cost_fraction:g} instance-hours "
                     "(its EBS root volume); 'scale-in': filled by scale-in only, 'prefilled': also full at minute 0 (each "
                     f"launched, billed {cfg.launch_minutes} min, and stopped before the trace); 'of which warm pool': the "
                     "stopped time so billed plus the prefill's launch minutes, included in instance-hours")
    lines += ["", "| trace | policy | cost / oracle | violation min % | unserved % | launches/day | resumes/day | "
              "instance-hours | of which warm pool | oracle hours |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in result.summaries:
        pool = s.warm_pool_instance_hours + s.prefill_instance_hours
        lines.append(f"| {s.trace} | {s.label} | {s.cost_vs_oracle:.3f} | {s.violation_minutes_pct:.3f} "
                     f"({s.violation_minutes}) | {s.unserved_pct:.4f} | {s.launches_per_day:.1f} | "
                     f"{s.resumes_per_day:.1f} | {s.instance_hours:.0f} | {pool:.0f} | {s.oracle_instance_hours:.0f} |")
    lines += ["", "| target | reached | met |", "|---|---:|:---:|"]
    lines += [f"| {c['target']} | {c['value']} | {'yes' if c['met'] else 'NO'} |" for c in check_targets(result)]
    return "\n".join(lines)


# --- warm pool sizing ----------------------------------------------------------------------


@dataclass(frozen=True)
class PoolPoint:
    trace: str
    fill: str  # "scale-in" or "prefilled"
    size: int
    resume_minutes: int
    cost_vs_oracle: float
    violation_minutes: int
    violation_minutes_pct: float
    unserved_pct: float
    launches_per_day: float
    resumes_per_day: float
    pool_instance_hours: float  # stopped time at the fraction, plus the prefill's launch minutes


def pool_sizing(L: int = 6, N: int = 5, *, trace: str = POOL_SWEEP_TRACE, sizes: Iterable[int] = POOL_SIZES,
                resume_minutes: Iterable[int] = RESUME_MINUTES, size: int = WARM_POOL_SIZE,
                traces: dict[str, list[float]] | None = None, workers: int = 1) -> list[PoolPoint]:
    """eiplane on one trace with each pool size (W as configured), then with `size` and each resume time W; both
    fills."""
    cfg = bench_config(L, N)
    demand = (traces or benchmark_traces())[trace]
    best = oracle(demand, cfg)
    settings = eiplane_settings(cfg)
    configs: dict[tuple[str, int, int], SimConfig] = {}
    for fill in POOL_FILLS:
        for n in sizes:
            configs.setdefault((fill, n, cfg.resume_minutes), pool_config(cfg, n, fill))
        for w in resume_minutes:
            configs.setdefault((fill, size, w), pool_config(cfg, size, fill, resume_minutes=w))
    summaries = _run_all([(trace, demand, best, "eiplane", c, settings) for c in configs.values()], workers)
    return [PoolPoint(trace=trace, fill=fill, size=n, resume_minutes=w, cost_vs_oracle=s.cost_vs_oracle,
                      violation_minutes=s.violation_minutes, violation_minutes_pct=s.violation_minutes_pct,
                      unserved_pct=s.unserved_pct, launches_per_day=s.launches_per_day, resumes_per_day=s.resumes_per_day,
                      pool_instance_hours=s.warm_pool_instance_hours + s.prefill_instance_hours)
            for (fill, n, w), s in zip(configs, summaries, strict=True)]


def render_pool_sizing(points: Sequence[PoolPoint], size: int = WARM_POOL_SIZE, resume_minutes: int = 2) -> str:
    """Cost and violation of eiplane by pool size (at W = resume_minutes), then by W (at `size`), per fill."""
    trace = points[0].trace if points else POOL_SWEEP_TRACE

    def cells(n: int, w: int) -> str:
        out = []
        for fill in POOL_FILLS:
            p = next((p for p in points if p.fill == fill and p.size == n and p.resume_minutes == w), None)
            out += ["", ""] if p is None else [f"{p.cost_vs_oracle:.3f}",
                                               f"{p.violation_minutes_pct:.3f} ({p.violation_minutes})"]
        return " | ".join(out) + " |"

    header = ("| scale-in: cost / oracle | scale-in: violation min % | prefilled: cost / oracle | "
              "prefilled: violation min % |")
    lines = [f"eiplane on {trace} by warm pool size (W = {resume_minutes} min):", "",
             "| pool size " + header, "|---:|---:|---:|---:|---:|"]
    for n in sorted({p.size for p in points if p.resume_minutes == resume_minutes}):
        lines.append(f"| {n} | " + cells(n, resume_minutes))
    lines += ["", f"eiplane on {trace} by resume time W (pool size {size}):", "",
              "| W (min) " + header, "|---:|---:|---:|---:|---:|"]
    for w in sorted({p.resume_minutes for p in points if p.size == size}):
        lines.append(f"| {w} | " + cells(size, w))
    return "\n".join(lines)


# --- cost versus violation -----------------------------------------------------------------

_SWEEP_TRACES: dict[str, list[float]] = {}
_SWEEP_ORACLES: dict[str, OracleResult] = {}


def _sweep_one(job: tuple[str, str, float, SimConfig]) -> CurvePoint:
    trace, policy, value, cfg = job
    if trace not in _SWEEP_TRACES:
        _SWEEP_TRACES.update(benchmark_traces())
    demand = _SWEEP_TRACES[trace]
    best = _SWEEP_ORACLES.get(trace)
    if best is None:
        best = _SWEEP_ORACLES[trace] = oracle(demand, cfg)
    controller: Controller
    if policy.startswith("eiplane"):  # "eiplane + warm pool (...)": the pool is in cfg
        controller, knob = EiplanePolicy(eiplane_settings(cfg, headroom_sigmas=value)), "headroom_sigmas"
    elif policy == "target-tracking":
        controller, knob = TargetTracking(value), "target"
    else:
        controller, knob = HpaLike(value), "target"
    return CurvePoint.of(simulate(demand, controller, cfg, trace=trace, oracle_result=best, keep_timeline=False).summary,
                         policy, knob, value)


def sweep(L: int = 6, N: int = 5, *, sigmas: Sequence[float] = EIPLANE_SIGMAS,
          targets: Sequence[float] = BASELINE_TARGETS, traces: Sequence[str] = ("diurnal", "flash_crowd", "weekly"),
          pool_traces: Sequence[str] = (POOL_SWEEP_TRACE,), warm_pool_size: int = WARM_POOL_SIZE,
          workers: int = 1) -> list[CurvePoint]:
    """Each policy at each setting of its knob on each benchmark trace; on `pool_traces` also eiplane with the warm
    pool, per fill (policy "eiplane + warm pool (scale-in)" / "(prefilled)")."""
    cfg = bench_config(L, N)
    jobs = [(t, "eiplane", v, cfg) for t in traces for v in sigmas]
    jobs += [(t, p, v, cfg) for t in traces for p in ("target-tracking", "hpa") for v in targets]
    if warm_pool_size:
        jobs += [(t, f"eiplane + warm pool ({fill})", v, pool_config(cfg, warm_pool_size, fill))
                 for t in pool_traces if t in traces for fill in POOL_FILLS for v in sigmas]
    if workers <= 1:
        return [_sweep_one(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_sweep_one, jobs))


def frontier(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """The points no other point beats on both cost and violation, by violation."""
    ordered = sorted(points, key=lambda p: (p.violation_minutes_pct, p.cost_vs_oracle))
    out: list[CurvePoint] = []
    for p in ordered:
        if not out or p.cost_vs_oracle < out[-1].cost_vs_oracle:
            out.append(p)
    return out


def cost_at_violation(points: Sequence[CurvePoint], violation_pct: float) -> float | None:
    """The cheapest cost at which the policy's frontier reaches at most `violation_pct` (linear between settings);
    None if no setting swept reaches it."""
    front = frontier(points)
    reachable = [p for p in front if p.violation_minutes_pct <= violation_pct + 1e-12]
    if not reachable:
        return None
    below = reachable[-1]
    above = next((p for p in front if p.violation_minutes_pct > violation_pct), None)
    if above is None or above.violation_minutes_pct == below.violation_minutes_pct:
        return below.cost_vs_oracle
    w = (violation_pct - below.violation_minutes_pct) / (above.violation_minutes_pct - below.violation_minutes_pct)
    return below.cost_vs_oracle + w * (above.cost_vs_oracle - below.cost_vs_oracle)


def render_equal_violation(points: Sequence[CurvePoint], levels: dict[str, Sequence[float]] | None = None) -> str:
    """Cost of each policy at the same violation rates, per trace (from the sweep's frontiers)."""
    levels = levels or {"diurnal": (0.05, 0.1, 0.5), "weekly": (0.05, 0.1, 0.5), "flash_crowd": (0.5, 0.8, 1.0, 1.5)}
    policies = tuple(dict.fromkeys(["eiplane", "target-tracking", "hpa", *(p.policy for p in points)]))
    lines = ["| trace | violation min % <= | " + " | ".join(policies) + " |", "|---|---:|" + "---:|" * len(policies)]
    for trace, wanted in levels.items():
        for level in wanted:
            cells = []
            for policy in policies:
                mine = [p for p in points if p.trace == trace and p.policy == policy]
                cost = cost_at_violation(mine, level)
                cells.append("not swept" if not mine else "not reached" if cost is None else f"{cost:.3f}")
            lines.append(f"| {trace} | {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_capacity(out_dir: str | Path = "out", *, L: int = 6, N: int = 5, curves: bool = True,
                   workers: int = 2, warm_pool_size: int = WARM_POOL_SIZE) -> dict[str, Any]:
    """What `eiplane bench capacity` does: the table and the warm pool sizing (markdown and JSON) and, with `curves`,
    the sweep, its equal-violation table and the plot (if matplotlib is there). Returns the paths written and the
    table (the warm pool sizing appended)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(L, N, warm_pool_size=warm_pool_size, workers=workers)
    table = render_table(result)
    written: dict[str, Any] = {"table": table}
    (out / "capacity-benchmark.md").write_text(table + "\n")
    (out / "capacity-benchmark.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    written["files"] = [str(out / "capacity-benchmark.md"), str(out / "capacity-benchmark.json")]
    if warm_pool_size:
        started = time.perf_counter()
        pool_points = pool_sizing(L, N, size=warm_pool_size, workers=workers)
        sizing = render_pool_sizing(pool_points, warm_pool_size, result.config.resume_minutes)
        written["table"] += "\n\n" + sizing
        written["pool_seconds"] = round(time.perf_counter() - started, 1)
        (out / "capacity-warm-pool.md").write_text(sizing + "\n")
        (out / "capacity-warm-pool.json").write_text(json.dumps([asdict(p) for p in pool_points], indent=1) + "\n")
        written["files"] += [str(out / "capacity-warm-pool.md"), str(out / "capacity-warm-pool.json")]
    if curves:
        started = time.perf_counter()
        points = sweep(L, N, warm_pool_size=warm_pool_size, workers=workers)
        equal = render_equal_violation(points)
        written["equal_violation"] = equal
        written["sweep_seconds"] = round(time.perf_counter() - started, 1)
        (out / "capacity-curves.json").write_text(json.dumps([asdict(p) for p in points], indent=1) + "\n")
        (out / "capacity-equal-violation.md").write_text(equal + "\n")
        written["files"] += [str(out / "capacity-curves.json"), str(out / "capacity-equal-violation.md")]
        try:
            written["files"].append(str(plot_curves(points, out / "capacity-curves.png")))
        except RuntimeError as exc:
            written["plot_skipped"] = str(exc)
    return written


MINUTES_PER_YEAR = 365 * 1440


@dataclass(frozen=True)
class SimulatorSpeed:
    """How fast `simulate()` replays a trace through the eiplane policy alone (no timeline kept)."""

    trace: str
    minutes: int
    plan_calls: int
    wall_seconds: float
    cpu_seconds: float
    cache: bool
    summary: Summary

    @property
    def minutes_per_second(self) -> float:
        return self.minutes / self.wall_seconds

    @property
    def year_seconds(self) -> float:
        """A year of minutes at this rate."""
        return MINUTES_PER_YEAR / self.minutes_per_second

    def render(self) -> str:
        how = "with its ForecastCache" if self.cache else "without a ForecastCache (every tick as the Lambda computes it)"
        s = self.summary
        return (f"eiplane policy {how} on {self.trace}: {self.minutes:,} minutes, {self.plan_calls:,} plan() calls in "
                f"{self.wall_seconds:.1f} s ({self.cpu_seconds:.1f} s of CPU): {self.minutes_per_second:,.0f} minutes/s, a year "
                f"of minutes in {self.year_seconds:.0f} s\n"
                f"(cost / oracle {s.cost_vs_oracle:.3f}, violation minutes {s.violation_minutes}, launches {s.launches})")


def simulator_speed(demand: Sequence[float], trace: str = "trace", *, config: SimConfig | None = None,
                    settings: PolicySettings | None = None, cache: bool = True) -> SimulatorSpeed:
    """Time one replay of `demand` through the eiplane policy (the simulator's cost is the policy's: the baselines
    take a few seconds a year). A benchmark, not a test: timings depend on the machine and its load."""
    cfg = config or SimConfig()
    best = oracle(demand, cfg)  # not timed: the same for every policy
    controller = EiplanePolicy(settings or eiplane_settings(cfg), cache=cache)
    wall, cpu = time.perf_counter(), time.process_time()
    result = simulate(demand, controller, cfg, trace=trace, oracle_result=best, keep_timeline=False)
    return SimulatorSpeed(trace=trace, minutes=len(demand), plan_calls=result.summary.ticks,
                          wall_seconds=time.perf_counter() - wall, cpu_seconds=time.process_time() - cpu, cache=cache,
                          summary=result.summary)


def plot_curves(points: Sequence[CurvePoint], path: str | Path) -> Path:
    """Cost / oracle against violation minutes %, one panel per trace, one line per policy (needs matplotlib)."""
    plt = pyplot("plot_curves")
    traces = list(dict.fromkeys(p.trace for p in points))
    fig, axes = plt.subplots(1, len(traces), figsize=(5.2 * len(traces), 4.4), squeeze=False)
    styles = {"eiplane": ("tab:green", "o"), "target-tracking": ("tab:red", "s"), "hpa": ("tab:blue", "^"),
              "eiplane + warm pool (scale-in)": ("tab:olive", "D"), "eiplane + warm pool (prefilled)": ("tab:purple", "D")}
    for ax, trace in zip(axes[0], traces, strict=True):
        for policy, (colour, marker) in styles.items():
            mine = sorted((p for p in points if p.trace == trace and p.policy == policy), key=lambda p: p.value)
            if not mine:
                continue
            ax.plot([p.violation_minutes_pct for p in mine], [p.cost_vs_oracle for p in mine], marker=marker, color=colour,
                    label=f"{policy} ({mine[0].knob})")
            for p in mine:
                ax.annotate(f"{p.value:g}", (p.violation_minutes_pct, p.cost_vs_oracle), fontsize=7, color=colour,
                            textcoords="offset points", xytext=(4, 3))
        if min(p.violation_minutes_pct for p in points if p.trace == trace) < 0.1:
            ax.set_xscale("symlog", linthresh=0.01)  # zero and near-zero violation rates side by side
        ax.set_title(trace)
        ax.set_xlabel("violation minutes % (demand > ready capacity)")
        ax.set_ylabel("cost / oracle")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(plt, fig, path, dpi=120)
