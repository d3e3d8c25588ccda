#!/usr/bin/env python3
"""eiplane model server: serves a verified model artifact over HTTP on a fleet's instance.

Shipped beside eiplane_agent.py (whose digest checks, loader and device handling it reuses) and run
with the image's Python (3.8+) and torch, plus uvicorn and starlette from the hash-pinned wheels of
server-requirements.txt, unzipped onto PYTHONPATH (eiplane.agent.INSTALL_SNIPPET). No boto3: metrics
go out through the AWS CLI.

    python3 model_server.py serve --artifact DIR --manifest-sha256 HEX --device {cuda,neuron,eia,cpu}
        [--format torchscript|torch_export] [--precision fp32|fp16|bf16] [--host 0.0.0.0] [--port 8080]
        [--max-batch-size N] [--max-queue-delay-ms 5] [--max-queue 64]
        [--fleet NAME --instance-id ID --region R] [--metrics {cloudwatch,off}] [--metrics-interval-s 60]
        [--metrics-client auto|boto3|aws-cli]
    python3 model_server.py loadtest --url http://127.0.0.1:8080 --artifact DIR --latency-objective-ms X
        [--step-seconds 2] [--max-seconds 30] [--out result.json]

SageMaker's container contract: GET /ping is 200 (empty body) only once the model is loaded and
warmed up, 503 before and from SIGTERM on; POST /invocations takes {"inputs": [...]} (one nested
list with a leading batch dimension, or a list of them for a model with several inputs) and answers
{"outputs": [...]}. A body that does not fit is 400 {"error": why}; a full queue is 503 at once.
Environment: EIPLANE_AGENT_DEVICE overrides --device (as for the agent), EIPLANE_SERVER_BIND=host:port
overrides --host/--port, EIPLANE_CLOCK_FILE names a file holding "now" (ISO 8601, UTC) for metrics.

Exit status: 0 after a graceful shutdown; 2 the artifact's digests do not check out (nothing is
loaded); 4 the model cannot be loaded or warmed up; 64 bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

if __package__:  # imported as eiplane.agent.model_server (tests, eiplane bench serving)
    from . import eiplane_agent as agent
else:  # run as a script from the instance's bundle directory, the agent beside it
    import eiplane_agent as agent  # type: ignore[no-redef]

if TYPE_CHECKING:  # annotations only: Python 3.8 at run time
    import torch
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    Json = dict[str, Any]

NAMESPACE = "eiplane/Inference"
BIND_ENV = "EIPLANE_SERVER_BIND"
CLOCK_ENV = "EIPLANE_CLOCK_FILE"
EXIT_OK, EXIT_DIGEST, EXIT_ERROR, EXIT_USAGE = 0, 2, 4, 64
WARMUP_PASSES = 3
# Above the ALB's default idle timeout (60 s): the balancer, not the target, must close an idle connection,
# or a request sent on a connection the target is closing fails with a 502.
KEEP_ALIVE_S = 75
# Bytes a request body may take per number it carries (generous: "-1.2345678901234567e-05, " is 25).
BODY_BYTES_PER_NUMBER = 64
LARGE_BODY = 1 << 18  # bodies above this are decoded in a thread, so that /ping stays answered meanwhile
CLOCK_POLL_S = 0.25
# A clock file (the embedded AWS's compressed clock) passes a minute in well under a second: read often, so
# that a minute's figures are out within a few tens of milliseconds of the clock leaving it.
CLOCK_FILE_POLL_S = 0.05
LATENCY_SAMPLES = 100_000  # per metrics interval; a reservoir beyond that keeps memory bounded
MAX_BACKFILL = 60  # idle intervals published as zeros after the clock jumped (PutMetricData: <= 1000 values a call)
DATUMS_PER_CALL = 1000


# --- logging ---------------------------------------------------------------------------------

_log_lock = threading.Lock()


def log(event: str, **fields: Any) -> None:
    """One JSON line on stderr per event (never one per request)."""
    line = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),  # noqa: UP017 - 3.8
                       "event": event, **fields}, default=str)
    with _log_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


# --- requests --------------------------------------------------------------------------------

class BadRequest(ValueError):
    """The request does not fit the model: 400, with this message as the reason."""


class QueueFull(Exception):
    pass


class ShuttingDown(Exception):
    pass


class InputSpec:
    __slots__ = ("dtype", "name", "row_shape")

    def __init__(self, name: str, dtype: str, row_shape: Sequence[int]) -> None:
        self.name, self.dtype, self.row_shape = name, dtype, tuple(int(d) for d in row_shape)

    @classmethod
    def from_manifest(cls, entry: Json) -> InputSpec:
        return cls(str(entry["name"]), str(entry.get("dtype", "float32")), entry["shape"][1:])

    def numbers_per_row(self) -> int:
        return math.prod(self.row_shape)

    def expected(self) -> str:
        return "[batch, " + ", ".join(str(d) for d in self.row_shape) + "]" if self.row_shape else "[batch]"


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_body(body: bytes, specs: Sequence[InputSpec], max_batch: int) -> tuple[list[torch.Tensor], int]:
    """The request's input tensors (one per spec, on the CPU) and its batch size; BadRequest says why not."""
    import torch

    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"the body is not JSON: {_first_line(exc)}") from None
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequest('expected a JSON object {"inputs": [...]}')
    raw = payload["inputs"]
    if len(specs) == 1:
        values = [raw]
    elif isinstance(raw, list) and len(raw) == len(specs):
        values = raw
    else:
        raise BadRequest(f"this model takes {len(specs)} inputs: send a list of {len(specs)} nested lists, one per input")
    tensors: list[torch.Tensor] = []
    rows = None
    for spec, value in zip(specs, values):  # noqa: B905 - lengths checked; strict= needs 3.10
        label = f"inputs[{spec.name}]" if len(specs) > 1 else "inputs"
        if isinstance(value, bool) or not isinstance(value, (list, int, float)):
            raise BadRequest(f"{label} must be a nested list of numbers, not {type(value).__name__}")
        try:
            tensor = torch.tensor(value, dtype=getattr(torch, spec.dtype))  # float32, float16 or bfloat16
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise BadRequest(f"{label} is not a nested list of numbers of one shape: {_first_line(exc)}") from None
        shape = tuple(tensor.shape)
        if len(shape) != len(spec.row_shape) + 1 or shape[1:] != spec.row_shape:
            raise BadRequest(f"{label} has shape {list(shape)}; expected {spec.expected()}")
        if shape[0] == 0:
            raise BadRequest(f"{label} holds no rows")
        if shape[0] > max_batch:
            raise BadRequest(f"{label} has {shape[0]} rows, more than this server's max batch size {max_batch}")
        if rows is not None and shape[0] != rows:
            raise BadRequest(f"the inputs have different batch sizes ({rows} and {shape[0]})")
        if not bool(torch.isfinite(tensor).all()):
            raise BadRequest(f"{label} holds a number out of range (Inf)")
        rows = shape[0]
        tensors.append(tensor)
    assert rows is not None
    return tensors, rows


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


