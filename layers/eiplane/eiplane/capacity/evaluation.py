"""The capacity evaluation: eiplane on the families' traces against the oracle and, at equal violation, tuned baselines.

What `eiplane bench capacity` runs (`bench_families`). Per trace of a set (`eiplane.capacity.families`,
"test" unless told: the development set is for tuning, the test set for the figures):

- The oracle (`simulate.oracle`, the exact optimum) and its check: its plan replayed through the
  simulator (`simulate.Schedule`, the initial fleet the oracle's own) must cost what the oracle
  says and never violate; each trace records the replay's cost / oracle and violation minutes.
- eiplane with its default settings (`PolicySettings`, L and N as configured): cost / oracle,
  violation minutes %, launches per day against the oracle's.
- Each baseline (target tracking, HPA-like) swept over its target utilisation, 0.30-0.95 in
  steps of 0.05 (`GRID`); extended down (0.25 .. 0.10) while no target reaches eiplane's
  violation rate and up (0.975, 1.0) while every target violates less than eiplane; then
  `REFINE_STEPS` bisections of the target between the two frontier points around eiplane's
  rate. The frontier is the cheapest cost at each violation level (non-increasing in
  violation); the baseline's cost at eiplane's violation rate is the linear interpolation
  between the frontier points either side ("interpolated"), a frontier point's own where the
  rates are equal ("exact"), nothing where every setting violates more than eiplane ("not
  reached": no swept target is that safe), and the cheapest setting swept where every setting
  violates less ("beyond": the baseline might be cheaper still at eiplane's rate, so eiplane /
  baseline is then a lower bound).
- On the flash-crowd family, eiplane also with a warm pool (`simulate`'s model: resumed ready in
  W = 2 min, stopped time billed at 0.011 of an instance-hour), filled by scale-in only and
  prefilled, sized per trace by the rule of docs/capacity-benchmark.md: the instances the
  trace's largest flash crowd adds over the base daily peak, +25% (`pool_size_for`).

Every figure of a family is reported per trace and as the family's mean and worst; the targets
(`check_targets`) are checked on what was run. Tune nothing on the test set.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eiplane.capacity.benchmark import (
    POOL_FILLS,
    WARM_POOL_SIZE,
    CurvePoint,
    bench_config,
    eiplane_settings,
    frontier,
    pool_config,
    pyplot,
    save_figure,
)
from eiplane.capacity.families import (
    DEV_SEEDS,
    FAMILIES,
    PERIODIC_FAMILIES,
    TEST_SEEDS,
    Trace,
    make_trace,
    trace_ids,
)
from eiplane.capacity.policy import PolicySettings
from eiplane.capacity.simulate import (
    Controller,
    EiplanePolicy,
    HpaLike,
    Schedule,
    SimConfig,
    Summary,
    TargetTracking,
    oracle,
    simulate,
)
from eiplane.capacity.traces import CAPACITY_RPS

GRID = tuple(round(0.30 + 0.05 * i, 2) for i in range(14))  # 0.30 .. 0.95
LOW_EXTENSION = (0.25, 0.2, 0.15, 0.1)
HIGH_EXTENSION = (0.975, 1.0)
REFINE_STEPS = 3
BASELINES = ("target-tracking", "hpa")
BASELINE_LABEL = {"target-tracking": "TT", "hpa": "HPA"}
FLASH_FAMILY = "flash-crowd"
MAX_SIZE = 10_000  # no trace comes near it: the policies are bounded by demand, not by max_size
EPS = 1e-9
WEEK = 7 * 1440


def evaluation_config(L: int = 6, N: int = 5, **overrides: Any) -> SimConfig:
    """The benchmark's simulator settings (bench_config), max_size out of the way of the largest traces."""
    return bench_config(L, N, **{"max_size": MAX_SIZE, **overrides})


def pool_size_for(trace: Trace) -> int:
    """The warm pool for a flash-crowd trace: (largest flash crowd - 1) x the base daily peak in instances, +25%."""
    params = trace.params
    if "largest_spike_factor" in params and "base_peak_rps" in params:
        return math.ceil(1.25 * (params["largest_spike_factor"] - 1) * params["base_peak_rps"] / CAPACITY_RPS - EPS)
    return WARM_POOL_SIZE  # legacy/flash_crowd, the trace that size was chosen on


