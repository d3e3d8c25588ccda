"""The capacity evaluation's demand: broad, parameterised families of traces, split once into dev and test.

A family is a generator `(seed) -> Trace`: per-minute requests/s (100 requests/s per instance,
`CAPACITY_RPS`), every trace starting on a Monday at 00:00, and the parameters it drew, recorded
for the report. Each draws everything from one `random.Random` seeded with the string
"eiplane-capacity/<family>/<seed>" (string seeds hash with SHA-512: the same stream on every
Python version and platform), using only `random()`, `gauss()`, `gammavariate()` and
`randrange()`; no numpy.

What every family shares:

- A daily shape between a trough and a peak, one of four kinds, its phase (where in the day it
  sits) uniform over the 24 hours:
  single (one smooth peak, the rise taking 30-70% of the day, sharpened by an exponent 1-3),
  double (two bumps 4-10 h apart, the second 0.4-1x the first, each 1-4 h wide),
  plateau (cosine ramps of 60-240 min up and down around a 4-12 h plateau),
  sharp (linear ramps of 10-45 min around a 2-10 h plateau).
- Day-to-day amplitude jitter (a per-day factor, sd 2-6%, interpolated between days).
- Noise, multiplicative: a slow AR(1) in log space (sd 1-8%, memory 15-120 min: what no
  forecast knows in advance) and an independent one per minute (sd 1-4%).
- Arrivals: the minute's count of requests is Poisson(rate x 60), and demand = count / 60. At
  hundreds of instances this adds almost nothing; at one instance it is the noise that matters.

The families (volumes in instances at 100 requests/s; "log-uniform" = uniform in log space):

- periodic-daily (21 days): the daily cycle alone. Peak 3-300 instances (log-uniform),
  peak-to-trough 1.5-20x (log-uniform), any of the four shapes, no weekly pattern.
- periodic-weekly (28 days): a daily cycle (peak 3-300 instances, peak-to-trough 1.5-10x) times
  a weekly one: weekends at 0.3-1.3x the weekdays (eased over 4 h around midnight), 0-2
  holidays (a weekday from day 7 on at the weekend's level), and a trend of -1% to +2% a day.
- regime-shift (28 days): a daily cycle (peak 3-200 instances, peak-to-trough 1.5-8x), weekends
  at 0.5-1.1x, and 1-3 persistent level changes of +-20-60% (each at a day from 5 on, at least
  2 days apart, in a transition of 1 min to 24 h, log-uniform), and with probability 1/2 a
  growth or decline phase of 3-10 days at +-2-6% a day. The cumulative level stays in 0.25-4x.
- flash-crowd (21 days): a daily cycle (peak 3-60 instances, peak-to-trough 1.5-6x), weekends
  at 0.6-1.0x, and flash crowds at 0.5-3 a day (onsets uniform, at least 60 min apart): each
  multiplies demand by 1.5-10x (log-uniform), reached over a ramp of 1-30 min, held for 5 min to
  3 h (both log-uniform), then decaying with an e-folding time of 5-60 min.
- low-volume (21 days): a daily cycle peaking at 80-280 requests/s (1-3 instances, log-uniform;
  with noise the busiest minute may need 4), peak-to-trough 1.5-20x, weekends at 0.5-1.0x, little slow noise (sd 1-4%):
  Poisson arrivals are most of the noise.
- bursty (21 days): a daily cycle (peak 3-150 instances, peak-to-trough 1.5-6x), heavy-tailed
  minute noise (Student-t in log space, 2.5-5 degrees of freedom, scale 3-10%, cut at +-1.5),
  and short bursts at 4-30 a day: each 1 + a Pareto(alpha 1.3-2.5) x 0.1-0.4 (at most 4x), for
  1-20 min (log-uniform), up within 0-2 min.

The split (fixed once; never change it): per family, the development set is seeds 1-8 and the
test set seeds 1001-1008 (8 traces each); seeds 9-1000 are free for a larger development set,
which stays disjoint from the test set. The development set also holds the three traces the
policy was developed on (`eiplane.capacity.traces`: diurnal, flash_crowd, weekly, ids
"legacy/<name>", in periodic-daily, flash-crowd and periodic-weekly). Tune on "dev" only;
report on "test" only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eiplane.capacity import traces as legacy
from eiplane.capacity.traces import CAPACITY_RPS, Spike, log_noise

MINUTES_PER_DAY = 1440
SHAPES = ("single", "double", "plateau", "sharp")
DEV_SEEDS = range(1, 9)
TEST_SEEDS = range(1001, 1009)
SETS = ("dev", "test")
LEGACY_FAMILY = {"diurnal": "periodic-daily", "flash_crowd": "flash-crowd", "weekly": "periodic-weekly"}


@dataclass
class Trace:
    id: str  # "<family>/<seed>", or "legacy/<name>" for the three traces of eiplane.capacity.traces
    family: str
    seed: int
    demand: list[float] = field(repr=False)  # requests/s, one value per minute
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def minutes(self) -> int:
        return len(self.demand)

    @property
    def peak_instances(self) -> int:
        return math.ceil(max(self.demand) / CAPACITY_RPS - 1e-9)


# --- drawing ---------------------------------------------------------------------------------


def _rng(family: str, seed: int) -> random.Random:
    return random.Random(f"eiplane-capacity/{family}/{seed}")  # noqa: S311 - reproducible traces, not secrets


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _round(value: Any) -> Any:
    """Parameters for the JSON report: floats to 4 significant decimals, recursively."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) draw from rng.random() alone: multiplication below 10, else Hoermann's PTRS (exact)."""
    if lam <= 0:
        return 0
    if lam < 10:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    slam, loglam = math.sqrt(lam), math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + lam + 0.43) if us > 0 else -1
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b) <= -lam + k * loglam - math.lgamma(k + 1):
            return k


