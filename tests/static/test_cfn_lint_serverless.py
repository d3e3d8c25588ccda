"""cfn-lint with awslabs/serverless-rules (cfn-lint-serverless, in .venv) on template.yaml.

cfn-lint validates SAM resources as they are written (it no longer runs SAM's transform), so the
rules for plain CloudFormation types (Step Functions tracing: WS5000, EventBridge dead letters:
ES4000) never see the state machines and their event rules there: the serverless rules also run on
the transformed template (tests/static/scanners.py: sam_transformed), where only their findings
count (cfn-lint's own rules are for the template as written: test_tools.py).

A finding is fixed, or ignored on its resource (`Metadata: cfn-lint: config: ignore_checks:`)
with a YAML comment on the line above each ignored id saying why.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.checks import CFN_LINT, ROOT, TEMPLATE, require_tool, run_tool
from tests.static.scanners import (
    SERVERLESS_RULES,
    cfn_lint_ignore_problems,
    cfn_lint_line,
    cfn_lint_matches,
    sam_transformed,
    serverless_rule_matches,
)

pytestmark = pytest.mark.static


def _lint(path: Path) -> tuple[list[dict[str, Any]], str]:
    cfn_lint = require_tool(CFN_LINT)
    result: subprocess.CompletedProcess[str] = run_tool([cfn_lint, path, "-a", SERVERLESS_RULES, "--format", "json"])
    output = f"exit {result.returncode}\n--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-5000:]}"
    assert "Traceback" not in result.stderr, output
    return cfn_lint_matches(result.stdout), output


def test_serverless_rules_find_nothing_in_the_template() -> None:
    matches, output = _lint(TEMPLATE.relative_to(ROOT))
    assert not matches, "\n".join(cfn_lint_line(m) for m in matches) + "\n" + output


def test_serverless_rules_find_nothing_in_what_sam_makes_of_it(tmp_path: Path) -> None:
    transformed = tmp_path / "transformed.json"
    transformed.write_text(json.dumps(sam_transformed(), indent=1))
    matches, output = _lint(transformed)
    found = serverless_rule_matches(matches)
    assert not found, "\n".join(cfn_lint_line(m) for m in found) + "\n" + output


def test_every_cfn_lint_ignore_says_why(template: dict[str, Any], raw_template: str) -> None:
    assert not cfn_lint_ignore_problems(template, raw_template)


# --- the rules themselves, on small inputs ----------------------------------------------------

_FUNCTION = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Function:
    Type: AWS::Serverless::Function
{metadata}    Properties:
      Runtime: python3.12
      Handler: app.lambda_handler
      CodeUri: s3://bucket/key
      MemorySize: 512
      Timeout: 30
"""


def test_the_serverless_rules_are_loaded(tmp_path: Path) -> None:
    """A function without tracing: WS1000 must be found (so `-a` really loaded the rules)."""
    path = tmp_path / "template.yaml"
    path.write_text(_FUNCTION.format(metadata=""))
    matches, output = _lint(path)
    assert "WS1000" in {m["Rule"]["Id"] for m in serverless_rule_matches(matches)}, output


def test_an_ignore_without_a_comment_is_a_problem() -> None:
    block = ("    Metadata:\n      cfn-lint:\n        config:\n          ignore_checks:\n"
             "            # WS1000: why\n            - WS1000\n            - WS1004\n")
    flow = "    Metadata:\n      cfn-lint:\n        config:\n          # WS1000: why\n          ignore_checks: [WS1000, WS1004]\n"
    for metadata in (block, flow):
        raw = _FUNCTION.format(metadata=metadata)
        assert cfn_lint_ignore_problems(yaml.safe_load(raw), raw) == [
            "Function: ignore of WS1004 has no comment above it saying why"], metadata
