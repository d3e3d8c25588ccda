"""Every failure a user can cause is one line on stderr and exit status 2, never a traceback
(eiplane.cli.main). No AWS here: AWS's answers are botocore Stubber's, and the endpoints are
closed loopback ports."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import exceptions as boto_errors
from botocore.stub import Stubber

from eiplane.cli import commands, explain, main
from eiplane.errors import InvalidFleetSpec
from tests.conftest import ROOT

GPU_SPEC = str(ROOT / "events" / "provision_fleet_gpu.json")


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A machine that never ran `aws configure`: no AWS_* variables, no ~/.aws."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # not on EC2: no instance role to find
    return tmp_path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """Exit 2 and exactly one line on stderr, no traceback; returns the line."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def stub_session(monkeypatch: pytest.MonkeyPatch, errors: dict[str, list[tuple[str, str, str]]]) -> None:
    """Commands' AWS answers `(operation, code, message)` errors, per service, in order."""
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    make_client = session.client

    def client(service: str, **kwargs: Any) -> Any:
        made = make_client(service, **kwargs)  # type: ignore[call-overload]
        stubber = Stubber(made)
        for operation, code, message in errors.get(service, []):
            stubber.add_client_error(operation, service_error_code=code, service_message=message, http_status_code=400)
        stubber.activate()
        return made

    monkeypatch.setattr(session, "client", client)
    monkeypatch.setattr(commands, "aws_session", lambda region, endpoint_url: session)


# --- no AWS configuration -------------------------------------------------------------------------

def test_fleet_apply_against_aws_without_a_region_says_what_to_set(no_aws_configuration: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["fleet", "apply", GPU_SPEC]))
    assert line.startswith("eiplane: no AWS region configured: pass --region, or set AWS_REGION")


def test_fleet_apply_against_aws_without_credentials_says_what_to_set(no_aws_configuration: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["fleet", "apply", GPU_SPEC, "--region", "eu-west-1"]))
    assert line.startswith("eiplane: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


def test_artifact_push_to_aws_without_configuration(no_aws_configuration: Path, tiny_cnn_artifact: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["artifact", "push", str(tiny_cnn_artifact), "--fleet", "demo-gpu"]))
    assert line.startswith("eiplane: no AWS region configured")


def test_loopback_endpoint_falls_back_to_the_embedded_aws_defaults(no_aws_configuration: Path) -> None:
    for url in ("http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566"):
        session = commands.aws_session(None, url)
        credentials = session.get_credentials()
        assert credentials is not None
        assert (credentials.access_key, credentials.secret_key, session.region_name) == ("testing", "testing",
                                                                                         "us-east-1")
    assert commands.aws_session("eu-west-1", "http://127.0.0.1:4566").region_name == "eu-west-1"