# --- building blocks -------------------------------------------------------------------------


def draw_shape(rng: random.Random, kind: str | None = None) -> dict[str, Any]:
    """The parameters of a daily shape (see the module doc); kind drawn among SHAPES unless given."""
    kind = kind or SHAPES[rng.randrange(len(SHAPES))]
    phase = rng.uniform(0, MINUTES_PER_DAY)
    if kind == "single":
        return {"kind": kind, "phase_minute": phase, "rise_fraction": rng.uniform(0.3, 0.7), "sharpness": rng.uniform(1, 3)}
    if kind == "double":
        return {"kind": kind, "phase_minute": phase, "gap_minutes": rng.uniform(240, 600), "second_height": rng.uniform(0.4, 1),
                "widths_minutes": [rng.uniform(60, 240), rng.uniform(60, 240)]}
    if kind == "plateau":
        return {"kind": kind, "phase_minute": phase, "ramp_up_minutes": rng.uniform(60, 240),
                "hold_minutes": rng.uniform(240, 720), "ramp_down_minutes": rng.uniform(60, 240)}
    if kind == "sharp":
        return {"kind": kind, "phase_minute": phase, "ramp_up_minutes": rng.uniform(10, 45),
                "hold_minutes": rng.uniform(120, 600), "ramp_down_minutes": rng.uniform(10, 45)}
    raise ValueError(f"unknown daily shape {kind!r}: one of {SHAPES}")


def shape_function(shape: dict[str, Any]) -> Callable[[int], float]:
    """minute of the day (0-1439) -> 0 (the day's trough) .. 1 (its peak): the shape, rescaled to span exactly 0-1."""
    raw = _raw_shape(shape)
    table = [raw(m) for m in range(MINUTES_PER_DAY)]
    lo, hi = min(table), max(table)
    scaled = [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in table]
    return lambda minute: scaled[minute % MINUTES_PER_DAY]


