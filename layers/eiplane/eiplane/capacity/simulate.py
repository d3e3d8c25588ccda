"""Replay a per-minute demand trace through a scaling policy, and score it against the exact oracle.

The model (every figure in minutes unless named otherwise):

- Minute t is [60t, 60t + 60). Demand d[t] (requests/s) is served by the instances ready at
  the start of the minute; a minute with d[t] > ready x capacity is a violation minute, and
  (d[t] - ready x capacity) x 60 requests go unserved.
- At the end of minute t its datapoint exists and a controller may act. The eiplane policy is
  called on its schedule (every N minutes) and, the fast path, whenever the alarm sees demand
  above `alarm_threshold` x ready capacity (at most once a minute: one datapoint a minute).
  The baselines evaluate every minute, as their alarms and sync loops do.
- A launch made at the end of minute t is billed from then and serves from minute t + 1 + L.
- Scale-in drains a ready instance for D minutes (billed, not serving) and then terminates it
  (or stops it into the warm pool, below); a not-yet-ready slot is terminated at once.
- Billing is per second with a 60-second minimum per running period (an instance's lifetime
  unless it was resumed from the warm pool); launching and draining time are billed. Instances
  still running at the end of the trace are billed to its end. The initial fleet
  (ceil(d[0] / (capacity x `initial_utilisation`)) within min_size..max_size, the same for
  every controller) is billed from 0 without a launch.
- The oracle (perfect foresight, exact optimum): max(min_size, ceil(d[t] / capacity)) instances
  ready in every minute (the fleet's minimum binds the oracle too). Its first fleet is every
  instance needed within the first L minutes (no launch can be ready sooner), billed from 0
  (`initial_size` replays it); taken as layers, instance k
  is kept through an idle gap of at most L + D minutes and relaunched (drain D + launch L,
  billed) after a longer one. Keeping costs the gap, relaunching costs L + D, and the cost
  separates by layer, so this is optimal. It needs no warm pool.

The warm pool (EC2-style; off unless `warm_pool_size` > 0; the control plane implements the same):

- It holds at most `warm_pool_size` stopped, already-validated instances. It is filled only by
  scale-in: a ready instance that has drained for D minutes is stopped into the pool while the
  pool holds fewer than `warm_pool_size`, else terminated (draining instances reaching the end
  of their drain in the same minute are taken oldest id first). A not-yet-ready slot that is
  cancelled (a launch or a resume) is terminated, never pooled. With `warm_pool_prefill`, the
  pool also starts full: `warm_pool_size` instances launched, validated and stopped before the
  trace, each billed L minutes running (the 60-second minimum applies) and its pool time.
- Scale-out of k: min(k, pool) pooled instances are resumed first (the longest stopped first),
  the rest launched. A resume at the end of minute t serves from minute t + 1 + W (W =
  `resume_minutes`: start, agent re-registration, re-validation) and is, to the controller, a
  not-yet-ready slot W minutes from ready. It opens a new running period: billed from the
  resume, per second, with the 60-second minimum again.
- A stopped instance is billed for its root volume only: per second, no minimum, at
  `warm_cost_fraction` of an instance-hour (100 GiB gp3 at $0.08/GB-month = $0.011/h against
  $1.006/h for a g5.xlarge: 0.011), counted in the same instance-hours as running time. The
  root volume of running instances is not charged anywhere (the oracle's neither).
- Resumes are counted apart from launches (`resumes`); the initial fill counts as neither.
"""

from __future__ import annotations

import csv
import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from eiplane.capacity.policy import ForecastCache, Observation, PolicySettings, Slot, SlotState, plan

EPS = 1e-9