# --- dynamic batching ------------------------------------------------------------------------

class _Pending:
    __slots__ = ("enqueued", "future", "payload", "rows")

    def __init__(self, payload: Any, rows: int) -> None:
        self.payload, self.rows = payload, rows
        self.future: Future[Any] = Future()
        self.enqueued = time.monotonic()


class Batcher:
    """Requests queue; one thread owns the model and runs them in batches.

    The worker takes the queue's head and more requests behind it, up to `max_rows` rows, waiting at
    most `max_delay_s` after the head was queued for more to come; then one call of `run` with the
    batch's payloads, which returns one result per payload (or raises: every request of the batch
    gets the exception). `arriving()`, where given, says how many requests the server holds that are
    neither queued nor running (being received, or their answers being written, after which a
    closed-loop client sends its next at once): the worker waits only while that is above zero, so a
    lone request never waits for company that is not coming, and a busy server still gathers batches.
    A request beyond `max_queue` waiting ones raises QueueFull at once, never a timeout.
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], *, max_rows: int, max_delay_s: float, max_queue: int,
                 arriving: Callable[[], int] | None = None, on_depth: Callable[[int], None] | None = None,
                 on_batch: Callable[[int], None] | None = None, prologue: Callable[[], Any] | None = None) -> None:
        if max_rows < 1 or max_queue < 1 or max_delay_s < 0:
            raise ValueError("max_rows and max_queue must be at least 1, max_delay_s at least 0")
        self._run, self.max_rows, self.max_delay_s, self.max_queue = run, max_rows, max_delay_s, max_queue
        self._arriving = arriving
        self._on_depth, self._on_batch = on_depth, on_batch
        self._cond = threading.Condition()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_rows = 0
        self._running = 0
        self._closing = False
        # Run first, on the worker thread (the warm-up: a thread's own OpenMP team and caches are per thread);
        # its outcome in `prologue_done`. If it raises, the worker ends: nothing will be served.
        self._prologue = prologue
        self.prologue_done: Future[Any] = Future()
        self._thread = threading.Thread(target=self._work, name="eiplane-batcher", daemon=True)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def submit(self, payload: Any, rows: int) -> Future[Any]:
        if rows > self.max_rows:
            raise BadRequest(f"{rows} rows is more than the max batch size {self.max_rows}")
        pending = _Pending(payload, rows)
        with self._cond:
            if self._closing:
                raise ShuttingDown("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull("queue full")
            self._queue.append(pending)
            self._queued_rows += rows
            depth = len(self._queue)
            self._cond.notify()
        if self._on_depth is not None:
            self._on_depth(depth)
        return pending.future

    def outstanding(self) -> int:
        """Requests queued or in the batch running now."""
        return len(self._queue) + self._running

    def queued(self) -> int:
        return len(self._queue)

    def close(self, timeout: float | None = None) -> bool:
        """No new requests; the queued ones still run. True once the worker has finished them."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _more_coming(self) -> bool:
        if self._arriving is None:
            return True
        try:
            return self._arriving() > 0
        except Exception:
            return True

    def _take(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = self._queue[0].enqueued + self.max_delay_s
            while self._queued_rows < self.max_rows and not self._closing and self._more_coming():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Woken by each submit (to count rows again), else at the deadline; re-polling `arriving`
                # every millisecond covers requests that arrive and are answered 400 without a submit.
                self._cond.wait(min(remaining, 0.001))
            batch: list[_Pending] = []
            rows = 0
            while self._queue and rows + self._queue[0].rows <= self.max_rows:
                pending = self._queue.popleft()
                rows += pending.rows
                batch.append(pending)
            self._queued_rows -= rows
            self._running = len(batch)
            return batch

    def _work(self) -> None:
        try:
            self.prologue_done.set_result(self._prologue() if self._prologue is not None else None)
        except BaseException as exc:
            self.prologue_done.set_exception(exc)
            return
        while True:
            batch = self._take()
            if batch is None:
                return
            if self._on_batch is not None:
                self._on_batch(sum(p.rows for p in batch))
            try:
                results = self._run([p.payload for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"the model runner returned {len(results)} results for {len(batch)} requests")
            except BaseException as exc:
                for pending in batch:
                    pending.future.set_exception(exc)
            else:
                for pending, result in zip(batch, results):  # noqa: B905 - lengths checked; strict= needs 3.10
                    pending.future.set_result(result)
            finally:
                with self._cond:
                    self._running = 0


# --- the model -------------------------------------------------------------------------------

class ModelRunner:
    """The loaded module on its device: a forward pass over a batch, and the batch split into answers."""

    def __init__(self, module: Any, device: str, precision: str, pad_to: Sequence[int] = ()) -> None:
        self.module, self.device, self.precision = module, device, precision
        self.dtype = None if device == "neuron" else agent.dtype_of(precision)
        # Neuron runs the batch sizes it was compiled for: a smaller batch is padded up to one of them.
        self.pad_to = sorted(pad_to)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        import torch

        rows = int(inputs[0].shape[0])
        size = next((s for s in self.pad_to if s >= rows), rows)
        if size > rows:
            inputs = [torch.cat([t, t[-1:].expand(size - rows, *t.shape[1:])]) for t in inputs]
        batch = agent.prepare(inputs, self.device, self.dtype)
        strict = agent.strict_fp32(self.device) if self.precision == "fp32" else contextlib.nullcontext()
        with strict, agent.inference(self.device):
            outputs = agent.flatten_outputs(self.module(*batch))
        # JSON carries numbers: half precisions go out as fp32, integers stay integers.
        return [(o.detach()[:rows] if size > rows else o.detach()).to("cpu") for o in outputs]

    def __call__(self, payloads: list[list[torch.Tensor]]) -> list[bytes]:
        import torch

        counts = [int(p[0].shape[0]) for p in payloads]
        total = sum(counts)
        inputs = [torch.cat([p[i] for p in payloads]) if len(payloads) > 1 else payloads[0][i]
                  for i in range(len(payloads[0]))]
        outputs = self.forward(inputs)
        pieces = []
        for index, out in enumerate(outputs):
            if out.dim() == 0 or out.shape[0] != total:
                raise RuntimeError(f"output {index} has shape {list(out.shape)}: no batch dimension of {total} to split")
            out = out.float() if out.is_floating_point() else out
            pieces.append(out.split(counts))
        answers = []
        for index in range(len(payloads)):
            per_output = [piece[index].tolist() for piece in pieces]
            body = {"outputs": per_output[0] if len(per_output) == 1 else per_output}
            answers.append(json.dumps(body, separators=(",", ":")).encode())
        return answers


def warm_up(runner: ModelRunner, examples: Json, sizes: Sequence[int], tolerance: float) -> None:
    """A few passes at each batch size (first-call allocation and autotuning happen now, not on a
    request); the first pass at each size is held to the golden outputs, as validation did."""
    for size in sizes:
        batch = [agent.batch_of(t, size) for t in examples["inputs"]]
        for attempt in range(WARMUP_PASSES):
            outputs = runner.forward(batch)
            if attempt == 0:
                error, why = agent.relative_error(outputs, [agent.batch_of(g, size) for g in examples["outputs"]])
                if why is not None or error is None or error > tolerance:
                    raise RuntimeError(f"batch {size}: outputs off the golden outputs: "
                                       f"{why or f'max_rel_error {error:.3g} > tolerance {tolerance:g}'}")
        agent.synchronize(runner.device)


# --- metrics ---------------------------------------------------------------------------------

def parse_utc(text: str) -> float:
    """Seconds since the epoch of an ISO-8601 time (Z or an offset; none means UTC); Python 3.8's
    fromisoformat takes neither Z nor every fraction, hence the pattern."""
    match = _ISO.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO-8601 time: {text.strip()[:60]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset = timedelta(0)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                      tzinfo=timezone(offset))
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})?$")