# --- equal violation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EqualCost:
    """A baseline's cost / oracle at eiplane's violation rate, read off its frontier."""

    policy: str
    violation_pct: float  # eiplane's
    cost_vs_oracle: float | None
    status: str  # "interpolated", "exact", "not reached", "beyond"
    target: float | None = None  # the setting, where one point gives the figure (exact, beyond)


def cost_at_equal_violation(points: Sequence[CurvePoint], violation_pct: float, policy: str = "") -> EqualCost:
    """The frontier's cost at violation_pct (linear between its points); see the module doc for the statuses."""
    front = frontier(points)
    if not front or front[0].violation_minutes_pct > violation_pct + EPS:
        return EqualCost(policy, violation_pct, None, "not reached")
    below = [p for p in front if p.violation_minutes_pct <= violation_pct + EPS][-1]
    if abs(below.violation_minutes_pct - violation_pct) <= EPS:
        return EqualCost(policy, violation_pct, below.cost_vs_oracle, "exact", below.value)
    above = next((p for p in front if p.violation_minutes_pct > violation_pct + EPS), None)
    if above is None:
        return EqualCost(policy, violation_pct, below.cost_vs_oracle, "beyond", below.value)
    w = (violation_pct - below.violation_minutes_pct) / (above.violation_minutes_pct - below.violation_minutes_pct)
    return EqualCost(policy, violation_pct, below.cost_vs_oracle + w * (above.cost_vs_oracle - below.cost_vs_oracle),
                     "interpolated")


def _bracket(points: Iterable[CurvePoint], violation_pct: float) -> tuple[CurvePoint, CurvePoint] | None:
    front = frontier(list(points))
    below = [p for p in front if p.violation_minutes_pct <= violation_pct + EPS]
    above = [p for p in front if p.violation_minutes_pct > violation_pct + EPS]
    return (below[-1], above[0]) if below and above else None


def sweep_to(run: Callable[[float], CurvePoint], violation_pct: float, grid: Sequence[float] = GRID,
             refine_steps: int = REFINE_STEPS) -> list[CurvePoint]:
    """run(target) over the grid, extended until the curve brackets violation_pct where it can, then bisected between
    the frontier points either side of it. The points by target."""
    points: dict[float, CurvePoint] = {t: run(t) for t in grid}
    for target in LOW_EXTENSION:
        if any(p.violation_minutes_pct <= violation_pct + EPS for p in points.values()):
            break
        points[target] = run(target)
    for target in HIGH_EXTENSION:
        if any(p.violation_minutes_pct > violation_pct + EPS for p in points.values()):
            break
        points[target] = run(target)
    for _ in range(refine_steps):
        pair = _bracket(points.values(), violation_pct)
        if pair is None:
            break
        middle = round((pair[0].value + pair[1].value) / 2, 5)
        if middle in points:
            break
        points[middle] = run(middle)
    return [points[t] for t in sorted(points)]


# --- running ----------------------------------------------------------------------------------

_TRACES: dict[tuple[str, int | None], Trace] = {}
_CACHED = 4  # traces per process: a trace's jobs run close together


def _trace(trace_id: str, max_minutes: int | None) -> Trace:
    key = (trace_id, max_minutes)
    if key not in _TRACES:
        while len(_TRACES) >= _CACHED:
            del _TRACES[next(iter(_TRACES))]
        trace = make_trace(trace_id)
        if max_minutes is not None:
            trace.demand = trace.demand[:max_minutes]
        _TRACES[key] = trace
    return _TRACES[key]


@dataclass(frozen=True)
class _Job:
    trace_id: str
    max_minutes: int | None
    kind: str  # "eiplane", "eiplane + warm pool (<fill>)", "baselines"
    config: SimConfig
    settings: PolicySettings
    violation_pct: float = 0.0  # eiplane's, for the baselines' sweeps


def _controller(policy: str, target: float) -> Controller:
    return TargetTracking(target) if policy == "target-tracking" else HpaLike(target)