@dataclass(frozen=True)
class SimConfig:
    launch_minutes: int = 6  # L
    interval_minutes: int = 5  # N
    drain_minutes: int = 2  # D
    capacity_rps: float = 100.0  # per instance
    min_size: int = 1
    max_size: int = 1000
    alarm_threshold: float | None = 1.0  # fraction of ready capacity; None: no fast path
    min_billed_seconds: int = 60
    initial_utilisation: float = 0.7
    start_minute: int = 0  # epoch minute of the trace's first minute
    warm_pool_size: int = 0  # the most stopped, validated instances kept; 0: no pool
    resume_minutes: int = 2  # W: a resume at the end of minute t serves from minute t + 1 + W
    warm_cost_fraction: float = 0.011  # a stopped instance-hour (its EBS root volume) over a running one
    warm_pool_prefill: bool = False  # the pool starts full: launched, validated and stopped before the trace
    initial_size: int | None = None  # the first fleet; None: from initial_utilisation (the oracle's replay sets it)

    def __post_init__(self) -> None:
        if self.warm_pool_size < 0 or self.resume_minutes < 0 or self.warm_cost_fraction < 0:
            raise ValueError("warm_pool_size, resume_minutes and warm_cost_fraction must be >= 0")

    def required(self, demand: float) -> int:
        """Instances ready in a minute of this demand, at the least: what it needs, and never below min_size."""
        return max(self.min_size, math.ceil(demand / self.capacity_rps - EPS))


@dataclass
class SimSlot:
    id: str
    launched_s: int  # start of the current running period (a launch or a resume)
    ready_s: int
    drain_s: int | None = None
    end_s: int | None = None  # end of the current running period (stopped into the pool or terminated)
    initial: bool = False
    closed_billed_s: int = 0  # billed seconds of earlier running periods (an instance that was in the pool)
    pooled_s: int = 0  # seconds stopped in the warm pool, earlier stays
    stopped_s: int | None = None  # in the pool since, or None

    def running_billed_s(self, end_s: int, minimum: int) -> int:
        """Billed running seconds up to end_s: the earlier periods and, unless stopped, the current one."""
        if self.stopped_s is not None:
            return self.closed_billed_s
        stop = end_s if self.end_s is None else min(self.end_s, end_s)
        return self.closed_billed_s + max(minimum, stop - self.launched_s)

    def pooled_until_s(self, end_s: int) -> int:
        return self.pooled_s + (end_s - self.stopped_s if self.stopped_s is not None else 0)


@dataclass(frozen=True)
class Action:
    launch: int = 0
    terminate: tuple[str, ...] = ()
    note: str = ""


class FleetView:
    """What a controller sees at the end of minute `minute`: the past only."""

    def __init__(self, demand: Sequence[float], minute: int, ready: list[SimSlot], launching: list[SimSlot], config: SimConfig,
                 warm_pool: int = 0):
        self._demand = demand
        self.minute = minute
        self.now_s = 60 * (minute + 1)
        self.ready = ready
        self.launching = launching  # launched or resumed, not yet ready
        self.config = config
        self.warm_pool = warm_pool  # stopped instances that a scale-out would resume first

    @property
    def latest(self) -> float:
        return self._demand[self.minute]

    def past(self, minutes: int) -> list[float]:
        """The last `minutes` datapoints, ending with this minute's: a new list."""
        window = self._demand[max(0, self.minute + 1 - minutes):self.minute + 1]
        return window if isinstance(window, list) else list(window)  # a list's slice is a copy already


class Controller(Protocol):
    name: str

    def ticks(self, minute: int, alarm: bool) -> str | None:
        """Why it acts at the end of this minute ("scheduled", "alarm", "minute"), or None."""

    def decide(self, view: FleetView) -> Action: ...


@dataclass(frozen=True)
class OracleResult:
    instance_hours: float
    launches: int
    required: list[int]
    runs: list[tuple[int, int, bool]]  # (first ready minute, last ready minute, initial) per lifetime


