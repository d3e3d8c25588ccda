"""The embedded Lambda runtime keeps Lambda's guarantees and limits: each function its own
environment (never the process's, never rewritten under other threads), the template's Timeout
(`Sandbox.Timedout`, and nothing the handler does afterwards reaches the account), the 6 MB
response limit, and the Lambda service's own invoke errors. The environment and the timeout have
a canary each: with enforcement off, the same run shows what they catch."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from eiplane.local.engine import EmbeddedAws, _zip_folder, function_credentials
from eiplane.local.lambda_runtime import LocalFunction
from tests.conftest import load_event
from tests.integration.conftest import Faults, spec_for

HOST_ONLY = "EIPLANE_TEST_HOST_ONLY"


def _function(aws: EmbeddedAws, logical_id: str) -> str:
    return aws.stack.functions[logical_id]


def _invoke(aws: EmbeddedAws, function: str, event: Any) -> tuple[dict[str, Any], Any]:
    response = aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    return response, json.loads(response["Payload"].read() or b"null")


def _environment_seen_by_handler(aws: EmbeddedAws, faults: Faults) -> dict[str, str]:
    import os

    seen: dict[str, str] = {}
    faults.rewrite("ec2", "DescribeVpcs", lambda parsed: seen.update(os.environ))
    response, _ = _invoke(aws, _function(aws, "ValidateFleetSpecFunction"), load_event("validate_fleet_spec.json"))
    assert "FunctionError" not in response
    return seen


def test_a_handler_sees_its_function_environment_only(aws: EmbeddedAws, faults: Faults,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv(HOST_ONLY, "host")
    seen = _environment_seen_by_handler(aws, faults)

    function = _function(aws, "ValidateFleetSpecFunction")
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == function
    assert seen["POWERTOOLS_SERVICE_NAME"] == "eiplane"
    assert seen["AWS_ACCESS_KEY_ID"] == function_credentials(function)["AWS_ACCESS_KEY_ID"]
    assert HOST_ONLY not in seen and "HOME" not in seen
    # ... and the process's own environment was never touched
    assert os.environ[HOST_ONLY] == "host" and os.environ["AWS_ACCESS_KEY_ID"] != seen["AWS_ACCESS_KEY_ID"]
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ


def test_canary_without_isolation_the_host_environment_shows_through(aws: EmbeddedAws, faults: Faults,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert aws.runtime is not None
    monkeypatch.setenv(HOST_ONLY, "host")
    aws.runtime.enforce_limits = False
    assert _environment_seen_by_handler(aws, faults)[HOST_ONLY] == "host"


def test_other_threads_read_the_process_environment_while_handlers_run(aws: EmbeddedAws,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The race that failed runs at random: handlers' environments were swapped into os.environ
    while moto's threads, embedded instances and the test read it."""
    import os

    monkeypatch.setenv(HOST_ONLY, "host")
    misses: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.wait(0.0005):  # reads all along, and leaves the cores to the run
            value = os.environ.get(HOST_ONLY)
            if value != "host" or "POWERTOOLS_SERVICE_NAME" in os.environ:
                misses.append(repr(value))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = aws.run(spec_for("gpu"), name="gpu-1")
    finally:
        stop.set()
        thread.join()
    assert result.status == "SUCCEEDED"
    assert misses == []


def test_a_handler_past_its_timeout_fails_with_sandbox_timedout(aws: EmbeddedAws, faults: Faults) -> None:
    faults.delay("ec2", "DescribeVpcs", 121)  # ValidateFleetSpecFunction: Timeout 120 (Globals)
    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "Sandbox.Timedout")
    failure = next(e["lambdaFunctionFailedEventDetails"] for e in result.events if e["type"] == "LambdaFunctionFailed")
    assert failure["error"] == "Sandbox.Timedout"
    assert "Task timed out after 120.00 seconds" in failure["cause"]
    assert result.states_entered() == ["ValidateFleetSpec", "PrerequisitesFailed"]


def test_nothing_a_handler_does_after_its_deadline_reaches_the_account(aws: EmbeddedAws, faults: Faults) -> None:
    """RecordPrerequisites' write comes after a slow read: its sandbox is frozen by then."""
    faults.delay("dynamodb", "GetItem", 31, function="RecordPrerequisitesFunction", after=True)  # Timeout 30
    result = aws.run(spec_for("gpu"), name="gpu-1")

    assert (result.status, result.error) == ("FAILED", "Sandbox.Timedout")
    items = aws.client("dynamodb").scan(TableName=aws.stack.outputs["FleetStateTableName"])["Items"]
    assert items == []


def test_canary_without_the_timeout_the_slow_handler_finishes(aws: EmbeddedAws, faults: Faults) -> None:
    assert aws.runtime is not None
    aws.runtime.enforce_limits = False
    faults.delay("ec2", "DescribeVpcs", 121)
    assert aws.run(spec_for("gpu"), name="gpu-1").status == "SUCCEEDED"


def _big_response_function(aws: EmbeddedAws, tmp_path: Path) -> str:
    """A function of its own whose response is 7 MB."""
    assert aws.runtime is not None
    code = tmp_path / "big"
    code.mkdir()
    (code / "app.py").write_text("def lambda_handler(event, context):\n    return 'x' * (7 * 1024 * 1024)\n")
    name = "eiplane-local-test-big-response"
    role = aws.client("iam").create_role(RoleName="test-big", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = aws.client("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role,
                                               Handler="app.lambda_handler", Code={"ZipFile": _zip_folder(code)},
                                               Timeout=30, MemorySize=128)["FunctionArn"]
    aws.runtime.register(LocalFunction(name=name, arn=arn, code_dir=code, handler="app.lambda_handler",
                                       environment={"AWS_LAMBDA_FUNCTION_NAME": name}, timeout_s=30, memory_mb=128))
    return name


def test_a_response_over_6_mb_fails_as_lambda_fails_it(aws: EmbeddedAws, tmp_path: Path) -> None:
    response, payload = _invoke(aws, _big_response_function(aws, tmp_path), {})

    assert response["FunctionError"]
    assert payload == {"errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                       "errorType": "Function.ResponseSizeTooLarge"}


@pytest.mark.parametrize(("code", "status"), [("ServiceException", 500), ("TooManyRequestsException", 429)])
def test_lambda_service_errors_are_named_as_step_functions_names_them_and_retried(
        aws: EmbeddedAws, code: str, status: int) -> None:
    assert aws.runtime is not None
    aws.runtime.fail_invocations(_function(aws, "ValidateFleetSpecFunction"), code, times=2, status=status)
    result = aws.run(spec_for("gpu", dry_run=True), name="gpu-1")

    assert result.status == "SUCCEEDED"
    errors = [e["lambdaFunctionFailedEventDetails"]["error"] for e in result.events if e["type"] == "LambdaFunctionFailed"]
    assert errors == [f"Lambda.{code}"] * 2  # the ASL's Retry for Lambda's transient errors took both
