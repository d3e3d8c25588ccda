"""The Lambda layer ships the eiplane package and layers/eiplane/requirements.txt: every
third-party module the functions can import must be in that file or in the Lambda runtime."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from tests.static.checks import ROOT

pytestmark = pytest.mark.static
LAYER = ROOT / "layers" / "eiplane"
RUNTIME_PROVIDED = {"boto3", "botocore"}  # the python3.12 Lambda runtime ships these
DISTRIBUTION_OF = {"aws_lambda_powertools": "aws-lambda-powertools", "pydantic": "pydantic"}
# Never imported by a function: the embedded AWS, the CLI, the packer, the capacity simulator
# and benchmark run on your machine, and the validation agent on the fleet's instances.
LOCAL_ONLY = ("local", "cli", "bench", "agent", "artifacts/pack.py", "artifacts/demo_model.py",
              "capacity/simulate.py", "capacity/benchmark.py", "capacity/traces.py", "capacity/families.py",
              "capacity/evaluation.py")


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _lambda_sources() -> list[Path]:
    package = [p for p in (LAYER / "eiplane").rglob("*.py")
               if not str(p.relative_to(LAYER / "eiplane")).startswith(LOCAL_ONLY)]
    return [*package, *(ROOT / "functions").rglob("app.py")]


def test_layer_requirements_cover_every_third_party_import() -> None:
    required = {re.split(r"[<>=\[; ]", line.strip())[0].lower()
                for line in (LAYER / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    imported = set().union(*(_top_level_imports(p) for p in _lambda_sources()))
    third_party = imported - set(sys.stdlib_module_names) - {"eiplane", "__future__"} - RUNTIME_PROVIDED
    missing = sorted(m for m in third_party if DISTRIBUTION_OF.get(m, m).lower() not in required)
    assert missing == [], f"imported by Lambda code but not in layers/eiplane/requirements.txt: {missing}"


def test_functions_never_import_the_local_engine_or_cli() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _lambda_sources()
                 if re.search(r"^\s*(from|import) eiplane\.(local|cli)\b", p.read_text(), re.MULTILINE)]
    assert offenders == []
