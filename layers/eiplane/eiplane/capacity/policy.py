"""The scaling policy: how many instances a fleet should have, and why. Pure and deterministic.

Runs in the scaling Lambda (stdlib + pydantic only) and, unchanged, in the simulator. One call,
`plan(observation, settings)`, looks only at the past (the per-minute demand history up to
now) and the fleet as it is, and returns a `Decision`: the desired size, how many to launch,
which slots to drain and a reason, human-readable and as a code.

The rules, in order:

- Bounds: never below `min_size` nor above `max_size`; a fleet above max is cut to max even
  while it warms up or cools down (not-yet-ready slots first).
- Missing or late metrics (the newest minute is None, or it is older than
  `stale_after_minutes`): hold. Never scale in on data that is not there; only the min bound acts.
- Capacity: per instance, the median throughput measured at validation over the fleet's slots
  where one exists, else `capacity_per_instance_rps` (the configured figure).
- Predictive: a seasonal forecast of the coming `L + N` minutes (L = launch-to-ready, N =
  schedule interval). Each candidate ("weekly": same minute of the previous weeks; "daily":
  same minute of the previous days; "recent": the recent level alone) is the median of the
  lagged, lightly smoothed history, scaled by how the last `level_minutes` compare with their
  own lagged counterparts (the recent-level correction). Each candidate is backtested on the
  last `backtest_minutes` exactly as it would have forecast then, and the one whose errors
  need the least headroom wins, except that a seasonal one within `seasonal_tolerance` of it is
  preferred (a flat backtest window cannot show the ramp the seasonal history knows about).
  Headroom = exp(median + `headroom_sigmas` x sd) of the log errors at lead times L+1..L+N,
  sd from the errors above the median (1.4826 x their median distance), bounded by
  `min_headroom` / `max_headroom`. The daily method needs 3 days (a median of 3 rejects one
  unusual day, such as yesterday's flash crowd).
- Reactive: at least the newest minute's demand (plus `min_headroom`), which is what catches
  a surge that no history foretold (the alarm fast path calls `plan` as soon as one starts).
- Scale out: to the need over the minutes a launch made now can serve (L+1..L+N ahead),
  counting slots that are still launching as coming (no double launch).
- Scale in: only to the need over all of the next L+N minutes (an instance needed again
  within that window is kept: relaunching it would cost more than keeping it), never within
  `scale_in_cooldown_minutes` of a scale-out nor `scale_in_interval_minutes` of a scale-in (no
  flapping), not-yet-ready slots first, and no ready instance drained while slots are still
  warming up (as EC2 Auto Scaling holds scale-in during warm-up): only surplus not-yet-ready
  slots are cancelled then (`cancel_surplus_launches`; False holds all scale-in). Slots that a
  scale-out launched are ready before its cool-down ends, so in practice this cancels only
  launches the policy did not order (replacements of failed instances, an operator's).
"""

from __future__ import annotations

import math
from enum import StrEnum
from itertools import accumulate
from operator import sub
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlotState(StrEnum):
    LAUNCHING = "launching"  # launched, not yet validated: billed, serves nothing; may be cancelled
    VALIDATING = "validating"  # a workflow is validating it right now: coming like LAUNCHING, never drained
    READY = "ready"  # validated and in service
    DRAINING = "draining"  # leaving: finishing its requests, then terminated; not counted


class Slot(_Frozen):
    id: str
    state: SlotState
    minutes_until_ready: float = Field(default=0.0, ge=0, description="launching slots: the expected wait")
    throughput_rps: float | None = Field(default=None, gt=0, description="requests/s measured at validation, if any")


