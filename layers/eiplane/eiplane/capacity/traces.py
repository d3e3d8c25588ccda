"""The capacity benchmark's demand traces: per-minute requests/s, generated from fixed seeds.

Sized for `CAPACITY_RPS` = 100 requests/s per instance, so that fleets span roughly 5 to 40
instances. Every trace starts on a Monday at 00:00 and carries two kinds of noise on top of
its shape: a slow one (an AR(1) process in log space, about 30 minutes of memory, what a
forecast cannot know in advance) and an independent one per minute. Generation uses
`random.Random(seed)` only (its stream is fixed across Python versions), so a seed gives the
same trace everywhere.

- diurnal: 7 days, peak about 4x the trough (trough ~900, peak ~3,600 requests/s).
- flash_crowd: 2 days of a milder daily cycle (~450 to ~1,000 requests/s) with sudden spikes:
  demand jumps 2-5x within one or two minutes, holds for 20-60 minutes, then decays.
- weekly: 14 days, weekdays ~750 to ~3,000 requests/s, weekends ~40% lower, 1% growth a day.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

CAPACITY_RPS = 100.0
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Spike:
    start: int  # minute
    factor: float  # peak demand over the demand just before
    rise: int  # minutes to the peak
    hold: int  # minutes at the peak
    decay: float  # e-folding minutes afterwards


def daily_shape(minute_of_day: float) -> float:
    """0 at the 04:00 trough, 1 at the 15:00-17:00 peak; a steeper morning and a slower evening."""
    phase = 2 * math.pi * (minute_of_day / MINUTES_PER_DAY - 4 / 24)
    raw = 0.5 - 0.5 * math.cos(phase) - 0.12 * math.sin(2 * phase) * (0.5 - 0.5 * math.cos(phase))
    return min(1.0, max(0.0, raw / 1.04))


def log_noise(rng: random.Random, minutes: int, slow_sd: float, memory: float, fast: Callable[[], float]) -> list[float]:
    """Multiplicative noise, exp(slow + fast()) per minute: `slow` an AR(1) in log space (sd `slow_sd`, `memory` minutes
    of memory: what no forecast knows in advance), `fast()` the minute's own (drawn after the slow step)."""
    phi = math.exp(-1.0 / memory)
    innovation = slow_sd * math.sqrt(1 - phi * phi)
    slow = rng.gauss(0.0, slow_sd)
    out = []
    for _ in range(minutes):
        slow = phi * slow + rng.gauss(0.0, innovation)
        out.append(math.exp(slow + fast()))
    return out


def _noise(rng: random.Random, minutes: int, slow_sd: float, fast_sd: float, memory: float = 30.0) -> list[float]:
    """Multiplicative noise: exp(slow AR(1) + independent), both zero-median in log space."""
    return log_noise(rng, minutes, slow_sd, memory, lambda: rng.gauss(0.0, fast_sd))


def _cycle(rng: random.Random, days: int, trough: float, peak: float, day_factor: Callable[[int], float]) -> list[float]:
    """A daily cycle between trough and peak, each day's amplitude jittered by +/-5% and scaled by day_factor(minute)."""
    amplitude = [rng.uniform(0.95, 1.05) for _ in range(days + 1)]
    out = []
    for minute in range(days * MINUTES_PER_DAY):
        day, within = divmod(minute, MINUTES_PER_DAY)
        # blend the jitter of consecutive days across the night so the cycle has no step at midnight
        blend = amplitude[day] + (amplitude[day + 1] - amplitude[day]) * max(0.0, (within - 1200) / 240)
        level = trough + (peak - trough) * daily_shape(within) * blend
        out.append(level * day_factor(minute))
    return out


def diurnal(seed: int = 1, days: int = 7) -> list[float]:
    rng = random.Random(seed)  # noqa: S311 - reproducible traces, not secrets
    base = _cycle(rng, days, 900.0, 3600.0, lambda minute: 1.0)
    noise = _noise(rng, len(base), slow_sd=0.03, fast_sd=0.02)
    return [round(b * n, 3) for b, n in zip(base, noise, strict=True)]


def flash_spikes(rng: random.Random, days: int, per_day: float = 1.5) -> list[Spike]:
    """Spike onsets spread over the days (at least 3 hours apart), each 2-5x."""
    count = max(1, round(days * per_day))
    total = days * MINUTES_PER_DAY
    spikes: list[Spike] = []
    while len(spikes) < count:
        start = rng.randrange(180, total - 180)
        if all(abs(start - s.start) >= 180 for s in spikes):
            spikes.append(Spike(start=start, factor=rng.uniform(2.0, 5.0), rise=rng.choice((1, 2)),
                                hold=rng.randrange(20, 61), decay=rng.uniform(10.0, 30.0)))
    return sorted(spikes, key=lambda s: s.start)


def spike_multiplier(spikes: list[Spike], minute: int) -> float:
    factor = 1.0
    for s in spikes:
        since = minute - s.start
        if since < 0:
            continue
        if since < s.rise:
            factor = max(factor, 1 + (s.factor - 1) * (since + 1) / (s.rise + 1))
        elif since < s.rise + s.hold:
            factor = max(factor, s.factor)
        else:
            factor = max(factor, 1 + (s.factor - 1) * math.exp(-(since - s.rise - s.hold) / s.decay))
    return factor


def flash_crowd(seed: int = 2, days: int = 2) -> list[float]:
    rng = random.Random(seed)  # noqa: S311 - reproducible traces, not secrets
    base = _cycle(rng, days, 450.0, 1000.0, lambda minute: 1.0)
    spikes = flash_spikes(rng, days)
    noise = _noise(rng, len(base), slow_sd=0.03, fast_sd=0.02)
    return [round(b * spike_multiplier(spikes, m) * n, 3) for m, (b, n) in enumerate(zip(base, noise, strict=True))]


def weekend_factor(minute: int, weekend: float = 0.6) -> float:
    """1 on weekdays, `weekend` on Saturday and Sunday (Monday 00:00 = minute 0), eased over 4 hours around midnight."""
    def raw(day: int) -> float:
        return weekend if day % 7 in (5, 6) else 1.0

    day, within = divmod(minute, MINUTES_PER_DAY)
    if within >= 1320:  # 22:00 -> 02:00 next day: ease towards tomorrow's factor
        w = (within - 1320) / 240
        return raw(day) + (raw(day + 1) - raw(day)) * w
    if within < 120:
        w = (within + 120) / 240
        return raw(day - 1) + (raw(day) - raw(day - 1)) * w
    return raw(day)


def weekly(seed: int = 3, days: int = 14, growth_per_day: float = 0.01) -> list[float]:
    rng = random.Random(seed)  # noqa: S311 - reproducible traces, not secrets
    base = _cycle(rng, days, 750.0, 3000.0,
                  lambda minute: weekend_factor(minute) * (1 + growth_per_day) ** (minute / MINUTES_PER_DAY))
    noise = _noise(rng, len(base), slow_sd=0.03, fast_sd=0.02)
    return [round(b * n, 3) for b, n in zip(base, noise, strict=True)]


TRACES: dict[str, Callable[[], list[float]]] = {"diurnal": diurnal, "flash_crowd": flash_crowd, "weekly": weekly}


def benchmark_traces() -> dict[str, list[float]]:
    return {name: make() for name, make in TRACES.items()}
