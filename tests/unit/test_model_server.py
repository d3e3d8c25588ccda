"""The model server (eiplane/agent/model_server.py), run as an instance runs it: its bundle installed
with INSTALL_SNIPPET into a folder of its own, then model_server.py started there with the pinned
wheels on PYTHONPATH. The batcher, the metrics publisher and the app's flags are tested in-process,
where a blocking fake model makes queueing and batching deterministic."""

from __future__ import annotations

import ast
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import eiplane.agent as bundle_api
from eiplane.agent import INSTALL_SNIPPET, SERVER_PATH, BundleIncomplete, bundle_files, bundle_manifest, bundle_sha256sums
from eiplane.agent import model_server as ms
from eiplane.artifacts.manifest import manifest_digest
from tests.unit.artifact_helpers import flip_byte, sha256

ROOT = Path(__file__).resolve().parents[2]
# boto3: optional, for PutMetricData where the image's Python has it (imported inside Boto3Publisher)
ALLOWED_THIRD_PARTY = {"torch", "starlette", "uvicorn", "eiplane_agent", "boto3"}
FLEET, INSTANCE = "fleet-a", "i-0123456789abcdef0"
START_UP_S = 120  # generous: a loaded 2-core machine imports torch slowly; the wait ends as soon as /ping is 200


# --- helpers ---------------------------------------------------------------------------------