def _raw_shape(shape: dict[str, Any]) -> Callable[[float], float]:
    kind, phase = shape["kind"], shape["phase_minute"]

    def since(x: float, origin: float) -> float:
        return (x - origin) % MINUTES_PER_DAY

    if kind == "single":
        rise, sharpness = shape["rise_fraction"] * MINUTES_PER_DAY, shape["sharpness"]

        def single(x: float) -> float:
            s = since(x, phase - rise)  # 0 at the trough, `rise` at the peak (phase)
            angle = math.pi * s / rise if s < rise else math.pi + math.pi * (s - rise) / (MINUTES_PER_DAY - rise)
            return float((0.5 - 0.5 * math.cos(angle)) ** sharpness)

        return single
    if kind == "double":
        gap, height = shape["gap_minutes"], shape["second_height"]
        w1, w2 = shape["widths_minutes"]

        def double(x: float) -> float:
            d1 = min(since(x, phase), since(phase, x))
            d2 = min(since(x, phase + gap), since(phase + gap, x))
            return max(math.exp(-0.5 * (d1 / w1) ** 2), height * math.exp(-0.5 * (d2 / w2) ** 2))

        return double
    up, hold, down = shape["ramp_up_minutes"], shape["hold_minutes"], shape["ramp_down_minutes"]
    eased = kind == "plateau"

    def ramp(fraction: float) -> float:
        return 0.5 - 0.5 * math.cos(math.pi * fraction) if eased else fraction

    def plateau(x: float) -> float:
        s = since(x, phase)  # the ramp up starts at phase
        if s < up:
            return ramp(s / up)
        if s < up + hold:
            return 1.0
        if s < up + hold + down:
            return 1.0 - ramp((s - up - hold) / down)
        return 0.0

    return plateau


def week_factor(minute: int, weekend: float, holidays: Sequence[int] = ()) -> float:
    """1 on weekdays, `weekend` on Saturdays, Sundays and holidays (day numbers, Monday 00:00 = minute 0), eased over
    4 hours around midnight."""
    def raw(day: int) -> float:
        return weekend if day % 7 in (5, 6) or day in holidays else 1.0

    day, within = divmod(minute, MINUTES_PER_DAY)
    if within >= 1320:
        return raw(day) + (raw(day + 1) - raw(day)) * (within - 1320) / 240
    if within < 120:
        return raw(day - 1) + (raw(day) - raw(day - 1)) * (within + 120) / 240
    return raw(day)


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def _day_jitter(rng: random.Random, days: int, sd: float) -> Callable[[int], float]:
    """A factor per day (around 1, sd `sd`, within 0.8-1.2), linear between the days' middles: no step at midnight."""
    factors = [min(1.2, max(0.8, rng.gauss(1.0, sd))) for _ in range(days + 1)]

    def jitter(minute: int) -> float:
        position = minute / MINUTES_PER_DAY - 0.5
        day = max(0, min(days - 1, math.floor(position)))
        w = min(1.0, max(0.0, position - day))
        return factors[day] + (factors[day + 1] - factors[day]) * w

    return jitter


def _draw_noise(rng: random.Random, slow: tuple[float, float] = (0.01, 0.08), fast: tuple[float, float] = (0.01, 0.04)
                ) -> dict[str, float]:
    return {"slow_sd": rng.uniform(*slow), "memory_minutes": rng.uniform(15, 120), "fast_sd": rng.uniform(*fast)}


def _finish(rng: random.Random, rate: Sequence[float], noise: dict[str, Any]) -> list[float]:
    """Noise, then Poisson arrivals: count ~ Poisson(rate x 60) per minute, demand = count / 60."""
    if "t_dof" in noise:
        dof, scale = noise["t_dof"], noise["t_scale"]

        def fast() -> float:
            draw = rng.gauss(0.0, scale) / math.sqrt(rng.gammavariate(dof / 2, 2.0) / dof)
            return min(1.5, max(-1.5, draw))
    else:
        sd = noise["fast_sd"]

        def fast() -> float:
            return rng.gauss(0.0, sd)

    factors = log_noise(rng, len(rate), noise["slow_sd"], noise["memory_minutes"], fast)
    return [round(poisson(rng, r * f * 60) / 60, 3) for r, f in zip(rate, factors, strict=True)]


def _cycle(rng: random.Random, days: int, peak_rps: float, ratio: float, shape: dict[str, Any], jitter_sd: float,
           factor: Callable[[int], float]) -> list[float]:
    """trough + (peak - trough) x shape, times the day's jitter and factor(minute)."""
    trough = peak_rps / ratio
    level = shape_function(shape)
    jitter = _day_jitter(rng, days, jitter_sd)
    return [(trough + (peak_rps - trough) * level(m % MINUTES_PER_DAY)) * jitter(m) * factor(m)
            for m in range(days * MINUTES_PER_DAY)]