def oracle(demand: Sequence[float], config: SimConfig) -> OracleResult:
    """The exact offline optimum (see the module doc)."""
    required = [config.required(d) for d in demand]
    total = len(required)
    gap_kept = config.launch_minutes + config.drain_minutes
    last: list[int] = []  # per layer (index k-1): last minute it was needed
    start: list[int] = []
    initial: list[bool] = []
    runs: list[tuple[int, int, bool]] = []
    for t, need in enumerate(required):
        for k in range(need):
            if k >= len(last):
                last.append(t)
                start.append(t)
                # needed within the first L minutes: no launch made at the end of minute 0 or later is ready in
                # time, so it is part of the first fleet (billed from 0), as a replay must have it
                initial.append(t <= config.launch_minutes)
                continue
            if t - last[k] - 1 > gap_kept:
                runs.append((start[k], last[k], initial[k]))
                start[k], initial[k] = t, False
            last[k] = t
    runs.extend((start[k], last[k], initial[k]) for k in range(len(last)))
    seconds = 0
    for first, final, was_initial in runs:
        begin = 0 if was_initial else 60 * (first - config.launch_minutes)
        end = 60 * min(total, final + 1 + config.drain_minutes)
        seconds += max(config.min_billed_seconds, end - begin)
    launches = sum(1 for _, _, was_initial in runs if not was_initial)
    return OracleResult(instance_hours=seconds / 3600, launches=launches, required=required, runs=runs)


@dataclass
class Summary:
    policy: str
    trace: str
    minutes: int
    instance_hours: float
    oracle_instance_hours: float
    cost_vs_oracle: float
    violation_minutes: int
    violation_minutes_pct: float
    unserved_pct: float
    launches: int
    launches_per_day: float
    oracle_launches: int
    ticks: int
    alarm_ticks: int
    warm_pool_size: int = 0
    warm_pool_prefill: bool = False
    resumes: int = 0  # warm instances started again (not counted in launches)
    resumes_per_day: float = 0.0
    warm_pool_hours: float = 0.0  # stopped instance-hours in the pool
    warm_pool_instance_hours: float = 0.0  # what they cost, in instance-hours: included in instance_hours
    prefill_instance_hours: float = 0.0  # the initial fill's running time before the trace: included in instance_hours

    @property
    def label(self) -> str:
        """The policy, and the warm pool if it had one."""
        if not self.warm_pool_size:
            return self.policy
        return f"{self.policy} + warm pool{' (prefilled)' if self.warm_pool_prefill else ''}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TimelineRow:
    minute: int
    demand_rps: float
    ready: int
    launching: int
    draining: int
    violation: bool
    unserved_rps: float
    tick: str
    warm_pool: int = 0


@dataclass
class SimResult:
    summary: Summary
    timeline: list[TimelineRow] = field(repr=False)