class Observation(_Frozen):
    """What the policy sees at one tick. history[-1] is minute `history_end_minute` (epoch minutes)."""

    history: list[Annotated[float, Field(ge=0)] | None] = Field(
        description="demand in requests/s, one value per minute, oldest first; None for a missing minute")
    history_end_minute: int = Field(description="epoch minute of history[-1]")
    now_minute: int | None = Field(default=None, description="epoch minute of the decision; defaults to history_end_minute")
    slots: list[Slot] = Field(default_factory=list)
    capacity_per_instance_rps: float = Field(gt=0, description="used where no throughput was measured at validation")
    min_size: int = Field(default=0, ge=0)
    max_size: int = Field(ge=0)
    last_scale_out_minute: int | None = None
    last_scale_in_minute: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Observation:
        if self.max_size < self.min_size:
            raise ValueError("max_size must be at least min_size")
        if self.now_minute is not None and self.now_minute < self.history_end_minute:
            raise ValueError("now_minute cannot be before the end of the history")
        return self

    @property
    def now(self) -> int:
        return self.history_end_minute if self.now_minute is None else self.now_minute

    @property
    def ready(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.state is SlotState.READY]

    @property
    def launching(self) -> list[Slot]:
        """Every slot on its way: counted as coming capacity."""
        return [slot for slot in self.slots if slot.state in (SlotState.LAUNCHING, SlotState.VALIDATING)]

    @property
    def cancellable(self) -> list[Slot]:
        """Slots on their way that scale-in may cancel (not mid-validation)."""
        return [slot for slot in self.slots if slot.state is SlotState.LAUNCHING]

    @classmethod
    def simple(cls, history: list[float | None], *, ready: int, launching: list[float] | tuple[float, ...] = (),
               capacity_per_instance_rps: float, max_size: int, min_size: int = 0, history_end_minute: int | None = None,
               **extra: int | None) -> Observation:
        """An observation from counts: slots ready-0.., and launching-0.. with their minutes until ready."""
        slots = [Slot(id=f"ready-{i}", state=SlotState.READY) for i in range(ready)]
        slots += [Slot(id=f"launching-{i}", state=SlotState.LAUNCHING, minutes_until_ready=m) for i, m in enumerate(launching)]
        end = len(history) - 1 if history_end_minute is None else history_end_minute
        return cls(history=history, history_end_minute=end, slots=slots, capacity_per_instance_rps=capacity_per_instance_rps,
                   min_size=min_size, max_size=max_size, **extra)  # type: ignore[arg-type]


class PolicySettings(_Frozen):
    launch_minutes: int = Field(default=6, ge=0, description="L: launch to ready (boot + validation)")
    interval_minutes: int = Field(default=5, ge=1, description="N: the schedule that calls plan")
    drain_minutes: int = Field(default=2, ge=0)
    target_utilisation: float = Field(default=1.0, gt=0, le=1, description="of the capacity measured at validation")
    headroom_sigmas: float = Field(default=3.0, ge=0, description="the aggressiveness knob: higher is safer and dearer")
    min_headroom: float = Field(default=0.02, ge=0)
    max_headroom: float = Field(default=1.0, ge=0)
    default_headroom: float = Field(default=0.25, ge=0, description="until there is history to backtest on")
    seasonal: bool = Field(default=True, description="False: the recent level only (no seasonality)")
    season_days: int = Field(default=7, ge=0)
    min_daily_lags: int = Field(default=3, ge=1, description="the median rejects one unusual day only with 3 or more")
    min_weekly_lags: int = Field(default=1, ge=1)
    seasonal_tolerance: float = Field(default=0.02, ge=0, description="a seasonal method is preferred while its backtest "
                                                                     "score (log headroom) is within this of the best")
    season_weeks: int = Field(default=2, ge=0)
    smoothing_minutes: int = Field(default=2, ge=0, description="half-width of the mean around each lagged minute")
    level_minutes: int = Field(default=20, ge=1, description="window of the recent-level correction")
    short_level_minutes: int = Field(default=5, ge=0, description="a shorter window that can only raise the level "
                                                                  "(a step up counts at once); 0: off")
    backtest_minutes: int = Field(default=240, ge=0)
    backtest_step_minutes: int = Field(default=5, ge=1)
    min_backtest_samples: int = Field(default=6, ge=1)
    robust_errors: bool = Field(default=True, description="median and upper semi-MAD of the errors, so one surge does not "
                                                          "inflate the headroom for hours; False: mean and standard deviation")
    surge_extrapolation: float = Field(default=1.0, ge=0, description="in a surge (newest minute above the forecast band), "
                                                                      "size for newest + this x the last minute's rise")
    scale_in_cooldown_minutes: int = Field(default=15, ge=0, description="no scale-in this soon after a scale-out")
    scale_in_interval_minutes: int = Field(default=5, ge=0, description="no scale-in this soon after a scale-in")
    stale_after_minutes: int = Field(default=2, ge=0, description="newest datapoint older than this: hold")
    cancel_surplus_launches: bool = Field(
        default=True, description="while slots warm up, surplus not-yet-ready slots may be cancelled (ready ones are held); "
                                  "False: hold all scale-in until every slot is ready")

    @property
    def horizon(self) -> int:
        return self.launch_minutes + self.interval_minutes