def iso_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 - 3.8


class FileClock:
    """ "Now" as written in a file (the embedded AWS's compressed clock); None until it can be read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.last: float | None = None
        self._complained = False

    def __call__(self) -> float | None:
        try:
            self.last = parse_utc(self.path.read_text())
        except (OSError, ValueError) as exc:
            if not self._complained:  # once: the file may lag the server's start
                log("clock unreadable", file=str(self.path), error=_first_line(exc))
                self._complained = True
        return self.last


class MetricsPublisher:
    """Counts one interval's requests and publishes them, batched, when the clock leaves the interval.

    Intervals are aligned to multiples of `interval_s` on the clock given to tick() (whole minutes
    for 60 s) and each is stamped with its start. An interval with no requests still publishes
    Requests=0: the server is up and saw nothing. `publish` takes a list of PutMetricData datums; a
    failure is logged and the interval dropped, never raised into serving.
    """

    def __init__(self, publish: Callable[[list[Json]], None], *, fleet: str, instance_id: str,
                 interval_s: float = 60.0, utilization: Callable[[], float | None] | None = None) -> None:
        self._publish, self.interval_s, self.utilization = publish, float(interval_s), utilization
        self.dimensions = [{"Name": "Fleet", "Value": fleet}, {"Name": "InstanceId", "Value": instance_id}]
        self._lock = threading.Lock()
        self._start: float | None = None
        self._random = random.Random(0)  # noqa: S311 - reservoir sampling, not a secret
        self._reset()

    def _reset(self) -> None:
        self._requests = self._errors = self._bad = self._max_depth = self._batches = self._batch_rows = 0
        self._latencies: list[float] = []
        self._latency_seen = 0

    def record_request(self, status: int, latency_s: float) -> None:
        with self._lock:
            self._requests += 1
            if status >= 500:
                self._errors += 1
            elif status >= 400:
                self._bad += 1
            else:  # latency of answers: fast 400s and 503s would flatter it
                self._latency_seen += 1
                if len(self._latencies) < LATENCY_SAMPLES:
                    self._latencies.append(latency_s)
                else:
                    slot = self._random.randrange(self._latency_seen)
                    if slot < LATENCY_SAMPLES:
                        self._latencies[slot] = latency_s

    def record_queue_depth(self, depth: int) -> None:
        with self._lock:
            self._max_depth = max(self._max_depth, depth)

    def record_batch(self, rows: int) -> None:
        with self._lock:
            self._batches += 1
            self._batch_rows += rows

    def tick(self, now: float) -> int:
        """Publish every interval that `now` has left; returns how many intervals were published."""
        aligned = math.floor(now / self.interval_s) * self.interval_s
        with self._lock:
            if self._start is None:
                self._start = aligned
                return 0
            if now < self._start + self.interval_s:
                return 0
            datums = self._datums(self._start)
            idle_starts = []
            start = self._start + self.interval_s
            while start < aligned:
                idle_starts.append(start)
                start += self.interval_s
            self._reset()
            self._start = aligned
        for start in idle_starts[-MAX_BACKFILL:]:
            datums.extend(self._datums_idle(start))
        self._send(datums)
        return 1 + min(len(idle_starts), MAX_BACKFILL)

    def flush(self) -> None:
        """Publish the interval in progress (at shutdown), stamped with its start."""
        with self._lock:
            if self._start is None or self._requests == 0:
                return
            datums = self._datums(self._start)
            self._reset()
        self._send(datums)

    def _datum(self, name: str, value: float, unit: str, start: float) -> Json:
        return {"MetricName": name, "Dimensions": self.dimensions, "Timestamp": iso_utc(start),
                "Value": round(float(value), 6), "Unit": unit}

    def _datums(self, start: float) -> list[Json]:
        datums = [self._datum("Requests", self._requests, "Count", start),
                  self._datum("Errors", self._errors, "Count", start),
                  self._datum("BadRequests", self._bad, "Count", start),
                  self._datum("QueueDepth", self._max_depth, "Count", start)]
        if self._latencies:
            datums.append(self._datum("LatencyP50", agent.percentile(self._latencies, 50) * 1e3, "Milliseconds", start))
            datums.append(self._datum("LatencyP99", agent.percentile(self._latencies, 99) * 1e3, "Milliseconds", start))
        if self._batches:
            datums.append(self._datum("BatchSize", self._batch_rows / self._batches, "Count", start))
        if self.utilization is not None:
            try:
                value = self.utilization()
            except Exception:
                value = None
            if value is not None:
                datums.append(self._datum("AcceleratorUtilization", value, "Percent", start))
        return datums

    def _datums_idle(self, start: float) -> list[Json]:
        return [self._datum(name, 0, "Count", start) for name in ("Requests", "Errors", "BadRequests", "QueueDepth")]

    def _send(self, datums: list[Json]) -> None:
        for index in range(0, len(datums), DATUMS_PER_CALL):
            chunk = datums[index:index + DATUMS_PER_CALL]
            try:
                self._publish(chunk)
            except Exception as exc:
                log("metrics publish failed", error=_first_line(exc), datums=len(chunk))


class AwsCliPublisher:
    """PutMetricData through the AWS CLI (on every DLAMI; no boto3 on the instance)."""

    def __init__(self, region: str, namespace: str = NAMESPACE, timeout_s: float = 30.0) -> None:
        self.region, self.namespace, self.timeout_s = region, namespace, timeout_s

    def __call__(self, datums: list[Json]) -> None:
        handle, path = tempfile.mkstemp(prefix="eiplane-metrics-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(datums, out)
            completed = subprocess.run(
                ["aws", "cloudwatch", "put-metric-data", "--region", self.region, "--namespace", self.namespace,
                 "--metric-data", f"file://{path}"],
                capture_output=True, text=True, timeout=self.timeout_s, check=False,
            )
            if completed.returncode != 0:
                raise RuntimeError(f"aws exited {completed.returncode}: {(completed.stderr or completed.stdout).strip()[-300:]}")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)


class Boto3Publisher:
    """PutMetricData in-process, where the image's python has boto3 (the DLAMIs' PyTorch environments
    do): one HTTPS call a minute instead of starting the AWS CLI (about a CPU-second each time).
    Credentials and endpoint come from the environment or the instance metadata, as for the CLI."""

    def __init__(self, region: str, namespace: str = NAMESPACE) -> None:
        import boto3  # ImportError where the image has no boto3: the AWS CLI then

        self.namespace = namespace
        self._client = boto3.client("cloudwatch", region_name=region)

    def __call__(self, datums: list[Json]) -> None:
        self._client.put_metric_data(Namespace=self.namespace, MetricData=datums)


def metrics_publisher(region: str, client: str = "auto") -> Callable[[list[Json]], None]:
    """`auto`: boto3 where it is importable, else the AWS CLI."""
    if client == "aws-cli":
        return AwsCliPublisher(region)
    try:
        return Boto3Publisher(region)
    except ImportError:
        if client == "boto3":
            raise
        return AwsCliPublisher(region)


def cuda_utilization() -> Callable[[], float | None] | None:
    """torch.cuda.utilization() where it works (it needs NVML); None where the device reports nothing."""
    import torch

    try:
        float(torch.cuda.utilization())
    except Exception:
        return None
    return lambda: float(torch.cuda.utilization())


class MetricsLoop:
    """Ticks the publisher from a thread of its own (a publish may take seconds; serving never waits)."""

    def __init__(self, publisher: MetricsPublisher, clock: Callable[[], float | None], poll_s: float = CLOCK_POLL_S) -> None:
        self.publisher, self.clock, self.poll_s = publisher, clock, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eiplane-metrics", daemon=True)

    def start(self) -> MetricsLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            now = self.clock()
            if now is not None:
                self.publisher.tick(now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        now = self.clock()
        if now is not None:
            self.publisher.tick(now)
        self.publisher.flush()


# --- the HTTP app ----------------------------------------------------------------------------

class ServerState:
    """What the routes read: set by the loader thread, the lifespan and the SIGTERM handler."""

    def __init__(self, specs: Sequence[InputSpec], max_batch: int) -> None:
        self.specs = list(specs)
        self.max_batch = max_batch
        self.max_body = 64 * 1024 + max_batch * sum(s.numbers_per_row() for s in self.specs) * BODY_BYTES_PER_NUMBER
        self.ready = False
        self.shutting_down = False
        self.in_flight = 0
        self.unqueued = 0  # requests received and not yet handed to the batcher (or answered without it)
        self.batcher: Batcher | None = None
        self.metrics: MetricsPublisher | None = None
        self.exit_code = EXIT_OK

    def serving(self) -> bool:
        return self.ready and not self.shutting_down and self.batcher is not None

    def begin_shutdown(self) -> None:
        if not self.shutting_down:
            self.shutting_down = True
            log("shutting down", in_flight=self.in_flight)

    def arriving(self) -> int:
        batcher = self.batcher
        return self.in_flight - (batcher.outstanding() if batcher is not None else 0)


def build_app(state: ServerState, lifespan: Callable[[Any], Any] | None = None) -> Starlette:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import Response
    from starlette.routing import Route

    def error(status: int, reason: str) -> Response:
        return Response(json.dumps({"error": reason}), status_code=status, media_type="application/json")

    async def ping(request: Request) -> Response:
        return Response(status_code=200 if state.serving() else 503)

    async def invocations(request: Request) -> Response:
        started = time.perf_counter()
        state.in_flight += 1
        status = 500
        try:
            response = await _invoke(request)
            status = response.status_code
            return response
        finally:
            state.in_flight -= 1
            if state.metrics is not None:
                state.metrics.record_request(status, time.perf_counter() - started)

    async def _invoke(request: Request) -> Response:
        batcher = state.batcher
        if not state.ready or batcher is None:
            return error(503, "the model is loading")
        state.unqueued += 1
        try:
            body = await _read_body(request, state.max_body)
            # Requests wait in the batcher's queue and, before it, for the event loop to decode them (JSON
            # decoding costs more than a small model's forward pass): both count against --max-queue, and
            # a request over it is answered before its body is decoded, so that rejecting stays cheap.
            # (The body is read all the same: a connection with an unread body could not be kept alive.)
            if state.unqueued - 1 + batcher.queued() >= batcher.max_queue:
                raise QueueFull("queue full")
            if len(body) > LARGE_BODY:
                loop = asyncio.get_running_loop()
                tensors, rows = await loop.run_in_executor(None, parse_body, body, state.specs, state.max_batch)
            else:
                tensors, rows = parse_body(body, state.specs, state.max_batch)
            future = batcher.submit(tensors, rows)
        except BadRequest as exc:
            return error(400, str(exc))
        except QueueFull:
            return error(503, "queue full")
        except ShuttingDown:
            return error(503, "shutting down")
        finally:
            state.unqueued -= 1  # queued in the batcher now, or answered
        try:
            answer = await asyncio.wrap_future(future)
        except Exception as exc:
            log("inference failed", error=f"{type(exc).__name__}: {_first_line(exc)}", rows=rows)
            return error(500, f"inference failed: {type(exc).__name__}: {_first_line(exc)}")
        return Response(answer, media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return error(status, {404: "not found", 405: "method not allowed"}.get(status, "error"))

    return Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])],
        exception_handlers={404: http_error, 405: http_error},
        lifespan=lifespan,
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body has {declared} bytes, more than the {limit} this model's inputs can take")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body is larger than the {limit} bytes this model's inputs can take")
        chunks.append(chunk)
    return b"".join(chunks)


# --- serve -----------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(kind: Callable[[str], Any], minimum: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value
    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="model_server.py", description="Serve, or load-test, an eiplane model artifact.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="serve the artifact over HTTP (SageMaker's /ping and /invocations)")
    serve.add_argument("--artifact", required=True, type=Path, help="artifact directory (holds manifest.json)")
    serve.add_argument("--manifest-sha256", required=True, type=agent._sha256_arg, help="expected sha256 of manifest.json")
    serve.add_argument("--device", required=True, choices=agent.DEVICES)
    serve.add_argument("--format", choices=agent.FORMATS, help="default: torchscript where the artifact has it")
    serve.add_argument("--precision", choices=agent.PRECISIONS, default="fp32")
    serve.add_argument("--host", default="0.0.0.0", help=f"{BIND_ENV}=host:port overrides --host and --port")  # noqa: S104
    serve.add_argument("--port", type=_positive(int, 1), default=8080)
    serve.add_argument("--max-batch-size", type=_positive(int, 1),
                       help="rows per forward pass (default: the largest batch size the manifest was validated at)")
    serve.add_argument("--max-queue-delay-ms", type=_positive(float, 0), default=5.0)
    serve.add_argument("--max-queue", type=_positive(int, 1), default=64, help="requests waiting beyond this get 503")
    serve.add_argument("--fleet")
    serve.add_argument("--instance-id")
    serve.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    serve.add_argument("--metrics", choices=("cloudwatch", "off"), default="cloudwatch")
    serve.add_argument("--metrics-interval-s", type=_positive(float, 1), default=60.0)
    serve.add_argument("--metrics-client", choices=("auto", "boto3", "aws-cli"), default="auto",
                       help="how PutMetricData is called: boto3 where importable (auto), else the AWS CLI")
    load = sub.add_parser("loadtest", help="find the highest request rate whose p99 stays under an objective")
    load.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    load.add_argument("--artifact", required=True, type=Path, help="its artifact (the request is its first example)")
    load.add_argument("--latency-objective-ms", required=True, type=_positive(float, 0.001))
    load.add_argument("--step-seconds", type=_positive(float, 0.1), default=2.0)
    load.add_argument("--max-seconds", type=_positive(float, 1), default=30.0)
    load.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "serve":
        override = os.environ.get(agent.DEVICE_ENV, "").strip()
        if override and override not in agent.DEVICES:
            parser.error(f"{agent.DEVICE_ENV}={override!r} is not one of {', '.join(agent.DEVICES)}")
        if args.metrics == "cloudwatch" and not (args.fleet and args.instance_id and args.region):
            parser.error("--metrics cloudwatch needs --fleet, --instance-id and --region (or AWS_REGION)")
        try:
            args.host, args.port = bind_address(args.host, args.port)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def bind_address(host: str, port: int) -> tuple[str, int]:
    """--host/--port, or EIPLANE_SERVER_BIND=host:port where set (each embedded instance its own port)."""
    bind = os.environ.get(BIND_ENV, "").strip()
    if not bind:
        return host, port
    name, _, number = bind.rpartition(":")
    if not name or not number.isdigit() or not 0 < int(number) < 65536:
        raise ValueError(f"{BIND_ENV}={bind!r} is not host:port")
    return name.strip("[]"), int(number)


def make_server(config: Any, state: ServerState) -> Any:
    """uvicorn's server, told of SIGTERM first, so that /ping turns 503 at once (uvicorn itself stops
    listening only at its next tick, up to 0.1 s later, and then waits for the open requests)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            state.begin_shutdown()
            super().handle_exit(sig, frame)

    return Server(config)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    override = os.environ.get(agent.DEVICE_ENV, "").strip()
    device = override or args.device
    log("started", pid=os.getpid(), requested_device=args.device, device=device, host=args.host, port=args.port,
        artifact=str(args.artifact), python=sys.version.split()[0])
    failures = agent.Failures()
    _, manifest = agent.verify_artifact(args.artifact, args.manifest_sha256, failures)
    if manifest is None:  # never load, nor listen for, an artifact that did not verify
        worst = failures.worst() or {"message": "the artifact did not verify"}
        log("refused", stage="digest", error=worst["message"])
        return EXIT_DIGEST
    problem = _check_manifest(manifest, args)
    if problem:
        log("refused", stage="load", error=problem)
        return EXIT_ERROR
    threads = cpu_threads(device)
    if threads:  # before torch loads: OpenMP gives every thread it starts this many (see cpu_threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    batch_sizes = [int(b) for b in manifest["batch_sizes"]]
    max_batch = args.max_batch_size or max(batch_sizes)
    state = ServerState([InputSpec.from_manifest(s) for s in manifest["inputs"]], max_batch)
    metrics_loop: MetricsLoop | None = None
    if args.metrics == "cloudwatch":
        clock_file = os.environ.get(CLOCK_ENV, "").strip()
        clock: Callable[[], float | None] = FileClock(clock_file) if clock_file else time.time
        publisher = metrics_publisher(args.region, args.metrics_client)
        state.metrics = MetricsPublisher(publisher, fleet=args.fleet, instance_id=args.instance_id,
                                         interval_s=60.0 if clock_file else args.metrics_interval_s)
        metrics_loop = MetricsLoop(state.metrics, clock, poll_s=CLOCK_FILE_POLL_S if clock_file else CLOCK_POLL_S)
    server_box: list[Any] = []

    def load() -> None:
        try:
            runner, info, warm = load_model(args, manifest, device, max_batch)
            metrics = state.metrics
            batcher = Batcher(
                runner, max_rows=max_batch, max_delay_s=args.max_queue_delay_ms / 1e3, max_queue=args.max_queue,
                arriving=state.arriving, on_depth=metrics.record_queue_depth if metrics else None,
                on_batch=metrics.record_batch if metrics else None, prologue=warm,
            ).start()
            state.batcher = batcher
            info.update(batcher.prologue_done.result())
            if metrics is not None and device == "cuda":
                metrics.utilization = cuda_utilization()
            state.ready = True
            log("ready", max_batch_size=max_batch, max_queue=args.max_queue, max_queue_delay_ms=args.max_queue_delay_ms,
                **info)
        except Exception as exc:
            state.exit_code = EXIT_ERROR
            log("load failed", error=f"{type(exc).__name__}: {_first_line(exc)}")
            if server_box:
                server_box[0].should_exit = True

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        # Loaded in a thread while uvicorn listens: SageMaker wants sockets accepted within 250 ms,
        # and /ping answers 503 until the model is warm.
        loader = threading.Thread(target=load, name="eiplane-loader", daemon=True)
        loader.start()
        if metrics_loop is not None:
            metrics_loop.start()
        try:
            yield
        finally:
            state.begin_shutdown()
            loop = asyncio.get_running_loop()
            # uvicorn has waited for every open request by now; the batcher finishes what it holds.
            if state.batcher is not None:
                await loop.run_in_executor(None, state.batcher.close)
            if metrics_loop is not None:
                await loop.run_in_executor(None, metrics_loop.stop)
            log("stopped", exit_code=state.exit_code)

    config = uvicorn.Config(build_app(state, lifespan), host=args.host, port=args.port, loop="asyncio", http="h11",
                            lifespan="on", log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_S)
    server = make_server(config, state)
    server_box.append(server)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with these
    # handlers in place that is a no-op and the exit status is ours (0), not death by SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    if not server.started and state.exit_code == EXIT_OK:
        return EXIT_ERROR  # uvicorn could not listen (it logged why)
    return state.exit_code


