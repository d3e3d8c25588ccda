"""Runs the project's Lambda handlers in this process, as the Lambda service would.

moto runs Lambda code only in Docker, which these machines lack (AWS-FACTS.md), so the
embedded AWS hands each Invoke to this runtime instead: the function's own app.py, a
LambdaContext, its logs captured into the function's log group, and an error payload shaped
like Lambda's (errorType = the exception class, which is what the ASL's Retry and Catch match on).

What Lambda guarantees, and this runtime enforces:
- Each function has an environment of its own (its template variables and what Lambda sets,
  credentials included), not the host's: os.environ, while the embedded AWS runs, is a
  `SandboxEnviron`, which answers an invocation with its function's environment and everyone
  else with the process's own. No invocation ever writes the process-wide environment that other
  threads read (moto's interpreter, embedded instances, the test itself).
- The function's `Timeout` from the template: a handler still running when it is over fails with
  `Sandbox.Timedout`, as Lambda reports it, and the sandbox is frozen: any AWS call the handler
  thread makes afterwards raises `SandboxKilled`, so nothing it does after its deadline reaches
  the account. Time a handler spends waiting (botocore's retry back-off, a fault that stands for a
  slow call) passes on the virtual clock, so a timeout can be tested without waiting for it.
- A response over 6 MB fails with `Function.ResponseSizeTooLarge` (moto's Invoke checks that itself,
  at 6,000,000 bytes: a little stricter than Lambda's 6,291,556).
- Invoke itself can fail with the Lambda service's errors (ServiceException, TooManyRequestsException,
  ...), injected by tests with `fail_invocations`; Step Functions names them `Lambda.<Code>`.

Invocations run one at a time: the Powertools logger and metrics are module-level objects of the
one `eiplane` package this process shares between functions, which on Lambda would be one per sandbox.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import importlib.util
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from eiplane.aws import record_api_calls

TIMEOUT_ERROR = "Sandbox.Timedout"


class SandboxKilled(BaseException):
    """Raised in a handler thread that outlived its function's timeout, at its next AWS call or
    wait: on Lambda the sandbox would be frozen, so nothing after the deadline may take effect.
    A BaseException, so that a handler's `except Exception` cannot swallow it."""


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


class Invocation:
    """One invocation's sandbox: its environment, its deadline, its virtual waits."""

    def __init__(self, function: LocalFunction, clock: Any, enforce: bool = True) -> None:
        self.function = function
        self.clock = clock
        self.enforce = enforce
        self.request_id = str(uuid.uuid4())
        # One per function: what a warm sandbox keeps. Not enforced (a canary test): the host's
        # environment shows through, as it did when handlers shared os.environ.
        self.environ: MutableMapping[str, str] = (
            function.environment if enforce else collections.ChainMap(function.environment, dict(_real_environ())))
        self.started = time.monotonic()
        self.waited_s = 0.0  # virtual seconds this invocation spent waiting
        self.finished = threading.Event()
        self.timed_out = False

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started + self.waited_s

    def remaining_s(self) -> float:
        return self.function.timeout_s - self.elapsed_s()

    def wait(self, seconds: float) -> None:
        """The handler waits `seconds` (virtually); past the deadline its sandbox is frozen."""
        self.check_alive()
        self.waited_s += max(0.0, seconds)
        self.clock.advance(seconds)
        if self.enforce and self.remaining_s() <= 0:
            self.timed_out = True
        self.check_alive()

    def check_alive(self) -> None:
        if self.timed_out:
            raise SandboxKilled(f"{self.function.name}: past its {self.function.timeout_s} s timeout")


_CURRENT: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("embedded_lambda_invocation",
                                                                             default=None)


def current_invocation() -> Invocation | None:
    """The invocation the calling thread runs, if any."""
    return _CURRENT.get()


def elapse(seconds: float) -> None:
    """Time passes for the calling handler (a fault that stands for a slow AWS call uses this);
    outside a handler it passes on no clock."""
    invocation = _CURRENT.get()
    if invocation is not None:
        invocation.wait(seconds)


