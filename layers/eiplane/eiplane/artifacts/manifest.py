"""The artifact manifest (`manifest.json`, schema_version 1). No torch: Lambda code reads it.

An artifact directory holds the model files, `examples.pt` and `manifest.json`, which is
written last, so a directory without it is an unfinished pack. `files` maps every other file
to its sha256; the validation agent checks `manifest.json` against the digest it is given,
then every file against `files`, before it loads anything (loading TorchScript runs code).

Tolerance metric. For each output tensor, the error of a run against the golden outputs
(CPU, fp32) is

    max |output - golden| / max |golden|

over all of the tensor's elements, that is relative to the largest golden magnitude, not
element by element (near-zero logits would make an element-wise ratio meaningless). With
several output tensors the error is the largest per-tensor error. An all-zero golden tensor
makes the denominator 1 (absolute error); NaN or Inf in an output fails. A precision passes
when its error is at most `tolerances[precision]`. Measured on an NVIDIA H200 with a small
CNN (see AWS-FACTS.md, "TorchScript today"): fp32 5e-5, fp16 7e-4, bf16 4e-3 to 6e-3; the
defaults sit above those and an order of magnitude apart, so a model silently running in a
lower precision fails the higher precision's check.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eiplane.artifacts import ArtifactError

SCHEMA_VERSION = 1  # Manifest.schema_version
MANIFEST_FILE = "manifest.json"
TORCHSCRIPT_FILE = "model.pt"
TORCH_EXPORT_FILE = "model.pt2"
EXAMPLES_FILE = "examples.pt"
DEFAULT_TOLERANCES: dict[str, float] = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 3e-2}
SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"  # as ModelArtifactRef in eiplane.models.spec

Target = Literal["gpu", "inferentia", "eia", "any"]
FormatName = Literal["torchscript", "torch_export"]
InputDtype = Literal["float32", "float16", "bfloat16"]
# A plain file name inside the artifact directory: no separators, no "..", never the manifest itself.
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TorchScriptFormat(_Strict):
    file: FileName = TORCHSCRIPT_FILE
    method: Literal["trace", "script"]


class DynamicBatch(_Strict):
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> DynamicBatch:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class TorchExportFormat(_Strict):
    file: FileName = TORCH_EXPORT_FILE
    dynamic_batch: DynamicBatch


class Formats(_Strict):
    torchscript: TorchScriptFormat | None = None
    torch_export: TorchExportFormat | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Formats:
        if self.torchscript is None and self.torch_export is None:
            raise ValueError("an artifact needs at least one format")
        return self

    def present(self) -> dict[str, TorchScriptFormat | TorchExportFormat]:
        found: dict[str, TorchScriptFormat | TorchExportFormat] = {}
        if self.torchscript is not None:
            found["torchscript"] = self.torchscript
        if self.torch_export is not None:
            found["torch_export"] = self.torch_export
        return found


class InputSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    dtype: InputDtype = "float32"
    shape: list[int | None] = Field(min_length=1, description="null marks the batch dimension (always the first)")

    @field_validator("shape")
    @classmethod
    def _batch_first(cls, shape: list[int | None]) -> list[int | None]:
        if shape[0] is not None:
            raise ValueError("the first dimension is the batch dimension and must be null")
        if any(dim is None or dim < 1 for dim in shape[1:]):
            raise ValueError("every dimension after the batch dimension must be a positive integer")
        return shape


class Examples(_Strict):
    file: FileName = EXAMPLES_FILE
    count: int = Field(ge=1, le=4096)


class Golden(_Strict):
    device: Literal["cpu"] = "cpu"
    dtype: Literal["float32"] = "float32"


class Tolerances(_Strict):
    fp32: float = Field(default=DEFAULT_TOLERANCES["fp32"], gt=0)
    fp16: float = Field(default=DEFAULT_TOLERANCES["fp16"], gt=0)
    bf16: float = Field(default=DEFAULT_TOLERANCES["bf16"], gt=0)

    @model_validator(mode="after")
    def _apart(self) -> Tolerances:
        if not self.fp32 < self.fp16 < self.bf16:
            raise ValueError("tolerances must grow from fp32 to fp16 to bf16")
        return self


class Manifest(_Strict):
    schema_version: Literal[1] = 1
    name: str = Field(pattern=SLUG_PATTERN)
    version: str = Field(pattern=SLUG_PATTERN)
    created_at: str = Field(description="ISO 8601 with a UTC offset")
    torch_version: str = Field(min_length=1)
    target: Target = "any"
    formats: Formats
    inputs: list[InputSpec] = Field(min_length=1, max_length=1)  # pack makes one-input models today
    batch_sizes: list[int] = Field(min_length=1, max_length=16)
    examples: Examples
    golden: Golden = Field(default_factory=Golden)
    tolerances: Tolerances = Field(default_factory=Tolerances)
    files: dict[FileName, Sha256Hex]
    notes: list[str] = Field(default_factory=list, description="why a format is missing, and other facts of the pack")

    @field_validator("created_at")
    @classmethod
    def _iso8601(cls, value: str) -> str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"created_at {value!r} is not ISO 8601") from exc
        if parsed.tzinfo is None:
            raise ValueError("created_at needs a UTC offset")
        return value

    @field_validator("batch_sizes")
    @classmethod
    def _batch_sizes(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError("batch sizes must be positive")
        if values != sorted(set(values)):
            raise ValueError("batch sizes must be distinct and in increasing order")
        return values

    @field_validator("files")
    @classmethod
    def _not_the_manifest(cls, files: dict[str, str]) -> dict[str, str]:
        if MANIFEST_FILE in files:
            raise ValueError(f"files must not list {MANIFEST_FILE} (its digest is passed on its own)")
        return files

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        problems = []
        export = self.formats.torch_export
        if export is not None:
            low, high = export.dynamic_batch.min, export.dynamic_batch.max
            outside = [b for b in self.batch_sizes if not low <= b <= high]
            if outside:
                problems.append(f"batch sizes {outside} are outside torch_export's dynamic batch range [{low}, {high}]")
            if not low <= self.examples.count <= high:
                problems.append(f"the example count {self.examples.count} is outside the dynamic batch range [{low}, {high}]")
        unlisted = [f for f in self.referenced_files() if f not in self.files]
        if unlisted:
            problems.append(f"files {unlisted} are referenced but have no digest in files")
        referenced = self.referenced_files()
        if len(set(referenced)) != len(referenced):
            problems.append("two entries name the same file")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def referenced_files(self) -> list[str]:
        """The files the formats and the examples name (all of them must be in `files`)."""
        return [fmt.file for fmt in self.formats.present().values()] + [self.examples.file]

    def tolerance(self, precision: str) -> float:
        return float(getattr(self.tolerances, precision))

    def to_json(self) -> str:
        """The exact bytes `manifest.json` holds (sorted keys, indent 2, trailing newline)."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True, indent=2) + "\n"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(path: str | Path) -> str:
    """sha256 of `manifest.json`; `path` is the file or the artifact directory holding it."""
    path = Path(path)
    return sha256_file(path / MANIFEST_FILE if path.is_dir() else path)


def load_manifest(artifact_dir: str | Path) -> Manifest:
    """Parse `<artifact_dir>/manifest.json`; ArtifactError if it is missing or invalid."""
    path = Path(artifact_dir) / MANIFEST_FILE
    try:
        raw: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found: not an artifact directory, or its pack did not finish") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read as JSON: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{path} is not a valid manifest: {exc}") from exc


def write_manifest(manifest: Manifest, artifact_dir: str | Path) -> str:
    """Write `manifest.json` atomically (a reader never sees half a manifest); returns its sha256."""
    path = Path(artifact_dir) / MANIFEST_FILE
    partial = path.with_name(MANIFEST_FILE + ".partial")
    partial.write_text(manifest.to_json())
    partial.replace(path)
    return manifest_digest(path)