def _check_manifest(manifest: Json, args: argparse.Namespace) -> str | None:
    if manifest.get("schema_version") != agent.SCHEMA_VERSION:
        return f"manifest schema_version {manifest.get('schema_version')!r} is not {agent.SCHEMA_VERSION}"
    formats = manifest.get("formats") or {}
    fmt = args.format or ("torchscript" if "torchscript" in formats else next(iter(formats), None))
    if fmt not in formats:
        return f"the artifact has no {fmt} format (it has {', '.join(formats) or 'none'})"
    args.format = fmt
    if not manifest.get("inputs") or not manifest.get("batch_sizes"):
        return "the manifest names no inputs or no batch sizes"
    high = (formats[fmt].get("dynamic_batch") or {}).get("max")
    if fmt == "torch_export" and args.max_batch_size and high and args.max_batch_size > high:
        return f"--max-batch-size {args.max_batch_size} is above the exported program's dynamic batch max {high}"
    return None


def load_model(args: argparse.Namespace, manifest: Json, device: str,
               max_batch: int) -> tuple[ModelRunner, Json, Callable[[], Json]]:
    """The module loaded (off the event loop), its facts, and the warm-up to run on the batching worker."""
    import torch

    problem = agent.device_problem(device, manifest)
    if problem:
        raise RuntimeError(problem)
    started = time.perf_counter()
    module = agent.load_module(args.format, args.artifact / manifest["formats"][args.format]["file"], device)
    if args.precision != "fp32" and device != "neuron":
        module = module.to(agent.dtype_of(args.precision))
    load_s = time.perf_counter() - started
    examples = torch.load(str(args.artifact / manifest["examples"]["file"]), map_location="cpu", weights_only=True)
    batch_sizes = [int(b) for b in manifest["batch_sizes"]]
    runner = ModelRunner(module, device, args.precision, pad_to=batch_sizes if device == "neuron" else ())
    sizes = sorted({b for b in batch_sizes if b <= max_batch} | {max_batch})
    tolerance = float((manifest.get("tolerances") or {}).get(args.precision, 0.0)) or 1e-4

    def warm() -> Json:
        threads = cpu_threads(device)
        if threads:
            torch.set_num_threads(threads)
        began = time.perf_counter()
        warm_up(runner, examples, sizes, tolerance)
        return {"warmup_s": round(time.perf_counter() - began, 3), "torch_threads": torch.get_num_threads()}

    return runner, {"format": args.format, "precision": args.precision, "load_s": round(load_s, 3),
                    "warmup_batch_sizes": sizes, "torch": torch.__version__}, warm