def _daily_params(rng: random.Random, peak: tuple[float, float], ratio: tuple[float, float], *,
                  peak_in_rps: bool = False) -> dict[str, Any]:
    peak_value = _log_uniform(rng, *peak)
    return {"base_peak_rps": peak_value if peak_in_rps else peak_value * CAPACITY_RPS,
            "peak_to_trough": _log_uniform(rng, *ratio), "shape": draw_shape(rng), "day_jitter_sd": rng.uniform(0.02, 0.06)}


def _make(family: str, seed: int, days: int, params: dict[str, Any], demand: list[float]) -> Trace:
    return Trace(id=f"{family}/{seed}", family=family, seed=seed, demand=demand,
                 params=_round({"family": family, "seed": seed, "days": days, **params}))


# --- the families ----------------------------------------------------------------------------


def periodic_daily(seed: int) -> Trace:
    family, days = "periodic-daily", 21
    rng = _rng(family, seed)
    p = _daily_params(rng, (3, 300), (1.5, 20))
    p["noise"] = _draw_noise(rng)
    rate = _cycle(rng, days, p["base_peak_rps"], p["peak_to_trough"], p["shape"], p["day_jitter_sd"], lambda m: 1.0)
    return _make(family, seed, days, p, _finish(rng, rate, p["noise"]))


def periodic_weekly(seed: int) -> Trace:
    family, days = "periodic-weekly", 28
    rng = _rng(family, seed)
    p = _daily_params(rng, (3, 300), (1.5, 10))
    p["weekend_factor"] = rng.uniform(0.3, 1.3)
    weekdays = [d for d in range(7, days) if d % 7 < 5]
    count = rng.randrange(3)
    holidays: list[int] = []
    while len(holidays) < count:
        day = weekdays[rng.randrange(len(weekdays))]
        if day not in holidays:
            holidays.append(day)
    p["holidays"] = sorted(holidays)
    p["trend_per_day"] = rng.uniform(-0.01, 0.02)
    p["noise"] = _draw_noise(rng)
    weekend, trend = p["weekend_factor"], p["trend_per_day"]

    def factor(m: int) -> float:
        return week_factor(m, weekend, holidays) * (1 + trend) ** (m / MINUTES_PER_DAY)

    rate = _cycle(rng, days, p["base_peak_rps"], p["peak_to_trough"], p["shape"], p["day_jitter_sd"], factor)
    return _make(family, seed, days, p, _finish(rng, rate, p["noise"]))


def regime_shift(seed: int) -> Trace:
    family, days = "regime-shift", 28
    rng = _rng(family, seed)
    p = _daily_params(rng, (3, 200), (1.5, 8))
    p["weekend_factor"] = rng.uniform(0.5, 1.1)
    shifts: list[dict[str, float]] = []
    count = 1 + rng.randrange(3)
    while len(shifts) < count:
        start = rng.uniform(5 * MINUTES_PER_DAY, (days - 1) * MINUTES_PER_DAY)
        if all(abs(start - s["start_minute"]) >= 2 * MINUTES_PER_DAY for s in shifts):
            size = rng.uniform(0.2, 0.6)
            shifts.append({"start_minute": start, "factor": 1 + size if rng.random() < 0.5 else 1 - size,
                           "transition_minutes": _log_uniform(rng, 1, MINUTES_PER_DAY)})
    shifts.sort(key=lambda s: s["start_minute"])
    p["shifts"] = shifts
    growth: dict[str, float] | None = None
    if rng.random() < 0.5:
        length = rng.uniform(3, 10)
        start_day = rng.uniform(3, days - length)
        rate_per_day = rng.uniform(0.02, 0.06) * (1 if rng.random() < 0.5 else -1)
        growth = {"start_day": start_day, "days": length, "rate_per_day": rate_per_day}
    p["growth"] = growth
    p["noise"] = _draw_noise(rng)
    weekend = p["weekend_factor"]

    def level(m: int) -> float:
        out = 1.0
        for s in shifts:
            out *= 1 + (s["factor"] - 1) * _smoothstep((m - s["start_minute"]) / s["transition_minutes"])
        if growth is not None:
            elapsed = min(growth["days"], max(0.0, m / MINUTES_PER_DAY - growth["start_day"]))
            out *= (1 + growth["rate_per_day"]) ** elapsed
        return min(4.0, max(0.25, out)) * week_factor(m, weekend)

    rate = _cycle(rng, days, p["base_peak_rps"], p["peak_to_trough"], p["shape"], p["day_jitter_sd"], level)
    return _make(family, seed, days, p, _finish(rng, rate, p["noise"]))