def wait_until(condition: Callable[[], bool], seconds: float, what: str, alive: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `condition` until it holds; fail after `seconds`, or at once if `alive` exits meanwhile."""
    deadline = time.monotonic() + seconds
    while not condition():
        if alive is not None and alive.poll() is not None:
            pytest.fail(f"the server exited ({alive.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)  # the polling interval, not the wait: the loop ends on the condition


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def call(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ping(port: int) -> int | None:
    try:
        return call(port, "GET", "/ping", timeout=5)[0]
    except OSError:
        return None


def install_bundle(target: Path) -> subprocess.CompletedProcess[str]:
    """The instance's side: the bundle's files copied into `target`, checked and unzipped by the snippet."""
    for name, path in bundle_files().items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / name)
    return run_snippet(target, bundle_sha256sums())


def run_snippet(target: Path, sums: str) -> subprocess.CompletedProcess[str]:
    script = INSTALL_SNIPPET + '\neiplane_install_bundle "$1" "$2"\n'
    return subprocess.run(["sh", "-c", script, "sh", str(target), sys.executable], input=sums, capture_output=True,
                          text=True, timeout=120, check=False)


class Server:
    """model_server.py serve, started from an installed bundle, its stderr in a file."""

    def __init__(self, bundle: Path, artifact: Path, extra: list[str], env: dict[str, str] | None = None,
                 log: Path | None = None) -> None:
        self.port = free_port()
        self.log = log or bundle / f"server-{self.port}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("EIPLANE_")}
        environment.update({"PYTHONPATH": str(bundle / "site"), **(env or {})})
        environment.setdefault(ms.BIND_ENV, f"127.0.0.1:{self.port}")
        self.port = int(environment[ms.BIND_ENV].rpartition(":")[2])
        with open(self.log, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(bundle / "model_server.py"), "serve", "--artifact", str(artifact),
                 "--manifest-sha256", manifest_digest(artifact), *extra],
                cwd=bundle, env=environment, stdout=subprocess.DEVNULL, stderr=err,
            )

    def wait_ready(self) -> None:
        wait_until(lambda: ping(self.port) == 200, START_UP_S, "/ping to answer 200", alive=self.process)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def examples(artifact: Path) -> Any:
    import torch

    return torch.load(artifact / "examples.pt", weights_only=True)


def body_of(tensor: Any) -> bytes:
    return json.dumps({"inputs": tensor.tolist()}).encode()


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bundle")
    installed = install_bundle(target)
    assert installed.returncode == 0, installed.stderr
    return target


@pytest.fixture(scope="module")
def aws_stub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An `aws` on PATH that records its arguments and the metric data file (the server deletes it after)."""
    folder = tmp_path_factory.mktemp("aws-stub")
    record = folder / "calls.jsonl"
    stub = folder / "aws"
    stub.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
data = None
if "--metric-data" in args:
    with open(args[args.index("--metric-data") + 1][len("file://"):]) as handle:
        data = json.load(handle)
with open({str(record)!r}, "a") as out:
    out.write(json.dumps({{"argv": args, "metric_data": data}}) + "\\n")
""")
    stub.chmod(0o755)
    return folder, record


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "now"
    path.write_text("2026-12-04T10:00:30Z\n")
    return path


@pytest.fixture(scope="module")
def server(bundle: Path, packed: Path, aws_stub: tuple[Path, Path], clock_file: Path) -> Iterator[Server]:
    """TorchScript, metrics to the stub CLI on the file clock; asked for cuda, and EIPLANE_AGENT_DEVICE=cpu
    overrides it; --port names another port, and EIPLANE_SERVER_BIND the one it must listen on."""
    stub_dir, _ = aws_stub
    started = Server(bundle, packed, ["--device", "cuda", "--host", "127.0.0.1", "--port", str(free_port()),
                                      "--fleet", FLEET, "--instance-id", INSTANCE, "--region", "us-east-1",
                                      "--metrics", "cloudwatch", "--metrics-client", "aws-cli"],
                     env={"EIPLANE_AGENT_DEVICE": "cpu", ms.CLOCK_ENV: str(clock_file),
                          "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}"})
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


# --- the server, over HTTP -------------------------------------------------------------------

def test_ready_server_answers_with_the_modules_outputs(server: Server, packed: Path) -> None:
    import torch

    inputs = examples(packed)["inputs"][0][:3]
    status, raw = call(server.port, "POST", "/invocations", body_of(inputs))
    assert status == 200, raw
    module = ms.agent.load_module("torchscript", packed / "model.pt", "cpu")  # without TorchScript's deprecation warning
    with torch.inference_mode():
        expected = module(inputs)
    got = torch.tensor(json.loads(raw)["outputs"])
    assert got.shape == (3, 10)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    started = next(e for e in server.events() if e["event"] == "started")
    ready = next(e for e in server.events() if e["event"] == "ready")
    assert (started["requested_device"], started["device"], started["host"]) == ("cuda", "cpu", "127.0.0.1")
    assert ready["format"] == "torchscript" and ready["max_batch_size"] == 32 and ready["warmup_batch_sizes"] == [1, 8, 32]
    ping_status, ping_body = call(server.port, "GET", "/ping")
    assert (ping_status, ping_body) == (200, b"")


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not JSON"),
    (b'{"input": [[1]]}', '{"inputs"'),
    (b'[1, 2]', '{"inputs"'),
    (b'{"inputs": [[1.0, 2.0]]}', "shape [1, 2]; expected [batch, 3, 32, 32]"),
    (b'{"inputs": "cat"}', "nested list of numbers"),
    (b'{"inputs": [[[["a"]]]]}', "nested list of numbers"),
    (b'{"inputs": [[[[1.0], [1.0, 2.0]]]]}', "of one shape"),
    (b'{"inputs": [[[[NaN]]]]}', "NaN"),
    (b'{"inputs": []}', "shape [0]"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_body_that_does_not_fit_is_400_with_the_reason(server: Server, body: bytes, reason: str) -> None:
    status, raw = call(server.port, "POST", "/invocations", body)
    assert status == 400, raw
    assert reason in json.loads(raw)["error"]


def test_a_batch_above_the_max_batch_size_is_400(server: Server) -> None:
    import torch

    status, raw = call(server.port, "POST", "/invocations", body_of(torch.zeros(33, 3, 32, 32)))
    assert status == 400
    assert "33 rows, more than this server's max batch size 32" in json.loads(raw)["error"]


def test_unknown_paths_and_methods(server: Server) -> None:
    assert call(server.port, "GET", "/nowhere") == (404, b'{"error": "not found"}')
    assert call(server.port, "GET", "/invocations")[0] == 405
    assert call(server.port, "POST", "/ping")[0] == 405


def test_metrics_reach_the_aws_cli_per_minute_of_the_clock_file(server: Server, packed: Path, aws_stub: tuple[Path, Path],
                                                                clock_file: Path) -> None:
    _, record = aws_stub

    def calls() -> list[dict[str, Any]]:
        return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

    def stamped(stamp: str) -> dict[str, float] | None:
        found = {d["MetricName"]: d["Value"] for call in calls() for d in call["metric_data"] or [] if d["Timestamp"] == stamp}
        return found or None

    # 10:00 holds what the other tests sent; once it is out, this test owns the minute 10:01.
    clock_file.write_text("2026-12-04T10:01:02.250Z\n")
    wait_until(lambda: stamped("2026-12-04T10:00:00Z") is not None, 30, "the 10:00 metrics", alive=server.process)
    body = body_of(examples(packed)["inputs"][0][:2])
    for _ in range(3):
        assert call(server.port, "POST", "/invocations", body)[0] == 200
    assert call(server.port, "POST", "/invocations", b"{}")[0] == 400
    # Two minutes on at once: 10:01 with its requests, and 10:02, which saw none, as zeros.
    clock_file.write_text("2026-12-04T10:03:00+00:00\n")
    wait_until(lambda: stamped("2026-12-04T10:02:00Z") is not None, 30, "the 10:01 and 10:02 metrics", alive=server.process)
    minute = stamped("2026-12-04T10:01:00Z")
    assert minute is not None
    assert (minute["Requests"], minute["BadRequests"], minute["Errors"]) == (4, 1, 0)
    assert minute["BatchSize"] == 2 and minute["QueueDepth"] >= 1
    assert 0 < minute["LatencyP50"] <= minute["LatencyP99"]
    assert "AcceleratorUtilization" not in minute  # a CPU reports none
    assert stamped("2026-12-04T10:02:00Z") == {"Requests": 0, "Errors": 0, "BadRequests": 0, "QueueDepth": 0}
    cli = next(c for c in calls() if c["metric_data"][0]["Timestamp"] == "2026-12-04T10:01:00Z")
    assert cli["argv"][:6] == ["cloudwatch", "put-metric-data", "--region", "us-east-1", "--namespace", "eiplane/Inference"]
    assert cli["argv"][6] == "--metric-data" and cli["argv"][7].startswith("file://")
    units = {d["MetricName"]: d["Unit"] for d in cli["metric_data"]}
    assert units == {"Requests": "Count", "Errors": "Count", "BadRequests": "Count", "QueueDepth": "Count",
                     "LatencyP50": "Milliseconds", "LatencyP99": "Milliseconds", "BatchSize": "Count"}
    assert all(d["Dimensions"] == [{"Name": "Fleet", "Value": FLEET}, {"Name": "InstanceId", "Value": INSTANCE}]
               for d in cli["metric_data"])


def test_loadtest_finds_a_capacity(server: Server, bundle: Path, packed: Path, tmp_path: Path) -> None:
    out = tmp_path / "loadtest.json"
    completed = subprocess.run(
        [sys.executable, str(bundle / "model_server.py"), "loadtest", "--url", f"http://127.0.0.1:{server.port}",
         "--artifact", str(packed), "--latency-objective-ms", "5000", "--step-seconds", "0.5", "--max-seconds", "6",
         "--out", str(out)],
        cwd=bundle, env={**os.environ, "PYTHONPATH": str(bundle / "site")}, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result == json.loads(completed.stdout)
    assert result["capacity_rps"] > 0 and result["steps"]
    assert result["duration_s"] <= 6 + 5  # the budget, plus at most the last step's stragglers
    passed = [s for s in result["steps"] if s["passed"]]
    assert max(s["rate_rps"] for s in passed) == result["capacity_rps"]
    best = next(s for s in passed if s["rate_rps"] == result["capacity_rps"])
    assert best["errors"] == {} and best["ok"] == best["sent"]
    assert (result["latency_p50_ms"], result["latency_p99_ms"]) == (best["latency_p50_ms"], best["latency_p99_ms"])


def test_torch_export_served_and_sigterm_finishes_the_request_in_flight(bundle: Path, packed: Path) -> None:
    import torch

    server = Server(bundle, packed, ["--device", "cpu", "--format", "torch_export", "--metrics", "off"])
    try:
        server.wait_ready()
        inputs = examples(packed)["inputs"][0][:2]
        status, raw = call(server.port, "POST", "/invocations", body_of(inputs))
        assert status == 200
        with torch.inference_mode():
            expected = torch.export.load(str(packed / "model.pt2")).module()(inputs)
        torch.testing.assert_close(torch.tensor(json.loads(raw)["outputs"]), expected, rtol=1e-5, atol=1e-6)

        body = body_of(inputs)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            # The server says 100 Continue when the handler starts reading the body: the request is in flight.
            assert _read_head(sock).startswith(b"HTTP/1.1 100")
            server.process.send_signal(signal.SIGTERM)
            wait_until(lambda: ping(server.port) is None, 30, "the server to stop accepting connections",
                       alive=server.process)
            sock.sendall(body)
            head = _read_head(sock)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            payload = _read_exactly(sock, length)
        torch.testing.assert_close(torch.tensor(json.loads(payload)["outputs"]), expected, rtol=1e-5, atol=1e-6)
        assert server.process.wait(timeout=60) == 0
        events = [e["event"] for e in server.events()]
        assert events[-2:] == ["shutting down", "stopped"]
        assert next(e for e in server.events() if e["event"] == "ready")["format"] == "torch_export"
    finally:
        server.stop()


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def _read_exactly(sock: socket.socket, length: int) -> bytes:
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_a_tampered_artifact_is_refused_before_listening(bundle: Path, packed: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    shutil.copytree(packed, artifact)
    flip_byte(artifact / "model.pt")
    server = Server(bundle, artifact, ["--device", "cpu", "--metrics", "off"], log=tmp_path / "server.log")
    assert server.process.wait(timeout=60) == ms.EXIT_DIGEST
    started, refused = server.events()  # nothing loaded, nothing listened on: serve() stopped at the digests
    assert started["event"] == "started" and refused["event"] == "refused"
    assert refused["stage"] == "digest" and "model.pt has sha256" in refused["error"]


def test_a_bad_command_line_exits_64(bundle: Path, packed: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(bundle / "model_server.py"), "serve", "--artifact", str(packed), "--manifest-sha256",
         manifest_digest(packed), "--device", "cpu"],  # metrics default to cloudwatch, which needs --fleet
        cwd=bundle, env={**os.environ, "PYTHONPATH": str(bundle / "site")}, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert completed.returncode == ms.EXIT_USAGE
    assert "--metrics cloudwatch needs --fleet" in completed.stderr


# --- the app, in-process ---------------------------------------------------------------------

async def asgi(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"test"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def echo(payloads: list[list[Any]]) -> list[bytes]:
    return [json.dumps({"outputs": (p[0] * 2).tolist()}).encode() for p in payloads]


def test_ping_is_503_until_loaded_and_from_shutdown_on() -> None:
    state = ms.ServerState([ms.InputSpec("x", "float32", (2,))], max_batch=4)
    app = ms.build_app(state)
    batcher = ms.Batcher(echo, max_rows=4, max_delay_s=0, max_queue=4)

    async def scenario() -> list[tuple[int, bytes]]:
        seen = [await asgi(app, "GET", "/ping"), await asgi(app, "POST", "/invocations", b'{"inputs": [[1, 2]]}')]
        state.batcher = batcher.start()  # loaded, not yet warmed up
        seen.append(await asgi(app, "GET", "/ping"))
        state.ready = True
        seen += [await asgi(app, "GET", "/ping"), await asgi(app, "POST", "/invocations", b'{"inputs": [[1, 2]]}')]
        state.begin_shutdown()  # what SIGTERM does first
        # Requests still come while the balancer deregisters the instance: they are served.
        seen += [await asgi(app, "GET", "/ping"), await asgi(app, "POST", "/invocations", b'{"inputs": [[3, 4]]}')]
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        batcher.close(10)
    assert seen[0] == (503, b"")
    assert seen[1][0] == 503 and json.loads(seen[1][1]) == {"error": "the model is loading"}
    assert seen[2] == (503, b"")
    assert seen[3] == (200, b"")
    assert seen[4] == (200, b'{"outputs": [[2.0, 4.0]]}')
    assert seen[5] == (503, b"")
    assert seen[6] == (200, b'{"outputs": [[6.0, 8.0]]}')


def test_a_full_queue_is_503_at_once() -> None:
    state = ms.ServerState([ms.InputSpec("x", "float32", (2,))], max_batch=1)
    app = ms.build_app(state)
    running, release, queued = threading.Event(), threading.Event(), threading.Event()

    def blocking(payloads: list[list[Any]]) -> list[bytes]:
        running.set()
        assert release.wait(30)
        return echo(payloads)

    state.batcher = ms.Batcher(blocking, max_rows=1, max_delay_s=0, max_queue=1,
                               on_depth=lambda depth: queued.set() if depth else None).start()
    state.ready = True
    body = b'{"inputs": [[1, 2]]}'

    async def scenario() -> tuple[tuple[int, bytes], list[tuple[int, bytes]]]:
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(asgi(app, "POST", "/invocations", body))
        assert await loop.run_in_executor(None, running.wait, 30)  # the worker holds the first request
        queued.clear()
        second = asyncio.ensure_future(asgi(app, "POST", "/invocations", body))
        assert await loop.run_in_executor(None, queued.wait, 30)  # the second waits in the queue: it is full
        third = await asgi(app, "POST", "/invocations", body)  # answered while the model is still blocked
        release.set()
        return third, list(await asyncio.gather(first, second))

    try:
        third, others = asyncio.run(scenario())
    finally:
        release.set()
        state.batcher.close(10)
    assert third == (503, b'{"error": "queue full"}')
    assert others == [(200, b'{"outputs": [[2.0, 4.0]]}')] * 2


def test_requests_waiting_to_be_decoded_count_against_the_queue() -> None:
    state = ms.ServerState([ms.InputSpec("x", "float32", (2,))], max_batch=1)
    state.batcher = ms.Batcher(echo, max_rows=1, max_delay_s=0, max_queue=2).start()
    state.ready = True
    app = ms.build_app(state)

    async def scenario() -> list[tuple[int, bytes]]:
        state.unqueued = 2  # two requests received before this one, their bodies not decoded yet
        # Answered before decoding: an undecodable body is still a 503, not a 400.
        seen = [await asgi(app, "POST", "/invocations", b"not json")]
        assert state.unqueued == 2  # this request's count is gone again
        state.unqueued = 1
        seen += [await asgi(app, "POST", "/invocations", b"not json"), await asgi(app, "POST", "/invocations",
                                                                                   b'{"inputs": [[1, 2]]}')]
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        state.batcher.close(10)
    assert seen[0] == (503, b'{"error": "queue full"}')
    assert seen[1][0] == 400 and seen[2] == (200, b'{"outputs": [[2.0, 4.0]]}')
    assert state.unqueued == 1


def test_a_failing_model_is_500_and_the_worker_lives_on() -> None:
    calls = []

    def flaky(payloads: list[list[Any]]) -> list[bytes]:
        calls.append(len(payloads))
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return echo(payloads)

    state = ms.ServerState([ms.InputSpec("x", "float32", (2,))], max_batch=2)
    state.batcher = ms.Batcher(flaky, max_rows=2, max_delay_s=0, max_queue=2).start()
    state.ready = True
    app = ms.build_app(state)

    async def scenario() -> list[tuple[int, bytes]]:
        return [await asgi(app, "POST", "/invocations", b'{"inputs": [[1, 2]]}') for _ in range(2)]

    try:
        first, second = asyncio.run(scenario())
    finally:
        state.batcher.close(10)
    assert first[0] == 500 and "RuntimeError: CUDA out of memory" in json.loads(first[1])["error"]
    assert second == (200, b'{"outputs": [[2.0, 4.0]]}')


# --- the batcher -----------------------------------------------------------------------------

class BlockingModel:
    """Records each batch's payloads; the first batch blocks until released."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, payloads: list[Any]) -> list[Any]:
        self.batches.append(list(payloads))
        self.started.set()
        assert self.release.wait(30)
        return [f"answer {p}" for p in payloads]


def test_requests_queued_while_the_model_runs_go_in_one_batch() -> None:
    model = BlockingModel()
    batcher = ms.Batcher(model, max_rows=8, max_delay_s=0, max_queue=16).start()
    first = batcher.submit("a", 1)
    assert model.started.wait(30)
    rest = [batcher.submit(name, rows) for name, rows in (("b", 2), ("c", 3), ("d", 3), ("e", 1))]
    model.release.set()
    assert [f.result(30) for f in [first, *rest]] == [f"answer {n}" for n in "abcde"]
    assert batcher.close(30)
    # b, c and d fill 8 rows; e is left for the next batch.
    assert model.batches == [["a"], ["b", "c", "d"], ["e"]]


def test_the_worker_waits_for_requests_on_their_way_but_not_for_none() -> None:
    model = BlockingModel()
    model.release.set()
    coming = [1]
    batcher = ms.Batcher(model, max_rows=3, max_delay_s=60, max_queue=8, arriving=lambda: coming[0]).start()
    try:
        futures = [batcher.submit("a", 1)]
        assert not model.started.wait(0.2)  # a request is on its way: the worker waits (up to 60 s) for it
        futures += [batcher.submit("b", 1), batcher.submit("c", 1)]  # max_rows reached: it runs at once
        assert [f.result(30) for f in futures] == ["answer a", "answer b", "answer c"]
        coming[0] = 0
        assert batcher.submit("d", 1).result(30) == "answer d"  # nothing on its way: no 60 s wait
        assert model.batches == [["a", "b", "c"], ["d"]]
    finally:
        coming[0] = 0
        assert batcher.close(30)


def test_close_finishes_every_queued_request_then_refuses_new_ones() -> None:
    model = BlockingModel()
    batcher = ms.Batcher(model, max_rows=1, max_delay_s=0, max_queue=8).start()
    futures = [batcher.submit(name, 1) for name in "abc"]
    assert model.started.wait(30)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    model.release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert [f.result(0) for f in futures] == ["answer a", "answer b", "answer c"]
    with pytest.raises(ms.ShuttingDown):
        batcher.submit("d", 1)
    with pytest.raises(ms.BadRequest):
        ms.Batcher(model, max_rows=1, max_delay_s=0, max_queue=1).submit("e", 2)


# --- request parsing -------------------------------------------------------------------------

def test_a_model_with_two_inputs_takes_a_list_of_nested_lists() -> None:
    specs = [ms.InputSpec("a", "float32", (2,)), ms.InputSpec("b", "float16", (1, 1))]
    tensors, rows = ms.parse_body(b'{"inputs": [[[1, 2], [3, 4]], [[[5]], [[6]]]]}', specs, 4)
    assert rows == 2 and [tuple(t.shape) for t in tensors] == [(2, 2), (2, 1, 1)]
    assert str(tensors[1].dtype) == "torch.float16"
    with pytest.raises(ms.BadRequest, match="takes 2 inputs"):
        ms.parse_body(b'{"inputs": [[1, 2]]}', specs, 4)
    with pytest.raises(ms.BadRequest, match="different batch sizes"):
        ms.parse_body(b'{"inputs": [[[1, 2]], [[[5]], [[6]]]]}', specs, 4)
    with pytest.raises(ms.BadRequest, match=r"inputs\[b\] has shape \[2, 1\]"):
        ms.parse_body(b'{"inputs": [[[1, 2], [3, 4]], [[5], [6]]]}', specs, 4)
    with pytest.raises(ms.BadRequest, match="out of range"):
        ms.parse_body(b'{"inputs": [[[1e999, 2]], [[[5]]]]}', specs, 4)


# --- metrics ---------------------------------------------------------------------------------

T0 = 1796378400.0  # 2026-12-04T10:00:00Z


def test_the_publisher_sends_each_interval_stamped_with_its_start() -> None:
    published: list[list[dict[str, Any]]] = []
    publisher = ms.MetricsPublisher(published.append, fleet=FLEET, instance_id=INSTANCE, utilization=lambda: 37.5)
    publisher.record_request(200, 0.010)
    publisher.tick(T0 + 30)  # opens 10:00 (what came before counts in it)
    for status, seconds in ((200, 0.020), (200, 0.030), (400, 0.001), (503, 0.001), (500, 0.002)):
        publisher.record_request(status, seconds)
    publisher.record_queue_depth(3)
    publisher.record_queue_depth(1)
    publisher.record_batch(2)
    publisher.record_batch(1)
    assert publisher.tick(T0 + 59.9) == 0 and published == []
    assert publisher.tick(T0 + 60.5) == 1
    [datums] = published
    assert {d["Timestamp"] for d in datums} == {"2026-12-04T10:00:00Z"}
    assert all(d["Dimensions"] == [{"Name": "Fleet", "Value": FLEET}, {"Name": "InstanceId", "Value": INSTANCE}]
               for d in datums)
    values = {d["MetricName"]: (d["Value"], d["Unit"]) for d in datums}
    assert values == {
        "Requests": (6, "Count"), "Errors": (2, "Count"), "BadRequests": (1, "Count"), "QueueDepth": (3, "Count"),
        "LatencyP50": (pytest.approx(20.0), "Milliseconds"), "LatencyP99": (pytest.approx(29.8), "Milliseconds"),
        "BatchSize": (1.5, "Count"), "AcceleratorUtilization": (37.5, "Percent"),
    }


def test_idle_intervals_publish_zero_requests_even_after_a_jump() -> None:
    published: list[list[dict[str, Any]]] = []
    publisher = ms.MetricsPublisher(published.append, fleet=FLEET, instance_id=INSTANCE, interval_s=60)
    publisher.tick(T0 + 5)
    publisher.tick(T0 + 185)  # 10:00 ended, and 10:01 and 10:02 passed unseen
    [datums] = published
    by_minute: dict[str, dict[str, float]] = {}
    for d in datums:
        by_minute.setdefault(d["Timestamp"], {})[d["MetricName"]] = d["Value"]
    zeros = {"Requests": 0, "Errors": 0, "BadRequests": 0, "QueueDepth": 0}
    assert by_minute == {"2026-12-04T10:00:00Z": zeros, "2026-12-04T10:01:00Z": zeros, "2026-12-04T10:02:00Z": zeros}


def test_a_failed_publish_is_logged_and_serving_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    attempts: list[int] = []

    def failing(datums: list[dict[str, Any]]) -> None:
        attempts.append(len(datums))
        raise RuntimeError("aws exited 255: Could not connect to the endpoint URL")

    publisher = ms.MetricsPublisher(failing, fleet=FLEET, instance_id=INSTANCE)
    publisher.tick(T0)
    publisher.record_request(200, 0.01)
    assert publisher.tick(T0 + 61) == 1  # no exception
    publisher.record_request(200, 0.01)
    publisher.flush()
    assert len(attempts) == 2
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["metrics publish failed"] * 2
    assert "Could not connect" in lines[0]["error"]


def test_the_file_clock_reads_iso_times_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "now"
    clock = ms.FileClock(path)
    assert clock() is None  # not written yet
    path.write_text("2026-12-04T10:00:30.5Z\n")
    assert clock() == T0 + 30.5
    path.write_text("2026-12-04T11:00:00+01:00")
    assert clock() == T0
    path.write_text("2026-12-04T10:00:07.123456")  # no zone: UTC
    assert clock() == pytest.approx(T0 + 7.123456)
    path.write_text("half a line")
    assert clock() == pytest.approx(T0 + 7.123456)


def test_the_bind_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ms.BIND_ENV, raising=False)
    assert ms.bind_address("localhost", 8080) == ("localhost", 8080)
    monkeypatch.setenv(ms.BIND_ENV, "127.0.0.1:18123")
    assert ms.bind_address("localhost", 8080) == ("127.0.0.1", 18123)
    monkeypatch.setenv(ms.BIND_ENV, "[::1]:9000")
    assert ms.bind_address("localhost", 8080) == ("::1", 9000)
    monkeypatch.setenv(ms.BIND_ENV, "8080")
    with pytest.raises(ValueError, match="host:port"):
        ms.bind_address("localhost", 8080)