def _run_job(job: _Job) -> dict[str, Any]:
    trace = _trace(job.trace_id, job.max_minutes)
    demand, cfg = trace.demand, job.config
    started = time.perf_counter()
    best = oracle(demand, cfg)
    if job.kind != "baselines":
        result = simulate(demand, EiplanePolicy(job.settings), cfg, trace=trace.id, oracle_result=best, keep_timeline=True)
        later = result.timeline[WEEK:]  # the violation minutes once the policy has a week of history
        return {"summary": result.summary, "seconds": time.perf_counter() - started,
                "violation_after_week_pct": 100 * sum(row.violation for row in later) / len(later) if later else None}
    exact = replace(cfg, initial_size=sum(1 for _, _, initial in best.runs if initial))  # the oracle's own first fleet
    replay = simulate(demand, Schedule(best.runs, exact), exact, trace=trace.id, oracle_result=best,
                      keep_timeline=False).summary
    check = {"replay_cost_vs_oracle": replay.cost_vs_oracle, "replay_violation_minutes": replay.violation_minutes,
             "ok": abs(replay.cost_vs_oracle - 1) <= 1e-3 and replay.violation_minutes == 0}
    sweeps: dict[str, list[CurvePoint]] = {}
    for policy in BASELINES:
        def run(target: float, policy: str = policy) -> CurvePoint:
            return CurvePoint.of(simulate(demand, _controller(policy, target), cfg, trace=trace.id, oracle_result=best,
                                          keep_timeline=False).summary, policy, "target", target)

        sweeps[policy] = sweep_to(run, job.violation_pct)
    days = len(demand) / 1440
    return {"trace": {"id": trace.id, "family": trace.family, "seed": trace.seed, "minutes": trace.minutes,
                      "peak_instances": trace.peak_instances, "params": trace.params},
            "oracle": {"instance_hours": best.instance_hours, "launches": best.launches,
                       "launches_per_day": best.launches / days, "check": check},
            "sweeps": sweeps, "seconds": time.perf_counter() - started}


@dataclass
class TraceResult:
    id: str
    family: str
    seed: int
    minutes: int
    peak_instances: int
    params: dict[str, Any]
    oracle_instance_hours: float
    oracle_launches_per_day: float
    oracle_check: dict[str, Any]
    eiplane: Summary
    sweeps: dict[str, list[CurvePoint]]
    equal: dict[str, EqualCost]
    pool: dict[str, Summary] = field(default_factory=dict)  # fill -> eiplane with the warm pool (flash crowds)
    pool_size: int = 0
    seconds: float = 0.0
    violation_after_week_pct: float | None = None  # eiplane's violation minutes % from day 8 on (None: a shorter trace)

    def ratio(self, policy: str) -> float | None:
        """eiplane's cost over the baseline's at eiplane's violation rate (None: not reached)."""
        cost = self.equal[policy].cost_vs_oracle
        return self.eiplane.cost_vs_oracle / cost if cost else None

    def launch_ratio(self, summary: Summary | None = None, with_resumes: bool = False) -> float:
        """launches (and resumes) per day over the oracle's launches per day."""
        s = summary or self.eiplane
        mine = s.launches_per_day + (s.resumes_per_day if with_resumes else 0.0)
        if self.oracle_launches_per_day <= 0:
            return 1.0 if mine <= 0 else math.inf
        return mine / self.oracle_launches_per_day

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["eiplane"] = self.eiplane.as_dict()
        out["pool"] = {fill: s.as_dict() for fill, s in self.pool.items()}
        out["eiplane_vs"] = {p: self.ratio(p) for p in self.equal}
        out["launch_ratio"] = self.launch_ratio()
        return out


