"""The `eiplane` command line: local invoke (the no-Docker `sam local invoke`), fleet apply
on the embedded AWS, and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eiplane.cli import main
from eiplane.cli.commands import execution_name
from tests.conftest import ROOT
from tests.integration.test_local_server import readme_line


@pytest.fixture(autouse=True)
def _in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artifact") / "tiny-cnn-1"
    assert main(["artifact", "pack", "--model", "eiplane.artifacts.demo_model:tiny_cnn", "--input", "3x32x32",
                 "--name", "tiny-cnn", "--version", "1", "--out", str(out), "--batch-sizes", "1,4"]) == 0
    return out


def test_local_invoke_runs_the_handler_with_an_event_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["local", "invoke", "ValidateFleetSpecFunction", "-e", "events/validate_fleet_spec.json"])

    out = capsys.readouterr()
    assert code == 0, out.err
    payload = json.loads(out.out)
    assert payload["spec"]["name"] == "demo-eia"
    assert payload["placement"]["default_vpc"] is True and len(payload["placement"]["subnets"]) == 6
    assert '"correlation_id":"arn:aws:states:' in out.err.replace(" ", "")  # the function's logs, as sam prints them


def test_local_invoke_accepts_the_function_folder_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "invoke", "plan_prerequisites", "-e", "events/plan_prerequisites.json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dry_run"] is False and plan["to_create"] == 9 and plan["mutating_calls"] == []


def test_local_invoke_reports_a_function_error_like_lambda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "bad.json"
    event.write_text(json.dumps({"spec": json.loads((ROOT / "events/provision_fleet_invalid.json").read_text()),
                                 "context": {"execution_id": "local"}}))
    code = main(["local", "invoke", "ValidateFleetSpecFunction", "-e", str(event)])

    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["errorType"] == "InvalidFleetSpec"
    assert payload["errorMessage"].startswith("fleet spec has 5 problems")


def test_local_invoke_unknown_function_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "invoke", "NoSuchFunction", "-e", "events/validate_fleet_spec.json"]) == 2
    assert "no function 'NoSuchFunction' in template.yaml; one of: " in capsys.readouterr().err


def test_fleet_apply_local_follows_and_writes_the_report(tmp_path: Path, artifact: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    # the README's line (its embedded-AWS block), with the artifact the block packs packed here alike
    words = readme_line("eiplane fleet apply", "--local").split("#")[0].split()
    assert words == [".venv/bin/eiplane", "fleet", "apply", "events/provision_fleet_inferentia.json", "--local",
                     "--artifact", "dist/tiny-cnn-1"]
    code = main([*words[1:-1], str(artifact), "--report", str(report)])

    out = capsys.readouterr().out
    assert code == 0
    assert "  > ValidateFleetSpec" in out and "  ok RecordPrerequisites" in out and "SUCCEEDED" in out
    assert "created   iam_role          eiplane-demo-inf2-instance" in out
    assert "instances: 1 of 1 instances in service" in out
    assert "validated on cpu (asked: neuron)" in out and "through the started model server" in out
    written = json.loads(report.read_text())
    assert written["fleet"] == "demo-inf2" and written["summary"]["created"] == 7
    assert [i["state"] for i in written["instances"]] == ["in_service"]


def test_artifact_validate_runs_the_agent_here(artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["artifact", "validate", str(artifact), "--precisions", "fp32,bf16", "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert "validated on cpu (asked: cpu), torch " in out and ": passed" in out
    assert "  fp32 ok err " in out and "  bf16 ok err " in out


def test_artifact_pack_of_an_unknown_factory_is_a_named_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["artifact", "pack", "--model", "no.such.module:factory", "--input", "3x8x8", "--name", "x",
                 "--version", "1", "--out", str(tmp_path / "x")])
    assert code == 2
    assert capsys.readouterr().err.startswith("ArtifactError: ")


def test_fleet_apply_accepts_yaml_and_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text("name: yaml-fleet\nregion: us-east-1\nbackend: {type: gpu, instance_type: g6.xlarge}\n"
                    "model: {name: m, version: '1'}\n")
    assert main(["fleet", "apply", str(spec), "--local", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "plan (dry run): 7 to create, 0 to repair" in out


def test_fleet_apply_rejects_a_bad_spec_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fleet", "apply", "events/provision_fleet_invalid.json", "--local"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("InvalidFleetSpec: fleet spec has 5 problems")


@pytest.mark.parametrize(("content", "message"), [
    ("name: [unclosed", "is neither YAML nor JSON"),
    ("- just\n- a list\n", "must hold one fleet spec (a mapping), not list"),
])
def test_fleet_apply_unreadable_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                          message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(content)
    assert main(["fleet", "apply", str(spec), "--local"]) == 2
    assert message in capsys.readouterr().err


def test_execution_names_are_unique_and_valid() -> None:
    first, second = execution_name("demo-gpu"), execution_name("demo-gpu")
    assert first != second
    assert len(first) <= 80 and first.startswith("demo-gpu-")


def test_demo_creates_then_finds_everything_with_zero_mutating_calls(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    report_file = tmp_path / "demo.json"
    assert main(["demo", "--report", str(report_file)]) == 0

    report = json.loads(report_file.read_text())
    assert report["ok"] is True
    assert report["checks"]["second_run_mutating_calls"] == 0
    assert report["checks"]["second_run_inventory_unchanged"] is True
    first, second = report["passes"]
    assert report["checks"]["gpu_instances_in_service"] == report["checks"]["gpu_instances_validated"] == 2
    assert report["checks"]["second_run_same_instances"] is True
    gpu = first["fleets"][1]["report"]
    assert [i["state"] for i in gpu["instances"]] == ["in_service", "in_service"]
    assert all(i["validation"]["formats"]["torchscript"]["precisions"]["fp16"]["passed"] for i in gpu["instances"])
    assert [r["report"]["backend"]["type"] for r in first["fleets"]] == ["eia", "gpu", "inferentia"]
    assert all(r["report"]["summary"]["created"] > 0 for r in first["fleets"])
    assert all({p["outcome"] for p in r["report"]["prerequisites"]} == {"found"} for r in second["fleets"])
    # the gpu fleet rolled to tiny-cnn 2 while requests flowed, none of them failing
    rollout = report["rollout"]
    assert (rollout["version_before"], rollout["version_after"], rollout["requests_failed"]) == (
        "tiny-cnn:1", "tiny-cnn:2", 0)
    assert rollout["requests"] > 0 and rollout["states"][-1] == "RolloutSucceeded"
    # and the inferentia fleet (demo-inf2) was deleted: nothing tagged with it is left in the account
    deletion = report["fleet_delete"]
    assert (deletion["fleet"], deletion["status"], deletion["left"]) == ("demo-inf2", "SUCCEEDED", {})
    assert deletion["deleted"] > 0 and report["checks"]["delete_left_nothing"] is True
    assert "OK" in capsys.readouterr().out
