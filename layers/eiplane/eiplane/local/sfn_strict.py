"""moto's Step Functions interpreter, made at least as strict as AWS Step Functions.

moto (pinned in pyproject.toml) runs the real ASL, but lets through what AWS refuses: a state
machine that passes here could fail in an account. `strict_step_functions()` patches moto's
private interpreter classes (moto/stepfunctions/parser) so that it fails where AWS fails. Each
patch enforces one AWS behaviour, says where that behaviour is documented or was recorded, and
can be switched off on its own (`disable=`, or `relaxed()` inside an engine that is running):
tests/integration/test_step_functions_limits.py shows that each one matters, and
tests/integration/test_moto_canary.py checks that the moto internals they replace still exist.

The patches (names for `disable=` and `relaxed()`):
- payload_size: 262,144 bytes of compact UTF-8 JSON per state input (after Parameters or
  ItemSelector), state output, task result and execution input (moto measures JSON with spaces
  and \\u escapes, a string output without its quotes, and not a state's input at all).
- uncatchable: States.Runtime is never retried or caught; States.DataLimitExceeded is not
  matched by States.ALL (moto matches both with States.ALL).
- choice_missing_path: a Choice rule whose Variable path is missing fails the execution with
  States.Runtime (moto takes Default).
- missing_field_path: a `.$` path missing from the input in Parameters, ResultSelector,
  ItemSelector or Assign fails the execution with States.Runtime (moto raises a catchable
  error named "Exception" in a Task state).
- lambda_errors: a failed Lambda Invoke call is `Lambda.<ErrorCode>` with a Java-SDK cause; a
  function error payload without errorType is `Lambda.Unknown` (moto names both "Exception").
- error_cause_limits: an error name over 256 characters or a cause over 32,768 (the API's
  limits) fails the execution with States.Runtime instead of being recorded.
- history_limit: an execution reaching 25,000 history events fails with States.Runtime.

Sources, cited by the short names below:
- [DG] AWS Step Functions Developer Guide: "Error names"
  (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html, the
  2022 text in awsdocs/aws-step-functions-developer-guide@3d6752c1 doc_source/
  concepts-error-handling.md), "Quotas" (doc_source/limits-overview.md), "Handle transient
  Lambda service exceptions" (https://docs.aws.amazon.com/step-functions/latest/dg/
  bp-lambda-serviceexception.html), "Choice" (https://docs.aws.amazon.com/step-functions/
  latest/dg/amazon-states-language-choice-state.html).
- [API] Step Functions API Reference: StartExecution, StateEnteredEventDetails,
  TaskScheduledEventDetails, LambdaFunctionFailedEventDetails, ExecutionFailedEventDetails.
- [LS] localstack/localstack@8b9a79f0 tests/aws/**.snapshot.json: executions recorded against
  AWS (the tests marked aws.validated); only the recordings are evidence, not LocalStack's code.
The research notes behind them: ../shared/AWS-FACTS.md ("Step Functions vs moto's interpreter").
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast
from unittest import mock

from botocore.exceptions import BotoCoreError, ClientError
from moto.stepfunctions.exceptions import ValidationException
from moto.stepfunctions.parser.api import (
    ExecutionFailedEventDetails,
    HistoryEventType,
)
from moto.stepfunctions.parser.asl.component.common.assign.assign_template_binding import (
    AssignTemplateBindingStringExpressionSimple,
)
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.parargs import Parargs
from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
    PayloadBindingStringExpressionSimple,
)
from moto.stepfunctions.parser.asl.component.state import state as state_module
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_operator_type import (
    ComparisonOperatorType,
)
from moto.stepfunctions.parser.asl.component.state.choice.comparison.comparison_variable import ComparisonVariable
from moto.stepfunctions.parser.asl.component.state.choice.comparison.variable import NoSuchVariable
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_selector import ItemSelector
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
    iteration_worker as iteration_worker_module,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl as branches_module
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda as task_lambda_module
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service as task_service_module,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
    StateTaskServiceLambda,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventHistoryContext, EventManager
from moto.stepfunctions.parser.asl.utils.json_path import NoSuchJsonPathError
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

MAX_PAYLOAD_BYTES = 262_144  # [DG] Quotas; [API] "Maximum length of 262144", bytes in UTF-8
MAX_ERROR_CHARS = 256  # [API] *FailedEventDetails.error: "Maximum length of 256"
MAX_CAUSE_CHARS = 32_768  # [API] *FailedEventDetails.cause: "Maximum length of 32768"
MAX_HISTORY_EVENTS = 25_000  # [DG] Quotas: "25,000 events in a single state machine execution history"

RUNTIME = StatesErrorNameType.StatesRuntime.to_name()  # "States.Runtime"
DATA_LIMIT_EXCEEDED = StatesErrorNameType.StatesStatesDataLimitExceeded.to_name()  # "States.DataLimitExceeded"
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."

PATCHES = ("payload_size", "uncatchable", "choice_missing_path", "missing_field_path", "lambda_errors",
           "error_cause_limits", "history_limit")

Replacement = tuple[Any, str, Any]  # (owner: class or module, attribute, new value)


# --- measuring payloads as AWS does ---------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)  # what moto's own encoder does with anything else


def compact_json(value: Any) -> str:
    """A JSON value as Step Functions writes it: no spaces, non-ASCII characters as themselves."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def payload_bytes(value: Any) -> int:
    """The size AWS limits: the value's JSON text, in bytes of UTF-8 [DG] Quotas: "262,144 bytes
    of data as a UTF-8 encoded string"; [API] StateEnteredEventDetails.input: "Length constraints
    apply to the payload size, and are expressed as bytes in UTF-8 encoding". A string value is
    JSON too: its quotes and escapes count."""
    return len(compact_json(value).encode("utf-8"))