def cpu_threads(device: str) -> int | None:
    """Intra-op threads on the CPU: one core left to the event loop, which parses requests and writes
    answers. Otherwise OpenMP's threads, spinning between operators, take that core: on 2 cores, single
    requests took 6 to 100 ms instead of 3, and batches of a thousand-layer model 20 ms to 1 s instead of
    5. Set through OMP_NUM_THREADS before torch loads, because an OpenMP thread count set at run time
    holds only for the thread that set it (MKL's tanh on the batching thread still used two). None:
    not a CPU device, or an OMP_NUM_THREADS that is not a count (left to OpenMP)."""
    if device != "cpu":
        return None
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given:
        return int(given) if given.isdigit() and int(given) > 0 else None
    return max(1, (os.cpu_count() or 1) - 1)


# --- loadtest --------------------------------------------------------------------------------

class HttpClient:
    """A keep-alive HTTP/1.1 client on asyncio streams: enough for POST /invocations and GET /ping
    (the standard library's http.client blocks, and a thread per request would load the machine more
    than the server does)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected http://host:port, got {url!r}")
        self.host, self.port, self.timeout_s = parts.hostname, parts.port or 80, timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        connection = self._idle.pop() if self._idle else None
        if connection is None:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout_s)
            self._all.append(writer)
        else:
            reader, writer = connection
        try:
            head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            writer.write(head + body)
            status, payload, keep = await asyncio.wait_for(self._response(reader), self.timeout_s)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, payload

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, keep = 0, True
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
        return status, await reader.readexactly(length) if length else b"", keep

    async def close(self) -> None:
        for writer in self._all:
            writer.close()
        self._all.clear()
        self._idle.clear()


def example_body(artifact: Path) -> bytes:
    """A batch-1 request of the manifest's input shapes (zeros: the cost of a forward pass does not
    depend on the values of a float input), built without torch: importing it would cost the load
    test's client a CPU-second and more, beside the server it measures. A shape the manifest leaves
    open beyond the batch dimension: the artifact's first example (torch, then)."""
    manifest = json.loads((artifact / agent.MANIFEST_FILE).read_text())
    shapes = [spec.get("shape") or [] for spec in manifest["inputs"]]
    if all(shape and all(isinstance(d, int) for d in shape[1:]) for shape in shapes):
        def zeros(dims: list[int]) -> Any:
            return [zeros(dims[1:]) for _ in range(dims[0])] if dims else 0.0

        rows = [zeros([1, *shape[1:]]) for shape in shapes]
    else:
        import torch

        examples = torch.load(str(artifact / manifest["examples"]["file"]), map_location="cpu", weights_only=True)
        rows = [t[:1].float().tolist() for t in examples["inputs"]]
    return json.dumps({"inputs": rows[0] if len(rows) == 1 else rows}).encode()