def simulate(demand: Sequence[float], controller: Controller, config: SimConfig | None = None, *, trace: str = "trace",
             oracle_result: OracleResult | None = None, keep_timeline: bool = True) -> SimResult:
    cfg = config or SimConfig()
    total = len(demand)
    if total == 0:
        raise ValueError("the trace is empty")
    best = oracle_result or oracle(demand, cfg)
    capacity = cfg.capacity_rps
    counter = 0

    def new_slot(now_s: int, initial: bool = False) -> SimSlot:
        nonlocal counter
        counter += 1
        ready_s = now_s if initial else now_s + 60 * cfg.launch_minutes
        return SimSlot(id=f"i-{counter:06d}", launched_s=now_s, ready_s=ready_s, initial=initial)

    size0 = cfg.initial_size if cfg.initial_size is not None else min(
        cfg.max_size, max(cfg.min_size, math.ceil(demand[0] / (capacity * cfg.initial_utilisation) - EPS)))
    ready = [new_slot(0, initial=True) for _ in range(size0)]
    launching: list[SimSlot] = []
    draining: list[SimSlot] = []
    finished: list[SimSlot] = []
    pool: deque[SimSlot] = deque()  # stopped, longest stopped first
    prefilled: list[SimSlot] = []
    if cfg.warm_pool_prefill:
        # launched L minutes before the trace, validated, stopped at 0
        for _ in range(cfg.warm_pool_size):
            slot = new_slot(-60 * cfg.launch_minutes)
            slot.end_s, slot.stopped_s = 0, 0
            slot.closed_billed_s = max(cfg.min_billed_seconds, 60 * cfg.launch_minutes)
            prefilled.append(slot)
        pool.extend(prefilled)
    timeline: list[TimelineRow] = []
    violations, unserved, requested = 0, 0.0, 0.0
    launches, resumes, ticks, alarm_ticks = 0, 0, 0, 0

    for t in range(total):
        start_s = 60 * t
        if launching and any(s.ready_s <= start_s for s in launching):
            ready.extend(s for s in launching if s.ready_s <= start_s)
            launching = [s for s in launching if s.ready_s > start_s]
        if draining and any(s.end_s is not None and s.end_s <= start_s for s in draining):
            for s in sorted((s for s in draining if s.end_s is not None and s.end_s <= start_s), key=lambda s: s.id):
                if len(pool) < cfg.warm_pool_size and s.end_s is not None:
                    # stopped into the pool: this running period is over
                    s.closed_billed_s += max(cfg.min_billed_seconds, s.end_s - s.launched_s)
                    s.stopped_s = s.end_s
                    pool.append(s)
                else:
                    finished.append(s)
            draining = [s for s in draining if s.end_s is None or s.end_s > start_s]
        d = demand[t]
        ready_capacity = len(ready) * capacity
        short = max(0.0, d - ready_capacity)
        violated = d > ready_capacity + EPS
        violations += violated
        unserved += short * 60
        requested += d * 60

        alarm = cfg.alarm_threshold is not None and d > cfg.alarm_threshold * ready_capacity + EPS
        kind = controller.ticks(t, alarm)
        if keep_timeline:
            timeline.append(TimelineRow(t, d, len(ready), len(launching), len(draining), violated, short, kind or "",
                                        len(pool)))
        if kind is None:
            continue
        ticks += 1
        alarm_ticks += kind == "alarm"
        action = controller.decide(FleetView(demand, t, ready, launching, cfg, len(pool)))
        now_s = 60 * (t + 1)
        if action.terminate:
            gone = set(action.terminate)
            for s in launching:
                if s.id in gone:
                    s.end_s = now_s
                    finished.append(s)
            for s in ready:
                if s.id in gone:
                    s.drain_s, s.end_s = now_s, now_s + 60 * cfg.drain_minutes
                    draining.append(s)
            launching = [s for s in launching if s.id not in gone]
            ready = [s for s in ready if s.id not in gone]
        for _ in range(action.launch):
            if pool:
                # a resume: a new running period, ready W minutes after it
                slot = pool.popleft()
                assert slot.stopped_s is not None
                slot.pooled_s += now_s - slot.stopped_s
                slot.stopped_s, slot.drain_s, slot.end_s = None, None, None
                slot.launched_s, slot.ready_s = now_s, now_s + 60 * cfg.resume_minutes
                launching.append(slot)
                resumes += 1
            else:
                launching.append(new_slot(now_s))
                launches += 1

    end_s = 60 * total
    running_s, pooled_s = 0, 0
    for s in finished + draining + ready + launching + list(pool):
        running_s += s.running_billed_s(end_s, cfg.min_billed_seconds)
        pooled_s += s.pooled_until_s(end_s)
    prefill_s = len(prefilled) * max(cfg.min_billed_seconds, 60 * cfg.launch_minutes)  # in running_s already
    pool_hours = pooled_s / 3600
    hours = running_s / 3600 + cfg.warm_cost_fraction * pool_hours
    days = total / 1440
    summary = Summary(
        policy=controller.name, trace=trace, minutes=total, instance_hours=hours, oracle_instance_hours=best.instance_hours,
        cost_vs_oracle=hours / best.instance_hours if best.instance_hours else math.inf, violation_minutes=violations,
        violation_minutes_pct=100 * violations / total, unserved_pct=100 * unserved / requested if requested else 0.0,
        launches=launches, launches_per_day=launches / days, oracle_launches=best.launches, ticks=ticks, alarm_ticks=alarm_ticks,
        warm_pool_size=cfg.warm_pool_size, warm_pool_prefill=cfg.warm_pool_prefill, resumes=resumes,
        resumes_per_day=resumes / days, warm_pool_hours=pool_hours, warm_pool_instance_hours=cfg.warm_cost_fraction * pool_hours,
        prefill_instance_hours=prefill_s / 3600)
    return SimResult(summary=summary, timeline=timeline)


