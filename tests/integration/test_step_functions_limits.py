"""Step Functions on the embedded AWS fails where AWS Step Functions fails (eiplane/local/sfn_strict.py).

Each enforcement has a test on small ad-hoc state machines, and a canary that runs the same
machine with that one patch undone (`sfn_strict.relaxed`) and finds moto's own, more lenient,
behaviour: when a moto upgrade makes a canary fail, moto enforces it itself and the patch can go.
The AWS behaviours and their sources are in sfn_strict's docstrings.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaFunction
from moto.core.exceptions import JsonRESTError
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from eiplane.executions import ExecutionResult
from eiplane.local import sfn_strict
from eiplane.local.engine import ACCOUNT_ID, EmbeddedAws
from eiplane.local.lambda_runtime import LocalFunction

REGION = "us-east-1"
LIMIT = sfn_strict.MAX_PAYLOAD_BYTES  # 262,144
RESULT_TOO_LARGE = "returned a result with a size exceeding the maximum number of bytes service limit."

HANDLER = textwrap.dedent('''
    def lambda_handler(event, context):
        mode = event.get("mode")
        if mode == "result":  # {"a": "xxx..."}: exactly event["bytes"] bytes of compact JSON
            return {"a": "x" * (event["bytes"] - len('{"a":""}'))}
        if mode == "raise":
            raise ValueError("m" * event["length"])
        if mode == "raise_named":
            raise type(event["name"], (Exception,), {})("boom")
        return {"ok": True}
''')


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    """One engine for the module: every test makes its own state machines and executions."""
    with EmbeddedAws(region=REGION) as engine:
        yield engine


@pytest.fixture(scope="module")
def role(aws: EmbeddedAws) -> str:
    return str(aws.client("iam").create_role(RoleName="sfn-limits", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
            "Service": ["states.amazonaws.com", "lambda.amazonaws.com"]}}]}))["Role"]["Arn"])


@pytest.fixture(scope="module")
def function_arn(aws: EmbeddedAws, role: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An ad-hoc function (HANDLER) deployed on moto and registered with the in-process runtime."""
    code_dir = tmp_path_factory.mktemp("limits_fn")
    (code_dir / "app.py").write_text(HANDLER)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(code_dir / "app.py", "app.py")
    name = "sfn-limits-fn"
    arn = str(aws.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.lambda_handler",
        Code={"ZipFile": archive.getvalue()}, Timeout=30, MemorySize=128)["FunctionArn"])
    assert aws.runtime is not None
    aws.runtime.register(LocalFunction(name=name, arn=arn, code_dir=Path(code_dir), handler="app.lambda_handler",
                                       environment={"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION},
                                       timeout_s=30, memory_mb=128))
    return arn


def start(aws: EmbeddedAws, role: str, definition: dict[str, Any], execution_input: Any = None) -> str:
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"limits-{uuid.uuid4().hex[:12]}", roleArn=role,
                                       definition=json.dumps(definition))["stateMachineArn"]
    return str(sfn.start_execution(stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(
        execution_input if execution_input is not None else {}))["executionArn"])


def run(aws: EmbeddedAws, role: str, definition: dict[str, Any], execution_input: Any = None) -> ExecutionResult:
    return aws.wait(start(aws, role, definition, execution_input))


def events_of(result: ExecutionResult, event_type: str) -> list[dict[str, Any]]:
    return [e for e in result.events if e["type"] == event_type]


def details(event: dict[str, Any]) -> dict[str, Any]:
    return next(v for k, v in event.items() if k.endswith("EventDetails"))


def pass_result(result: Any, **state: Any) -> dict[str, Any]:
    return {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": True, **state}}}


def task(function_arn: str, catch: list[str] | None = None, retry: list[str] | None = None,
         **state: Any) -> dict[str, Any]:
    """A Lambda task "T" (plain function ARN, as the project's ASL), optionally caught into "Caught"."""
    definition: dict[str, Any] = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": function_arn,
                                                                  "End": True, **state}}}
    if retry:
        definition["States"]["T"]["Retry"] = [{"ErrorEquals": [e], "IntervalSeconds": 1, "MaxAttempts": 2}
                                              for e in retry]
    if catch:
        definition["States"]["T"]["Catch"] = [{"ErrorEquals": [e], "Next": "Caught"} for e in catch]
        definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    return definition