async def _open_loop_step(client: HttpClient, body: bytes, rate: float, seconds: float, drain_s: float) -> Json:
    """Requests at evenly spaced times (open loop: the schedule never waits for answers); latency is
    counted from each request's scheduled time, so a server (or client) that falls behind shows it."""
    loop = asyncio.get_running_loop()
    count = max(1, round(rate * seconds))
    latencies: list[float] = []
    failures: collections.Counter[str] = collections.Counter()

    async def one(scheduled: float) -> None:
        try:
            status, _ = await client.request("POST", "/invocations", body)
        # asyncio.TimeoutError is the builtin only from 3.11 on
        except (OSError, asyncio.TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:  # noqa: UP041
            failures[type(exc).__name__] += 1
            return
        if status == 200:
            latencies.append(loop.time() - scheduled)
        else:
            failures[str(status)] += 1

    start = loop.time() + 0.01
    tasks = []
    for index in range(count):
        scheduled = start + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    _, pending = await asyncio.wait(tasks, timeout=drain_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    if pending:
        failures["timeout"] += len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        await client.close()  # connections with cancelled requests on them cannot be reused
    elapsed = loop.time() - start
    return {
        "rate_rps": round(rate, 3), "sent": count, "ok": len(latencies), "errors": dict(failures),
        "latency_p50_ms": round(agent.percentile(latencies, 50) * 1e3, 3) if latencies else None,
        "latency_p99_ms": round(agent.percentile(latencies, 99) * 1e3, 3) if latencies else None,
        "achieved_rps": round(len(latencies) / elapsed, 3) if elapsed > 0 else None,
    }


async def loadtest(url: str, body: bytes, objective_ms: float, step_s: float, max_s: float,
                   bisections: int = 3) -> Json:
    """Double the rate until a step misses (p99 above the objective, or any error), then bisect
    between the last rate that held and the first that did not; all within max_s seconds."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    # Stragglers of a step get twice the objective (a request that slow fails the step anyway), within a
    # quarter of the budget, so that the steps started fit in max_s.
    drain_s = min(max(0.5, 2 * objective_ms / 1e3), max(0.5, max_s / 4))
    client = HttpClient(url, timeout_s=drain_s)
    serial: list[float] = []
    for _ in range(5):  # one request at a time: the starting rate, and a warm connection
        sent = loop.time()
        status, _ = await client.request("POST", "/invocations", body)
        if status != 200:
            await client.close()
            raise RuntimeError(f"POST /invocations answered {status}: is the server ready?")
        serial.append(loop.time() - sent)
    rate = max(1.0, 0.25 / max(agent.percentile(serial, 50), 1e-4))
    steps: list[Json] = []
    good: Json | None = None
    bad_rate: float | None = None
    while loop.time() - began + step_s + drain_s <= max_s:
        step = await _open_loop_step(client, body, rate, step_s, drain_s)
        step["passed"] = not step["errors"] and step["latency_p99_ms"] is not None and step["latency_p99_ms"] <= objective_ms
        steps.append(step)
        if step["passed"] and (good is None or rate > good["rate_rps"]):
            good = step
        if not step["passed"]:
            bad_rate = rate if bad_rate is None else min(bad_rate, rate)
        if bad_rate is None:
            rate *= 2
        elif good is None:
            rate /= 2  # even the first step missed: look lower
            if rate < 0.5:
                break
        else:
            if bisections <= 0 or bad_rate / good["rate_rps"] < 1.05:
                break
            bisections -= 1
            rate = (good["rate_rps"] + bad_rate) / 2
    await client.close()
    return {
        "url": url, "latency_objective_ms": objective_ms,
        "capacity_rps": good["rate_rps"] if good else 0.0,
        "latency_p50_ms": good["latency_p50_ms"] if good else None,
        "latency_p99_ms": good["latency_p99_ms"] if good else None,
        "serial_latency_p50_ms": round(agent.percentile(serial, 50) * 1e3, 3),
        "duration_s": round(loop.time() - began, 3),
        "steps": steps,
    }


def run_loadtest(args: argparse.Namespace) -> int:
    body = example_body(args.artifact)
    result = asyncio.run(loadtest(args.url, body, args.latency_objective_ms, args.step_seconds, args.max_seconds))
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        partial = args.out.with_name(args.out.name + ".partial")
        partial.write_text(text + "\n")
        partial.replace(args.out)
    print(text)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "loadtest":
        return run_loadtest(args)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
