"""`eiplane local up` serves the deployed template on loopback; the stock AWS CLI drives it.

The README's lines under "The embedded AWS" are run here as written, on a machine with no AWS
configuration at all (an empty HOME, no AWS_* variables but those a line sets itself): only the
port is changed, from 4566 to the free one `local up --port 0` picked."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from eiplane.cli.prices import PRICES
from eiplane.executions import history, wait_for_execution
from tests.conftest import ROOT

BIN = Path(sys.executable).parent
README_PORT = "4566"


def readme_lines(section: str = "The embedded AWS") -> list[str]:
    """The first sh block of a README section, one entry per command (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    body = re.split(r"^## ", text.split(f"\n## {section}\n", 1)[1], maxsplit=1, flags=re.M)[0]
    block = re.search(r"^```sh\n(.*?)^```", body, re.S | re.M)
    assert block, f"no sh block in README section {section!r}"
    return [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def readme_line(*words: str) -> str:
    """The one README line holding every word."""
    found = [line for line in readme_lines() if all(word in line for word in words)]
    assert len(found) == 1, f"README lines with {words}: {found}"
    return found[0]


def unconfigured_env(home: Path) -> dict[str, str]:
    """This environment without any AWS configuration: nothing but defaults to fall back on."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(HOME=str(home), AWS_CONFIG_FILE=str(home / "no-such-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "no-such-aws-credentials"),
               PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]))  # `aws` is the venv's
    return env


def command(line: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a shell line: leading NAME=value words go into the environment."""
    argv = shlex.split(line, comments=True)
    assigned = {}
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        name, value = argv.pop(0).split("=", 1)
        assigned[name] = value
    return argv, {**env, **assigned}


def checkout_copy(tmp_path: Path) -> Path:
    """A folder that looks like the checkout (each entry linked) but where what the README's
    lines write (dist/) stays in the test's tmp_path."""
    work = tmp_path / "checkout"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("dist", "out", ".venv"):
            (work / entry.name).symlink_to(entry)
    (work / ".venv").symlink_to(BIN.parent)  # the venv running these tests, wherever it is
    return work


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The README's `local up` line, on a free port (`--port 4566` -> `--port 0 --ready-file F`)."""
    home = tmp_path / "home"
    home.mkdir()
    env = unconfigured_env(home)
    work = checkout_copy(tmp_path)
    ready = tmp_path / "ready.json"
    line = readme_line("eiplane local up")
    assert f"--port {README_PORT}" in line, line
    argv, up_env = command(line.replace(f"--port {README_PORT}", f"--port 0 --ready-file {ready}"), env)
    log = (tmp_path / "local-up.log").open("w+")
    process = subprocess.Popen(argv, cwd=work, env=up_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():  # written whole, once the template is deployed
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"eiplane local up did not become ready:\n{log.read()}")
            time.sleep(0.1)
        server = json.loads(ready.read_text())
        port = server["endpoint_url"].rsplit(":", 1)[1]
        yield {**server, "process": process, "port": port, "env": env, "cwd": work, "log": log}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


def run_readme_line(server: dict[str, Any], line: str) -> subprocess.CompletedProcess[str]:
    argv, env = command(line.replace(README_PORT, server["port"]), server["env"])
    completed = subprocess.run(argv, cwd=server["cwd"], env=env, capture_output=True, text=True, timeout=300,
                               check=False)
    assert completed.returncode == 0, f"{line}\nexit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    return completed


def events_of(sfn: Any, execution_arn: str) -> Any:
    """Progress of an execution in another process: its history grows while it runs."""
    return lambda: len(history(sfn, execution_arn))


def sdk(server: dict[str, Any], service: str) -> Any:
    return boto3.client(service, endpoint_url=server["endpoint_url"], region_name=server["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def aws_cli(server: dict[str, Any], *args: str) -> Any:
    env = {**server["env"], "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": server["region"]}
    completed = subprocess.run(["aws", *args, "--endpoint-url", server["endpoint_url"], "--output", "json"],
                               cwd=server["cwd"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout) if completed.stdout.strip() else None


def test_readme_local_server_lines_run_as_written_without_aws_configuration(local_server: dict[str, Any]) -> None:
    port = local_server["port"]
    machine = local_server["outputs"]["ProvisionFleetStateMachineArn"]
    assert machine == "arn:aws:states:us-east-1:123456789012:stateMachine:eiplane-local-ProvisionFleet"
    local_server["log"].seek(0)
    banner = local_server["log"].read()
    assert f"embedded AWS on http://127.0.0.1:{port} (region us-east-1)" in banner
    assert f"--state-machine-arn {machine} " in banner  # the hint names the real machine

    packed = run_readme_line(local_server, readme_line("eiplane artifact pack"))
    assert "packed tiny-cnn 1 into dist/tiny-cnn-1" in packed.stdout
    pushed = run_readme_line(local_server, readme_line("eiplane artifact push", "--endpoint-url"))
    assert "pushed to s3://eiplane-local-artifactsbucket-123456789012/fleets/demo-gpu/models/tiny-cnn/1/" in pushed.stdout

    cli_line = readme_line("aws stepfunctions start-execution")
    assert f"--state-machine-arn {machine} " in cli_line  # the README names the machine local up deploys
    started = json.loads(run_readme_line(local_server, cli_line).stdout)
    assert started["executionArn"] == f"{machine.replace(':stateMachine:', ':execution:')}:try-1"
    first = wait_for_execution(sdk(local_server, "stepfunctions"), started["executionArn"], poll_s=0.2,
                               progress=events_of(sdk(local_server, "stepfunctions"), started["executionArn"]))
    assert first.status == "SUCCEEDED", first.error_message()
    summary = first.output  # the fleet's summary: the whole report is the S3 object it names
    assert summary["summary"] == {"found": 0, "created": 7, "repaired": 0} and summary["in_service"] == 2
    report = json.loads(sdk(local_server, "s3").get_object(
        Bucket=summary["report"]["bucket"], Key=summary["report"]["key"])["Body"].read())
    assert report["in_service"] == 2 and all(i["validation"]["passed"] for i in report["instances"])
    groups = aws_cli(local_server, "ec2", "describe-security-groups", "--filters",
                     "Name=tag:eiplane:fleet,Values=demo-gpu")["SecurityGroups"]
    balancer_group = next(p["id"] for p in report["prerequisites"] if p["name"] == "eiplane-demo-gpu-load-balancer")
    assert sorted(g["GroupId"] for g in groups) == sorted([report["instance_security_group_id"], balancer_group])

    applied = run_readme_line(local_server, readme_line("eiplane fleet apply", "--endpoint-url"))
    out = applied.stdout
    assert out.startswith(f"execution {machine.replace(':stateMachine:', ':execution:')}:demo-gpu-")
    assert "  > ValidateFleetSpec" in out and "  SUCCEEDED" in out
    assert "found 7, created 0, repaired 0; mutating AWS calls: 0" in out
    assert "instances: 2 of 2 instances in service" in out
    second_arn = out.split()[1]
    history = aws_cli(local_server, "stepfunctions", "get-execution-history", "--execution-arn", second_arn)
    entered = [e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e]
    assert entered[0] == "ValidateFleetSpec" and entered[-1] == "FleetReady"
    instances = aws_cli(local_server, "ec2", "describe-instances", "--filters", "Name=tag:eiplane:state,Values=in_service")
    assert len([i for r in instances["Reservations"] for i in r["Instances"]]) == 2

    # the fleet serves: its endpoint's DNS name resolves, as the embedded AWS's DNS does, to the balancer's proxy
    status = run_readme_line(local_server, readme_line("eiplane fleet status", "--endpoint-url")).stdout
    assert "fleet demo-gpu (gpu) in us-east-1: 2 in service, 2 healthy at the load balancer" in status, status
    assert f"endpoint: {report['endpoint']['url']}  (here: http://127.0.0.1:" in status
    digest = report["artifact_manifest_sha256"][:12]
    serving_rows = [line for line in status.splitlines() if " in_service " in line]
    assert len(serving_rows) == 2 and all(" tiny-cnn 1 " in line and digest in line for line in serving_rows), status
    # every fleet: its endpoint and two g5.xlarge and a load balancer for an hour at the table's list prices
    listed_json = local_server["cwd"].parent / "fleets.json"
    list_line = readme_line("eiplane fleet list").replace(" --endpoint-url", f" --json {listed_json} --endpoint-url")
    listed = run_readme_line(local_server, list_line).stdout
    prices = PRICES.regions["us-east-1"]
    hourly = 2 * prices.instances["g5.xlarge"] + (prices.load_balancer_hour or 0)
    (row,) = [line for line in listed.splitlines() if line.startswith("demo-gpu ")]
    assert row.split() == ["demo-gpu", "gpu", "us-east-1", "tiny-cnn", "1", "2", "2", "0",
                           f"{report['endpoint']['dns_name']}:80", f"${hourly:,.4f}"], listed
    assert f"list prices as of {PRICES.as_of}" in listed
    (fleet,) = json.loads(listed_json.read_text())["fleets"]
    assert (fleet["desired"], fleet["in_service"], fleet["warm"], fleet["endpoint"]["url"]) == (
        2, 2, 0, report["endpoint"]["url"])
    assert fleet["cost"]["hourly_usd"] == pytest.approx(hourly)
    answered = run_readme_line(local_server, readme_line("eiplane invoke", "--endpoint-url")).stdout
    assert answered.startswith("HTTP 200 from http://127.0.0.1:") and '"outputs"' in answered, answered

    # deleted: afterwards the stock AWS CLI finds no instance, security group or load balancer of the fleet
    deleted = run_readme_line(local_server, readme_line("eiplane fleet delete", "--endpoint-url")).stdout
    assert "  > DrainFleet" in deleted and "  SUCCEEDED" in deleted, deleted
    assert re.search(r"  deleted  load_balancer +eiplane-demo-gpu ", deleted), deleted
    assert re.search(r"  kept     artifacts ", deleted), deleted  # no --purge-artifacts
    left = aws_cli(local_server, "ec2", "describe-instances", "--filters", "Name=tag:eiplane:fleet,Values=demo-gpu",
                   "Name=instance-state-name,Values=pending,running,stopping,stopped,shutting-down")
    assert left["Reservations"] == [], left
    assert aws_cli(local_server, "ec2", "describe-security-groups", "--filters",
                   "Name=tag:eiplane:fleet,Values=demo-gpu")["SecurityGroups"] == []
    balancers = aws_cli(local_server, "elbv2", "describe-load-balancers")["LoadBalancers"]
    assert [b["LoadBalancerName"] for b in balancers if "demo-gpu" in b["LoadBalancerName"]] == []
    # (the block's last line, `fleet apply --local`, needs no server: test_cli runs it as written)


def test_bad_spec_through_the_cli_fails_with_the_named_error(local_server: dict[str, Any]) -> None:
    sfn = sdk(local_server, "stepfunctions")
    started = sfn.start_execution(stateMachineArn=local_server["outputs"]["ProvisionFleetStateMachineArn"],
                                  name="cli-bad", input=(ROOT / "events/provision_fleet_invalid.json").read_text())
    result = wait_for_execution(sfn, started["executionArn"], poll_s=0.1, progress=events_of(sfn, started["executionArn"]))

    assert (result.status, result.error) == ("FAILED", "InvalidFleetSpec")
    assert "fleet spec has 5 problems" in (result.cause or "")


def test_server_stops_cleanly_on_sigterm_and_takes_its_balancers_addresses_with_it(local_server: dict[str, Any]) -> None:
    from eiplane.cli.serving import local_endpoints_file

    endpoints = local_endpoints_file(int(local_server["port"]))
    deadline = time.monotonic() + 60
    while not endpoints.exists():  # written each second the server runs
        assert time.monotonic() < deadline, f"{endpoints} was never written"
        time.sleep(0.1)
    process = local_server["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not endpoints.parent.exists()