# --- payload size ---------------------------------------------------------------------------------

def test_payload_size_is_compact_utf8_json() -> None:
    assert sfn_strict.payload_bytes({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert sfn_strict.payload_bytes("é") == len('"é"'.encode())  # 4: quotes count, é is 2 bytes
    assert sfn_strict.within_payload_quota("a" * (LIMIT - 2))  # exactly 262,144 bytes: allowed
    assert not sfn_strict.within_payload_quota("a" * (LIMIT - 1))


def test_a_state_output_is_measured_as_aws_measures_it(aws: EmbeddedAws, role: str) -> None:
    # 200,001 bytes compact, 300,000 with moto's spaces; 260,008 bytes of UTF-8, over 780,000 as \u00e9;
    # exactly 262,144 bytes.
    for result in ([0] * 100_000, {"s": "é" * 130_000}, {"a": "x" * (LIMIT - 8)}):
        assert run(aws, role, pass_result(result)).status == "SUCCEEDED"

    over = run(aws, role, pass_result("a" * (LIMIT - 1)))  # 262,145 bytes with its quotes
    assert (over.status, over.error, over.cause) == (
        "FAILED", "States.DataLimitExceeded", f"The state/task 'P' {RESULT_TOO_LARGE}")
    assert [e["type"] for e in over.events] == ["ExecutionStarted", "PassStateEntered", "ExecutionFailed"]


def test_canary_moto_measures_a_string_output_without_its_quotes(aws: EmbeddedAws, role: str) -> None:
    with sfn_strict.relaxed("payload_size"):
        # (moto's DescribeExecution returns a string output without its quotes: not parsed here)
        assert _wait(aws.client("stepfunctions"), start(aws, role, pass_result("a" * (LIMIT - 1))))[
            "status"] == "SUCCEEDED"
        # ...and JSON with spaces: a 200,001-byte output fails.
        assert run(aws, role, pass_result([0] * 100_000)).error == "States.DataLimitExceeded"


def test_a_state_input_after_parameters_over_the_limit_fails(aws: EmbeddedAws, role: str,
                                                             function_arn: str) -> None:
    big = {"b": "a" * LIMIT}
    passed = run(aws, role, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": big, "ResultPath": None,
                                                              "End": True}}})
    assert (passed.status, passed.error) == ("FAILED", "States.DataLimitExceeded")
    assert passed.cause is not None and passed.cause.startswith(
        "The state/task 'P' has an input, after Parameters processing, with a size exceeding")

    scheduled = run(aws, role, task(function_arn, catch=["States.ALL"], Parameters=big))
    assert (scheduled.status, scheduled.error) == ("FAILED", "States.DataLimitExceeded")
    assert not events_of(scheduled, "LambdaFunctionScheduled")  # the function never ran

    mapped = run(aws, role, {"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"item.$": "$$.Map.Item.Value", **big},
        "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "ResultPath": None, "End": True}}},
        "ResultPath": None, "End": True}}}, {"items": [1]})
    assert (mapped.status, mapped.error) == ("FAILED", "States.DataLimitExceeded")


def test_canary_moto_does_not_check_a_state_input_after_parameters(aws: EmbeddedAws, role: str) -> None:
    with sfn_strict.relaxed("payload_size"):
        result = run(aws, role, {"StartAt": "P", "States": {"P": {
            "Type": "Pass", "Parameters": {"b": "a" * LIMIT}, "ResultPath": None, "End": True}}})
    assert result.status == "SUCCEEDED"