class ReasonCode(StrEnum):
    SCALE_OUT_FORECAST = "scale_out_forecast"
    SCALE_OUT_SURGE = "scale_out_surge"
    SCALE_OUT_MIN = "scale_out_min"
    SCALE_IN = "scale_in"
    SCALE_IN_TO_MAX = "scale_in_to_max"
    HOLD_STEADY = "hold_steady"
    HOLD_AT_MAX = "hold_at_max"
    HOLD_WARMING_UP = "hold_warming_up"
    HOLD_COOLDOWN = "hold_cooldown"
    HOLD_METRICS_MISSING = "hold_metrics_missing"


class Forecast(_Frozen):
    method: Literal["weekly", "daily", "recent"]
    level_ratio: float = Field(description="recent demand over its seasonal reference (1 for 'recent': the level itself)")
    values_rps: list[float] = Field(description="minutes now+1 .. now+L+N")
    peak_launch_rps: float = Field(description="peak over now+L+1 .. now+L+N, what a launch made now can serve")
    peak_keep_rps: float = Field(description="peak over now+1 .. now+L+N")
    headroom: float
    error_mean: float | None = None
    error_sd: float | None = None
    backtest_samples: int = 0
    expected_now_rps: float | None = Field(default=None, description="what the level before the newest minute predicted for it")


class Decision(_Frozen):
    desired: int
    launch: int = Field(ge=0)
    terminate: list[str] = Field(default_factory=list, description="slot ids to drain then terminate, in order")
    code: ReasonCode
    reason: str
    ready: int
    launching: int
    capacity_per_instance_rps: float
    needed_launch: int | None = Field(default=None, description="before bounds")
    needed_keep: int | None = Field(default=None, description="before bounds")
    forecast: Forecast | None = None


def instance_capacity(observation: Observation) -> float:
    """Median validation-measured throughput over the live slots, else the configured figure."""
    measured = sorted(slot.throughput_rps for slot in observation.slots
                      if slot.throughput_rps is not None and slot.state is not SlotState.DRAINING)
    if not measured:
        return observation.capacity_per_instance_rps
    return _median(measured)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _reference(history: list[float | None], lags: list[int], lo: int, hi: int, half: int) -> list[float | None]:
    """For x in lo..hi: the median over lags of the mean of history[x-lag-half .. x-lag+half] (the present minutes
    of the window, cut to the history); None where no lag has one.

    Runs at every tick, for every lag, for every x: so where every window is whole (the usual case), this takes a
    shortcut that gives the same floats as the general rule (`_lagged_means`), and so the same decisions."""
    width = 2 * half + 1
    rows: list[list[float]] = []  # per lag: the window sums for x = lo..hi
    for lag in lags:
        first, last = lo - lag - half, hi - lag + half
        window = history[first:last + 1] if first >= 0 else []
        if len(window) < last - first + 1 or None in window:  # cut by either end of the history, or a minute missing
            return _reference_any(history, lags, lo, hi, half)
        # prefix sums from the window's first minute, and differences of them: the same floats as the general rule
        sums = list(accumulate(cast(list[float], window), initial=0.0))
        rows.append(list(map(sub, sums[width:], sums)))
    if not rows:
        return [None] * (hi - lo + 1)
    # the median of the sums, then divided: dividing by the same positive width keeps their order, so this is the
    # median of the means, to the bit (for an even count each middle sum is divided before they are averaged)
    mid = len(rows) // 2
    columns = map(sorted, zip(*rows, strict=True))
    if len(rows) % 2:
        return [column[mid] / width for column in columns]
    return [(column[mid - 1] / width + column[mid] / width) / 2 for column in columns]