# --- controllers ---------------------------------------------------------------------------


def _clamp(value: int, config: SimConfig) -> int:
    return min(config.max_size, max(config.min_size, value))


def _drop(view: FleetView, count: int) -> tuple[str, ...]:
    """Not-yet-ready slots first (the latest launched first), then ready ones (the newest first)."""
    order = sorted(view.launching, key=lambda s: -s.ready_s) + sorted(view.ready, key=lambda s: -s.launched_s)
    return tuple(s.id for s in order[:count])


class EiplanePolicy:
    """The real `plan()`, on the schedule plus the alarm fast path, carrying its cool-down state as the Lambda does."""

    def __init__(self, settings: PolicySettings | None = None, name: str = "eiplane", alarm: bool = True, cache: bool = True):
        self.settings = settings or PolicySettings()
        self.name = name
        self.alarm = alarm
        # a replayed trace never changes a minute, so what plan() worked out about past minutes may be kept from tick
        # to tick (the same decisions; without it, every tick recomputes them as the Lambda does)
        self.use_cache = cache
        self.cache = ForecastCache() if cache else None
        self.last_out: int | None = None
        self.last_in: int | None = None
        s = self.settings
        self.history_minutes = (max(s.season_weeks * 10080, s.season_days * 1440) + s.level_minutes + s.backtest_minutes
                                + s.horizon + s.smoothing_minutes + 2)
        self.decisions: list[tuple[int, str, str]] = []  # (minute, code, reason) of every action taken
        self._ready_slots: dict[str, Slot] = {}  # by id: the ready slots at the last tick
        # the history the Lambda would read, the last `history_minutes` minutes: one list, extended at each tick by the
        # minutes since the last and trimmed (a copy of 20,000 minutes at every tick was a tenth of the time). It is
        # safe to reuse: plan() keeps nothing of an observation.
        self._history: list[float | None] = []
        self._history_minute = -1  # the minute of _history[-1]

    def ticks(self, minute: int, alarm: bool) -> str | None:
        if (minute + 1) % self.settings.interval_minutes == 0:
            return "scheduled"
        return "alarm" if alarm and self.alarm else None

    def decide(self, view: FleetView) -> Action:
        cfg = view.config
        now = cfg.start_minute + view.minute
        # a ready slot looks the same at every tick: its Slot is reused (building each one anew took a tenth of the time)
        known = self._ready_slots
        self._ready_slots = {s.id: known.get(s.id) or Slot.model_construct(
            id=s.id, state=SlotState.READY, minutes_until_ready=0.0, throughput_rps=None) for s in view.ready}
        slots = list(self._ready_slots.values())
        slots += [Slot.model_construct(id=s.id, state=SlotState.LAUNCHING, minutes_until_ready=(s.ready_s - view.now_s) / 60,
                                       throughput_rps=None) for s in view.launching]
        observation = Observation.model_construct(
            history=self._history_to(view), history_end_minute=now, now_minute=None, slots=slots,
            capacity_per_instance_rps=cfg.capacity_rps, min_size=cfg.min_size, max_size=cfg.max_size,
            last_scale_out_minute=self.last_out, last_scale_in_minute=self.last_in)
        decision = plan(observation, self.settings, self.cache)
        if decision.launch:
            self.last_out = now
        if decision.terminate:
            self.last_in = now
        if decision.launch or decision.terminate:
            self.decisions.append((view.minute, decision.code.value, decision.reason))
        return Action(launch=decision.launch, terminate=tuple(decision.terminate), note=decision.code.value)

    def _history_to(self, view: FleetView) -> list[float | None]:
        """The last `history_minutes` minutes up to this tick's."""
        since = view.minute - self._history_minute
        if since <= 0:  # a tick at or before the last one: a new replay, maybe of another trace
            self._history = []
            self.cache = ForecastCache() if self.use_cache else None
        if not self._history or since > self.history_minutes:
            self._history = cast("list[float | None]", view.past(self.history_minutes))
        else:
            self._history += view.past(since)
            del self._history[:max(0, len(self._history) - self.history_minutes)]
        self._history_minute = view.minute
        return self._history