@dataclass
class Evaluation:
    which: str  # "dev" or "test"
    config: SimConfig
    results: list[TraceResult]
    seconds: float
    cut: dict[str, Any] = field(default_factory=dict)  # limit / max_minutes / families, if the set was cut down
    settings_changed: dict[str, Any] = field(default_factory=dict)  # eiplane's settings that are not its defaults

    def families(self) -> list[str]:
        return [f for f in FAMILIES if any(r.family == f for r in self.results)]

    def of(self, family: str) -> list[TraceResult]:
        return [r for r in self.results if r.family == family]

    def as_dict(self) -> dict[str, Any]:
        return {"set": self.which, "cut": self.cut, "settings_changed": self.settings_changed, "config": asdict(self.config),
                "seconds": round(self.seconds, 1),
                "split": {"dev_seeds": [DEV_SEEDS.start, DEV_SEEDS.stop - 1], "test_seeds": [TEST_SEEDS.start,
                                                                                          TEST_SEEDS.stop - 1]},
                "families": {f: {"days": FAMILIES[f].days, "summary": FAMILIES[f].summary, **family_summary(self.of(f))}
                             for f in self.families()},
                "targets": check_targets(self), "traces": [r.as_dict() for r in self.results]}


def run_evaluation(which: str = "test", *, L: int = 6, N: int = 5, families: Sequence[str] | None = None,
                   limit: int | None = None, max_minutes: int | None = None, warm_pool: bool = True, workers: int = 1,
                   settings: PolicySettings | None = None, progress: Callable[[str], None] | None = None) -> Evaluation:
    """eiplane, the oracle and the baselines' sweeps on every trace of the set (see the module doc)."""
    cfg = evaluation_config(L, N)
    chosen = settings or eiplane_settings(cfg)
    ids = trace_ids(which, families, limit)
    started = time.perf_counter()
    jobs: list[_Job] = []
    for i in ids:  # a trace's jobs together (each process keeps the last few traces it generated)
        jobs.append(_Job(i, max_minutes, "eiplane", cfg, chosen))
        if warm_pool and (i.startswith(FLASH_FAMILY + "/") or i == "legacy/flash_crowd"):
            size = pool_size_for(_trace(i, max_minutes))
            jobs += [_Job(i, max_minutes, f"eiplane + warm pool ({fill})", pool_config(cfg, size, fill), chosen)
                     for fill in POOL_FILLS]
    done: dict[tuple[str, str], dict[str, Any]] = {}

    def note(job: _Job, out: dict[str, Any]) -> None:
        done[(job.trace_id, job.kind)] = out
        if progress:
            extra = f" {out['summary'].cost_vs_oracle:.3f}x, {out['summary'].violation_minutes_pct:.3f}%" \
                if "summary" in out else ""
            progress(f"{job.trace_id} {job.kind}: {out['seconds']:.1f} s{extra}")

    def follow_up(job: _Job, out: dict[str, Any]) -> _Job | None:
        if job.kind != "eiplane":
            return None
        return replace(job, kind="baselines", violation_pct=out["summary"].violation_minutes_pct)

    if workers <= 1:
        queue = list(jobs)
        while queue:
            job = queue.pop(0)
            out = _run_job(job)
            note(job, out)
            nxt = follow_up(job, out)
            if nxt:
                queue.insert(0, nxt)
    else:
        with ProcessPoolExecutor(workers) as pool:
            pending: dict[Future[dict[str, Any]], _Job] = {pool.submit(_run_job, j): j for j in jobs}
            while pending:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    job = pending.pop(future)
                    out = future.result()
                    note(job, out)
                    nxt = follow_up(job, out)
                    if nxt:
                        pending[pool.submit(_run_job, nxt)] = nxt
    results = []
    for i in ids:
        base, plain = done[(i, "baselines")], done[(i, "eiplane")]
        s: Summary = plain["summary"]
        pool_runs = {fill: done[(i, f"eiplane + warm pool ({fill})")]["summary"] for fill in POOL_FILLS
                     if (i, f"eiplane + warm pool ({fill})") in done}
        t = base["trace"]
        results.append(TraceResult(
            id=i, family=t["family"], seed=t["seed"], minutes=t["minutes"], peak_instances=t["peak_instances"],
            params=t["params"], oracle_instance_hours=base["oracle"]["instance_hours"],
            oracle_launches_per_day=base["oracle"]["launches_per_day"], oracle_check=base["oracle"]["check"], eiplane=s,
            sweeps=base["sweeps"], pool=pool_runs, pool_size=next(iter(pool_runs.values())).warm_pool_size if pool_runs else 0,
            equal={p: cost_at_equal_violation(base["sweeps"][p], s.violation_minutes_pct, p) for p in BASELINES},
            violation_after_week_pct=plain["violation_after_week_pct"],
            seconds=base["seconds"] + plain["seconds"] + sum(done[(i, f"eiplane + warm pool ({f})")]["seconds"]
                                                              for f in pool_runs)))
    cut = {k: v for k, v in (("families", list(families) if families else None), ("limit", limit),
                             ("max_minutes", max_minutes)) if v is not None}
    defaults = eiplane_settings(cfg).model_dump()
    changed = {key: value for key, value in chosen.model_dump().items() if value != defaults[key]}
    return Evaluation(which=which, config=cfg, results=results, seconds=time.perf_counter() - started, cut=cut,
                      settings_changed=changed)