def _reference_any(history: list[float | None], lags: list[int], lo: int, hi: int, half: int) -> list[float | None]:
    """`_reference` for any history: missing minutes, and windows cut by the history's ends."""
    rows = [means for lag in lags if (means := _lagged_means(history, lag, lo, hi, half)) is not None]
    columns = ([value for value in column if value is not None] for column in zip(*rows, strict=True))
    return [_median(column) if column else None for column in columns] if rows else [None] * (hi - lo + 1)


def _lagged_means(history: list[float | None], lag: int, lo: int, hi: int, half: int) -> list[float | None] | None:
    """For x in lo..hi: the mean of the present values of history[x-lag-half .. x-lag+half] (the window cut to the
    history), None where it holds none; None for the whole lag where no window reaches the history."""
    end = len(history) - 1
    a, b = max(0, lo - lag - half), min(end, hi - lag + half)
    if a > b:
        return None
    sums, counts = [0.0], [0]
    for value in history[a:b + 1]:
        sums.append(sums[-1] + (value if value is not None else 0.0))
        counts.append(counts[-1] + (value is not None))
    means: list[float | None] = []
    for x in range(lo, hi + 1):
        i, j = max(a, x - lag - half) - a, min(b, x - lag + half) - a + 1
        means.append((sums[j] - sums[i]) / (counts[j] - counts[i]) if i < j and counts[j] > counts[i] else None)
    return means


def _candidate(history: list[float | None], method: Literal["weekly", "daily", "recent"], lags: list[int], lead: int,
               s: PolicySettings) -> tuple[float, Forecast] | None:
    """One forecast method, backtested on the recent past: (score, forecast), or None where it cannot forecast."""
    end = len(history) - 1
    horizon, width, launch = s.horizon, s.level_minutes, s.launch_minutes
    lo = max(0, end - s.backtest_minutes - horizon - width)
    hi = end + lead + horizon
    ref = [1.0] * (hi - lo + 1) if method == "recent" else _reference(history, lags, lo, hi, s.smoothing_minutes)
    observed, past_ref = history[lo:end + 1], ref[:end - lo + 1]  # minutes lo..end (ref[x - lo] is minute x's)

    # prefix sums of demand and reference over minutes where both exist: the level ratio at any t
    if None in observed or None in past_ref:
        both = [value is not None and base is not None for value, base in zip(observed, past_ref, strict=True)]
        demand_sum = list(accumulate((value if ok and value is not None else 0.0
                                      for value, ok in zip(observed, both, strict=True)), initial=0.0))
        ref_sum = list(accumulate((base if ok and base is not None else 0.0
                                   for base, ok in zip(past_ref, both, strict=True)), initial=0.0))
        complete: tuple[list[float], list[float]] | None = None
    else:  # the usual case: the same sums without the per-minute checks
        present_demand, present_ref = cast(list[float], observed), cast(list[float], past_ref)
        demand_sum, ref_sum = list(accumulate(present_demand, initial=0.0)), list(accumulate(present_ref, initial=0.0))
        complete = present_demand, present_ref

    def window_levels(times: list[int], minutes: int) -> list[float | None]:
        """Per t: demand over reference in the `minutes` up to t (None without reference there)."""
        spans = [(max(lo, t - minutes + 1) - lo, t - lo + 1) for t in times]
        return [(demand_sum[j] - demand_sum[i]) / (ref_sum[j] - ref_sum[i]) if ref_sum[j] - ref_sum[i] > 0 else None
                for i, j in spans]

    def levels(times: list[int]) -> list[float | None]:
        """The level ratio at each t: the long window's, raised to the short window's where that is higher."""
        long = window_levels(times, width)
        if not s.short_level_minutes:
            return long
        short = window_levels(times, s.short_level_minutes)
        return [lg if lg is None or sh is None else max(lg, sh) for lg, sh in zip(long, short, strict=True)]

    def level(t: int) -> float | None:
        return levels([t])[0]

    # the backtest: what a forecast made at each t would have got wrong at lead times L+1..L+N, on the minutes
    # where demand and reference are both there and positive (a log error needs both)
    times = list(range(end - horizon, lo + width - 2, -s.backtest_step_minutes))
    spans = [(ratio, t + launch + 1 - lo, t + horizon + 1 - lo) for t, ratio in zip(times, levels(times), strict=True)
             if ratio is not None and ratio > 0]
    if complete is not None and min(complete[0], default=1.0) > 0 and min(complete[1], default=1.0) > 0:
        pairs = list(zip(*complete, strict=True))  # the usual case: every minute scores
        errors = [math.log(actual / (base * ratio)) for ratio, i, j in spans for actual, base in pairs[i:j]]
        samples = len(spans)
    else:
        scorable = [(actual, base) if actual is not None and base is not None and actual > 0 and base > 0 else None
                    for actual, base in zip(observed, past_ref, strict=True)]
        errors = [math.log(actual / (base * ratio)) for ratio, i, j in spans for actual, base in filter(None, scorable[i:j])]
        samples = sum(1 for _, i, j in spans if any(scorable[i:j]))

    ratio_now = level(end)
    if ratio_now is None:
        return None
    future = ref[end + lead + 1 - lo:]
    if None in future:
        return None
    values = [base * ratio_now for base in future if base is not None]
    if samples >= s.min_backtest_samples and errors:
        if s.robust_errors:
            # median, and the spread of the errors above it only: under-forecasts are what headroom is for, and
            # over-forecasts after a drop (the level catching up) must not raise it
            mean = _median(errors)
            above = [e - mean for e in errors if e > mean]
            sd = 1.4826 * _median(above) if above else 0.0
        else:
            mean = sum(errors) / len(errors)
            sd = math.sqrt(sum((e - mean) ** 2 for e in errors) / len(errors))
        headroom = min(s.max_headroom, max(s.min_headroom, math.exp(mean + s.headroom_sigmas * sd) - 1))
        score = mean + s.headroom_sigmas * sd
        err_mean, err_sd = mean, sd
    else:
        headroom, score, err_mean, err_sd = s.default_headroom, math.log1p(s.default_headroom) + 1.0, None, None
    launch_window = values[launch:] or values[-1:]
    before, base_now = level(end - 1) if end > lo else None, ref[end - lo]
    expected = before * base_now if before is not None and base_now is not None else None
    forecast = Forecast(method=method, level_ratio=ratio_now, values_rps=values, peak_launch_rps=max(launch_window),
                        peak_keep_rps=max(values), headroom=headroom, error_mean=err_mean, error_sd=err_sd,
                        backtest_samples=samples, expected_now_rps=expected)
    return score, forecast