class TargetTracking:
    """EC2 Auto Scaling target tracking: utilisation of the in-service instances against a target.

    The alarms it creates: high when the metric is above the target for `high_minutes`
    consecutive 1-minute datapoints, low when it is below `low_ratio` x target (90%, as AWS sets
    the scale-in alarm) for `low_minutes`. While high: desired = ceil(ready x metric / target)
    and it launches what exceeds the ready plus warming capacity (warm-up aware: launching
    capacity counts as coming). While low, and only when no instance is warming up: scale in
    to the same formula.
    """

    def __init__(self, target: float = 0.7, high_minutes: int = 3, low_minutes: int = 15, low_ratio: float = 0.9,
                 name: str | None = None):
        self.target, self.high_minutes, self.low_minutes, self.low_ratio = target, high_minutes, low_minutes, low_ratio
        self.name = name or f"target-tracking-{round(target * 100)}"
        self.high = 0
        self.low = 0

    def ticks(self, minute: int, alarm: bool) -> str | None:
        return "minute"

    def decide(self, view: FleetView) -> Action:
        cfg = view.config
        ready, coming = len(view.ready), len(view.launching)
        demand = view.latest
        metric = demand / (ready * cfg.capacity_rps) if ready else (math.inf if demand > 0 else 0.0)
        self.high = self.high + 1 if metric > self.target else 0
        self.low = self.low + 1 if metric < self.target * self.low_ratio else 0
        desired = _clamp(math.ceil(demand / (cfg.capacity_rps * self.target) - EPS), cfg)
        if self.high >= self.high_minutes and desired > ready + coming:
            return Action(launch=desired - ready - coming, note="high alarm")
        if self.low >= self.low_minutes and coming == 0 and desired < ready:
            return Action(terminate=_drop(view, ready - desired), note="low alarm")
        return Action()


class HpaLike:
    """Kubernetes HPA: desired = ceil(current x utilisation / target), within a 10% tolerance no change.

    As the HPA controller does: utilisation is measured over ready pods; when it would scale up
    while pods are not yet ready, those count as 0% busy (so launching capacity is not launched
    again); scale-down takes the highest recommendation of the last `window_minutes`
    (stabilisation); scale-up is immediate. Not-ready pods are removed first.
    """

    def __init__(self, target: float = 0.7, tolerance: float = 0.1, window_minutes: int = 5, name: str | None = None):
        self.target, self.tolerance, self.window = target, tolerance, window_minutes
        self.name = name or f"hpa-{round(target * 100)}"
        self.recommendations: deque[tuple[int, int]] = deque()

    def ticks(self, minute: int, alarm: bool) -> str | None:
        return "minute"

    def recommend(self, demand: float, ready: int, coming: int, config: SimConfig) -> int:
        current = ready + coming
        if ready == 0:
            return current if coming else math.ceil(demand / (config.capacity_rps * self.target) - EPS)
        ratio = demand / (ready * config.capacity_rps) / self.target
        if ratio > 1 and coming:
            ratio = demand / (current * config.capacity_rps) / self.target
            if ratio <= 1 + self.tolerance:
                return current
            return math.ceil(ratio * current - EPS)
        if abs(ratio - 1) <= self.tolerance:
            return current
        return math.ceil(ratio * ready - EPS)

    def decide(self, view: FleetView) -> Action:
        cfg = view.config
        ready, coming = len(view.ready), len(view.launching)
        current = ready + coming
        recommendation = _clamp(self.recommend(view.latest, ready, coming, cfg), cfg)
        self.recommendations.append((view.minute, recommendation))
        while self.recommendations and self.recommendations[0][0] <= view.minute - self.window:
            self.recommendations.popleft()
        desired = recommendation if recommendation >= current else min(current, max(r for _, r in self.recommendations))
        if desired > current:
            return Action(launch=desired - current, note="scale up")
        if desired < current:
            return Action(terminate=_drop(view, current - desired), note="scale down")
        return Action()


