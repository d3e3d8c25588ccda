"""The model server's cost and benefit, measured on this machine (`eiplane bench serving`).

Starts eiplane/agent/model_server.py as a subprocess on 127.0.0.1 with the demo model (or --artifact)
and compares three things, each against a target:

1. latency: p50 of batch-1 requests, one at a time, through the server, against a direct in-process
   call of the same module (target: at most 1.2x the direct p50 + 1 ms);
2. dynamic batching: closed-loop throughput at 1, 8 and 32 concurrent clients, batching on (the
   manifest's largest batch size) against off (--max-batch-size 1) (target: at least 2x at 32);
   --model deep-mlp is a model built for the case batching is for (see deep_mlp);
3. overload: many more clients than --max-queue: the surplus is answered 503 at once, nothing times
   out (target: every request answered 200 or 503, no timeout, and a 503 no slower than a 200).

The clients share the machine with the server (on a 2-core machine they take part of a core).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eiplane.agent import SERVER_PATH
from eiplane.agent import model_server as ms

MODELS = ("tiny-cnn", "deep-mlp")
CLIENTS = (1, 8, 32)
OVERLOAD_QUEUE = 4
OVERLOAD_CLIENTS = 64
REQUEST_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ping(port: int) -> int | None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@contextmanager
def running_server(artifact: Path, device: str, extra: list[str], log_dir: Path) -> Iterator[str]:
    """The server on a free loopback port until the block ends (then SIGTERM); yields its URL."""
    from eiplane.artifacts.manifest import manifest_digest

    port = _free_port()
    log = log_dir / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if k not in (ms.BIND_ENV, ms.CLOCK_ENV)}
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(SERVER_PATH), "serve", "--artifact", str(artifact), "--manifest-sha256",
             manifest_digest(artifact), "--device", device, "--host", "127.0.0.1", "--port", str(port),
             "--metrics", "off", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _ping(port) != 200:
            if process.poll() is not None:
                raise RuntimeError(f"the model server exited ({process.returncode}): {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the model server was not ready within {READY_TIMEOUT_S:.0f} s: {log}")
            time.sleep(0.1)  # polling interval; the wait ends on /ping's 200
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def closed_loop(url: str, body: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` clients, each sending its next request as soon as its last is answered, for `seconds`."""
    loop = asyncio.get_running_loop()
    results: list[tuple[int | str, float]] = []
    deadline = loop.time() + seconds

    async def client() -> None:
        http = ms.HttpClient(url, timeout_s=REQUEST_TIMEOUT_S)
        try:
            while loop.time() < deadline:
                sent = loop.time()
                try:
                    status, _ = await http.request("POST", "/invocations", body)
                except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                    results.append(("timeout" if isinstance(exc, TimeoutError) else type(exc).__name__,
                                    loop.time() - sent))
                    await http.close()
                    http = ms.HttpClient(url, timeout_s=REQUEST_TIMEOUT_S)
                    continue
                results.append((status, loop.time() - sent))
        finally:
            await http.close()

    started = loop.time()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = loop.time() - started
    by_status: dict[str, list[float]] = {}
    for status, seconds_taken in results:
        by_status.setdefault(str(status), []).append(seconds_taken)
    ok = by_status.get("200", [])
    return {
        "clients": clients, "seconds": round(elapsed, 3), "requests": len(results),
        "by_status": {k: len(v) for k, v in sorted(by_status.items())},
        "throughput_rps": round(len(ok) / elapsed, 2) if elapsed else 0.0,
        "latency_ms": {status: _percentiles(values) for status, values in sorted(by_status.items())},
    }


def _percentiles(seconds: list[float]) -> dict[str, float]:
    return {"p50": round(ms.agent.percentile(seconds, 50) * 1e3, 3), "p99": round(ms.agent.percentile(seconds, 99) * 1e3, 3)}


