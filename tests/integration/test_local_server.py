"""`eiplane local up` serves the deployed template on loopback; the stock AWS CLI drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ready = tmp_path / "ready.json"
    process = subprocess.Popen([str(BIN / "eiplane"), "local", "up", "--port", "0", "--ready-file", str(ready)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"eiplane local up did not become ready:\n{process.stdout.read() if process.stdout else ''}")
            time.sleep(0.1)
        yield {**json.loads(ready.read_text()), "process": process}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def aws_cli(server: dict[str, Any], *args: str) -> Any:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": server["region"], "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    completed = subprocess.run([str(BIN / "aws"), *args, "--endpoint-url", server["endpoint_url"], "--output", "json"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout) if completed.stdout.strip() else None


def run_with_cli(server: dict[str, Any], name: str, input_file: str) -> dict[str, Any]:
    machine = server["outputs"]["ProvisionFleetStateMachineArn"]
    started = aws_cli(server, "stepfunctions", "start-execution", "--state-machine-arn", machine,
                      "--name", name, "--input", f"file://{input_file}")
    deadline = time.monotonic() + 60
    while True:
        described = aws_cli(server, "stepfunctions", "describe-execution", "--execution-arn", started["executionArn"])
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def eiplane(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "eiplane"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "AWS_ACCESS_KEY_ID": "testing",
                                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})


def test_aws_cli_starts_and_follows_executions_on_the_local_server(local_server: dict[str, Any], tmp_path: Path) -> None:
    artifact = tmp_path / "tiny-cnn-1"
    packed = eiplane("artifact", "pack", "--model", "eiplane.artifacts.demo_model:tiny_cnn", "--input", "3x32x32",
                     "--name", "tiny-cnn", "--version", "1", "--out", str(artifact), "--batch-sizes", "1,4")
    assert packed.returncode == 0, packed.stderr
    pushed = eiplane("artifact", "push", str(artifact), "--fleet", "demo-gpu", "--endpoint-url", local_server["endpoint_url"])
    assert pushed.returncode == 0, pushed.stderr

    first = run_with_cli(local_server, "cli-1", "events/provision_fleet_gpu.json")

    assert first["status"] == "SUCCEEDED", first.get("cause")
    report = json.loads(first["output"])
    assert report["summary"] == {"found": 0, "created": 3, "repaired": 0}
    assert report["in_service"] == 2 and all(i["validation"]["passed"] for i in report["instances"])
    groups = aws_cli(local_server, "ec2", "describe-security-groups", "--filters",
                     "Name=tag:eiplane:fleet,Values=demo-gpu")["SecurityGroups"]
    assert [g["GroupId"] for g in groups] == [report["instance_security_group_id"]]

    second = run_with_cli(local_server, "cli-2", "events/provision_fleet_gpu.json")
    assert json.loads(second["output"])["mutating_calls"] == []
    instances = aws_cli(local_server, "ec2", "describe-instances", "--filters", "Name=tag:eiplane:state,Values=in_service")
    assert len([i for r in instances["Reservations"] for i in r["Instances"]]) == 2

    history = aws_cli(local_server, "stepfunctions", "get-execution-history", "--execution-arn", second["executionArn"])
    entered = [e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e]
    assert entered[0] == "ValidateFleetSpec" and entered[-1] == "FleetReady"


def test_bad_spec_through_the_cli_fails_with_the_named_error(local_server: dict[str, Any]) -> None:
    result = run_with_cli(local_server, "cli-bad", "events/provision_fleet_invalid.json")

    assert (result["status"], result["error"]) == ("FAILED", "InvalidFleetSpec")
    assert "fleet spec has 5 problems" in result["cause"]


def test_server_stops_cleanly_on_sigterm(local_server: dict[str, Any]) -> None:
    process = local_server["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
