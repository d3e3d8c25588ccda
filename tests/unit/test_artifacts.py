"""eiplane.artifacts: pack (TorchScript + torch.export), the manifest, push to S3, model loading."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from eiplane.artifacts import ArtifactError
from eiplane.artifacts.manifest import Manifest, load_manifest, manifest_digest, sha256_file
from eiplane.artifacts.push import push
from tests.unit.artifact_helpers import TINY_SHAPE, flip_byte, pack_tiny_cnn, rewrite_manifest

BUCKET = "eiplane-artifacts-test"
PREFIX = "fleets/demo/models/tiny-cnn/1/"




def _golden(packed: Path) -> tuple[Any, Any]:
    import torch

    examples = torch.load(packed / "examples.pt", weights_only=True)
    return examples["inputs"][0], examples["outputs"][0]


def _load(packed: Path, fmt: str) -> Any:
    import torch

    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated (torch >= 2.10); eiplane keeps it
            return torch.jit.load(str(packed / "model.pt"), map_location="cpu")
    return torch.export.load(str(packed / "model.pt2")).module()


# --- pack ----------------------------------------------------------------------------------

def test_pack_writes_every_file_with_its_digest(packed: Path) -> None:
    manifest = load_manifest(packed)
    assert sorted(p.name for p in packed.iterdir()) == ["examples.pt", "manifest.json", "model.pt", "model.pt2"]
    assert manifest.files == {name: sha256_file(packed / name) for name in ("examples.pt", "model.pt", "model.pt2")}
    assert (packed / "manifest.json").read_text() == manifest.to_json()  # sorted keys, indent 2
    raw = json.loads((packed / "manifest.json").read_text())
    assert list(raw) == sorted(raw)
    assert raw["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 3, 32, 32]}]
    assert raw["formats"]["torchscript"] == {"file": "model.pt", "method": "trace"}
    assert raw["formats"]["torch_export"] == {"file": "model.pt2", "dynamic_batch": {"min": 1, "max": 32}}
    assert raw["batch_sizes"] == [1, 8, 32]
    assert raw["examples"] == {"file": "examples.pt", "count": 8}
    assert raw["golden"] == {"device": "cpu", "dtype": "float32"}
    assert raw["tolerances"] == {"fp32": 1e-4, "fp16": 5e-3, "bf16": 3e-2}
    assert raw["notes"] == []
    assert manifest_digest(packed) == manifest_digest(packed / "manifest.json") == sha256_file(packed / "manifest.json")


def test_examples_load_with_weights_only_and_are_deterministic(packed: Path, tmp_path: Path) -> None:
    import torch

    inputs, outputs = _golden(packed)
    assert inputs.shape == (8, *TINY_SHAPE) and inputs.dtype == torch.float32
    assert outputs.shape == (8, 10) and outputs.dtype == torch.float32
    rng = torch.get_rng_state()
    pack_tiny_cnn(tmp_path / "again", formats=("torchscript",))
    assert torch.equal(torch.get_rng_state(), rng), "packing (and the demo model) must leave the global RNG alone"
    again_inputs, again_outputs = _golden(tmp_path / "again")
    assert torch.equal(again_inputs, inputs) and torch.equal(again_outputs, outputs)
    assert "torch_export" not in load_manifest(tmp_path / "again").formats.present()


@pytest.mark.parametrize("fmt", ["torchscript", "torch_export"])
def test_both_formats_reproduce_golden_at_every_batch_size(packed: Path, fmt: str) -> None:
    import torch

    from eiplane.artifacts.pack import batch_of, relative_error

    manifest = load_manifest(packed)
    module = _load(packed, fmt)
    inputs, golden = _golden(packed)
    with torch.inference_mode():
        for size in [1, *manifest.batch_sizes, manifest.examples.count]:
            error = relative_error([module(batch_of(inputs, size))], [batch_of(golden, size)])
            assert error <= manifest.tolerances.fp32, (fmt, size, error)


def test_pt2_takes_any_batch_size_in_its_range(packed: Path) -> None:
    import torch

    module = _load(packed, "torch_export")
    with torch.inference_mode():
        for size in (2, 3, 17, 31):
            assert module(torch.zeros(size, *TINY_SHAPE)).shape == (size, 10)
        with pytest.raises(Exception, match="32"):  # above dynamic_batch.max: torch's guard names the bound
            module(torch.zeros(33, *TINY_SHAPE))


def test_a_single_example_still_exports_with_a_dynamic_batch(tmp_path: Path) -> None:
    manifest = pack_tiny_cnn(tmp_path / "one", examples=1, batch_sizes=(1, 4))
    assert manifest.formats.torch_export is not None, manifest.notes
    assert manifest.formats.torch_export.dynamic_batch.model_dump() == {"min": 1, "max": 4}


def _branchy_model() -> Any:
    import torch

    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: Any) -> Any:
            if x.abs().max() > 1e6:  # data-dependent: traces (one branch), does not export
                return -self.fc(x)
            return self.fc(x)

    return Branchy()


def test_a_model_that_does_not_export_keeps_torchscript_and_says_why(tmp_path: Path) -> None:
    from eiplane.artifacts.pack import pack

    manifest = pack(_branchy_model(), (4,), name="branchy", version="1", out_dir=tmp_path)
    assert manifest.formats.torch_export is None
    assert manifest.formats.torchscript is not None
    assert any(note.startswith("torch_export: omitted") for note in manifest.notes)
    assert not (tmp_path / "model.pt2").exists()
    assert sorted(manifest.files) == ["examples.pt", "model.pt"]


def test_pack_fails_when_no_asked_format_works(tmp_path: Path) -> None:
    from eiplane.artifacts.pack import pack

    with pytest.raises(ArtifactError, match=r"torch\.export failed"):
        pack(_branchy_model(), (4,), name="branchy", version="1", out_dir=tmp_path, formats=("torch_export",))
    assert not (tmp_path / "manifest.json").exists()


def test_pack_rejects_bad_arguments(tmp_path: Path) -> None:
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    with pytest.raises(ArtifactError, match="cannot pack") as excinfo:
        pack(tiny_cnn(), TINY_SHAPE, name="bad name", version="1", out_dir=tmp_path, batch_sizes=(0, 8), dtype="int8",
             formats=("onnx",))
    assert all(word in str(excinfo.value) for word in ("name 'bad name'", "batch_sizes", "dtype", "formats"))
    assert list(tmp_path.iterdir()) == []


# --- the manifest --------------------------------------------------------------------------

def _raw(packed: Path) -> dict[str, Any]:
    return dict(json.loads((packed / "manifest.json").read_text()))


def test_manifest_rejects_a_batch_size_outside_the_dynamic_range(packed: Path) -> None:
    raw = _raw(packed)
    raw["batch_sizes"] = [1, 8, 64]
    with pytest.raises(ValidationError, match=r"outside torch_export's dynamic batch range \[1, 32\]"):
        Manifest.model_validate(raw)


def test_manifest_rejects_a_file_missing_from_files(packed: Path) -> None:
    raw = _raw(packed)
    del raw["files"]["model.pt2"]
    with pytest.raises(ValidationError, match=r"'model\.pt2'\] are referenced but have no digest"):
        Manifest.model_validate(raw)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("files", {"../model.pt": "0" * 64}, "should match pattern"),
    ("tolerances", {"fp32": 1e-2, "fp16": 5e-3, "bf16": 3e-2}, "must grow"),
    ("batch_sizes", [8, 1], "increasing order"),
    ("created_at", "yesterday", "ISO 8601"),
    ("schema_version", 2, "Input should be 1"),
])
def test_manifest_rejects_malformed_fields(packed: Path, field: str, value: Any, message: str) -> None:
    raw = _raw(packed)
    raw[field] = value
    with pytest.raises(ValidationError, match=message):
        Manifest.model_validate(raw)


# --- push ----------------------------------------------------------------------------------

@pytest.fixture
def s3() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _record_puts(s3: Any) -> list[dict[str, Any]]:
    puts: list[dict[str, Any]] = []
    s3.meta.events.register("before-parameter-build.s3.PutObject", lambda params, **_: puts.append(params))
    return puts


def test_push_uploads_everything_then_the_manifest_and_verifies(s3: Any, artifact: Path) -> None:
    puts = _record_puts(s3)
    pushed = push(s3, BUCKET, PREFIX, artifact)

    manifest = load_manifest(artifact)
    assert [p["Key"] for p in puts] == [PREFIX + name for name in [*sorted(manifest.files), "manifest.json"]]
    assert all(p["ChecksumAlgorithm"] == "SHA256" for p in puts)
    assert pushed == {
        "bucket": BUCKET, "prefix": PREFIX, "manifest_key": PREFIX + "manifest.json",
        "manifest_sha256": manifest_digest(artifact), "files": manifest.files,
    }
    for name, digest in [*manifest.files.items(), ("manifest.json", manifest_digest(artifact))]:
        head = s3.head_object(Bucket=BUCKET, Key=PREFIX + name, ChecksumMode="ENABLED")
        assert head["Metadata"] == {"sha256": digest}
        assert "ChecksumSHA256" in head
        assert s3.get_object(Bucket=BUCKET, Key=PREFIX + name)["Body"].read() == (artifact / name).read_bytes()


def test_push_adds_the_trailing_slash(s3: Any, artifact: Path) -> None:
    assert push(s3, BUCKET, PREFIX.rstrip("/"), artifact)["manifest_key"] == PREFIX + "manifest.json"


def test_push_refuses_a_locally_tampered_file_and_uploads_nothing(s3: Any, artifact: Path) -> None:
    flip_byte(artifact / "model.pt")
    with pytest.raises(ArtifactError, match=r"refusing to push .*model\.pt has sha256"):
        push(s3, BUCKET, PREFIX, artifact)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_push_refuses_an_artifact_whose_manifest_is_invalid(s3: Any, artifact: Path) -> None:
    rewrite_manifest(artifact, lambda m: m["files"].pop("examples.pt"))
    with pytest.raises(ArtifactError, match="not a valid manifest"):
        push(s3, BUCKET, PREFIX, artifact)


class _CorruptingS3:
    """The real (moto) client, except that reading one key back returns other bytes."""

    def __init__(self, client: Any, key: str) -> None:
        self._client, self._key = client, key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        response = self._client.get_object(**kwargs)
        if kwargs["Key"] == self._key:
            import io

            response["Body"] = io.BytesIO(b"not the model")
        return response


def test_push_names_the_file_that_does_not_read_back(s3: Any, artifact: Path) -> None:
    with pytest.raises(ArtifactError, match=r"model\.pt2 at s3://.*does not match"):
        push(_CorruptingS3(s3, PREFIX + "model.pt2"), BUCKET, PREFIX, artifact)


# --- loading models ------------------------------------------------------------------------

def test_load_model_factory_calls_the_factory() -> None:
    import torch

    from eiplane.artifacts.pack import load_model_factory

    model = load_model_factory("eiplane.artifacts.demo_model:tiny_cnn")
    assert isinstance(model, torch.nn.Module) and not model.training


@pytest.mark.parametrize(("spec", "message"), [
    ("eiplane.artifacts.demo_model", "must look like 'package.module:factory'"),
    ("eiplane.no_such_module:factory", "cannot import module 'eiplane.no_such_module'"),
    ("eiplane.artifacts.demo_model:no_such_factory", "has no attribute 'no_such_factory'"),
    ("eiplane.artifacts.demo_model:INPUT_SHAPE", "is not callable"),
    ("builtins:dict", "returned dict, not a torch.nn.Module"),
])
def test_load_model_factory_explains_a_bad_path(spec: str, message: str) -> None:
    from eiplane.artifacts.pack import load_model_factory

    with pytest.raises(ArtifactError, match=message):
        load_model_factory(spec)


def test_load_saved_module_needs_trust_for_a_pickled_module(packed: Path, tmp_path: Path) -> None:
    import torch

    from eiplane.artifacts.pack import load_saved_module

    assert isinstance(load_saved_module(packed / "model.pt"), torch.jit.ScriptModule)
    pickled = tmp_path / "whole.pth"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), pickled)
    with pytest.raises(ArtifactError, match="runs arbitrary Python code"):
        load_saved_module(pickled)
    assert isinstance(load_saved_module(pickled, trusted=True), torch.nn.Sequential)
    weights = tmp_path / "weights.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), weights)
    with pytest.raises(ArtifactError, match="state_dict"):
        load_saved_module(weights, trusted=True)