def forecast(observation: Observation, settings: PolicySettings) -> Forecast | None:
    """The best-backtesting forecast of the next L+N minutes after now, or None without any demand data."""
    history = observation.history
    if all(value is None for value in reversed(history)):  # from the newest: it is usually there
        return None
    end = len(history) - 1
    lead = observation.now - observation.history_end_minute
    methods: list[tuple[Literal["weekly", "daily", "recent"], list[int]]] = []
    if settings.seasonal:
        usable = end - settings.level_minutes
        weekly = [MINUTES_PER_WEEK * w for w in range(1, settings.season_weeks + 1) if MINUTES_PER_WEEK * w <= usable]
        daily = [MINUTES_PER_DAY * d for d in range(1, settings.season_days + 1) if MINUTES_PER_DAY * d <= usable]
        if len(weekly) >= settings.min_weekly_lags:
            methods.append(("weekly", weekly))
        if len(daily) >= settings.min_daily_lags:
            methods.append(("daily", daily))
    methods.append(("recent", []))
    scored = [c for c in (_candidate(history, method, lags, lead, settings) for method, lags in methods) if c is not None]
    if not scored:
        return None
    best = min(score for score, _ in scored)
    # weekly, then daily, then recent: a seasonal method that backtests about as well wins, because a flat backtest
    # window cannot show the ramp that the seasonal history knows is coming
    return next(fc for score, fc in scored if score <= best + settings.seasonal_tolerance)


