"""The external linters on template.yaml: `sam validate --lint` (tools venv) and cfn-lint (.venv).

A missing tool fails (never skips) with "run `make tools`": CI runs `make test`, which
installs them first, so a missing tool means a broken setup, not an optional check.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.static.checks import CFN_LINT, ROOT, SAM, TEMPLATE, require_tool, run_tool

pytestmark = pytest.mark.static

# A property CloudFormation does not have, on the table: both linters must reject it.
_ANCHOR = "      PointInTimeRecoverySpecification:\n"


def _broken_template(tmp_path: Path) -> Path:
    text = TEMPLATE.read_text()
    assert _ANCHOR in text, "the negative tests' anchor line is gone from template.yaml; pick another"
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace(_ANCHOR, "      NoSuchTableProperty: true\n" + _ANCHOR, 1))
    return broken


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_sam_validate_lint_passes() -> None:
    sam = require_tool(SAM)
    result = run_tool([sam, "validate", "--lint", "--template-file", TEMPLATE.relative_to(ROOT)])
    assert result.returncode == 0, _output(result)


def test_sam_validate_lint_rejects_a_broken_template(tmp_path: Path) -> None:
    sam = require_tool(SAM)
    result = run_tool([sam, "validate", "--lint", "--template-file", _broken_template(tmp_path)])
    assert result.returncode != 0, _output(result)
    assert "NoSuchTableProperty" in result.stdout + result.stderr, _output(result)


def test_cfn_lint_passes() -> None:
    cfn_lint = require_tool(CFN_LINT)
    result = run_tool([cfn_lint, TEMPLATE.relative_to(ROOT)])
    assert result.returncode == 0, _output(result)


def test_cfn_lint_rejects_a_broken_template(tmp_path: Path) -> None:
    cfn_lint = require_tool(CFN_LINT)
    result = run_tool([cfn_lint, _broken_template(tmp_path)])
    assert result.returncode != 0, _output(result)
    assert "NoSuchTableProperty" in result.stdout + result.stderr, _output(result)


def test_a_missing_tool_fails_and_says_run_make_tools() -> None:
    with pytest.raises(pytest.fail.Exception, match="run `make tools`"):
        require_tool(ROOT / ".tools" / "no-such-tool" / "bin" / "tool")
