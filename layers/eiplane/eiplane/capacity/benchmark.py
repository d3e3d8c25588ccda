"""The capacity benchmark: three generated traces x (eiplane, target tracking 70%, HPA-like 70%).

A benchmark, not a timed test: `run_benchmark()` takes about 10 s on one core, `sweep()` about a
minute (pass `workers=2` or more to spread it). The sweep varies each policy's aggressiveness
knob (eiplane: `headroom_sigmas`; the baselines: their target utilisation) so that policies can
be compared at equal violation rates (`cost_at_violation`), never one setting against another.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
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


@dataclass
class BenchmarkResult:
    config: SimConfig
    summaries: list[Summary]
    seconds: float
    trace_minutes: dict[str, int] = field(default_factory=dict)

    def summary(self, trace: str, policy_prefix: str) -> Summary:
        return next(s for s in self.summaries if s.trace == trace and s.policy.startswith(policy_prefix))

    def as_dict(self) -> dict[str, Any]:
        return {"config": vars(self.config), "seconds": round(self.seconds, 2), "trace_minutes": self.trace_minutes,
                "summaries": [s.as_dict() for s in self.summaries], "targets": check_targets(self)}


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


def bench_config(launch_minutes: int = 6, interval_minutes: int = 5, **overrides: Any) -> SimConfig:
    return SimConfig(launch_minutes=launch_minutes, interval_minutes=interval_minutes, capacity_rps=CAPACITY_RPS, **overrides)


def eiplane_settings(config: SimConfig, **overrides: Any) -> PolicySettings:
    return PolicySettings(launch_minutes=config.launch_minutes, interval_minutes=config.interval_minutes,
                          drain_minutes=config.drain_minutes, **overrides)


def _factories(config: SimConfig, settings: PolicySettings | None) -> list[Callable[[], Controller]]:
    chosen = settings or eiplane_settings(config)
    return [lambda: EiplanePolicy(chosen), lambda: TargetTracking(0.7), lambda: HpaLike(0.7)]


def run_benchmark(L: int = 6, N: int = 5, *, settings: PolicySettings | None = None,
                  traces: dict[str, list[float]] | None = None, config: SimConfig | None = None) -> BenchmarkResult:
    cfg = config or bench_config(L, N)
    data = traces or benchmark_traces()
    started = time.perf_counter()
    summaries: list[Summary] = []
    for name, demand in data.items():
        best = oracle(demand, cfg)
        for make in _factories(cfg, settings):
            summaries.append(simulate(demand, make(), cfg, trace=name, oracle_result=best, keep_timeline=False).summary)
    return BenchmarkResult(config=cfg, summaries=summaries, seconds=time.perf_counter() - started,
                           trace_minutes={name: len(d) for name, d in data.items()})


def check_targets(result: BenchmarkResult) -> list[dict[str, Any]]:
    """The issue's targets, each with the figure reached and whether it holds."""
    checks: list[dict[str, Any]] = []
    periodic = [t for t in PERIODIC if t in result.trace_minutes]
    if periodic:
        costs = [result.summary(t, "eiplane").cost_vs_oracle for t in periodic]
        mean = sum(costs) / len(costs)
        checks.append({"target": "periodic: mean cost <= 1.15x oracle", "value": round(mean, 4), "met": mean <= 1.15})
        for trace in periodic:
            s = result.summary(trace, "eiplane")
            checks.append({"target": f"{trace}: cost <= 1.20x oracle", "value": round(s.cost_vs_oracle, 4),
                           "met": s.cost_vs_oracle <= 1.20})
            checks.append({"target": f"{trace}: violation minutes <= 0.1%", "value": round(s.violation_minutes_pct, 4),
                           "met": s.violation_minutes_pct <= 0.1})
    if "flash_crowd" in result.trace_minutes:
        s = result.summary("flash_crowd", "eiplane")
        checks.append({"target": "flash_crowd: violation minutes <= 0.5%", "value": round(s.violation_minutes_pct, 4),
                       "met": s.violation_minutes_pct <= 0.5})
        checks.append({"target": "flash_crowd: cost <= 1.30x oracle", "value": round(s.cost_vs_oracle, 4),
                       "met": s.cost_vs_oracle <= 1.30})
    for trace in result.trace_minutes:
        mine, theirs = result.summary(trace, "eiplane"), result.summary(trace, "target-tracking")
        ratio = mine.launches_per_day / theirs.launches_per_day if theirs.launches_per_day else float("inf")
        checks.append({"target": f"{trace}: launches/day <= 1.5x target tracking's", "value": round(ratio, 3),
                       "met": ratio <= 1.5})
    return checks