def _metrics_problem(observation: Observation, settings: PolicySettings) -> str | None:
    history = observation.history
    if not history or history[-1] is None:
        gap = 0
        for value in reversed(history):
            if value is not None:
                break
            gap += 1
        return f"the newest {gap} minute(s) of demand are missing" if history else "no demand history"
    late = observation.now - observation.history_end_minute
    if late > settings.stale_after_minutes:
        return f"the newest demand datapoint is {late} minutes old (stale after {settings.stale_after_minutes})"
    return None


def _cancel_order(observation: Observation, count: int) -> list[str]:
    """Cancellable not-yet-ready slots, furthest from ready first (a slot mid-validation is never touched)."""
    cancellable = sorted(observation.cancellable, key=lambda slot: (-slot.minutes_until_ready, slot.id))
    return [slot.id for slot in cancellable[:count]]


def _drain_order(observation: Observation, count: int) -> list[str]:
    """Cancellable not-yet-ready slots first, then ready ones (least measured throughput first)."""
    ready = sorted(observation.ready, key=lambda slot: (slot.throughput_rps or 0.0, slot.id))
    cancel = _cancel_order(observation, count)
    return cancel + [slot.id for slot in ready[:count - len(cancel)]]


def rps(value: float) -> str:
    """A request rate as a reason says it: whole requests a second, or two significant digits below 10
    (a fleet sized at 0.5 req/s per instance must not read "0 req/s")."""
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