def test_cpu_threads_leave_a_core_to_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert ms.cpu_threads("cpu") == 15 and ms.cpu_threads("cuda") is None
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert ms.cpu_threads("cpu") == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert ms.cpu_threads("cpu") == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested levels: left to OpenMP
    assert ms.cpu_threads("cpu") is None


# --- the bundle ------------------------------------------------------------------------------

def test_the_bundle_names_every_file_with_its_digest() -> None:
    files = bundle_files()
    pins = bundle_api.pinned_wheels()
    wheels = sorted(n for n in files if n.startswith("wheels/"))
    assert {"eiplane_agent.py", "model_server.py", "server-requirements.txt"} < set(files)
    assert len(wheels) == len(pins) == 9 and all(n.endswith("-py3-none-any.whl") for n in wheels)
    assert {p[0].lower().replace("-", "_") for p in pins} >= {"uvicorn", "starlette", "h11", "anyio", "click"}
    assert bundle_manifest() == {"files": {name: sha256(path) for name, path in files.items()}}
    assert files["model_server.py"] == SERVER_PATH


def test_a_missing_or_stale_wheel_names_make_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bundle_files()
    monkeypatch.setattr(bundle_api, "WHEELS_DIR", tmp_path)
    with pytest.raises(BundleIncomplete, match=r"the wheel of uvicorn==0\.33\.0 is not in .*: run `make install`"):
        bundle_files()
    for name, path in real.items():
        if name.startswith("wheels/"):
            shutil.copyfile(path, tmp_path / path.name)
    assert set(bundle_files()) == set(real)
    flip_byte(tmp_path / "h11-0.16.0-py3-none-any.whl")
    with pytest.raises(BundleIncomplete, match=r"h11-0\.16\.0-py3-none-any\.whl .*\(sha256 differs\).*make install"):
        bundle_files()


