"""Pack a PyTorch model into an artifact directory (see eiplane.artifacts.manifest).

Runs on the user's machine (the CLI), never in Lambda: torch is imported inside the
functions, so importing this module costs nothing and needs no torch.
"""

from __future__ import annotations

import importlib
import math
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from eiplane.artifacts import ArtifactError
from eiplane.artifacts.manifest import (
    EXAMPLES_FILE,
    MANIFEST_FILE,
    SLUG_PATTERN,
    TORCH_EXPORT_FILE,
    TORCHSCRIPT_FILE,
    Examples,
    Formats,
    InputSpec,
    Manifest,
    Target,
    Tolerances,
    TorchExportFormat,
    TorchScriptFormat,
    sha256_file,
    write_manifest,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMATS = ("torchscript", "torch_export")
TARGETS = ("gpu", "inferentia", "eia", "any")
INPUT_DTYPES = ("float32", "float16", "bfloat16")
_FACTORY_SPEC = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def pack(
    model: nn.Module,
    example_input_shape: tuple[int, ...],
    *,
    name: str,
    version: str,
    out_dir: str | Path,
    batch_sizes: Iterable[int] = (1, 8, 32),
    target: Target = "any",
    dtype: str = "float32",
    examples: int = 8,
    seed: int = 0,
    formats: Iterable[str] = FORMATS,
) -> Manifest:
    """Pack `model` (one input of shape (batch, *example_input_shape)) into `out_dir`.

    Writes model.pt (TorchScript: trace, or script where tracing fails or does not reproduce
    the golden outputs), model.pt2 (torch.export with a dynamic batch dimension; omitted with a
    note where the model does not export), examples.pt and, last, manifest.json. Every model
    file is reloaded from disk and must reproduce the golden outputs (CPU, fp32) within the
    fp32 tolerance at every batch size, or ArtifactError.
    """
    import torch

    shape = tuple(example_input_shape)
    sizes = sorted(set(batch_sizes))
    wanted = list(dict.fromkeys(formats))
    _check_arguments(name, version, shape, sizes, target, dtype, examples, wanted)
    _check_cpu_fp32(model)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The old manifest goes first: until the new one is written last, the directory reads as an unfinished pack.
    for stale in (MANIFEST_FILE, TORCHSCRIPT_FILE, TORCH_EXPORT_FILE, EXAMPLES_FILE):
        (out / stale).unlink(missing_ok=True)

    model.eval()
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn((examples, *shape), generator=generator, dtype=torch.float32).to(getattr(torch, dtype))
    with torch.inference_mode():
        golden = [t.detach().clone() for t in flatten_outputs(model(inputs.float()))]
    if not all(bool(torch.isfinite(g).all()) for g in golden):
        raise ArtifactError("the model's outputs on the example inputs hold NaN or Inf: nothing to compare against")
    # torch specialises a dimension of size 1 while tracing or exporting: build from at least two rows.
    build_inputs = batch_of(inputs, max(2, examples)).float()
    tolerance = Tolerances().fp32
    notes: list[str] = []
    found: dict[str, Any] = {}
    high = max(sizes[-1], examples, build_inputs.shape[0])

    if "torchscript" in wanted:
        method = _pack_torchscript(model, build_inputs, out / TORCHSCRIPT_FILE, inputs, golden, sizes, tolerance, notes)
        found["torchscript"] = TorchScriptFormat(file=TORCHSCRIPT_FILE, method=method)
    if "torch_export" in wanted:
        if _pack_torch_export(model, build_inputs, high, out / TORCH_EXPORT_FILE, inputs, golden, sizes, tolerance, notes):
            found["torch_export"] = TorchExportFormat.model_validate(
                {"file": TORCH_EXPORT_FILE, "dynamic_batch": {"min": 1, "max": high}}
            )
        elif "torchscript" not in wanted:
            raise ArtifactError("torch.export failed and no other format was asked for: " + "; ".join(notes))

    torch.save({"inputs": [inputs.contiguous()], "outputs": [g.contiguous() for g in golden]}, out / EXAMPLES_FILE)
    try:
        manifest = _manifest(name, version, target, found, model, dtype, shape, sizes, examples, out, notes)
    except ValidationError as exc:
        raise ArtifactError(f"cannot write the manifest: {exc}") from exc
    write_manifest(manifest, out)
    return manifest


def _manifest(
    name: str, version: str, target: Target, found: dict[str, Any], model: nn.Module, dtype: str, shape: tuple[int, ...],
    sizes: list[int], examples: int, out: Path, notes: list[str],
) -> Manifest:
    import torch

    names = [fmt.file for fmt in found.values()] + [EXAMPLES_FILE]
    return Manifest(
        name=name,
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        torch_version=torch.__version__,
        target=target,
        formats=Formats(**found),
        inputs=[InputSpec.model_validate({"name": _input_name(model), "dtype": dtype, "shape": [None, *shape]})],
        batch_sizes=sizes,
        examples=Examples(file=EXAMPLES_FILE, count=examples),
        files={f: sha256_file(out / f) for f in names},
        notes=notes,
    )


# --- model loading -------------------------------------------------------------------------

def load_model_factory(spec: str) -> nn.Module:
    """Import `package.module:factory` (the attribute may be dotted) and call it with no arguments."""
    import torch

    match = _FACTORY_SPEC.match(spec)
    if not match:
        raise ArtifactError(f"model factory {spec!r} must look like 'package.module:factory'")
    module_name, attribute = match.groups()
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ArtifactError(f"model factory {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise ArtifactError(f"model factory {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ArtifactError(f"model factory {spec!r}: {module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise ArtifactError(f"model factory {spec!r} is not callable")
    try:
        model = target()
    except Exception as exc:
        raise ArtifactError(f"model factory {spec!r} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ArtifactError(f"model factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def load_saved_module(path: str | Path, *, trusted: bool = False) -> nn.Module:
    """A TorchScript file (torch.jit.load), or, with `trusted=True` only, a whole nn.Module
    saved with torch.save."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} is not a file")
    if _is_torchscript(path):
        # TorchScript's loader rebuilds only TorchScript types; the graph it loads runs when
        # called. Pack it only from a file you made or trust (the agent checks digests first).
        try:
            with _quiet_torchscript():
                return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ArtifactError(f"{path} could not be loaded as TorchScript: {exc}") from exc
    if not trusted:
        raise ArtifactError(
            f"{path} is not TorchScript. Loading a pickled nn.Module runs arbitrary Python code from the file "
            "(torch.load(weights_only=False)); pass trusted=True only for a file you made yourself, or pack "
            "from a model factory ('package.module:factory')"
        )
    # weights_only=False unpickles arbitrary objects, and unpickling can execute any code: that is
    # why torch made weights_only=True the default (2.6) and why this path needs an explicit opt-in.
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ArtifactError(f"{path} could not be loaded with torch.load: {exc}") from exc
    if not isinstance(loaded, torch.nn.Module):
        hint = " (a state_dict: load it into the model in a factory instead)" if isinstance(loaded, dict) else ""
        raise ArtifactError(f"{path} holds a {type(loaded).__name__}, not a torch.nn.Module{hint}")
    return loaded


def _is_torchscript(path: Path) -> bool:
    # A TorchScript archive carries its Python-free code under <archive>/code/; torch.save's does not.
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in entry for entry in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


# --- shared with the tests -----------------------------------------------------------------

def flatten_outputs(outputs: Any) -> list[torch.Tensor]:
    """A model's outputs as a flat list of tensors: a tensor, or tuples / lists / dicts (by key) of them."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, list | tuple):
        return [t for item in outputs for t in flatten_outputs(item)]
    if isinstance(outputs, dict):
        return [t for key in sorted(outputs) for t in flatten_outputs(outputs[key])]
    raise ArtifactError(f"model outputs must be tensors, or tuples, lists or dicts of tensors; got {type(outputs).__name__}")


def relative_error(outputs: list[torch.Tensor], golden: list[torch.Tensor]) -> float:
    """max |output - golden| / max |golden| per tensor, the largest over the tensors (the manifest's metric)."""
    import torch

    if len(outputs) != len(golden):
        return math.inf
    worst = 0.0
    for out, ref in zip(outputs, golden, strict=True):
        if out.shape != ref.shape:
            return math.inf
        out32, ref32 = out.detach().to("cpu", torch.float32), ref.detach().to("cpu", torch.float32)
        if out32.numel() == 0:
            continue
        if not bool(torch.isfinite(out32).all()):
            return math.inf
        scale = float(ref32.abs().max()) or 1.0
        worst = max(worst, float((out32 - ref32).abs().max()) / scale)
    return worst


def batch_of(inputs: torch.Tensor, size: int) -> torch.Tensor:
    """`size` rows made by repeating the example rows in order (and slicing)."""
    import torch

    count = inputs.shape[0]
    repeats = -(-size // count)
    return torch.cat([inputs] * repeats)[:size] if repeats > 1 else inputs[:size]


def verify_module(module: Any, inputs: torch.Tensor, golden: list[torch.Tensor], batch_sizes: Iterable[int]) -> float:
    """The largest relative error of `module` on the examples and at every batch size (CPU, fp32)."""
    import torch

    worst = 0.0
    with torch.inference_mode():
        for size in [inputs.shape[0], *batch_sizes]:
            outputs = flatten_outputs(module(batch_of(inputs, size).float()))
            expected = [batch_of(g, size) for g in golden]
            worst = max(worst, relative_error(outputs, expected))
    return worst


# --- formats -------------------------------------------------------------------------------

def _pack_torchscript(
    model: nn.Module, build_inputs: torch.Tensor, path: Path, inputs: torch.Tensor, golden: list[torch.Tensor],
    sizes: list[int], tolerance: float, notes: list[str],
) -> str:
    import torch

    methods = ["script"] if isinstance(model, torch.jit.ScriptModule) else ["trace", "script"]
    for method in methods:
        try:
            with _quiet_torchscript():
                if method == "trace":
                    compiled = torch.jit.trace(model, (build_inputs,), strict=False)  # strict=False: list/dict outputs
                elif isinstance(model, torch.jit.ScriptModule):
                    compiled = model
                else:
                    compiled = torch.jit.script(model)
                torch.jit.save(compiled, str(path))
                error = verify_module(torch.jit.load(str(path), map_location="cpu"), inputs, golden, sizes)
        except Exception as exc:
            notes.append(f"torchscript: torch.jit.{method} failed: {_first_line(exc)}")
            path.unlink(missing_ok=True)
            continue
        if error <= tolerance:
            return method
        notes.append(f"torchscript: torch.jit.{method} does not reproduce the golden outputs (error {error:.3g} > {tolerance:g})")
        path.unlink(missing_ok=True)
    raise ArtifactError("no TorchScript reproduces the model: " + "; ".join(notes))


def _pack_torch_export(
    model: nn.Module, build_inputs: torch.Tensor, high: int, path: Path, inputs: torch.Tensor, golden: list[torch.Tensor],
    sizes: list[int], tolerance: float, notes: list[str],
) -> bool:
    import torch

    try:
        # min=1 is accepted (torch 2.13) and batch 1 runs, as long as the example batch is not 1.
        batch = torch.export.Dim("batch", min=1, max=high)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            program = torch.export.export(model, (build_inputs,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
        error = verify_module(torch.export.load(str(path)).module(), inputs, golden, sizes)
    except Exception as exc:
        notes.append(f"torch_export: omitted, torch.export failed: {_first_line(exc)}")
        path.unlink(missing_ok=True)
        return False
    if error > tolerance:
        notes.append(f"torch_export: omitted, the exported program does not reproduce the golden outputs (error {error:.3g})")
        path.unlink(missing_ok=True)
        return False
    return True


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    # torch >= 2.10 warns that TorchScript is deprecated on every trace/script/save; eiplane
    # keeps it on purpose (Elastic Inference and Neuron run TorchScript), so the warning is noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(deprecated|TorchScript).*")
        warnings.filterwarnings("ignore", category=_tracer_warning())
        yield


def _tracer_warning() -> type[Warning]:
    import torch

    return getattr(torch.jit, "TracerWarning", UserWarning)


# --- checks --------------------------------------------------------------------------------

def _check_arguments(
    name: str, version: str, shape: tuple[int, ...], sizes: list[int], target: str, dtype: str, examples: int,
    formats: list[str],
) -> None:
    problems = []
    for label, value in (("name", name), ("version", version)):
        if not re.fullmatch(SLUG_PATTERN, value):
            problems.append(f"{label} {value!r} must match {SLUG_PATTERN}")
    if not shape or not all(isinstance(d, int) and d >= 1 for d in shape):
        problems.append(f"example_input_shape {shape} must be positive integers, without the batch dimension")
    if not sizes or sizes[0] < 1 or len(sizes) > 16:
        problems.append(f"batch_sizes {sizes} must be 1 to 16 positive integers")
    if target not in TARGETS:
        problems.append(f"target {target!r} must be one of {TARGETS}")
    if dtype not in INPUT_DTYPES:
        problems.append(f"dtype {dtype!r} must be one of {INPUT_DTYPES} (golden outputs are computed in float32)")
    if not 1 <= examples <= 4096:
        problems.append(f"examples {examples} must be between 1 and 4096")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        problems.append(f"formats {formats} must be a non-empty subset of {FORMATS}")
    if problems:
        raise ArtifactError("cannot pack: " + "; ".join(problems))


def _check_cpu_fp32(model: nn.Module) -> None:
    import torch

    tensors = [*model.parameters(), *model.buffers()]
    off = {f"{t.device}/{t.dtype}" for t in tensors
           if t.device.type != "cpu" or (t.is_floating_point() and t.dtype != torch.float32)}
    if off:
        raise ArtifactError(
            f"pack needs the model on the CPU in float32 (golden outputs are CPU fp32); found {sorted(off)}: "
            "call model.float().cpu() first"
        )


def _input_name(model: nn.Module) -> str:
    import inspect

    try:
        parameters = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return "x"
    first = parameters[0] if parameters else "x"
    return first if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", first) else "x"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