def _flash_spikes(rng: random.Random, days: int, per_day: float) -> list[Spike]:
    total = days * MINUTES_PER_DAY
    count = max(1, round(days * per_day))
    spikes: list[Spike] = []
    while len(spikes) < count:
        start = rng.randrange(60, total - 60)
        if all(abs(start - s.start) >= 60 for s in spikes):
            spikes.append(Spike(start=start, factor=_log_uniform(rng, 1.5, 10), rise=round(_log_uniform(rng, 1, 30)),
                                hold=round(_log_uniform(rng, 5, 180)), decay=rng.uniform(5, 60)))
    return sorted(spikes, key=lambda s: s.start)


def spike_factors(spikes: Sequence[Spike], minutes: int) -> list[float]:
    """traces.spike_multiplier for every minute (the largest of the spikes' factors), each spike's decay cut where it
    is below 1e-9 of its size."""
    out = [1.0] * minutes
    for s in spikes:
        end = min(minutes, s.start + s.rise + s.hold + math.ceil(21 * s.decay))
        for m in range(max(0, s.start), end):
            since = m - s.start
            if since < s.rise:
                f = 1 + (s.factor - 1) * (since + 1) / (s.rise + 1)
            elif since < s.rise + s.hold:
                f = s.factor
            else:
                f = 1 + (s.factor - 1) * math.exp(-(since - s.rise - s.hold) / s.decay)
            out[m] = max(out[m], f)
    return out


def flash_crowd(seed: int) -> Trace:
    family, days = "flash-crowd", 21
    rng = _rng(family, seed)
    p = _daily_params(rng, (3, 60), (1.5, 6))
    p["weekend_factor"] = rng.uniform(0.6, 1.0)
    p["spikes_per_day"] = rng.uniform(0.5, 3)
    spikes = _flash_spikes(rng, days, p["spikes_per_day"])
    p["spikes"] = [{"start_minute": s.start, "factor": s.factor, "ramp_minutes": s.rise, "hold_minutes": s.hold,
                    "decay_minutes": s.decay} for s in spikes]
    p["largest_spike_factor"] = max(s.factor for s in spikes)
    p["noise"] = _draw_noise(rng)
    weekend = p["weekend_factor"]
    rate = _cycle(rng, days, p["base_peak_rps"], p["peak_to_trough"], p["shape"], p["day_jitter_sd"],
                  lambda m: week_factor(m, weekend))
    rate = [r * f for r, f in zip(rate, spike_factors(spikes, len(rate)), strict=True)]
    return _make(family, seed, days, p, _finish(rng, rate, p["noise"]))


def low_volume(seed: int) -> Trace:
    family, days = "low-volume", 21
    rng = _rng(family, seed)
    p = _daily_params(rng, (80, 280), (1.5, 20), peak_in_rps=True)
    p["weekend_factor"] = rng.uniform(0.5, 1.0)
    p["noise"] = _draw_noise(rng, slow=(0.01, 0.04), fast=(0.0, 0.02))
    weekend = p["weekend_factor"]
    rate = _cycle(rng, days, p["base_peak_rps"], p["peak_to_trough"], p["shape"], p["day_jitter_sd"],
                  lambda m: week_factor(m, weekend))
    return _make(family, seed, days, p, _finish(rng, rate, p["noise"]))


def bursty(seed: int) -> Trace:
    family, days = "bursty", 21
    rng = _rng(family, seed)
    p = _daily_params(rng, (3, 150), (1.5, 6))
    p["bursts_per_day"] = rng.uniform(4, 30)
    p["burst_alpha"] = rng.uniform(1.3, 2.5)
    p["burst_scale"] = rng.uniform(0.1, 0.4)
    total = days * MINUTES_PER_DAY
    bursts = []
    for _ in range(round(days * p["bursts_per_day"])):
        size = min(4.0, 1 + p["burst_scale"] * rng.paretovariate(p["burst_alpha"]))
        bursts.append((rng.randrange(total), size, round(_log_uniform(rng, 1, 20)), rng.randrange(3)))
    bursts.sort()
    p["bursts"] = len(bursts)
    p["largest_burst_factor"] = max(b[1] for b in bursts)
    p["noise"] = {"slow_sd": rng.uniform(0.01, 0.08), "memory_minutes": rng.uniform(15, 120), "t_dof": rng.uniform(2.5, 5),
                  "t_scale": rng.uniform(0.03, 0.1)}
    burst = [1.0] * total
    for start, size, length, rise in bursts:
        for m in range(start, min(total, start + length)):
            burst[m] = max(burst[m], 1 + (size - 1) * min(1.0, (m - start + 1) / (rise + 1)))
    rate = _cycle(rng, days, p["base_peak_rps"], p["peak_to_trough"], p["shape"], p["day_jitter_sd"], lambda m: 1.0)
    rate = [r * b for r, b in zip(rate, burst, strict=True)]
    return _make(family, seed, days, p, _finish(rng, rate, p["noise"]))


