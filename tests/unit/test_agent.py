"""The validation agent, run as the instance runs it: a subprocess on one copied file."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eiplane.agent import AGENT_PATH, agent_sha256
from eiplane.artifacts.manifest import manifest_digest
from eiplane.artifacts.result import ValidationResult
from tests.unit.artifact_helpers import flip_byte, rewrite_manifest, sha256

ALLOWED_THIRD_PARTY = {"torch", "torch_neuronx"}  # torch_neuronx: only on --device neuron, and it is torch's Neuron plugin




def run_agent(
    artifact: Path, out: Path, *, manifest_sha256: str | None = None, device: str = "cpu",
    precisions: str = "fp32,fp16,bf16", env: dict[str, str] | None = None, extra: tuple[str, ...] = (),
) -> tuple[int, dict[str, Any] | None, str]:
    # The agent copied alone into a folder of its own, as on an instance (the AST test below shows it needs nothing else).
    agent = out.parent / "agent" / "eiplane_agent.py"
    agent.parent.mkdir(exist_ok=True)
    agent.write_bytes(AGENT_PATH.read_bytes())
    environment = {k: v for k, v in os.environ.items() if k not in ("EIPLANE_AGENT_DEVICE", "PYTHONPATH")}
    environment.update(env or {})
    completed = subprocess.run(
        [sys.executable, str(agent), "--artifact", str(artifact),
         "--manifest-sha256", manifest_sha256 or manifest_digest(artifact), "--device", device,
         "--precisions", precisions, "--instance-id", "i-0123456789abcdef0", "--out", str(out),
         "--iterations", "3", "--warmup", "1", *extra],
        cwd=agent.parent, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    result = json.loads(out.read_text()) if out.exists() else None
    return completed.returncode, result, completed.stdout + completed.stderr


def test_passes_on_cpu_in_every_precision(packed: Path, tmp_path: Path) -> None:
    code, raw, output = run_agent(packed, tmp_path / "result.json")
    assert code == 0, output
    assert raw is not None
    result = ValidationResult.model_validate(raw)
    assert result.passed and result.failure is None
    assert (result.requested_device, result.device, result.device_note) == ("cpu", "cpu", None)
    assert result.instance_id == "i-0123456789abcdef0"
    assert result.agent_sha256 == agent_sha256()
    assert result.artifact.verified and result.artifact.manifest_sha256 == manifest_digest(packed)
    assert all(f.ok for f in result.artifact.files.values()) and len(result.artifact.files) == 3
    assert set(result.formats) == {"torchscript", "torch_export"}
    tolerances = {"fp32": 1e-4, "fp16": 5e-3, "bf16": 3e-2}
    for name, fmt in result.formats.items():
        assert fmt.load_s is not None and fmt.load_s >= 0, name
        assert set(fmt.precisions) == set(tolerances)
        for precision, entry in fmt.precisions.items():
            assert entry.passed and entry.tolerance == tolerances[precision], (name, precision, entry)
            assert entry.max_rel_error is not None and entry.max_rel_error <= tolerances[precision]
            assert set(entry.latency) == {"1", "8", "32"}
            for size, stats in entry.latency.items():
                assert stats.iterations == 3 and stats.p50_ms is not None and stats.p99_ms is not None
                assert stats.p50_ms <= stats.p99_ms
                assert stats.throughput_per_s is not None and stats.mean_ms is not None
                assert stats.throughput_per_s == pytest.approx(int(size) / (stats.mean_ms / 1e3), rel=1e-2)
    # Lower precisions really ran lower: their errors sit far above fp32's.
    torchscript = result.formats["torchscript"].precisions
    assert torchscript["fp32"].max_rel_error < 1e-5 < torchscript["fp16"].max_rel_error  # type: ignore[operator]
    summary = result.summary()
    assert summary["passed"] and list(summary["formats"]["torch_export"]["precisions"]["fp16"]["latency"]) == ["1", "8", "32"]
    assert json.loads(output.strip().splitlines()[-1])["passed"] is True  # one line on stdout for SSM


def test_environment_overrides_the_device(packed: Path, tmp_path: Path) -> None:
    code, raw, output = run_agent(packed, tmp_path / "result.json", device="cuda", precisions="fp32",
                                  env={"EIPLANE_AGENT_DEVICE": "cpu"}, extra=("--formats", "torchscript"))
    assert code == 0, output
    result = ValidationResult.model_validate(raw)
    assert (result.requested_device, result.device) == ("cuda", "cpu")
    assert result.device_note is not None and "EIPLANE_AGENT_DEVICE=cpu overrides --device cuda" in result.device_note
    assert result.cuda_device_name is None
    assert set(result.formats) == {"torchscript"}


def test_a_tampered_model_is_never_loaded(artifact: Path, tmp_path: Path) -> None:
    flip_byte(artifact / "model.pt")
    code, raw, output = run_agent(artifact, tmp_path / "result.json")
    assert code == 2, output
    result = ValidationResult.model_validate(raw)
    assert not result.passed and result.failure is not None and result.failure.stage == "digest"
    assert "model.pt has sha256" in result.failure.message
    assert not result.artifact.verified
    assert result.artifact.files["model.pt"].ok is False and result.artifact.files["model.pt2"].ok is True
    assert result.artifact.files["model.pt"].actual == sha256(artifact / "model.pt")
    # Nothing loaded: no format ran, and torch was not even imported (it is imported only after the digests).
    assert result.formats == {} and result.torch_version is None


def test_a_wrong_manifest_digest_stops_everything(packed: Path, tmp_path: Path) -> None:
    code, raw, output = run_agent(packed, tmp_path / "result.json", manifest_sha256="0" * 64)
    assert code == 2, output
    result = ValidationResult.model_validate(raw)
    assert result.failure is not None and result.failure.stage == "digest"
    assert result.artifact.manifest_sha256 == manifest_digest(packed)
    assert result.artifact.manifest_sha256_expected == "0" * 64
    assert result.artifact.files == {} and result.formats == {} and result.torch_version is None


def test_a_missing_file_is_a_digest_failure(artifact: Path, tmp_path: Path) -> None:
    (artifact / "model.pt2").unlink()
    code, raw, output = run_agent(artifact, tmp_path / "result.json")
    assert code == 2, output
    assert raw is not None and raw["artifact"]["files"]["model.pt2"] == {
        "expected": raw["artifact"]["files"]["model.pt2"]["expected"], "actual": None, "ok": False}


def test_outputs_off_the_golden_fail_parity_with_the_numbers(artifact: Path, tmp_path: Path) -> None:
    import torch

    examples = torch.load(artifact / "examples.pt", weights_only=True)
    torch.save({"inputs": examples["inputs"], "outputs": [t * 1.5 for t in examples["outputs"]]}, artifact / "examples.pt")
    digest = sha256(artifact / "examples.pt")

    def update(manifest: dict[str, Any]) -> None:
        manifest["files"]["examples.pt"] = digest

    new_sha = rewrite_manifest(artifact, update)
    code, raw, output = run_agent(artifact, tmp_path / "result.json", manifest_sha256=new_sha)
    assert code == 3, output
    result = ValidationResult.model_validate(raw)
    assert result.artifact.verified
    assert result.failure is not None and result.failure.stage == "parity"
    assert "torchscript fp32: max_rel_error 0.333 > tolerance 0.0001" in result.failure.message
    for fmt in ("torchscript", "torch_export"):
        for precision, entry in result.formats[fmt].precisions.items():
            # |y - 1.5 y| / max |1.5 y| = 1/3 whatever the precision
            assert not entry.passed and entry.max_rel_error == pytest.approx(1 / 3, rel=0.05), (fmt, precision)
            assert set(entry.latency) == {"1", "8", "32"}


def test_a_model_whose_weights_cannot_be_cast_runs_under_autocast(tmp_path: Path) -> None:
    import torch

    from eiplane.artifacts.pack import pack

    class FixedConstant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x * torch.ones(4))  # an fp32 constant: fp16 inputs times it are fp32 again

    artifact = tmp_path / "artifact"
    pack(FixedConstant(), (4,), name="fixed", version="1", out_dir=artifact, formats=("torchscript",))
    code, raw, output = run_agent(artifact, tmp_path / "result.json", precisions="fp32,fp16")
    assert code == 0, output
    precisions = ValidationResult.model_validate(raw).formats["torchscript"].precisions
    assert precisions["fp32"].mode == "cast" and precisions["fp32"].note is None
    assert precisions["fp16"].mode == "autocast" and precisions["fp16"].passed
    assert precisions["fp16"].note is not None and "cast: RuntimeError" in precisions["fp16"].note


@pytest.mark.parametrize(("device", "message"), [
    ("eia", "Elastic Inference is no longer available"),
    ("neuron", "torch_neuronx"),
])
def test_an_accelerator_this_torch_cannot_drive_fails_to_load(packed: Path, tmp_path: Path, device: str, message: str) -> None:
    code, raw, output = run_agent(packed, tmp_path / "result.json", device=device, precisions="fp32")
    assert code == 4, output
    result = ValidationResult.model_validate(raw)
    assert result.artifact.verified
    assert result.failure is not None and result.failure.stage == "load" and message in result.failure.message


def test_cuda_without_a_gpu_fails_to_load(packed: Path, tmp_path: Path) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, raw, output = run_agent(packed, tmp_path / "result.json", device="cuda", precisions="fp32")
    assert code == 4, output
    assert raw is not None and raw["failure"]["stage"] == "load" and "cuda" in raw["failure"]["message"]


def test_a_bad_command_line_is_not_a_digest_failure(packed: Path, tmp_path: Path) -> None:
    code, raw, output = run_agent(packed, tmp_path / "result.json", precisions="fp64")
    assert code == 64 and raw is None
    assert "--precisions" in output


def test_the_agent_imports_only_the_standard_library_and_torch() -> None:
    tree = ast.parse(AGENT_PATH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the agent is copied alone"
            imported.add((node.module or "").split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - {"__future__"} - ALLOWED_THIRD_PARTY
    assert outside == set()
    top_level = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
                 for alias in node.names} | {node.module.split(".")[0] for node in tree.body
                                             if isinstance(node, ast.ImportFrom) and node.module}
    assert "torch" not in top_level, "torch is imported only after the digests check out"


def test_agent_sha256_names_the_file() -> None:
    assert agent_sha256() == hashlib.sha256(AGENT_PATH.read_bytes()).hexdigest()
    assert AGENT_PATH.name == "eiplane_agent.py" and AGENT_PATH.is_file()
