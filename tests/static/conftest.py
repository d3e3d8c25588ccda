"""Fixtures for the static checks: the parsed template, its raw text, and the ASL files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eiplane.local.template import load_template
from tests.static.checks import STATEMACHINES, TEMPLATE


def asl_paths() -> list[Path]:
    return sorted(STATEMACHINES.glob("*.asl.json"))


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def raw_template() -> str:
    return TEMPLATE.read_text()


@pytest.fixture(scope="session")
def asl_documents() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in asl_paths()}