class Schedule:
    """Replays a fixed plan of lifetimes (first ready minute, last ready minute): the oracle through the simulator."""

    def __init__(self, runs: Iterable[tuple[int, int, bool]], config: SimConfig, name: str = "schedule"):
        self.name = name
        self.launch_at: dict[int, int] = {}
        self.stop_at: dict[int, int] = {}
        for first, last, initial in runs:
            if not initial:
                self.launch_at[first - config.launch_minutes - 1] = self.launch_at.get(first - config.launch_minutes - 1, 0) + 1
            self.stop_at[last] = self.stop_at.get(last, 0) + 1

    def ticks(self, minute: int, alarm: bool) -> str | None:
        return "minute"

    def decide(self, view: FleetView) -> Action:
        stop = self.stop_at.get(view.minute, 0)
        victims = tuple(s.id for s in sorted(view.ready, key=lambda s: s.id)[:stop])
        return Action(launch=self.launch_at.get(view.minute, 0), terminate=victims)


def default_controllers(settings: PolicySettings | None = None) -> list[Callable[[], Controller]]:
    """The eiplane policy and the two baselines, as fresh-controller factories (controllers keep state)."""
    return [lambda: EiplanePolicy(settings), lambda: TargetTracking(0.7), lambda: HpaLike(0.7)]


def compare(demand: Sequence[float], config: SimConfig | None = None, *, trace: str = "trace",
            factories: Sequence[Callable[[], Controller]] | None = None, keep_timeline: bool = False) -> list[SimResult]:
    """Every controller on the same trace against the same oracle."""
    cfg = config or SimConfig()
    if factories is None:
        factories = default_controllers(PolicySettings(launch_minutes=cfg.launch_minutes, interval_minutes=cfg.interval_minutes,
                                                       drain_minutes=cfg.drain_minutes))
    best = oracle(demand, cfg)
    return [simulate(demand, make(), cfg, trace=trace, oracle_result=best, keep_timeline=keep_timeline) for make in factories]


# --- files ---------------------------------------------------------------------------------


def simulate_file(trace_path: str | Path, out_dir: str | Path, config: SimConfig | None = None,
                  settings: PolicySettings | None = None, column: int | str | None = None) -> list[Summary]:
    """Every controller on the trace in a CSV file (`read_trace`), as `simulate_trace` writes it."""
    return simulate_trace(read_trace(trace_path, column), Path(trace_path).stem, out_dir, config, settings)


def simulate_trace(demand: Sequence[float], trace: str, out_dir: str | Path, config: SimConfig | None = None,
                   settings: PolicySettings | None = None) -> list[Summary]:
    """What `eiplane simulate --trace FILE.csv [--column C]` does once the trace is read: every controller on it; one
    timeline CSV per policy (timeline-<policy>.csv) and summary.json in out_dir. Returns the summaries."""
    cfg = config or SimConfig()
    chosen = settings or PolicySettings(launch_minutes=cfg.launch_minutes, interval_minutes=cfg.interval_minutes,
                                        drain_minutes=cfg.drain_minutes)
    results = compare(demand, cfg, trace=trace, factories=default_controllers(chosen), keep_timeline=True)
    out = Path(out_dir)
    for result in results:
        write_timeline(result.timeline, out / f"timeline-{result.summary.policy}.csv")
    summaries = [result.summary for result in results]
    (out / "summary.json").write_text(json.dumps({"config": asdict(cfg), "summaries": [s.as_dict() for s in summaries]},
                                                 indent=2) + "\n")
    return summaries