@dataclass
class LambdaContext:
    """The attributes of the real LambdaContext that Powertools and handlers read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: int
    invocation: Invocation
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    @property
    def aws_request_id(self) -> str:
        return self.invocation.request_id

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.invocation.remaining_s() * 1000))


@dataclass
class InvokeResult:
    payload: str
    errored: bool
    logs: str
    duration_s: float


@dataclass
class _InjectedFailure:
    code: str
    status: int
    times: int | None
    count: int = 0


class LocalLambdaRuntime:
    """Function name -> handler, run one invocation at a time (see the module docstring)."""

    def __init__(self, stdout: _ThreadRoutedStream, clock: Any, echo_logs: bool = False) -> None:
        self.functions: dict[str, LocalFunction] = {}
        self.stdout = stdout
        self.clock = clock
        self.invocations: list[tuple[str, float, bool]] = []
        # Every AWS call each function made ("service:Operation"): what its IAM policy must allow.
        self.calls_by_function: dict[str, set[str]] = {}
        self.echo_logs = echo_logs
        self._lock = threading.Lock()
        self._failures: dict[str, list[_InjectedFailure]] = {}
        # Off only in canary tests that show what each limit catches: no timeout, and the host's
        # environment visible to handlers.
        self.enforce_limits = True

    def register(self, function: LocalFunction) -> None:
        self.functions[function.name] = function

    def fail_invocations(self, function_name: str, code: str = "ServiceException", times: int | None = 1,
                         status: int = 500) -> None:
        """The next `times` Invokes of the function fail in the Lambda service itself (the handler never
        runs): ServiceException (500), TooManyRequestsException (429), ... Step Functions sees
        `Lambda.<code>`, which is what the ASL's retriers for Lambda's transient errors match."""
        self._failures.setdefault(function_name, []).append(_InjectedFailure(code, status, times))

    def injected_failure(self, function_name: str) -> tuple[str, int] | None:
        """The failure this Invoke must answer with, if one is due (counted as used)."""
        for failure in self._failures.get(function_name, []):
            if failure.times is None or failure.count < failure.times:
                failure.count += 1
                return failure.code, failure.status
        return None

    def invoke(self, function_name: str, event: Any) -> InvokeResult:
        function = self.functions.get(function_name)
        if function is None:
            raise KeyError(f"function {function_name} is not deployed in the embedded AWS")
        with self._lock:
            invocation = Invocation(function, self.clock, enforce=self.enforce_limits)
            outcome: dict[str, Any] = {}
            thread = threading.Thread(target=self._run, args=(invocation, event, outcome), daemon=True,
                                      name=f"lambda-{function.name}")
            thread.start()
            # The deadline in real time, for a handler that hangs; virtual waits end it sooner.
            deadline = max(0.0, invocation.remaining_s()) if self.enforce_limits else None
            if not invocation.finished.wait(timeout=deadline):
                invocation.timed_out = True  # the thread is abandoned; its next AWS call is refused
            duration = invocation.elapsed_s()
        if invocation.timed_out:
            payload, errored = json.dumps({
                "errorType": TIMEOUT_ERROR,
                "errorMessage": f"RequestId: {invocation.request_id} Error: Task timed out after "
                                f"{function.timeout_s:.2f} seconds"}), True
        else:  # (moto's Invoke itself answers a response over 6 MB with Function.ResponseSizeTooLarge)
            payload, errored = outcome["payload"], outcome["errored"]
        self.invocations.append((function_name, duration, errored))
        text = outcome.get("logs", "")
        if self.echo_logs and text:
            sys.stderr.write(text)
        return InvokeResult(payload=payload, errored=errored, logs=text, duration_s=duration)

    def _run(self, invocation: Invocation, event: Any, outcome: dict[str, Any]) -> None:
        function = invocation.function
        _CURRENT.set(invocation)
        with self.stdout.capture() as logs:
            context = LambdaContext(
                function_name=function.name, invoked_function_arn=function.arn,
                memory_limit_in_mb=function.memory_mb, timeout_s=function.timeout_s, invocation=invocation,
                log_group_name=function.environment.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            )
            try:
                with record_api_calls() as calls:
                    try:
                        result = function.entrypoint()(event, context)
                    finally:
                        self.calls_by_function.setdefault(function.name, set()).update(calls.calls)
                outcome.update(payload=json.dumps(result), errored=False)
            except SandboxKilled:
                invocation.timed_out = True
            except Exception as exc:  # every handler error becomes Lambda's error payload
                outcome.update(payload=json.dumps({
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "requestId": invocation.request_id,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }), errored=True)
            finally:
                outcome["logs"] = logs.getvalue()
                invocation.finished.set()


def _real_environ() -> MutableMapping[str, str]:
    return os.environ.real if isinstance(os.environ, SandboxEnviron) else os.environ


class SandboxEnviron(MutableMapping[str, str]):
    """os.environ while the embedded AWS runs: an invocation reads and writes its function's
    environment; every other thread, the process's real one."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real = real

    def _target(self) -> MutableMapping[str, str]:
        invocation = _CURRENT.get()
        return invocation.environ if invocation is not None else self.real

    def __getitem__(self, key: str) -> str:
        return self._target()[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._target()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._target()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._target()))

    def __len__(self) -> int:
        return len(self._target())

    def copy(self) -> dict[str, str]:
        return dict(self._target())

    def __repr__(self) -> str:
        return f"SandboxEnviron({'invocation' if _CURRENT.get() else 'process'})"


