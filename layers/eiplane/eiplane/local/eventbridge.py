"""The stack's own EventBridge rules (AWS::Events::Rule) on the default bus, delivered by the embedded AWS.

Gaps of moto (pinned 5.2.5) this fills, each checked by tests/integration/test_moto_canary.py:
- Step Functions puts no "Step Functions Execution Status Change" event on the bus: `status_changes()` has the
  interpreter put one, in AWS's shape (Step Functions Developer Guide, "Automating Step Functions event delivery
  with EventBridge"), for every execution that ends (SUCCEEDED too: the rule's pattern is what must leave it out).
  RUNNING, which AWS also sends, is not emitted: no rule of the template asks for it.
- moto's events backend raises NotImplementedError for an SNS target (moto/events/models.py Rule.send_to_targets),
  and its InputTransformer pastes values into the template unescaped and leaves a missing path's <name> in place
  (moto/events/utils.py EventTemplateParser). Here a rule's InputTransformer is applied as EventBridge documents it
  (`transform_input`) and an SNS target is published to as EventBridge publishes: as the service principal
  events.amazonaws.com, which the topic's policy (aws:SourceArn: the rule) and its KMS key's policy must allow;
  a delivery they refuse is dropped and counted, as EventBridge counts FailedInvocations.
The engine's other events (schedules, alarm state changes to a state machine's SAM events) stay in engine.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.asl.eval.program_state import (
    ProgramEnded,
    ProgramError,
    ProgramStopped,
    ProgramTimedOut,
)
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

LOG = logging.getLogger(__name__)
STATUS_CHANGE = "Step Functions Execution Status Change"


# --- event patterns -------------------------------------------------------------------------

def event_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge pattern matching for what templates use: value lists and prefix filters, nested."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(wanted, dict):
            if not isinstance(value, dict) or not event_matches(wanted, value):
                return False
            continue
        if not any(_value_matches(option, value) for option in wanted):
            return False
    return True


def _value_matches(option: Any, value: Any) -> bool:
    if isinstance(option, dict):
        if "prefix" in option:
            return isinstance(value, str) and value.startswith(option["prefix"])
        raise ValueError(f"event pattern filter {option} is not supported by the embedded AWS")
    return bool(option == value)


# --- Step Functions' status-change event ----------------------------------------------------------

def _epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def status_change_event(execution: Execution, status: str, stopped: datetime, error: str | None,
                        cause: str | None, output: Any = None) -> dict[str, Any]:
    """AWS's event for an execution that ended: resources [executionArn], dates in epoch milliseconds, input and
    output as JSON text, error and cause null unless it failed."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": STATUS_CHANGE, "source": "aws.states",
        "account": execution.account_id, "time": stopped.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name, "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn, "stateMachineArn": execution.state_machine_arn,
            "name": execution.name, "status": status,
            "startDate": _epoch_ms(execution.start_date), "stopDate": _epoch_ms(stopped),
            "input": json.dumps(execution.input_data, separators=(",", ":")), "inputDetails": {"included": True},
            "output": None if output is None else json.dumps(output, separators=(",", ":")),
            "outputDetails": None if output is None else {"included": True},
            "error": error, "cause": cause,
        },
    }


def _ended(comm: BaseExecutionWorkerCommunication) -> tuple[str, str | None, str | None, Any]:
    """(status, error, cause, output) of an execution that just ended, read as moto's own
    _reflect_execution_status reads it."""
    worker = comm.execution.exec_worker
    env = worker.env if worker is not None else None
    if env is None:
        raise RuntimeError(f"{comm.execution.exec_arn} ended without an environment")
    state = env.program_state()
    if isinstance(state, ProgramEnded):
        return "SUCCEEDED", None, None, env.states.get_input()
    if isinstance(state, ProgramError):
        failure = state.error or {}
        return "FAILED", failure.get("error"), failure.get("cause"), None
    if isinstance(state, ProgramTimedOut):
        return "TIMED_OUT", None, None, None
    if isinstance(state, ProgramStopped):
        return "ABORTED", state.error, state.cause, None
    raise RuntimeError(f"execution ended in {type(state).__name__}, which the embedded EventBridge does not know")