def load_evaluation(path: str | Path) -> Evaluation:
    """An evaluation back from the capacity-evaluation.json that bench_families wrote (to render or plot it again)."""
    data = json.loads(Path(path).read_text())
    summary_fields = set(Summary.__dataclass_fields__)
    results = []
    for t in data["traces"]:
        results.append(TraceResult(
            id=t["id"], family=t["family"], seed=t["seed"], minutes=t["minutes"], peak_instances=t["peak_instances"],
            params=t["params"], oracle_instance_hours=t["oracle_instance_hours"],
            oracle_launches_per_day=t["oracle_launches_per_day"], oracle_check=t["oracle_check"],
            eiplane=Summary(**{k: v for k, v in t["eiplane"].items() if k in summary_fields}),
            sweeps={p: [CurvePoint(**c) for c in points] for p, points in t["sweeps"].items()},
            equal={p: EqualCost(**e) for p, e in t["equal"].items()},
            pool={fill: Summary(**{k: v for k, v in s.items() if k in summary_fields}) for fill, s in t["pool"].items()},
            pool_size=t["pool_size"], seconds=t["seconds"], violation_after_week_pct=t.get("violation_after_week_pct")))
    return Evaluation(which=data["set"], config=SimConfig(**data["config"]), results=results, seconds=data["seconds"],
                      cut=data["cut"], settings_changed=data.get("settings_changed", {}))


# --- summaries and targets ----------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def family_summary(results: Sequence[TraceResult]) -> dict[str, Any]:
    """Means and worsts of a family's figures (the baselines' ratios over the traces where they are reached)."""
    costs = [r.eiplane.cost_vs_oracle for r in results]
    violations = [r.eiplane.violation_minutes_pct for r in results]
    launches = [r.launch_ratio() for r in results]
    out: dict[str, Any] = {"traces": len(results), "cost_mean": _mean(costs), "cost_worst": max(costs, default=None),
                           "violation_mean": _mean(violations), "violation_worst": max(violations, default=None),
                           "violation_after_week_mean": _mean([r.violation_after_week_pct for r in results
                                                               if r.violation_after_week_pct is not None]),
                           "launch_ratio_mean": _mean(launches), "launch_ratio_worst": max(launches, default=None),
                           "oracle_checks_ok": sum(bool(r.oracle_check["ok"]) for r in results)}
    for policy in BASELINES:
        ratios = [x for x in (r.ratio(policy) for r in results) if x is not None]
        costs_at = [c for c in (r.equal[policy].cost_vs_oracle for r in results) if c is not None]
        out[policy] = {"ratio_mean": _mean(ratios), "ratio_worst": max(ratios, default=None),
                       "cost_mean": _mean(costs_at), "compared": len(ratios),
                       "not_reached": sum(r.equal[policy].status == "not reached" for r in results),
                       "beyond": sum(r.equal[policy].status == "beyond" for r in results)}
    for fill in POOL_FILLS:
        pooled = [r for r in results if fill in r.pool]
        if pooled:
            out[f"pool_{fill}"] = {
                "cost_mean": _mean([r.pool[fill].cost_vs_oracle for r in pooled]),
                "cost_worst": max(r.pool[fill].cost_vs_oracle for r in pooled),
                "violation_mean": _mean([r.pool[fill].violation_minutes_pct for r in pooled]),
                "violation_worst": max(r.pool[fill].violation_minutes_pct for r in pooled),
                "launch_ratio_worst": max(r.launch_ratio(r.pool[fill], with_resumes=True) for r in pooled)}
    return out


