"""Fixtures of the artifact and agent tests: the tiny CNN packed once per module, and a
copy of it that a test may damage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.artifact_helpers import copy_artifact, pack_tiny_cnn


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "artifact"
    pack_tiny_cnn(out)
    return out


@pytest.fixture
def artifact(packed: Path, tmp_path: Path) -> Path:
    """A copy of the packed artifact that a test may damage."""
    return copy_artifact(packed, tmp_path / "artifact")
