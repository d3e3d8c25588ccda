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
  last `backtest_minutes` (a day: every time of day's errors, so the headroom at the quiet end
  of the night already knows how wrong the morning ramp's forecasts were) exactly as it would
  have forecast then, and the one whose errors need the least headroom wins, except that a
  seasonal one within `seasonal_tolerance` of it is preferred (a flat backtest window cannot
  show the ramp the seasonal history knows about). Headroom = exp(median + `headroom_sigmas` x
  sd) of the log errors at lead times L+1..L+N, sd from the errors above the median (1.4826 x
  their median distance), bounded by `min_headroom` / `max_headroom`. The daily method is tried
  from the first day of history (from 3 days its median rejects one unusual day, such as
  yesterday's flash crowd; before that the backtest says whether it beats the recent level).
- Reactive: at least the newest minute's demand (plus `min_headroom`), which is what catches
  a surge that no history foretold (the alarm fast path calls `plan` as soon as one starts).
  Whether a jump lasts is learnt from the fleet's own last day (`jumps_last`: of the minutes
  25% above the mean of the 10 before them, how many were still up L+1 minutes later, when a
  launch made at once would have been ready). Where jumps have lasted (flash crowds), a surge
  is sized for its rise carried on for those L+1 minutes; where they have not (short bursts,
  heavy-tailed noise), a newest minute beyond the fleet is sized for the least of the last
  `reactive_minutes` (an instance launched for a burst is ready after the burst has gone).
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

A caller that plans again and again over a fixed trace (the simulator) may pass a
`ForecastCache`: the references and backtests of past minutes are then kept from one call to
the next instead of recomputed; the decision is the same with or without one.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import reduce
from itertools import chain
from operator import add
from typing import Annotated, Any, Literal, NamedTuple, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
REFERENCE_AHEAD_MINUTES = 60  # see _reference


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
    min_daily_lags: int = Field(default=1, ge=1, description="days of history before the daily method is tried (its "
                                                             "median rejects one unusual day only from 3 on; the "
                                                             "backtest decides whether fewer beat the recent level)")
    min_weekly_lags: int = Field(default=1, ge=1)
    seasonal_tolerance: float = Field(default=0.02, ge=0, description="a seasonal method is preferred while its backtest "
                                                                     "score (log headroom) is within this of the best")
    season_weeks: int = Field(default=2, ge=0)
    smoothing_minutes: int = Field(default=2, ge=0, description="half-width of the mean around each lagged minute")
    level_minutes: int = Field(default=20, ge=1, description="window of the recent-level correction")
    short_level_minutes: int = Field(default=5, ge=0, description="a shorter window that can only raise the level "
                                                                  "(a step up counts at once); 0: off")
    backtest_minutes: int = Field(default=1440, ge=0, description="a day of forecast errors: the ramps of each time of day "
                                                                  "set the headroom, not only the last hours")
    backtest_step_minutes: int = Field(default=5, ge=1)
    min_backtest_samples: int = Field(default=6, ge=1)
    robust_errors: bool = Field(default=True, description="median and upper semi-MAD of the errors, so one surge does not "
                                                          "inflate the headroom for hours; False: mean and standard deviation")
    surge_extrapolation: float = Field(default=1.0, ge=0, description="in a surge (newest minute above the forecast band), "
                                                                      "size for newest + this x the last minute's rise")
    lasting_surge_extrapolation: float | None = Field(
        default=None, ge=0, description="the same where jumps have lasted here (see jump_lookback_minutes): a surge that "
                                        "goes on rising until a launch is ready; None: L + 1, the minutes until then")
    reactive_minutes: int = Field(default=2, ge=1, description="where jumps in demand have not lasted (see "
                                                               "jump_lookback_minutes), the reactive floor and the surge "
                                                               "path size for the least of the newest this many minutes")
    jump_lookback_minutes: int = Field(default=1440, ge=0, description="the past searched for jumps (a minute 25% above "
                                                                       "the mean of the 10 before it) and whether demand was "
                                                                       "still up when a launch made then would be ready; "
                                                                       "0: every jump is taken to last")
    jump_min_count: int = Field(default=3, ge=1, description="fewer jumps than this in the lookback: taken to last")
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
    return _median_of_sorted(sorted(values))


def _median_of_sorted(ordered: list[float]) -> float:
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _median_above(ordered: list[float], mean: float) -> float:
    """The median of e - mean over the values e above mean (0 without any), from the values sorted: the same floats
    as building that list and taking its median, without building it."""
    first = bisect_right(ordered, mean)
    count = len(ordered) - first
    if not count:
        return 0.0
    mid = first + count // 2
    return ordered[mid] - mean if count % 2 else ((ordered[mid - 1] - mean) + (ordered[mid] - mean)) / 2


# --- the forecast --------------------------------------------------------------------------------------------------
#
# Every value below that a later call could reuse (a minute's reference, the errors of the forecast made at a past
# minute t) is computed from its own window of minutes only, never from running sums that start wherever this call's
# history or backtest happens to start. So a `ForecastCache` may keep it, and a forecast is the same with or without.


@dataclass
class _MethodCache:
    """One method's values from the last call, for the next: its references and backtests of fixed minutes."""

    reference_start: int = 0  # epoch minute of references[0]
    references: list[float | None] = field(default_factory=list)  # of consecutive minutes from reference_start
    backtest_start: int = 0  # epoch minute t of the forecast that backtests[0] scores
    backtests: list[list[float]] = field(default_factory=list)  # the log errors of the forecasts made at t, t - step, ...


class ForecastCache:
    """What `forecast` worked out about past minutes, kept from one call to the next.

    For a caller whose history never changes a minute once seen: the simulator, replaying a trace, calls `plan` at
    every tick on the same minutes shifted by a few, and would otherwise recompute the same references and backtests
    each time. Not for the Lambda: CloudWatch may still revise the newest minutes, and it calls once every N minutes
    anyway. Only values that depend on nothing but fixed minutes are kept (their windows whole within the history),
    so a forecast, and so a decision, is the same with or without a cache."""

    def __init__(self) -> None:
        self._methods: dict[tuple[PolicySettings, tuple[int, ...]], _MethodCache] = {}

    def method(self, settings: PolicySettings, lags: list[int]) -> _MethodCache:
        return self._methods.setdefault((settings, tuple(lags)), _MethodCache())


@dataclass(frozen=True)
class _Span:
    """The minutes one forecast looks at (indices into the history): backtest and level from lo, forecast to hi."""

    end: int  # the newest minute
    lead: int  # now - end
    lo: int
    hi: int
    origin: int  # the epoch minute of history[0]
    observed: list[float | None]  # history[lo..end]
    observed_complete: bool  # no minute of it missing


def _total(values: list[float]) -> float:
    """A window's sum, left to right: the same float in every Python version (`sum` compensates since 3.12)."""
    return reduce(add, values, 0.0)


def _lagged_means(history: list[float | None], lag: int, lo: int, hi: int, half: int) -> list[float | None] | None:
    """For x in lo..hi: the mean of the present values of history[x-lag-half .. x-lag+half] (the window cut to the
    history), None where it holds none; None for the whole lag where no window reaches the history."""
    end, width, count = len(history) - 1, 2 * half + 1, hi - lo + 1
    first, last = lo - lag - half, hi - lag + half
    window = history[first:last + 1] if first >= 0 else []
    if len(window) == last - first + 1 and None not in window:
        # the usual case, every window whole: each x's window added left to right, one shifted slice at a time (the
        # same floats as `_total` below, which a cache relies on: a minute's mean may come from either)
        totals = cast(list[float], window[:count])
        for offset in range(1, width):
            totals = list(map(add, totals, cast(list[float], window[offset:offset + count])))
        return [total / width for total in totals]
    if max(0, first) > min(end, last):
        return None
    means: list[float | None] = []
    for x in range(lo, hi + 1):
        present = [value for value in history[max(0, x - lag - half):max(0, x - lag + half + 1)] if value is not None]
        means.append(_total(present) / len(present) if present else None)
    return means


def _reference_range(history: list[float | None], lags: list[int], lo: int, hi: int, half: int) -> list[float | None]:
    """For x in lo..hi: the median over lags of the mean of history[x-lag-half .. x-lag+half]; None where no lag
    has a value there."""
    if lo > hi:
        return []
    rows = [means for lag in lags if (means := _lagged_means(history, lag, lo, hi, half)) is not None]
    if not rows:
        return [None] * (hi - lo + 1)
    if not any(None in row for row in rows):
        mid = len(rows) // 2
        columns = map(sorted, zip(*rows, strict=True))
        if len(rows) % 2:
            return [column[mid] for column in columns]
        return [(column[mid - 1] + column[mid]) / 2 for column in columns]
    present = ([value for value in column if value is not None] for column in zip(*rows, strict=True))
    return [_median(values) if values else None for values in present]


def _reference(history: list[float | None], lags: list[int], span: _Span, half: int, fixed: tuple[int, int],
               cache: _MethodCache | None) -> list[float | None]:
    """`_reference_range` over span.lo..span.hi. With a cache: the minutes it kept from the last call, the others
    computed, and the minutes in `fixed` (whose every window is whole, so that they depend on fixed minutes only)
    kept for the next call, with up to `REFERENCE_AHEAD_MINUTES` more: a minute's reference needs only minutes at
    least its smallest lag old, so the next calls need not compute theirs a few at a time."""
    lo, hi = span.lo, span.hi
    if cache is None:
        return _reference_range(history, lags, lo, hi, half)
    start = cache.reference_start - span.origin  # cache.references[0] is minute `start`'s
    first, last = max(lo, fixed[0], start), min(fixed[1], start + len(cache.references) - 1)
    if first <= last:  # the minutes before the kept ones (rarely any), and the kept ones
        ref = _reference_range(history, lags, lo, first - 1, half) + cache.references[first - start:last - start + 1]
    else:
        ref, last = [], lo - 1
    # and the ones after them, up to hi and, where any is needed, the next hour's too (at a scheduled tick, most ticks
    # need none)
    computed_to = hi if last >= hi else max(hi, min(fixed[1], hi + REFERENCE_AHEAD_MINUTES))
    ref += _reference_range(history, lags, last + 1, computed_to, half)
    keep_from, keep_to = max(lo, fixed[0]), min(fixed[1], lo + len(ref) - 1)
    cache.reference_start, cache.references = span.origin + keep_from, ref[keep_from - lo:keep_to - lo + 1]
    return ref[:hi - lo + 1]


def _kept_backtests(times: range, keep: tuple[int, int], origin: int, cache: _MethodCache,
                    backtest: Callable[[int], list[float]]) -> list[list[float]]:
    """[backtest(t) for t in times] (newest first, every `step` minutes), taking those of t within `keep` (whose
    windows are whole: they depend on fixed minutes only) from the last call where it has them, and keeping them
    for the next. At a scheduled tick every N minutes, all but the newest are the last call's."""
    step = -times.step
    # the indices into times of the t within keep (times run newest first), and of the t the cache has
    keep_first = len(range(times.start, keep[1], -step))  # how many are newer than keep[1]
    keep_stop = min(len(times), len(range(times.start, keep[0] - 1, -step)))
    shift, off_grid = divmod(times.start - (cache.backtest_start - origin), step)  # times[k] is cache.backtests[k - shift]'s
    reuse_first, reuse_stop = max(keep_first, shift), min(keep_stop, shift + len(cache.backtests))
    if off_grid or reuse_first >= reuse_stop:  # (after an alarm tick, off the schedule's grid)
        found = [backtest(t) for t in times]
    else:
        found = ([backtest(t) for t in times[:reuse_first]] + cache.backtests[reuse_first - shift:reuse_stop - shift]
                 + [backtest(t) for t in times[reuse_stop:]])
    if keep_first < keep_stop:
        cache.backtest_start, cache.backtests = origin + times[keep_first], found[keep_first:keep_stop]
    return found


def _candidate(history: list[float | None], method: Literal["weekly", "daily", "recent"], lags: list[int], span: _Span,
               s: PolicySettings, cache: _MethodCache | None) -> tuple[float, dict[str, Any]] | None:
    """One forecast method, backtested on the recent past: (score, the Forecast's fields), or None where it cannot
    forecast."""
    end, lead, lo, hi, observed = span.end, span.lead, span.lo, span.hi, span.observed
    horizon, width, launch, half = s.horizon, s.level_minutes, s.launch_minutes, s.smoothing_minutes
    # the minutes whose reference depends on fixed minutes only: every lag's window whole within the history
    fixed = (max(lags) + half, end + min(lags) - half) if lags else (0, hi)
    ref = [1.0] * (hi - lo + 1) if method == "recent" else _reference(history, lags, span, half, fixed, cache)
    past_ref = ref[:end - lo + 1]  # minutes lo..end, as observed (ref[x - lo] is minute x's)
    # what a level adds up, per minute: demand and reference where both exist, else 0 (which adds nothing)
    if span.observed_complete and (method == "recent" or None not in past_ref):
        level_demand, level_ref = cast(list[float], observed), cast(list[float], past_ref)
    else:
        level_demand = [value if value is not None and base is not None else 0.0
                        for value, base in zip(observed, past_ref, strict=True)]
        level_ref = [base if value is not None and base is not None else 0.0
                     for value, base in zip(observed, past_ref, strict=True)]

    def window_level(t: int, minutes: int) -> float | None:
        """Demand over reference in the `minutes` up to t (from lo); None without reference there. Exactly rounded
        sums: the same whatever minutes surround the window."""
        i, j = max(lo, t - minutes + 1) - lo, t - lo + 1
        denominator = math.fsum(level_ref[i:j])
        return math.fsum(level_demand[i:j]) / denominator if denominator > 0 else None

    def level(t: int) -> float | None:
        long = window_level(t, width)
        if long is None or not s.short_level_minutes:
            return long
        short = window_level(t, s.short_level_minutes)
        return long if short is None else max(long, short)

    def backtest(t: int) -> list[float]:
        """The log errors at lead times L+1..L+N of the forecast made at t, on the minutes where demand and reference
        are both there and positive; none where there was no level to forecast with."""
        ratio = level(t)
        if ratio is None or ratio <= 0:
            return []
        i, j = t + launch + 1 - lo, t + horizon + 1 - lo
        return [math.log(actual / (base * ratio)) for actual, base in zip(observed[i:j], past_ref[i:j], strict=True)
                if actual is not None and base is not None and actual > 0 and base > 0]

    times = range(end - horizon, lo + width - 2, -s.backtest_step_minutes)
    if cache is None:
        backtests = [backtest(t) for t in times]
    else:
        # a backtest depends on fixed minutes only where its windows are whole: the level's within this call's
        # minutes (from lo), and every reference it uses fixed
        reach = max(width, s.short_level_minutes)
        keep = (max(lo, fixed[0]) + reach - 1, fixed[1] - horizon)
        backtests = _kept_backtests(times, keep, span.origin, cache, backtest)
    errors = list(chain.from_iterable(backtests))
    samples = len(backtests) - backtests.count([])

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
            ordered = sorted(errors)
            mean = _median_of_sorted(ordered)
            sd = 1.4826 * _median_above(ordered, mean)
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
    return score, {"method": method, "level_ratio": ratio_now, "values_rps": values, "peak_launch_rps": max(launch_window),
                   "peak_keep_rps": max(values), "headroom": headroom, "error_mean": err_mean, "error_sd": err_sd,
                   "backtest_samples": samples, "expected_now_rps": expected}


def forecast(observation: Observation, settings: PolicySettings, cache: ForecastCache | None = None) -> Forecast | None:
    """The best-backtesting forecast of the next L+N minutes after now, or None without any demand data. `cache`: see
    `ForecastCache` (the same forecast with or without it)."""
    history = observation.history
    if all(value is None for value in reversed(history)):  # from the newest: it is usually there
        return None
    end = len(history) - 1
    s = settings
    lo = max(0, end - s.backtest_minutes - s.horizon - s.level_minutes)
    lead = observation.now - observation.history_end_minute
    observed = history[lo:end + 1]
    span = _Span(end=end, lead=lead, lo=lo, hi=end + lead + s.horizon, origin=observation.history_end_minute - end,
                 observed=observed, observed_complete=None not in observed)
    methods: list[tuple[Literal["weekly", "daily", "recent"], list[int]]] = []
    if s.seasonal:
        usable = end - s.level_minutes
        weekly = [MINUTES_PER_WEEK * w for w in range(1, s.season_weeks + 1) if MINUTES_PER_WEEK * w <= usable]
        daily = [MINUTES_PER_DAY * d for d in range(1, s.season_days + 1) if MINUTES_PER_DAY * d <= usable]
        if len(weekly) >= s.min_weekly_lags:
            methods.append(("weekly", weekly))
        if len(daily) >= s.min_daily_lags:
            methods.append(("daily", daily))
    methods.append(("recent", []))
    scored = [c for c in (_candidate(history, method, lags, span, s, cache.method(s, lags) if cache is not None else None)
                          for method, lags in methods) if c is not None]
    if not scored:
        return None
    best = min(score for score, _ in scored)
    # weekly, then daily, then recent: a seasonal method that backtests about as well wins, because a flat backtest
    # window cannot show the ramp that the seasonal history knows is coming
    return Forecast(**next(fields for score, fields in scored if score <= best + s.seasonal_tolerance))


JUMP_RATIO = 1.25  # a jump: a minute this far above the mean of the JUMP_REFERENCE_MINUTES before it
JUMP_REFERENCE_MINUTES = 10
JUMP_LASTED_RATIO = 1.125  # ... and it lasted if demand was still this far above that mean L+1 minutes on


class Jumps(NamedTuple):
    lasting: bool  # jumps here tend to last until a launch made at their first minute is ready
    seen: int  # jumps in the lookback
    lasted: int  # of them, still up L+1 minutes on


def jumps_last(history: list[float | None], s: PolicySettings) -> Jumps:
    """Whether a sudden jump in demand has tended to last until a launch made at its first minute would be ready,
    over the last `jump_lookback_minutes`. A flash crowd does (launch at once); a burst of a few minutes or a
    heavy-tailed noisy minute does not (launching for it buys an instance that is ready after it has gone). Fewer
    than `jump_min_count` jumps: taken to last (react at once). A minute missing from the history leaves out only
    the jumps whose reference minutes it falls in."""
    m, ahead = JUMP_REFERENCE_MINUTES, s.launch_minutes + 1
    window = history[-(s.jump_lookback_minutes + m + ahead):] if s.jump_lookback_minutes else []
    sums, gaps = [0.0], [0]  # prefix sums of the present minutes, and prefix counts of the missing ones
    for value in window:
        sums.append(sums[-1] + (value or 0.0))
        gaps.append(gaps[-1] + (value is None))
    jumps = lasted = 0
    was_jump = False
    for t in range(m, len(window) - ahead):
        value, mean = window[t], (sums[t] - sums[t - m]) / m
        is_jump = value is not None and gaps[t] == gaps[t - m] and mean > 0 and value > JUMP_RATIO * mean
        if is_jump and not was_jump:
            jumps += 1
            later = window[t + ahead]
            lasted += later is not None and later > JUMP_LASTED_RATIO * mean
        was_jump = is_jump
    return Jumps(jumps < s.jump_min_count or 2 * lasted >= jumps, jumps, lasted)


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


def plan(observation: Observation, settings: PolicySettings | None = None, cache: ForecastCache | None = None) -> Decision:
    """The decision for this observation. `cache`: for a caller that plans again and again over a fixed trace (see
    `ForecastCache`); the same decision with or without it."""
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
    # a newest minute beyond what the fleet serves: where jumps have not lasted here, sized for what has lasted of it
    # (a burst is over before a launch is ready); where they have, a rise is carried on until a launch is ready
    persisting, jumps = newest, None
    discounted = ""  # said in the reason when the newest minute was not taken at its word
    if newest > current * per_instance:
        jumps = jumps_last(observation.history, s)
        least = min((v for v in observation.history[-s.reactive_minutes:] if v is not None), default=newest)
        if not jumps.lasting and least < newest:
            persisting = least
            discounted = (f", sized for {rps(least)} req/s, the least of the last {s.reactive_minutes} min (of "
                          f"{jumps.seen} jumps in the last {s.jump_lookback_minutes} min, {jumps.lasted} lasted the "
                          f"{s.launch_minutes + 1} min a launch takes)")
    fc = forecast(observation, s, cache)
    sized, margin = persisting, s.min_headroom
    surge = ""  # set when the newest minute is above the forecast band: a surge nothing foretold
    if fc is not None and fc.expected_now_rps is not None and persisting > fc.expected_now_rps * (1 + fc.headroom):
        # a surge no forecast foretold: it tends to go on, and the band's noise rides on top of it
        previous = observation.history[-2] if len(observation.history) > 1 else None
        rise = newest - previous if previous is not None else 0.0
        margin = fc.headroom
        surge = f" (expected {rps(fc.expected_now_rps)})"
        if jumps is None:
            jumps = jumps_last(observation.history, s)
        extrapolation = s.surge_extrapolation
        if jumps.lasting:  # jumps last here: the rise goes on until a launch is ready
            extrapolation = s.launch_minutes + 1 if s.lasting_surge_extrapolation is None else s.lasting_surge_extrapolation
        if rise > 0 and extrapolation > 0:
            sized = persisting + extrapolation * rise
            surge += (f" and rising {rps(rise)} req/s a minute (sized for {rps(sized)}: {extrapolation:g} min of the "
                      f"rise, +{margin:.0%})")
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
    now_demand = f"demand now {rps(newest)} req/s{discounted}"

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