def test_a_lambda_result_over_the_limit_fails_with_aws_cause(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    exact = run(aws, role, task(function_arn, Parameters={"mode": "result", "bytes": LIMIT}))
    assert exact.status == "SUCCEEDED" and sfn_strict.payload_bytes(exact.output) == LIMIT

    over = run(aws, role, task(function_arn, Parameters={"mode": "result", "bytes": LIMIT + 1}))
    cause = f"The state/task '{function_arn}' {RESULT_TOO_LARGE}"
    assert (over.status, over.error, over.cause) == ("FAILED", "States.DataLimitExceeded", cause)
    assert details(events_of(over, "LambdaFunctionFailed")[0]) == {"error": "States.DataLimitExceeded",
                                                                   "cause": cause}


def test_canary_moto_measures_the_whole_invoke_response_with_spaces(aws: EmbeddedAws, role: str,
                                                                     function_arn: str) -> None:
    """Here moto is the stricter: a result of exactly 262,144 bytes fails (a false failure)."""
    with sfn_strict.relaxed("payload_size"):
        exact = run(aws, role, task(function_arn, Parameters={"mode": "result", "bytes": LIMIT}))
    assert exact.error == "States.DataLimitExceeded"


def test_an_execution_input_over_the_limit_is_refused(aws: EmbeddedAws, role: str) -> None:
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(name=f"limits-{uuid.uuid4().hex[:12]}", roleArn=role,
                                       definition=json.dumps(pass_result(None, ResultPath=None)))["stateMachineArn"]
    fits = '{"a":"' + "x" * (LIMIT - 8) + '"}'
    assert len(fits.encode()) == LIMIT
    started = sfn.start_execution(stateMachineArn=machine, name="fits", input=fits)["executionArn"]
    assert aws.wait(started).status == "SUCCEEDED"

    with pytest.raises(ClientError) as refused:
        sfn.start_execution(stateMachineArn=machine, name="over", input=fits.replace('"}', 'x"}'))
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert refused.value.response["Error"]["Message"] == (
        "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have size less "
        "than or equal to 262144 bytes in UTF-8 encoding")

    with sfn_strict.relaxed("payload_size"):  # canary: moto starts it
        assert sfn.start_execution(stateMachineArn=machine, name="over", input=fits.replace('"}', 'x"}'))[
            "executionArn"]


# --- States.Runtime and States.DataLimitExceeded are not caught by States.ALL -------------------

def test_states_runtime_is_never_retried_or_caught(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    definition = task(function_arn, catch=["States.Runtime", "States.TaskFailed", "States.ALL"],
                      retry=["States.Runtime", "States.ALL"], Parameters={"x.$": "$.missing"})
    result = run(aws, role, definition)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "Caught" not in result.states_entered()
    assert len(events_of(result, "TaskFailed")) == 1 and not events_of(result, "LambdaFunctionScheduled")


def test_canary_moto_catches_states_runtime_with_states_all(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    with sfn_strict.relaxed("uncatchable"):
        result = run(aws, role, task(function_arn, catch=["States.ALL"], Parameters={"x.$": "$.missing"}))
    assert result.status == "SUCCEEDED" and result.output["Error"] == "States.Runtime"


def test_data_limit_exceeded_is_caught_only_by_its_name(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    too_big = {"mode": "result", "bytes": LIMIT + 1}
    wildcard = run(aws, role, task(function_arn, catch=["States.TaskFailed", "States.ALL"], retry=["States.ALL"],
                                   Parameters=too_big))
    assert (wildcard.status, wildcard.error) == ("FAILED", "States.DataLimitExceeded")
    assert len(events_of(wildcard, "LambdaFunctionScheduled")) == 1  # not retried

    named = run(aws, role, task(function_arn, catch=["States.DataLimitExceeded"], Parameters=too_big))
    assert named.status == "SUCCEEDED"
    assert named.output == {"Error": "States.DataLimitExceeded",
                            "Cause": f"The state/task '{function_arn}' {RESULT_TOO_LARGE}"}


def test_an_error_of_a_map_iteration_keeps_its_states_name(aws: EmbeddedAws, role: str) -> None:
    """moto turned any States.* error leaving a Map iteration or Parallel branch into an
    (uncatchable) States.Runtime "Custom Error Names MUST NOT begin with the prefix 'States.'"."""
    iteration = {"StartAt": "I", "States": {"I": {"Type": "Pass", "Result": "a" * LIMIT, "End": True}}}
    catch = [{"ErrorEquals": ["States.DataLimitExceeded"], "Next": "Caught"}]
    for state in ({"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": iteration},
                  {"Type": "Parallel", "Branches": [iteration]}):
        result = run(aws, role, {"StartAt": "S", "States": {"S": {**state, "Catch": catch, "End": True},
                                                            "Caught": {"Type": "Pass", "End": True}}}, {"items": [1]})
        assert result.status == "SUCCEEDED", (state["Type"], result.cause)
        assert result.output["Error"] == "States.DataLimitExceeded"


def test_canary_moto_catches_data_limit_exceeded_with_states_all(aws: EmbeddedAws, role: str,
                                                                 function_arn: str) -> None:
    with sfn_strict.relaxed("uncatchable"):
        result = run(aws, role, task(function_arn, catch=["States.ALL"],
                                     Parameters={"mode": "result", "bytes": LIMIT + 1}))
    assert result.status == "SUCCEEDED" and result.output["Error"] == "States.DataLimitExceeded"


# --- a Choice on a missing path ----------------------------------------------------------------------

def choice(rule: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Matched"}], "Default": "Default"},
        "Matched": {"Type": "Succeed"}, "Default": {"Type": "Succeed"}}}


def test_a_choice_on_a_missing_path_fails_the_execution(aws: EmbeddedAws, role: str) -> None:
    for rule in ({"Variable": "$.flag", "BooleanEquals": True},
                 {"Not": {"Variable": "$.flag", "IsNull": True}},
                 {"And": [{"Variable": "$.present", "IsPresent": True}, {"Variable": "$.flag", "StringEquals": "x"}]}):
        result = run(aws, role, choice(rule), {"present": 1})
        assert (result.status, result.error) == ("FAILED", "States.Runtime"), rule
        assert result.cause == ("An error occurred while executing the state 'C' (entered at the event id #2). "
                                "Invalid path '$.flag': The choice state's condition path references an invalid value.")
        assert [e["type"] for e in result.events][-2:] == ["ChoiceStateEntered", "ExecutionFailed"]

    absent = run(aws, role, choice({"Variable": "$.flag", "IsPresent": False}))  # IsPresent may test it
    assert (absent.status, absent.states_entered()) == ("SUCCEEDED", ["C", "Matched"])


def test_canary_moto_takes_default_on_a_missing_choice_path(aws: EmbeddedAws, role: str) -> None:
    with sfn_strict.relaxed("choice_missing_path"):
        result = run(aws, role, choice({"Variable": "$.flag", "BooleanEquals": True}))
    assert (result.status, result.states_entered()) == ("SUCCEEDED", ["C", "Default"])


# --- a missing .$ path -------------------------------------------------------------------------------

def test_a_missing_path_in_parameters_fails_the_execution(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    result = run(aws, role, task(function_arn, catch=["States.ALL"], Parameters={"x.$": "$.missing"}),
                 {"a": "é"})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.cause == ("An error occurred while executing the state 'T' (entered at the event id #2). "
                            "The JSONPath '$.missing' specified for the field 'x.$' could not be found in the input "
                            "'{\"a\":\"é\"}'")


def test_a_missing_path_in_result_selector_or_item_selector_fails(aws: EmbeddedAws, role: str,
                                                                  function_arn: str) -> None:
    selected = run(aws, role, task(function_arn, catch=["States.ALL"], ResultSelector={"s.$": "$.score"}))
    assert (selected.status, selected.error) == ("FAILED", "States.Runtime")
    assert selected.cause is not None and selected.cause.endswith(
        "The JSONPath '$.score' specified for the field 's.$' could not be found in the input '{\"ok\":true}'")

    mapped = run(aws, role, {"StartAt": "M", "States": {
        "M": {"Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"v.$": "$$.Map.Item.Value", "t.$": "$.tick"},
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}},
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
        "Caught": {"Type": "Pass", "End": True}}}, {"items": [1]})
    assert (mapped.status, mapped.error) == ("FAILED", "States.Runtime")
    assert mapped.cause is not None and "specified for the field 't.$' could not be found" in mapped.cause


def test_canary_moto_raises_a_catchable_exception_for_a_missing_path(aws: EmbeddedAws, role: str,
                                                                     function_arn: str) -> None:
    with sfn_strict.relaxed("missing_field_path"):
        result = run(aws, role, task(function_arn, catch=["States.ALL"], Parameters={"x.$": "$.missing"}))
    assert result.status == "SUCCEEDED" and result.output["Error"] == "Exception"


# --- Lambda's errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "status"), [("ServiceException", 500), ("TooManyRequestsException", 429),
                                              ("AWSLambdaException", 500)])
def test_a_failed_lambda_invoke_is_named_lambda_error_code(aws: EmbeddedAws, role: str, function_arn: str,
                                                           code: str, status: int) -> None:
    def fail(self: LambdaFunction, event: Any = None) -> Any:
        error = JsonRESTError(code, "Rate exceeded" if status == 429 else "Lambda had an internal error")
        error.code = status
        raise error

    with mock.patch.object(LambdaFunction, "_invoke_lambda", fail):
        result = run(aws, role, task(function_arn, retry=[f"Lambda.{code}"]))
    assert (result.status, result.error) == ("FAILED", f"Lambda.{code}")
    assert re.fullmatch(rf".+ \(Service: AWSLambda; Status Code: {status}; Error Code: {code}; Request ID: \S+; "
                        r"Proxy: null\)", result.cause or ""), result.cause
    failed = events_of(result, "LambdaFunctionFailed")
    assert len(failed) == 3 and {details(e)["error"] for e in failed} == {f"Lambda.{code}"}  # the retrier matched


def test_a_missing_function_is_lambda_resource_not_found(aws: EmbeddedAws, role: str) -> None:
    missing = f"arn:aws:lambda:{REGION}:123456789012:function:no-such-function"
    result = run(aws, role, task(missing))
    assert (result.status, result.error) == ("FAILED", "Lambda.ResourceNotFoundException")
    assert "no-such-function" in (result.cause or "")
    assert "(Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException;" in (result.cause or "")


def test_canary_moto_names_a_failed_invoke_exception(aws: EmbeddedAws, role: str) -> None:
    with sfn_strict.relaxed("lambda_errors"):
        result = run(aws, role, task(f"arn:aws:lambda:{REGION}:123456789012:function:no-such-function"))
    assert result.error == "Exception"


TIMED_OUT_2024 = {"errorMessage": "2024-05-06T13:44:03.691Z 58439e2d Task timed out after 3.00 seconds"}


@pytest.mark.parametrize("integration", ["function_arn", "lambda:invoke"])
def test_a_function_error_without_error_type_is_lambda_unknown(aws: EmbeddedAws, role: str, function_arn: str,
                                                               integration: str) -> None:
    definition = task(function_arn) if integration == "function_arn" else task(
        "arn:aws:states:::lambda:invoke", Parameters={"FunctionName": function_arn, "Payload": {}})
    with mock.patch.object(LambdaFunction, "_invoke_lambda", lambda self, event=None: (
            json.dumps(TIMED_OUT_2024), True, "")):
        result = run(aws, role, definition)
    assert (result.status, result.error) == ("FAILED", "Lambda.Unknown")
    assert result.cause == ("The cause could not be determined because Lambda did not return an error type. "
                            "Returned payload: " + json.dumps(TIMED_OUT_2024, separators=(",", ":")))


def test_canary_moto_names_a_function_error_without_type_exception(aws: EmbeddedAws, role: str,
                                                                   function_arn: str) -> None:
    with sfn_strict.relaxed("lambda_errors"), mock.patch.object(
            LambdaFunction, "_invoke_lambda", lambda self, event=None: (json.dumps(TIMED_OUT_2024), True, "")):
        result = run(aws, role, task(function_arn))
    assert result.error == "Exception"


def test_a_lambda_timeout_payload_is_named_sandbox_timedout(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    payload = {"errorType": "Sandbox.Timedout",
               "errorMessage": "RequestId: 5d7a1f0e Error: Task timed out after 3.00 seconds"}
    with mock.patch.object(LambdaFunction, "_invoke_lambda", lambda self, event=None: (
            json.dumps(payload), True, "")):
        result = run(aws, role, task(function_arn, catch=["Sandbox.Timedout"]))
    assert result.status == "SUCCEEDED"
    assert result.output == {"Error": "Sandbox.Timedout", "Cause": json.dumps(payload, separators=(",", ":"))}


# --- error and cause lengths ----------------------------------------------------------------------------

def test_a_cause_over_32768_characters_fails_the_execution(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    fits = run(aws, role, task(function_arn, catch=["States.ALL"], Parameters={"mode": "raise", "length": 20_000}))
    assert fits.status == "SUCCEEDED" and fits.output["Error"] == "ValueError"

    result = run(aws, role, task(function_arn, catch=["States.ALL"], Parameters={"mode": "raise", "length": 40_000}))
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    length = len(details(events_of(result, "LambdaFunctionFailed")[0])["cause"] or "")  # our refusal, not the payload
    assert length < 1000
    assert re.search(r"The state/task 'T' failed with an error cause of \d{5} characters, over the 32,768 AWS "
                     r"accepts \(error 'ValueError'\)", result.cause or ""), result.cause


def test_an_error_name_over_256_characters_fails_the_execution(aws: EmbeddedAws, role: str,
                                                               function_arn: str) -> None:
    result = run(aws, role, task(function_arn, catch=["States.ALL"],
                                 Parameters={"mode": "raise_named", "name": "E" * 300}))
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert "failed with an error name of 300 characters, over the 256 AWS accepts" in (result.cause or "")


def test_canary_moto_records_a_cause_of_any_length(aws: EmbeddedAws, role: str, function_arn: str) -> None:
    with sfn_strict.relaxed("error_cause_limits"):
        result = run(aws, role, task(function_arn, catch=["States.ALL"],
                                     Parameters={"mode": "raise", "length": 40_000}))
    assert result.status == "SUCCEEDED" and len(result.output["Cause"]) > 40_000


# --- the history limit --------------------------------------------------------------------------------------

def last_event(execution_arn: str) -> dict[str, Any]:
    """Read from moto's backend: its GetExecutionHistory ignores reverseOrder and maxResults, and
    answers 25,000 events in one page that takes botocore some 15 s to parse."""
    execution = stepfunctions_parser_backends[ACCOUNT_ID][REGION].describe_execution(execution_arn)
    events = execution.to_history_output()["events"]
    # Right after StartExecution the execution's thread may not have recorded its first event yet.
    return dict(events[-1]) if events else {"id": 0}


def test_an_execution_reaching_25000_history_events_fails(aws: EmbeddedAws, role: str) -> None:
    sfn = aws.client("stepfunctions")
    execution = start(aws, role, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "P"}}})
    described = _wait(sfn, execution)
    assert (described["status"], described["error"], described["cause"]) == (
        "FAILED", "States.Runtime", "The execution reached the maximum number of history events (25000).")
    last = last_event(execution)
    assert (last["id"], last["previousEventId"], last["type"]) == (25_000, 24_999, "ExecutionFailed")
    assert last["executionFailedEventDetails"] == {"error": "States.Runtime", "cause": described["cause"]}


def test_canary_moto_has_no_history_limit(aws: EmbeddedAws, role: str) -> None:
    # 4 events an iteration: 6,300 iterations pass 25,000 events, then the execution succeeds.
    counting = {"StartAt": "Count", "States": {
        "Count": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "More"},
        "More": {"Type": "Choice", "Choices": [{"Variable": "$.i", "NumericLessThan": 6300, "Next": "Count"}],
                 "Default": "Done"},
        "Done": {"Type": "Succeed"}}}
    with sfn_strict.relaxed("history_limit"):
        execution = start(aws, role, counting, {"i": 0})
        described = _wait(aws.client("stepfunctions"), execution)
    assert described["status"] == "SUCCEEDED"
    assert last_event(execution)["id"] > 25_000


def _wait(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """DescribeExecution once it ends (wait_for_execution would page through all 25,000 events). No
    deadline in seconds: the loop's own history grows while it runs, and a stall of a minute fails."""
    seen, last_change = -1, time.monotonic()
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        events = last_event(execution_arn)["id"]
        if events != seen:
            seen, last_change = events, time.monotonic()
        assert time.monotonic() - last_change < 60, f"{execution_arn} made no progress in 60 s"
        time.sleep(0.2)
    return dict(described)