class _VirtualSleepInHandlers:
    """Stands in for `time` in botocore's endpoint, whose only use is the retry back-off sleep: in a
    handler it is the handler's (virtual) time; anywhere else a real sleep."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def sleep(self, seconds: float) -> None:
        invocation = _CURRENT.get()
        if invocation is None:
            self._real.sleep(seconds)
        else:
            invocation.wait(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# Hooks on the AWS calls handlers make (what tests inject where moto cannot produce a fault):
# (botocore event kind, service as botocore names it in events, operation, hook).
_HANDLER_HOOKS: list[tuple[str, str, str, Callable[..., Any]]] = []


def add_handler_hook(kind: str, service: str, operation: str, hook: Callable[..., Any]) -> None:
    """Call `hook` (botocore's event arguments) on every `kind` event ("before-call", "after-call")
    of `service`'s `operation` made by a handler, whichever function and client makes it. A
    before-call hook that returns (http_response, parsed) answers the call instead of AWS."""
    _HANDLER_HOOKS.append((kind, service, operation, hook))


def clear_handler_hooks() -> None:
    _HANDLER_HOOKS.clear()


def _dispatch(kind: str) -> Callable[..., Any]:
    def handler(event_name: str, **kwargs: Any) -> Any:
        invocation = _CURRENT.get()
        if invocation is None:
            return None
        if kind == "before-call":
            invocation.check_alive()  # a frozen sandbox reaches no AWS service
        _, service, operation = event_name.split(".", 2)
        for hook_kind, hook_service, hook_operation, hook in list(_HANDLER_HOOKS):
            if (hook_kind, hook_service, hook_operation) == (kind, service, operation):
                answer = hook(event_name=event_name, **kwargs)
                if answer is not None:
                    return answer
        return None
    return handler


@contextlib.contextmanager
def sandboxes() -> Iterator[None]:
    """Install what makes handlers run as if each had its own Lambda sandbox (see the module
    docstring): the per-invocation environment, virtual waits, and frozen sandboxes past their
    deadline. Every botocore session created meanwhile gets the deadline check."""
    import botocore.endpoint
    import botocore.handlers

    real = os.environ
    if isinstance(real, SandboxEnviron):  # another embedded AWS in this process installed it
        yield
        return
    handlers = [("before-call", _dispatch("before-call")), ("after-call", _dispatch("after-call"))]
    os.environ = SandboxEnviron(real)  # type: ignore[assignment]  # noqa: B003 (a view of it, not a clearing)
    botocore.handlers.BUILTIN_HANDLERS[:0] = handlers  # first: before moto's own before-send stub
    original_time = botocore.endpoint.time
    botocore.endpoint.time = _VirtualSleepInHandlers(original_time)  # type: ignore[assignment]
    try:
        yield
    finally:
        botocore.endpoint.time = original_time
        for handler in handlers:
            botocore.handlers.BUILTIN_HANDLERS.remove(handler)
        clear_handler_hooks()
        os.environ = real  # type: ignore[assignment]  # noqa: B003


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
