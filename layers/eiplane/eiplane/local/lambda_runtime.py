"""Runs the project's Lambda handlers in this process, as the Lambda service would.

moto runs Lambda code only in Docker, which these machines lack (AWS-FACTS.md), so the
embedded AWS hands each Invoke to this runtime instead: the function's own app.py, with the
function's environment from template.yaml, a LambdaContext, its logs captured into the
function's log group, and an error payload shaped like Lambda's (errorType = the exception
class, which is what the ASL's Retry and Catch match on).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from eiplane.aws import record_api_calls, reset_clients
from eiplane.settings import get_settings


@dataclass
class LocalFunction:
    name: str
    arn: str
    code_dir: Path
    handler: str  # "app.lambda_handler"
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int
    _module: ModuleType | None = field(default=None, repr=False)

    def entrypoint(self) -> Callable[[Any, Any], Any]:
        module_name, _, attribute = self.handler.rpartition(".")
        if self._module is None:
            path = self.code_dir / f"{module_name}.py"
            spec = importlib.util.spec_from_file_location(f"eiplane_fn_{self.name.replace('-', '_')}", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load handler {self.handler} from {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._module = module
        return getattr(self._module, attribute)  # type: ignore[no-any-return]


@dataclass
class LambdaContext:
    """The attributes of the real LambdaContext that Powertools and handlers read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass
class Invocation:
    payload: str
    errored: bool
    logs: str
    duration_s: float


class LocalLambdaRuntime:
    """Function name -> handler. One invocation at a time: handlers read os.environ, which
    is process-wide, so concurrent invocations (a Map state) are serialised here."""

    def __init__(self, stdout: _ThreadRoutedStream, echo_logs: bool = False) -> None:
        self.functions: dict[str, LocalFunction] = {}
        self.stdout = stdout
        self.invocations: list[tuple[str, float, bool]] = []
        # Every AWS call each function made ("service:Operation"): what its IAM policy must allow.
        self.calls_by_function: dict[str, set[str]] = {}
        self.echo_logs = echo_logs
        self._lock = threading.Lock()

    def register(self, function: LocalFunction) -> None:
        self.functions[function.name] = function

    def invoke(self, function_name: str, event: Any) -> Invocation:
        function = self.functions.get(function_name)
        if function is None:
            raise KeyError(f"function {function_name} is not deployed in the embedded AWS")
        with self._lock, _environment(function.environment), self.stdout.capture() as logs:
            started = time.monotonic()
            context = LambdaContext(
                function_name=function.name, invoked_function_arn=function.arn,
                memory_limit_in_mb=function.memory_mb, timeout_s=function.timeout_s,
                log_group_name=function.environment.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            )
            try:
                with record_api_calls() as calls:
                    try:
                        result = function.entrypoint()(event, context)
                    finally:
                        self.calls_by_function.setdefault(function_name, set()).update(calls.calls)
                payload, errored = json.dumps(result), False
            except Exception as exc:  # every handler error becomes Lambda's error payload
                payload = json.dumps({
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                })
                errored = True
            duration = time.monotonic() - started
        self.invocations.append((function_name, duration, errored))
        text = logs.getvalue()
        if self.echo_logs and text:
            sys.stderr.write(text)
        return Invocation(payload=payload, errored=errored, logs=text, duration_s=duration)


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(variables)
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


class _ThreadRoutedStream:
    """stdout for a process that hosts Lambda handlers: what a handler thread writes (logs,
    Powertools' EMF metrics) goes to that invocation's buffer, like Lambda's log stream;
    every other thread (the CLI's progress display) writes to the terminal as before."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self._local = threading.local()

    def write(self, text: str) -> int:
        buffer = getattr(self._local, "buffer", None)
        return (buffer or self.default).write(text)  # type: ignore[no-any-return]

    def flush(self) -> None:
        (getattr(self._local, "buffer", None) or self.default).flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.default, name)

    @contextlib.contextmanager
    def capture(self) -> Iterator[io.StringIO]:
        self._local.buffer = io.StringIO()
        try:
            yield self._local.buffer
        finally:
            self._local.buffer = None


@contextlib.contextmanager
def routed_stdout() -> Iterator[_ThreadRoutedStream]:
    """Install the routing stdout (and point the Powertools logger at it) for a block."""
    from eiplane.observability import logger

    stream = _ThreadRoutedStream(sys.stdout)
    handler = logger.registered_handler
    # Assigned, not setStream(): that flushes the old stream, which a test harness may
    # already have closed.
    previous_handler_stream, handler.stream = handler.stream, stream  # type: ignore[attr-defined]
    previous_stdout, sys.stdout = sys.stdout, stream  # type: ignore[assignment]
    try:
        yield stream
    finally:
        sys.stdout = previous_stdout
        handler.stream = previous_handler_stream  # type: ignore[attr-defined]


def reset_process_state() -> None:
    """Cached clients and settings belong to one embedded AWS; drop them between two."""
    reset_clients()
    get_settings.cache_clear()