def plan(observation: Observation, settings: PolicySettings | None = None) -> Decision:
    s = settings or PolicySettings()
    ready, launching = len(observation.ready), len(observation.launching)
    current = ready + launching
    low, high = observation.min_size, observation.max_size
    capacity = instance_capacity(observation)
    per_instance = capacity * s.target_utilisation
    fleet = f"{ready} ready + {launching} launching (counted as coming)"

    def decide(desired: int, code: ReasonCode, reason: str, *, launch: int = 0, terminate: list[str] | None = None,
               needed: tuple[int | None, int | None] = (None, None), fc: Forecast | None = None) -> Decision:
        return Decision(desired=desired, launch=launch, terminate=terminate or [], code=code, reason=reason, ready=ready,
                        launching=launching, capacity_per_instance_rps=capacity, needed_launch=needed[0],
                        needed_keep=needed[1], forecast=fc)

    if current > high:
        cut = _drain_order(observation, current - high)
        return decide(current - len(cut), ReasonCode.SCALE_IN_TO_MAX,
                      f"{fleet} is above max {high}: draining {len(cut)}, not-yet-ready slots first "
                      "(none mid-validation)", terminate=cut)

    problem = _metrics_problem(observation, s)
    if problem is not None:
        if current < low:
            return decide(low, ReasonCode.SCALE_OUT_MIN, f"{problem}; launching {low - current} to reach min {low}",
                          launch=low - current)
        return decide(current, ReasonCode.HOLD_METRICS_MISSING,
                      f"{problem}: holding at {fleet}, never scaling in on missing data")

    newest = observation.history[-1] or 0.0
    fc = forecast(observation, s)
    sized, margin = newest, s.min_headroom
    surge = ""  # set when the newest minute is above the forecast band: a surge nothing foretold
    if fc is not None and fc.expected_now_rps is not None and newest > fc.expected_now_rps * (1 + fc.headroom):
        # a surge no forecast foretold: it tends to go on, and the band's noise rides on top of it
        previous = observation.history[-2] if len(observation.history) > 1 else None
        rise = newest - previous if previous is not None else 0.0
        margin = fc.headroom
        surge = f" (expected {rps(fc.expected_now_rps)})"
        if rise > 0 and s.surge_extrapolation > 0:
            sized = newest + s.surge_extrapolation * rise
            surge += f" and rising {rps(rise)} req/s a minute (sized for {rps(sized)} +{margin:.0%})"
    reactive = math.ceil(sized * (1 + margin) / per_instance - 1e-9)
    if fc is not None:
        predicted_launch = math.ceil(fc.peak_launch_rps * (1 + fc.headroom) / per_instance - 1e-9)
        predicted_keep = math.ceil(fc.peak_keep_rps * (1 + fc.headroom) / per_instance - 1e-9)
        level = f"level {rps(fc.level_ratio)} req/s" if fc.method == "recent" else f"level x{fc.level_ratio:.2f}"
        basis = (f"{fc.method} forecast peaks at {rps(fc.peak_launch_rps)} req/s in +{s.launch_minutes + 1}..+{s.horizon} min "
                 f"({level}, headroom {fc.headroom:.0%})")
    else:
        predicted_launch = predicted_keep = reactive
        basis = "no forecast"
    needed_launch, needed_keep = max(reactive, predicted_launch), max(reactive, predicted_keep)
    needed = (needed_launch, needed_keep)
    target_launch = min(high, max(low, needed_launch))
    target_keep = min(high, max(low, needed_keep))
    sizing = f"{rps(capacity)} req/s per instance at {s.target_utilisation:.0%}"
    now_demand = f"demand now {rps(newest)} req/s"

    if current < target_launch:
        add = target_launch - current
        capped = f"; capped at max {high} (needs {needed_launch})" if needed_launch > high else ""
        if needed_launch < low:
            return decide(low, ReasonCode.SCALE_OUT_MIN, f"below min {low}: launching {add}; {fleet}", launch=add,
                          needed=needed, fc=fc)
        if surge and reactive > current:
            return decide(target_launch, ReasonCode.SCALE_OUT_SURGE,
                          f"surge: {now_demand}{surge} needs {reactive} at {sizing}, above the {basis}; launching {add} "
                          f"beside {fleet}{capped}", launch=add, needed=needed, fc=fc)
        return decide(target_launch, ReasonCode.SCALE_OUT_FORECAST,
                      f"{basis} needs {predicted_launch} and {now_demand} needs {reactive} at {sizing}; launching {add} "
                      f"beside {fleet}{capped}",
                      launch=add, needed=needed, fc=fc)

    if needed_launch > current and current >= high:
        return decide(current, ReasonCode.HOLD_AT_MAX,
                      f"at max {high}: {basis} needs {needed_launch} at {sizing}; not asking for more", needed=needed, fc=fc)

    if current > target_keep:
        surplus = current - target_keep
        why = f"{basis} needs {needed_keep} over the next {s.horizon} min at {sizing} ({now_demand})"
        now = observation.now
        last_out, last_in = observation.last_scale_out_minute, observation.last_scale_in_minute
        if last_out is not None and now - last_out < s.scale_in_cooldown_minutes:
            return decide(current, ReasonCode.HOLD_COOLDOWN,
                          f"{why}, {surplus} fewer than {fleet}, but the last scale-out was "
                          f"{now - last_out} min ago (cool-down {s.scale_in_cooldown_minutes})",
                          needed=needed, fc=fc)
        if last_in is not None and now - last_in < s.scale_in_interval_minutes:
            return decide(current, ReasonCode.HOLD_COOLDOWN,
                          f"{why}, {surplus} fewer than {fleet}, but the last scale-in was "
                          f"{now - last_in} min ago (interval {s.scale_in_interval_minutes})",
                          needed=needed, fc=fc)
        if launching and (not s.cancel_surplus_launches or not observation.cancellable):
            return decide(current, ReasonCode.HOLD_WARMING_UP,
                          f"{why}, {surplus} fewer than {fleet}, but scale-in is held while {launching} slot(s) warm up",
                          needed=needed, fc=fc)
        if launching:
            cancel = _cancel_order(observation, surplus)
            held = surplus - len(cancel)
            note = f"; {held} ready instance(s) held while slots warm up" if held else ""
            return decide(current - len(cancel), ReasonCode.SCALE_IN,
                          f"{why}: cancelling {len(cancel)} not-yet-ready slot(s) of {fleet}{note}", terminate=cancel,
                          needed=needed, fc=fc)
        drain = _drain_order(observation, surplus)
        return decide(target_keep, ReasonCode.SCALE_IN, f"{why}: draining {len(drain)} of {ready} ready", terminate=drain,
                      needed=needed, fc=fc)

    return decide(current, ReasonCode.HOLD_STEADY,
                  f"{fleet} covers it: {basis} needs {needed_launch} to launch for, {needed_keep} to keep, at {sizing} "
                  f"({now_demand})", needed=needed, fc=fc)