def within_payload_quota(value: Any) -> bool:
    # "Maximum length of 262144" [API]: 262,144 bytes are allowed (moto refuses them: it uses <).
    return payload_bytes(value) <= MAX_PAYLOAD_BYTES


# --- failures ----------------------------------------------------------------------------------

def _failure(env: Environment, error: str, cause: str, event_type: HistoryEventType = HistoryEventType.TaskFailed,
             details_key: str = "taskFailedEventDetails", **details: Any) -> FailureEventException:
    error_name = StatesErrorName.from_name(error) if error.startswith("States.") else CustomErrorName(error)
    return FailureEventException(failure_event=FailureEvent(
        env=env, error_name=error_name, event_type=event_type,
        event_details=cast(EventDetails, {details_key: {"error": error, "cause": cause, **details}}),
    ))


def _runtime_error(env: Environment, cause: str) -> FailureEventException:
    return _failure(env, RUNTIME, cause)


# --- payload_size -------------------------------------------------------------------------------

def _payload_size() -> list[Replacement]:
    """[DG] Quotas: "Maximum input or output size for a task, state, or execution: 262,144 bytes
    of data as a UTF-8 encoded string. This quota affects tasks (activity, Lambda function, or
    integrated service), state or execution output, and input data when scheduling a task,
    entering a state, or starting an execution." [DG] Error names, States.DataLimitExceeded:
    "When the output of a connector is larger than payload size quota. When the output of a state
    is larger than payload size quota. When, after Parameters processing, the input of a state is
    larger than the payload size quota."
    The result cause is AWS's [LS error_handling/test_states_errors.snapshot.json, recorded
    2024-03-21]: "The state/task '<state name | function ARN | 'lambda'>' returned a result with a
    size exceeding the maximum number of bytes service limit." moto already raises it; only its
    measure is replaced. AWS's cause for an input over the limit is not recorded anywhere found:
    the one below is ours."""
    original_lambda_verify = StateTaskLambda._verify_size_quota

    def lambda_verify_size_quota(self: StateTaskLambda, env: Environment, value: Any) -> None:
        # moto measures the whole Invoke response (StatusCode, ExecutedVersion...); the task's
        # result is the function's payload.
        payload = value["Payload"] if isinstance(value, dict) and "Payload" in value else value
        original_lambda_verify(self, env, payload)

    def check_effective_input(env: Environment, field: str) -> None:
        size = payload_bytes(env.stack[-1])
        if size > MAX_PAYLOAD_BYTES:
            raise _failure(env, DATA_LIMIT_EXCEEDED, (
                f"The state/task '{env.next_state_name}' has an input, after {field} processing, with a size "
                f"exceeding the maximum number of bytes service limit ({size} bytes of UTF-8 JSON, over "
                f"{MAX_PAYLOAD_BYTES})."))

    original_parargs = Parargs._eval_body

    def parargs_eval_body(self: Parargs, env: Environment) -> None:
        original_parargs(self, env)
        check_effective_input(env, "Parameters")

    original_item_selector = ItemSelector._eval_body

    def item_selector_eval_body(self: ItemSelector, env: Environment) -> None:
        original_item_selector(self, env)
        check_effective_input(env, "ItemSelector")

    original_start_execution = StepFunctionsParserBackend.start_execution

    def start_execution(self: StepFunctionsParserBackend, state_machine_arn: str, name: Any = None,
                        execution_input: Any = None, trace_header: Any = None) -> Any:
        # [API] StartExecution input: "Length constraints apply to the payload size, and are
        # expressed as bytes in UTF-8 encoding. Maximum length of 262144." The API refuses the
        # call. The message is AWS's answer as two unrelated public code bases quote it (one in a
        # comment logging a real StartExecution error, one in an emulator's test "measured
        # 2026-09-07"); no AWS document states it.
        if execution_input is not None and len(str(execution_input).encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise ValidationException(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have "
                f"size less than or equal to {MAX_PAYLOAD_BYTES} bytes in UTF-8 encoding")
        return original_start_execution(self, state_machine_arn, name, execution_input, trace_header)

    return [
        # State output (CommonStateField._verify_size_quota), optimized integrations' results
        # (StateTaskService._verify_size_quota), Lambda ARN tasks' results: moto's checks, AWS's measure.
        (state_module, "is_within_size_quota", within_payload_quota),
        (task_service_module, "is_within_size_quota", within_payload_quota),
        (task_lambda_module, "is_within_size_quota", within_payload_quota),
        (StateTaskLambda, "_verify_size_quota", lambda_verify_size_quota),
        # A state's input after Parameters (Task, Pass, Map, Parallel) or a Map's ItemSelector.
        (Parargs, "_eval_body", parargs_eval_body),
        (ItemSelector, "_eval_body", item_selector_eval_body),
        (StepFunctionsParserBackend, "start_execution", start_execution),
    ]


# --- uncatchable ----------------------------------------------------------------------------------

def _uncatchable() -> list[Replacement]:
    """[DG] Error names:
    - States.ALL: "The States.ALL error type must appear alone in a Catcher and can't catch the
      States.DataLimitExceeded terminal error or Runtime error types."
    - States.Runtime: "A States.Runtime error is not retriable, and will always cause the
      execution to fail. A retry or catch on States.ALL will not catch States.Runtime errors."
    - States.DataLimitExceeded: "This is a terminal error that can't be caught by the States.ALL
      error type."
    - States.TaskFailed: "a wildcard that matches any known error name except for States.Timeout"
      (moto already lets it match no States.* error).
    So States.Runtime matches no retrier or catcher, even one that names it; States.DataLimitExceeded
    only one that names it (recorded on AWS: a Catch on "States.DataLimitExceeded" caught a Lambda
    result over the limit [LS test_states_errors, test_*_data_limit_exceeded_on_large_utf8_response]).
    Note: the same recordings show AWS's States.ALL catching a *task result* over the limit, against
    its docs; this follows the docs, so the embedded AWS is the stricter of the two there.
    Map iterations and Parallel branches: moto re-raises a branch's error at the Map or Parallel
    state as a CustomErrorName, which refuses every "States." name, so any States.* error there
    (States.Timeout, States.DataLimitExceeded...) became a States.Runtime "Custom Error Names MUST
    NOT begin with the prefix 'States.'", which the rule above makes uncatchable. On AWS a failed
    branch or iteration fails the whole Parallel or Map state, whose own Retry and Catch then
    handle the error [DG Parallel, Map]; that the error keeps its States.* name there is our
    inference (the docs name no other error for it). Here the branch's error keeps its name."""
    original = ErrorEqualsDecl._eval_body

    def branch_error_name(error_name: str | None = None) -> ErrorName:
        if error_name is not None and error_name.startswith("States."):
            try:
                return StatesErrorName.from_name(error_name)
            except ValueError:
                return ErrorName(error_name)  # a States.* name moto does not know: kept as it is
        return CustomErrorName(error_name)

    def eval_body(self: ErrorEqualsDecl, env: Environment) -> None:
        error_name = getattr(env.stack[-1], "error_name", None)
        named = {getattr(name, "error_name", None) for name in self.error_names}
        if error_name == RUNTIME or (error_name == DATA_LIMIT_EXCEEDED and DATA_LIMIT_EXCEEDED not in named):
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    return [(ErrorEqualsDecl, "_eval_body", eval_body),
            (iteration_worker_module, "CustomErrorName", branch_error_name),
            (branches_module, "CustomErrorName", branch_error_name)]


# --- choice_missing_path ------------------------------------------------------------------------

def _choice_missing_path() -> list[Replacement]:
    """[DG] Choice: "You must specify the $.type field. If the state input doesn't contain the
    $.type field, the execution fails and an error is displayed in the execution history." Only
    IsPresent tests a path that may be missing. The error is States.Runtime; the cause text is the
    one several independent Step Functions emulators and conformance suites expect ("Invalid path
    '$.x': The choice state's condition path references an invalid value."); no recording of it
    from AWS itself was found."""

    def eval_body(self: ComparisonVariable, env: Environment) -> None:
        self.variable.eval(env)
        if (isinstance(env.stack[-1], NoSuchVariable)
                and self.comparison_function.operator_type != ComparisonOperatorType.IsPresent):
            path = self.variable.string_sampler.literal_value
            raise _runtime_error(env, f"Invalid path '{path}': The choice state's condition path references an "
                                      "invalid value.")
        self.comparison_function.eval(env)

    return [(ComparisonVariable, "_eval_body", eval_body)]


# --- missing_field_path ------------------------------------------------------------------------

def _missing_field_path() -> list[Replacement]:
    """[DG] Error names, States.Runtime: "Often these are caused by errors at runtime, such as
    attempting to apply InputPath or OutputPath on a null JSON payload." Recorded on AWS [LS
    scenario/loan_broker/test_loan_broker.snapshot.json, validated 2025-10-13]: a Task whose
    Parameters ("SSN.$": "$.SSN") or ResultSelector ("Score.$": "$.Payload.body.score") names a
    missing path, and a Map whose Parameters ("Amount.$": "$.Amount") does, fail the execution:
    error States.Runtime, cause "An error occurred while executing the state '<state>' (entered at
    the event id #<n>). The JSONPath '$.SSN' specified for the field 'SSN.$' could not be found in
    the input '<input>'". The input is compact JSON (an AWS history quoted in
    https://000047.awsstudygroup.com/3-serviceorchestration/3.3-updatepermission/3.3.3-checkworkflow/:
    "...could not be found in the input '{\\"flagged\\":false}'"). moto prefixes "An error occurred
    ..." itself for every States.Runtime that ends an execution."""

    def missing(env: Environment, field: str, error: NoSuchJsonPathError) -> FailureEventException:
        return _runtime_error(env, f"The JSONPath '{error.json_path}' specified for the field '{field}.$' could not "
                                   f"be found in the input '{compact_json(error.data)}'")

    original_payload = PayloadBindingStringExpressionSimple._eval_val

    def payload_eval_val(self: PayloadBindingStringExpressionSimple, env: Environment) -> Any:
        try:
            return original_payload(self, env)
        except NoSuchJsonPathError as error:
            raise missing(env, self.field, error) from None

    original_assign = AssignTemplateBindingStringExpressionSimple._eval_value

    def assign_eval_value(self: AssignTemplateBindingStringExpressionSimple, env: Environment) -> Any:
        try:
            return original_assign(self, env)
        except NoSuchJsonPathError as error:
            raise missing(env, self.identifier, error) from None

    return [(PayloadBindingStringExpressionSimple, "_eval_val", payload_eval_val),
            (AssignTemplateBindingStringExpressionSimple, "_eval_value", assign_eval_value)]


# --- lambda_errors --------------------------------------------------------------------------------

UNKNOWN_CAUSE = "The cause could not be determined because Lambda did not return an error type. Returned payload: "


def _function_error_type(payload: str) -> str | None:
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    error_type = parsed.get("errorType") if isinstance(parsed, dict) else None
    return error_type if isinstance(error_type, str) and error_type else None


def _lambda_errors() -> list[Replacement]:
    """[DG] bp-lambda-serviceexception: "invoking Lambda results in a 500 error, such as
    ClientExecutionTimeoutException, ServiceException, AWSLambdaException, or SdkClientException
    ... Lambda errors are reported as Lambda.ErrorName"; "When Lambda hits the maximum number of
    invocations, the error is Lambda.TooManyRequestsException". Recorded on AWS [LS
    test_task_service_lambda.snapshot.json, 2025-11-25]: a missing function is
    "Lambda.ResourceNotFoundException", cause "Function not found: <arn> (Service: AWSLambda;
    Status Code: 404; Error Code: ResourceNotFoundException; Request ID: <id>; Proxy: null)". moto's
    optimized integration (arn:aws:states:::lambda:invoke) already builds that; its plain-ARN task
    names every failed call "Exception": it gets the same name and cause.
    A function error whose payload has no errorType is "Lambda.Unknown", cause "The cause could not
    be determined because Lambda did not return an error type. Returned payload: <payload>"
    (executions quoted in aws-solutions-library-samples/data-lakes-on-aws#329 and
    rstudio/r-builds#101); moto names it "Exception". With an errorType (e.g. Sandbox.Timedout, a
    function over its own timeout), the error is the errorType and the cause the payload [LS
    test_task_lambda.snapshot.json]: moto already does that.
    A call that never got an answer (botocore's own errors) is Lambda.SdkClientException [DG]; its
    cause is the AWS Java SDK's wording "Unable to execute HTTP request: ..." (inferred)."""
    original_task = StateTaskLambda._from_error
    original_service = StateTaskServiceLambda._from_error

    def unknown(env: Environment, ex: lambda_eval_utils.LambdaFunctionErrorException,
                details_key: str, event_type: HistoryEventType, **details: Any) -> FailureEvent | None:
        if _function_error_type(ex.payload) is not None:
            return None
        return _failure(env, "Lambda.Unknown", UNKNOWN_CAUSE + ex.payload, event_type, details_key,
                        **details).failure_event

    def task_from_error(self: StateTaskLambda, env: Environment, ex: Exception) -> FailureEvent:
        key, event_type = "lambdaFunctionFailedEventDetails", HistoryEventType.LambdaFunctionFailed
        if isinstance(ex, ClientError):
            error, cause = StateTaskServiceLambda._error_cause_from_client_error(ex)
            return _failure(env, error, cause, event_type, key).failure_event
        if isinstance(ex, BotoCoreError):
            return _failure(env, "Lambda.SdkClientException", f"Unable to execute HTTP request: {ex}",
                            event_type, key).failure_event
        if isinstance(ex, lambda_eval_utils.LambdaFunctionErrorException):
            event = unknown(env, ex, key, event_type)
            if event is not None:
                return event
        return original_task(self, env, ex)

    def service_from_error(self: StateTaskServiceLambda, env: Environment, ex: Exception) -> FailureEvent:
        details = {"resource": self._get_sfn_resource(), "resourceType": self._get_sfn_resource_type()}
        if isinstance(ex, BotoCoreError):
            return _failure(env, "Lambda.SdkClientException", f"Unable to execute HTTP request: {ex}",
                            HistoryEventType.TaskFailed, "taskFailedEventDetails", **details).failure_event
        if isinstance(ex, lambda_eval_utils.LambdaFunctionErrorException):
            event = unknown(env, ex, "taskFailedEventDetails", HistoryEventType.TaskFailed, **details)
            if event is not None:
                return event
        return original_service(self, env, ex)

    return [(StateTaskLambda, "_from_error", task_from_error),
            (StateTaskServiceLambda, "_from_error", service_from_error)]


# --- error_cause_limits ---------------------------------------------------------------------------

def _error_cause_limits() -> list[Replacement]:
    """[API] LambdaFunctionFailedEventDetails, TaskFailedEventDetails, ExecutionFailedEventDetails
    (SensitiveError, SensitiveCause): error "Maximum length of 256", cause "Maximum length of
    32768"; SendTaskFailure with a longer cause is refused (ValidationException quoted in
    irothschild/stefuna#8). What AWS does with a longer Lambda error message or Fail-state cause is
    not documented (truncation? an error?): the embedded AWS refuses it loudly, so a handler that
    raises huge messages fails its tests here instead of in an account. The execution fails with
    States.Runtime (uncatchable). Causes that the interpreter writes itself (States.* errors, e.g.
    a missing path quoting a large input) are cut to 32,768 characters instead."""
    original = FailureEvent.__init__

    def init(self: FailureEvent, env: Environment, error_name: Any, event_type: HistoryEventType,
             event_details: EventDetails | None = None) -> None:
        original(self, env, error_name, event_type, event_details)
        if not event_details:
            return
        key, details = next(iter(event_details.items()))
        if not isinstance(details, dict):
            return
        error, cause = str(details.get("error") or ""), str(details.get("cause") or "")
        if len(error) <= MAX_ERROR_CHARS and len(cause) <= MAX_CAUSE_CHARS:
            return
        if error.startswith("States.") and len(error) <= MAX_ERROR_CHARS:
            self.event_details = cast(EventDetails, {key: {**details, "cause": cause[:MAX_CAUSE_CHARS]}})  # type: ignore[misc]
            return
        what = (f"an error name of {len(error)} characters, over the {MAX_ERROR_CHARS} AWS accepts"
                if len(error) > MAX_ERROR_CHARS else
                f"an error cause of {len(cause)} characters, over the {MAX_CAUSE_CHARS:,} AWS accepts")
        refusal = (f"The state/task '{self.state_name}' failed with {what} (error '{error[:MAX_ERROR_CHARS]}'). "
                   "What AWS Step Functions does with it is undocumented: the embedded AWS refuses it.")
        self.error_name = StatesErrorName(typ=StatesErrorNameType.StatesRuntime)  # type: ignore[misc]
        self.event_details = cast(EventDetails, {key: {**details, "error": RUNTIME, "cause": refusal}})  # type: ignore[misc]

    return [(FailureEvent, "__init__", init)]


# --- history_limit ----------------------------------------------------------------------------------

_HISTORY_LOCK = threading.Lock()


def _history_limit() -> list[Replacement]:
    """[DG] Quotas: "25,000 events in a single state machine execution history. If the execution
    history reaches this quota, the execution will fail." Recorded on AWS (a get-execution-history
    dump in floci-io/floci#2734; loads/ardere#86): status FAILED, error States.Runtime, cause "The
    execution reached the maximum number of history events (25000).", and the 25,000th event is
    that ExecutionFailed (previousEventId 24999). Being States.Runtime, nothing catches it.
    The execution's EventManager is shared by all its frames (Map iterations, Parallel branches):
    once it is full it records the failure, ends the execution (the root environment's
    set_error reaches every frame) and drops every later event."""
    original_add_event = EventManager.add_event
    original_env_init = Environment.__init__
    original_set_error = Environment.set_error
    limit = ExecutionFailedEventDetails(error=RUNTIME, cause=HISTORY_LIMIT_CAUSE)

    def env_init(self: Environment, *args: Any, **kwargs: Any) -> None:
        original_env_init(self, *args, **kwargs)
        self.event_manager._eiplane_env = self  # type: ignore[attr-defined]  # frames replace theirs with the root's

    def add_event(self: EventManager, context: EventHistoryContext, event_type: HistoryEventType,
                  event_details: EventDetails | None = None, timestamp: Any = None,
                  update_source_event_id: bool = True) -> int:
        with _HISTORY_LOCK:
            if getattr(self, "_eiplane_full", False):
                return MAX_HISTORY_EVENTS
            if self._event_id_gen._next_id < MAX_HISTORY_EVENTS:
                return original_add_event(self, context, event_type, event_details, timestamp, update_source_event_id)
            original_add_event(self, EventHistoryContext(previous_event_id=MAX_HISTORY_EVENTS - 1),
                               HistoryEventType.ExecutionFailed,
                               cast(EventDetails, {"executionFailedEventDetails": limit}))
            self._eiplane_full = True  # type: ignore[attr-defined]
        env = getattr(self, "_eiplane_env", None)
        if env is not None:
            env.set_error(limit)
        return MAX_HISTORY_EVENTS

    def set_error(self: Environment, error: ExecutionFailedEventDetails) -> None:
        # A state interrupted by the end of the execution fails in its own way afterwards: the
        # execution's error stays the history limit.
        original_set_error(self, limit if getattr(self.event_manager, "_eiplane_full", False) else error)

    return [(Environment, "__init__", env_init), (EventManager, "add_event", add_event),
            (Environment, "set_error", set_error)]


_INSTALLERS: dict[str, Callable[[], list[Replacement]]] = {
    "payload_size": _payload_size,
    "uncatchable": _uncatchable,
    "choice_missing_path": _choice_missing_path,
    "missing_field_path": _missing_field_path,
    "lambda_errors": _lambda_errors,
    "error_cause_limits": _error_cause_limits,
    "history_limit": _history_limit,
}
# Built once, from moto's own code (nothing is patched when this module is imported), so that
# nesting or re-entering never wraps a wrapper.
_REPLACEMENTS: dict[str, list[Replacement]] = {name: install() for name, install in _INSTALLERS.items()}


def _original(owner: Any, attribute: str) -> Any:
    return owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)


_ORIGINALS: dict[str, list[Replacement]] = {
    name: [(owner, attribute, _original(owner, attribute)) for owner, attribute, _ in replacements]
    for name, replacements in _REPLACEMENTS.items()}


def _check(names: Iterable[str]) -> set[str]:
    names = set(names)
    unknown = names - set(PATCHES)
    if unknown:
        raise ValueError(f"unknown Step Functions patches {sorted(unknown)}: choose from {PATCHES}")
    return names


@contextlib.contextmanager
def strict_step_functions(disable: Iterable[str] = ()) -> Iterator[None]:
    """Apply every patch (but those named in `disable`) for the block; moto's own code is back after it."""
    with _patched(_REPLACEMENTS, set(PATCHES) - _check(disable)):
        yield


@contextlib.contextmanager
def relaxed(*names: str) -> Iterator[None]:
    """moto's own behaviour back for the named patches, for a block inside a strict engine (tests)."""
    with _patched(_ORIGINALS, _check(names)):
        yield


@contextlib.contextmanager
def _patched(table: dict[str, list[Replacement]], names: set[str]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name in PATCHES:
            if name in names:
                for owner, attribute, value in table[name]:
                    stack.enter_context(mock.patch.object(owner, attribute, value))
        yield
