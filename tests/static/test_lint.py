"""ruff and mypy (pydantic plugin), configured in pyproject.toml, as part of `make test`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.static.checks import ROOT, run_tool

pytestmark = pytest.mark.static
BIN = Path(sys.executable).parent


def test_ruff_finds_nothing() -> None:
    completed = run_tool([BIN / "ruff", "check", "."])
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_mypy_finds_nothing_in_the_package() -> None:
    completed = run_tool([BIN / "mypy", str(ROOT / "layers" / "eiplane" / "eiplane")], timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
