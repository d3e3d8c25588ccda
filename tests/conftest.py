"""Shared fixtures. Integration tests run the real ASL with the real handlers on the
embedded AWS (eiplane.local.engine); unit tests touch no AWS at all."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): a worker per core and one more. Integration tests spend much of
    their time waiting on processes of their own (the embedded instances' agents and model servers, the
    demo's paced requests): the extra worker keeps both cores busy meanwhile."""
    return (os.cpu_count() or 1) + 1


def load_event(name: str) -> Any:
    """An event file from events/, the same ones `sam local invoke -e` and `eiplane local invoke` use."""
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def tiny_cnn_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo CNN packed once per test session (batch sizes 1 and 4 keep the agent quick)."""
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    out = tmp_path_factory.mktemp("artifact") / "tiny-cnn-1"
    pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version="1", out_dir=out, batch_sizes=(1, 4), target="any")
    return out


@pytest.fixture(scope="session")
def torchscript_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo CNN as TorchScript only, batch size 1: the quickest to validate, for tests about
    what happens around validation (capacity matching), not about its formats."""
    from eiplane.artifacts.demo_model import tiny_cnn
    from eiplane.artifacts.pack import pack

    out = tmp_path_factory.mktemp("artifact") / "tiny-cnn-1-torchscript"
    pack(tiny_cnn(), (3, 32, 32), name="tiny-cnn", version="1", out_dir=out, batch_sizes=(1,), target="any",
         formats=("torchscript",))
    return out


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real account: fake credentials, and no profile or endpoint leaks in."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
