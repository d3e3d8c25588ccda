#!/usr/bin/env python3
"""eiplane validation agent: proves that a packed model runs on this instance's accelerator.

Copied alone onto an instance and run there (SSM Run Command), so it imports only the Python
standard library and torch (torch only after the digests check out, so that a missing torch
still yields a result file). Python 3.8+.

    python3 eiplane_agent.py --artifact DIR --manifest-sha256 HEX --device {cuda,neuron,eia,cpu}
        --precisions fp32,fp16,bf16 --instance-id ID --out result.json
        [--iterations 30] [--warmup 3] [--formats torchscript,torch_export]

Steps: (a) manifest.json must hash to --manifest-sha256 and every file to its digest in the
manifest, else nothing is loaded (torch.jit.load of an untrusted file runs its code);
(b) load each format (timed apart, load_s); (c) per precision: outputs on the examples against
the CPU fp32 golden outputs, max |out - golden| / max |golden| per output tensor, within the
manifest's tolerance; then latency at each manifest batch size (inputs already on the device,
forward pass only); (d) write the result JSON, also on every failure.

Exit status: 0 all passed; 2 digest check failed; 3 outputs outside tolerance;
4 load or runtime error; 64 bad command line (no result file). EIPLANE_AGENT_DEVICE, if set,
overrides --device (the embedded AWS sets "cpu": its instances have no accelerator).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # annotations only: the agent must run on Python 3.8 (no runtime generics, no X | Y)
    import torch

    Json = dict[str, Any]

SCHEMA_VERSION = 1
DEVICES = ("cuda", "neuron", "eia", "cpu")
PRECISIONS = ("fp32", "fp16", "bf16")
FORMATS = ("torchscript", "torch_export")
DEVICE_ENV = "EIPLANE_AGENT_DEVICE"
MANIFEST_FILE = "manifest.json"
EXIT_OK, EXIT_DIGEST, EXIT_PARITY, EXIT_ERROR, EXIT_USAGE = 0, 2, 3, 4, 64
# Most severe first: the overall failure is the first stage, in this order, that failed.
STAGES = ("digest", "load", "runtime", "parity")
EXIT_FOR_STAGE = {"digest": EXIT_DIGEST, "load": EXIT_ERROR, "runtime": EXIT_ERROR, "parity": EXIT_PARITY}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class Failures:
    """Every problem met, by stage; the result reports the most severe stage's messages."""

    def __init__(self) -> None:
        self.by_stage: dict[str, list[str]] = {stage: [] for stage in STAGES}

    def add(self, stage: str, message: str) -> None:
        self.by_stage[stage].append(message)

    def worst(self) -> Json | None:
        for stage in STAGES:
            if self.by_stage[stage]:
                return {"stage": stage, "message": "; ".join(self.by_stage[stage])}
        return None

    def exit_code(self) -> int:
        worst = self.worst()
        return EXIT_OK if worst is None else EXIT_FOR_STAGE[worst["stage"]]


# --- command line ----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's own status (2) would read as a digest failure.
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in values if v not in allowed]
        if not values or unknown:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(allowed)}, got {text!r}")
        return list(dict.fromkeys(values))
    return parse


def _sha256_arg(text: str) -> str:
    if not _HEX64.match(text):
        raise argparse.ArgumentTypeError("expected 64 hex digits")
    return text.lower()


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value
    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="eiplane_agent.py", description="Verify, load and validate an eiplane model artifact.")
    parser.add_argument("--artifact", required=True, type=Path, help="artifact directory (holds manifest.json)")
    parser.add_argument("--manifest-sha256", required=True, type=_sha256_arg, help="expected sha256 of manifest.json")
    parser.add_argument("--device", required=True, choices=DEVICES)
    parser.add_argument("--precisions", type=_choices(PRECISIONS), default=["fp32"])
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")
    parser.add_argument("--iterations", type=_count(1), default=30)
    parser.add_argument("--warmup", type=_count(0), default=3)
    parser.add_argument("--formats", type=_choices(FORMATS), default=list(FORMATS))
    args = parser.parse_args(argv)
    override = os.environ.get(DEVICE_ENV, "").strip()
    if override and override not in DEVICES:
        parser.error(f"{DEVICE_ENV}={override!r} is not one of {', '.join(DEVICES)}")
    return args