@contextlib.contextmanager
def status_changes(put: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Every execution that ends puts its status-change event, through `put`, before its status is visible: a caller
    that sees the execution ended sees what the event delivered."""
    original = BaseExecutionWorkerCommunication.terminated

    def terminated(self: BaseExecutionWorkerCommunication) -> None:
        try:
            status, error, cause, output = _ended(self)
            put(status_change_event(self.execution, status, datetime.now(tz=UTC), error, cause, output))
        finally:
            original(self)

    with mock.patch.object(BaseExecutionWorkerCommunication, "terminated", terminated):
        yield


# --- InputTransformer ---------------------------------------------------------------------

_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


def json_path(event: Any, path: str) -> Any:
    """The value at a JSON path of the forms EventBridge takes ($.detail.a-b, $.resources[0]); _MISSING if none."""
    if not path.startswith("$"):
        raise ValueError(f"InputPathsMap path {path!r} does not start with $")
    value, rest = event, path[1:]
    while rest:
        step = _PATH_STEP.match(rest)
        if step is None:
            raise ValueError(f"InputPathsMap path {path!r} is not one the embedded AWS reads")
        key, index = step.groups()
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return _MISSING
            value = value[key]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return _MISSING
            value = value[int(index)]
        rest = rest[step.end():]
    return value


def transform_input(transformer: dict[str, Any], event: dict[str, Any], rule_arn: str, rule_name: str) -> str:
    """What a target gets from an InputTransformer (EventBridge User Guide, "Amazon EventBridge input
    transformation"): each <variable> of the template replaced by its path's value. Inside a JSON string a value
    is written escaped so the result is valid JSON ("EventBridge replaces input transformers at runtime to ensure
    a valid JSON output"), an object or array without its internal quotes (as documented); outside a string, as
    JSON. A path missing from the event creates no variable: it is written as nothing (null outside a string).
    The predefined aws.events.* variables are known. A template that is a JSON string gives its text."""
    values: dict[str, Any] = {name: json_path(event, path) for name, path in
                              (transformer.get("InputPathsMap") or {}).items()}
    values.update({"aws.events.rule-arn": rule_arn, "aws.events.rule-name": rule_name,
                   "aws.events.event.ingestion-time": event.get("time"),
                   "aws.events.event": {k: v for k, v in event.items() if k != "detail"},
                   "aws.events.event.json": event})
    template = str(transformer["InputTemplate"])
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(template):
        char = template[i]
        match = re.match(r"<([A-Za-z0-9_.\-]+)>", template[i:]) if char == "<" else None
        if match and match.group(1) in values:
            out.append(_placeholder(values[match.group(1)], in_string))
            i += match.end()
            continue
        if char == '"' and not escaped:
            in_string = not in_string
        escaped = in_string and char == "\\" and not escaped
        out.append(char)
        i += 1
    result = json.loads("".join(out))
    return result if isinstance(result, str) else json.dumps(result, separators=(",", ":"))


def _placeholder(value: Any, in_string: bool) -> str:
    if value is _MISSING:
        return "" if in_string else "null"
    if not in_string:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    text = json.dumps(value, separators=(",", ":"))
    return text.replace('"', "") if isinstance(value, dict | list) else text


# --- the rules and their deliveries ------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    logical_id: str
    name: str
    arn: str
    pattern: dict[str, Any]
    enabled: bool
    targets: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Delivery:
    rule: str  # the rule's logical id
    target_arn: str
    event: dict[str, Any]
    message: str | None  # what the target got (None: refused)
    error: str | None = None


# (service principal, action, resource ARN, resource type, resource policy, context) -> allowed?
Authorizer = Callable[[str, str, str, str, dict[str, Any] | None, dict[str, Any]], bool]
# topic ARN, message text -> SNS message id
Publisher = Callable[[str, str], str]
# topic ARN -> (its policy, its KMS key's ARN or None, that key's policy), as the account holds them now
TopicFacts = Callable[[str], tuple[dict[str, Any] | None, str | None, dict[str, Any] | None]]


@dataclass
class EventBus:
    """The default bus's rules of the stack, and what each delivery did (`deliveries`)."""

    account: str
    authorize: Authorizer
    publish: Publisher
    topic_facts: TopicFacts
    rules: list[Rule] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, event: dict[str, Any]) -> None:
        for rule in self.rules:
            if rule.enabled and event_matches(rule.pattern, event):
                for target in rule.targets:
                    self._deliver(rule, target, event)

    def _deliver(self, rule: Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = str(target["Arn"])
        try:
            if "InputTransformer" in target:
                text = transform_input(target["InputTransformer"], event, rule.arn, rule.name)
            elif "Input" in target:
                text = str(target["Input"])
            else:
                text = json.dumps(event, separators=(",", ":"))
            if not arn.startswith(f"arn:aws:sns:{event['region']}:"):
                raise NotImplementedError(f"target {arn}: the embedded EventBridge delivers to SNS topics only")
            refusal = self._refusal(rule, arn)
            if refusal is None:
                self.publish(arn, text)
            delivery = Delivery(rule.logical_id, arn, event, None if refusal else text, refusal)
        except Exception as exc:  # recorded: a delivery never breaks the execution that sent it
            LOG.warning("the embedded EventBridge could not deliver to %s: %s", arn, exc)
            delivery = Delivery(rule.logical_id, arn, event, None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.deliveries.append(delivery)

    def _refusal(self, rule: Rule, topic_arn: str) -> str | None:
        policy, key, key_policy = self.topic_facts(topic_arn)
        context = {"aws:SourceArn": rule.arn, "aws:SourceAccount": self.account}
        if not self.authorize("events.amazonaws.com", "sns:Publish", topic_arn, "topic", policy, context):
            return f"the policy of {topic_arn} does not let {rule.arn} publish"
        if key is not None and not self.authorize("events.amazonaws.com", "kms:GenerateDataKey", key, "key",
                                                  key_policy, context):
            return f"the policy of {key} does not let events.amazonaws.com encrypt for {topic_arn}"
        return None
