"""Fixtures for the static checks: the parsed template, its raw text, and the ASL files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eiplane.local.template import load_template
from tests.static.checks import STATEMACHINES, TEMPLATE


def asl_paths() -> list[Path]:
    return sorted(STATEMACHINES.glob("*.asl.yaml"))


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="session")
def raw_template() -> str:
    return TEMPLATE.read_text()


@pytest.fixture(scope="session")
def asl_documents() -> dict[Path, dict[str, Any]]:
    return {path: yaml.safe_load(path.read_text()) for path in asl_paths()}