def direct_latency(artifact: Path, device: str, body: bytes, count: int) -> dict[str, Any]:
    """p50 of the module called in-process on the same batch-1 input (forward pass only), and what
    decoding that request body costs (JSON and tensor), which a direct call does not pay."""
    import torch

    manifest = json.loads((artifact / "manifest.json").read_text())
    fmt = "torchscript" if "torchscript" in manifest["formats"] else "torch_export"
    threads = ms.cpu_threads(device)  # as the server does (torch is loaded here already: set directly)
    if threads:
        torch.set_num_threads(threads)
    module = ms.agent.load_module(fmt, artifact / manifest["formats"][fmt]["file"], device)
    specs = [ms.InputSpec.from_manifest(s) for s in manifest["inputs"]]
    inputs, _ = ms.parse_body(body, specs, 1)
    batch = ms.agent.prepare(inputs, device, torch.float32)
    forward, decode = [], []
    with ms.agent.inference(device):
        for _ in range(10):
            module(*batch)
        for _ in range(count):
            ms.agent.synchronize(device)
            start = time.perf_counter()
            module(*batch)
            ms.agent.synchronize(device)
            forward.append(time.perf_counter() - start)
    for _ in range(count):
        start = time.perf_counter()
        ms.parse_body(body, specs, 1)
        decode.append(time.perf_counter() - start)
    return {"format": fmt, "torch_threads": torch.get_num_threads(), "forward_ms": _percentiles(forward),
            "decode_request_ms": _percentiles(decode), "body_bytes": len(body)}