class TraceError(ValueError):
    """A demand trace that cannot be read; the message names the file, and the line and cell where there is one."""


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _rows(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of every row of a CSV file but blank ones."""
    name = str(path)
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark
        reader = csv.reader(handle)
        try:
            for row in reader:
                cells = [cell.strip() for cell in row]
                if any(cells):
                    yield reader.line_num, cells
        except UnicodeDecodeError as exc:
            raise TraceError(f"{name}: not a text file (not UTF-8 at byte {exc.start})") from None
        except csv.Error as exc:
            raise TraceError(f"{name}:{reader.line_num}: not CSV: {exc}") from None


def _data_rows(path: str | Path, rows: list[tuple[int, list[str]]], header: bool) -> Iterator[tuple[int, list[str]]]:
    """The rows after the header (if any), each of as many cells as the first row."""
    width = len(rows[0][1])
    for line, cells in rows[1:] if header else rows:
        if len(cells) != width:
            raise TraceError(f"{path}:{line}: a ragged row: {len(cells)} cell(s) where the {'header' if header else 'first row'} "
                             f"has {width}")
        yield line, cells


def _demand_column(path: str | Path, rows: list[tuple[int, list[str]]], header: bool, column: int | str | None) -> int:
    """The index of the demand column: `column` (a header name, or a 0-based index), else the only column, else the
    one column whose every value is a number."""
    first = rows[0][1]
    width = len(first)
    names = [f"{index} {cell!r}" for index, cell in enumerate(first)] if header else [str(index) for index in range(width)]
    listing = f"{', '.join(names)}{'' if header else ' (no header row)'}"
    choose = "choose the demand with --column NAME or a 0-based INDEX"
    if column is not None:
        if header and isinstance(column, str) and column.strip() in first:
            if first.count(column.strip()) > 1:
                raise TraceError(f"{path}: the header names {column!r} {first.count(column.strip())} times: choose it by its "
                                 "0-based index with --column")
            return first.index(column.strip())
        index = int(column) if isinstance(column, int) or column.strip().isdigit() else -1
        if not 0 <= index < width:
            raise TraceError(f"{path}: no column {column!r}; its columns: {listing}: {choose}")
        return index
    if width == 1:
        return 0
    numeric = [True] * width
    for _, cells in _data_rows(path, rows, header):
        for index, cell in enumerate(cells):
            if numeric[index] and not _is_number(cell):
                numeric[index] = False
    found = [name for name, ok in zip(names, numeric, strict=True) if ok]
    if len(found) == 1:
        return numeric.index(True)
    which = f"{len(found)} of them all numbers ({', '.join(found)})" if found else "none of them all numbers"
    raise TraceError(f"{path}: {width} columns: {listing}; {which}: {choose}")


def read_trace(path: str | Path, column: int | str | None = None) -> list[float]:
    """The demand (requests/s) of a CSV file, one row per minute.

    A first row none of whose cells is a number is a header, of any names; blank lines are skipped. The demand is
    `column` (a header name, or a 0-based index), else the file's only column, else the one column whose every value
    is a number (with a timestamp beside it, say). Anything else raises a TraceError that says where and what: an
    empty file, a cell that is not a number, a negative, NaN or infinite demand, a row with a different number of
    cells, an unknown or ambiguous column."""
    rows = list(_rows(path))  # read once: the column is chosen from every row, then each row is read for it
    if not rows:
        raise TraceError(f"{path}: no demand values (the file is empty)")
    first = rows[0][1]
    header = not any(_is_number(cell) for cell in first)
    index = _demand_column(path, rows, header, column)
    named = f" (column {first[index]!r})" if header and len(first) > 1 else ""
    values: list[float] = []
    for line, cells in _data_rows(path, rows, header):
        cell = cells[index]
        try:
            value = float(cell)
        except ValueError:
            raise TraceError(f"{path}:{line}: not a number{named}: {cell!r}") from None
        if value < 0 or not math.isfinite(value):
            raise TraceError(f"{path}:{line}: demand must be a finite number >= 0, got {cell!r}{named}")
        values.append(value)
    if not values:
        raise TraceError(f"{path}: no demand values (only a header row)")
    return values


def write_trace(values: Iterable[float], path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        handle.write("demand_rps\n")
        handle.writelines(f"{value:.3f}\n" for value in values)
    return target


def write_timeline(rows: Iterable[TimelineRow], path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["minute", "demand_rps", "ready", "launching", "draining", "violation", "unserved_rps", "tick",
                         "warm_pool"])
        for row in rows:
            writer.writerow([row.minute, f"{row.demand_rps:.3f}", row.ready, row.launching, row.draining, int(row.violation),
                             f"{row.unserved_rps:.3f}", row.tick, row.warm_pool])
    return target
