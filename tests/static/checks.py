"""Pure check functions for the static tests.

Each function takes parsed data (or raw text) and returns a list of problems, so the tests
can run it on the real template / ASL and, with a small broken input, prove it can fail.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
STATEMACHINES = ROOT / "statemachines"
FUNCTIONS = ROOT / "functions"
SAMCONFIG = ROOT / "samconfig.toml"

SAM = ROOT / ".tools" / "sam" / "bin" / "sam"
ASL_VALIDATOR = ROOT / ".tools" / "node" / "node_modules" / ".bin" / "asl-validator"
CFN_LINT = ROOT / ".venv" / "bin" / "cfn-lint"

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
READ_ONLY_VERBS = ("Describe", "Get", "List")


# --- tools -------------------------------------------------------------------------------

def require_tool(path: Path) -> Path:
    """The tool's path; a missing tool is a failure (never a skip): CI must have it."""
    if not (path.exists() and path.is_file()):
        pytest.fail(f"{path.relative_to(ROOT)} not found: run `make tools` (or `make install`)")
    return path


def run_tool(args: list[str | Path], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        env=_tool_env(),
    )


def _tool_env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0"}


# --- ASL ---------------------------------------------------------------------------------

def iter_scopes(definition: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The top-level machine and every nested one (Parallel branches, Map iterators/processors):
    (a prefix for messages, "" at the top level; the dict with StartAt and States)."""
    yield where, definition
    for name, state in definition.get("States", {}).items():
        for i, branch in enumerate(state.get("Branches", []) or []):
            yield from iter_scopes(branch, f"{where}{name}.Branches[{i}]/")
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), dict):
                yield from iter_scopes(state[key], f"{where}{name}.{key}/")


def iter_states(definition: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(scope, state name, state) for every state at every nesting level."""
    for scope, machine in iter_scopes(definition):
        for name, state in machine.get("States", {}).items():
            yield scope, name, state


def transitions(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(which field, target) for every transition out of a state."""
    out: list[tuple[str, str]] = []
    if "Next" in state:
        out.append(("Next", state["Next"]))
    if "Default" in state:
        out.append(("Default", state["Default"]))
    for i, choice in enumerate(state.get("Choices", []) or []):
        if "Next" in choice:
            out.append((f"Choices[{i}].Next", choice["Next"]))
    for i, catcher in enumerate(state.get("Catch", []) or []):
        if "Next" in catcher:
            out.append((f"Catch[{i}].Next", catcher["Next"]))
    return out


def missing_targets(definition: dict[str, Any]) -> list[str]:
    problems = []
    for scope, machine in iter_scopes(definition):
        states = machine.get("States", {})
        if machine.get("StartAt") not in states:
            problems.append(f"{scope or '<top>'}: StartAt {machine.get('StartAt')!r} is not a state")
        for name, state in states.items():
            for field, target in transitions(state):
                if target not in states:
                    problems.append(f"{scope}{name}.{field} -> {target!r}: no such state")
    return problems


def unreachable_states(definition: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for scope, machine in iter_scopes(definition):
        states = machine.get("States", {})
        seen: set[str] = set()
        todo = [str(machine.get("StartAt"))]
        while todo:
            name = todo.pop()
            if name in seen or name not in states:
                continue
            seen.add(name)
            todo.extend(target for _, target in transitions(states[name]))
        problems.extend(f"{scope}{name}: not reachable from StartAt" for name in states if name not in seen)
    return problems


def custom_error_names(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, name) for every error name that is not a Step Functions / Lambda built-in:
    Retry/Catch ErrorEquals entries and Fail states' Error."""
    out = []
    for scope, name, state in iter_states(definition):
        for key in ("Retry", "Catch"):
            for i, rule in enumerate(state.get(key, []) or []):
                for error in rule.get("ErrorEquals", []):
                    if not error.startswith(("States.", "Lambda.", "Sandbox.")):
                        out.append((f"{scope}{name}.{key}[{i}]", error))
        if state.get("Type") == "Fail" and "Error" in state:
            out.append((f"{scope}{name}.Error", state["Error"]))
    return out


def unknown_error_names(definition: dict[str, Any], errors_module: Any) -> list[str]:
    base = errors_module.EiplaneError
    problems = []
    for where, error in custom_error_names(definition):
        cls = getattr(errors_module, error, None)
        if not (isinstance(cls, type) and issubclass(cls, base) and cls is not base):
            problems.append(f"{where}: {error!r} is not an EiplaneError subclass in eiplane/errors.py")
    return problems


# What every step may meet from AWS after botocore's own retries, and safely runs again for.
AWS_TRANSIENT = ("AwsThrottled", "AwsUnavailable", "Sandbox.Timedout")
LAMBDA_TRANSIENT = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)


def task_retry_catch_problems(definition: dict[str, Any]) -> list[str]:
    problems = []
    for scope, name, state in iter_states(definition):
        if state.get("Type") != "Task":
            continue
        retried = {e for rule in state.get("Retry", []) or [] for e in rule.get("ErrorEquals", [])}
        if "States.ALL" not in retried:
            missing = [e for e in (*LAMBDA_TRANSIENT, *AWS_TRANSIENT) if e not in retried]
            if missing:
                problems.append(f"{scope}{name}: Retry does not cover {missing}")
        catchers = state.get("Catch") or []
        if not catchers:
            problems.append(f"{scope}{name}: no Catch")
        elif "States.ALL" not in catchers[-1].get("ErrorEquals", []):
            problems.append(f"{scope}{name}: the last Catch is not States.ALL, so some errors escape")
    return problems


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def task_function_placeholders(definition: dict[str, Any]) -> dict[str, str]:
    """state name -> the ${Name} a Lambda task invokes (direct ARN or lambda:invoke FunctionName)."""
    out = {}
    for scope, name, state in iter_states(definition):
        if state.get("Type") != "Task":
            continue
        resource = state.get("Resource", "")
        target = resource
        if resource.startswith("arn:aws:states:::lambda:invoke"):
            target = (state.get("Parameters") or state.get("Arguments") or {}).get("FunctionName", "")
        match = PLACEHOLDER.fullmatch(target) if isinstance(target, str) else None
        if match:
            out[f"{scope}{name}"] = match.group(1)
    return out


# --- template ----------------------------------------------------------------------------

def open_ingress(template: dict[str, Any]) -> list[str]:
    """Every ingress rule anywhere in the template that is open to the world."""
    problems = []

    def check_rule(where: str, rule: Any) -> None:
        if isinstance(rule, dict) and (rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0"):
            problems.append(f"{where}: ingress open to {rule.get('CidrIp') or rule.get('CidrIpv6')}")

    for logical_id, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {}) or {}
        if resource.get("Type") == "AWS::EC2::SecurityGroupIngress":
            check_rule(logical_id, props)
        for i, rule in enumerate(props.get("SecurityGroupIngress", []) or []):
            check_rule(f"{logical_id}.SecurityGroupIngress[{i}]", rule)
    return problems


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def is_read_only(action: str) -> bool:
    verb = action.split(":", 1)[1] if ":" in action else action
    return verb.startswith(READ_ONLY_VERBS)


def wildcard_write_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(resource, statement) for every inline Allow statement in a resource's Policies list that
    allows a non-read action on Resource "*"."""
    out = []
    for logical_id, resource in template.get("Resources", {}).items():
        for policy in as_list((resource.get("Properties") or {}).get("Policies") or []):
            if not isinstance(policy, dict) or "Statement" not in policy:
                continue
            for statement in as_list(policy["Statement"]):
                if statement.get("Effect", "Allow") != "Allow":
                    continue
                if "*" not in as_list(statement.get("Resource")):
                    continue
                actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
                if "NotAction" in statement or any(not is_read_only(a) for a in actions):
                    out.append((logical_id, statement))
    return out


_SID_LINE = re.compile(r"^(?P<indent>\s*)- Sid:\s*(?P<sid>\S+)\s*$")


def statement_blocks(raw: str, sid: str) -> list[tuple[list[str], list[str]]]:
    """For every `- Sid: <sid>` line: (comment lines just above it at the same indent, the
    statement's own lines up to the next list item at that indent, a dedent, or end of file)."""
    lines = raw.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        m = _SID_LINE.match(line)
        if not m or m.group("sid").strip("\"'") != sid:
            continue
        indent = len(m.group("indent"))
        above = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and len(lines[j]) - len(lines[j].lstrip()) == indent:
            above.append(lines[j])
            j -= 1
        body = []
        for nxt in lines[i + 1:]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            body.append(nxt)
        blocks.append((above, body))
    return blocks


def unexplained_wildcard_writes(template: dict[str, Any], raw: str) -> list[str]:
    problems = []
    for logical_id, statement in wildcard_write_statements(template):
        sid = statement.get("Sid")
        if not sid:
            problems.append(f"{logical_id}: a statement allows writes on \"*\" and has no Sid to find it by")
            continue
        blocks = statement_blocks(raw, str(sid))
        if not blocks:
            problems.append(f"{logical_id}.{sid}: `- Sid: {sid}` line not found in the template text")
        for above, body in blocks:
            comments = [ln.strip().lstrip("#").strip() for ln in above + body if ln.strip().startswith("#")]
            if not any(comments):
                problems.append(f"{logical_id}.{sid}: allows {statement.get('Action')} on \"*\" "
                                "without a comment saying why")
    return problems


def handler_function(module: Path, name: str) -> bool:
    tree = ast.parse(module.read_text(), filename=str(module))
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
               for node in tree.body)


def logic_lines(source: str) -> int:
    """Non-blank, non-comment lines, not counting the module docstring."""
    tree = ast.parse(source)
    skip: set[int] = set()
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        skip = set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return sum(1 for n, line in enumerate(source.splitlines(), start=1)
               if n not in skip and line.strip() and not line.strip().startswith("#"))


def imports_from(source: str, package: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {m for m in modules if m == package or m.startswith(package + ".")}