def _check(target: str, value: float | None, met: bool | None) -> dict[str, Any]:
    return {"target": target, "value": None if value is None else round(value, 4), "met": bool(met) if value is not None
            else None}


def check_targets(evaluation: Evaluation) -> list[dict[str, Any]]:
    """The issue's targets on the families that were run: met True/False, or None where there is no figure."""
    checks: list[dict[str, Any]] = []
    for family in evaluation.families():
        rs = evaluation.of(family)
        summary = family_summary(rs)
        if family in PERIODIC_FAMILIES:
            checks.append(_check(f"{family}: mean cost <= 1.15x oracle", summary["cost_mean"], summary["cost_mean"] <= 1.15))
            checks.append(_check(f"{family}: every trace's cost <= 1.20x oracle", summary["cost_worst"],
                                 summary["cost_worst"] <= 1.20))
            checks.append(_check(f"{family}: every trace's violation minutes <= 0.1%", summary["violation_worst"],
                                 summary["violation_worst"] <= 0.1))
        if family == FLASH_FAMILY:
            rows: list[tuple[str, list[Summary]]] = [("", [r.eiplane for r in rs])]
            rows += [(f"eiplane + warm pool ({fill}): ", [r.pool[fill] for r in rs if fill in r.pool]) for fill in POOL_FILLS
                     if any(fill in r.pool for r in rs)]
            for prefix, summaries in rows:
                worst_v = max(s.violation_minutes_pct for s in summaries)
                worst_c = max(s.cost_vs_oracle for s in summaries)
                checks.append(_check(f"{prefix}{family}: every trace's violation minutes <= 0.5%", worst_v, worst_v <= 0.5))
                checks.append(_check(f"{prefix}{family}: every trace's cost <= 1.30x oracle", worst_c, worst_c <= 1.30))
        tt = summary["target-tracking"]
        checks.append(_check(f"{family}: at equal violation, mean cost <= 0.95x tuned target tracking's",
                             tt["ratio_mean"], tt["ratio_mean"] is not None and tt["ratio_mean"] <= 0.95))
        checks.append(_check(f"{family}: at equal violation, no trace dearer than tuned target tracking",
                             tt["ratio_worst"], tt["ratio_worst"] is not None and tt["ratio_worst"] <= 1.0))
        checks.append(_check(f"{family}: every trace's launches/day <= 1.5x the oracle's", summary["launch_ratio_worst"],
                             summary["launch_ratio_worst"] <= 1.5))
    return checks


# --- rendering ----------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _baseline_cells(r: TraceResult, policy: str) -> list[str]:
    eq = r.equal[policy]
    if eq.cost_vs_oracle is None:
        return ["not reached", "-"]
    mark = "*" if eq.status == "beyond" else ""
    ratio = r.ratio(policy)
    return [f"{eq.cost_vs_oracle:.3f}{mark}", f"{'>=' if mark else ''}{_num(ratio)}"]