@dataclass(frozen=True)
class Family:
    name: str
    generate: Callable[[int], Trace]
    days: int
    summary: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("periodic-daily", periodic_daily, 21, "daily cycle of four shapes, peak 3-300 instances, peak/trough 1.5-20x"),
    Family("periodic-weekly", periodic_weekly, 28, "daily x weekly (weekends 0.3-1.3x, 0-2 holidays), trend -1..+2%/day"),
    Family("regime-shift", regime_shift, 28, "1-3 persistent level changes of +-20-60%, growth/decline phases"),
    Family("flash-crowd", flash_crowd, 21, "0.5-3 flash crowds a day, 1.5-10x, ramp 1-30 min, held 5 min-3 h"),
    Family("low-volume", low_volume, 21, "peaks of 1-3 instances, Poisson arrivals"),
    Family("bursty", bursty, 21, "heavy-tailed minute noise and 4-30 short bursts a day (Pareto sizes)"),
)}
PERIODIC_FAMILIES = ("periodic-daily", "periodic-weekly")


def seeds(which: str) -> range:
    if which not in SETS:
        raise ValueError(f"the set is one of {SETS}, got {which!r}")
    return DEV_SEEDS if which == "dev" else TEST_SEEDS


def legacy_traces() -> list[Trace]:
    """The three traces the policy was developed on (in the development set only)."""
    return [make_trace(f"legacy/{name}") for name in legacy.TRACES]


def make_trace(trace_id: str) -> Trace:
    """A trace by its id: "<family>/<seed>" or "legacy/<name>"."""
    family, _, key = trace_id.partition("/")
    if family == "legacy" and key in legacy.TRACES:
        demand = legacy.TRACES[key]()
        return Trace(id=trace_id, family=LEGACY_FAMILY[key], seed=0, demand=demand,
                     params={"family": LEGACY_FAMILY[key], "source": f"eiplane.capacity.traces.{key}",
                             "days": len(demand) // MINUTES_PER_DAY})
    if family not in FAMILIES or not key.isdigit():
        raise ValueError(f"unknown trace {trace_id!r}: <family>/<seed> with a family of {list(FAMILIES)}, or "
                         f"legacy/<one of {list(legacy.TRACES)}>")
    return FAMILIES[family].generate(int(key))


def trace_ids(which: str, families: Sequence[str] | None = None, limit: int | None = None) -> list[str]:
    """The ids of the development ("dev") or test ("test") set, family by family in FAMILIES' order (dev: the legacy
    traces first in their families). `families` picks some; `limit` keeps the first `limit` of each family (for quick
    checks only, never for figures)."""
    chosen = list(FAMILIES) if families is None else list(families)
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}: known are {list(FAMILIES)}")
    out: list[str] = []
    for name in chosen:
        ids = [f"legacy/{key}" for key, fam in LEGACY_FAMILY.items() if fam == name] if which == "dev" else []
        ids += [f"{name}/{seed}" for seed in seeds(which)]
        out += ids[:limit] if limit is not None else ids
    return out


def evaluation_set(which: str, families: Sequence[str] | None = None, limit: int | None = None,
                   max_minutes: int | None = None) -> list[Trace]:
    """The traces of `trace_ids(which, families, limit)`; `max_minutes` cuts each short (quick checks only)."""
    out = [make_trace(i) for i in trace_ids(which, families, limit)]
    if max_minutes is not None:
        for t in out:
            t.demand = t.demand[:max_minutes]
    return out
