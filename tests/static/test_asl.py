"""The state machines in statemachines/: asl-validator, then our own consistency checks
against eiplane/errors.py and the template's DefinitionSubstitutions.

Every check also runs on a small broken input, so a passing run means something.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import eiplane.errors
from tests.static import checks
from tests.static.checks import ASL_VALIDATOR, ROOT, require_tool, run_tool
from tests.static.conftest import asl_paths

pytestmark = pytest.mark.static

ASL_FILES = asl_paths()
by_file = pytest.mark.parametrize("path", ASL_FILES, ids=[p.name for p in ASL_FILES])


def _validator() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node.js, then run `make tools`")
    return require_tool(ASL_VALIDATOR)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _state_machine_for(template: dict[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    """The one AWS::Serverless::StateMachine whose DefinitionUri is this file."""
    users = [
        (logical_id, resource["Properties"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
        and isinstance(resource.get("Properties", {}).get("DefinitionUri"), str)
        and (ROOT / resource["Properties"]["DefinitionUri"]).resolve() == path.resolve()
    ]
    assert len(users) == 1, f"{path.name}: used by {len(users)} state machines in template.yaml, expected 1"
    return users[0]


def _get_att_arn(value: Any) -> str | None:
    """X for `!GetAtt X.Arn` (short or long form), else None."""
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        parts = target.split(".", 1) if isinstance(target, str) else list(target)
        if len(parts) == 2 and parts[1] == "Arn":
            return str(parts[0])
    return None


def test_there_are_state_machines() -> None:
    assert ASL_FILES, "no statemachines/*.asl.yaml found"


# --- asl-validator -----------------------------------------------------------------------

@by_file
def test_asl_validator_accepts(path: Path) -> None:
    result = run_tool([_validator(), "--yaml-path", path.relative_to(ROOT)])
    assert result.returncode == 0, _output(result)


def test_asl_validator_rejects_a_next_to_a_missing_state(tmp_path: Path) -> None:
    definition = yaml.safe_load(ASL_FILES[0].read_text())
    state = next(s for s in definition["States"].values() if "Next" in s)
    state["Next"] = "NoSuchState"
    broken = tmp_path / "broken.asl.yaml"
    broken.write_text(yaml.safe_dump(definition))
    result = run_tool([_validator(), "--yaml-path", broken])
    assert result.returncode != 0, _output(result)
    assert "NoSuchState" in result.stdout + result.stderr, _output(result)


# --- structure ---------------------------------------------------------------------------

@by_file
def test_every_transition_names_an_existing_state(path: Path, asl_documents: dict[Path, Any]) -> None:
    assert checks.missing_targets(asl_documents[path]) == []


@by_file
def test_every_state_is_reachable_from_start_at(path: Path, asl_documents: dict[Path, Any]) -> None:
    assert checks.unreachable_states(asl_documents[path]) == []


@by_file
def test_custom_error_names_are_eiplane_errors(path: Path, asl_documents: dict[Path, Any]) -> None:
    assert checks.unknown_error_names(asl_documents[path], eiplane.errors) == []


@by_file
def test_every_task_retries_lambda_transient_errors_and_catches_everything(
    path: Path, asl_documents: dict[Path, Any]
) -> None:
    assert checks.task_retry_catch_problems(asl_documents[path]) == []


# --- template wiring ---------------------------------------------------------------------

@by_file
def test_placeholders_and_definition_substitutions_match(path: Path, template: dict[str, Any]) -> None:
    logical_id, props = _state_machine_for(template, path)
    used = checks.placeholders(path.read_text())
    defined = set(props.get("DefinitionSubstitutions") or {})
    assert sorted(used - defined) == [], f"{path.name}: ${{...}} with no DefinitionSubstitutions in {logical_id}"
    assert sorted(defined - used) == [], f"{logical_id}: DefinitionSubstitutions not used by {path.name}"


@by_file
def test_task_resources_are_arns_of_template_functions(
    path: Path, template: dict[str, Any], asl_documents: dict[Path, Any]
) -> None:
    logical_id, props = _state_machine_for(template, path)
    substitutions = props.get("DefinitionSubstitutions") or {}
    tasks = checks.task_function_placeholders(asl_documents[path])
    assert tasks, f"{path.name}: no Task invokes a ${{...FunctionArn}} substitution"
    problems = []
    for state, name in tasks.items():
        function = _get_att_arn(substitutions.get(name))
        if function is None:
            problems.append(f"{state}: ${{{name}}} is not `!GetAtt <Function>.Arn` in {logical_id}")
        elif template["Resources"].get(function, {}).get("Type") != "AWS::Serverless::Function":
            problems.append(f"{state}: ${{{name}}} -> {function}, not an AWS::Serverless::Function")
        elif name != f"{function}Arn":
            problems.append(f"{state}: ${{{name}}} -> !GetAtt {function}.Arn; the name says {name[:-3]}")
    assert problems == []


@by_file
def test_state_machine_may_invoke_every_function_it_calls(
    path: Path, template: dict[str, Any], asl_documents: dict[Path, Any]
) -> None:
    logical_id, props = _state_machine_for(template, path)
    substitutions = props.get("DefinitionSubstitutions") or {}
    invoked = checks.task_function_placeholders(asl_documents[path]).values()
    called = {_get_att_arn(substitutions.get(name)) for name in invoked}
    allowed = {
        policy["LambdaInvokePolicy"]["FunctionName"].get("Ref")
        for policy in props.get("Policies") or []
        if isinstance(policy, dict) and isinstance(policy.get("LambdaInvokePolicy", {}).get("FunctionName"), dict)
    }
    assert sorted(f for f in called - allowed if f) == [], f"{logical_id}: no LambdaInvokePolicy for these"


# --- the checks themselves can fail --------------------------------------------------------

def _task(next_state: str | None = None, **extra: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "${OneFunctionArn}",
        "Retry": [{"ErrorEquals": [*checks.LAMBDA_TRANSIENT, *checks.AWS_TRANSIENT]}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
        **extra,
    }
    if next_state:
        state["Next"] = next_state
    else:
        state["End"] = True
    return state


GOOD: dict[str, Any] = {
    "StartAt": "One",
    "States": {
        "One": _task("Fork"),
        "Fork": {
            "Type": "Parallel",
            "Branches": [{"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "End": True}}}],
            "Next": "Two",
        },
        "Two": _task(),
        "Failed": {"Type": "Fail", "Error": "AwsCallFailed"},
    },
}


def test_the_checks_pass_a_good_definition() -> None:
    assert checks.missing_targets(GOOD) == []
    assert checks.unreachable_states(GOOD) == []
    assert checks.unknown_error_names(GOOD, eiplane.errors) == []
    assert checks.task_retry_catch_problems(GOOD) == []


def test_missing_targets_finds_a_bad_next_and_a_bad_nested_next() -> None:
    bad = copy.deepcopy(GOOD)
    bad["States"]["One"]["Catch"][0]["Next"] = "Nowhere"
    bad["States"]["Fork"]["Branches"][0]["States"]["Inner"] = {"Type": "Pass", "Next": "Elsewhere"}
    problems = checks.missing_targets(bad)
    assert any("Catch[0].Next -> 'Nowhere'" in p for p in problems), problems
    assert any("Branches[0]/Inner.Next -> 'Elsewhere'" in p for p in problems), problems


def test_unreachable_states_finds_an_orphan() -> None:
    bad = copy.deepcopy(GOOD)
    bad["States"]["Orphan"] = {"Type": "Succeed"}
    assert checks.unreachable_states(bad) == ["Orphan: not reachable from StartAt"]


def test_unknown_error_names_finds_typos_and_non_eiplane_classes() -> None:
    bad = copy.deepcopy(GOOD)
    bad["States"]["One"]["Retry"].append({"ErrorEquals": ["AwsThrotled"]})  # typo
    bad["States"]["Failed"]["Error"] = "EiplaneError"  # the base class is not routable
    bad["States"]["Two"]["Catch"].insert(0, {"ErrorEquals": ["ValueError"], "Next": "Failed"})
    problems = checks.unknown_error_names(bad, eiplane.errors)
    assert len(problems) == 3, problems


def test_task_retry_catch_problems_finds_each_gap() -> None:
    bad = copy.deepcopy(GOOD)
    bad["States"]["One"]["Retry"] = [{"ErrorEquals": ["Lambda.ServiceException"]}]
    del bad["States"]["Two"]["Catch"]
    problems = checks.task_retry_catch_problems(bad)
    assert any(p.startswith("One: Retry does not cover") for p in problems), problems
    assert "Two: no Catch" in problems
    bad["States"]["Two"]["Catch"] = [{"ErrorEquals": ["AwsThrottled"], "Next": "Failed"}]
    assert "Two: the last Catch is not States.ALL, so some errors escape" in checks.task_retry_catch_problems(bad)
