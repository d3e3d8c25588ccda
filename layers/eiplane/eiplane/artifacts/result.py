"""The validation agent's result (schema_version 1), as the control plane reads it. No torch.

The agent (eiplane/agent/eiplane_agent.py) writes this JSON on the instance, on success and
on every failure; tests/unit/test_agent.py parses the agent's real output with this model,
so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Stage = Literal["digest", "load", "runtime", "parity"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Failure(_Strict):
    stage: Stage
    message: str


class FileCheck(_Strict):
    expected: str
    actual: str | None = Field(description="null when the file is missing")
    ok: bool


class ArtifactCheck(_Strict):
    verified: bool
    manifest_sha256: str | None = Field(description="what manifest.json hashed to; null when it is missing")
    manifest_sha256_expected: str | None = None
    files: dict[str, FileCheck] = Field(default_factory=dict)


class BatchLatency(_Strict):
    """One batch size: forward pass only, inputs already on the device; `error` when it did not run."""

    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    throughput_per_s: float | None = None
    iterations: int | None = None
    max_rel_error: float | None = Field(default=None, description="this batch's first run against the golden outputs")
    error: str | None = None


class PrecisionResult(_Strict):
    max_rel_error: float | None = Field(default=None, description="null when outputs were not comparable (see error)")
    tolerance: float | None = None
    passed: bool = False
    mode: Literal["cast", "autocast", "as_compiled"] | None = Field(
        default=None, description="cast: weights and inputs cast; autocast: fp32 weights under torch.autocast; "
                                  "as_compiled: Neuron, precision fixed at compile time")
    note: str | None = None
    error: str | None = None
    latency: dict[str, BatchLatency] = Field(default_factory=dict, description="keyed by batch size")


class FormatResult(_Strict):
    file: str | None = None
    load_s: float | None = Field(default=None, description="load time, apart from inference")
    error: Failure | None = None
    precisions: dict[str, PrecisionResult] = Field(default_factory=dict)


class ServingCheck(_Strict):
    """The model server, started as a service from the validated artifact, as the instance measured it
    through its own HTTP path: ready (its /ping answered 200), then loaded open-loop at rising rates."""

    ready: bool
    url: str | None = None
    error: str | None = None
    capacity_rps: float | None = Field(
        default=None, description="the highest request rate whose p99 stayed under latency_objective_ms, no errors")
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_objective_ms: float | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list, description="each rate tried and what it measured")


class ValidationResult(_Strict):
    schema_version: Literal[1]
    instance_id: str
    requested_device: str
    device: str
    device_note: str | None = None
    torch_version: str | None = None
    cuda_device_name: str | None = None
    python_version: str | None = None
    agent_sha256: str | None = None
    artifact: ArtifactCheck
    formats: dict[str, FormatResult] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    passed: bool
    failure: Failure | None
    started_at: str
    finished_at: str | None = None
    serving: ServingCheck | None = Field(default=None, description="the started model server (validated ones only)")

    @model_validator(mode="after")
    def _passed_means_no_failure(self) -> ValidationResult:
        if self.passed != (self.failure is None):
            raise ValueError("passed must be true exactly when failure is null")
        return self

    def summary(self) -> dict[str, Any]:
        """What a fleet report needs: per format, per precision, the error against the golden
        outputs and whether it passed, and p50 / p99 / throughput at each batch size."""
        return {
            "instance_id": self.instance_id,
            "device": self.device,
            "requested_device": self.requested_device,
            "device_note": self.device_note,
            "cuda_device_name": self.cuda_device_name,
            "torch_version": self.torch_version,
            "artifact_verified": self.artifact.verified,
            "passed": self.passed,
            "failure": self.failure.model_dump() if self.failure else None,
            "serving": self.serving.model_dump(exclude={"steps"}) if self.serving else None,
            "formats": {
                name: {
                    "load_s": fmt.load_s,
                    "error": fmt.error.message if fmt.error else None,
                    "precisions": {
                        precision: {
                            "max_rel_error": result.max_rel_error,
                            "tolerance": result.tolerance,
                            "passed": result.passed,
                            "mode": result.mode,
                            "error": result.error,
                            "latency": {
                                size: {"p50_ms": stats.p50_ms, "p99_ms": stats.p99_ms,
                                       "throughput_per_s": stats.throughput_per_s}
                                for size, stats in sorted(result.latency.items(), key=lambda item: _batch_order(item[0]))
                            },
                        }
                        for precision, result in fmt.precisions.items()
                    },
                }
                for name, fmt in self.formats.items()
            },
        }


def _batch_order(size: str) -> tuple[int, str]:
    return (int(size), size) if size.isdigit() else (1 << 30, size)