def render_family(evaluation: Evaluation, family: str) -> str:
    rs = evaluation.of(family)
    summary = family_summary(rs)
    lines = [f"#### {family}: {FAMILIES[family].summary} ({len(rs)} traces)", "",
             "| trace | minutes | peak inst | eiplane cost / oracle | violation min % | launches/day (oracle's) | "
             "tuned TT cost / oracle | eiplane / TT | tuned HPA cost / oracle | eiplane / HPA |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rs:
        s = r.eiplane
        check = "" if r.oracle_check["ok"] else " (oracle check failed)"
        lines.append(f"| {r.id}{check} | {r.minutes} | {r.peak_instances} | {s.cost_vs_oracle:.3f} | "
                     f"{s.violation_minutes_pct:.3f} ({s.violation_minutes}) | {s.launches_per_day:.1f} "
                     f"({r.oracle_launches_per_day:.1f}, {_num(r.launch_ratio(), 2)}x) | "
                     + " | ".join(_baseline_cells(r, "target-tracking") + _baseline_cells(r, "hpa")) + " |")

    def both(mean: float | None, worst: float | None, digits: int = 3) -> str:
        return f"{_num(mean, digits)} ({_num(worst, digits)})"

    tt, hpa = summary["target-tracking"], summary["hpa"]
    later = summary["violation_after_week_mean"]
    after = "" if later is None else f"; from day 8: {later:.3f}"
    lines.append(f"| **mean (worst)** | | | {both(summary['cost_mean'], summary['cost_worst'])} | "
                 f"{both(summary['violation_mean'], summary['violation_worst'])}{after} | "
                 f"{both(summary['launch_ratio_mean'], summary['launch_ratio_worst'], 2)}x | {_num(tt['cost_mean'])} | "
                 f"{both(tt['ratio_mean'], tt['ratio_worst'])} | {_num(hpa['cost_mean'])} | "
                 f"{both(hpa['ratio_mean'], hpa['ratio_worst'])} |")
    notes = [f"{BASELINE_LABEL[p]}: {summary[p]['not_reached']} not reached" for p in BASELINES if summary[p]["not_reached"]]
    notes += [f"{BASELINE_LABEL[p]}: {summary[p]['beyond']} beyond its sweep (*)" for p in BASELINES if summary[p]["beyond"]]
    if notes:
        lines += ["", "; ".join(notes)]
    pooled = [r for r in rs if r.pool]
    if pooled:
        lines += ["", f"{family} with a warm pool (eiplane; resumed ready in W = {evaluation.config.resume_minutes} min; "
                      "pool size = (largest flash crowd - 1) x base daily peak instances x 1.25; legacy/flash_crowd: "
                      f"{WARM_POOL_SIZE}, the development benchmark's):", "",
                  "| trace | pool size | " + " | ".join(f"{fill}: cost / oracle | {fill}: violation min % | "
                                                         f"{fill}: launches+resumes/day (x oracle's launches)"
                                                         for fill in POOL_FILLS) + " |",
                  "|---|---:|" + "---:|" * 3 * len(POOL_FILLS)]
        for r in pooled:
            cells = []
            for fill in POOL_FILLS:
                p = r.pool.get(fill)
                cells += ["-"] * 3 if p is None else [
                    f"{p.cost_vs_oracle:.3f}", f"{p.violation_minutes_pct:.3f} ({p.violation_minutes})",
                    f"{p.launches_per_day + p.resumes_per_day:.1f} ({_num(r.launch_ratio(p, with_resumes=True), 2)}x)"]
            lines.append(f"| {r.id} | {r.pool_size} | " + " | ".join(cells) + " |")
        cells = []
        for fill in POOL_FILLS:
            ps = summary.get(f"pool_{fill}")
            cells += ["-"] * 3 if ps is None else [both(ps["cost_mean"], ps["cost_worst"]),
                                                   both(ps["violation_mean"], ps["violation_worst"]),
                                                   f"(worst {_num(ps['launch_ratio_worst'], 2)}x)"]
        lines.append("| **mean (worst)** | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(evaluation: Evaluation) -> str:
    cfg = evaluation.config
    checks_ok = sum(bool(r.oracle_check["ok"]) for r in evaluation.results)
    cut = f", cut down: {evaluation.cut}" if evaluation.cut else ""
    if evaluation.settings_changed:
        cut += ", eiplane's settings changed: " + ", ".join(f"{k}={v}" for k, v in evaluation.settings_changed.items())
    lines = [f"Capacity evaluation on the {evaluation.which} set ({len(evaluation.results)} traces{cut}): L = "
             f"{cfg.launch_minutes} min, N = {cfg.interval_minutes} min, drain {cfg.drain_minutes} min, "
             f"{cfg.capacity_rps:.0f} req/s per instance, alarm fast path, per-second billing (60 s minimum); "
             f"{evaluation.seconds:.0f} s",
             f"Oracle check (its plan replayed through the simulator costs the same, no violation): {checks_ok} of "
             f"{len(evaluation.results)} traces",
             "Tuned TT / HPA: the baseline's cost / oracle at eiplane's violation rate, interpolated on its frontier over "
             "targets 0.30-0.95 (extended and refined); 'not reached': no target is as safe as eiplane; '*': every target "
             "violates less than eiplane, the cheapest shown (eiplane / baseline is then a lower bound)."]
    for family in evaluation.families():
        lines += ["", render_family(evaluation, family)]
    lines += ["", "| target | reached | met |", "|---|---:|:---:|"]
    for c in check_targets(evaluation):
        met = "-" if c["met"] is None else "yes" if c["met"] else "NOT met"
        lines.append(f"| {c['target']} | {_num(c['value'], 4)} | {met} |")
    return "\n".join(lines)


# --- the plot -----------------------------------------------------------------------------------


def plot_families(evaluation: Evaluation, path: str | Path) -> Path:
    """One panel per family: cost / oracle against violation minutes %, one colour per trace: its target tracking sweep
    (solid), its HPA-like sweep (dashed), eiplane on it (a star). Needs matplotlib."""
    plt = pyplot("plot_families")
    from matplotlib.lines import Line2D
    families = evaluation.families()
    columns = min(3, len(families)) or 1
    rows = math.ceil(len(families) / columns) or 1
    fig, axes = plt.subplots(rows, columns, figsize=(5.6 * columns, 4.6 * rows), squeeze=False)
    palette = plt.get_cmap("tab10")
    for index, family in enumerate(families):
        ax = axes[index // columns][index % columns]
        rs = evaluation.of(family)
        handles = []
        for number, r in enumerate(rs):
            colour = palette(number % 10)
            for policy, style in (("target-tracking", "-"), ("hpa", "--")):
                pts = sorted(r.sweeps[policy], key=lambda p: p.value)
                ax.plot([p.violation_minutes_pct for p in pts], [p.cost_vs_oracle for p in pts], style, color=colour,
                        linewidth=0.9, alpha=0.75)
            ax.scatter([r.eiplane.violation_minutes_pct], [r.eiplane.cost_vs_oracle], color=colour, marker="*", s=130,
                       edgecolor="black", linewidth=0.6, zorder=4)
            handles.append(Line2D([], [], color=colour, marker="*", markersize=9, markeredgecolor="black",
                                  linewidth=0.9, label=r.id.split("/")[-1]))
        handles += [Line2D([], [], color="grey", linestyle="-", label="target tracking, target swept"),
                    Line2D([], [], color="grey", linestyle="--", label="HPA-like, target swept"),
                    Line2D([], [], color="grey", marker="*", linestyle="", markersize=9, markeredgecolor="black",
                           label="eiplane (defaults)")]
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_ylim(0.95, max(1.8, 1.25 * max(r.eiplane.cost_vs_oracle for r in rs)))  # the 0.30 targets cost 3x and more
        ax.set_title(f"{family} ({len(rs)} traces, {evaluation.which} set)")
        ax.set_xlabel("violation minutes % (demand > ready capacity)")
        ax.set_ylabel("cost / oracle")
        ax.grid(True, alpha=0.3)
        ax.legend(handles=handles, fontsize=6.5, ncol=2, loc="upper right")
    for index in range(len(families), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    fig.tight_layout()
    return save_figure(plt, fig, path, dpi=110)


# --- the command ----------------------------------------------------------------------------------


def bench_families(out_dir: str | Path = "out", which: str = "test", *, L: int = 6, N: int = 5, workers: int = 1,
                   families: Sequence[str] | None = None, limit: int | None = None, max_minutes: int | None = None,
                   warm_pool: bool = True, plot: bool = True, settings: PolicySettings | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What `eiplane bench capacity` does: the evaluation, its tables (markdown), all figures (JSON) and the plot."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluation = run_evaluation(which, L=L, N=N, families=families, limit=limit, max_minutes=max_minutes,
                                warm_pool=warm_pool, workers=workers, settings=settings, progress=progress)
    table = render(evaluation)
    (out / "capacity-evaluation.md").write_text(table + "\n")
    (out / "capacity-evaluation.json").write_text(json.dumps(evaluation.as_dict(), indent=1) + "\n")
    written: dict[str, Any] = {"table": table, "evaluation": evaluation,
                               "files": [str(out / "capacity-evaluation.md"), str(out / "capacity-evaluation.json")]}
    if plot:
        try:
            written["files"].append(str(plot_families(evaluation, out / "capacity-evaluation.png")))
        except RuntimeError as exc:
            written["plot_skipped"] = str(exc)
    return written