def test_loopback_endpoint_keeps_what_is_configured(no_aws_configuration: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mine")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "my-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    session = commands.aws_session(None, "http://127.0.0.1:4566")
    credentials = session.get_credentials()
    assert credentials is not None and credentials.access_key == "mine"
    assert session.region_name == "ap-south-1"


def test_a_remote_endpoint_is_not_the_embedded_aws(no_aws_configuration: Path) -> None:
    with pytest.raises(commands.CommandError, match="no AWS region configured"):
        commands.aws_session(None, "https://localstack.example.com:4566")
    assert not commands.is_loopback("https://127.0.0.1.example.com") and commands.is_loopback("http://127.1.2.3:1")


def test_the_help_says_what_a_loopback_endpoint_defaults_to(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["fleet", "apply", "--help"], ["artifact", "push", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "region us-east-1 (or --region), credentials testing / testing" in text


# --- nothing listening, AWS saying no, bad requests --------------------------------------------------

def test_nothing_listening_at_the_endpoint_suggests_local_up(no_aws_configuration: Path, closed_port: int,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["fleet", "apply", GPU_SPEC, "--endpoint-url", f"http://127.0.0.1:{closed_port}"]))
    assert line == (f"eiplane: nothing is listening at http://127.0.0.1:{closed_port}: start the embedded AWS there "
                    "with `eiplane local up` (it prints its endpoint), or fix --endpoint-url")


def test_artifact_push_with_nothing_listening(no_aws_configuration: Path, closed_port: int, tiny_cnn_artifact: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["artifact", "push", str(tiny_cnn_artifact), "--fleet", "demo-gpu", "--endpoint-url",
                 f"http://localhost:{closed_port}"])
    assert one_line_error(capsys, code).startswith(f"eiplane: nothing is listening at http://localhost:{closed_port}")


def test_access_denied_is_one_line_naming_the_call(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    stub_session(monkeypatch, {"cloudformation": [("describe_stacks", "AccessDenied",
                                                   "User: arn:aws:iam::1:user/me is not authorized to perform: "
                                                   "cloudformation:DescribeStacks")]})
    line = one_line_error(capsys, main(["fleet", "apply", GPU_SPEC]))
    assert line.startswith("eiplane: AWS refused DescribeStacks: AccessDenied: User: arn:aws:iam::1:user/me is not")
    assert line.endswith("(the credentials in use are not allowed this: check their IAM permissions)")


def test_a_missing_stack_says_deploy_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stub_session(monkeypatch, {"cloudformation": [("describe_stacks", "ValidationError",
                                                   "Stack with id eiplane does not exist")]})
    line = one_line_error(capsys, main(["fleet", "apply", GPU_SPEC]))
    assert line == ("eiplane: no stack eiplane in us-east-1: deploy it (`make deploy`), or pass --stack-name / "
                    "--region")


def test_a_refused_start_execution(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stub_session(monkeypatch, {"stepfunctions": [("start_execution", "ExpiredTokenException",
                                                  "The security token included in the request is expired")]})
    code = main(["fleet", "apply", GPU_SPEC, "--state-machine-arn",
                 "arn:aws:states:us-east-1:123456789012:stateMachine:eiplane-ProvisionFleet"])
    line = one_line_error(capsys, code)
    assert line.startswith("eiplane: AWS refused StartExecution: ExpiredTokenException: The security token")
    assert "refresh them" in line


def test_an_invalid_request_is_one_line(tiny_cnn_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # (conftest's fake credentials) botocore refuses the bucket name before sending anything
    code = main(["artifact", "push", str(tiny_cnn_artifact), "--fleet", "demo-gpu", "--bucket", "no/such bucket"])
    assert one_line_error(capsys, code).startswith("eiplane: invalid AWS request: ")


# --- the state machine and bucket at an endpoint ------------------------------------------------------

def machines_at(names: list[str]) -> Any:
    client = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stubber = Stubber(client)
    stubber.add_response("list_state_machines", {"stateMachines": [
        {"name": name, "stateMachineArn": f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}",
         "type": "STANDARD", "creationDate": 0} for name in names]})
    stubber.activate()
    return client


def find(names: list[str], stack_name: str | None = None) -> str:
    args = argparse.Namespace(endpoint_url="http://127.0.0.1:4566", stack_name=stack_name)
    return commands.find_state_machine(boto3.session.Session(), machines_at(names), args)


def test_provision_fleet_is_found_by_the_templates_name() -> None:
    local = ["eiplane-local-MatchCapacity", "eiplane-local-ProvisionFleet"]
    assert find(local).endswith(":stateMachine:eiplane-local-ProvisionFleet")
    assert find(local, "eiplane-local").endswith(":stateMachine:eiplane-local-ProvisionFleet")
    two = [*local, "other-ProvisionFleet", "x-ProvisionFleetStateMachine"]
    assert find(two, "other").endswith(":stateMachine:other-ProvisionFleet")


def test_provision_fleet_missing_or_ambiguous_names_what_is_there() -> None:
    with pytest.raises(commands.CommandError) as missing:
        find(["eiplane-local-MatchCapacity", "x-ProvisionFleetStateMachine"])
    assert str(missing.value) == (
        "no state machine <stack>-ProvisionFleet at http://127.0.0.1:4566 (state machines there: "
        "eiplane-local-MatchCapacity, x-ProvisionFleetStateMachine); pass --stack-name or --state-machine-arn")
    with pytest.raises(commands.CommandError, match="no state machine nope-ProvisionFleet at "):
        find(["eiplane-local-ProvisionFleet"], "nope")
    with pytest.raises(commands.CommandError) as ambiguous:
        find(["a-ProvisionFleet", "b-ProvisionFleet"])
    assert str(ambiguous.value) == ("2 ProvisionFleet state machines at http://127.0.0.1:4566 (a-ProvisionFleet, "
                                    "b-ProvisionFleet): pass --stack-name or --state-machine-arn")


def test_rollout_and_delete_find_their_own_state_machines() -> None:
    from eiplane.cli.deletion import DELETE_FLEET_SUFFIX

    local = ["eiplane-local-DeleteFleet", "eiplane-local-ProvisionFleet", "eiplane-local-RolloutFleet"]
    args = argparse.Namespace(endpoint_url="http://127.0.0.1:4566", stack_name=None)
    for suffix in (commands.ROLLOUT_FLEET_SUFFIX, DELETE_FLEET_SUFFIX):
        found = commands.find_state_machine(boto3.session.Session(), machines_at(local), args, suffix, "unused")
        assert found.endswith(f":stateMachine:eiplane-local{suffix}")
    given = argparse.Namespace(endpoint_url=None, stack_name=None, state_machine_arn="arn:given")
    assert commands.find_state_machine(boto3.session.Session(), machines_at([]), given) == "arn:given"


def test_a_rollout_of_an_invalid_spec_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = json.loads(Path(GPU_SPEC).read_text())
    spec["rollout"] = {"max_surge": 0}  # with min_healthy_percent 100: no batch could ever proceed
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    # no stub, no endpoint: a call would fail differently; the spec is refused before any
    line = one_line_error(capsys, main(["fleet", "rollout", str(path), "--state-machine-arn", "arn:x"]))
    assert line.startswith("InvalidFleetSpec: ") and "min_healthy_percent" in line


def test_a_rolled_back_rollout_exits_1_with_its_cause(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from eiplane.executions import ExecutionResult

    stub_session(monkeypatch, {})
    started: list[dict[str, Any]] = []

    class Machines:
        def start_execution(self, **request: Any) -> dict[str, str]:
            started.append(request)
            return {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:eiplane-RolloutFleet:r"}

    cause = "BatchFailed: batch 1 (...) FAILED: FleetIncomplete: ...; 2 of 2 instance(s) serve tiny-cnn:1"
    monkeypatch.setattr(commands.aws_session(None, None), "client", lambda service, **_: Machines())
    monkeypatch.setattr(commands, "follow", lambda sfn, arn, **_: ExecutionResult(
        arn=arn, status="FAILED", output=None, error="RolledBack", cause=cause, events=[]))
    code = main(["fleet", "rollout", GPU_SPEC, "--state-machine-arn", "arn:machine"])
    assert code == 1 and started[0]["stateMachineArn"] == "arn:machine"
    assert json.loads(started[0]["input"])["name"] == "demo-gpu"
    assert "FAILED: RolledBack: BatchFailed" in capsys.readouterr().err


# --- files and arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["artifact", "push", "{missing}", "--fleet", "f", "--endpoint-url", "http://127.0.0.1:4566"],
    ["artifact", "validate", "{missing}"],
    ["artifact", "validate", "{empty}"],
])
def test_not_an_artifact_dir(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    argv = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in argv]
    assert one_line_error(capsys, main(argv)).startswith("ArtifactError: ")


@pytest.mark.parametrize(("sizes", "message"), [
    ("0,1,x", "eiplane: --sizes '0,1,x': write fleet sizes like 0,1,2,4"),
    ("", "eiplane: --sizes '': write fleet sizes like 0,1,2,4"),
    ("0,-1", "eiplane: --sizes '0,-1': each size is 0-100 (a fleet's capacity.max)"),
])
def test_bad_sizes(sizes: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert one_line_error(capsys, main(["bench", "control-plane-cost", "--sizes", sizes])) == message


@pytest.mark.parametrize(("content", "column", "message"), [
    (b"", None, ": no demand values (the file is empty)"),
    (b"demand_rps\n", None, ": no demand values (only a header row)"),
    (b"demand_rps\n10\nlots\n", None, ":3: not a number: 'lots'"),
    (b"10\n-5\n", None, ":2: demand must be a finite number >= 0, got '-5'"),
    (b"10\nNaN\n", None, ":2: demand must be a finite number >= 0, got 'NaN'"),
    (b"10\n1e400\n", None, ":2: demand must be a finite number >= 0, got '1e400'"),
    (b"ts,rps\n0,10\n1,12,3\n", None, ":3: a ragged row: 3 cell(s) where the header has 2"),
    (b"ts,rps\n0,10\n", "qps", ": no column 'qps'; its columns: 0 'ts', 1 'rps': choose the demand with --column NAME or "
                                "a 0-based INDEX"),
    (b"minute,rps\n0,10\n", None, ": 2 columns: 0 'minute', 1 'rps'; 2 of them all numbers (0 'minute', 1 'rps'): choose "
                                    "the demand with --column NAME or a 0-based INDEX"),
    (b"\xff\xfe\x00\x01binary", None, ": not a text file (not UTF-8 at byte 0)"),
])
def test_malformed_trace(content: bytes, column: str | None, message: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_bytes(content)
    chosen = ["--column", column] if column else []
    line = one_line_error(capsys, main(["simulate", "--trace", str(trace), *chosen, "--out", str(tmp_path / "out")]))
    assert line == f"eiplane: {trace}{message}"
    assert not (tmp_path / "out").exists()


def test_bench_simulator_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert one_line_error(capsys, main(["bench", "simulator", "--days", "0"])) == "eiplane: --days 0: at least 1"
    missing = tmp_path / "nope.csv"
    line = one_line_error(capsys, main(["bench", "simulator", "--trace", str(missing)]))
    assert line == f"eiplane: {missing}: no such trace file"
    trace = tmp_path / "trace.csv"
    trace.write_text("ts,rps\n0,10\n")
    line = one_line_error(capsys, main(["bench", "simulator", "--trace", str(trace), "--column", "qps"]))
    assert line.startswith(f"eiplane: {trace}: no column 'qps'")


def test_simulate_a_trace_with_a_timestamp_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,requests_per_second\n" + "".join(f"2024-01-01T00:{m:02d},{400 + 10 * m}\n" for m in range(40)))
    for chosen in ([], ["--column", "requests_per_second"], ["--column", "1"]):
        assert main(["simulate", "--trace", str(trace), *chosen, "--out", str(tmp_path / "out")]) == 0
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert [s["minutes"] for s in summary["summaries"]] == [40, 40, 40]
    assert "| eiplane |" in capsys.readouterr().out


def test_simulate_bad_numbers_and_missing_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("10\n20\n")
    code = main(["simulate", "--trace", str(trace), "--capacity-rps", "0", "--out", str(tmp_path / "out")])
    assert one_line_error(capsys, code).startswith("eiplane: --capacity-rps must be > 0")
    code = main(["simulate", "--trace", str(tmp_path / "nope.csv")])
    assert one_line_error(capsys, code) == f"eiplane: {tmp_path / 'nope.csv'}: no such trace file"


def test_a_multi_line_message_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: [unclosed\nregion: x\n")  # the YAML error spans lines
    line = one_line_error(capsys, main(["fleet", "apply", str(spec), "--local"]))
    assert line.startswith(f"eiplane: {spec} is neither YAML nor JSON: ")


def test_local_up_on_a_busy_port(listening_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, main(["local", "up", "--port", str(listening_port)]))
    assert line.startswith(f"eiplane: cannot serve on 127.0.0.1:{listening_port} (")
    assert line.endswith("pick another --port, or --port 0 for a free one")


def test_an_unwritable_report_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(args: argparse.Namespace) -> int:
        commands.write_json(str(tmp_path / "a-file" / "report.json"), {})
        return 0

    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(commands, "simulate", handler)
    assert one_line_error(capsys, main(["simulate", "--trace", "x"])).startswith("eiplane: [Errno ")


# --- explain(): the one place that says it ---------------------------------------------------------

@pytest.mark.parametrize(("error", "line"), [
    (commands.CommandError("two\nlines"), "eiplane: two; lines"),
    (InvalidFleetSpec(["a", "b"]), "InvalidFleetSpec: fleet spec has 2 problems: a; b"),
    (boto_errors.NoCredentialsError(), f"eiplane: {commands.NO_CREDENTIALS}"),
    (boto_errors.NoRegionError(), f"eiplane: {commands.NO_REGION}"),
    (boto_errors.ParamValidationError(report="Invalid length for parameter name\nMissing required parameter"),
     "eiplane: invalid AWS request: Parameter validation failed:; Invalid length for parameter name; "
     "Missing required parameter"),
    (boto_errors.EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/"),
     "eiplane: nothing is listening at http://127.0.0.1:4566: start the embedded AWS there with `eiplane local up` "
     "(it prints its endpoint), or fix --endpoint-url"),
    (boto_errors.EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com/"),
     "eiplane: cannot reach https://states.us-east-1.amazonaws.com: check the network, --region and --endpoint-url"),
    (boto_errors.ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com/b"),
     "eiplane: cannot reach https://s3.amazonaws.com: check the network, --region and --endpoint-url"),
    (boto_errors.ProfileNotFound(profile="prod"), "eiplane: ProfileNotFound: The config profile (prod) could not be found"),
    (boto_errors.ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution"),
     "eiplane: AWS refused StartExecution: ThrottlingException: Rate exceeded"),
    (FileNotFoundError(2, "No such file or directory", "x.json"), "eiplane: [Errno 2] No such file or directory: 'x.json'"),
])
def test_explain(error: BaseException, line: str) -> None:
    assert explain(error) == line


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr(commands, "simulate", handler)
    assert explain(KeyError("a bug")) is None
    with pytest.raises(KeyError):
        main(["simulate", "--trace", "x"])


def test_the_installed_command_prints_one_line_without_aws_configuration(tmp_path: Path, closed_port: int) -> None:
    """The reported symptom, end to end: `eiplane` on a machine with no AWS configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    for argv, start in ((["fleet", "apply", GPU_SPEC], "eiplane: no AWS region configured"),
                        (["fleet", "apply", GPU_SPEC, "--endpoint-url", f"http://127.0.0.1:{closed_port}"],
                         "eiplane: nothing is listening at")):
        completed = subprocess.run([str(Path(sys.executable).parent / "eiplane"), *argv], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=120, check=False)
        assert completed.returncode == 2, completed.stderr
        assert completed.stderr.startswith(start) and completed.stderr.count("\n") == 1, completed.stderr


def test_fleet_apply_local_without_the_artifact_is_refused_before_anything_starts(
        capsys: pytest.CaptureFixture[str]) -> None:
    # an embedded AWS of its own, with an empty bucket: the run could only fail at PlanLaunch
    line = one_line_error(capsys, main(["fleet", "apply", GPU_SPEC, "--local"]))
    assert line.startswith("eiplane: --local starts an embedded AWS of its own, with an empty bucket, and this spec "
                           "wants 2 instance(s): give the packed model with --artifact DIR"), line
    assert "embedded AWS on" not in capsys.readouterr().out