def test_the_pins_match_the_serve_extra() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    pins = {name.lower(): version for name, version, _ in bundle_api.pinned_wheels()}
    assert sorted(extra) == sorted(f"{name}=={pins[name]}" for name in ("uvicorn", "starlette"))


def test_the_snippet_unzips_the_wheels_that_python_then_imports(bundle: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "import uvicorn, starlette, h11, anyio; print(uvicorn.__file__); print(starlette.__file__); "
         "print(anyio.__file__)"],
        env={**os.environ, "PYTHONPATH": str(bundle / "site")}, capture_output=True, text=True, timeout=60, check=True,
    )
    paths = [Path(line) for line in completed.stdout.split()]
    assert len(paths) == 3 and all(p.is_relative_to(bundle / "site") for p in paths)
    assert (bundle / "site" / "anyio-4.5.2.dist-info").is_dir()  # the pinned anyio, not the venv's


def test_the_snippet_refuses_a_changed_file(tmp_path: Path) -> None:
    installed = install_bundle(tmp_path)
    assert installed.returncode == 0, installed.stderr
    flip_byte(tmp_path / "model_server.py")
    shutil.rmtree(tmp_path / "site")
    refused = run_snippet(tmp_path, bundle_sha256sums())
    assert refused.returncode == 2
    assert "does not match its digest" in refused.stderr and not (tmp_path / "site").exists()
    (tmp_path / "wheels" / "h11-0.16.0-py3-none-any.whl").unlink()
    assert run_snippet(tmp_path, bundle_sha256sums()).returncode == 2
    assert run_snippet(tmp_path, "").returncode == 2


# --- what runs on the instance ----------------------------------------------------------------

def test_the_server_imports_only_the_standard_library_torch_starlette_and_uvicorn() -> None:
    source = SERVER_PATH.read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # the agent's floor: Python 3.8 on older images
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.module is None and [a.name for a in node.names] == ["eiplane_agent"]
                continue
            imported.add((node.module or "").split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - {"__future__"} - ALLOWED_THIRD_PARTY
    assert outside == set()
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top_level |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top_level & {"torch", "starlette", "uvicorn", "boto3"}, "imported where needed: the digests are checked first"
