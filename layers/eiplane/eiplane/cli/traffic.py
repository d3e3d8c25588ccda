"""An open-loop HTTP client for the demo and `eiplane invoke`: requests go out at their scheduled
times whether or not earlier ones have been answered (as independent users send them), so a slow
or failing fleet shows as latency and errors instead of a client that politely slows down.

Each request is recorded with its send time, latency, status and the minute it belongs to.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    minute: int
    sent_at: float  # time.monotonic()
    latency_ms: float
    status: int  # 0: no HTTP answer (connection refused, reset, timed out)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Traffic:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def of_minutes(self, minutes: set[int]) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.minute in minutes]


def post(url: str, body: bytes, timeout_s: float = DEFAULT_TIMEOUT_S,
         connection: http.client.HTTPConnection | None = None) -> tuple[int, bytes, float]:
    """One POST /invocations: (status, body, latency in ms); raises OSError when no answer comes."""
    parts = urlsplit(url)
    own = connection is None
    conn = connection or http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s)
    started = time.perf_counter()
    try:
        conn.request("POST", (parts.path.rstrip("/") or "") + "/invocations", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        return response.status, payload, (time.perf_counter() - started) * 1000
    finally:
        if own:
            conn.close()


class OpenLoopClient:
    """Sends requests at scheduled times from a pool of workers, each with its own keep-alive
    connection; `send_minute` schedules one minute's requests (Poisson arrivals over `seconds`)."""

    def __init__(self, url: str, body: bytes, workers: int = 48, seed: int = 7) -> None:
        self.url, self.body = url, body
        self.traffic = Traffic()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-client")
        self._local = threading.local()
        self._rng = random.Random(seed)  # noqa: S311 - arrival times, not security

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            parts = urlsplit(self.url)
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=DEFAULT_TIMEOUT_S)
            self._local.conn = conn
        return conn

    def _one(self, minute: int) -> None:
        sent = time.monotonic()
        try:
            status, _, latency = post(self.url, self.body, connection=self._connection())
            self.traffic.add(Outcome(minute, sent, latency, status))
        except (OSError, http.client.HTTPException) as exc:
            self._local.conn = None  # a broken keep-alive connection: the next request opens another
            self.traffic.add(Outcome(minute, sent, (time.monotonic() - sent) * 1000, 0, f"{type(exc).__name__}: {exc}"))

    def send_minute(self, minute: int, count: int, seconds: float) -> list[Future[None]]:
        """Schedule `count` requests over `seconds` (Poisson arrivals, the gaps scaled to fit);
        returns at once, with the futures of the requests (done when each is answered)."""
        gaps = [self._rng.expovariate(1.0) for _ in range(count)]
        scale = seconds / sum(gaps) if gaps and sum(gaps) > 0 else 0.0
        start, futures, offset = time.monotonic(), [], 0.0
        for gap in gaps:
            offset += gap * scale
            delay = start + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # open loop: the schedule, not the answers, decides when to send
            futures.append(self._pool.submit(self._one, minute))
        return futures


@contextlib.contextmanager
def steady_traffic(url: str, body: bytes, per_second: int = 40, deadline_s: float = 120.0) -> Iterator[Traffic]:
    """Requests at `per_second` (open loop, in quarter-second batches) through `url` for as long as the
    block runs, and until one more batch has been answered after it: what happened while it ran (a
    rollout, a scale-in) is between answered requests on both sides. Yields the Traffic they end up in."""
    client = OpenLoopClient(url, body, workers=16)
    stop = threading.Event()
    answered = threading.Semaphore(0)  # released as each batch has been answered

    def steady() -> None:
        batch = 0
        while not stop.is_set():
            for future in client.send_minute(batch, max(1, per_second // 4), 0.25):
                future.result()
            answered.release()
            batch += 1

    sender = threading.Thread(target=steady, name="steady-traffic")
    sender.start()
    try:
        if not answered.acquire(timeout=deadline_s):
            raise TimeoutError(f"no request to {url} was answered within {deadline_s:g} s")
        yield client.traffic
        while answered.acquire(blocking=False):
            pass  # batches answered while the block ran
        if not answered.acquire(timeout=deadline_s):
            raise TimeoutError(f"no request to {url} was answered after the block ended")
    finally:
        stop.set()
        sender.join()
        client.close()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]  # nearest rank