# --- (a) digests ---------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifact(directory: Path, expected: str, failures: Failures) -> tuple[Json, Json | None]:
    """The result's "artifact" section and the manifest, or None when anything fails to verify."""
    section: Json = {"verified": False, "manifest_sha256": None, "manifest_sha256_expected": expected, "files": {}}
    try:
        raw = (directory / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        failures.add("digest", f"cannot read {directory / MANIFEST_FILE}: {exc.strerror or exc}")
        return section, None
    # Parsed from the very bytes that were hashed: the file cannot change in between.
    section["manifest_sha256"] = actual = hashlib.sha256(raw).hexdigest()
    if actual != expected:
        failures.add("digest", f"{MANIFEST_FILE} has sha256 {actual}, expected {expected}")
        return section, None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        failures.add("digest", f"{MANIFEST_FILE} is not JSON: {exc}")
        return section, None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        failures.add("digest", f"{MANIFEST_FILE} has no files to verify")
        return section, None
    problems = []
    for name, digest in sorted(files.items()):
        if not (isinstance(name, str) and _SAFE_NAME.match(name) and name != MANIFEST_FILE and isinstance(digest, str)):
            problems.append(f"files lists {name!r}, which is not a plain file name with a digest")
            continue
        path = directory / name
        got = sha256_file(path) if path.is_file() else None
        ok = got == digest.lower()
        section["files"][name] = {"expected": digest, "actual": got, "ok": ok}
        if not ok:
            problems.append(f"{name} is missing" if got is None else f"{name} has sha256 {got}, expected {digest}")
    for name in _referenced_files(manifest):
        if name not in files:
            problems.append(f"{name} is used by the manifest but has no digest")
    for problem in problems:
        failures.add("digest", problem)
    section["verified"] = not problems
    return section, (manifest if not problems else None)


def _referenced_files(manifest: Json) -> list[str]:
    names = [fmt.get("file") for fmt in (manifest.get("formats") or {}).values() if isinstance(fmt, dict)]
    names.append((manifest.get("examples") or {}).get("file"))
    return [str(name) for name in names]


# --- outputs and errors ----------------------------------------------------------------------

def flatten_outputs(outputs: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in flatten_outputs(item)]
    if isinstance(outputs, dict):
        return [t for key in sorted(outputs) for t in flatten_outputs(outputs[key])]
    raise TypeError(f"model outputs must be tensors, or tuples, lists or dicts of tensors; got {type(outputs).__name__}")


def relative_error(outputs: list[torch.Tensor], golden: list[torch.Tensor]) -> tuple[float | None, str | None]:
    """(max |out - golden| / max |golden|, largest over the output tensors; None and why if not comparable)."""
    import torch

    if len(outputs) != len(golden):
        return None, f"the model returned {len(outputs)} output tensors, the golden outputs have {len(golden)}"
    worst = 0.0
    for index, (out, ref) in enumerate(zip(outputs, golden)):  # noqa: B905 - lengths checked; strict= needs 3.10
        if tuple(out.shape) != tuple(ref.shape):
            return None, f"output {index} has shape {tuple(out.shape)}, golden {tuple(ref.shape)}"
        out32 = out.detach().to("cpu", torch.float32)
        ref32 = ref.detach().to("cpu", torch.float32)
        if out32.numel() == 0:
            continue
        if not bool(torch.isfinite(out32).all()):
            return None, f"output {index} holds NaN or Inf"
        scale = float(ref32.abs().max()) or 1.0
        error = float((out32 - ref32).abs().max()) / scale
        if not math.isfinite(error):
            return None, f"golden output {index} holds NaN or Inf"
        worst = max(worst, error)
    return worst, None


def batch_of(tensor: torch.Tensor, size: int) -> torch.Tensor:
    import torch

    repeats = -(-size // tensor.shape[0])
    return torch.cat([tensor] * repeats)[:size] if repeats > 1 else tensor[:size]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- devices ---------------------------------------------------------------------------------

def device_problem(device: str, manifest: Json) -> str | None:
    """Why this device cannot run the artifact at all, or None."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return (f"device cuda: torch.cuda.is_available() is False (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda}); is the NVIDIA driver loaded?")
    if device == "eia" and not _supports_eia():
        return (f"device eia needs the Elastic Inference build of PyTorch (torch.jit.optimized_execution with a "
                f"target_device); torch {torch.__version__} has none. Elastic Inference is no longer available from "
                f"AWS: use the gpu or inferentia backend")
    if device == "neuron":
        try:
            import torch_neuronx  # type: ignore[import-not-found]  # noqa: F401 - registers the Neuron ops
        except Exception as exc:
            return f"device neuron needs torch_neuronx (the Neuron DLAMI's environment): import failed: {exc}"
        if manifest.get("target") != "inferentia":
            return (f"device neuron runs models compiled with torch_neuronx.trace (pack with target 'inferentia'); "
                    f"this artifact's target is {manifest.get('target')!r}")
    return None


def _supports_eia() -> bool:
    import torch

    try:
        return len(inspect.signature(torch.jit.optimized_execution).parameters) >= 2
    except (TypeError, ValueError, AttributeError):
        return False


def torch_device(device: str) -> str:
    # Elastic Inference and Neuron take CPU tensors; the runtime moves them to the accelerator.
    return "cuda" if device == "cuda" else "cpu"


@contextlib.contextmanager
def inference(device: str) -> Iterator[None]:
    import torch

    with contextlib.ExitStack() as stack:
        stack.enter_context(getattr(torch, "inference_mode", torch.no_grad)())
        if device == "eia":
            stack.enter_context(torch.jit.optimized_execution(True, {"target_device": "eia:0"}))  # type: ignore[call-arg]
        yield


@contextlib.contextmanager
def strict_fp32(device: str) -> Iterator[None]:
    """fp32 means IEEE fp32: CUDA would otherwise run convolutions (and maybe matmuls) in TF32."""
    import torch

    if device != "cuda":
        yield
        return
    saved: list[tuple[Any, str, Any]] = []
    targets: list[tuple[Any, str, Any]] = []
    matmul = torch.backends.cuda.matmul
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and conv is not None and hasattr(conv, "fp32_precision"):
        targets = [(matmul, "fp32_precision", "ieee"), (conv, "fp32_precision", "ieee")]
    else:
        targets = [(matmul, "allow_tf32", False), (torch.backends.cudnn, "allow_tf32", False)]
    try:
        for owner, name, value in targets:
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# --- (b) load --------------------------------------------------------------------------------

def load_module(fmt: str, path: Path, device: str) -> Any:
    import torch

    target = torch_device(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation warning on every load (torch >= 2.10)
        if fmt == "torchscript":
            return torch.jit.load(str(path), map_location=target)
        if device in ("eia", "neuron"):
            raise RuntimeError(f"device {device} runs TorchScript only, not a torch.export program")
        if not hasattr(torch, "export") or not hasattr(torch.export, "load"):
            raise RuntimeError(f"torch {torch.__version__} has no torch.export.load")
        return torch.export.load(str(path)).module().to(target)


# --- (c) parity and latency ------------------------------------------------------------------

def dtype_of(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def prepare(tensors: list[torch.Tensor], device: str, dtype: torch.dtype | None) -> list[torch.Tensor]:
    """Floating-point inputs cast to `dtype` (None: as stored), all moved to the device."""
    return [(t.to(dtype) if dtype is not None and t.is_floating_point() else t).to(torch_device(device)) for t in tensors]


def run_precision(
    load: Callable[[], Any], module: Any, precision: str, examples: Json, batch_sizes: list[int],
    tolerance: float, device: str, args: argparse.Namespace, failures: Failures, label: str,
) -> Json:
    entry: Json = {"max_rel_error": None, "tolerance": tolerance, "passed": False, "mode": None, "note": None,
                   "error": None, "latency": {}}
    dtype = dtype_of(precision)
    inputs: list[torch.Tensor] = examples["inputs"]
    golden: list[torch.Tensor] = examples["outputs"]
    call: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None
    input_dtype: torch.dtype | None = dtype
    problems: list[str] = []

    if device == "neuron":
        # torch_neuronx.trace fixes the precision at compile time (its auto-cast options): run the
        # model as compiled, on the stored inputs, and hold it to this precision's tolerance.
        modes = ["as_compiled"]
    elif precision == "fp32" or device == "eia":
        modes = ["cast"]
    else:
        # Cast the weights first (what a deployment would do); where the graph holds fixed-dtype
        # constants and the cast fails, autocast on fp32 weights, the other common way to serve fp16/bf16.
        modes = ["cast", "autocast"]
    for mode in modes:
        input_dtype = None if mode == "as_compiled" else dtype
        try:
            candidate = load() if mode == "autocast" else module
            if mode == "cast" and precision != "fp32":
                candidate = candidate.to(dtype)
            call = _caller(candidate, mode, dtype, device)
            with strict_fp32(device) if precision == "fp32" else contextlib.nullcontext():
                outputs = call(prepare(inputs, device, input_dtype))
        except Exception as exc:
            problems.append(f"{mode}: {_describe(exc)}")
            call = None
            continue
        entry["mode"] = mode
        break
    if call is None:
        entry["error"] = "; ".join(problems)
        failures.add("runtime", f"{label} {precision}: {entry['error']}")
        return entry
    if problems:
        entry["note"] = f"ran under {entry['mode']} because {'; '.join(problems)}"
    if entry["mode"] == "as_compiled":
        entry["note"] = "Neuron: the precision was fixed when the model was compiled; inputs as stored"

    error, why = relative_error(outputs, golden)
    errors = [error]
    for size in batch_sizes:
        try:
            with strict_fp32(device) if precision == "fp32" else contextlib.nullcontext():
                entry["latency"][str(size)], batch_error = time_batch(call, inputs, golden, size, device, input_dtype, args)
        except Exception as exc:
            entry["latency"][str(size)] = {"error": _describe(exc)}
            failures.add("runtime", f"{label} {precision} batch {size}: {_describe(exc)}")
            continue
        errors.append(batch_error)
    if why is None and any(e is None for e in errors):
        why = "outputs at some batch size hold NaN or Inf, or have the wrong shape"
    entry["max_rel_error"] = None if why else max(e for e in errors if e is not None)
    entry["passed"] = why is None and entry["max_rel_error"] <= tolerance
    if why:
        entry["error"] = why
    if not entry["passed"]:
        shown = why or f"max_rel_error {entry['max_rel_error']:.3g} > tolerance {tolerance:g}"
        failures.add("parity", f"{label} {precision}: {shown}")
    return entry


def _caller(module: Any, mode: str, dtype: torch.dtype, device: str) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    import torch

    def call(batch: list[torch.Tensor]) -> list[torch.Tensor]:
        with inference(device):
            if mode == "autocast":
                with torch.autocast(device_type=torch_device(device), dtype=dtype):
                    return flatten_outputs(module(*batch))
            return flatten_outputs(module(*batch))
    return call


def time_batch(
    call: Callable[[list[torch.Tensor]], list[torch.Tensor]], inputs: list[torch.Tensor], golden: list[torch.Tensor],
    size: int, device: str, dtype: torch.dtype | None, args: argparse.Namespace,
) -> tuple[Json, float | None]:
    batch = prepare([batch_of(t, size) for t in inputs], device, dtype)
    # The first run also checks this batch size against the golden outputs (catches shapes baked in by tracing).
    error, _ = relative_error(call(batch), [batch_of(g, size) for g in golden])
    for _ in range(args.warmup):
        call(batch)
    synchronize(device)
    seconds = []
    for _ in range(args.iterations):
        synchronize(device)
        start = time.perf_counter()
        call(batch)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    mean = sum(seconds) / len(seconds)
    return {
        "p50_ms": round(percentile(seconds, 50) * 1e3, 4),
        "p99_ms": round(percentile(seconds, 99) * 1e3, 4),
        "mean_ms": round(mean * 1e3, 4),
        "throughput_per_s": round(size / mean, 2) if mean > 0 else None,
        "iterations": args.iterations,
        "max_rel_error": error,
    }, error


def run_format(
    fmt: str, path: Path, precisions: list[str], manifest: Json, examples: Json, device: str,
    args: argparse.Namespace, failures: Failures,
) -> Json:
    entry: Json = {"file": path.name, "load_s": None, "error": None, "precisions": {}}
    try:
        start = time.perf_counter()
        module = load_module(fmt, path, device)
        synchronize(device)
        entry["load_s"] = round(time.perf_counter() - start, 4)
    except Exception as exc:
        entry["error"] = {"stage": "load", "message": _describe(exc)}
        failures.add("load", f"{fmt}: {_describe(exc)}")
        return entry
    tolerances = manifest.get("tolerances") or {}
    batch_sizes = [int(b) for b in manifest.get("batch_sizes") or []]

    def fresh() -> Any:
        return load_module(fmt, path, device)

    for index, precision in enumerate(precisions):
        # Each precision starts from the fp32 weights as loaded: casting fp16 weights on to bf16 would compound.
        try:
            candidate = module if index == 0 else fresh()
        except Exception as exc:
            entry["precisions"][precision] = {"error": _describe(exc)}
            failures.add("runtime", f"{fmt} {precision}: reloading failed: {_describe(exc)}")
            continue
        entry["precisions"][precision] = run_precision(
            fresh, candidate, precision, examples, batch_sizes, float(tolerances.get(precision, 0.0)), device, args,
            failures, fmt,
        )
    return entry


# --- (d) result ------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # noqa: UP017 - datetime.UTC needs 3.11


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:500]}" if lines else type(exc).__name__


def _agent_sha256() -> str | None:
    try:
        return sha256_file(Path(__file__))
    except OSError:
        return None


def _finite(value: Any) -> Any:
    """NaN and Inf are not JSON: they become null (the entry's error says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def write_result(path: Path, result: Json) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(_finite(result), indent=2, sort_keys=True, allow_nan=False) + "\n")
    partial.replace(path)


def validate(args: argparse.Namespace, result: Json, failures: Failures) -> None:
    section, manifest = verify_artifact(args.artifact, args.manifest_sha256, failures)
    result["artifact"] = section
    if manifest is None:
        return  # never load anything that did not verify

    try:
        import torch
    except Exception as exc:
        failures.add("load", f"torch cannot be imported: {exc}")
        return
    result["torch_version"] = torch.__version__
    device = result["device"]
    if device == "cuda" and torch.cuda.is_available():
        result["cuda_device_name"] = torch.cuda.get_device_name(0)
        result["notes"].append("fp32 runs with TF32 off (IEEE fp32 matmuls and convolutions)")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        failures.add("load", f"manifest schema_version {manifest.get('schema_version')!r} is not {SCHEMA_VERSION}")
        return
    problem = device_problem(device, manifest)
    if problem:
        failures.add("load", problem)
        return

    present = manifest.get("formats") or {}
    chosen = [f for f in args.formats if f in present]
    skipped = [f for f in args.formats if f not in present]
    if skipped:
        result["notes"].append(f"the artifact has no {', '.join(skipped)} format")
    if not chosen:
        failures.add("load", f"the artifact has none of the formats asked for ({','.join(args.formats)})")
        return
    try:
        examples_path = args.artifact / manifest["examples"]["file"]
        examples = torch.load(str(examples_path), map_location="cpu", weights_only=True)
        if not (isinstance(examples, dict) and examples.get("inputs") and examples.get("outputs")):
            raise ValueError("expected {'inputs': [tensor, ...], 'outputs': [tensor, ...]}")
    except Exception as exc:
        failures.add("load", f"examples: {_describe(exc)}")
        return
    for fmt in chosen:
        result["formats"][fmt] = run_format(
            fmt, args.artifact / present[fmt]["file"], args.precisions, manifest, examples, device, args, failures,
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    override = os.environ.get(DEVICE_ENV, "").strip()
    device = override or args.device
    note = None
    if override and override != args.device:
        note = f"{DEVICE_ENV}={override} overrides --device {args.device}: the numbers are not from a {args.device} device"
    elif override:
        note = f"{DEVICE_ENV}={override} (same as --device)"
    result: Json = {
        "schema_version": SCHEMA_VERSION,
        "instance_id": args.instance_id,
        "requested_device": args.device,
        "device": device,
        "device_note": note,
        "torch_version": None,
        "cuda_device_name": None,
        "python_version": platform.python_version(),
        "agent_sha256": _agent_sha256(),
        "artifact": {"verified": False, "manifest_sha256": None, "manifest_sha256_expected": args.manifest_sha256,
                     "files": {}},
        "formats": {},
        "notes": [],
        "passed": False,
        "failure": None,
        "started_at": _now(),
        "finished_at": None,
    }
    failures = Failures()
    try:
        validate(args, result, failures)
    except Exception as exc:  # the result file must be written whatever happened
        failures.add("runtime", _describe(exc))
    result["failure"] = failures.worst()
    result["passed"] = result["failure"] is None
    result["finished_at"] = _now()
    write_result(args.out, result)
    print(json.dumps({"passed": result["passed"], "failure": result["failure"], "out": str(args.out)}))
    return failures.exit_code()


if __name__ == "__main__":
    sys.exit(main())