def render_table(result: BenchmarkResult) -> str:
    cfg = result.config
    lines = [f"Capacity benchmark: L = {cfg.launch_minutes} min, N = {cfg.interval_minutes} min, drain {cfg.drain_minutes} min, "
             f"{cfg.capacity_rps:.0f} req/s per instance, alarm fast path at "
             f"{'off' if cfg.alarm_threshold is None else f'{cfg.alarm_threshold:.0%} of ready capacity'}, per-second billing "
             f"(60 s minimum); {result.seconds:.1f} s", "",
             "| trace | policy | cost / oracle | violation min % | unserved % | launches/day | instance-hours | oracle hours |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in result.summaries:
        lines.append(f"| {s.trace} | {s.policy} | {s.cost_vs_oracle:.3f} | {s.violation_minutes_pct:.3f} "
                     f"({s.violation_minutes}) | {s.unserved_pct:.4f} | {s.launches_per_day:.1f} | {s.instance_hours:.0f} | "
                     f"{s.oracle_instance_hours:.0f} |")
    lines += ["", "| target | reached | met |", "|---|---:|:---:|"]
    lines += [f"| {c['target']} | {c['value']} | {'yes' if c['met'] else 'NO'} |" for c in check_targets(result)]
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
    if policy == "eiplane":
        controller, knob = EiplanePolicy(eiplane_settings(cfg, headroom_sigmas=value)), "headroom_sigmas"
    elif policy == "target-tracking":
        controller, knob = TargetTracking(value), "target"
    else:
        controller, knob = HpaLike(value), "target"
    s = simulate(demand, controller, cfg, trace=trace, oracle_result=best, keep_timeline=False).summary
    return CurvePoint(trace=trace, policy=policy, knob=knob, value=value, cost_vs_oracle=s.cost_vs_oracle,
                      violation_minutes_pct=s.violation_minutes_pct, unserved_pct=s.unserved_pct,
                      launches_per_day=s.launches_per_day)


def sweep(L: int = 6, N: int = 5, *, sigmas: Sequence[float] = EIPLANE_SIGMAS,
          targets: Sequence[float] = BASELINE_TARGETS, traces: Sequence[str] = ("diurnal", "flash_crowd", "weekly"),
          workers: int = 1) -> list[CurvePoint]:
    """Each policy at each setting of its knob on each benchmark trace."""
    cfg = bench_config(L, N)
    jobs = [(t, "eiplane", v, cfg) for t in traces for v in sigmas]
    jobs += [(t, p, v, cfg) for t in traces for p in ("target-tracking", "hpa") for v in targets]
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
    levels = levels or {"diurnal": (0.05, 0.1, 0.5), "weekly": (0.05, 0.1, 0.5), "flash_crowd": (0.8, 1.0, 1.5)}
    policies = ("eiplane", "target-tracking", "hpa")
    lines = ["| trace | violation min % <= | " + " | ".join(policies) + " |", "|---|---:|" + "---:|" * len(policies)]
    for trace, wanted in levels.items():
        for level in wanted:
            cells = []
            for policy in policies:
                cost = cost_at_violation([p for p in points if p.trace == trace and p.policy == policy], level)
                cells.append("not reached" if cost is None else f"{cost:.3f}")
            lines.append(f"| {trace} | {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_capacity(out_dir: str | Path = "out", *, L: int = 6, N: int = 5, curves: bool = True,
                   workers: int = 2) -> dict[str, Any]:
    """What `eiplane bench capacity` does: the table (markdown and JSON) and, with `curves`, the sweep, its
    equal-violation table and the plot (if matplotlib is there). Returns the paths written and the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(L, N)
    table = render_table(result)
    written: dict[str, Any] = {"table": table}
    (out / "capacity-benchmark.md").write_text(table + "\n")
    (out / "capacity-benchmark.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    written["files"] = [str(out / "capacity-benchmark.md"), str(out / "capacity-benchmark.json")]
    if curves:
        started = time.perf_counter()
        points = sweep(L, N, workers=workers)
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


def plot_curves(points: Sequence[CurvePoint], path: str | Path) -> Path:
    """Cost / oracle against violation minutes %, one panel per trace, one line per policy (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("plot_curves needs matplotlib: pip install matplotlib") from exc
    traces = list(dict.fromkeys(p.trace for p in points))
    fig, axes = plt.subplots(1, len(traces), figsize=(5.2 * len(traces), 4.4), squeeze=False)
    styles = {"eiplane": ("tab:green", "o"), "target-tracking": ("tab:red", "s"), "hpa": ("tab:blue", "^")}
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
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target