def deep_mlp(depth: int = 1200, width: int = 16) -> Any:
    """A model whose forward pass costs about the same at batch 1 as at 32: many tiny layers, so the time
    is operator dispatch, not arithmetic, as for a small model on a GPU (kernel launches). The demo CNN
    on a CPU is the opposite (its convolutions cost the same per row at any batch size); this one shows
    what dynamic batching buys where the hardware has room for it. Input (N, 16); 16 bytes a number."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(20261204)
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for _ in range(depth):
            linear = nn.Linear(width, width)
            # Near the identity, with tanh: activations neither vanish nor blow up over a thousand layers.
            linear.weight.copy_(torch.eye(width) + (torch.rand(width, width, generator=generator) - 0.5) * 0.1)
            linear.bias.copy_((torch.rand(width, generator=generator) - 0.5) * 0.1)
            layers += [linear, nn.Tanh()]
    return nn.Sequential(*layers).eval()


def pack_model(name: str, out_dir: Path) -> Path:
    from eiplane.artifacts.pack import pack

    if name == "tiny-cnn":
        from eiplane.artifacts.demo_model import tiny_cnn

        pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version="1", out_dir=out_dir, batch_sizes=(1, 8, 32))
    elif name == "deep-mlp":
        pack(deep_mlp(), (16,), name="deep-mlp", version="1", out_dir=out_dir, batch_sizes=(1, 8, 32),
             formats=("torchscript",))
    else:
        raise ValueError(f"model {name!r} is not one of {', '.join(MODELS)}")
    return out_dir


def measure(artifact: Path | None = None, device: str = "cpu", seconds: float = 3.0, model: str = "tiny-cnn") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if artifact is None:
            artifact = pack_model(model, work / f"{model}-1")
        body = ms.example_body(artifact)
        direct = direct_latency(artifact, device, body, count=300)
        throughput: dict[str, list[dict[str, Any]]] = {}
        with running_server(artifact, device, [], work) as url:
            serial = asyncio.run(closed_loop(url, body, 1, seconds))
            throughput["batching"] = [asyncio.run(closed_loop(url, body, c, seconds)) for c in CLIENTS]
        with running_server(artifact, device, ["--max-batch-size", "1"], work) as url:
            throughput["no_batching"] = [asyncio.run(closed_loop(url, body, c, seconds)) for c in CLIENTS]
        with running_server(artifact, device, ["--max-queue", str(OVERLOAD_QUEUE)], work) as url:
            overload = asyncio.run(closed_loop(url, body, OVERLOAD_CLIENTS, seconds))
        manifest = json.loads((artifact / "manifest.json").read_text())
    server_p50 = serial["latency_ms"]["200"]["p50"]
    direct_p50 = direct["forward_ms"]["p50"]
    at_32 = {name: next(r["throughput_rps"] for r in rows if r["clients"] == 32) for name, rows in throughput.items()}
    ratio = at_32["batching"] / at_32["no_batching"] if at_32["no_batching"] else float("inf")
    rejected = overload["latency_ms"].get("503")
    served = overload["latency_ms"].get("200")
    others = {k: v for k, v in overload["by_status"].items() if k not in ("200", "503")}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "device": device, "load_average": list(os.getloadavg())},
        "model": {"name": manifest["name"], "version": manifest["version"], "inputs": manifest["inputs"],
                  "batch_sizes": manifest["batch_sizes"]},
        "seconds_per_run": seconds,
        "latency": {"server": serial, "direct": direct},
        "throughput": throughput,
        "overload": {"max_queue": OVERLOAD_QUEUE, **overload},
        "targets": {
            "latency": {"target": "server p50 <= 1.2 x direct p50 + 1 ms", "server_p50_ms": server_p50,
                        "direct_p50_ms": direct_p50, "limit_ms": round(1.2 * direct_p50 + 1, 3),
                        "passed": server_p50 <= 1.2 * direct_p50 + 1},
            "batching": {"target": "throughput with batching >= 2 x without, at 32 clients", "ratio": round(ratio, 2),
                         "passed": ratio >= 2},
            "overload": {"target": "only 200s and 503s, no timeout, 503 p50 <= 200 p50",
                         "rejected": overload["by_status"].get("503", 0), "other_outcomes": others,
                         "p50_503_ms": rejected["p50"] if rejected else None, "p50_200_ms": served["p50"] if served else None,
                         "passed": bool(rejected) and not others and (not served or rejected["p50"] <= served["p50"])},
        },
    }


def render(measured: dict[str, Any]) -> str:
    targets = measured["targets"]
    direct = measured["latency"]["direct"]
    serial = measured["latency"]["server"]["latency_ms"]["200"]
    mark = {True: "PASS", False: "MISS"}
    lines = [
        f"model {measured['model']['name']}-{measured['model']['version']}, device {measured['machine']['device']}, "
        f"{measured['machine']['cpus']} CPUs, {measured['seconds_per_run']} s per run",
        "",
        "1. batch-1 latency, one request at a time",
        f"   server p50 {serial['p50']:.3f} ms (p99 {serial['p99']:.3f}); "
        f"direct forward p50 {direct['forward_ms']['p50']:.3f} ms; decoding the {direct['body_bytes']:,}-byte body "
        f"in-process p50 {direct['decode_request_ms']['p50']:.3f} ms",
        f"   {mark[targets['latency']['passed']]}: {targets['latency']['target']} (limit {targets['latency']['limit_ms']} ms)",
        "",
        "2. closed-loop throughput (requests/s, p50 / p99 ms)",
        "   | clients | batching | no batching |",
        "   | --- | --- | --- |",
    ]
    for on, off in zip(measured["throughput"]["batching"], measured["throughput"]["no_batching"], strict=True):
        cells = []
        for row in (on, off):
            ok = row["latency_ms"].get("200", {"p50": float("nan"), "p99": float("nan")})
            extra = {k: v for k, v in row["by_status"].items() if k != "200"}
            cells.append(f"{row['throughput_rps']:.0f} ({ok['p50']:.1f} / {ok['p99']:.1f})" + (f" {extra}" if extra else ""))
        lines.append(f"   | {on['clients']} | {cells[0]} | {cells[1]} |")
    lines.append(f"   {mark[targets['batching']['passed']]}: {targets['batching']['target']} "
                 f"(ratio {targets['batching']['ratio']})")
    over = measured["overload"]
    lat = over["latency_ms"]
    lines += [
        "",
        f"3. overload: {over['clients']} clients, --max-queue {over['max_queue']}",
        f"   outcomes {over['by_status']}; 503 p50 / p99 "
        + (f"{lat['503']['p50']:.1f} / {lat['503']['p99']:.1f} ms" if "503" in lat else "-")
        + "; 200 p50 / p99 " + (f"{lat['200']['p50']:.1f} / {lat['200']['p99']:.1f} ms" if "200" in lat else "-"),
        f"   {mark[targets['overload']['passed']]}: {targets['overload']['target']}",
    ]
    return "\n".join(lines)
